// The membership datagrams, version 2. One header for every kind, so that a
// garbage datagram is refused before it touches state, then the kind's body.
// A heartbeat stays one small packet: fixed fields, the sender, and the
// sender's suspicions (at most SUSPECTS_MAX watched peers it sees down).
//
//   header  0 u8[2] magic "MH"   2 u8 version (2)   3 u8 kind (0 heartbeat, 1 map, 2 probe, 3 news)
//           4 u8 channel (0 = A, 1 = B)   5 u8 sender length   6 sender (UTF-8)
//   heartbeat body: u64 incarnation, u64 sequence, u64 sender's map epoch,
//           u64 epoch of the operator map it grew from (the base), u8[8]
//           sender's map digest, u8 suspect count, per suspect: u8 flags
//           (bit 0: fresh), u8 length, id (UTF-8); then, from agents that
//           measure load, u8 load level (0 Low, 1 Medium, 2 High) and u64 load
//           sequence (src/load/load-news.ts); a heartbeat without them (an
//           older agent's) says nothing of its sender's load: Low
//   probe body: a heartbeat's, sent off the ring (agreement reads it, detection does not)
//   map body: see map-message.ts
//   news body: see channel-news.ts
//   load body: see load/load-news.ts
//
// Version 1 (no digest, no suspicions) is refused and counted like garbage.
import { MosaicError } from "../errors.ts";
import { type LoadLevel, levelCode, levelOfCode } from "../load/level.ts";

export type Channel = "A" | "B";
export const CHANNELS: readonly Channel[] = ["A", "B"];

/** A watched peer the sender sees down on both channels. */
export interface Suspicion {
  peer: string;
  /**
   * The sender saw the peer go down after its map last showed the peer up.
   * Stale suspicion (silence that began before the map said up) still counts
   * towards a quorum, but cannot change the map on its own: see agreement.ts.
   */
  fresh: boolean;
}

export interface Heartbeat {
  sender: string;
  channel: Channel;
  /** Grows on every restart of the sender, so its sequence may start again from 0. */
  incarnation: number;
  /** Grows with every heartbeat of one incarnation on one channel: tells stale and duplicate packets. */
  sequence: number;
  /** The cluster-map epoch the sender holds: a peer with another one is sent the map. */
  epoch: number;
  /** The epoch of the operator map the sender's map grew from: a peer on another base is sent that too. */
  baseEpoch: number;
  /** Digest of the sender's map (16 hex digits): two maps of one epoch may differ while proposals race. */
  digest: string;
  /** Watched peers the sender sees down: what its successors need to confirm a node failure. */
  suspects: Suspicion[];
  /** The sender's load level, if it measures load (older agents do not: their readers take them as Low). */
  load?: LoadStamp;
}

/** A load level with the sequence of its announcement: with the incarnation, newer wins (load/load-board.ts). */
export interface LoadStamp {
  level: LoadLevel;
  /** Grows with every change of level of one incarnation; copies and refreshes repeat it. */
  sequence: number;
}

export const VERSION = 2;
export const KIND_HEARTBEAT = 0;
export const KIND_MAP = 1;
export const KIND_PROBE = 2;
export const KIND_NEWS = 3;
export const KIND_LOAD = 4;
const MAGIC0 = 0x4d; // "M"
const MAGIC1 = 0x48; // "H"
export const HEADER_BYTES = 6;
export const SENDER_BYTES_MAX = 253;
export const DIGEST_BYTES = 8;
/** The digest of no map at all (a core run without agreement). */
export const NO_DIGEST = "0".repeat(DIGEST_BYTES * 2);
/** Suspicions carried per heartbeat: a node watches k+1 peers, and k ≤ 3 in any sane setting. */
export const SUSPECTS_MAX = 4;
/** A load level and its sequence: a heartbeat's optional tail, and the body of a load datagram after its incarnation. */
export const LOAD_STAMP_BYTES = 1 + 8;
const HEARTBEAT_FIXED_BYTES = 8 + 8 + 8 + 8 + DIGEST_BYTES + 1 + LOAD_STAMP_BYTES;
/** 1,321 bytes at most, so a heartbeat is one packet on any Ethernet (1,472 bytes of UDP payload). */
export const HEARTBEAT_BYTES_MAX =
  HEADER_BYTES + SENDER_BYTES_MAX + HEARTBEAT_FIXED_BYTES + SUSPECTS_MAX * (2 + SENDER_BYTES_MAX);

export function bad(why: string): MosaicError {
  return new MosaicError("MOSAIC_ERR_BAD_REQUEST", `membership datagram: ${why}`);
}

function checkCounter(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
    throw bad(`${name} must be a safe non-negative integer`);
  return v;
}

