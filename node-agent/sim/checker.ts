// Judges every detector against the World on every tick (after TigerBeetle's
// state checker). The bounds follow from the network model: a path that is up
// delivers at least one heartbeat in every gapMs, because random loss never
// exceeds k in a row and delay never exceeds delayMsMax. A path is up when the
// World lets packets through and the sender's ring has it send to the
// observer (rings follow the agreed map, and differ while maps do).
import type { ChannelState } from "../src/membership/channel-detector.ts";
import type { DetectorConfig } from "../src/membership/config.ts";
import type { Channel } from "../src/membership/heartbeat.ts";
import { CHANNELS } from "../src/membership/heartbeat.ts";
import type { HealthEvent, PeerView } from "../src/membership/peer-health.ts";
import type { World } from "./world.ts";

/** What the checker reads of a node: MemberCore and MembershipCore both fit. */
export interface DetectorCore {
  watched(): string[];
  sendsTo(): string[];
  view(peer: string): PeerView | undefined;
  watchedSinceMs(peer: string): number | undefined;
}

interface PathRecord {
  up: boolean;
  /** Since when `up` has held, or since the observer (re)started. */
  sinceMs: number;
  /** The last instant the path was down (nowMs while it is). */
  lastDownMs: number;
  /** The last observe() that saw the observer watch this peer: a gap means it was watched again, afresh. */
  seenMs: number;
  /** When the observer's current watch of the peer began: a later one is afresh too. */
  watchedSinceMs: number;
  /** When the observer's detector put this channel in returning. */
  returningSinceMs: number;
}

export interface CheckerBounds {
  /** Longest time an up path may go without delivering a heartbeat. */
  gapMs: number;
  /** A channel whose path is down this long must be down in its observers' detectors. */
  channelDetectMs: number;
  /** A node whose both paths are down this long must be down in its observers' detectors. */
  nodeDetectMs: number;
  /** A channel whose path is up this long must be up (and used again). */
  recoverMs: number;
}

export function checkerBounds(config: DetectorConfig, delayMsMax: number): CheckerBounds {
  const gapMs = (config.toleratedLosses + 1) * config.heartbeatIntervalMs + delayMsMax + config.tickMs;
  return {
    gapMs,
    channelDetectMs: config.downAfterMs + delayMsMax + config.tickMs,
    nodeDetectMs: config.nodeDownAfterMs + delayMsMax + config.tickMs,
    recoverMs: gapMs + config.holdDownMs + config.tickMs,
  };
}

const VIOLATIONS_MAX = 10;

export class Checker {
  readonly bounds: CheckerBounds;
  readonly #config: DetectorConfig;
  readonly #world: World;
  readonly #paths = new Map<string, PathRecord>();
  #lastObserveMs = Number.NEGATIVE_INFINITY;
  readonly violations: string[] = [];
  /** Time from a path going down to its observer declaring the channel (or node) down. */
  readonly channelDetectMs: number[] = [];
  readonly nodeDetectMs: number[] = [];

  constructor(config: DetectorConfig, delayMsMax: number, world: World) {
    this.#config = config;
    this.#world = world;
    this.bounds = checkerBounds(config, delayMsMax);
  }

  get failed(): boolean {
    return this.violations.length > 0;
  }

  /** The observer restarted: its fresh detector owes nothing to what happened before. */
  forgetObserver(observer: string): void {
    for (const key of this.#paths.keys()) if (key.startsWith(`${observer}|`)) this.#paths.delete(key);
  }

  /** Brings the ground truth up to nowMs; call after applying the faults of nowMs. */
  observe(nowMs: number, cores: ReadonlyMap<string, DetectorCore>): void {
    const previousMs = this.#lastObserveMs;
    this.#lastObserveMs = nowMs;
    for (const [observer, core] of cores) {
      for (const peer of core.watched()) {
        const sends = cores.get(peer)?.sendsTo().includes(observer) ?? false;
        const watchedSinceMs = core.watchedSinceMs(peer) ?? nowMs;
        for (const channel of CHANNELS) {
          const up = sends && this.#world.pathUp(peer, observer, channel);
          const key = `${observer}|${peer}|${channel}`;
          const r = this.#paths.get(key);
          if (r === undefined || r.seenMs !== previousMs || r.watchedSinceMs !== watchedSinceMs) {
            const lastDownMs = up ? Number.NEGATIVE_INFINITY : nowMs;
            const fresh = { up, sinceMs: nowMs, lastDownMs, returningSinceMs: Number.NaN };
            this.#paths.set(key, { ...fresh, seenMs: nowMs, watchedSinceMs });
            continue;
          }
          r.seenMs = nowMs;
          if (r.up !== up) {
            r.up = up;
            r.sinceMs = nowMs;
          }
          if (!up) r.lastDownMs = nowMs;
        }
      }
    }
  }

  onEvents(observer: string, events: readonly { kind: string }[]): void {
    for (const e of events as HealthEvent[]) {
      if (e.kind === "channel") this.#onChannelEvent(observer, e.peer, e.channel, e.from, e.to, e.atMs);
      if (e.kind === "peer" && e.to !== "up") {
        const a = this.#path(observer, e.peer, "A");
        const b = this.#path(observer, e.peer, "B");
        if (a === undefined || b === undefined) continue;
        if (a.lastDownMs < e.atMs - this.bounds.gapMs || b.lastDownMs < e.atMs - this.bounds.gapMs)
          this.#fail(
            e.atMs,
            `${observer} declared ${e.peer} ${e.to} while one of its channels was really up`,
          );
        if (e.to === "down") this.nodeDetectMs.push(e.atMs - Math.max(a.sinceMs, b.sinceMs));
      }
    }
  }

