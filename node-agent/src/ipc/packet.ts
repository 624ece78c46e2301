// The request packet on the agent's FIFO (seed 000 §3.2/§3.4). One packet is
// one write(2) of at most PIPE_BUF (4096) bytes, which POSIX makes atomic on a
// pipe: packets of concurrent clients arrive whole and never interleave, so
// the seed's semaphore around the FIFO is not needed (request-fifo.test.ts
// proves it with 8 processes). A read may still return several packets, or
// end inside one when the reader's buffer fills, so the reader reassembles.
//
// Layout (little-endian), 20-byte header then a UTF-8 JSON body:
//   0 u32 magic "MSPK"   4 u8 version   5 u8 type   6 u16 body length (bytes)
//   8 u32 client id (0 before registration)   12 u32 request id
//  16 u32 crc32c of bytes 0..16 and the body
// The checksum is what lets the reader resynchronise after garbage: anyone
// who can open the FIFO can write random bytes, and a false "magic" in them
// must not swallow the real packets that follow.
import { crc32c } from "@node-rs/crc32";
import { MosaicError } from "../errors.ts";

export const PIPE_BUF_BYTES = 4096;
export const PACKET_MAGIC = 0x4b50534d; // "MSPK" read little-endian
export const PACKET_VERSION = 1;
export const PACKET_HEADER_BYTES = 20;
export const PACKET_MAX_BODY_BYTES = PIPE_BUF_BYTES - PACKET_HEADER_BYTES;

/** Packet types: a client registers, confirms it attached its rings, asks, leaves; the agent answers a registration. */
export const PacketType = {
  REGISTER: 1,
  ATTACHED: 2,
  REQUEST: 3,
  UNREGISTER: 4,
  REGISTERED: 5,
} as const;
export type PacketTypeValue = (typeof PacketType)[keyof typeof PacketType];
const TYPES = new Set<number>(Object.values(PacketType));

export interface Packet {
  type: PacketTypeValue;
  clientId: number;
  requestId: number;
  /** Parsed JSON body. */
  body: unknown;
}

const U32_MAX = 0xffff_ffff;
const MAGIC_BYTES = Buffer.from([0x4d, 0x53, 0x50, 0x4b]);

function bad(message: string): MosaicError {
  return new MosaicError("MOSAIC_ERR_BAD_REQUEST", `bad IPC packet: ${message}`);
}

function checksum(packet: Buffer, bodyBytes: number): number {
  return crc32c(
    packet.subarray(PACKET_HEADER_BYTES, PACKET_HEADER_BYTES + bodyBytes),
    crc32c(packet.subarray(0, 16)),
  );
}

/** One packet as the bytes of a single write; refuses what would not fit PIPE_BUF. */
export function encodePacket(packet: Packet): Buffer {
  if (!TYPES.has(packet.type)) throw bad(`unknown type ${packet.type}`);
  for (const field of ["clientId", "requestId"] as const) {
    const v = packet[field];
    if (!Number.isSafeInteger(v) || v < 0 || v > U32_MAX) throw bad(`${field} must be a u32, got ${v}`);
  }
  const body = Buffer.from(JSON.stringify(packet.body ?? null), "utf8");
  if (body.length > PACKET_MAX_BODY_BYTES) {
    throw new MosaicError(
      "MOSAIC_ERR_MESSAGE_TOO_LARGE",
      `IPC packet body of ${body.length} bytes exceeds ${PACKET_MAX_BODY_BYTES} (one packet must fit PIPE_BUF, ${PIPE_BUF_BYTES} bytes)`,
    );
  }
  const out = Buffer.allocUnsafe(PACKET_HEADER_BYTES + body.length);
  out.writeUInt32LE(PACKET_MAGIC, 0);
  out.writeUInt8(PACKET_VERSION, 4);
  out.writeUInt8(packet.type, 5);
  out.writeUInt16LE(body.length, 6);
  out.writeUInt32LE(packet.clientId, 8);
  out.writeUInt32LE(packet.requestId, 12);
  body.copy(out, PACKET_HEADER_BYTES);
  out.writeUInt32LE(checksum(out, body.length), 16);
  return out;
}

/** What parsing at the front of some bytes found. */
export type ParseResult =
  | { kind: "packet"; packet: Packet; lengthBytes: number }
  /** A sound frame (checksum good) whose body is not valid JSON: the sender is known, so it can be told. */
  | { kind: "bad-body"; clientId: number; requestId: number; error: MosaicError; lengthBytes: number }
  /** Not a packet here: skip and look for the next magic. */
  | { kind: "garbage"; error: MosaicError }
  /** Could be a packet, but more bytes are needed. */
  | { kind: "incomplete"; needBytes: number };

