// A peer seen through its two channels. One channel down is a NIC failure:
// that peer's traffic moves to the other channel and it stays a member. Both
// down is a node failure: suspect at once, down after nodeDownAfterMs of total
// silence. Each peer switches on its own (seed 004 moved every node at once).
import type { ChannelEvent, ChannelState } from "./channel-detector.ts";
import { ChannelDetector } from "./channel-detector.ts";
import type { DetectorConfig } from "./config.ts";
import type { Channel, Heartbeat } from "./heartbeat.ts";

export type PeerState = "up" | "suspect" | "down";

export interface PeerEvent {
  kind: "peer";
  peer: string;
  from: PeerState;
  to: PeerState;
  atMs: number;
}

/** The channel this node's traffic to the peer now takes; null: neither is usable. */
export interface ActiveEvent {
  kind: "active";
  peer: string;
  from: Channel | null;
  to: Channel | null;
  atMs: number;
}

export type HealthEvent = ChannelEvent | PeerEvent | ActiveEvent;

export interface PeerView {
  channels: Record<Channel, ChannelState>;
  state: PeerState;
  active: Channel | null;
}

// up and suspect carry traffic; a returning channel only when the other is down.
const RANK: Record<ChannelState, number> = { up: 0, suspect: 0, returning: 1, down: 2 };

/**
 * The channel for a peer's traffic, from its channel states alone. Both channels
 * usable: the preferred one (B stays a warm standby, its capacity kept for
 * failover). Never a down channel while the other is not down.
 */
export function activeChannel(a: ChannelState, b: ChannelState, preferred: Channel = "A"): Channel | null {
  if (a === "down" && b === "down") return null;
  if (RANK[a] === RANK[b]) return preferred;
  return RANK[a] < RANK[b] ? "A" : "B";
}

export function peerStateOf(
  a: ChannelState,
  b: ChannelState,
  silentMs: number,
  config: DetectorConfig,
): PeerState {
  if (a !== "down" || b !== "down") return "up";
  return silentMs >= config.nodeDownAfterMs ? "down" : "suspect";
}

interface Seen {
  incarnation: number;
  sequence: number;
}

function newer(h: Heartbeat, seen: Seen | undefined): boolean {
  if (seen === undefined) return true;
  return (
    h.incarnation > seen.incarnation || (h.incarnation === seen.incarnation && h.sequence > seen.sequence)
  );
}

export class PeerHealth {
  readonly #config: DetectorConfig;
  readonly #preferred: Channel;
  readonly #channels: ChannelDetector;
  readonly #views = new Map<string, { state: PeerState; active: Channel | null }>();
  readonly #seen = new Map<string, Partial<Record<Channel, Seen>>>();

  constructor(config: DetectorConfig, preferred: Channel = "A") {
    this.#config = config;
    this.#preferred = preferred;
    this.#channels = new ChannelDetector(config);
  }

  watch(peers: readonly string[], nowMs: number): void {
    this.#channels.watch(peers, nowMs);
    const wanted = new Set(peers);
    for (const peer of this.#views.keys()) if (!wanted.has(peer)) this.#views.delete(peer);
    for (const peer of this.#seen.keys()) if (!wanted.has(peer)) this.#seen.delete(peer);
    for (const peer of wanted)
      if (!this.#views.has(peer)) this.#views.set(peer, { state: "up", active: this.#preferred });
  }

  /** A heartbeat from a watched peer; duplicates and reordered (older) ones are ignored. */
  onHeartbeat(h: Heartbeat, nowMs: number): HealthEvent[] {
    if (!this.#views.has(h.sender)) return [];
    const seen = this.#seen.get(h.sender) ?? {};
    if (!newer(h, seen[h.channel])) return [];
    seen[h.channel] = { incarnation: h.incarnation, sequence: h.sequence };
    this.#seen.set(h.sender, seen);
    const events: HealthEvent[] = this.#channels.onHeartbeat(h.sender, h.channel, nowMs);
    return events.length === 0 ? events : this.#derive(h.sender, nowMs, events);
  }

  tick(nowMs: number): HealthEvent[] {
    const events: HealthEvent[] = this.#channels.tick(nowMs);
    // Peer state also changes with silence alone (suspect → down), so every peer is re-derived.
    for (const peer of this.#views.keys()) this.#derive(peer, nowMs, events);
    return events;
  }

  /**
   * The earliest time at which tick() can produce an event with no heartbeat
   * arriving: a channel deadline, or a silent peer's node-down deadline.
   */
  nextDeadlineMs(): number {
    let earliestMs = this.#channels.nextDeadlineMs();
    for (const [peer, v] of this.#views)
      if (v.state === "suspect")
        earliestMs = Math.min(earliestMs, this.#lastHeardMs(peer) + this.#config.nodeDownAfterMs);
    return earliestMs;
  }

  /** When `peer` was last heard on `channel` (by this observer's clock). */
  lastHeardMs(peer: string, channel: Channel): number | undefined {
    return this.#channels.lastHeardMs(peer, channel);
  }

  /** When watching `peer` began (afresh, after any gap). */
  watchedSinceMs(peer: string): number | undefined {
    return this.#channels.watchedSinceMs(peer);
  }

  /** When `peer`'s `channel` entered its current state. */
  stateSinceMs(peer: string, channel: Channel): number | undefined {
    return this.#channels.stateSinceMs(peer, channel);
  }

  view(peer: string): PeerView | undefined {
    const v = this.#views.get(peer);
    if (v === undefined) return undefined;
    const channels = { A: this.#channels.state(peer, "A"), B: this.#channels.state(peer, "B") };
    if (channels.A === undefined || channels.B === undefined)
      throw new Error(`peer health: ${peer} untracked`);
    return { channels: channels as Record<Channel, ChannelState>, state: v.state, active: v.active };
  }

  peers(): string[] {
    return [...this.#views.keys()];
  }

  #derive(peer: string, nowMs: number, events: HealthEvent[]): HealthEvent[] {
    const v = this.#views.get(peer);
    const a = this.#channels.state(peer, "A");
    const b = this.#channels.state(peer, "B");
    if (v === undefined || a === undefined || b === undefined) return events;
    const state = peerStateOf(a, b, nowMs - this.#lastHeardMs(peer), this.#config);
    const active = activeChannel(a, b, this.#preferred);
    if (active !== v.active) events.push({ kind: "active", peer, from: v.active, to: active, atMs: nowMs });
    if (state !== v.state) events.push({ kind: "peer", peer, from: v.state, to: state, atMs: nowMs });
    v.state = state;
    v.active = active;
    return events;
  }

  #lastHeardMs(peer: string): number {
    return Math.max(this.#channels.lastHeardMs(peer, "A") ?? 0, this.#channels.lastHeardMs(peer, "B") ?? 0);
  }
}
