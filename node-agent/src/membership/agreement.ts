// Membership agreement without a single point of failure (seed 003's
// distributed coordinators): every node's own watchers on the ring are its
// coordinators. Pure like MemberCore: onHeartbeat()/onMap() take what
// arrived, tick() proposes and says what to send, with the caller's clock.
//
// Rules (why each holds is beside its code):
// - Suspicion. A watcher that sees a peer down on both channels (a node
//   failure; one channel down never is) lists it in every heartbeat it sends,
//   and heartbeats go to its successors — the peer's other watchers.
// - Down needs a quorum of the peer's watchers: Q = min(2, live watchers),
//   where the watchers are the peer's k+1 successors on the agreed ring and
//   live means up in the agreed map. Two, not one: any single fault (one
//   observer's NIC, one cut path) then never marks a node down. Two, not a
//   majority of k+1: a watcher that is itself down cannot vote, and a majority
//   would grow with k. A watcher already down in the map does not count, so a
//   node whose other watcher died with it is confirmed by the one left,
//   instead of waiting for the dead watcher to go out.
// - Majority: no agreed map shows half or more of the operator map's members
//   anything but up. The side of a partition that could do that might be the
//   smaller one; with the rule, the maps of two sides always share an up node,
//   so their rings meet again when the partition heals (a 2|2 split of four
//   nodes would otherwise cast the other half out on each side, and two
//   disjoint rings never speak again). A cluster that lost half its nodes
//   waits for them, or for the operator. Small clusters, then: of 3 nodes
//   (k = 1: each watched by both others) a crashed one is marked down when
//   both survivors see it, and nothing more after that, since two of three is
//   the least majority; 2 nodes never mark each other (neither could tell a
//   partition from a crash); a lone survivor never changes the map.
// - At least one confirming suspicion must be fresh: seen after the map last
//   showed the peer up. A peer that one watcher hears and two cannot (partial
//   connectivity) is marked up by the one that hears it and then stays up for
//   a while, instead of flapping between the two views every tick. The while
//   is bounded: an 'up' in a map is not always news (the winner of a race
//   between two proposals may simply never have had the peer down), so a
//   watcher that has heard nothing for a node-down period since the map said
//   up holds fresh silence again. Each repeat without the watcher's detector
//   moving doubles that period (up to STALE_DOUBLINGS_MAX times), so partial
//   connectivity settles into rare flips, not a flap.
// - Up: a node down in the map that this node hears again (any channel, any
//   incarnation) is proposed up at once; a heartbeat is proof of life.
// - Out: a node down in the map for outGraceMs (on the proposer's clock, from
//   when it adopted the down) and still confirmed down by a quorum is out.
// - Proposals: whoever holds the evidence proposes the current map plus its
//   changes at epoch + 1 and sends it to every member. Proposers that race to
//   the same content agree (the digest excludes the proposer). Different
//   content at one epoch is settled by (proposer, digest), highest wins, and
//   the winner's content is adopted one epoch up, so every agent's epoch only
//   grows; the loser proposes again on top if its evidence still holds.
// - Spread: heartbeats carry (epoch, digest); whoever receives one that
//   differs from its own map sends its map back (at most one per peer per
//   mapPushIntervalMs), and a node sent an older map answers with its own.
//   So a lost broadcast or a healed partition repairs itself along the ring.
// - Maps travel as changes from the operator's map they grew from (the base);
//   an operator map with a higher epoch replaces everything and wins. A peer
//   on another base (its heartbeats say) is sent the base too, so an agent
//   that missed an operator map, or restarted from an old one, catches up.
import type { ClusterMap, NodeState } from "../core/cluster-map.ts";
import { mapDigest } from "../core/cluster-map.ts";
import type { AgreementConfig } from "./config.ts";
import { validateAgreementConfig } from "./config.ts";
import type { Channel, Heartbeat, Suspicion } from "./heartbeat.ts";
import { CHANNELS } from "./heartbeat.ts";
import type { MapMessage } from "./map-message.ts";
import { applyChanges, changesFrom, encodeMapMessage } from "./map-message.ts";
import type { Datagram } from "./member-core.ts";
import type { HealthEvent, PeerState } from "./peer-health.ts";
import { ringOrder, successors } from "./ring.ts";

export interface MapChange {
  id: string;
  from: NodeState | undefined;
  to: NodeState;
}