export function checkId(name: string, id: unknown, allowEmpty = false): string {
  if (typeof id !== "string" || (id.length === 0 && !allowEmpty))
    throw bad(`${name} must be a non-empty string`);
  if (Buffer.byteLength(id) > SENDER_BYTES_MAX) throw bad(`${name} longer than ${SENDER_BYTES_MAX} bytes`);
  return id;
}

export function checkDigest(name: string, digest: unknown): string {
  if (typeof digest !== "string" || !/^[0-9a-f]{16}$/.test(digest))
    throw bad(`${name} must be 16 hex digits`);
  return digest;
}

/** Checks a heartbeat built in memory (before encoding) and returns it. */
export function validateHeartbeat(h: Heartbeat): Heartbeat {
  checkId("sender", h.sender);
  if (h.channel !== "A" && h.channel !== "B") throw bad("channel must be A or B");
  checkCounter("incarnation", h.incarnation);
  checkCounter("sequence", h.sequence);
  checkCounter("epoch", h.epoch);
  checkCounter("baseEpoch", h.baseEpoch);
  checkDigest("digest", h.digest);
  if (!Array.isArray(h.suspects) || h.suspects.length > SUSPECTS_MAX)
    throw bad(`at most ${SUSPECTS_MAX} suspects`);
  for (const s of h.suspects) checkId("suspect", s.peer);
  if (h.load !== undefined) checkLoadStamp(h.load);
  return h;
}

export function checkLoadStamp(load: LoadStamp): LoadStamp {
  if (levelCode(load.level) < 0) throw bad(`load level must be Low, Medium or High, got ${load.level}`);
  checkCounter("load sequence", load.sequence);
  return load;
}

/**
 * Builds datagrams field by field in one buffer (a heartbeat is built 2(k+1)
 * times per interval: one allocation, not one per field); sizes are checked
 * by the callers' validation first.
 */
export class Writer {
  #buf = Buffer.allocUnsafe(128);
  #at = 0;

  /** Reserves n bytes and returns their offset; take #buf only after it (it may grow). */
  #room(n: number): number {
    if (this.#at + n > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#at + n));
      this.#buf.copy(grown, 0, 0, this.#at);
      this.#buf = grown;
    }
    const at = this.#at;
    this.#at += n;
    return at;
  }

  u8(v: number): this {
    const at = this.#room(1);
    this.#buf[at] = v;
    return this;
  }

  u16(v: number): this {
    const at = this.#room(2);
    this.#buf.writeUInt16LE(v, at);
    return this;
  }

  u64(v: number): this {
    // Safe integers only (validated): two 32-bit halves, no BigInt.
    const at = this.#room(8);
    this.#buf.writeUInt32LE(v % 0x1_0000_0000, at);
    this.#buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), at + 4);
    return this;
  }

  load(stamp: LoadStamp): this {
    return this.u8(levelCode(stamp.level)).u64(stamp.sequence);
  }

  digest(hex: string): this {
    const at = this.#room(DIGEST_BYTES);
    this.#buf.write(hex, at, DIGEST_BYTES, "hex");
    return this;
  }

  /** A u8 length, then the UTF-8 bytes. */
  text(s: string): this {
    const n = Buffer.byteLength(s, "utf8");
    this.u8(n);
    const at = this.#room(n);
    this.#buf.write(s, at, n, "utf8");
    return this;
  }

  header(kind: number, channel: Channel, sender: string): this {
    return this.u8(MAGIC0)
      .u8(MAGIC1)
      .u8(VERSION)
      .u8(kind)
      .u8(channel === "A" ? 0 : 1)
      .text(sender);
  }

  bytes(): Buffer {
    return this.#buf.subarray(0, this.#at);
  }
}

/** Reads datagrams field by field; any overrun or malformed field throws MOSAIC_ERR_BAD_REQUEST. */
export class Reader {
  readonly #buf: Buffer;
  #at = 0;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  #take(n: number, what: string): number {
    if (this.#at + n > this.#buf.length) throw bad(`${this.#buf.length} bytes is too short for ${what}`);
    const at = this.#at;
    this.#at += n;
    return at;
  }

  u8(what: string): number {
    return this.#buf[this.#take(1, what)] as number;
  }

  u16(what: string): number {
    return this.#buf.readUInt16LE(this.#take(2, what));
  }

  u64(what: string): number {
    const at = this.#take(8, what);
    const high = this.#buf.readUInt32LE(at + 4);
    // 2^53 - 1 is the largest safe integer: its high half is below 2^21.
    if (high >= 0x20_0000) throw bad(`${what} out of range`);
    return high * 0x1_0000_0000 + this.#buf.readUInt32LE(at);
  }

