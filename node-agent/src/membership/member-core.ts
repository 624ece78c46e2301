// One node's failure-detection core: the ring tells it whom to send to and
// whom to watch; tick() says which heartbeats to send now and which health
// transitions happened; onDatagram() takes what arrived. No sockets, no timers:
// the agent (UDP) and the simulator drive the same object.
import { MosaicError } from "../errors.ts";
import type { DetectorConfig } from "./config.ts";
import { validateDetectorConfig } from "./config.ts";
import type { Channel, Heartbeat } from "./heartbeat.ts";
import { CHANNELS, decodeHeartbeat, encodeHeartbeat } from "./heartbeat.ts";
import type { HealthEvent, PeerView } from "./peer-health.ts";
import { PeerHealth } from "./peer-health.ts";
import { predecessors, ringOrder, successors } from "./ring.ts";

export interface Datagram {
  to: string;
  channel: Channel;
  bytes: Buffer;
}

export interface MemberCoreOptions {
  self: string;
  /** Grows on every restart (e.g. the start time in ms), so peers can tell a restart from a replay. */
  incarnation: number;
  members: readonly string[];
  epoch: number;
  config: DetectorConfig;
  nowMs: number;
}

export interface TickResult {
  datagrams: Datagram[];
  events: HealthEvent[];
}

export class MemberCore {
  readonly self: string;
  readonly #incarnation: number;
  readonly #config: DetectorConfig;
  readonly #health: PeerHealth;
  #sendTo: string[] = [];
  #epoch = 0;
  #sequence = 0;
  #nextSendMs: number;
  /** Datagrams refused as garbage, misrouted or from the wrong channel: counted, never thrown. */
  rejected = 0;

  constructor(options: MemberCoreOptions) {
    this.self = options.self;
    this.#incarnation = options.incarnation;
    this.#config = validateDetectorConfig(options.config);
    this.#health = new PeerHealth(this.#config);
    this.#nextSendMs = options.nowMs;
    this.setMembers(options.members, options.epoch, options.nowMs);
  }

  /** A new member list (a new cluster-map epoch): the ring is recomputed, kept peers keep their state. */
  setMembers(members: readonly string[], epoch: number, nowMs: number): void {
    const ring = ringOrder(members);
    if (!ring.includes(this.self))
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `member core: ${this.self} is not in the member list`);
    this.#epoch = epoch;
    this.#sendTo = successors(ring, this.self, this.#config.toleratedLosses);
    this.#health.watch(predecessors(ring, this.self, this.#config.toleratedLosses), nowMs);
  }

  tick(nowMs: number): TickResult {
    const datagrams: Datagram[] = [];
    if (nowMs >= this.#nextSendMs) {
      this.#sequence++;
      for (const to of this.#sendTo)
        for (const channel of CHANNELS)
          datagrams.push({ to, channel, bytes: encodeHeartbeat(this.#heartbeat(channel)) });
      // After a stall, send once and resume the cadence: never a burst of catch-up heartbeats.
      const nextMs = this.#nextSendMs + this.#config.heartbeatIntervalMs;
      this.#nextSendMs = nextMs > nowMs ? nextMs : nowMs + this.#config.heartbeatIntervalMs;
    }
    return { datagrams, events: this.#health.tick(nowMs) };
  }

  /** A datagram that arrived on `channel`. Garbage is counted and dropped: it must cost nothing else. */
  onDatagram(bytes: Buffer, channel: Channel, nowMs: number): HealthEvent[] {
    let h: Heartbeat;
    try {
      h = decodeHeartbeat(bytes);
    } catch {
      this.rejected++;
      return [];
    }
    // A heartbeat claiming the other channel means crossed wiring: trusting it would hide a dead NIC.
    if (h.channel !== channel || h.sender === this.self) {
      this.rejected++;
      return [];
    }
    return this.#health.onHeartbeat(h, nowMs);
  }

  /**
   * The earliest time at which tick() has work: the next heartbeat to send or
   * a health deadline. Ticking only then gives the same events as ticking
   * every millisecond, so an idle driver sleeps until it.
   */
  nextDeadlineMs(): number {
    return Math.min(this.#nextSendMs, this.#health.nextDeadlineMs());
  }

  /** When `peer` was last heard on `channel`, by the clock this core is driven with. */
  lastHeardMs(peer: string, channel: Channel): number | undefined {
    return this.#health.lastHeardMs(peer, channel);
  }

  view(peer: string): PeerView | undefined {
    return this.#health.view(peer);
  }

  watched(): string[] {
    return this.#health.peers();
  }

  sendsTo(): string[] {
    return [...this.#sendTo];
  }

  #heartbeat(channel: Channel): Heartbeat {
    return {
      sender: this.self,
      channel,
      incarnation: this.#incarnation,
      sequence: this.#sequence,
      epoch: this.#epoch,
    };
  }
}
