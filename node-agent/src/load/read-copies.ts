// Temporary read copies of hot stripes (seed 002 §3.2–3.3: a back end is
// added when every one is High, drained and removed when all are Low, after
// the requests it had finish). One agent's part of it, in both roles.
//
// Who decides: a file's owner (core/ownership.ts), so exactly one node
//   decides per file, in local mode and in Kubernetes alike; the operator
//   only reports. Each tick it asks read-replicas.ts (pure) for the next
//   step of every stripe it has booked (read-copy-book.ts) and does it.
// What is hot: a piece whose holders (placed and serving copies) are all
//   High while it is being read. The unit copied is the piece a read
//   fetches: under replicas the stripe (every replica is the same piece;
//   booked as slot 0), under erasure one data slot of a stripe, which has
//   exactly one placed holder: a slot is hot when that holder and the
//   slot's serving copies are all High. Only data slots are copied: a read
//   fetches parity only when a data piece fails, so parity is never hot,
//   and a slot nobody's range touches (the rest of a stripe a player seeks
//   into) gains nothing either. Readers see it (they rank the holders by
//   load for every read) and tell the owner (a "hot" note, at most one per
//   piece per `hotNoteGapMs`); a piece stays read for `hotForMs` after the
//   last note. Only a read piece gains copies, and only once it has been
//   noted NOTES_TO_COPY times in its window: a player streaming a file start
//   to end reads each stripe once, and a copy made after that read would
//   serve nobody (read-copy-book.ts).
// Where copies go: replicas: the stripe's placement order over the whole
//   map, less its holders; erasure: the same, less every node holding a
//   piece of the stripe or a copy of another of its slots, and only when
//   none of those will do a node that holds another piece of the stripe
//   (read-replicas.ts pieceCopyTargets says why: a copy is never
//   redundancy, so this is about spreading one read's parallel fetches).
// Where copies live: on the chosen node, in the file's version directory,
//   under slot READ_COPY_SLOT_BASE + slot (storage/piece-key.ts). The
//   rebuild never counts one as redundancy and keeps it only while it is
//   registered on its holder (read-copy-holds.ts); the scrubber skips it;
//   a newer version or a delete sweeps it away with its version, and the
//   owner releases it at once when it sees either.
// How it is made: the owner reads the whole piece from a placed holder
//   (replicas: any; erasure: the slot's, else one of its serving copies;
//   checked by its crc32c there and on the wire), registers the copy on
//   the target (so no rebuild pass takes it for garbage meanwhile) and
//   puts it there (checked again on receipt).
// How readers learn of it: they ask the owner for the file's record (the
//   serving copies) and cache it (read-copy-directory.ts). Not in the
//   manifest: copies come and go within seconds, and a manifest is written
//   under the file's write lock to several holders; a record kept in the
//   owner's memory costs nothing to change and dies with the owner, as it
//   should: its copies are then orphans.
// How a drain finishes reads first: the owner stops telling readers of the
//   copy and tells its holder, which refuses new reads of it from then on
//   (a reader's stale cache costs a round trip) and counts the reads in
//   flight; the owner releases it only at zero, or once the drain has
//   lasted `drainTimeoutMs` (a stuck read must not keep it forever).
// When the owner dies: its leases stop being renewed, and each holder
//   removes the copies whose lease ran out (`leaseMs`). A holder that
//   restarts has registered nothing, so the rebuild collects its copies as
//   garbage.
import type { ClusterMap } from "../core/cluster-map.ts";
import { placeFileStripe } from "../core/file-placement.ts";
import type { FileManifest } from "../core/manifest.ts";
import { fileOwner } from "../core/ownership.ts";
import { layoutOf, type StripeLayout, type VolumeSpec } from "../core/volume.ts";
import type { PieceIO } from "../data/pieces.ts";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { PeerClients } from "../rpc/peer-client.ts";
import type { PeerReadCopies } from "../rpc/peer-server.ts";
import { decodeJson } from "../rpc/wire.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import { describePieceKey, type PieceKey, readCopyKey } from "../storage/piece-key.ts";
import type { LoadLevel } from "./level.ts";
import {
  type BookFile,
  type BookPiece,
  bookKey,
  NOTES_TO_COPY,
  ReadCopyBook,
  tempsOf,
} from "./read-copy-book.ts";
import { ReadCopyDirectory, type ReadHolder } from "./read-copy-directory.ts";
import { ReadCopyHolds } from "./read-copy-holds.ts";
import {
  type CopyPlace,
  type HeldCount,
  type ReadCopyRequest,
  type ReadCopyStatus,
  type ReleaseReply,
  type RenewReply,
  validateReadCopyRequest,
} from "./read-copy-messages.ts";
import { copiedSlot, nextReplicaStep, pieceCopyTargets, type ReplicaStep } from "./read-replicas.ts";

