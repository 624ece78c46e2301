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
// find each other. Channel news (channel-news.ts) carries each watcher's view
// of its peers' channels to every member, so that a peer this node does not
// watch is routed off a dead NIC too (route()); it never changes the map.
// This node's load level (setLoad) rides its heartbeats and, when it changes,
// load news to every member (load/load-gossip.ts), so every node knows every
// holder's level (loadOf) within a heartbeat interval.
import type { ClusterMap } from "../core/cluster-map.ts";
import type { LoadLevel } from "../load/level.ts";
import { LoadAnnouncer, LoadBoard } from "../load/load-gossip.ts";
import { encodeLoadNews } from "../load/load-news.ts";
import type { MapEvent } from "./agreement.ts";
import { Agreement } from "./agreement.ts";
import type { ChannelState } from "./channel-detector.ts";
import type { News, NewsItem } from "./channel-news.ts";
import { encodeNews, newsOf } from "./channel-news.ts";
import type { AgreementConfig, DetectorConfig } from "./config.ts";
import { defaultAgreementConfig, newsLeaseMs, validateDetectorConfig } from "./config.ts";
import type { Channel, Heartbeat } from "./heartbeat.ts";
import { CHANNELS, encodeHeartbeat } from "./heartbeat.ts";
import type { Datagram as AnyDatagram } from "./map-message.ts";
import { decodeDatagram } from "./map-message.ts";
import type { Datagram } from "./member-core.ts";
import { MemberCore } from "./member-core.ts";
import { NewsAnnouncer } from "./news-announcer.ts";
import { NewsBoard, newsRoute } from "./news-board.ts";
import type { HealthEvent, PeerView } from "./peer-health.ts";

/**
 * The channel this node's traffic to a peer it does not watch takes, from
 * the watchers' news (news-board.ts); null: unknown, connectivity decides.
 * Watched peers' routes change with "active" events instead.
 */
export interface RouteEvent {
  kind: "route";
  peer: string;
  from: Channel | null;
  to: Channel | null;
  atMs: number;
}

