// One node's whole membership: failure detection (MemberCore) and map
// agreement (Agreement) behind one tick()/onDatagram() pair, still without
// sockets or timers. The ring is always the agreed map's members that are not
// out, so detection follows every map this node adopts. A node that finds
// itself out keeps its place on its own ring and keeps sending heartbeats
// (nobody watches them) but never proposes: its heartbeats carry its map, so
// if a race between proposers ends with it up after all, a peer sends it
// that map and it is a member again. Every few heartbeat rounds one probe
// (a heartbeat off the ring, which only agreement reads) goes to the next
// node of the whole map in turn, so two maps whose rings do not meet still
// find each other.
import type { ClusterMap } from "../core/cluster-map.ts";
import type { MapEvent } from "./agreement.ts";
import { Agreement } from "./agreement.ts";
import type { AgreementConfig, DetectorConfig } from "./config.ts";
import { defaultAgreementConfig, validateDetectorConfig } from "./config.ts";
import type { Channel } from "./heartbeat.ts";
import { CHANNELS, encodeHeartbeat } from "./heartbeat.ts";
import type { Datagram as MapOrHeartbeat } from "./map-message.ts";
import { decodeDatagram } from "./map-message.ts";
import type { Datagram } from "./member-core.ts";
import { MemberCore } from "./member-core.ts";
import type { HealthEvent, PeerView } from "./peer-health.ts";

export type MembershipEvent = HealthEvent | MapEvent;

export interface MembershipCoreOptions {
  self: string;
  /** Grows on every restart (e.g. the start time in ms), so peers can tell a restart from a replay. */
  incarnation: number;
  /** The operator's map this node starts from. */
  map: ClusterMap;
  config: DetectorConfig;
  agreement?: AgreementConfig;
  nowMs: number;
}

export interface MembershipTick {
  datagrams: Datagram[];
  events: MembershipEvent[];
}

export class MembershipCore {
  readonly self: string;
  readonly agreement: Agreement;
  readonly #incarnation: number;
  readonly #config: DetectorConfig;
  readonly #probeEveryRounds: number;
  readonly #member: MemberCore;
  #rejected = 0;
  #rounds = 0;
  #probeAt = 0;