export interface ReadCopyConfig {
  /** How often an owner steps its files and a holder looks for expired leases. */
  tickMs: number;
  /** How long a holder keeps a copy its owner stopped renewing (the owner renews every tick). */
  leaseMs: number;
  /** How long a stripe counts as read after a reader's last hot note. */
  hotForMs: number;
  /** Most temporary copies of one piece (a replicated stripe, an erasure-coded data slot). */
  maxPerStripe: number;
  /** Longest wait for a draining copy's reads in flight before it is removed anyway. */
  drainTimeoutMs: number;
  /** How long a reader uses an owner's record before asking again. */
  cacheMs: number;
}

export const DEFAULT_READ_COPY_CONFIG: ReadCopyConfig = {
  tickMs: 500,
  leaseMs: 15_000,
  hotForMs: 5_000,
  maxPerStripe: 2,
  drainTimeoutMs: 30_000,
  cacheMs: 1_000,
};

/** Most copies one node holds for others: a bound whatever owners ask. */
export const HELD_MAX = 65_536;

/** A copy added or removed by its owner: logged here, reported as a Kubernetes Event by the agent. */
export interface ReadCopyEvent extends CopyPlace {
  kind: "added" | "removed";
  reason: string;
}

export interface ReadCopiesDeps {
  self: string;
  map: () => ClusterMap;
  volume: (name: string) => VolumeSpec | undefined;
  levelOf: (node: string) => LoadLevel;
  /** Up in the map and not known down: a node worth a copy. */
  usable: (node: string) => boolean;
  /** The agent's piece I/O (given late: it is built with this object). */
  pieces: () => Pick<PieceIO, "get" | "put" | "manifest">;
  peers: Pick<PeerClients, "readCopies">;
  store: Pick<ChunkStore, "deletePiece">;
  log: Logger;
  config?: Partial<ReadCopyConfig>;
  onEvent?: (event: ReadCopyEvent) => void;
  now?: () => number;
}

export class ReadCopies implements PeerReadCopies {
  readonly config: ReadCopyConfig;
  readonly #deps: ReadCopiesDeps;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #holds: ReadCopyHolds;
  readonly #book = new ReadCopyBook();
  readonly #directory: ReadCopyDirectory;
  /** Copies being made, by piece: a copy takes a read from a busy holder, so it runs beside the ticks, not in them. */
  readonly #adding = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> = Promise.resolve();
  #stopped = true;

