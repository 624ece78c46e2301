// The rebuild (the placement reconciler): each agent makes the pieces it holds
// match the current placement. Pull-based: a node rebuilds what placement
// puts on it and it lacks (missing, or only an older version: stale), and
// drops what placement has moved elsewhere once the new holder has it. So
// the work of a departed node spreads over every node that inherits one of
// its slots, in parallel, and no node ever acts on another's disk.
//
// A pass lists every file's newest manifest (from every node that answers),
// plans from placement alone (core/rebuild-plan.ts), then pulls pieces at a
// bounded rate, pieces that readers asked for first, then drops. It runs at
// start, whenever the map changes (a pass in progress is abandoned and begun
// again: every step is idempotent), soon again while work is left that
// depends on other nodes, and otherwise every `intervalMs`, so it converges
// whatever it missed. Stale versions are never served (readers ask for the
// manifest's version); a pass removes them.
import { type ClusterMap, nodeById } from "../core/cluster-map.ts";
import { encodeManifest, type FileManifest, newestPerFile } from "../core/manifest.ts";
import { manifestHolders } from "../core/ownership.ts";
import { MANIFEST_STRIPE } from "../core/placement.ts";
import { aroundStill, type SlotPlacement, slotPlacements } from "../core/rebuild-plan.ts";
import { pieceLengths, stripeRange } from "../core/stripes.ts";
import { layoutOf } from "../core/volume.ts";
import type { Logger } from "../log.ts";
import type { PieceKey } from "../storage/chunk-format.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import { isReadCopy } from "../storage/piece-key.ts";
import { type DataContext, reachableNode } from "./context.ts";
import type { PieceIO } from "./pieces.ts";
import { realClock, type ScrubClock, TokenBucket } from "./scrub-rate.ts";
import { repairPiece } from "./scrub-repair.ts";

/** Bytes per second an agent's rebuild writes unless told otherwise (AgentConfig, --rebuild-rate). */
export const REBUILD_RATE_DEFAULT_BYTES_PER_SECOND = 64 * 1024 * 1024;

export type RebuildContext = Pick<
  DataContext,
  "self" | "map" | "volume" | "volumes" | "log" | "nodeDown" | "metrics"
> & {
  pieces: Pick<PieceIO, "get" | "manifest" | "manifests" | "stat">;
};

export type RebuildStore = Pick<ChunkStore, "versions" | "pieces" | "put" | "deletePiece" | "deleteVersions">;

/** Rewrites a manifest under the file's write lock (FileService.reviseManifest). */
export interface ManifestReviser {
  reviseManifest(
    expected: FileManifest,
    change: (current: FileManifest) => FileManifest,
  ): Promise<FileManifest | undefined>;
}

export interface RebuilderOptions {
  /** Bytes of pieces rebuilt here per second (Infinity: unpaced). Decoding reads k times as much over the network. */
  rateBytesPerSecond: number;
  /** Pause after a pass that left nothing to do (default 5 min): the pass that catches what no event announced. */
  intervalMs?: number;
  /** Progress is logged this often while pieces are being rebuilt (default 5 s). */
  progressLogMs?: number;
  /** Pieces rebuilt at once (default 4). */
  concurrency?: number;
  /** Whether a read copy (load/read-copies.ts) is registered here: kept if so, dropped as garbage if not. */
  readCopyHeld?: (key: PieceKey) => boolean;
  clock?: ScrubClock;
}

export interface RebuildProgress {
  /** planning: listing manifests and comparing; rebuilding: pulling and dropping pieces. */
  state: "idle" | "planning" | "rebuilding";
  /** Map epoch of the pass in progress, or of the last one. */
  epoch: number;
  piecesTotal: number;
  piecesDone: number;
  piecesFailed: number;
  bytesTotal: number;
  bytesDone: number;
  bytesLeft: number;
  /** Measured over the pass so far. */
  rateBytesPerSecond: number;
  /** At the measured rate; null before anything was measured. */
  etaSeconds: number | null;
  /** The configured limit; null: unlimited. */
  limitBytesPerSecond: number | null;
  /** Pieces removed here: moved elsewhere and safe there, or older versions. */
  piecesDropped: number;
  /** Work the pass could not finish, waiting on other nodes; another pass follows soon. */
  pending: number;
  /** Passes finished since start. */
  passes: number;
  /** The pass's pulls by volume: a failure touches only the volumes with pieces to move. */
  volumes: Record<string, VolumeRebuild>;
}