export interface MapEvent {
  kind: "map";
  map: ClusterMap;
  proposer: string;
  digest: string;
  /**
   * proposed: this node made it. adopted: a peer's, at a higher epoch.
   * derived: a peer's content that won a same-epoch race, one epoch up.
   * outside: an operator map.
   */
  how: "proposed" | "adopted" | "derived" | "outside";
  /** Nodes whose state differs from this node's previous map. */
  changed: MapChange[];
  atMs: number;
}

export interface AgreementOptions {
  self: string;
  /** The operator's map to start from (the base of every agreed map until the next one). */
  map: ClusterMap;
  /** k: each node is watched by its k+1 successors on the ring. */
  toleratedLosses: number;
  /** A watcher's suspicions count for this long after its last heartbeat (the detector's suspectAfterMs). */
  voiceTtlMs: number;
  /** Silence held against a peer the map then showed up is stale for this long at first (the detector's nodeDownAfterMs). */
  staleMs: number;
  config: AgreementConfig;
  nowMs: number;
}

export interface AgreementStats {
  proposed: number;
  adopted: number;
  derived: number;
  /** Map datagrams sent to repair one peer's map. */
  pushed: number;
  /** Map datagrams sent to every member after a proposal. */
  broadcast: number;
  /** Map datagrams refused: another base map, or content that does not match its digest. */
  refused: number;
  /** Proposals not made because the map would not fit one datagram. */
  tooLarge: number;
}

interface Voice {
  epoch: number;
  digest: string;
  suspects: Suspicion[];
  atMs: number;
  incarnation: number;
  sequence: number;
}

const keyOf = (epoch: number, digest: string) => `${epoch}:${digest}`;

/** A stale mark lasts staleMs, doubled for each repeat while the watcher's view of the peer stands: at most 2^this. */
export const STALE_DOUBLINGS_MAX = 6;

interface StaleMark {
  /** Until when the silence is stale; undefined once it lapsed (the mark stays, to count repeats). */
  untilMs: number | undefined;
  repeats: number;
}

/** Orders two maps of one epoch: higher proposer, then higher digest, wins. */
function outranks(a: { proposer: string; digest: string }, b: { proposer: string; digest: string }): boolean {
  if (a.proposer !== b.proposer) return a.proposer > b.proposer;
  return a.digest > b.digest;
}

function withState(map: ClusterMap, epoch: number, changes: ReadonlyMap<string, NodeState>): ClusterMap {
  return {
    epoch,
    nodes: map.nodes.map((n) => {
      const to = changes.get(n.id);
      if (to === undefined) return n;
      const { outEpoch: _, ...rest } = n;
      return to === "out" ? { ...rest, state: to, outEpoch: epoch } : { ...rest, state: to };
    }),
  };
}

export class Agreement {
  readonly self: string;
  readonly stats: AgreementStats = {
    proposed: 0,
    adopted: 0,
    derived: 0,
    pushed: 0,
    broadcast: 0,
    refused: 0,
    tooLarge: 0,
  };
  readonly #k: number;
  readonly #voiceTtlMs: number;
  readonly #staleMs: number;
  readonly #config: AgreementConfig;
  #base: ClusterMap;
  #baseDigest: string;
  #map: ClusterMap;
  #proposer = "";
  #digest: string;
  #ring: string[] = [];
  #states = new Map<string, NodeState>();
  /** Every node of the map, in id order. */
  #ids: string[] = [];
  /** The base map's members (not out there), and how many of them are up in the current map. */
  #members = 0;
  #upMembers = 0;
  readonly #voices = new Map<string, Voice>();
  /** Last heartbeat from each sender, by this node's clock. */
  readonly #heardMs = new Map<string, number>();
  /** When this node adopted a map in which the node is down. */
  readonly #downSinceMs = new Map<string, number>();
  /**
   * Peers whose current down (in this node's detector) began before the map
   * last showed them up: until when that silence stays stale, and how many
   * times it was made stale since the detector last moved.
   */
  readonly #stale = new Map<string, StaleMark>();
  readonly #pushedMs = new Map<string, number>();
  #outbox: Datagram[] = [];
  #dirty = true;
  #lastTickMs = Number.NEGATIVE_INFINITY;
  /** The map key at which a proposal did not fit a datagram: not retried until the map changes. */
  #blockedKey: string | undefined;

