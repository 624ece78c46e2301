// An owner's book of the read copies of the files it owns (load/read-copies.ts):
// per file version, per copied piece (a replicated stripe, or one data
// slot of an erasure-coded stripe), until when it counts as read (hot) and
// its temporary copies with their phase and reads in flight. Pure bookkeeping,
// the clock handed in; what to do next is read-replicas.ts's, doing it is
// the caller's. Readers are told only the serving copies (record()).
import type { CopyPhase } from "./read-copy-holds.ts";
import type { CopyRecord, OwnedCopy } from "./read-copy-messages.ts";
import type { TempReplica } from "./read-replicas.ts";

export interface BookCopy {
  node: string;
  phase: CopyPhase;
  inFlight: number;
  /** When its drain began (the owner's clock); removal waits for its reads at most drainTimeoutMs past it. */
  drainingSinceMs?: number;
}

/**
 * Notes a piece needs within its hot window before it is copied. A player
 * streaming a file start to end reads each stripe once: a copy made after
 * that read serves nobody, and making it costs a whole piece read and
 * written. A second read (another player, a seek back, a loop) is what
 * says the piece is wanted again.
 */
export const NOTES_TO_COPY = 2;

/** One piece that is read hot: replicas: slot 0 stands for the stripe; erasure: a data slot. */
export interface BookPiece {
  stripe: number;
  slot: number;
  /** Until when readers' notes count it as being read. */
  hotUntilMs: number;
  /** Notes since its hot window last opened (readers send at most one per piece per note gap each). */
  notes: number;
  /** Oldest first (read-replicas.ts drains the newest first). */
  copies: BookCopy[];
}

export interface BookFile {
  volume: string;
  fileId: string;
  version: number;
  /** By bookKey(stripe, slot). */
  pieces: Map<string, BookPiece>;
}

/** Most files an owner tracks at once: a bound on memory whatever readers report. */
export const BOOK_FILES_MAX = 4_096;

export class ReadCopyBook {
  readonly #files = new Map<string, BookFile>();

  /**
   * A reader found every holder of `slot` of `stripe` High. A note about another
   * version than the one booked is ignored (the owner's tick settles which
   * is current); with the book full, a new file is not taken. A note after
   * the piece's window lapsed (`nowMs`) opens a new one: its count restarts.
   */
  noteHot(
    volume: string,
    fileId: string,
    version: number,
    stripe: number,
    slot: number,
    untilMs: number,
    nowMs = Number.NEGATIVE_INFINITY,
  ): void {
    let file = this.#files.get(fileKey(volume, fileId));
    if (file === undefined) {
      if (this.#files.size >= BOOK_FILES_MAX) return;
      file = { volume, fileId, version, pieces: new Map() };
      this.#files.set(fileKey(volume, fileId), file);
    }
    if (file.version !== version) return;
    const entry = file.pieces.get(bookKey(stripe, slot));
    if (entry === undefined) {
      file.pieces.set(bookKey(stripe, slot), { stripe, slot, hotUntilMs: untilMs, notes: 1, copies: [] });
      return;
    }
    entry.notes = entry.hotUntilMs <= nowMs ? 1 : entry.notes + 1;
    entry.hotUntilMs = Math.max(entry.hotUntilMs, untilMs);
  }

  file(volume: string, fileId: string): BookFile | undefined {
    return this.#files.get(fileKey(volume, fileId));
  }

  files(): BookFile[] {
    return [...this.#files.values()];
  }

  forget(volume: string, fileId: string): void {
    this.#files.delete(fileKey(volume, fileId));
  }

  /** Drops pieces neither read nor copied any more, then files with no piece left. */
  prune(nowMs: number): void {
    for (const [k, file] of this.#files) {
      for (const [at, entry] of file.pieces)
        if (entry.copies.length === 0 && entry.hotUntilMs <= nowMs) file.pieces.delete(at);
      if (file.pieces.size === 0) this.#files.delete(k);
    }
  }

  /** The serving copies readers may use; undefined when the file has none booked. */
  record(volume: string, fileId: string): CopyRecord | undefined {
    const file = this.#files.get(fileKey(volume, fileId));
    if (file === undefined) return undefined;
    const copies: CopyRecord["copies"] = [];
    for (const { stripe, slot, copies: held } of file.pieces.values())
      for (const c of held) if (c.phase === "serving") copies.push({ stripe, slot, node: c.node });
    return { version: file.version, copies };
  }

  owned(): OwnedCopy[] {
    return this.files().flatMap((f) =>
      [...f.pieces.values()].flatMap((entry) =>
        entry.copies.map((c) => ({
          volume: f.volume,
          fileId: f.fileId,
          version: f.version,
          stripe: entry.stripe,
          slot: entry.slot,
          node: c.node,
          phase: c.phase,
          inFlight: c.inFlight,
        })),
      ),
    );
  }
}

/** A piece's copies as read-replicas.ts takes them: a drain older than `drainTimeoutMs` is overdue. */
export function tempsOf(entry: BookPiece, nowMs: number, drainTimeoutMs: number): TempReplica[] {
  return entry.copies.map((c) => {
    const t: TempReplica = { node: c.node, phase: c.phase, inFlight: c.inFlight };
    if (c.drainingSinceMs !== undefined && nowMs - c.drainingSinceMs > drainTimeoutMs) t.overdue = true;
    return t;
  });
}

function fileKey(volume: string, fileId: string): string {
  return `${volume}/${fileId}`;
}

/** A booked piece's key within its file. */
export function bookKey(stripe: number, slot: number): string {
  return `${stripe}/${slot}`;
}