export interface VolumeRebuild {
  bytesTotal: number;
  bytesLeft: number;
}

/** A pass asks every node for its manifests: every few minutes is enough to catch what no event announced. */
export const DEFAULT_REBUILD_INTERVAL_MS = 300_000;
const RETRY_FIRST_MS = 500;
/** Reads that miss a piece wake an idle rebuild, but not more often than this. */
const WAKE_GAP_MS = 10_000;
const WANTED_MAX = 1_024;

interface Pull {
  manifest: FileManifest;
  key: PieceKey;
  bytes: number;
  copyFrom: string[];
}

interface Drop {
  key: PieceKey;
  /** The node readers find it on; undefined: garbage no placement names (removed at once). */
  holder: string | undefined;
}

interface Revision {
  manifest: FileManifest;
  /** Slots that go home: each target must hold its piece before the manifest stops naming the node. */
  home: SlotPlacement[];
  around: string[];
}

class PassWork {
  readonly pulls = new Map<string, Pull[]>();
  readonly drops: Drop[] = [];
  readonly revisions: Revision[] = [];
  /** Files of which this node holds older versions than the manifest's: dropped once the current one is here. */
  readonly stale: { manifest: FileManifest; versions: number[] }[] = [];
  /** Files a piece of which could not be pulled in this pass. */
  readonly failed = new Set<string>();
  pending = 0;
  /** Pulls not yet taken by a worker. */
  left = 0;

  pull(task: Pull): void {
    this.left++;
    const file = fileKey(task.key);
    const list = this.pulls.get(file);
    if (list === undefined) this.pulls.set(file, [task]);
    else list.push(task);
  }

  /** The next piece to pull: of a file readers are asking for, if any, else in order. */
  next(wanted: Set<string>): Pull | undefined {
    const file = this.#nextFile(wanted);
    return file === undefined ? undefined : this.#shift(file);
  }

  /** What next() would return, left in place. */
  peek(wanted: Set<string>): Pull | undefined {
    const file = this.#nextFile(wanted);
    return file === undefined ? undefined : this.pulls.get(file)?.[0];
  }

  #nextFile(wanted: Set<string>): string | undefined {
    for (const file of wanted) {
      if (this.pulls.has(file)) return file;
      wanted.delete(file);
    }
    const first = this.pulls.keys().next();
    return first.done ? undefined : first.value;
  }

  #shift(file: string): Pull | undefined {
    const list = this.pulls.get(file);
    const task = list?.shift();
    if (list !== undefined && list.length === 0) this.pulls.delete(file);
    if (task !== undefined) this.left--;
    return task;
  }
}

export class Rebuilder {
  readonly #ctx: RebuildContext;
  readonly #store: RebuildStore;
  readonly #files: ManifestReviser;
  readonly #log: Logger;
  readonly #clock: ScrubClock;
  readonly #bucket: TokenBucket;
  readonly #limit: number;
  readonly #intervalMs: number;
  readonly #progressLogMs: number;
  readonly #concurrency: number;
  readonly #readCopyHeld: ((key: PieceKey) => boolean) | undefined;
  /** Files readers found a piece missing of: pulled first. */
  readonly #wanted = new Set<string>();
  #progress: RebuildProgress;
  /** The map of the last pass that left nothing pending: where pieces sat, so a copy may still be there. */
  #settledMap: ClusterMap | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #again = false;
  #passAbort: AbortController | undefined;
  #sleepAbort: AbortController | undefined;
  #lastPassAtMs = Number.NEGATIVE_INFINITY;
  #pullStartMs = 0;

  constructor(ctx: RebuildContext, store: RebuildStore, files: ManifestReviser, options: RebuilderOptions) {
    this.#ctx = ctx;
    this.#store = store;
    this.#files = files;
    this.#log = ctx.log.child({ component: "rebuild" });
    this.#clock = options.clock ?? realClock;
    this.#limit = options.rateBytesPerSecond;
    this.#bucket = new TokenBucket({ rateBytesPerSecond: options.rateBytesPerSecond, clock: this.#clock });
    this.#intervalMs = options.intervalMs ?? DEFAULT_REBUILD_INTERVAL_MS;
    this.#progressLogMs = options.progressLogMs ?? 5_000;
    this.#concurrency = options.concurrency ?? 4;
    this.#readCopyHeld = options.readCopyHeld;
    this.#progress = this.#fresh("idle", ctx.map().epoch);
    this.#progress.passes = 0;
  }