  constructor(options: MembershipCoreOptions) {
    this.self = options.self;
    this.#incarnation = options.incarnation;
    this.#config = validateDetectorConfig(options.config);
    const agreement = options.agreement ?? defaultAgreementConfig();
    this.#probeEveryRounds = agreement.probeEveryRounds;
    this.agreement = new Agreement({
      self: options.self,
      map: options.map,
      toleratedLosses: this.#config.toleratedLosses,
      voiceTtlMs: this.#config.suspectAfterMs,
      config: agreement,
      nowMs: options.nowMs,
    });
    this.#member = new MemberCore({
      self: this.self,
      incarnation: this.#incarnation,
      members: this.#ring(),
      epoch: options.map.epoch,
      digest: this.agreement.digest,
      baseEpoch: this.agreement.baseEpoch,
      config: this.#config,
      nowMs: options.nowMs,
      suspicionFresh: (peer) => this.agreement.fresh(peer),
    });
  }

  get map(): ClusterMap {
    return this.agreement.map;
  }

  /** Out of the agreed map (or not in it): heartbeats only, no proposals. */
  get retired(): boolean {
    return this.agreement.stateOf(this.self) === "out" || this.agreement.stateOf(this.self) === undefined;
  }

  /** Datagrams refused as garbage, misrouted or from the wrong channel: counted, never thrown. */
  get rejected(): number {
    return this.#rejected + this.#member.rejected;
  }

  tick(nowMs: number): MembershipTick {
    const member = this.#member;
    // Detection first, so the heartbeats sent below already carry this tick's suspicions and map.
    const events: MembershipEvent[] = member.tickHealth(nowMs);
    this.agreement.onHealth(events as HealthEvent[]);
    const agreed = this.agreement.tick(nowMs, (p) => member.view(p)?.state, member.watched());
    if (agreed.event !== undefined) {
      events.push(agreed.event);
      this.#follow(nowMs);
    }
    const datagrams = agreed.datagrams;
    const heartbeats = member.tickSend(nowMs);
    datagrams.push(...heartbeats);
    if (heartbeats.length > 0 && ++this.#rounds % this.#probeEveryRounds === 0)
      datagrams.push(...this.#probe());
    return { datagrams, events };
  }

  /** This round's heartbeat, on both channels, to the next node in turn that the ring does not reach. */
  #probe(): Datagram[] {
    const ids = this.agreement.ids();
    const ring = this.#member.sendsTo();
    for (let tries = 0; tries < ids.length; tries++) {
      const to = ids[this.#probeAt++ % ids.length] as string;
      if (to === this.self || ring.includes(to)) continue;
      return CHANNELS.map((channel) => ({
        to,
        channel,
        bytes: encodeHeartbeat(this.#member.lastHeartbeat(channel), true),
        kind: "probe" as const,
      }));
    }
    return [];
  }

  /** A datagram that arrived on `channel`. Garbage is counted and dropped: it must cost nothing else. */
  onDatagram(bytes: Buffer, channel: Channel, nowMs: number): MembershipEvent[] {
    const member = this.#member;
    let d: MapOrHeartbeat;
    try {
      d = decodeDatagram(bytes);
    } catch {
      this.#rejected++;
      return [];
    }
    if (d.kind === "probe") {
      if (d.heartbeat.channel !== channel || d.heartbeat.sender === this.self) this.#rejected++;
      else this.agreement.onHeartbeat(d.heartbeat, nowMs);
      return [];
    }
    if (d.kind === "heartbeat") {
      const events = member.onHeartbeat(d.heartbeat, channel, nowMs);
      // MemberCore refuses crossed wiring and our own echo; agreement must not hear those either.
      if (d.heartbeat.channel !== channel || d.heartbeat.sender === this.self) return events;
      this.agreement.onHealth(events);
      this.agreement.onHeartbeat(d.heartbeat, nowMs);
      return events;
    }
    if (d.map.channel !== channel || d.map.sender === this.self) {
      this.#rejected++;
      return [];
    }
    const event = this.agreement.onMap(d.map, nowMs);
    if (event === undefined) return [];
    this.#follow(nowMs);
    return [event];
  }

  /** An operator map (Agent.update): see Agreement.adoptOutside. */
  adopt(map: ClusterMap, nowMs: number): MapEvent | undefined {
    const event = this.agreement.adoptOutside(map, nowMs);
    if (event !== undefined) this.#follow(nowMs);
    return event;
  }

  /** The earliest time at which tick() has work. */
  nextDeadlineMs(): number {
    return Math.min(this.#member.nextDeadlineMs(), this.agreement.nextDeadlineMs());
  }

  view(peer: string): PeerView | undefined {
    return this.#member.view(peer);
  }

  watchedSinceMs(peer: string): number | undefined {
    return this.#member.watchedSinceMs(peer);
  }

  watched(): string[] {
    return this.#member.watched();
  }

  sendsTo(): string[] {
    return this.#member.sendsTo();
  }

  lastHeardMs(peer: string, channel: Channel): number | undefined {
    return this.#member.lastHeardMs(peer, channel);
  }

  /** Points detection at the agreed map's ring. */
  #follow(nowMs: number): void {
    const { map, digest, baseEpoch } = this.agreement;
    this.#member.setMembers(this.#ring(), map.epoch, nowMs, digest, baseEpoch);
  }

  /** The agreed map's members that are not out, and this node in any case. */
  #ring(): string[] {
    const members = this.agreement.map.nodes.filter((n) => n.state !== "out").map((n) => n.id);
    if (!members.includes(this.self)) members.push(this.self);
    return members;
  }
}
