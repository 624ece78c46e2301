// The scrubber: walks every piece this node holds (the newest version of each
// file; older versions are garbage awaiting collection), reads it at a paced
// rate so the disks stay free for clients, verifies its checksum (store.get
// does) and repairs a bad one from its stripe's redundancy. One full pass is
// one scrub cycle; start() runs cycles back to back with a pause between.
import { isMosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ChunkHeader, PieceKey } from "../storage/chunk-format.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import { isReadCopy, MANIFEST_STRIPE } from "../storage/piece-key.ts";
import { realClock, type ScrubClock, TokenBucket } from "./scrub-rate.ts";
import { repairPiece, type ScrubContext } from "./scrub-repair.ts";

export type { ScrubClock } from "./scrub-rate.ts";
export type { ScrubContext } from "./scrub-repair.ts";

export type ScrubStore = Pick<
  ChunkStore,
  "volumes" | "files" | "versions" | "pieces" | "stat" | "get" | "put"
>;

export interface ScrubberOptions {
  /** Bytes read per second, all pieces together (Infinity: unpaced). */
  rateBytesPerSecond: number;
  /** Pause between the end of a cycle and the start of the next (start()). */
  pauseMs?: number;
  /** Injected for tests: simulated time. */
  clock?: ScrubClock;
}

export interface ScrubFinding {
  volume: string;
  fileId: string;
  /** The file's name when its manifest was read (repairs read it). */
  file: string | undefined;
  version: number;
  /** MANIFEST_STRIPE (-1) for a manifest copy. */
  stripe: number;
  slot: number;
  reason: string;
}

export interface ScrubReport {
  piecesChecked: number;
  bytesChecked: number;
  /** Every bad piece found; each also appears in exactly one of the lists below. */
  corrupt: ScrubFinding[];
  repaired: ScrubFinding[];
  /** Too few healthy pieces (or no manifest holder answered): reported and kept, never deleted. */
  unrepairable: ScrubFinding[];
  /** Bad, but not the file's current version: garbage, neither repaired nor deleted here. */
  skipped: ScrubFinding[];
  /** False when stop() ended the cycle part way. */
  complete: boolean;
  elapsedMs: number;
}

export const DEFAULT_SCRUB_PAUSE_MS = 60_000;

export class Scrubber {
  readonly #ctx: ScrubContext;
  readonly #store: ScrubStore;
  readonly #log: Logger;
  readonly #clock: ScrubClock;
  readonly #bucket: TokenBucket;
  readonly #pauseMs: number;
  #abort: AbortController | undefined;
  #running: Promise<void> | undefined;

  constructor(ctx: ScrubContext, store: ScrubStore, options: ScrubberOptions) {
    this.#ctx = ctx;
    this.#store = store;
    this.#log = ctx.log.child({ component: "scrubber" });
    this.#clock = options.clock ?? realClock;
    this.#bucket = new TokenBucket({ rateBytesPerSecond: options.rateBytesPerSecond, clock: this.#clock });
    this.#pauseMs = options.pauseMs ?? DEFAULT_SCRUB_PAUSE_MS;
  }

  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Runs cycles back to back until stop(); a second start() while running does nothing. */
  start(): void {
    if (this.#running !== undefined) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.#running = this.#loop(abort.signal);
  }

  /** Ends the cycle in progress after the piece being read; resolves once nothing is left running. */
  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#running;
    this.#running = undefined;
    this.#abort = undefined;
  }

