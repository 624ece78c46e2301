// The cluster map on the wire. Agreement changes only node states, so a map
// travels as the operator's map it grew from (the base: epoch and digest,
// which every agent holds) plus the nodes whose state differs from it. That
// stays one datagram while hundreds of nodes are down, where the whole map
// (two addresses per node) would not. The receiver rebuilds the whole map
// and checks it against the digest before adopting it. To a peer on another
// base (heartbeats say which) the base itself goes along, whole, when it fits.
//
//   header (heartbeat.ts), kind 1, then: u64 epoch, u8[8] digest, u64 base
//   epoch, u8[8] base digest, u8 proposer length, proposer (empty: an operator
//   map), u16 entry count, per entry: u8 id length, id, u8 state (0 up, 1 down,
//   2 out), u64 outEpoch (0 unless out); then u8 1 and the base map (u16 node
//   count, per node: id, state, outEpoch as above, then its two addresses as
//   u8 length + UTF-8), or u8 0
import type { ClusterMap, NodeEntry, NodeState } from "../core/cluster-map.ts";
import type { LoadNews } from "../load/load-news.ts";
import { LOAD_NEWS_BYTES_MAX, readLoadNewsBody } from "../load/load-news.ts";
import type { News } from "./channel-news.ts";
import { NEWS_BYTES_MAX, readNewsBody } from "./channel-news.ts";
import type { Channel, Heartbeat } from "./heartbeat.ts";
import {
  bad,
  checkDigest,
  checkId,
  HEARTBEAT_BYTES_MAX,
  KIND_LOAD,
  KIND_MAP,
  KIND_NEWS,
  KIND_PROBE,
  Reader,
  readHeader,
  readHeartbeatBody,
  Writer,
} from "./heartbeat.ts";

export interface MapEntry {
  id: string;
  state: NodeState;
  /** 0 unless out. */
  outEpoch: number;
}

export interface MapMessage {
  sender: string;
  channel: Channel;
  epoch: number;
  digest: string;
  /** Who proposed this map; "" for a map from outside (the operator). */
  proposer: string;
  baseEpoch: number;
  baseDigest: string;
  /** Nodes whose state differs from the base map. */
  entries: MapEntry[];
  /** The base map itself, for a peer that does not hold it. */
  base?: ClusterMap;
}

/** A map datagram stays below 64 KiB of UDP payload; about 2,000 changed nodes with short ids. */
export const MAP_BYTES_MAX = 60_000;
/** The most a socket may hand to the core: anything longer is dropped unread. */
export const DATAGRAM_BYTES_MAX = Math.max(MAP_BYTES_MAX, HEARTBEAT_BYTES_MAX);

const STATES: readonly NodeState[] = ["up", "down", "out"];

