// The bytes of a chunk file: a self-describing header, then the data, then
// (format version 2) the block table: a crc32c per 64 KiB block of the data
// (block-table.ts), which lets a read of part of a piece check only the
// blocks it touches. The header names the chunk it holds (so a file in the
// wrong place is caught) and carries its own crc32c (so a flipped bit in it
// is caught like one in the data); the table is tied to it by adding up to
// the data crc32c the header holds. Version 1 files (no table) stay readable.
//
// Header layout (both versions), big-endian, n = volume length (1..63):
//   0      4  magic "MOSC"
//   4      1  format version (1, or 2 with a block table after the data)
//   5      2  header length (50 + n), lets a later version grow the header
//   7      1  n
//   8      n  volume, UTF-8
//   8+n   16  fileId, raw bytes
//   24+n   8  version (u64, at most 2^53 - 1)
//   32+n   4  stripe (i32, -1 = the file's manifest)
//   36+n   2  slot (u16)
//   38+n   4  data length (u32)
//   42+n   4  data crc32c
//   46+n   4  crc32c of bytes 0 .. 46+n
// Version 2, after the data: u32 crc32c of each 64 KiB block (the last may be shorter).
import { crc32c } from "@node-rs/crc32";
import { MosaicError } from "../errors.ts";
import { tableBytesOf } from "./block-table.ts";
import {
  describePieceKey,
  isVolumeName,
  MANIFEST_STRIPE,
  type PieceKey,
  validatePieceKey,
} from "./piece-key.ts";

export type { PieceKey } from "./piece-key.ts";

export interface ChunkHeader extends PieceKey {
  dataLengthBytes: number;
  crc32c: number;
}

const MAGIC = Buffer.from("MOSC", "latin1");
/** The version written; every version up to it is read. */
export const FORMAT_VERSION = 2;
/** Chunks written before block tables: read and checked whole. */
export const FORMAT_VERSION_WHOLE = 1;
const FIXED_BYTES = 50;
const VOLUME_MAX_BYTES = 63;
const U32_MAX = 2 ** 32 - 1;
/** Enough bytes to decode any header: read this much and no data is needed. */
export const HEADER_MAX_BYTES = FIXED_BYTES + VOLUME_MAX_BYTES;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The length of the header of a chunk of `volume` (data begins there). */
export function headerLengthOf(volume: string): number {
  return FIXED_BYTES + Buffer.byteLength(volume, "utf8");
}

export function encodeHeader(h: ChunkHeader, formatVersion = FORMAT_VERSION): Buffer {
  if (formatVersion !== FORMAT_VERSION && formatVersion !== FORMAT_VERSION_WHOLE) {
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `unknown chunk format version ${formatVersion}`);
  }
  const key = validatePieceKey(h);
  for (const field of ["dataLengthBytes", "crc32c"] as const) {
    const value = h[field];
    if (!Number.isInteger(value) || value < 0 || value > U32_MAX) {
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `${field} ${value} must be an integer in 0..${U32_MAX}`,
      );
    }
  }
  const volume = Buffer.from(key.volume, "utf8");
  const n = volume.length;
  const buf = Buffer.alloc(FIXED_BYTES + n);
  MAGIC.copy(buf, 0);
  buf.writeUInt8(formatVersion, 4);
  buf.writeUInt16BE(buf.length, 5);
  buf.writeUInt8(n, 7);
  volume.copy(buf, 8);
  buf.write(key.fileId, 8 + n, "hex");
  buf.writeBigUInt64BE(BigInt(key.version), 24 + n);
  buf.writeInt32BE(key.stripe, 32 + n);
  buf.writeUInt16BE(key.slot, 36 + n);
  buf.writeUInt32BE(h.dataLengthBytes, 38 + n);
  buf.writeUInt32BE(h.crc32c, 42 + n);
  buf.writeUInt32BE(crc32c(buf.subarray(0, 46 + n)), 46 + n);
  return buf;
}

/**
 * Decodes the header at the start of `buf` (which may hold more: the data, or
 * nothing else). `label` starts every error message, e.g. the chunk expected.
 */
