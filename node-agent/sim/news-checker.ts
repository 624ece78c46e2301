// Judges every node's route to its peers (MembershipCore.route: the watchers'
// channel news for a peer it does not watch) against the World:
// - moved: a node whose NIC on channel X is really down while its Y works is
//   routed on Y by every live node that does not watch it, within moveMs of
//   the NIC going down (a watcher's detection, then its k+1 copies of news),
//   or within lateMs of a node starting or first being in a watcher's map
//   (the refreshes). Judged while nothing else can rule Y out or cut the
//   news (no standing news can name Y: see #clearFromMs, and nothing happens
//   to Y since), the node stays up, and some watcher has watched it steadily
//   since before the fault.
// - back: once no standing news can rule X out (every path on X has worked
//   for backMs: a hold-down, then one round of news; and a lease has passed
//   since any node that may have spoken died or was cut off), no node routes
//   a peer it does not watch on Y.
// Nodes that watch the peer themselves are the detector's (checker.ts).
import type { ClusterMap } from "../src/core/cluster-map.ts";
import type { DetectorConfig } from "../src/membership/config.ts";
import { newsLeaseMs } from "../src/membership/config.ts";
import type { Channel } from "../src/membership/heartbeat.ts";
import { CHANNELS } from "../src/membership/heartbeat.ts";
import type { CheckerBounds, DetectorCore } from "./checker.ts";
import { stateIn } from "./map-checker.ts";
import type { World } from "./world.ts";

/** What the news checker reads of a node: MembershipCore fits. */
export interface RouteCore extends DetectorCore {
  route(peer: string): Channel | undefined;
  /** The peers routed by news, and their channel. */
  routes(): ReadonlyMap<string, Channel>;
  readonly map: ClusterMap;
}

export interface NewsBounds {
  /** From a NIC going down to every live non-watcher routing its node on the other channel. */
  moveMs: number;
  /** From a node starting (or first being told) to it knowing news that stands. */
  lateMs: number;
  /** From every path on a channel working to no route avoiding it. */
  backMs: number;
  /** A node that died or was cut off: its news is gone from every board within this long. */
  leaseMs: number;
  /** A watcher counts once its peer has sent to it this long: its channels are trusted again. */
  witnessMs: number;
  /** ... or this long from its first look (a fresh watch trusts both channels): news needs a steady channel. */
  steadyMs: number;
}

export function newsBounds(config: DetectorConfig, delayMsMax: number, bounds: CheckerBounds): NewsBounds {
  const hopMs = delayMsMax + config.tickMs;
  const copiesMs = config.toleratedLosses * config.heartbeatIntervalMs + hopMs;
  const leaseMs = newsLeaseMs(config) + 2 * hopMs;
  return {
    moveMs: bounds.channelDetectMs + copiesMs,
    lateMs: Math.max(
      (config.toleratedLosses + 1) * config.newsRefreshMs + hopMs,
      bounds.recoverMs + copiesMs,
    ),
    backMs: bounds.recoverMs + copiesMs,
    leaseMs,
    witnessMs: bounds.recoverMs,
    steadyMs: config.suspectAfterMs,
  };
}

interface Move {
  node: string;
  lost: Channel;
  sinceMs: number;
  spoiled: boolean;
  /** Per non-watcher: since when it has been in a steady watcher's map (news goes to all of it). */
  toldSinceMs: Map<string, number>;
  /** When every such node first routed it on the other channel. */
  movedMs?: number;
}

interface Back {
  node: string;
  lost: Channel;
  sinceMs: number;
}

const VIOLATIONS_MAX = 10;
const other = (c: Channel): Channel => (c === "A" ? "B" : "A");

