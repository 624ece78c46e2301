// Per watched peer and per channel: up → suspect → down, and back through
// returning (heard again, not yet trusted) → up after a steady hold-down.
// Driven only by onHeartbeat() and tick() with the caller's clock; transitions
// are returned as events for the caller to act on, never acted on here.
import type { DetectorConfig } from "./config.ts";
import type { Channel } from "./heartbeat.ts";
import { CHANNELS } from "./heartbeat.ts";

/** up/suspect: usable. returning: heard again, waiting out the hold-down. down: not used. */
export type ChannelState = "up" | "suspect" | "down" | "returning";

export interface ChannelEvent {
  kind: "channel";
  peer: string;
  channel: Channel;
  from: ChannelState;
  to: ChannelState;
  atMs: number;
}

export interface Track {
  state: ChannelState;
  lastHeardMs: number;
  /** When the current state began: the hold-down counts from entering returning. */
  sinceMs: number;
}

/** The state a channel moves to at nowMs with no heartbeat, or the same state. */
export function nextOnSilence(t: Readonly<Track>, nowMs: number, config: DetectorConfig): ChannelState {
  const silentMs = nowMs - t.lastHeardMs;
  switch (t.state) {
    case "up":
      return silentMs >= config.suspectAfterMs ? "suspect" : "up";
    case "suspect":
      return silentMs >= config.downAfterMs ? "down" : "suspect";
    case "returning":
      // Any real gap while on probation is a flap: back to down, hold-down starts over.
      if (silentMs >= config.suspectAfterMs) return "down";
      return nowMs - t.sinceMs >= config.holdDownMs ? "up" : "returning";
    case "down":
      return "down";
  }
}

/**
 * The earliest time at which nextOnSilence() gives another state; Infinity: never
 * (down waits for a heartbeat). A driver sleeps until then instead of polling.
 */
export function silenceDeadlineMs(t: Readonly<Track>, config: DetectorConfig): number {
  switch (t.state) {
    case "up":
      return t.lastHeardMs + config.suspectAfterMs;
    case "suspect":
      return t.lastHeardMs + config.downAfterMs;
    case "returning":
      return Math.min(t.lastHeardMs + config.suspectAfterMs, t.sinceMs + config.holdDownMs);
    case "down":
      return Number.POSITIVE_INFINITY;
  }
}

/** The state a channel moves to when a heartbeat arrives. */
export function nextOnHeartbeat(state: ChannelState): ChannelState {
  if (state === "down") return "returning";
  if (state === "suspect") return "up";
  return state;
}

export class ChannelDetector {
  readonly #config: DetectorConfig;
  readonly #tracks = new Map<string, Record<Channel, Track>>();
  readonly #watchedSinceMs = new Map<string, number>();
  #nowMs = Number.NEGATIVE_INFINITY;

  constructor(config: DetectorConfig) {
    this.#config = config;
  }

  /** Watches exactly `peers` from now on. A new peer starts up, as if just heard: it gets a full downAfterMs. */
  watch(peers: readonly string[], nowMs: number): void {
    this.#advance(nowMs);
    const wanted = new Set(peers);
    for (const peer of this.#tracks.keys())
      if (!wanted.has(peer)) {
        this.#tracks.delete(peer);
        this.#watchedSinceMs.delete(peer);
      }
    for (const peer of wanted) {
      if (this.#tracks.has(peer)) continue;
      const fresh = (): Track => ({ state: "up", lastHeardMs: nowMs, sinceMs: nowMs });
      this.#tracks.set(peer, { A: fresh(), B: fresh() });
      this.#watchedSinceMs.set(peer, nowMs);
    }
  }

  onHeartbeat(peer: string, channel: Channel, nowMs: number): ChannelEvent[] {
    this.#advance(nowMs);
    const track = this.#tracks.get(peer)?.[channel];
    if (track === undefined) return [];
    track.lastHeardMs = nowMs;
    const to = nextOnHeartbeat(track.state);
    return to === track.state ? [] : [this.#move(peer, channel, track, to, nowMs)];
  }

  tick(nowMs: number): ChannelEvent[] {
    this.#advance(nowMs);
    const events: ChannelEvent[] = [];
    for (const [peer, tracks] of this.#tracks) {
      for (const channel of CHANNELS) {
        const track = tracks[channel];
        // A late tick may cross two deadlines (up → suspect → down): at most 3 steps.
        for (let step = 0; step < 3; step++) {
          const to = nextOnSilence(track, nowMs, this.#config);
          if (to === track.state) break;
          events.push(this.#move(peer, channel, track, to, nowMs));
        }
      }
    }
    return events;
  }

  /** The earliest time at which tick() can move any channel with no heartbeat arriving; Infinity: none. */
  nextDeadlineMs(): number {
    let earliestMs = Number.POSITIVE_INFINITY;
    for (const tracks of this.#tracks.values())
      for (const channel of CHANNELS)
        earliestMs = Math.min(earliestMs, silenceDeadlineMs(tracks[channel], this.#config));
    return earliestMs;
  }

  peers(): string[] {
    return [...this.#tracks.keys()];
  }

  state(peer: string, channel: Channel): ChannelState | undefined {
    return this.#tracks.get(peer)?.[channel].state;
  }

  lastHeardMs(peer: string, channel: Channel): number | undefined {
    return this.#tracks.get(peer)?.[channel].lastHeardMs;
  }

  /** When `peer`'s `channel` entered its current state. */
  stateSinceMs(peer: string, channel: Channel): number | undefined {
    return this.#tracks.get(peer)?.[channel].sinceMs;
  }

  /** When this detector began watching `peer` (afresh, after any gap). */
  watchedSinceMs(peer: string): number | undefined {
    return this.#watchedSinceMs.get(peer);
  }

  #move(peer: string, channel: Channel, track: Track, to: ChannelState, nowMs: number): ChannelEvent {
    const event: ChannelEvent = { kind: "channel", peer, channel, from: track.state, to, atMs: nowMs };
    track.state = to;
    track.sinceMs = nowMs;
    return event;
  }

  #advance(nowMs: number): void {
    if (!Number.isFinite(nowMs) || nowMs < this.#nowMs)
      throw new Error(`channel detector: clock went backwards (${nowMs} < ${this.#nowMs})`);
    this.#nowMs = nowMs;
  }
}
