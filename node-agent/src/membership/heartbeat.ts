// The heartbeat datagram. Fixed little header + sender id, so that one fits in
// any UDP packet and a garbage datagram is refused before it touches state.
//
//   0  u8[2] magic "MH"    2 u8 version (1)   3 u8 channel (0 = A, 1 = B)
//   4  u64 incarnation     12 u64 sequence    20 u64 sender's map epoch
//   28 u8 sender length    29 sender (UTF-8)
import { MosaicError } from "../errors.ts";

export type Channel = "A" | "B";
export const CHANNELS: readonly Channel[] = ["A", "B"];

export interface Heartbeat {
  sender: string;
  channel: Channel;
  /** Grows on every restart of the sender, so its sequence may start again from 0. */
  incarnation: number;
  /** Grows with every heartbeat of one incarnation on one channel: tells stale and duplicate packets. */
  sequence: number;
  /** The cluster-map epoch the sender holds: a peer with a newer one has news. */
  epoch: number;
}

const MAGIC0 = 0x4d; // "M"
const MAGIC1 = 0x48; // "H"
const VERSION = 1;
const HEADER_BYTES = 29;
export const SENDER_BYTES_MAX = 253;
export const HEARTBEAT_BYTES_MAX = HEADER_BYTES + SENDER_BYTES_MAX;

function bad(why: string): MosaicError {
  return new MosaicError("MOSAIC_ERR_BAD_REQUEST", `heartbeat: ${why}`);
}

function checkCounter(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
    throw bad(`${name} must be a safe non-negative integer`);
  return v;
}

/** Checks a heartbeat built in memory (before encoding) and returns it. */
export function validateHeartbeat(h: Heartbeat): Heartbeat {
  if (typeof h.sender !== "string" || h.sender.length === 0) throw bad("sender must be a non-empty string");
  if (Buffer.byteLength(h.sender) > SENDER_BYTES_MAX)
    throw bad(`sender longer than ${SENDER_BYTES_MAX} bytes`);
  if (h.channel !== "A" && h.channel !== "B") throw bad("channel must be A or B");
  checkCounter("incarnation", h.incarnation);
  checkCounter("sequence", h.sequence);
  checkCounter("epoch", h.epoch);
  return h;
}

export function encodeHeartbeat(h: Heartbeat): Buffer {
  validateHeartbeat(h);
  const sender = Buffer.from(h.sender, "utf8");
  const out = Buffer.alloc(HEADER_BYTES + sender.length);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = VERSION;
  out[3] = h.channel === "A" ? 0 : 1;
  out.writeBigUInt64LE(BigInt(h.incarnation), 4);
  out.writeBigUInt64LE(BigInt(h.sequence), 12);
  out.writeBigUInt64LE(BigInt(h.epoch), 20);
  out[28] = sender.length;
  sender.copy(out, HEADER_BYTES);
  return out;
}

function readCounter(buf: Buffer, offset: number, name: string): number {
  const v = buf.readBigUInt64LE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${name} out of range`);
  return Number(v);
}

/** Decodes one datagram; anything but a well-formed heartbeat throws MOSAIC_ERR_BAD_REQUEST. */
export function decodeHeartbeat(buf: Buffer): Heartbeat {
  if (!Buffer.isBuffer(buf)) throw bad("not a buffer");
  if (buf.length < HEADER_BYTES + 1) throw bad(`${buf.length} bytes is too short`);
  if (buf.length > HEARTBEAT_BYTES_MAX) throw bad(`${buf.length} bytes is too long`);
  if (buf[0] !== MAGIC0 || buf[1] !== MAGIC1) throw bad("bad magic");
  if (buf[2] !== VERSION) throw bad(`unknown version ${buf[2]}`);
  if (buf[3] !== 0 && buf[3] !== 1) throw bad(`bad channel ${buf[3]}`);
  const senderBytes = buf[28] as number;
  if (senderBytes === 0 || HEADER_BYTES + senderBytes !== buf.length)
    throw bad(`sender length ${senderBytes} does not match datagram length ${buf.length}`);
  const sender = buf.toString("utf8", HEADER_BYTES);
  // A lossy decode (invalid UTF-8) would let two byte strings name the same node.
  if (!Buffer.from(sender, "utf8").equals(buf.subarray(HEADER_BYTES))) throw bad("sender is not UTF-8");
  return {
    sender,
    channel: buf[3] === 0 ? "A" : "B",
    incarnation: readCounter(buf, 4, "incarnation"),
    sequence: readCounter(buf, 12, "sequence"),
    epoch: readCounter(buf, 20, "epoch"),
  };
}
