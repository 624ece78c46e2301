// Judges the agreed maps against the World: no node is marked down or out
// unless someone really lost it (one NIC down never is that), nor out before
// the grace; an agent's epoch only grows; after the faults heal every live
// node holds one map, with every live node up in it (or out), within a bound;
// and in a settled cluster a crash reaches every map within the budget.
// "Healed" means every link works again; a node may stay crashed, and must
// then be down or out in the converged map.
import type { ClusterMap, NodeState } from "../src/core/cluster-map.ts";
import type { MapEvent } from "../src/membership/agreement.ts";
import type { AgreementConfig, DetectorConfig } from "../src/membership/config.ts";
import { ringOrder, successors } from "../src/membership/ring.ts";
import type { CheckerBounds } from "./checker.ts";
import type { World } from "./world.ts";

export interface MapCore {
  readonly map: ClusterMap;
  readonly agreement: { readonly digest: string };
}

export interface MapBounds {
  /** A proposal marking a node down (or out) must come within this long of someone really losing it. */
  evidenceMs: number;
  /** A proposal marking a node up must come within this long of it being alive. */
  lifeMs: number;
  /** A suspicion reaches the proposer (a later heartbeat of the other watcher) within this long. */
  confirmMs: number;
  /**
   * A proposal reaches every live node within this long: the broadcast, or
   * where loss took both of its datagrams, the repair that the node's next
   * heartbeats to its successors bring back (a lossy path delivers one map
   * datagram in k+1).
   */
  spreadMs: number;
  /** After the last fault heals, every live node holds the same (right) map within this long. */
  convergeMs: number;
}

export function mapBounds(
  config: DetectorConfig,
  agreement: AgreementConfig,
  delayMsMax: number,
  bounds: CheckerBounds,
): MapBounds {
  const hopMs = delayMsMax + config.tickMs;
  // The later watcher's suspicion rides its next heartbeat to the proposer, and k of those may be lost.
  const confirmMs = (config.toleratedLosses + 1) * config.heartbeatIntervalMs + 2 * hopMs;
  return {
    // The silence behind a suspicion ends at most a heartbeat gap before the detector says down,
    // and the other watcher's word is at most a voice lifetime (suspectAfterMs) plus a hop old.
    evidenceMs: bounds.gapMs + config.suspectAfterMs + 2 * hopMs,
    // lastAlive is sampled once per tick, so the last sign of life may be a tick older than it was.
    lifeMs: hopMs + config.tickMs,
    confirmMs,
    spreadMs:
      hopMs +
      2 * (config.toleratedLosses + 1) * (config.heartbeatIntervalMs + agreement.mapPushIntervalMs + hopMs),
    // A live node down in some map is heard within a gap, a node still dead is confirmed down
    // within a node-down time and a confirmation; racing proposals then settle in a few rounds
    // of pushes (mapPushIntervalMs each), and an out node's map comes back with its next heartbeat.
    convergeMs: bounds.gapMs + config.nodeDownAfterMs + confirmMs + 8 * (agreement.mapPushIntervalMs + hopMs),
  };
}

export interface CrashFigure {
  node: string;
  /** Crash to the first proposal marking it down. */
  downMs: number;
  /** Crash to the last live node adopting a map with it down (or out). */
  everywhereMs: number;
  /** Down proposal to out proposal, when it stayed dead that long. */
  outAfterDownMs?: number;
}

interface Watch {
  node: string;
  crashMs: number;
  downMs?: number;
  everywhereMs?: number;
  outMs?: number;
  /** The cluster was settled at the crash and stayed otherwise healthy: the budget applies. */
  clean: boolean;
  /** ... and stayed so until the node was out: the grace applies. */
  cleanUntilOut: boolean;
}

const VIOLATIONS_MAX = 10;

export class MapChecker {
  readonly bounds: MapBounds;
  readonly violations: string[] = [];
  readonly crashes: CrashFigure[] = [];
  /** Time from the last fault healing to every live node holding one map. */
  readonly convergeMs: number[] = [];
  readonly #world: World;
  readonly #nodes: readonly string[];
  readonly #detector: DetectorConfig;
  readonly #agreement: AgreementConfig;
  readonly #lastLostMs = new Map<string, number>();
  readonly #lastAliveMs = new Map<string, number>();
  /** Per node: since when each node has been down in its map (the checker's own bookkeeping). */
  readonly #downSince = new Map<string, Map<string, number>>();
  readonly #epochs = new Map<string, number>();
  readonly #watches: Watch[] = [];
  #healedSinceMs: number | undefined;
  #converged = false;

  constructor(
    nodes: readonly string[],
    detector: DetectorConfig,
    agreement: AgreementConfig,
    delayMsMax: number,
    bounds: CheckerBounds,
    world: World,
  ) {
    this.#nodes = nodes;
    this.#detector = detector;
    this.#agreement = agreement;
    this.#world = world;
    this.bounds = mapBounds(detector, agreement, delayMsMax, bounds);
  }

