// One node's failure-detection core: the ring tells it whom to send to and
// whom to watch; tick() says which heartbeats to send now and which health
// transitions happened; onDatagram() takes what arrived. No sockets, no timers:
// the agent (UDP) and the simulator drive the same object.
import { MosaicError } from "../errors.ts";
import type { DetectorConfig } from "./config.ts";
import { validateDetectorConfig } from "./config.ts";
import type { Channel, Heartbeat, LoadStamp, Suspicion } from "./heartbeat.ts";
import { CHANNELS, decodeHeartbeat, encodeHeartbeat, NO_DIGEST, SUSPECTS_MAX } from "./heartbeat.ts";
import type { HealthEvent, PeerView } from "./peer-health.ts";
import { PeerHealth } from "./peer-health.ts";
import { predecessors, ringOrder, successors } from "./ring.ts";

export interface Datagram {
  to: string;
  channel: Channel;
  bytes: Buffer;
  /**
   * Heartbeats (and the sparse off-ring probes) are the steady cost; maps are
   * sent only while agents hold different ones, channel news only while a
   * watched peer has one channel unusable, load news when this node's load
   * level changes and while it is not Low.
   */
  kind: "heartbeat" | "probe" | "map" | "news" | "load";
}

export interface MemberCoreOptions {
  self: string;
  /** Grows on every restart (e.g. the start time in ms), so peers can tell a restart from a replay. */
  incarnation: number;
  members: readonly string[];
  epoch: number;
  config: DetectorConfig;
  nowMs: number;
  /** Digest of the map at `epoch` (agreement); NO_DIGEST when no agreement runs. */
  digest?: string;
  /** Epoch of the operator map that map grew from (agreement); 0 when no agreement runs. */
  baseEpoch?: number;
  /** Whether this node's suspicion of `peer` is fresh (see Suspicion); default: always. */
  suspicionFresh?: (peer: string) => boolean;
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
  readonly #suspicionFresh: (peer: string) => boolean;
  #epoch = 0;
  #digest = NO_DIGEST;
  #baseEpoch = 0;
  #sequence = 0;
  #load: LoadStamp | undefined;
  #nextSendMs: number;
  /** Datagrams refused as garbage, misrouted or from the wrong channel: counted, never thrown. */
  rejected = 0;

  constructor(options: MemberCoreOptions) {
    this.self = options.self;
    this.#incarnation = options.incarnation;
    this.#config = validateDetectorConfig(options.config);
    this.#health = new PeerHealth(this.#config);
    this.#nextSendMs = options.nowMs;
    this.#suspicionFresh = options.suspicionFresh ?? (() => true);
    this.setMembers(options.members, options.epoch, options.nowMs, options.digest, options.baseEpoch);
  }

  /** A new member list (a new cluster-map epoch): the ring is recomputed, kept peers keep their state. */
  setMembers(
    members: readonly string[],
    epoch: number,
    nowMs: number,
    digest = NO_DIGEST,
    baseEpoch = 0,
  ): void {
    const ring = ringOrder(members);
    if (!ring.includes(this.self))
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `member core: ${this.self} is not in the member list`);
    this.#epoch = epoch;
    this.#digest = digest;
    this.#baseEpoch = baseEpoch;
    this.#sendTo = successors(ring, this.self, this.#config.toleratedLosses);
    this.#health.watch(predecessors(ring, this.self, this.#config.toleratedLosses), nowMs);
  }

  tick(nowMs: number): TickResult {
    const datagrams = this.tickSend(nowMs);
    return { datagrams, events: this.tickHealth(nowMs) };
  }

  /** The heartbeats due at nowMs (half of tick(): agreement runs between the halves). */
  tickSend(nowMs: number): Datagram[] {
    const datagrams: Datagram[] = [];
    if (nowMs >= this.#nextSendMs) {
      this.#sequence++;
      const suspects = this.suspects();
      for (const to of this.#sendTo)
        for (const channel of CHANNELS)
          datagrams.push({
            to,
            channel,
            bytes: encodeHeartbeat(this.#heartbeat(channel, suspects)),
            kind: "heartbeat",
          });
      // After a stall, send once and resume the cadence: never a burst of catch-up heartbeats.
      const nextMs = this.#nextSendMs + this.#config.heartbeatIntervalMs;
      this.#nextSendMs = nextMs > nowMs ? nextMs : nowMs + this.#config.heartbeatIntervalMs;
    }
    return datagrams;
  }

  /** The health transitions due at nowMs (the other half of tick()). */
  tickHealth(nowMs: number): HealthEvent[] {
    return this.#health.tick(nowMs);
  }

  /** Watched peers seen down on both channels: the suspicions every heartbeat carries. */
  suspects(): Suspicion[] {
    const out: Suspicion[] = [];
    for (const peer of this.#health.peers()) {
      if (out.length === SUSPECTS_MAX) break;
      if (this.#health.view(peer)?.state === "down") out.push({ peer, fresh: this.#suspicionFresh(peer) });
    }
    return out;
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
    return this.onHeartbeat(h, channel, nowMs);
  }

  /** A decoded heartbeat that arrived on `channel`; one that cannot be right is counted and dropped. */
  onHeartbeat(h: Heartbeat, channel: Channel, nowMs: number): HealthEvent[] {
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

  /** When watching `peer` began (afresh, after any gap): a fresh watch owes nothing to earlier silence. */
  watchedSinceMs(peer: string): number | undefined {
    return this.#health.watchedSinceMs(peer);
  }

  view(peer: string): PeerView | undefined {
    return this.#health.view(peer);
  }

  /** When `peer`'s `channel` entered its current state in this node's detector. */
  stateSinceMs(peer: string, channel: Channel): number | undefined {
    return this.#health.stateSinceMs(peer, channel);
  }

  watched(): string[] {
    return this.#health.peers();
  }

  sendsTo(): string[] {
    return [...this.#sendTo];
  }

  /** This node's load level from now on, carried by every heartbeat; undefined (the default): none carried. */
  setLoad(load: LoadStamp | undefined): void {
    this.#load = load;
  }

  /** The heartbeat this node last sent on `channel` (for an off-ring probe). */
  lastHeartbeat(channel: Channel): Heartbeat {
    return this.#heartbeat(channel, this.suspects());
  }

  #heartbeat(channel: Channel, suspects: Suspicion[]): Heartbeat {
    const h: Heartbeat = {
      sender: this.self,
      channel,
      incarnation: this.#incarnation,
      sequence: this.#sequence,
      epoch: this.#epoch,
      baseEpoch: this.#baseEpoch,
      digest: this.#digest,
      suspects,
    };
    if (this.#load !== undefined) h.load = this.#load;
    return h;
  }
}
