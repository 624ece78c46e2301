// A reader's side of read copies (load/read-copies.ts): the holders a read
// of a replicated stripe chooses from are its placed ones plus the copies
// its file's owner says serve, and a read that finds every one of them High
// tells the owner so (that is what makes a stripe hot). Under erasure the
// same holds per data slot: the slot's one placed holder plus its copies.
//
// The owner's record is cached per file and refreshed in the background, so
// a read never waits on it: the first read of a file sees no copies, the
// next ones see them within `cacheMs`. It is asked for only while a copy is
// known or some placed holder is not Low: a cluster at rest costs no call.
// A cached copy that its owner has since drained is refused by its holder,
// and the read moves to the next holder, so a stale cache costs one round
// trip, never a wrong or missing read.
import type { ClusterMap } from "../core/cluster-map.ts";
import type { FileManifest } from "../core/manifest.ts";
import { fileOwner } from "../core/ownership.ts";
import { layoutOf } from "../core/volume.ts";
import type { Logger } from "../log.ts";
import { READ_COPY_SLOT_BASE } from "../storage/piece-key.ts";
import type { LoadLevel } from "./level.ts";
import { type CopyRecord, type ReadCopyRequest, validateCopyRecord } from "./read-copy-messages.ts";

/** One holder a read may ask: the node and the slot its piece is stored under there. */
export interface ReadHolder {
  node: string;
  slot: number;
}

export interface ReadCopyDirectoryDeps {
  self: string;
  map: () => ClusterMap;
  levelOf: (node: string) => LoadLevel;
  /** This node's own book, for files it owns. */
  localRecord: (volume: string, fileId: string) => CopyRecord | undefined;
  noteHotLocal: (volume: string, fileId: string, version: number, stripe: number, slot: number) => void;
  /** A ReadCopies call to another node. */
  ask: (node: string, request: ReadCopyRequest) => Promise<unknown>;
  log: Logger;
  /** How long a fetched record is used before it is asked for again. */
  cacheMs: number;
  /** Least time between two hot notes of one stripe to its owner. */
  hotNoteGapMs: number;
  now: () => number;
}

interface Cached {
  record: CopyRecord | undefined;
  atMs: number;
  fetching: boolean;
}

/** Files and stripes remembered at most: the oldest are forgotten first. */
const REMEMBERED_MAX = 1_024;

export class ReadCopyDirectory {
  readonly #deps: ReadCopyDirectoryDeps;
  readonly #records = new Map<string, Cached>();
  readonly #hotSentAt = new Map<string, number>();

  constructor(deps: ReadCopyDirectoryDeps) {
    this.#deps = deps;
  }

  /**
   * The holders a read may ask. Replicas: `placed` by slot, then the
   * stripe's serving copies (`slot` is 0). Erasure: data slot `slot`'s
   * placed holder, then that slot's serving copies (pieces differ from slot
   * to slot, so each data slot is copied on its own; parity never is).
   */
  holders(manifest: FileManifest, stripe: number, placed: readonly string[], slot = 0): ReadHolder[] {
    const holders = placedHolders(manifest, placed, slot);
    const d = this.#deps;
    const owner = fileOwner(d.map(), manifest.volume, manifest.fileId, manifest.redundancy);
    const record =
      owner === d.self
        ? d.localRecord(manifest.volume, manifest.fileId)
        : this.#cached(owner, manifest, placed);
    if (record?.version === manifest.version) {
      for (const c of record.copies)
        if (c.stripe === stripe && c.slot === slot && !holders.some((h) => h.node === c.node))
          holders.push({ node: c.node, slot: READ_COPY_SLOT_BASE + slot });
    }
    if (holders.every((h) => d.levelOf(h.node) === "High")) this.#noteHot(owner, manifest, stripe, slot);
    return holders;
  }

  #cached(owner: string, manifest: FileManifest, placed: readonly string[]): CopyRecord | undefined {
    const d = this.#deps;
    const k = `${manifest.volume}/${manifest.fileId}`;
    const entry = this.#records.get(k);
    const fresh = entry !== undefined && d.now() - entry.atMs < d.cacheMs;
    const worth = (entry?.record?.copies.length ?? 0) > 0 || placed.some((n) => d.levelOf(n) !== "Low");
    if (!fresh && worth && entry?.fetching !== true) void this.#refresh(k, owner, manifest, entry);
    return entry?.record;
  }

  async #refresh(k: string, owner: string, manifest: FileManifest, was: Cached | undefined): Promise<void> {
    const d = this.#deps;
    remember(this.#records, k, { record: was?.record, atMs: was?.atMs ?? 0, fetching: true });
    let record: CopyRecord | undefined;
    try {
      record = validateCopyRecord(
        await d.ask(owner, { op: "record", volume: manifest.volume, fileId: manifest.fileId }),
      );
    } catch (error) {
      d.log.debug({ owner, file: manifest.name, err: (error as Error).message }, "read copies not known");
    }
    remember(this.#records, k, { record, atMs: d.now(), fetching: false });
  }

  #noteHot(owner: string, manifest: FileManifest, stripe: number, slot: number): void {
    const d = this.#deps;
    const k = `${manifest.volume}/${manifest.fileId}/${manifest.version}/${stripe}/${slot}`;
    const now = d.now();
    if (now - (this.#hotSentAt.get(k) ?? Number.NEGATIVE_INFINITY) < d.hotNoteGapMs) return;
    remember(this.#hotSentAt, k, now);
    const { volume, fileId, version } = manifest;
    if (owner === d.self) {
      d.noteHotLocal(volume, fileId, version, stripe, slot);
      return;
    }
    d.ask(owner, { op: "hot", volume, fileId, version, stripe, slot }).catch((error: unknown) =>
      d.log.debug({ owner, file: manifest.name, err: (error as Error).message }, "hot stripe not told"),
    );
  }
}

/** A read's placed holders: replicas: all of them by slot; erasure: data slot `slot`'s alone. */
export function placedHolders(
  manifest: Pick<FileManifest, "chunkSizeBytes" | "redundancy">,
  placed: readonly string[],
  slot: number,
): ReadHolder[] {
  return layoutOf(manifest).kind === "replicas"
    ? placed.map((node, s) => ({ node, slot: s }))
    : [{ node: placed[slot] as string, slot }];
}

function remember<V>(map: Map<string, V>, k: string, value: V): void {
  map.delete(k); // re-inserted last: the oldest stays first
  map.set(k, value);
  if (map.size > REMEMBERED_MAX) map.delete(map.keys().next().value as string);
}