  constructor(deps: ReadCopiesDeps) {
    this.config = { ...DEFAULT_READ_COPY_CONFIG, ...deps.config };
    this.#deps = deps;
    this.#log = deps.log.child({ component: "read-copies" });
    this.#now = deps.now ?? (() => performance.now());
    this.#holds = new ReadCopyHolds(this.#now);
    this.#directory = new ReadCopyDirectory({
      self: deps.self,
      map: deps.map,
      levelOf: deps.levelOf,
      localRecord: (volume, fileId) => this.#book.record(volume, fileId),
      noteHotLocal: (volume, fileId, version, stripe, slot) =>
        this.#noteHot(volume, fileId, version, stripe, slot),
      ask: (node, request) => deps.peers.readCopies(node, request),
      log: this.#log,
      cacheMs: this.config.cacheMs,
      hotNoteGapMs: this.config.hotForMs / 4,
      now: this.#now,
    });
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    const loop = () => {
      this.#ticking = this.#tick().finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(loop, this.config.tickMs).unref();
      });
    };
    this.#timer = setTimeout(loop, this.config.tickMs).unref();
  }

  /** Ends the loop after the tick in progress. Copies stay: their leases run out on their holders. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#ticking;
    await Promise.allSettled(this.#adding.values());
  }

  /** The holders a read may ask (file-reader.ts): placed ones (erasure: data slot `slot`'s), then serving copies. */
  holders(manifest: FileManifest, stripe: number, placed: readonly string[], slot = 0): ReadHolder[] {
    return this.#directory.holders(manifest, stripe, placed, slot);
  }

  beginRead(key: PieceKey): () => void {
    return this.#holds.begin(key);
  }

  /** Whether `key` is a read copy registered here (the rebuild keeps it). */
  isHeld(key: PieceKey): boolean {
    return this.#holds.has(key);
  }

  status(): ReadCopyStatus {
    return { held: this.#holds.list(), owned: this.#book.owned() };
  }

  /** Copies held here per volume and phase (the metrics' gauge). */
  heldCounts(): HeldCount[] {
    const counts = new Map<string, HeldCount>();
    for (const c of this.#holds.list()) {
      const k = `${c.key.volume}/${c.phase}`;
      const entry = counts.get(k) ?? { volume: c.key.volume, phase: c.phase, count: 0 };
      entry.count++;
      counts.set(k, entry);
    }
    return [...counts.values()];
  }

  handle(request: Buffer): Promise<unknown> {
    return this.#answer(decodeJson(request, "ReadCopies request", validateReadCopyRequest));
  }

  async #answer(r: ReadCopyRequest): Promise<unknown> {
    switch (r.op) {
      case "hold":
        if (this.#holds.list().length + r.keys.length > HELD_MAX)
          throw new MosaicError("MOSAIC_ERR_STORE_FULL", `this node holds ${HELD_MAX} read copies already`);
        for (const key of r.keys) this.#holds.hold(key, r.leaseMs);
        return {};
      case "renew":
        return {
          inFlight: r.keys.map((key) => this.#holds.renew(key, r.phase, r.leaseMs) ?? -1),
        } satisfies RenewReply;
      case "release": {
        const released: boolean[] = [];
        for (const key of r.keys) {
          const gone = this.#holds.release(key, r.force);
          if (gone) await this.#deps.store.deletePiece(key);
          released.push(gone);
        }
        return { released } satisfies ReleaseReply;
      }
      case "hot":
        this.#noteHot(r.volume, r.fileId, r.version, r.stripe, r.slot);
        return {};
      case "record": {
        const record = this.#owns(r.volume, r.fileId) ? this.#book.record(r.volume, r.fileId) : undefined;
        return record ?? { version: -1, copies: [] };
      }
      case "status":
        return this.status();
    }
  }

  #owns(volume: string, fileId: string): boolean {
    const spec = this.#deps.volume(volume);
    return (
      spec !== undefined && fileOwner(this.#deps.map(), volume, fileId, spec.redundancy) === this.#deps.self
    );
  }

  #noteHot(volume: string, fileId: string, version: number, stripe: number, slot: number): void {
    if (!this.#owns(volume, fileId)) return; // the owner changed meanwhile: the reader asks the new one next
    // Parity, or a slot past the stripe's width: nothing a read copy is for.
    const spec = this.#deps.volume(volume);
    if (spec === undefined || !copiedSlot(layoutOf(spec), slot)) return;
    const now = this.#now();
    this.#book.noteHot(volume, fileId, version, stripe, slot, now + this.config.hotForMs, now);
  }

  /** A ReadCopies call to `node`, answered here without the wire when it is this node. */
  #call<T>(node: string, request: ReadCopyRequest): Promise<T> {
    return (
      node === this.#deps.self ? this.#answer(request) : this.#deps.peers.readCopies(node, request)
    ) as Promise<T>;
  }

  async #tick(): Promise<void> {
    try {
      await this.#sweep();
      for (const file of this.#book.files()) {
        try {
          await this.#tend(file);
        } catch (error) {
          this.#log.warn(
            { volume: file.volume, fileId: file.fileId, err: (error as Error).message },
            "read copies: file not tended; next tick",
          );
        }
      }
      this.#book.prune(this.#now());
    } catch (error) {
      this.#log.error({ err: (error as Error).message }, "read copies: tick failed");
    }
  }

  /** As a holder: copies whose owner stopped renewing them are removed. */
  async #sweep(): Promise<void> {
    for (const key of this.#holds.takeExpired()) {
      await this.#deps.store.deletePiece(key);
      this.#log.info(
        { piece: describePieceKey(key) },
        "read copy's lease ran out (its owner is gone); removed",
      );
    }
  }

  /** As the owner: one step for each booked piece of `file`. */
  async #tend(file: BookFile): Promise<void> {
    const current = await this.#current(file);
    if (typeof current === "string") {
      await this.#releaseAll(file, current);
      this.#book.forget(file.volume, file.fileId);
      return;
    }
    await this.#renewAll(file);
    const map = this.#deps.map();
    const now = this.#now();
    const layout = layoutOf(current);
    for (const entry of file.pieces.values()) {
      const { stripe, slot } = entry;
      if (stripe >= current.stripes || this.#adding.has(addingKey(file, entry))) continue;
      const placed = placeFileStripe(map, current, stripe);
      const targets = pieceCopyTargets(
        map,
        layout,
        { volume: file.volume, fileId: file.fileId, stripe },
        placed,
        slot,
        otherSlotsCopies(file, entry),
        this.#deps.usable,
      );
      const step = nextReplicaStep({
        ...targets,
        temps: tempsOf(entry, now, this.config.drainTimeoutMs),
        levelOf: this.#deps.levelOf,
        max: this.config.maxPerStripe,
        read: entry.hotUntilMs > now && entry.notes >= NOTES_TO_COPY,
      });
      await this.#apply(file, current, layout, entry, placed, step);
    }
  }

  /** The file's manifest when the booked version is still current and this node still owns it; else why not. */
  async #current(file: BookFile): Promise<FileManifest | string> {
    const spec = this.#deps.volume(file.volume);
    if (spec === undefined) return "its volume is gone";
    if (!this.#owns(file.volume, file.fileId)) return "another node owns the file now";
    const manifest = await this.#deps.pieces().manifest(this.#deps.self, file.volume, file.fileId);
    if (manifest === undefined) return "the file is gone";
    if (manifest.deleted === true) return "the file was deleted";
    if (manifest.version !== file.version) return `the file was overwritten (v${manifest.version})`;
    return manifest;
  }

  #copyKey(file: Pick<BookFile, "volume" | "fileId" | "version">, entry: BookPiece): PieceKey {
    const { stripe, slot } = entry;
    return readCopyKey({ volume: file.volume, fileId: file.fileId, version: file.version, stripe, slot });
  }

  /** Renews every copy's lease with its phase, and learns each one's reads in flight. */
  async #renewAll(file: BookFile): Promise<void> {
    for (const entry of file.pieces.values()) {
      for (const copy of [...entry.copies]) {
        const key = this.#copyKey(file, entry);
        let inFlight: number | undefined;
        try {
          const reply = await this.#call<RenewReply>(copy.node, {
            op: "renew",
            keys: [key],
            phase: copy.phase,
            leaseMs: this.config.leaseMs,
          });
          inFlight = reply.inFlight[0];
        } catch (error) {
          if (this.#deps.usable(copy.node)) continue; // asked again next tick
          this.#forgetCopy(file, entry, copy.node, `its holder is down (${(error as Error).message})`);
          continue;
        }
        if (inFlight === undefined || inFlight < 0) {
          this.#forgetCopy(file, entry, copy.node, "its holder no longer has it");
        } else copy.inFlight = inFlight;
      }
    }
  }

  async #apply(
    file: BookFile,
    manifest: FileManifest,
    layout: StripeLayout,
    entry: BookPiece,
    placed: readonly string[],
    step: ReplicaStep,
  ): Promise<void> {
    if (step.kind === "none") return;
    const copy = entry.copies.find((c) => c.node === step.node);
    const { stripe, slot } = entry;
    const where = { volume: manifest.volume, file: manifest.name, stripe, slot, node: step.node };
    switch (step.kind) {
      case "add": {
        const k = addingKey(manifest, entry);
        const adding = this.#add(file, manifest, layout, entry, placed, step.node)
          .catch((error: unknown) =>
            this.#log.warn({ ...where, err: (error as Error).message }, "read copy not added"),
          )
          .finally(() => this.#adding.delete(k));
        this.#adding.set(k, adding);
        return;
      }
      case "drain":
      case "serve": {
        if (copy === undefined) return;
        // Readers stop being told of a draining copy at once; its holder refuses new reads once told.
        copy.phase = step.kind === "drain" ? "draining" : "serving";
        if (step.kind === "drain") copy.drainingSinceMs = this.#now();
        else delete copy.drainingSinceMs;
        this.#log.info(
          where,
          step.kind === "drain"
            ? "read copy draining (every holder Low)"
            : "read copy serving again (hot again)",
        );
        await this.#renewAll({
          ...this.#fileOf(manifest),
          pieces: new Map([[bookKey(stripe, slot), entry]]),
        });
        return;
      }
      case "remove": {
        if (copy === undefined) return;
        const overdue =
          copy.drainingSinceMs !== undefined &&
          this.#now() - copy.drainingSinceMs > this.config.drainTimeoutMs;
        const key = this.#copyKey(manifest, entry);
        try {
          const reply = await this.#call<ReleaseReply>(step.node, {
            op: "release",
            keys: [key],
            force: overdue,
          });
          if (reply.released[0] !== true) return; // a read began before the drain reached the holder
        } catch (error) {
          if (!overdue) return;
          this.#log.warn(
            { ...where, err: (error as Error).message },
            "read copy not released; its lease will",
          );
        }
        const reason = overdue
          ? `drained for ${this.config.drainTimeoutMs} ms with reads still in flight`
          : "drained";
        this.#forgetCopy(this.#fileOf(manifest), entry, step.node, reason);
      }
    }
  }

  async #add(
    file: BookFile,
    manifest: FileManifest,
    layout: StripeLayout,
    entry: BookPiece,
    placed: readonly string[],
    node: string,
  ): Promise<void> {
    const pieces = this.#deps.pieces();
    const { stripe, slot } = entry;
    const base = { volume: manifest.volume, fileId: manifest.fileId, version: manifest.version, stripe };
    // Replicas: any placed replica. Erasure: the slot's holder, else a copy of the slot that serves.
    const sources =
      layout.kind === "replicas"
        ? placed.map((holder, s) => ({ holder, key: { ...base, slot: s } }))
        : [
            { holder: placed[slot] as string, key: { ...base, slot } },
            ...entry.copies
              .filter((c) => c.phase === "serving")
              .map((c) => ({ holder: c.node, key: readCopyKey({ ...base, slot }) })),
          ];
    let data: Buffer[] | undefined;
    let from: string | undefined;
    for (const source of sources) {
      try {
        data = (await pieces.get(source.holder, source.key)).data;
        from = source.holder;
        break;
      } catch {
        // the next source
      }
    }
    const where = { volume: manifest.volume, file: manifest.name, stripe, slot, node };
    if (data === undefined) {
      this.#log.warn(where, "read copy not added: the piece could be read from none of its holders");
      return;
    }
    const key = this.#copyKey(manifest, entry);
    await this.#call(node, { op: "hold", keys: [key], leaseMs: this.config.leaseMs });
    try {
      await pieces.put(node, key, data);
    } catch (error) {
      await this.#call(node, { op: "release", keys: [key], force: true }).catch(() => {});
      this.#log.warn({ ...where, err: (error as Error).message }, "read copy not added");
      return;
    }
    // The file may have been overwritten, deleted or gone cold meanwhile: then the copy is not booked.
    if (
      this.#book.file(file.volume, file.fileId) !== file ||
      file.pieces.get(bookKey(stripe, slot)) !== entry
    ) {
      await this.#call(node, { op: "release", keys: [key], force: true });
      return;
    }
    entry.copies.push({ node, phase: "serving", inFlight: 0 });
    const what = layout.kind === "replicas" ? "the stripe" : `data slot ${slot}`;
    this.#event(
      "added",
      this.#fileOf(manifest),
      entry,
      node,
      `every holder of ${what} High; copied from ${from}`,
    );
  }

  /** Releases every copy of a file that stopped being this owner's business (overwritten, deleted, moved). */
  async #releaseAll(file: BookFile, reason: string): Promise<void> {
    for (const entry of file.pieces.values()) {
      for (const copy of [...entry.copies]) {
        const key = this.#copyKey(file, entry);
        await this.#call(copy.node, { op: "release", keys: [key], force: true }).catch((error: unknown) =>
          this.#log.warn(
            { node: copy.node, err: (error as Error).message },
            "read copy not released; its lease will",
          ),
        );
        this.#forgetCopy(file, entry, copy.node, reason);
      }
    }
  }

  #forgetCopy(
    file: Pick<BookFile, "volume" | "fileId" | "version">,
    entry: BookPiece,
    node: string,
    reason: string,
  ): void {
    const at = entry.copies.findIndex((c) => c.node === node);
    if (at < 0) return;
    entry.copies.splice(at, 1);
    this.#event("removed", file, entry, node, reason);
  }

  #fileOf(manifest: FileManifest): Pick<BookFile, "volume" | "fileId" | "version"> {
    return { volume: manifest.volume, fileId: manifest.fileId, version: manifest.version };
  }

  #event(
    kind: ReadCopyEvent["kind"],
    file: Pick<BookFile, "volume" | "fileId" | "version">,
    entry: Pick<BookPiece, "stripe" | "slot">,
    node: string,
    reason: string,
  ): void {
    const event: ReadCopyEvent = {
      kind,
      volume: file.volume,
      fileId: file.fileId,
      version: file.version,
      stripe: entry.stripe,
      slot: entry.slot,
      node,
      reason,
    };
    this.#log.info(event, kind === "added" ? "read copy added" : "read copy removed");
    this.#deps.onEvent?.(event);
  }
}

function addingKey(file: Pick<BookFile, "volume" | "fileId" | "version">, entry: BookPiece): string {
  return `${file.volume}/${file.fileId}/${file.version}/${bookKey(entry.stripe, entry.slot)}`;
}

/** The nodes holding copies of the other booked slots of `entry`'s stripe (erasure: kept apart). */
function otherSlotsCopies(file: BookFile, entry: BookPiece): string[] {
  return [...file.pieces.values()]
    .filter((p) => p.stripe === entry.stripe && p !== entry)
    .flatMap((p) => p.copies.map((c) => c.node));
}