export class NewsChecker {
  readonly bounds: NewsBounds;
  readonly violations: string[] = [];
  /** NIC down to every non-watcher routing its node on the other channel. */
  readonly moveMs: number[] = [];
  /** NIC up to no non-watcher avoiding it any more. */
  readonly backMs: number[] = [];
  readonly #world: World;
  readonly #nodes: readonly string[];
  readonly #startedMs = new Map<string, number>();
  readonly #nicSinceMs = new Map<string, { up: boolean; sinceMs: number }>();
  readonly #lastNicDownMs: Record<Channel, number> = {
    A: Number.NEGATIVE_INFINITY,
    B: Number.NEGATIVE_INFINITY,
  };
  #lastPartitionMs = Number.NEGATIVE_INFINITY;
  #lastDisconnectedMs = Number.NEGATIVE_INFINITY;
  #lastCrashMs = Number.NEGATIVE_INFINITY;
  #lastRestartMs = Number.NEGATIVE_INFINITY;
  /** `watcher|peer`: since when the watcher has watched the peer and the peer sent to it, both running. */
  readonly #steady = new Map<string, { sinceMs: number; seenMs: number; watchedSinceMs: number }>();
  readonly #moves = new Map<string, Move>();
  readonly #backs: Back[] = [];
  #lastObserveMs = Number.NEGATIVE_INFINITY;

  constructor(
    config: DetectorConfig,
    delayMsMax: number,
    bounds: CheckerBounds,
    world: World,
    nodes: string[],
  ) {
    this.#world = world;
    this.#nodes = nodes;
    this.bounds = newsBounds(config, delayMsMax, bounds);
  }

  get failed(): boolean {
    return this.violations.length > 0;
  }

  /** A node (re)started at nowMs, with an empty board. */
  onStart(node: string, nowMs: number): void {
    if (this.#startedMs.has(node)) this.#lastRestartMs = nowMs;
    this.#startedMs.set(node, nowMs);
  }

  onCrash(nowMs: number): void {
    this.#lastCrashMs = nowMs;
  }

  /** The World at nowMs, after this tick's faults. */
  observe(nowMs: number, cores: ReadonlyMap<string, RouteCore>): void {
    const previousMs = this.#lastObserveMs;
    this.#lastObserveMs = nowMs;
    const w = this.#world;
    for (const node of this.#nodes)
      for (const channel of CHANNELS) {
        const up = w.nicUp(node, channel);
        const key = `${node}/${channel}`;
        const r = this.#nicSinceMs.get(key);
        if (r === undefined || r.up !== up) this.#nicSinceMs.set(key, { up, sinceMs: nowMs });
        if (!up) this.#lastNicDownMs[channel] = nowMs;
      }
    if (w.partitioned()) this.#lastPartitionMs = nowMs;
    if (!w.connected("")) this.#lastDisconnectedMs = nowMs;
    for (const [watcher, core] of cores)
      for (const peer of core.watched()) {
        const key = `${watcher}|${peer}`;
        if (!(cores.get(peer)?.sendsTo().includes(watcher) ?? false)) {
          this.#steady.delete(key);
          continue;
        }
        const watchedSinceMs = core.watchedSinceMs(peer) ?? nowMs;
        const r = this.#steady.get(key);
        if (r !== undefined && r.seenMs === previousMs && r.watchedSinceMs === watchedSinceMs)
          r.seenMs = nowMs;
        else this.#steady.set(key, { sinceMs: nowMs, seenMs: nowMs, watchedSinceMs });
      }
  }

  /** After every tick. */
  check(nowMs: number, cores: ReadonlyMap<string, RouteCore>): void {
    for (const node of this.#nodes)
      for (const lost of CHANNELS) {
        const key = `${node}/${lost}`;
        const nic = this.#nicSinceMs.get(key);
        const move = this.#moves.get(key);
        if (nic === undefined) continue;
        if (nic.up) {
          if (move === undefined) continue;
          this.#moves.delete(key);
          if (!move.spoiled) this.#backs.push({ node, lost, sinceMs: nic.sinceMs });
          continue;
        }
        if (move === undefined || move.sinceMs !== nic.sinceMs) {
          const fresh = { node, lost, sinceMs: nic.sinceMs, spoiled: false, toldSinceMs: new Map() };
          this.#moves.set(key, fresh);
          this.#checkMove(nowMs, fresh, cores);
        } else this.#checkMove(nowMs, move, cores);
      }
    this.#checkBack(nowMs, cores);
  }

  /** Moves judged (not spoiled by other faults) so far. */
  get judgedMoves(): number {
    return this.moveMs.length;
  }

  /**
   * Watchers that have watched the node steadily since before its NIC went
   * down, hearing it all along (from their first look, or for a hold-down
   * since it resumed sending to them): they see exactly that NIC go.
   */
  #witnesses(move: Move, cores: ReadonlyMap<string, RouteCore>): string[] {
    const out: string[] = [];
    for (const watcher of cores.keys()) {
      if (watcher === move.node || (this.#startedMs.get(watcher) ?? 0) > move.sinceMs) continue;
      const r = this.#steady.get(`${watcher}|${move.node}`);
      if (r === undefined || r.seenMs !== this.#lastObserveMs) continue;
      const fromFirstLook =
        r.sinceMs === r.watchedSinceMs && r.sinceMs <= move.sinceMs - this.bounds.steadyMs;
      if (fromFirstLook || r.sinceMs <= move.sinceMs - this.bounds.witnessMs) out.push(watcher);
    }
    return out;
  }

  /**
   * From when no standing news can rule `channel` out: every path on it has
   * worked for backMs (watchers trust it again and their empty lists have
   * reached everyone), and any list that may have been stranded (its sender
   * died, or was cut off, before taking it back) has expired.
   */
  #clearFromMs(channel: Channel): number {
    // A restart brings a node's paths back too, and not always both at once (a heartbeat lost on one).
    const healedMs = Math.max(this.#lastNicDownMs[channel], this.#lastPartitionMs, this.#lastRestartMs);
    const strandedMs = Math.min(
      Math.max(this.#lastCrashMs, this.#lastDisconnectedMs),
      healedMs + this.bounds.backMs,
    );
    return Math.max(healedMs + this.bounds.backMs, strandedMs + this.bounds.leaseMs);
  }

  #checkMove(nowMs: number, move: Move, cores: ReadonlyMap<string, RouteCore>): void {
    if (move.spoiled) return;
    const b = this.bounds;
    const t0 = move.sinceMs;
    const good = other(move.lost);
    const quiet = this.#world.alive(move.node) && this.#clearFromMs(good) <= t0;
    const witnesses = quiet ? this.#witnesses(move, cores) : [];
    if (witnesses.length === 0) {
      move.spoiled = true;
      return;
    }
    let all = true;
    let judged = 0;
    for (const [observer, core] of cores) {
      if (observer === move.node || core.watched().includes(move.node)) continue;
      const told = witnesses.some((w) => {
        const state = w === observer ? undefined : stateIn((cores.get(w) as RouteCore).map, observer);
        return state !== undefined;
      });
      if (!told) {
        move.toldSinceMs.delete(observer);
        continue;
      }
      const toldSinceMs = move.toldSinceMs.get(observer) ?? nowMs;
      move.toldSinceMs.set(observer, toldSinceMs);
      const startedMs = this.#startedMs.get(observer) ?? 0;
      const dueMs =
        toldSinceMs <= t0 && startedMs <= t0
          ? t0 + b.moveMs
          : Math.max(t0 + b.moveMs, Math.max(toldSinceMs, startedMs) + b.lateMs);
      judged++;
      if (core.route(move.node) === good) continue;
      all = false;
      if (nowMs >= dueMs)
        this.#fail(
          nowMs,
          `${observer} routes ${move.node} on ${core.route(move.node) ?? "(unknown)"}, ` +
            `but its NIC ${move.lost} is down since ${t0} and ${good} works`,
        );
    }
    if (all && judged > 0 && move.movedMs === undefined) {
      move.movedMs = nowMs;
      this.moveMs.push(nowMs - t0);
    }
  }

  #checkBack(nowMs: number, cores: ReadonlyMap<string, RouteCore>): void {
    for (const lost of CHANNELS) {
      if (nowMs < this.#clearFromMs(lost)) continue;
      const good = other(lost);
      for (const [observer, core] of cores)
        for (const [node, channel] of core.routes())
          if (channel === good && this.#world.alive(node))
            this.#fail(nowMs, `${observer} still routes ${node} on ${good}: no news can rule ${lost} out`);
    }
    // Figures: NIC back (quiet) → no non-watcher avoiding it.
    for (let i = this.#backs.length - 1; i >= 0; i--) {
      const back = this.#backs[i] as Back;
      const good = other(back.lost);
      const avoiding = [...cores.values()].some((core) => core.routes().get(back.node) === good);
      if (avoiding && nowMs - back.sinceMs <= this.bounds.backMs + this.bounds.leaseMs) continue;
      if (!avoiding) this.backMs.push(nowMs - back.sinceMs);
      this.#backs.splice(i, 1);
    }
  }

  #fail(nowMs: number, what: string): void {
    if (this.violations.length < VIOLATIONS_MAX) this.violations.push(`t=${nowMs}ms ${what}`);
  }
}