  /** State invariants of every observer at nowMs; call after the cores' ticks. */
  check(nowMs: number, cores: ReadonlyMap<string, DetectorCore>): void {
    for (const [observer, core] of cores) {
      for (const peer of core.watched()) {
        const v = core.view(peer);
        if (v === undefined) throw new Error(`${observer} lost its view of ${peer}`);
        const a = this.#path(observer, peer, "A");
        const b = this.#path(observer, peer, "B");
        // Watched afresh since this tick's observe(): judged from the next tick on.
        if (a === undefined || b === undefined || a.watchedSinceMs !== core.watchedSinceMs(peer)) continue;
        const at = `${observer} → ${peer}`;
        for (const channel of CHANNELS)
          this.#checkChannel(nowMs, at, channel, v.channels[channel], channel === "A" ? a : b);
        this.#checkActive(nowMs, at, v.channels, v.active, a, b);
        const bothDownSinceMs = Math.max(a.sinceMs, b.sinceMs);
        if (!a.up && !b.up && nowMs - bothDownSinceMs >= this.bounds.nodeDetectMs && v.state !== "down")
          this.#fail(nowMs, `${at}: both channels down since ${bothDownSinceMs} but node is ${v.state}`);
        const upPath =
          (a.up && nowMs - a.sinceMs >= this.bounds.gapMs) ||
          (b.up && nowMs - b.sinceMs >= this.bounds.gapMs);
        if (upPath && v.state !== "up")
          this.#fail(nowMs, `${at}: a channel is really up but node is ${v.state}`);
      }
    }
  }

  #checkChannel(nowMs: number, at: string, channel: Channel, state: ChannelState, r: PathRecord): void {
    if (!r.up && nowMs - r.sinceMs >= this.bounds.channelDetectMs && state !== "down")
      this.#fail(nowMs, `${at}/${channel}: really down since ${r.sinceMs} but ${state}`);
    if (r.up && nowMs - r.sinceMs >= this.bounds.recoverMs && state !== "up")
      this.#fail(nowMs, `${at}/${channel}: really up since ${r.sinceMs} but ${state}`);
  }

  #checkActive(
    nowMs: number,
    at: string,
    states: Record<Channel, ChannelState>,
    active: Channel | null,
    a: PathRecord,
    b: PathRecord,
  ): void {
    if (active === null) {
      if (states.A !== "down" || states.B !== "down")
        this.#fail(nowMs, `${at}: no active channel, A ${states.A} B ${states.B}`);
      return;
    }
    const other: Channel = active === "A" ? "B" : "A";
    if (states[active] === "down" && states[other] !== "down")
      this.#fail(nowMs, `${at}: active ${active} is down while ${other} is ${states[other]}`);
    // A NIC failure: traffic must be on the surviving channel within budget.
    for (const [down, downPath, upPath] of [["A", a, b] as const, ["B", b, a] as const]) {
      const nicFailed = !downPath.up && nowMs - downPath.sinceMs >= this.bounds.channelDetectMs;
      if (nicFailed && upPath.up && nowMs - upPath.sinceMs >= this.bounds.gapMs && active === down)
        this.#fail(nowMs, `${at}: channel ${down} really down since ${downPath.sinceMs} but still active`);
    }
  }

  #onChannelEvent(
    observer: string,
    peer: string,
    channel: Channel,
    from: ChannelState,
    to: ChannelState,
    atMs: number,
  ): void {
    const r = this.#path(observer, peer, channel);
    if (r === undefined) return;
    if (to === "down") {
      if (r.lastDownMs < atMs - this.bounds.gapMs)
        this.#fail(
          atMs,
          `${observer} declared ${peer}/${channel} down while it was really up since ${r.sinceMs}`,
        );
      if (from === "suspect") this.channelDetectMs.push(atMs - r.sinceMs);
    }
    if (to === "returning") r.returningSinceMs = atMs;
    if (from === "returning" && to === "up" && !(atMs - r.returningSinceMs >= this.#config.holdDownMs))
      this.#fail(
        atMs,
        `${observer}: ${peer}/${channel} used again after ${atMs - r.returningSinceMs} ms of hold-down`,
      );
  }

  /** The path's record; undefined when the observer began watching the peer after this tick's observe(). */
  #path(observer: string, peer: string, channel: Channel): PathRecord | undefined {
    const r = this.#paths.get(`${observer}|${peer}|${channel}`);
    return r?.seenMs === this.#lastObserveMs ? r : undefined;
  }

  #fail(nowMs: number, what: string): void {
    if (this.violations.length < VIOLATIONS_MAX) this.violations.push(`t=${nowMs}ms ${what}`);
  }
}