/** Parses the packet at the start of `bytes`; never throws. */
export function parsePacket(bytes: Buffer): ParseResult {
  if (bytes.length < 4) {
    return MAGIC_BYTES.subarray(0, bytes.length).equals(bytes)
      ? { kind: "incomplete", needBytes: PACKET_HEADER_BYTES }
      : { kind: "garbage", error: bad("no magic") };
  }
  if (bytes.readUInt32LE(0) !== PACKET_MAGIC) return { kind: "garbage", error: bad("no magic") };
  if (bytes.length >= 5 && bytes[4] !== PACKET_VERSION) {
    return { kind: "garbage", error: bad(`version ${bytes[4]}, this agent speaks ${PACKET_VERSION}`) };
  }
  if (bytes.length >= 6 && !TYPES.has(bytes[5] as number)) {
    return { kind: "garbage", error: bad(`unknown type ${bytes[5]}`) };
  }
  if (bytes.length >= 8 && bytes.readUInt16LE(6) > PACKET_MAX_BODY_BYTES) {
    return {
      kind: "garbage",
      error: new MosaicError(
        "MOSAIC_ERR_MESSAGE_TOO_LARGE",
        `bad IPC packet: body of ${bytes.readUInt16LE(6)} bytes exceeds ${PACKET_MAX_BODY_BYTES}`,
      ),
    };
  }
  if (bytes.length < PACKET_HEADER_BYTES) return { kind: "incomplete", needBytes: PACKET_HEADER_BYTES };
  const bodyBytes = bytes.readUInt16LE(6);
  const lengthBytes = PACKET_HEADER_BYTES + bodyBytes;
  if (bytes.length < lengthBytes) return { kind: "incomplete", needBytes: lengthBytes };
  if (bytes.readUInt32LE(16) !== checksum(bytes, bodyBytes)) {
    return { kind: "garbage", error: bad("checksum mismatch (truncated, corrupt or interleaved)") };
  }
  const clientId = bytes.readUInt32LE(8);
  const requestId = bytes.readUInt32LE(12);
  const text = bytes.toString("utf8", PACKET_HEADER_BYTES, lengthBytes);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { kind: "bad-body", clientId, requestId, error: bad("body is not JSON"), lengthBytes };
  }
  return {
    kind: "packet",
    packet: { type: bytes[5] as PacketTypeValue, clientId, requestId, body },
    lengthBytes,
  };
}

/** Decodes exactly one whole packet (as one read of a datagram would give it); throws a MosaicError otherwise. */
export function decodePacket(bytes: Buffer): Packet {
  if (!Buffer.isBuffer(bytes)) throw bad("not a Buffer");
  if (bytes.length > PIPE_BUF_BYTES) {
    throw new MosaicError(
      "MOSAIC_ERR_MESSAGE_TOO_LARGE",
      `bad IPC packet: ${bytes.length} bytes exceeds PIPE_BUF (${PIPE_BUF_BYTES})`,
    );
  }
  const result = parsePacket(bytes);
  switch (result.kind) {
    case "packet":
      if (result.lengthBytes !== bytes.length)
        throw bad(`${bytes.length - result.lengthBytes} trailing bytes`);
      return result.packet;
    case "bad-body":
    case "garbage":
      throw result.error;
    case "incomplete":
      throw bad(`truncated: ${bytes.length} of at least ${result.needBytes} bytes`);
  }
}

export interface Malformed {
  error: MosaicError;
  /** Set when the frame was sound and only its body bad: the sender can be answered. */
  clientId?: number;
  requestId?: number;
}

/**
 * Reassembles packets from a FIFO's byte stream. Memory is bounded: after each
 * push at most one incomplete packet (< PIPE_BUF bytes) is kept. Garbage is
 * skipped up to the next possible magic, one Malformed per run of it.
 */
export class PacketReader {
  #pending: Buffer = Buffer.alloc(0);

  /** Bytes held back waiting for the rest of a packet. */
  get pendingBytes(): number {
    return this.#pending.length;
  }

  push(chunk: Buffer): { packets: Packet[]; malformed: Malformed[] } {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    return this.#drain(false);
  }

  /**
   * Gives up on a held-back partial packet. A packet is one atomic write, so
   * its bytes are in the pipe together; a partial that no further read
   * completes was truncated by its sender. Call when the stream went quiet.
   */
  flush(): { packets: Packet[]; malformed: Malformed[] } {
    return this.#drain(true);
  }

  #drain(final: boolean): { packets: Packet[]; malformed: Malformed[] } {
    const packets: Packet[] = [];
    const malformed: Malformed[] = [];
    let buf = this.#pending;
    let garbage: MosaicError | undefined;
    // Bounded: every pass consumes at least one byte or returns.
    while (buf.length > 0) {
      const result = parsePacket(buf);
      if (result.kind === "incomplete" && !final) break;
      if (result.kind === "packet" || result.kind === "bad-body") {
        if (garbage) malformed.push({ error: garbage });
        garbage = undefined;
        if (result.kind === "packet") packets.push(result.packet);
        else malformed.push({ error: result.error, clientId: result.clientId, requestId: result.requestId });
        buf = buf.subarray(result.lengthBytes);
        continue;
      }
      garbage ??=
        result.kind === "garbage"
          ? result.error
          : bad(`truncated: ${buf.length} of ${result.needBytes} bytes`);
      const next = buf.indexOf(MAGIC_BYTES[0] as number, 1);
      buf = next < 0 ? buf.subarray(buf.length) : buf.subarray(next);
    }
    if (garbage) malformed.push({ error: garbage });
    // Copy what is kept, so a large chunk is not pinned by a small tail.
    this.#pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
    return { packets, malformed };
  }
}