  // A daemon loop: bounded by stop(), not by a count.
  async #loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.runCycle(signal);
      } catch (error) {
        this.#log.error({ err: (error as Error).message }, "scrub cycle failed; next cycle after the pause");
      }
      await this.#clock.sleep(this.#pauseMs, signal);
    }
  }

  /** One pass over every piece held here. */
  async runCycle(signal?: AbortSignal): Promise<ScrubReport> {
    const startMs = this.#clock.now();
    const report: ScrubReport = {
      piecesChecked: 0,
      bytesChecked: 0,
      corrupt: [],
      repaired: [],
      unrepairable: [],
      skipped: [],
      complete: false,
      elapsedMs: 0,
    };
    const stopped = () => signal?.aborted === true;
    walk: for (const volume of await this.#store.volumes()) {
      for (const fileId of await this.#store.files(volume)) {
        const versions = await this.#store.versions(volume, fileId);
        const newest = versions.at(-1);
        if (newest === undefined) continue;
        for (const key of await this.#store.pieces(volume, fileId, newest)) {
          if (stopped()) break walk;
          // A temporary read copy is no redundancy to repair: every read checks it, a bad one fails over.
          if (isReadCopy(key)) continue;
          await this.#check(key, report, signal);
        }
      }
    }
    report.complete = !stopped();
    report.elapsedMs = this.#clock.now() - startMs;
    const { piecesChecked, bytesChecked, complete, elapsedMs } = report;
    this.#log.info(
      {
        piecesChecked,
        bytesChecked,
        corrupt: report.corrupt.length,
        repaired: report.repaired.length,
        unrepairable: report.unrepairable.length,
        skipped: report.skipped.length,
        elapsedMs: Math.round(elapsedMs),
      },
      complete ? "scrub cycle done" : "scrub cycle stopped part way",
    );
    return report;
  }

  async #check(key: PieceKey, report: ScrubReport, signal: AbortSignal | undefined): Promise<void> {
    let header: ChunkHeader | undefined;
    let reason: string | undefined;
    try {
      header = await this.#store.stat(key);
      if (header === undefined) return; // deleted since it was listed
      // Paid for before it is read, so bytes read never run ahead of the rate.
      await this.#bucket.take(header.dataLengthBytes, signal);
      if (signal?.aborted) return;
      await this.#store.get(key);
    } catch (error) {
      if (isMosaicError(error, "MOSAIC_ERR_NO_SUCH_CHUNK")) return;
      // Corrupt, or unreadable (EIO from a failing disk): either way this copy cannot be served.
      reason = (error as Error).message;
    }
    report.piecesChecked++;
    report.bytesChecked += header?.dataLengthBytes ?? 0;
    if (reason !== undefined) await this.#repair(key, reason, report);
  }

  async #repair(key: PieceKey, reason: string, report: ScrubReport): Promise<void> {
    const finding: ScrubFinding = { ...key, file: undefined, reason };
    report.corrupt.push(finding);
    let outcome: Awaited<ReturnType<typeof repairPiece>>;
    try {
      outcome = await repairPiece(this.#ctx, this.#store, key);
    } catch (error) {
      outcome = { kind: "unrepairable", file: undefined, reason: (error as Error).message };
    }
    finding.file = outcome.file;
    const where = {
      volume: key.volume,
      file: outcome.file ?? key.fileId,
      version: key.version,
      stripe: key.stripe === MANIFEST_STRIPE ? "manifest" : key.stripe,
      slot: key.slot,
      reason,
    };
    if (outcome.kind === "repaired") {
      report.repaired.push({ ...finding, reason: `${reason}; ${outcome.how}` });
      this.#ctx.metrics?.scrubFinding("repaired");
      this.#log.warn({ ...where, repair: outcome.how }, "scrub: bad piece repaired");
    } else if (outcome.kind === "unrepairable") {
      report.unrepairable.push({ ...finding, reason: `${reason}; ${outcome.reason}` });
      this.#ctx.metrics?.scrubFinding("unrepairable");
      this.#log.error({ ...where, repair: outcome.reason }, "scrub: bad piece cannot be repaired; kept");
    } else {
      report.skipped.push({ ...finding, reason: `${reason}; ${outcome.reason}` });
      this.#log.warn(
        { ...where, repair: outcome.reason },
        "scrub: bad piece of a stale version; left to garbage collection",
      );
    }
  }
}