  /** Whether bytes are left: an optional tail follows. */
  more(): boolean {
    return this.#at < this.#buf.length;
  }

  load(): LoadStamp {
    const code = this.u8("load level");
    const level = levelOfCode(code);
    if (level === undefined) throw bad(`bad load level ${code}`);
    return { level, sequence: this.u64("load sequence") };
  }

  digest(what: string): string {
    const at = this.#take(DIGEST_BYTES, what);
    return this.#buf.toString("hex", at, at + DIGEST_BYTES);
  }

  text(what: string, allowEmpty = false): string {
    const n = this.u8(`${what} length`);
    if (n === 0 && !allowEmpty) throw bad(`empty ${what}`);
    const at = this.#take(n, what);
    const raw = this.#buf.subarray(at, at + n);
    const s = raw.toString("utf8");
    // A lossy decode (invalid UTF-8) would let two byte strings name the same node.
    if (!Buffer.from(s, "utf8").equals(raw)) throw bad(`${what} is not UTF-8`);
    return s;
  }

  end(): void {
    if (this.#at !== this.#buf.length) throw bad(`${this.#buf.length - this.#at} trailing bytes`);
  }
}

export interface Header {
  kind: number;
  channel: Channel;
  sender: string;
}

/** A datagram's kind from its first bytes, without decoding it; undefined: not a membership datagram. */
export function peekKind(bytes: Buffer): number | undefined {
  if (bytes.length < HEADER_BYTES || bytes[0] !== MAGIC0 || bytes[1] !== MAGIC1 || bytes[2] !== VERSION)
    return undefined;
  return bytes[3];
}

/** Magic, version, kind, channel and sender; the reader is left at the body. */
export function readHeader(r: Reader): Header {
  if (r.u8("magic") !== MAGIC0 || r.u8("magic") !== MAGIC1) throw bad("bad magic");
  const version = r.u8("version");
  if (version !== VERSION) throw bad(`unknown version ${version}`);
  const kind = r.u8("kind");
  if (kind < KIND_HEARTBEAT || kind > KIND_LOAD) throw bad(`unknown kind ${kind}`);
  const channel = r.u8("channel");
  if (channel !== 0 && channel !== 1) throw bad(`bad channel ${channel}`);
  return { kind, channel: channel === 0 ? "A" : "B", sender: r.text("sender") };
}

/** A heartbeat, or (probe) the same body as an off-ring probe. */
export function encodeHeartbeat(h: Heartbeat, probe = false): Buffer {
  validateHeartbeat(h);
  const w = new Writer()
    .header(probe ? KIND_PROBE : KIND_HEARTBEAT, h.channel, h.sender)
    .u64(h.incarnation)
    .u64(h.sequence)
    .u64(h.epoch)
    .u64(h.baseEpoch)
    .digest(h.digest)
    .u8(h.suspects.length);
  for (const s of h.suspects) w.u8(s.fresh ? 1 : 0).text(s.peer);
  if (h.load !== undefined) w.load(h.load);
  return w.bytes();
}

/** The heartbeat body after its header. */
export function readHeartbeatBody(r: Reader, header: Header): Heartbeat {
  const incarnation = r.u64("incarnation");
  const sequence = r.u64("sequence");
  const epoch = r.u64("epoch");
  const baseEpoch = r.u64("base epoch");
  const digest = r.digest("digest");
  const count = r.u8("suspect count");
  if (count > SUSPECTS_MAX) throw bad(`${count} suspects, at most ${SUSPECTS_MAX}`);
  const suspects: Suspicion[] = [];
  for (let i = 0; i < count; i++) {
    const flags = r.u8("suspect flags");
    if (flags > 1) throw bad(`bad suspect flags ${flags}`);
    suspects.push({ fresh: flags === 1, peer: r.text("suspect") });
  }
  const load = r.more() ? r.load() : undefined;
  r.end();
  const { sender, channel } = header;
  const h: Heartbeat = { sender, channel, incarnation, sequence, epoch, baseEpoch, digest, suspects };
  if (load !== undefined) h.load = load;
  return h;
}

/** Decodes one heartbeat datagram; anything else (a map, garbage) throws MOSAIC_ERR_BAD_REQUEST. */
export function decodeHeartbeat(buf: Buffer): Heartbeat {
  if (!Buffer.isBuffer(buf)) throw bad("not a buffer");
  if (buf.length > HEARTBEAT_BYTES_MAX) throw bad(`${buf.length} bytes is too long`);
  const r = new Reader(buf);
  const header = readHeader(r);
  if (header.kind !== KIND_HEARTBEAT) throw bad("not a heartbeat");
  return readHeartbeatBody(r, header);
}
