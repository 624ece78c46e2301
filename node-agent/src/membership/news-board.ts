// What a node has heard of the watchers' channel news (channel-news.ts), and
// the route it gives to peers this node does not watch itself. Pure: the
// caller passes its clock.
//
// The rule:
// - Each sender's newest list stands for it: newest by (incarnation,
//   sequence), so duplicates, late copies and a restarted sender's old
//   lists change nothing. A copy or refresh of the standing list renews it.
// - A list not renewed for leaseMs is dropped: that sender's word is
//   "unknown" again. The lease is k+1 refresh periods plus suspectAfterMs,
//   so k refreshes lost in a row cannot end it, while a sender that died,
//   restarted, or stopped watching a peer without its empty list reaching us
//   stops counting within a lease. (Expiring by time rather than by the
//   peer's node state also covers a receiver that restarted: it learns the
//   standing lists from their next refresh.)
// - Disagreeing watchers: a peer's channel is unusable while any standing
//   list says so, and usable again only once every sender that said so has
//   taken it back (or its word expired). Using the standby wrongly costs
//   little; using a dead channel costs a stall.
// - News about this node itself (its own watchers cannot hear it on a
//   channel: its own NIC is dead) makes that channel unusable towards every
//   peer routed here.
// - The route is the one channel left. Neither channel unusable, or both:
//   undefined ("unknown"), and the caller's connectivity decides as before.
// - Peers this node watches are routed by its own detector, never by news
//   (the caller's business): its own view is first-hand.
// - Lists are per sender, not per (peer, incarnation): the sender's detector
//   already follows a peer through restarts (a crash is both channels down,
//   which is never listed, so its list drops the peer).
import type { News } from "./channel-news.ts";
import type { Channel } from "./heartbeat.ts";

interface Stamp {
  incarnation: number;
  sequence: number;
}

interface Standing extends Stamp {
  /** Peer → its unusable channel. */
  items: Map<string, Channel>;
  heardMs: number;
}

function compare(a: Stamp, b: Stamp): number {
  return a.incarnation !== b.incarnation ? a.incarnation - b.incarnation : a.sequence - b.sequence;
}

const NONE: ReadonlySet<Channel> = new Set();

/** The route the rule gives: the one channel neither the peer's news nor this node's own news rules out. */
export function newsRoute(peer: ReadonlySet<Channel>, self: ReadonlySet<Channel>): Channel | undefined {
  const a = peer.has("A") || self.has("A");
  const b = peer.has("B") || self.has("B");
  if (a === b) return undefined;
  return a ? "B" : "A";
}

export class NewsBoard {
  readonly #leaseMs: number;
  /** Newest stamp per sender, kept after its list is empty or expired, so a late copy cannot bring it back. */
  readonly #stamps = new Map<string, Stamp>();
  /** Non-empty standing lists, by sender. */
  readonly #lists = new Map<string, Standing>();
  /** Peer → the senders whose standing list names it. */
  readonly #named = new Map<string, Set<string>>();

  constructor(leaseMs: number) {
    this.#leaseMs = leaseMs;
  }

  /** A sender's news at nowMs; returns the peers whose news may have changed. */
  accept(news: News, nowMs: number): string[] {
    const stamp = this.#stamps.get(news.sender);
    const order = stamp === undefined ? 1 : compare(news, stamp);
    if (order < 0) return [];
    const standing = this.#lists.get(news.sender);
    if (order === 0 && standing !== undefined) {
      standing.heardMs = nowMs;
      return [];
    }
    this.#stamps.set(news.sender, { incarnation: news.incarnation, sequence: news.sequence });
    const changed = this.#drop(news.sender);
    if (news.items.length > 0) {
      const items = new Map(news.items.map((i) => [i.peer, i.unusable]));
      this.#lists.set(news.sender, {
        incarnation: news.incarnation,
        sequence: news.sequence,
        items,
        heardMs: nowMs,
      });
      for (const peer of items.keys()) {
        const senders = this.#named.get(peer) ?? new Set<string>();
        this.#named.set(peer, senders);
        senders.add(news.sender);
        changed.push(peer);
      }
    }
    return changed;
  }

  /** Drops lists whose lease ran out by nowMs; returns the peers they named. */
  expire(nowMs: number): string[] {
    const changed: string[] = [];
    for (const [sender, list] of this.#lists)
      if (nowMs - list.heardMs >= this.#leaseMs) changed.push(...this.#drop(sender));
    return changed;
  }

  /** Forgets senders `keep` refuses (gone from the map); returns the peers their lists named. */
  forget(keep: (sender: string) => boolean): string[] {
    const changed: string[] = [];
    for (const sender of this.#stamps.keys())
      if (!keep(sender)) {
        changed.push(...this.#drop(sender));
        this.#stamps.delete(sender);
      }
    return changed;
  }

  /** The channels of `peer` some standing list rules out. */
  unusable(peer: string): ReadonlySet<Channel> {
    const senders = this.#named.get(peer);
    if (senders === undefined) return NONE;
    const out = new Set<Channel>();
    for (const sender of senders) {
      const channel = this.#lists.get(sender)?.items.get(peer);
      if (channel !== undefined) out.add(channel);
    }
    return out;
  }

  /** When expire() next drops a list; Infinity: none stands. */
  nextDeadlineMs(): number {
    let earliestMs = Number.POSITIVE_INFINITY;
    for (const list of this.#lists.values()) earliestMs = Math.min(earliestMs, list.heardMs + this.#leaseMs);
    return earliestMs;
  }

  /** Senders with a standing list. */
  senders(): string[] {
    return [...this.#lists.keys()];
  }

  #drop(sender: string): string[] {
    const list = this.#lists.get(sender);
    if (list === undefined) return [];
    this.#lists.delete(sender);
    for (const peer of list.items.keys()) {
      const senders = this.#named.get(peer);
      senders?.delete(sender);
      if (senders?.size === 0) this.#named.delete(peer);
    }
    return [...list.items.keys()];
  }
}