  /** The budget for a crash in a settled cluster to be in a proposal. */
  get downBudgetMs(): number {
    const b = this.bounds;
    return this.#detector.nodeDownAfterMs + b.lifeMs + b.confirmMs;
  }

  /** A node (re)started with the operator's map: its epoch starts over. */
  forget(node: string): void {
    this.#downSince.delete(node);
    this.#epochs.delete(node);
  }

  /** The World at nowMs, after this tick's faults. */
  observe(nowMs: number): void {
    for (const node of this.#nodes) {
      if (this.#world.lostBySomeone(node, this.#nodes)) this.#lastLostMs.set(node, nowMs);
      if (this.#world.alive(node)) this.#lastAliveMs.set(node, nowMs);
    }
    for (const w of this.#watches) {
      if (!w.cleanUntilOut || w.outMs !== undefined || this.#otherwiseHealthy(w.node)) continue;
      w.cleanUntilOut = false;
      if (w.downMs === undefined) w.clean = false;
    }
    if (this.#world.linksHealed()) this.#healedSinceMs ??= nowMs;
    else this.#unsettle();
  }

  /** Any fault starts the wait for convergence over. */
  onFault(): void {
    this.#unsettle();
  }

  #unsettle(): void {
    this.#healedSinceMs = undefined;
    this.#converged = false;
  }

  /** A node crashes at nowMs (call before removing its core): measured, and held to the budget if the cluster was settled. */
  onCrash(node: string, nowMs: number, cores: ReadonlyMap<string, MapCore>): void {
    // A map never shows half the members down (agreement.ts): two nodes cannot mark each other.
    const majority = (this.#nodes.length - 1) * 2 > this.#nodes.length;
    const settled = majority && this.#settled(cores) && this.#otherwiseHealthy(node);
    this.#watches.push({ node, crashMs: nowMs, clean: settled, cleanUntilOut: settled });
  }

  onRestart(node: string): void {
    for (const w of this.#watches)
      if (w.node === node && w.outMs === undefined) {
        w.cleanUntilOut = false;
        if (w.downMs === undefined) w.clean = false;
      }
    this.forget(node);
  }

  onEvents(node: string, events: readonly { kind: string }[]): void {
    for (const e of events) if (e.kind === "map") this.#onMap(node, e as MapEvent);
  }

  /** After every tick: convergence once the World has healed, and the crash budgets. */
  check(nowMs: number, cores: ReadonlyMap<string, MapCore>): void {
    for (const w of this.#watches) {
      if (w.downMs !== undefined && w.everywhereMs === undefined) {
        const all = [...cores.values()].every((c) => {
          const s = stateIn(c.map, w.node);
          return s === "down" || s === "out";
        });
        if (all) w.everywhereMs = nowMs;
      }
      if (!w.clean) continue;
      if (w.downMs === undefined && nowMs - w.crashMs > this.downBudgetMs)
        this.#fail(nowMs, `${w.node} crashed at ${w.crashMs} in a settled cluster but no map marks it down`);
      if (
        w.cleanUntilOut &&
        w.downMs !== undefined &&
        w.everywhereMs === undefined &&
        nowMs - w.crashMs > this.downBudgetMs + this.bounds.spreadMs
      )
        this.#fail(nowMs, `${w.node} crashed at ${w.crashMs}: not every live node's map has it down`);
      const outDueMs =
        (w.downMs ?? Number.POSITIVE_INFINITY) + this.#agreement.outGraceMs + this.bounds.confirmMs;
      if (w.cleanUntilOut && w.outMs === undefined && nowMs > outDueMs)
        this.#fail(
          nowMs,
          `${w.node} down since ${w.downMs} but not out after the ${this.#agreement.outGraceMs} ms grace`,
        );
    }
    if (this.#healedSinceMs === undefined || this.#converged) return;
    if (this.#agreeing(cores)) {
      this.#converged = true;
      this.convergeMs.push(nowMs - this.#healedSinceMs);
    } else if (nowMs - this.#healedSinceMs > this.bounds.convergeMs) {
      this.#fail(
        nowMs,
        `maps not converged ${this.bounds.convergeMs} ms after faults healed: ${this.#describe(cores)}`,
      );
      this.#converged = true;
    }
  }

  /** At the end of a run: the World must have healed, and the maps converged. */
  finish(nowMs: number, cores: ReadonlyMap<string, MapCore>): void {
    if (this.#healedSinceMs === undefined) this.#fail(nowMs, "faults never healed: the run is too short");
    else if (!this.#agreeing(cores)) this.#fail(nowMs, `maps diverged again: ${this.#describe(cores)}`);
    for (const w of this.#watches) {
      if (w.downMs === undefined || w.everywhereMs === undefined) continue;
      const figure: CrashFigure = {
        node: w.node,
        downMs: w.downMs - w.crashMs,
        everywhereMs: w.everywhereMs - w.crashMs,
      };
      if (w.outMs !== undefined && w.cleanUntilOut) figure.outAfterDownMs = w.outMs - w.downMs;
      if (w.clean) this.crashes.push(figure);
    }
  }

  get failed(): boolean {
    return this.violations.length > 0;
  }

  #onMap(node: string, e: MapEvent): void {
    const previous = this.#epochs.get(node);
    if (previous !== undefined && e.map.epoch <= previous)
      this.#fail(e.atMs, `${node} went from epoch ${previous} to ${e.map.epoch} (${e.how})`);
    this.#epochs.set(node, e.map.epoch);
    const since = this.#downSince.get(node) ?? new Map<string, number>();
    this.#downSince.set(node, since);
    if (e.how === "proposed") this.#judgeProposal(node, e, since);
    for (const c of e.changed) {
      if (c.to === "down") since.set(c.id, e.atMs);
      else if (c.to === "up") since.delete(c.id);
    }
    if (e.how === "proposed") this.#measure(e);
  }

  #judgeProposal(node: string, e: MapEvent, since: ReadonlyMap<string, number>): void {
    for (const c of e.changed) {
      const lostMs = this.#lastLostMs.get(c.id) ?? Number.NEGATIVE_INFINITY;
      if ((c.to === "down" || c.to === "out") && lostMs < e.atMs - this.bounds.evidenceMs)
        this.#fail(
          e.atMs,
          `${node} proposed ${c.id} ${c.to} at epoch ${e.map.epoch}, but every live node could reach it on a channel since ${lostMs}`,
        );
      if (c.to === "out") {
        const downMs = since.get(c.id);
        if (downMs === undefined || e.atMs - downMs < this.#agreement.outGraceMs)
          this.#fail(e.atMs, `${node} proposed ${c.id} out, down only since ${downMs}: before the grace`);
      }
      if (
        c.to === "up" &&
        (this.#lastAliveMs.get(c.id) ?? Number.NEGATIVE_INFINITY) < e.atMs - this.bounds.lifeMs
      )
        this.#fail(e.atMs, `${node} proposed ${c.id} up, but it is dead`);
    }
  }

  /** A proposal: when a watched crash first went down, and out. */
  #measure(e: MapEvent): void {
    for (const w of this.#watches) {
      const state = stateIn(e.map, w.node);
      if (w.downMs === undefined && (state === "down" || state === "out")) w.downMs = e.atMs;
      if (w.outMs === undefined && state === "out") w.outMs = e.atMs;
    }
  }

  /**
   * Every live node (members and out ones alike) holds one map, every live
   * node is up or out in it, and every dead one down or out.
   */
  #agreeing(cores: ReadonlyMap<string, MapCore>): boolean {
    let first: MapCore | undefined;
    for (const core of cores.values()) {
      first ??= core;
      if (core.map.epoch !== first.map.epoch || core.agreement.digest !== first.agreement.digest)
        return false;
    }
    if (first === undefined) return true;
    const map = first.map;
    const up = this.#nodes.filter((id) => stateIn(map, id) === "up").length;
    // A dead node may stay up only where marking it down would leave half the members or fewer up,
    // or where too few of its watchers live to confirm it (agreement.ts: two, of those up in the map).
    const deadMayBeUp = (up - 1) * 2 <= this.#nodes.length;
    const ring = ringOrder(map.nodes.filter((n) => n.state !== "out").map((n) => n.id));
    const unconfirmable = (id: string) => {
      const live = successors(ring, id, this.#detector.toleratedLosses).filter(
        (w) => stateIn(map, w) === "up",
      );
      return live.filter((w) => cores.has(w)).length < Math.min(2, live.length);
    };
    return this.#nodes.every((id) => {
      const state = stateIn(map, id);
      if (cores.has(id)) return state !== "down";
      return state !== "up" || deadMayBeUp || unconfirmable(id);
    });
  }

  /** All live nodes agree and see every live node up: a crash now is measured against the budget. */
  #settled(cores: ReadonlyMap<string, MapCore>): boolean {
    if (!this.#agreeing(cores)) return false;
    const first = cores.values().next().value;
    return first === undefined || [...cores.keys()].every((id) => stateIn(first.map, id) === "up");
  }

  /** Every node but `node` runs and reaches every other on some channel. */
  #otherwiseHealthy(node: string): boolean {
    return this.#world.connected(node) && this.#nodes.every((n) => n === node || this.#world.alive(n));
  }

  #describe(cores: ReadonlyMap<string, MapCore>): string {
    return [...cores]
      .map(([id, c]) => {
        const states = c.map.nodes
          .filter((n) => n.state !== "up")
          .map((n) => `${n.id}:${n.state}`)
          .join(",");
        return `${id}@${c.map.epoch}/${c.agreement.digest.slice(0, 4)}[${states}]`;
      })
      .join(" ");
  }

  #fail(nowMs: number, what: string): void {
    if (this.violations.length < VIOLATIONS_MAX) this.violations.push(`t=${nowMs}ms ${what}`);
  }
}

const indexes = new WeakMap<ClusterMap, Map<string, NodeState>>();

export function stateIn(map: ClusterMap, id: string): NodeState | undefined {
  let index = indexes.get(map);
  if (index === undefined) {
    index = new Map(map.nodes.map((n) => [n.id, n.state]));
    indexes.set(map, index);
  }
  return index.get(id);
}
