// Channel news: what a watcher tells every member about the peers it
// watches, so that a node which does not watch a peer (the ring gives each
// peer only k+1 watchers) still moves that peer's traffic off a dead NIC
// within the channel budget. A NIC failure is not a node failure, so news
// never touches the agreed map; it only picks channels.
//
// A watcher's news is its whole current list: each watched peer that has
// exactly one channel it cannot use (down, or returning and not yet trusted)
// and that channel. A peer with both channels unusable is a node failure
// (the map's business) and is not listed; neither is a healthy one. So a list
// replaces the sender's previous one wholesale, and an empty list clears it.
// When and how often lists go out: news-announcer.ts; how receivers combine
// the lists of several watchers into a route: news-board.ts.
//
//   header (heartbeat.ts), kind 3, then: u64 sender's incarnation, u64 news
//   sequence (grows with every new list of one incarnation; copies and
//   refreshes repeat it), u8 item count (≤ NEWS_ITEMS_MAX), per item: u8
//   unusable channel (0 = A, 1 = B), u8 length + peer id (UTF-8)
import type { ChannelState } from "./channel-detector.ts";
import type { Channel } from "./heartbeat.ts";
import {
  bad,
  checkId,
  HEADER_BYTES,
  type Header,
  KIND_NEWS,
  peekKind,
  type Reader,
  SENDER_BYTES_MAX,
  SUSPECTS_MAX,
  Writer,
} from "./heartbeat.ts";

export interface NewsItem {
  peer: string;
  /** The one channel of `peer` the sender cannot use; traffic belongs on the other. */
  unusable: Channel;
}

export interface News {
  sender: string;
  channel: Channel;
  /** The sender's incarnation: a restarted sender's sequence starts again. */
  incarnation: number;
  /** Grows with every new list; copies and refreshes of one list repeat it. */
  sequence: number;
  /** In peer order, each peer once. */
  items: NewsItem[];
}

/** A watcher watches k+1 peers, and k ≤ 3 in any sane setting (as for suspicions); more are not listed. */
export const NEWS_ITEMS_MAX = SUSPECTS_MAX;
/** 1,294 bytes at most: one packet on any Ethernet, like a heartbeat. */
export const NEWS_BYTES_MAX =
  HEADER_BYTES + SENDER_BYTES_MAX + 8 + 8 + 1 + NEWS_ITEMS_MAX * (2 + SENDER_BYTES_MAX);

/** Returning counts as unusable: a channel heard again is not trusted before its hold-down. */
const unusable = (state: ChannelState): boolean => state === "down" || state === "returning";

/** A watched peer's channel as its watcher's detector has it. */
export interface ChannelLook {
  state: ChannelState;
  /** When it entered that state. */
  sinceMs: number;
}

/**
 * What a watcher announces: each watched peer with one channel unusable
 * while the other is usable. A peer joins the list only while that other
 * channel has been plainly up (heard steadily, not even suspect) for
 * steadyMs (suspectAfterMs), and then stays while it is usable (up or
 * suspect): that keeps node failures and returns out of the news, and a
 * blip on the good channel does not withdraw it. A crashed peer's channels
 * fall silent together, so the first to go down finds the other already
 * suspect; a returning node's channels come back together, so the first to
 * be trusted again finds the other only just up. `listed`: the list so far.
 * `recheckMs`: when the list may change with no transition (a channel
 * becoming steady); Infinity if never.
 */
export function newsOf(
  watched: readonly string[],
  look: (peer: string, channel: Channel) => ChannelLook | undefined,
  listed: readonly NewsItem[],
  nowMs: number,
  steadyMs: number,
): { items: NewsItem[]; recheckMs: number } {
  const items: NewsItem[] = [];
  let recheckMs = Number.POSITIVE_INFINITY;
  for (const peer of [...watched].sort()) {
    const a = look(peer, "A");
    const b = look(peer, "B");
    if (a === undefined || b === undefined || unusable(a.state) === unusable(b.state)) continue;
    const [lost, other] = unusable(a.state) ? (["A", b] as const) : (["B", a] as const);
    const steadyAtMs = other.state === "up" ? other.sinceMs + steadyMs : Number.POSITIVE_INFINITY;
    const kept = listed.some((i) => i.peer === peer && i.unusable === lost);
    if (kept || steadyAtMs <= nowMs) {
      if (items.length < NEWS_ITEMS_MAX) items.push({ peer, unusable: lost });
    } else recheckMs = Math.min(recheckMs, steadyAtMs);
  }
  return { items, recheckMs };
}

export function sameItems(a: readonly NewsItem[], b: readonly NewsItem[]): boolean {
  return a.length === b.length && a.every((x, i) => x.peer === b[i]?.peer && x.unusable === b[i]?.unusable);
}

/** Whether a datagram claims to be news (its header; decoding checks the rest): a driver takes it at once. */
export function isNews(bytes: Buffer): boolean {
  return peekKind(bytes) === KIND_NEWS;
}

function checkStamp(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw bad(`${name} must be a safe non-negative integer`);
}

export function encodeNews(n: News): Buffer {
  checkId("sender", n.sender);
  if (n.channel !== "A" && n.channel !== "B") throw bad("channel must be A or B");
  checkStamp("news incarnation", n.incarnation);
  checkStamp("news sequence", n.sequence);
  if (n.items.length > NEWS_ITEMS_MAX) throw bad(`at most ${NEWS_ITEMS_MAX} news items`);
  const peers = new Set<string>();
  for (const item of n.items) {
    checkId("news peer", item.peer);
    if (item.unusable !== "A" && item.unusable !== "B") throw bad("news channel must be A or B");
    if (peers.has(item.peer)) throw bad(`news about ${item.peer} twice`);
    peers.add(item.peer);
  }
  const w = new Writer()
    .header(KIND_NEWS, n.channel, n.sender)
    .u64(n.incarnation)
    .u64(n.sequence)
    .u8(n.items.length);
  for (const item of n.items) w.u8(item.unusable === "A" ? 0 : 1).text(item.peer);
  return w.bytes();
}

/** The news body after its header; anything malformed throws MOSAIC_ERR_BAD_REQUEST. */
export function readNewsBody(r: Reader, header: Header): News {
  const incarnation = r.u64("news incarnation");
  const sequence = r.u64("news sequence");
  const count = r.u8("news item count");
  if (count > NEWS_ITEMS_MAX) throw bad(`${count} news items, at most ${NEWS_ITEMS_MAX}`);
  const items: NewsItem[] = [];
  const peers = new Set<string>();
  for (let i = 0; i < count; i++) {
    const channel = r.u8("news channel");
    if (channel > 1) throw bad(`bad news channel ${channel}`);
    const peer = r.text("news peer");
    if (peers.has(peer)) throw bad(`news about ${peer} twice`);
    peers.add(peer);
    items.push({ peer, unusable: channel === 0 ? "A" : "B" });
  }
  r.end();
  return { sender: header.sender, channel: header.channel, incarnation, sequence, items };
}