  /** A copy of where the rebuild stands. */
  progress(): RebuildProgress {
    const p = { ...this.#progress };
    p.volumes = Object.fromEntries(Object.entries(p.volumes).map(([name, v]) => [name, { ...v }]));
    if (p.state === "rebuilding") {
      const seconds = (this.#clock.now() - this.#pullStartMs) / 1000;
      p.rateBytesPerSecond = seconds > 0 ? Math.round(p.bytesDone / seconds) : 0;
      p.etaSeconds = p.rateBytesPerSecond > 0 ? Math.ceil(p.bytesLeft / p.rateBytesPerSecond) : null;
    }
    return p;
  }

  /** Runs passes until stop(): one now, then on every nudge and after each pause. */
  start(): void {
    if (this.#running !== undefined) return;
    this.#stopped = false;
    this.#running = this.#loop();
  }

  /** Something changed (a new map): the pass in progress is abandoned and a new one begins at once. */
  nudge(reason: string): void {
    this.#log.debug({ reason }, "rebuild nudged");
    this.#again = true;
    this.#passAbort?.abort();
    this.#sleepAbort?.abort();
  }

  /** A read found `key` missing here: its file is pulled first, and an idle rebuild wakes (at most every few seconds). */
  want(key: PieceKey): void {
    if (this.#wanted.size >= WANTED_MAX) return;
    this.#wanted.add(fileKey(key));
    if (this.#progress.state === "idle" && this.#clock.now() - this.#lastPassAtMs >= WAKE_GAP_MS) {
      this.#sleepAbort?.abort();
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#passAbort?.abort();
    this.#sleepAbort?.abort();
    await this.#running;
    this.#running = undefined;
  }

  // A daemon loop: bounded by stop(), not by a count. Sleeps (never spins) between passes.
  async #loop(): Promise<void> {
    let retryMs = RETRY_FIRST_MS;
    // The first pass runs at once: peers still starting refuse it, and the
    // client calls that follow wait out gRPC's reconnect backoff (rpc/reconnect.ts).
    while (!this.#stopped) {
      this.#again = false;
      const abort = new AbortController();
      this.#passAbort = abort;
      let pending = 0;
      try {
        pending = await this.#pass(abort.signal);
      } catch (error) {
        pending = 1;
        this.#log.error({ err: (error as Error).message }, "rebuild pass failed; trying again soon");
      }
      this.#progress.state = "idle";
      if (this.#stopped) break;
      if (this.#again) continue;
      const pauseMs = pending > 0 ? retryMs : this.#intervalMs;
      retryMs = pending > 0 ? Math.min(retryMs * 2, this.#intervalMs) : RETRY_FIRST_MS;
      const sleep = new AbortController();
      this.#sleepAbort = sleep;
      await this.#clock.sleep(pauseMs, sleep.signal);
    }
  }

  /** One pass over every file; returns the work left pending. */
  async #pass(signal: AbortSignal): Promise<number> {
    const map = this.#ctx.map();
    this.#lastPassAtMs = this.#clock.now();
    const passes = this.#progress.passes;
    this.#progress = { ...this.#fresh("planning", map.epoch), passes };
    // Not in the map (yet): nothing is placed here, and nothing here may be judged misplaced.
    if (nodeById(map, this.#ctx.self) === undefined) return 0;
    const started = this.#clock.now();
    const work = new PassWork();
    for (const spec of this.#ctx.volumes()) {
      for (const manifest of await this.#manifests(spec.name, map)) {
        if (signal.aborted) return 0;
        try {
          await this.#plan(manifest, map, work);
        } catch (error) {
          work.pending++;
          this.#log.warn(
            { volume: manifest.volume, file: manifest.name, err: (error as Error).message },
            "rebuild: file not planned; next pass",
          );
        }
      }
    }
    let piecesTotal = 0;
    let bytesTotal = 0;
    const volumes: Record<string, VolumeRebuild> = {};
    for (const list of work.pulls.values()) {
      piecesTotal += list.length;
      for (const task of list) {
        bytesTotal += task.bytes;
        const v = volumes[task.key.volume] ?? { bytesTotal: 0, bytesLeft: 0 };
        v.bytesTotal += task.bytes;
        v.bytesLeft += task.bytes;
        volumes[task.key.volume] = v;
      }
    }
    Object.assign(this.#progress, {
      state: "rebuilding",
      piecesTotal,
      bytesTotal,
      bytesLeft: bytesTotal,
      volumes,
    });
    if (piecesTotal > 0) {
      this.#log.info(
        {
          epoch: map.epoch,
          pieces: piecesTotal,
          bytes: bytesTotal,
          limitBytesPerSecond: this.#progress.limitBytesPerSecond,
        },
        "rebuild started",
      );
    }
    await this.#pullAll(work, signal);
    if (!signal.aborted) await this.#dropStale(work);
    if (!signal.aborted) await this.#dropAll(work);
    if (!signal.aborted) await this.#reviseAll(work, map);
    if (signal.aborted) return 0;
    const p = this.#progress;
    p.pending = work.pending + p.piecesFailed;
    p.passes++;
    // The first settled pass under a new map is news even with nothing to move: this node has caught up.
    const caughtUp = p.pending === 0 && this.#settledMap?.epoch !== map.epoch;
    if (p.pending === 0) this.#settledMap = map;
    const elapsedMs = Math.round(this.#clock.now() - started);
    const summary = {
      epoch: map.epoch,
      piecesRebuilt: p.piecesDone,
      piecesFailed: p.piecesFailed,
      piecesDropped: p.piecesDropped,
      bytes: p.bytesDone,
      MBps: Math.round(p.bytesDone / 1e6 / Math.max(elapsedMs / 1000, 1e-3)),
      pending: p.pending,
      elapsedMs,
    };
    if (piecesTotal > 0 || p.piecesDropped > 0 || p.pending > 0 || caughtUp)
      this.#log.info(summary, "rebuild pass done");
    else this.#log.debug(summary, "rebuild pass: nothing to do");
    return p.pending;
  }

  /** Every file's newest manifest, tombstones included, from every node that answers. */
  async #manifests(volume: string, map: ClusterMap): Promise<FileManifest[]> {
    const nodes = map.nodes.map((n) => n.id).filter((node) => this.#back(map, node));
    const results = await Promise.allSettled(nodes.map((node) => this.#ctx.pieces.manifests(node, volume)));
    return newestPerFile(results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : [])));
  }

  /** This node, or one up in the map and not known down: worth asking, and a valid place for a piece. */
  #back(map: ClusterMap, node: string): boolean {
    return node === this.#ctx.self || reachableNode(this.#ctx, map, node);
  }

  /** Whether `node` answers that it holds `key` (false when it cannot be asked). */
  #holds(node: string, key: PieceKey): Promise<boolean> {
    return this.#ctx.pieces.stat(node, key).then(
      (header) => header !== undefined,
      () => false,
    );
  }

  /** Compares what this node holds of one file with where its pieces belong. */
  async #plan(manifest: FileManifest, map: ClusterMap, work: PassWork): Promise<void> {
    const self = this.#ctx.self;
    const { volume, fileId, version } = manifest;
    // Older versions are garbage once a newer manifest exists (it is written last); never served.
    const older = (await this.#store.versions(volume, fileId)).filter((v) => v < version);
    if (older.length > 0) work.stale.push({ manifest, versions: older });
    const pieces = await this.#store.pieces(volume, fileId, version);
    // Read copies are no redundancy: never counted, kept only while registered (a lapsed one is an orphan).
    const held = new Set(pieces.filter((k) => !isReadCopy(k)).map((k) => slotKey(k.stripe, k.slot)));
    for (const key of pieces)
      if (isReadCopy(key) && this.#readCopyHeld?.(key) !== true) work.drops.push({ key, holder: undefined });
    const back = (node: string) => this.#back(map, node);
    const usable = (node: string | undefined): node is string =>
      node !== undefined && node !== self && this.#back(map, node);
    const home: SlotPlacement[] = [];
    const layout = layoutOf(manifest);
    let lengths = { stripe: Number.NaN, bytes: [] as number[] };
    const lengthOf = (stripe: number, slot: number) => {
      if (lengths.stripe !== stripe) lengths = { stripe, bytes: this.#lengths(manifest, layout, stripe) };
      return lengths.bytes[slot] ?? 0;
    };
    for (const p of slotPlacements(manifest, map, { back, previous: this.#settledMap })) {
      const key = { volume, fileId, version, stripe: p.stripe, slot: p.slot };
      const here = held.delete(slotKey(p.stripe, p.slot));
      const mine = p.read === self || p.target === self;
      if (p.target !== p.read && p.stripe !== MANIFEST_STRIPE) home.push(p);
      if (mine && !here) {
        const copyFrom = [p.read, p.previous].filter(usable);
        work.pull({ manifest, key, bytes: lengthOf(p.stripe, p.slot), copyFrom });
      } else if (here && !mine) {
        work.drops.push({ key, holder: p.read });
      } else if (here && p.target !== self) {
        work.pending++; // readers still look here; dropped once the owner's manifest sends them home
      }
    }
    // Pieces of this version that no slot names (a write's re-placed leftovers): garbage.
    for (const rest of held) {
      const [stripe, slot] = rest.split("/").map(Number) as [number, number];
      work.drops.push({ key: { volume, fileId, version, stripe, slot }, holder: undefined });
    }
    const around = aroundStill(manifest, back);
    if (around.length < (manifest.writtenAround?.length ?? 0) && this.#owns(manifest, map)) {
      work.revisions.push({ manifest, home, around });
    }
  }

  #lengths(manifest: FileManifest, layout: ReturnType<typeof layoutOf>, stripe: number): number[] {
    if (stripe === MANIFEST_STRIPE) {
      return new Array(layout.redundantPieces + 1).fill(encodeManifest(manifest).length);
    }
    const { start, end } = stripeRange(manifest.sizeBytes, layout, stripe);
    return pieceLengths(end - start, layout);
  }

  /** Whether this node coordinates the file's writes: its first manifest holder that is up and not known down. */
  #owns(manifest: FileManifest, map: ClusterMap): boolean {
    const holders = manifestHolders(map, manifest.volume, manifest.fileId, manifest.redundancy);
    return holders.find((node) => this.#back(map, node)) === this.#ctx.self;
  }

  async #pullAll(work: PassWork, signal: AbortSignal): Promise<void> {
    if (work.pulls.size === 0) return;
    this.#pullStartMs = this.#clock.now();
    const timer = setInterval(() => this.#logProgress(), this.#progressLogMs);
    timer.unref();
    try {
      let paying = 0;
      const worker = async () => {
        for (;;) {
          // Paid for before it is rebuilt, so bytes written never run ahead of the rate; and
          // paid before it is chosen, so a piece readers ask for meanwhile goes next. A worker
          // pays only while pieces remain for every worker paying: none pays for nothing.
          const head = work.peek(this.#wanted);
          if (head === undefined || work.left <= paying) return;
          paying++;
          await this.#bucket.take(head.bytes, signal).finally(() => paying--);
          const task = signal.aborted ? undefined : work.next(this.#wanted);
          if (task === undefined) return;
          if (task.bytes > head.bytes) await this.#bucket.take(task.bytes - head.bytes, signal);
          await this.#pullOne(task, work);
        }
      };
      await Promise.all(Array.from({ length: this.#concurrency }, worker));
    } finally {
      clearInterval(timer);
      this.#wanted.clear();
    }
  }

  async #pullOne(task: Pull, work: PassWork): Promise<void> {
    const p = this.#progress;
    const { key, manifest } = task;
    let outcome: Awaited<ReturnType<typeof repairPiece>>;
    try {
      outcome = await repairPiece(this.#ctx, this.#store, key, {
        manifest,
        target: this.#ctx.self,
        copyFrom: task.copyFrom,
      });
    } catch (error) {
      outcome = { kind: "unrepairable", file: manifest.name, reason: (error as Error).message };
    }
    p.bytesLeft -= task.bytes;
    const volume = p.volumes[key.volume];
    if (volume !== undefined) volume.bytesLeft -= task.bytes;
    const where = {
      volume: key.volume,
      file: manifest.name,
      version: key.version,
      stripe: key.stripe === MANIFEST_STRIPE ? "manifest" : key.stripe,
      slot: key.slot,
    };
    if (outcome.kind === "repaired") {
      p.piecesDone++;
      p.bytesDone += task.bytes;
      this.#ctx.metrics?.rebuildPiece("rebuilt", task.bytes);
      this.#log.debug({ ...where, how: outcome.how }, "rebuild: piece rebuilt");
    } else if (outcome.kind === "unrepairable") {
      p.piecesFailed++;
      work.failed.add(fileKey(key));
      this.#ctx.metrics?.rebuildPiece("failed", task.bytes);
      this.#log.warn({ ...where, reason: outcome.reason }, "rebuild: piece not rebuilt; next pass");
    } else {
      p.piecesTotal--; // the file changed meanwhile: the next pass sees its new version
      p.bytesTotal -= task.bytes;
    }
  }

  /**
   * Drops the older versions of files whose current version this node now
   * holds in full. Not before: a manifest whose pieces cannot be found (a
   * write that failed half way) must not cost the version before it.
   */
  async #dropStale(work: PassWork): Promise<void> {
    for (const { manifest, versions } of work.stale) {
      const { volume, fileId, version } = manifest;
      if (work.failed.has(fileKey(manifest))) continue;
      for (const v of versions)
        this.#progress.piecesDropped += (await this.#store.pieces(volume, fileId, v)).length;
      await this.#store.deleteVersions(volume, fileId, (v) => v < version);
      this.#log.info({ volume, file: manifest.name, versions, version }, "rebuild: stale versions dropped");
    }
  }

  /** Removes pieces placement moved elsewhere, each only once its holder has it: redundancy never drops. */
  async #dropAll(work: PassWork): Promise<void> {
    for (const { key, holder } of work.drops) {
      if (holder !== undefined) {
        if (!(await this.#holds(holder, key))) {
          work.pending++;
          continue;
        }
      }
      await this.#store.deletePiece(key);
      this.#progress.piecesDropped++;
      this.#log.debug(
        { volume: key.volume, fileId: key.fileId, stripe: key.stripe, slot: key.slot, holder },
        "rebuild: piece moved away dropped",
      );
    }
  }

  /**
   * As the file's owner: once every slot of a node that is back sits at home,
   * the manifest stops naming it, so readers look there and the substitutes'
   * copies become garbage their nodes drop.
   */
  async #reviseAll(work: PassWork, map: ClusterMap): Promise<void> {
    for (const { manifest, home, around } of work.revisions) {
      const key = (p: SlotPlacement) => ({ ...pieceBase(manifest), stripe: p.stripe, slot: p.slot });
      const present = await Promise.all(home.map((p) => this.#holds(p.target, key(p))));
      if (!present.every(Boolean)) {
        work.pending++;
        continue;
      }
      try {
        const revised = await this.#files.reviseManifest(manifest, (current) => {
          const { writtenAround: _was, ...rest } = current;
          return around.length > 0 ? { ...rest, writtenAround: around } : rest;
        });
        if (revised === undefined) work.pending++;
        else {
          this.#log.info(
            { volume: manifest.volume, file: manifest.name, epoch: map.epoch, writtenAround: around },
            "rebuild: pieces home again; manifest revised",
          );
        }
      } catch (error) {
        work.pending++;
        this.#log.warn(
          { volume: manifest.volume, file: manifest.name, err: (error as Error).message },
          "rebuild: manifest not revised; next pass",
        );
      }
    }
  }

  #logProgress(): void {
    const p = this.progress();
    this.#log.info(
      {
        epoch: p.epoch,
        piecesLeft: p.piecesTotal - p.piecesDone - p.piecesFailed,
        bytesLeft: p.bytesLeft,
        MBps: Math.round(p.rateBytesPerSecond / 1e5) / 10,
        etaSeconds: p.etaSeconds,
      },
      "rebuild progress",
    );
  }

  #fresh(state: RebuildProgress["state"], epoch: number): RebuildProgress {
    const limit = Number.isFinite(this.#limit) ? this.#limit : null;
    return freshProgress(state, epoch, limit, this.#progress?.passes ?? 0);
  }
}

function pieceBase(m: FileManifest): { volume: string; fileId: string; version: number } {
  return { volume: m.volume, fileId: m.fileId, version: m.version };
}

function fileKey(key: Pick<PieceKey, "volume" | "fileId">): string {
  return `${key.volume}/${key.fileId}`;
}

function slotKey(stripe: number, slot: number): string {
  return `${stripe}/${slot}`;
}

/** Progress before anything of a pass is known: nothing counted yet. */
export function freshProgress(
  state: RebuildProgress["state"],
  epoch: number,
  limitBytesPerSecond: number | null,
  passes = 0,
): RebuildProgress {
  return {
    state,
    epoch,
    piecesTotal: 0,
    piecesDone: 0,
    piecesFailed: 0,
    bytesTotal: 0,
    bytesDone: 0,
    bytesLeft: 0,
    rateBytesPerSecond: 0,
    etaSeconds: null,
    limitBytesPerSecond,
    piecesDropped: 0,
    pending: 0,
    passes,
    volumes: {},
  };
}
