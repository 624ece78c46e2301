// The read copies this node holds for other files' owners (load/read-copies.ts):
// which are registered, whether each takes new reads, how many reads of
// each are in flight, and until when its owner's lease runs. Pure
// bookkeeping with the clock handed in; the store and the wire are the
// caller's.
//
// A copy is registered before its bytes arrive and stays registered only
// while its owner renews the lease: an owner that dies leaves copies whose
// leases run out, and the holder removes them itself. Registration lives in
// memory only, so after a restart every copy on disk is unregistered, and
// the rebuild collects it as garbage (data/rebuild.ts).
import { MosaicError } from "../errors.ts";
import { describePieceKey, isReadCopy, type PieceKey } from "../storage/piece-key.ts";

export type CopyPhase = "serving" | "draining";

export interface HeldCopy {
  key: PieceKey;
  phase: CopyPhase;
  /** Reads of it begun and not yet ended. */
  inFlight: number;
  leaseUntilMs: number;
}

export class ReadCopyHolds {
  readonly #copies = new Map<string, HeldCopy>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Registers `key` as serving (or renews it) for `leaseMs` from now. */
  hold(key: PieceKey, leaseMs: number): void {
    const held = this.#copies.get(keyOf(key));
    if (held !== undefined) held.leaseUntilMs = this.#now() + leaseMs;
    else
      this.#copies.set(keyOf(key), {
        key,
        phase: "serving",
        inFlight: 0,
        leaseUntilMs: this.#now() + leaseMs,
      });
  }

  /** Renews a registered copy and sets its phase; its reads in flight, or undefined when it is not registered. */
  renew(key: PieceKey, phase: CopyPhase, leaseMs: number): number | undefined {
    const held = this.#copies.get(keyOf(key));
    if (held === undefined) return undefined;
    held.phase = phase;
    held.leaseUntilMs = this.#now() + leaseMs;
    return held.inFlight;
  }

  /** Whether `key` is a registered read copy: the rebuild keeps it (and drops an unregistered one). */
  has(key: PieceKey): boolean {
    return this.#copies.has(keyOf(key));
  }

  /**
   * A read of `key` begins. A placed piece is not counted (returns a no-op);
   * a read copy that is not serving refuses the read, so the reader moves to
   * its next holder. The returned function ends the read (once).
   */
  begin(key: PieceKey): () => void {
    if (!isReadCopy(key)) return () => {};
    const held = this.#copies.get(keyOf(key));
    if (held === undefined || held.phase !== "serving") {
      throw new MosaicError(
        "MOSAIC_ERR_NO_SUCH_CHUNK",
        `read copy ${describePieceKey(key)} ${held === undefined ? "is not held here" : "is draining"}: ask another holder`,
      );
    }
    held.inFlight++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      held.inFlight--;
    };
  }

  /** Unregisters `key` if no read of it is in flight (or `force`); whether it was. */
  release(key: PieceKey, force: boolean): boolean {
    const held = this.#copies.get(keyOf(key));
    if (held === undefined) return true;
    if (held.inFlight > 0 && !force) return false;
    this.#copies.delete(keyOf(key));
    return true;
  }

  /** Unregisters and returns the copies whose lease ran out with no read in flight. */
  takeExpired(): PieceKey[] {
    const now = this.#now();
    const expired: PieceKey[] = [];
    for (const [k, held] of this.#copies) {
      if (held.leaseUntilMs > now || held.inFlight > 0) continue;
      this.#copies.delete(k);
      expired.push(held.key);
    }
    return expired;
  }

  list(): HeldCopy[] {
    return [...this.#copies.values()].map((c) => ({ ...c }));
  }
}

function keyOf(key: PieceKey): string {
  return `${key.volume}/${key.fileId}/${key.version}/${key.stripe}/${key.slot}`;
}
