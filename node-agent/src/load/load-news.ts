// Load news: an agent's load level, told to every member of the map. A
// node's heartbeats reach only its k+1 watchers, yet any agent may read
// from any holder; so a change of level also goes to every node, as one
// small datagram per node and channel (a level is not about a channel: both
// carry it, so a dead NIC cannot hide it). When: load-gossip.ts.
//
//   header (membership/heartbeat.ts), kind 4, then: u64 sender's
//   incarnation, u8 level (0 Low, 1 Medium, 2 High), u64 load sequence
//   (grows with every change of level of one incarnation)
import type { Channel, Header, LoadStamp, Reader } from "../membership/heartbeat.ts";
import {
  bad,
  checkId,
  checkLoadStamp,
  HEADER_BYTES,
  KIND_LOAD,
  LOAD_STAMP_BYTES,
  peekKind,
  SENDER_BYTES_MAX,
  Writer,
} from "../membership/heartbeat.ts";

export interface LoadNews {
  sender: string;
  channel: Channel;
  /** The sender's incarnation: a restarted sender's sequence starts again. */
  incarnation: number;
  load: LoadStamp;
}

export const LOAD_NEWS_BYTES_MAX = HEADER_BYTES + SENDER_BYTES_MAX + 8 + LOAD_STAMP_BYTES;

/** Whether a datagram claims to be load news (its header only): the driver hands it over at once. */
export function isLoadNews(bytes: Buffer): boolean {
  return peekKind(bytes) === KIND_LOAD;
}

export function encodeLoadNews(n: LoadNews): Buffer {
  checkId("sender", n.sender);
  if (n.channel !== "A" && n.channel !== "B") throw bad("channel must be A or B");
  if (!Number.isSafeInteger(n.incarnation) || n.incarnation < 0)
    throw bad("load incarnation must be a safe non-negative integer");
  checkLoadStamp(n.load);
  return new Writer().header(KIND_LOAD, n.channel, n.sender).u64(n.incarnation).load(n.load).bytes();
}

/** The body after its header; anything malformed throws MOSAIC_ERR_BAD_REQUEST. */
export function readLoadNewsBody(r: Reader, header: Header): LoadNews {
  const incarnation = r.u64("load incarnation");
  const load = r.load();
  r.end();
  return { sender: header.sender, channel: header.channel, incarnation, load };
}