export function decodeHeader(
  buf: Buffer,
  label = "chunk",
): { header: ChunkHeader; headerLengthBytes: number; formatVersion: number } {
  const corrupt = (why: string) => new MosaicError("MOSAIC_ERR_CHUNK_CORRUPT", `${label}: ${why}`);
  if (buf.length < 8) throw corrupt(`header truncated (${buf.length} bytes)`);
  if (!buf.subarray(0, 4).equals(MAGIC)) throw corrupt(`bad magic 0x${buf.subarray(0, 4).toString("hex")}`);
  const format = buf.readUInt8(4);
  if (format !== FORMAT_VERSION && format !== FORMAT_VERSION_WHOLE)
    throw corrupt(`unknown format version ${format}`);
  const headerLengthBytes = buf.readUInt16BE(5);
  const n = buf.readUInt8(7);
  if (n < 1 || n > VOLUME_MAX_BYTES || headerLengthBytes !== FIXED_BYTES + n) {
    throw corrupt(`header length ${headerLengthBytes} does not fit volume length ${n}`);
  }
  if (buf.length < headerLengthBytes)
    throw corrupt(`header truncated (${buf.length} of ${headerLengthBytes} bytes)`);
  const stored = buf.readUInt32BE(46 + n);
  const computed = crc32c(buf.subarray(0, 46 + n));
  if (stored !== computed)
    throw corrupt(`header checksum mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})`);

  // The checksum matched, so what follows was written by encodeHeader unless
  // someone forged it; still refuse anything that is not a valid key.
  let volume: string;
  try {
    volume = utf8.decode(buf.subarray(8, 8 + n));
  } catch {
    throw corrupt("volume is not valid UTF-8");
  }
  const version = buf.readBigUInt64BE(24 + n);
  const stripe = buf.readInt32BE(32 + n);
  if (!isVolumeName(volume)) throw corrupt(`bad volume name ${JSON.stringify(volume)}`);
  if (version > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`version ${version} is above 2^53 - 1`);
  if (stripe < MANIFEST_STRIPE) throw corrupt(`bad stripe ${stripe}`);
  const header: ChunkHeader = {
    volume,
    fileId: buf.toString("hex", 8 + n, 24 + n),
    version: Number(version),
    stripe,
    slot: buf.readUInt16BE(36 + n),
    dataLengthBytes: buf.readUInt32BE(38 + n),
    crc32c: buf.readUInt32BE(42 + n),
  };
  return { header, headerLengthBytes, formatVersion: format };
}

/** The size of a chunk file of this header and format: header, data and (version 2) block table. */
export function fileBytesOf(header: ChunkHeader, headerLengthBytes: number, formatVersion: number): number {
  const table = formatVersion === FORMAT_VERSION_WHOLE ? 0 : tableBytesOf(header.dataLengthBytes);
  return headerLengthBytes + header.dataLengthBytes + table;
}

/** crc32c of data given whole or in parts, with no copy. */
export function crc32cOf(data: Buffer | Buffer[]): number {
  if (Buffer.isBuffer(data)) return crc32c(data);
  let crc = 0;
  for (const part of data) crc = crc32c(part, crc);
  return crc;
}

export function lengthOf(data: Buffer | Buffer[]): number {
  if (Buffer.isBuffer(data)) return data.length;
  let total = 0;
  for (const part of data) total += part.length;
  return total;
}

/** `computed`: the data's crc32c when the caller has it already (chunk-store's getRange combines it from parts). */
export function verifyData(header: ChunkHeader, data: Buffer | Buffer[], computed = crc32cOf(data)): void {
  const label = `chunk ${describePieceKey(header)}`;
  const lengthBytes = lengthOf(data);
  if (lengthBytes !== header.dataLengthBytes) {
    throw new MosaicError(
      "MOSAIC_ERR_CHUNK_CORRUPT",
      `${label}: length mismatch (header says ${header.dataLengthBytes} bytes, data is ${lengthBytes})`,
    );
  }
  if (computed !== header.crc32c) {
    throw new MosaicError(
      "MOSAIC_ERR_CHUNK_CORRUPT",
      `${label}: checksum mismatch (stored ${hex32(header.crc32c)}, computed ${hex32(computed)})`,
    );
  }
}

export function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}