  constructor(options: AgreementOptions) {
    this.self = options.self;
    this.#k = options.toleratedLosses;
    this.#voiceTtlMs = options.voiceTtlMs;
    this.#staleMs = options.staleMs;
    this.#config = validateAgreementConfig(options.config);
    this.#base = options.map;
    this.#baseDigest = mapDigest(options.map);
    this.#map = options.map;
    this.#digest = this.#baseDigest;
    this.#index();
    // Nodes the operator's map already has down count from now, like those of any adopted map.
    for (const [id, state] of this.#states) if (state === "down") this.#downSinceMs.set(id, options.nowMs);
  }

  /** Every node of the agreed map, any state, in id order. */
  ids(): readonly string[] {
    return this.#ids;
  }

  get map(): ClusterMap {
    return this.#map;
  }

  get digest(): string {
    return this.#digest;
  }

  get proposer(): string {
    return this.#proposer;
  }

  /** The epoch of the operator map the agreed map grew from. */
  get baseEpoch(): number {
    return this.#base.epoch;
  }

  /** This node's state in the agreed map; undefined when the map does not list it. */
  stateOf(id: string): NodeState | undefined {
    return this.#states.get(id);
  }

  /** Whether this node's suspicion of `peer` is fresh (see the rules above). */
  fresh(peer: string): boolean {
    return this.#stale.get(peer)?.untilMs === undefined;
  }

  /** Detector transitions of watched peers: a new down is fresh evidence, and any change may allow a proposal. */
  onHealth(events: readonly HealthEvent[]): void {
    for (const e of events) {
      if (e.kind !== "peer") continue;
      this.#stale.delete(e.peer);
      this.#dirty = true;
    }
  }

  onHeartbeat(h: Heartbeat, nowMs: number): void {
    this.#heardMs.set(h.sender, nowMs);
    if (this.#states.get(h.sender) === "down") this.#dirty = true;
    const prev = this.#voices.get(h.sender);
    const older =
      prev !== undefined &&
      (h.incarnation < prev.incarnation ||
        (h.incarnation === prev.incarnation && h.sequence < prev.sequence));
    if (!older) {
      if (
        prev === undefined ||
        prev.epoch !== h.epoch ||
        prev.digest !== h.digest ||
        !sameSuspects(prev.suspects, h.suspects)
      )
        this.#dirty = true;
      this.#voices.set(h.sender, {
        epoch: h.epoch,
        digest: h.digest,
        suspects: h.suspects,
        atMs: nowMs,
        incarnation: h.incarnation,
        sequence: h.sequence,
      });
    }
    if (h.epoch !== this.#map.epoch || h.digest !== this.#digest)
      this.#push(h.sender, h.channel, nowMs, h.baseEpoch !== this.#base.epoch);
  }

  /** A map datagram from a peer; returns the event when this node adopts a new map. */
  onMap(m: MapMessage, nowMs: number): MapEvent | undefined {
    if (m.epoch === this.#map.epoch && m.digest === this.#digest) return undefined;
    const sameBase = m.baseEpoch === this.#base.epoch && m.baseDigest === this.#baseDigest;
    if (m.epoch < this.#map.epoch) {
      this.#push(m.sender, m.channel, nowMs, !sameBase);
      return undefined;
    }
    // Grown from another operator map: usable only with that map along, and only if it is what it claims.
    const base = sameBase ? this.#base : m.base;
    if (base === undefined || (!sameBase && mapDigest(base) !== m.baseDigest)) {
      this.stats.refused++;
      return undefined;
    }
    const rebuilt = applyChanges(base, m.epoch, m.entries);
    if (rebuilt === undefined || mapDigest(rebuilt) !== m.digest) {
      this.stats.refused++;
      return undefined;
    }
    if (m.epoch > this.#map.epoch) {
      this.stats.adopted++;
      return this.#adopt(rebuilt, m.proposer, "adopted", nowMs, m.digest, base);
    }
    if (!outranks(m, { proposer: this.#proposer, digest: this.#digest })) {
      this.#push(m.sender, m.channel, nowMs, !sameBase);
      return undefined;
    }
    // Everyone holding the loser derives the same map from the winner, so derived maps agree too.
    this.stats.derived++;
    const derived = { epoch: m.epoch + 1, nodes: rebuilt.nodes };
    return this.#adopt(derived, m.proposer, "derived", nowMs, mapDigest(derived), base);
  }

  /**
   * An operator map, adopted as the new base above the current epoch (as
   * Agent.update does). At the current epoch too if it differs: the agent took
   * it before our own map of that epoch reached it, and agent and agreement
   * must hold the same map; the race with peers then settles one epoch up.
   */
  adoptOutside(map: ClusterMap, nowMs: number): MapEvent | undefined {
    if (map.epoch < this.#map.epoch) return undefined;
    const digest = mapDigest(map);
    if (map.epoch === this.#map.epoch && digest === this.#digest) return undefined;
    return this.#adopt(map, "", "outside", nowMs, digest, map);
  }

  /**
   * Proposes what this node's evidence supports and returns what to send.
   * `view` is this node's detector view of its watched peers.
   */
  tick(
    nowMs: number,
    view: (peer: string) => PeerState | undefined,
    watched: readonly string[],
  ): { datagrams: Datagram[]; event?: MapEvent } {
    const graceDue = this.#graceDueMs() <= nowMs;
    this.#lastTickMs = nowMs;
    for (const mark of this.#stale.values())
      if (mark.untilMs !== undefined && mark.untilMs <= nowMs) {
        mark.untilMs = undefined;
        this.#dirty = true;
      }
    let event: MapEvent | undefined;
    if ((this.#dirty || graceDue) && this.#states.get(this.self) === "up") {
      this.#dirty = false;
      const changes = this.#evidence(nowMs, view, watched);
      if (changes.size > 0 && this.#blockedKey !== keyOf(this.#map.epoch, this.#digest))
        event = this.#propose(changes, nowMs);
    }
    this.#dirty = false;
    const datagrams = this.#outbox;
    this.#outbox = [];
    return event === undefined ? { datagrams } : { datagrams, event };
  }

  /** The earliest time tick() has work: now while something is queued or changed, else a grace or stale mark ending. */
  nextDeadlineMs(): number {
    if (this.#dirty || this.#outbox.length > 0) return Number.NEGATIVE_INFINITY;
    let dueMs = this.#graceDueMs();
    for (const { untilMs } of this.#stale.values())
      if (untilMs !== undefined && untilMs < dueMs) dueMs = untilMs;
    return dueMs;
  }

  #graceDueMs(): number {
    let dueMs = Number.POSITIVE_INFINITY;
    for (const sinceMs of this.#downSinceMs.values()) {
      const atMs = sinceMs + this.#config.outGraceMs;
      if (atMs > this.#lastTickMs && atMs < dueMs) dueMs = atMs;
    }
    return dueMs;
  }

  #evidence(
    nowMs: number,
    view: (peer: string) => PeerState | undefined,
    watched: readonly string[],
  ): Map<string, NodeState> {
    const changes = new Map<string, NodeState>();
    let up = this.#upMembers;
    const members = this.#members;
    for (const id of this.#downSinceMs.keys())
      if ((this.#heardMs.get(id) ?? Number.NEGATIVE_INFINITY) > (this.#downSinceMs.get(id) as number)) up++;
    for (const peer of [...watched].sort()) {
      if (view(peer) !== "down") continue;
      const state = this.#states.get(peer);
      if (state === "up" && (up - 1) * 2 > members && this.#confirmed(peer, true, nowMs)) {
        changes.set(peer, "down");
        up--;
      }
      if (state === "down") {
        const sinceMs = this.#downSinceMs.get(peer) ?? nowMs;
        const heard = (this.#heardMs.get(peer) ?? Number.NEGATIVE_INFINITY) > sinceMs;
        if (!heard && nowMs - sinceMs >= this.#config.outGraceMs && this.#confirmed(peer, false, nowMs))
          changes.set(peer, "out");
      }
    }
    for (const [id, sinceMs] of this.#downSinceMs)
      if ((this.#heardMs.get(id) ?? Number.NEGATIVE_INFINITY) > sinceMs) changes.set(id, "up");
    return changes;
  }

  /** A quorum of `peer`'s live watchers (this node among them) sees it down; fresh: one of them freshly. */
  #confirmed(peer: string, needFresh: boolean, nowMs: number): boolean {
    const live = successors(this.#ring, peer, this.#k).filter((w) => this.#states.get(w) === "up");
    if (!live.includes(this.self)) return false;
    const quorum = Math.min(2, live.length);
    let votes = 1;
    let fresh = this.fresh(peer);
    for (const w of live) {
      if (w === this.self) continue;
      const v = this.#voices.get(w);
      // Only a watcher holding this very map watches with this ring.
      if (v === undefined || v.epoch !== this.#map.epoch || v.digest !== this.#digest) continue;
      if (nowMs - v.atMs > this.#voiceTtlMs) continue;
      const s = v.suspects.find((x) => x.peer === peer);
      if (s === undefined) continue;
      votes++;
      fresh ||= s.fresh;
    }
    return votes >= quorum && (fresh || !needFresh);
  }

  #propose(changes: ReadonlyMap<string, NodeState>, nowMs: number): MapEvent | undefined {
    const before = this.#map;
    const next = withState(before, before.epoch + 1, changes);
    const digest = mapDigest(next);
    let message: (channel: Channel) => Buffer;
    try {
      const entries = changesFrom(this.#base, next);
      const fields = { sender: this.self, epoch: next.epoch, digest, proposer: this.self, entries };
      const base = { baseEpoch: this.#base.epoch, baseDigest: this.#baseDigest };
      encodeMapMessage({ ...fields, ...base, channel: "A" });
      message = (channel) => encodeMapMessage({ ...fields, ...base, channel });
    } catch {
      this.stats.tooLarge++;
      this.#blockedKey = keyOf(before.epoch, this.#digest);
      return undefined;
    }
    this.stats.proposed++;
    const event = this.#adopt(next, this.self, "proposed", nowMs, digest);
    // Every member of the old or new map hears it now; the ring repairs whatever is lost.
    const to = new Set<string>();
    for (const map of [before, next]) for (const n of map.nodes) if (n.state !== "out") to.add(n.id);
    to.delete(this.self);
    for (const channel of CHANNELS) {
      const bytes = message(channel);
      for (const id of to) this.#outbox.push({ to: id, channel, bytes, kind: "map" });
    }
    this.stats.broadcast += to.size * CHANNELS.length;
    return event;
  }

  #adopt(
    map: ClusterMap,
    proposer: string,
    how: MapEvent["how"],
    nowMs: number,
    digest: string,
    base = this.#base,
  ): MapEvent {
    if (base !== this.#base) {
      this.#base = base;
      this.#baseDigest = mapDigest(base);
    }
    const before = this.#states;
    this.#map = map;
    this.#proposer = proposer;
    this.#digest = digest;
    this.#index();
    const changed: MapChange[] = [];
    for (const [id, to] of this.#states) {
      const from = before.get(id);
      if (from === to) continue;
      changed.push({ id, from, to });
      if (to === "down") this.#downSinceMs.set(id, nowMs);
      else this.#downSinceMs.delete(id);
      // Silence this node already holds against a peer now up is no news: it may confirm, not decide (for a while).
      if (to === "up") {
        const repeats = Math.min((this.#stale.get(id)?.repeats ?? -1) + 1, STALE_DOUBLINGS_MAX);
        this.#stale.set(id, { untilMs: nowMs + this.#staleMs * 2 ** repeats, repeats });
      }
    }
    for (const id of this.#downSinceMs.keys()) if (!this.#states.has(id)) this.#downSinceMs.delete(id);
    for (const id of this.#stale.keys()) if (!this.#states.has(id)) this.#stale.delete(id);
    this.#dirty = true;
    return { kind: "map", map, proposer, digest: this.#digest, how, changed, atMs: nowMs };
  }

  #index(): void {
    this.#states = new Map(this.#map.nodes.map((n) => [n.id, n.state]));
    this.#ids = this.#map.nodes.map((n) => n.id).sort();
    this.#ring = ringOrder(this.#map.nodes.filter((n) => n.state !== "out").map((n) => n.id));
    const members = this.#base.nodes.filter((n) => n.state !== "out");
    this.#members = members.length;
    this.#upMembers = members.filter((n) => this.#states.get(n.id) === "up").length;
  }

  /** Sends this node's map to a peer that holds another; with the base too when the peer's base differs. */
  #push(to: string, channel: Channel, nowMs: number, withBase: boolean): void {
    if (nowMs - (this.#pushedMs.get(to) ?? Number.NEGATIVE_INFINITY) < this.#config.mapPushIntervalMs) return;
    this.#pushedMs.set(to, nowMs);
    const message: MapMessage = {
      sender: this.self,
      channel,
      epoch: this.#map.epoch,
      digest: this.#digest,
      proposer: this.#proposer,
      baseEpoch: this.#base.epoch,
      baseDigest: this.#baseDigest,
      entries: changesFrom(this.#base, this.#map),
    };
    let bytes: Buffer;
    try {
      bytes = encodeMapMessage(withBase ? { ...message, base: this.#base } : message);
    } catch {
      // A base too large for one datagram: the changes alone still reach peers on our base.
      this.stats.tooLarge++;
      if (!withBase) return;
      bytes = encodeMapMessage(message);
    }
    this.stats.pushed++;
    this.#outbox.push({ to, channel, bytes, kind: "map" });
  }
}

function sameSuspects(a: readonly Suspicion[], b: readonly Suspicion[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as Suspicion;
    const y = b[i] as Suspicion;
    if (x.peer !== y.peer || x.fresh !== y.fresh) return false;
  }
  return true;
}