/** The nodes of `map` whose state (or outEpoch) differs from `base`, in id order. */
export function changesFrom(base: ClusterMap, map: ClusterMap): MapEntry[] {
  const before = new Map(base.nodes.map((n) => [n.id, n]));
  const out: MapEntry[] = [];
  for (const n of map.nodes) {
    const b = before.get(n.id);
    if (b !== undefined && b.state === n.state && (b.outEpoch ?? 0) === (n.outEpoch ?? 0)) continue;
    out.push({ id: n.id, state: n.state, outEpoch: n.outEpoch ?? 0 });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** `base` at `epoch` with `entries` applied; undefined when an entry names a node the base lacks. */
export function applyChanges(
  base: ClusterMap,
  epoch: number,
  entries: readonly MapEntry[],
): ClusterMap | undefined {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const nodes = base.nodes.map((n) => {
    const e = byId.get(n.id);
    if (e === undefined) return n;
    byId.delete(n.id);
    const { outEpoch: _, ...rest } = n;
    return e.state === "out"
      ? { ...rest, state: e.state, outEpoch: e.outEpoch }
      : { ...rest, state: e.state };
  });
  return byId.size === 0 ? { epoch, nodes } : undefined;
}

function validateEntry(e: MapEntry): void {
  checkId("entry id", e.id);
  if (!STATES.includes(e.state)) throw bad(`entry ${e.id}: bad state ${e.state}`);
  if (!Number.isSafeInteger(e.outEpoch) || e.outEpoch < 0) throw bad(`entry ${e.id}: bad outEpoch`);
  if ((e.state === "out") !== e.outEpoch > 0) throw bad(`entry ${e.id}: outEpoch set only when out`);
}

function validateBase(base: ClusterMap, m: MapMessage): void {
  if (base.epoch !== m.baseEpoch) throw bad("base map epoch differs from baseEpoch");
  if (base.nodes.length > 0xffff) throw bad("base map too large");
  const ids = new Set<string>();
  for (const n of base.nodes) {
    validateEntry({ id: n.id, state: n.state, outEpoch: n.outEpoch ?? 0 });
    if (ids.has(n.id)) throw bad(`base node ${n.id} twice`);
    ids.add(n.id);
    for (const a of n.addresses) checkId("address", a);
  }
}

export function encodeMapMessage(m: MapMessage): Buffer {
  checkId("sender", m.sender);
  checkId("proposer", m.proposer, true);
  checkDigest("digest", m.digest);
  checkDigest("base digest", m.baseDigest);
  for (const v of [m.epoch, m.baseEpoch])
    if (!Number.isSafeInteger(v) || v < 0) throw bad("epochs must be safe non-negative integers");
  if (m.entries.length > 0xffff) throw bad("too many entries");
  const ids = new Set<string>();
  for (const e of m.entries) {
    validateEntry(e);
    if (ids.has(e.id)) throw bad(`entry ${e.id} twice`);
    ids.add(e.id);
  }
  const w = new Writer()
    .header(KIND_MAP, m.channel, m.sender)
    .u64(m.epoch)
    .digest(m.digest)
    .u64(m.baseEpoch)
    .digest(m.baseDigest)
    .text(m.proposer)
    .u16(m.entries.length);
  for (const e of m.entries) w.text(e.id).u8(STATES.indexOf(e.state)).u64(e.outEpoch);
  if (m.base === undefined) w.u8(0);
  else {
    validateBase(m.base, m);
    w.u8(1).u16(m.base.nodes.length);
    for (const n of m.base.nodes)
      w.text(n.id)
        .u8(STATES.indexOf(n.state))
        .u64(n.outEpoch ?? 0)
        .text(n.addresses[0])
        .text(n.addresses[1]);
  }
  const bytes = w.bytes();
  if (bytes.length > MAP_BYTES_MAX) throw bad(`map of ${bytes.length} bytes exceeds ${MAP_BYTES_MAX}`);
  return bytes;
}

export type Datagram =
  | { kind: "heartbeat"; heartbeat: Heartbeat }
  | { kind: "probe"; heartbeat: Heartbeat }
  | { kind: "map"; map: MapMessage }
  | { kind: "news"; news: News }
  | { kind: "load"; load: LoadNews };

/** Decodes any membership datagram; garbage throws MOSAIC_ERR_BAD_REQUEST and nothing else. */
export function decodeDatagram(buf: Buffer): Datagram {
  if (!Buffer.isBuffer(buf)) throw bad("not a buffer");
  if (buf.length > DATAGRAM_BYTES_MAX) throw bad(`${buf.length} bytes is too long`);
  const r = new Reader(buf);
  const header = readHeader(r);
  if (header.kind === KIND_NEWS) {
    if (buf.length > NEWS_BYTES_MAX) throw bad(`${buf.length} bytes is too long for news`);
    return { kind: "news", news: readNewsBody(r, header) };
  }
  if (header.kind === KIND_LOAD) {
    if (buf.length > LOAD_NEWS_BYTES_MAX) throw bad(`${buf.length} bytes is too long for load news`);
    return { kind: "load", load: readLoadNewsBody(r, header) };
  }
  if (header.kind !== KIND_MAP) {
    if (buf.length > HEARTBEAT_BYTES_MAX) throw bad(`${buf.length} bytes is too long for a heartbeat`);
    const heartbeat = readHeartbeatBody(r, header);
    return header.kind === KIND_PROBE ? { kind: "probe", heartbeat } : { kind: "heartbeat", heartbeat };
  }
  const epoch = r.u64("epoch");
  const digest = r.digest("digest");
  const baseEpoch = r.u64("base epoch");
  const baseDigest = r.digest("base digest");
  const proposer = r.text("proposer", true);
  const count = r.u16("entry count");
  const entries: MapEntry[] = [];
  const ids = new Set<string>();
  for (let i = 0; i < count; i++) {
    const id = r.text("entry id");
    const stateIndex = r.u8("entry state");
    const state = STATES[stateIndex];
    if (state === undefined) throw bad(`entry ${id}: bad state ${stateIndex}`);
    const e = { id, state, outEpoch: r.u64("entry outEpoch") };
    validateEntry(e);
    if (ids.has(id)) throw bad(`entry ${id} twice`);
    ids.add(id);
    entries.push(e);
  }
  const hasBase = r.u8("base flag");
  if (hasBase > 1) throw bad(`bad base flag ${hasBase}`);
  const base = hasBase === 1 ? readBase(r, baseEpoch) : undefined;
  r.end();
  const { sender, channel } = header;
  const map: MapMessage = { sender, channel, epoch, digest, proposer, baseEpoch, baseDigest, entries };
  if (base !== undefined) map.base = base;
  return { kind: "map", map };
}

function readBase(r: Reader, epoch: number): ClusterMap {
  const count = r.u16("base node count");
  const nodes: NodeEntry[] = [];
  const ids = new Set<string>();
  for (let i = 0; i < count; i++) {
    const id = r.text("base node id");
    const stateIndex = r.u8("base node state");
    const state = STATES[stateIndex];
    if (state === undefined) throw bad(`base node ${id}: bad state ${stateIndex}`);
    const outEpoch = r.u64("base node outEpoch");
    validateEntry({ id, state, outEpoch });
    if (ids.has(id)) throw bad(`base node ${id} twice`);
    ids.add(id);
    const addresses: [string, string] = [r.text("address A"), r.text("address B")];
    nodes.push(state === "out" ? { id, addresses, state, outEpoch } : { id, addresses, state });
  }
  return { epoch, nodes };
}