export type MembershipEvent = HealthEvent | MapEvent | RouteEvent;

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
  readonly #announcer: NewsAnnouncer;
  readonly #board: NewsBoard;
  readonly #loadAnnouncer: LoadAnnouncer;
  readonly #loads: LoadBoard;
  /** Routes by news of the peers this node does not watch; absent: unknown. */
  readonly #routes = new Map<string, Channel>();
  /** When the news list may change without a detector transition (newsOf). */
  #newsRecheckMs = Number.POSITIVE_INFINITY;
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
      staleMs: this.#config.nodeDownAfterMs,
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
    const k = this.#config.toleratedLosses;
    this.#announcer = new NewsAnnouncer(this.self, this.#incarnation, {
      copies: k + 1,
      copyIntervalMs: this.#config.heartbeatIntervalMs,
      refreshMs: this.#config.newsRefreshMs,
    });
    this.#board = new NewsBoard(newsLeaseMs(this.#config));
    this.#loadAnnouncer = new LoadAnnouncer({
      copies: k + 1,
      copyIntervalMs: this.#config.heartbeatIntervalMs,
      refreshMs: this.#config.newsRefreshMs,
    });
    // Refreshed as often as channel news, so it keeps as long: k refreshes may be lost.
    this.#loads = new LoadBoard(newsLeaseMs(this.#config));
  }

  /**
   * This node's load level from nowMs: carried by every heartbeat from now
   * on, and a change goes to every member at the next tick. Never called
   * (the simulator): heartbeats carry no level and no load news is sent.
   */
  setLoad(level: LoadLevel, nowMs: number): void {
    this.#loadAnnouncer.set(level, nowMs);
    this.#member.setLoad(this.#loadAnnouncer.stamp);
  }

  /** `peer`'s load level as its heartbeats and load news say; Low when unknown. */
  loadOf(peer: string, nowMs: number): LoadLevel {
    return this.#loads.levelOf(peer, nowMs);
  }

  /** The peers whose level is not Low now. */
  loaded(nowMs: number): Map<string, LoadLevel> {
    return this.#loads.loaded(nowMs);
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
    if (agreed.event !== undefined) events.push(agreed.event, ...this.#follow(nowMs));
    const datagrams = agreed.datagrams;
    const heartbeats = member.tickSend(nowMs);
    datagrams.push(...heartbeats);
    if (heartbeats.length > 0 && ++this.#rounds % this.#probeEveryRounds === 0)
      datagrams.push(...this.#probe());
    // This tick's detector transitions (and ring) are in the news sent now.
    const look = (peer: string, channel: Channel) => {
      const state = member.view(peer)?.channels[channel];
      const sinceMs = member.stateSinceMs(peer, channel);
      return state === undefined || sinceMs === undefined ? undefined : { state, sinceMs };
    };
    const listed = this.#announcer.items();
    const { items, recheckMs } = newsOf(member.watched(), look, listed, nowMs, this.#config.suspectAfterMs);
    this.#newsRecheckMs = recheckMs;
    this.#announcer.set(items, nowMs);
    const news = this.#announcer.due(nowMs);
    if (news !== undefined) datagrams.push(...this.#newsDatagrams(news));
    if (this.#loadAnnouncer.due(nowMs)) datagrams.push(...this.#loadDatagrams());
    events.push(...this.#reroute(this.#board.expire(nowMs), nowMs));
    return { datagrams, events };
  }

  /**
   * News to every node of the map, on both channels: a small datagram each.
   * Out ones too: one may be alive (a healed partition not yet undone), and
   * a list taken back must reach everyone who may hold it.
   */
  #newsDatagrams(news: (channel: Channel) => News): Datagram[] {
    const datagrams: Datagram[] = [];
    for (const channel of CHANNELS) {
      const bytes = encodeNews(news(channel));
      for (const to of this.agreement.ids())
        if (to !== this.self) datagrams.push({ to, channel, bytes, kind: "news" });
    }
    return datagrams;
  }

  /** This node's load level to every node of the map (out ones too, as news), on both channels. */
  #loadDatagrams(): Datagram[] {
    const datagrams: Datagram[] = [];
    const load = this.#loadAnnouncer.stamp;
    for (const channel of CHANNELS) {
      const bytes = encodeLoadNews({ sender: this.self, channel, incarnation: this.#incarnation, load });
      for (const to of this.agreement.ids())
        if (to !== this.self) datagrams.push({ to, channel, bytes, kind: "load" });
    }
    return datagrams;
  }

  /**
   * Routes by news of `peers` (all peers if this node itself is among them:
   * its own NIC counts for every route); an event for each that changed.
   */
  #reroute(peers: readonly string[], nowMs: number): RouteEvent[] {
    if (peers.length === 0) return [];
    const watched = new Set(this.#member.watched());
    const events: RouteEvent[] = [];
    const all = peers.includes(this.self) ? this.agreement.ids() : peers;
    const own = this.#board.unusable(this.self);
    for (const peer of new Set(all)) {
      if (peer === this.self || watched.has(peer)) continue;
      const to =
        this.agreement.stateOf(peer) === undefined ? undefined : newsRoute(this.#board.unusable(peer), own);
      const from = this.#routes.get(peer);
      if (to === from) continue;
      if (to === undefined) this.#routes.delete(peer);
      else this.#routes.set(peer, to);
      events.push({ kind: "route", peer, from: from ?? null, to: to ?? null, atMs: nowMs });
    }
    return events;
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
    let d: AnyDatagram;
    try {
      d = decodeDatagram(bytes);
    } catch {
      this.#rejected++;
      return [];
    }
    if (d.kind === "news") {
      const { sender } = d.news;
      // From ourselves, a node outside the map, or the other channel: crossed wiring or garbage.
      if (
        d.news.channel !== channel ||
        sender === this.self ||
        this.agreement.stateOf(sender) === undefined
      ) {
        this.#rejected++;
        return [];
      }
      return this.#reroute(this.#board.accept(d.news, nowMs), nowMs);
    }
    if (d.kind === "load") {
      const { sender } = d.load;
      if (d.load.channel !== channel || sender === this.self || this.agreement.stateOf(sender) === undefined)
        this.#rejected++;
      else this.#loads.accept(sender, d.load.incarnation, d.load.load, nowMs);
      return [];
    }
    if (d.kind === "probe") {
      if (d.heartbeat.channel !== channel || d.heartbeat.sender === this.self) this.#rejected++;
      else {
        this.agreement.onHeartbeat(d.heartbeat, nowMs);
        this.#hearLoad(d.heartbeat, nowMs);
      }
      return [];
    }
    if (d.kind === "heartbeat") {
      const events = member.onHeartbeat(d.heartbeat, channel, nowMs);
      // MemberCore refuses crossed wiring and our own echo; agreement must not hear those either.
      if (d.heartbeat.channel !== channel || d.heartbeat.sender === this.self) return events;
      this.agreement.onHealth(events);
      this.agreement.onHeartbeat(d.heartbeat, nowMs);
      this.#hearLoad(d.heartbeat, nowMs);
      return events;
    }
    if (d.map.channel !== channel || d.map.sender === this.self) {
      this.#rejected++;
      return [];
    }
    const event = this.agreement.onMap(d.map, nowMs);
    if (event === undefined) return [];
    return [event, ...this.#follow(nowMs)];
  }

  /** A heartbeat's load level, if it carries one (older agents' do not). */
  #hearLoad(h: Heartbeat, nowMs: number): void {
    if (h.load !== undefined && this.agreement.stateOf(h.sender) !== undefined)
      this.#loads.accept(h.sender, h.incarnation, h.load, nowMs);
  }

  /** An operator map (Agent.update): see Agreement.adoptOutside. */
  adopt(map: ClusterMap, nowMs: number): MembershipEvent[] {
    const event = this.agreement.adoptOutside(map, nowMs);
    return event === undefined ? [] : [event, ...this.#follow(nowMs)];
  }

  /** The earliest time at which tick() has work. */
  nextDeadlineMs(): number {
    return Math.min(
      this.#member.nextDeadlineMs(),
      this.agreement.nextDeadlineMs(),
      this.#announcer.nextDeadlineMs(),
      this.#loadAnnouncer.nextDeadlineMs(),
      this.#newsRecheckMs,
      this.#board.nextDeadlineMs(),
    );
  }

  view(peer: string): PeerView | undefined {
    return this.#member.view(peer);
  }

  /**
   * The channel for this node's traffic to `peer`: its own detector's choice
   * for a watched peer, else the watchers' news (news-board.ts); undefined:
   * neither channel usable, or nothing known (connectivity decides).
   */
  route(peer: string): Channel | undefined {
    const view = this.#member.view(peer);
    if (view !== undefined) return view.active ?? undefined;
    return this.#routes.get(peer);
  }

  /** The peers routed by the watchers' news (those this node does not watch), and their channel. */
  routes(): ReadonlyMap<string, Channel> {
    return this.#routes;
  }

  /**
   * `peer`'s `channel` as this node knows it: its detector's state for a
   * watched peer; for another, down when news rules the channel out and up
   * when news routes traffic onto it; undefined: nothing known.
   */
  channelState(peer: string, channel: Channel): ChannelState | undefined {
    const view = this.#member.view(peer);
    if (view !== undefined) return view.channels[channel];
    const route = this.#routes.get(peer);
    if (route === undefined) return undefined;
    return route === channel ? "up" : "down";
  }

  /** The channel news this node announces now (its watched peers with one channel unusable). */
  news(): { sequence: number; items: readonly NewsItem[]; announced: number } {
    return {
      sequence: this.#announcer.sequence,
      items: this.#announcer.items(),
      announced: this.#announcer.announced,
    };
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

  /**
   * Points detection at the agreed map's ring; routes by news follow: a
   * newly watched peer is the detector's, a peer no longer watched (or out
   * of the map) is routed by news again.
   */
  #follow(nowMs: number): RouteEvent[] {
    const { map, digest, baseEpoch } = this.agreement;
    this.#member.setMembers(this.#ring(), map.epoch, nowMs, digest, baseEpoch);
    const inMap = (id: string) => this.agreement.stateOf(id) !== undefined;
    this.#board.forget(inMap);
    this.#loads.forget(inMap);
    for (const peer of this.#member.watched()) this.#routes.delete(peer);
    return this.#reroute([...this.agreement.ids(), ...this.#routes.keys()], nowMs);
  }

  /** The agreed map's members that are not out, and this node in any case. */
  #ring(): string[] {
    const members = this.agreement.map.nodes.filter((n) => n.state !== "out").map((n) => n.id);
    if (!members.includes(this.self)) members.push(this.self);
    return members;
  }
}
