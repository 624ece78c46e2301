// What the agent tells the operator about its volumes, for StripedVolume
// status: per volume, the pieces and bytes it holds (holdings-scan.ts), and
// its rebuild (node-rebuild.ts). Kept here as a snapshot the ClusterNode
// reporter writes; `onChange` says when the snapshot moved.
//
// Rates, so that the API server hears transitions, never a stream:
//   - the rebuild is sampled every `sampleMs` (an in-memory read); a
//     transition is reported at once, moving figures at most every
//     `progressEveryMs`;
//   - the temporary read copies it holds (load/read-copies.ts) are counted
//     at every sample (an in-memory read) and reported when the count moves;
//   - the store is walked again when the served volume set changes or a
//     rebuild transition moved pieces, or, after writes or deletes changed
//     its total, at most every `rescanMs`; and never sooner after the last
//     walk than 20 times what that walk took, so a large store costs at
//     most 5 % of a core for it.
import type { VolumeHolding } from "@mosaic/operator/api/crds.generated.ts";
import type { RebuildProgress } from "../data/rebuild.ts";
import type { HeldCount } from "../load/read-copy-messages.ts";
import type { Logger } from "../log.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import { reportedHoldings, scanHoldings } from "./holdings-scan.ts";
import { isTransition, type NodeRebuildReport, nodeRebuildOf, rebuildReportDue } from "./node-rebuild.ts";

export interface VolumeReportOptions {
  store: Pick<ChunkStore, "dir" | "volumes" | "usage">;
  /** Names of the volumes the agent serves now. */
  served: () => string[];
  /** The rebuild's progress; undefined when the agent runs without one. */
  rebuild: () => RebuildProgress | undefined;
  /** The read copies held here, per volume and phase; unset: none reported. */
  readCopies?: () => HeldCount[];
  onChange: () => void;
  /** After each walk of the store, what it found (every volume on disk). */
  onScanned?: (scanned: VolumeHolding[]) => void;
  log: Logger;
  sampleMs?: number;
  progressEveryMs?: number;
  rescanMs?: number;
}

const SCAN_COST_FACTOR = 20;

export class VolumeReport {
  readonly #o: VolumeReportOptions;
  readonly #sampleMs: number;
  readonly #progressEveryMs: number;
  readonly #rescanMs: number;
  #holdings: VolumeHolding[] = [];
  #scanned: VolumeHolding[] = [];
  #rebuild: NodeRebuildReport | undefined;
  #rebuildAtMs = Number.NEGATIVE_INFINITY;
  #scanWanted = true;
  #scannedUsedBytes = Number.NaN;
  #scanEndMs = Number.NEGATIVE_INFINITY;
  #scanCostMs = 0;
  #scanning: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: VolumeReportOptions) {
    this.#o = options;
    this.#sampleMs = options.sampleMs ?? 1_000;
    this.#progressEveryMs = options.progressEveryMs ?? 5_000;
    this.#rescanMs = options.rescanMs ?? 10_000;
  }

  get holdings(): VolumeHolding[] {
    return this.#holdings;
  }

  get rebuild(): NodeRebuildReport {
    return this.#rebuild ?? nodeRebuildOf(this.#o.rebuild(), 0);
  }

  /** Takes the first snapshot, then keeps sampling until stop(). */
  async start(): Promise<void> {
    this.#sampleRebuild();
    await this.#scan();
    this.#timer = setInterval(() => this.#tick(), this.#sampleMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#scanning;
  }

  /** The served set changed (a volume applied or deleted): walk the store at the next sample. */
  volumesChanged(): void {
    this.#scanWanted = true;
    this.#publishHoldings();
  }

  #tick(): void {
    if (this.#sampleRebuild()) this.#o.onChange();
    this.#publishHoldings();
    if (this.#scanning !== undefined) return;
    const now = performance.now();
    const usageMoved = this.#o.store.usage().usedBytes !== this.#scannedUsedBytes;
    const due = this.#scanWanted || (usageMoved && now - this.#scanEndMs >= this.#rescanMs);
    if (due && now - this.#scanEndMs >= SCAN_COST_FACTOR * this.#scanCostMs) {
      this.#scanning = this.#scan().finally(() => {
        this.#scanning = undefined;
      });
    }
  }

  /** Returns whether the reported rebuild changed. */
  #sampleRebuild(): boolean {
    const next = nodeRebuildOf(this.#o.rebuild(), this.#rebuild?.settledEpoch ?? 0);
    const now = performance.now();
    if (!rebuildReportDue(next, this.#rebuild, now - this.#rebuildAtMs, this.#progressEveryMs)) return false;
    // A rebuild that started, ended or settled moved pieces: count them again.
    if (isTransition(next, this.#rebuild)) this.#scanWanted = true;
    this.#rebuild = next;
    this.#rebuildAtMs = now;
    return true;
  }

  async #scan(): Promise<void> {
    this.#scanWanted = false;
    const started = performance.now();
    const usedBytes = this.#o.store.usage().usedBytes;
    try {
      this.#scanned = await scanHoldings(this.#o.store);
      this.#scannedUsedBytes = usedBytes;
      this.#o.onScanned?.(this.#scanned);
    } catch (error) {
      this.#scanWanted = true;
      this.#o.log.warn({ err: (error as Error).message }, "volume holdings not counted; next sample retries");
    }
    this.#scanEndMs = performance.now();
    this.#scanCostMs = this.#scanEndMs - started;
    this.#publishHoldings();
  }

  #publishHoldings(): void {
    const next = withReadCopies(
      reportedHoldings(this.#scanned, this.#o.served()),
      this.#o.readCopies?.() ?? [],
    );
    if (JSON.stringify(next) === JSON.stringify(this.#holdings)) return;
    this.#holdings = next;
    this.#o.onChange();
  }
}

/** Each holding with the read copies held of its volume (serving and draining); a volume with none says nothing. */
export function withReadCopies(holdings: VolumeHolding[], copies: readonly HeldCount[]): VolumeHolding[] {
  return holdings.map((h) => {
    const readCopies = copies.reduce((n, c) => (c.volume === h.name ? n + c.count : n), 0);
    return readCopies === 0 ? h : { ...h, readCopies };
  });
}
