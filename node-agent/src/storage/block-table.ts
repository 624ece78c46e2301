// The block table of a version 2 chunk: the crc32c of each 64 KiB block of
// the data, so that a read of part of a piece reads and checks the blocks it
// touches, not the whole piece. Its entries combine (crc32c-combine.ts) into
// the whole data's crc32c, which the header holds under its own checksum: a
// table that does not add up to it is corrupt, and the bytes a read touches
// are checked against the combination of their blocks' entries. Pure.
import { crc32c } from "@node-rs/crc32";
import { crc32cCombine } from "./crc32c-combine.ts";

export const BLOCK_BYTES = 64 * 1024;
const ENTRY_BYTES = 4;

export function blockCount(dataLengthBytes: number): number {
  return Math.ceil(dataLengthBytes / BLOCK_BYTES);
}

export function tableBytesOf(dataLengthBytes: number): number {
  return blockCount(dataLengthBytes) * ENTRY_BYTES;
}

/** The table of `data` (given whole or in parts, of any sizes), one pass over the bytes. */
export function encodeTable(data: readonly Buffer[]): Buffer {
  const total = data.reduce((n, part) => n + part.length, 0);
  const table = Buffer.allocUnsafe(tableBytesOf(total));
  let block = 0;
  let crc = 0;
  let filled = 0; // bytes of the current block hashed so far
  for (const part of data) {
    for (let at = 0; at < part.length; ) {
      const take = Math.min(BLOCK_BYTES - filled, part.length - at);
      crc = crc32c(part.subarray(at, at + take), crc);
      filled += take;
      at += take;
      if (filled === BLOCK_BYTES) {
        table.writeUInt32BE(crc, ENTRY_BYTES * block++);
        crc = 0;
        filled = 0;
      }
    }
  }
  if (filled > 0) table.writeUInt32BE(crc, ENTRY_BYTES * block);
  return table;
}

/**
 * crc32c of blocks [first, last] of a piece of `dataLengthBytes`, combined
 * from their entries in `table` (a view of the whole table, or of the
 * entries from `tableFrom` on).
 */
export function combineBlocks(
  table: Buffer,
  dataLengthBytes: number,
  first: number,
  last: number,
  tableFrom = 0,
): number {
  let crc = 0;
  for (let block = first; block <= last; block++) {
    const bytes = Math.min(BLOCK_BYTES, dataLengthBytes - block * BLOCK_BYTES);
    crc = crc32cCombine(crc, table.readUInt32BE(ENTRY_BYTES * (block - tableFrom)), bytes);
  }
  return crc;
}

/** Whether the table has one entry per block and they add up to the data's crc32c. */
export function tableMatches(table: Buffer, dataLengthBytes: number, dataCrc32c: number): boolean {
  const blocks = blockCount(dataLengthBytes);
  if (table.length !== blocks * ENTRY_BYTES) return false;
  return blocks === 0
    ? dataCrc32c === 0
    : combineBlocks(table, dataLengthBytes, 0, blocks - 1) === dataCrc32c;
}

/** The blocks data bytes [offset, offset + length) touch (none for an empty range), and where they start and end in the data. */
export function blocksOf(
  offset: number,
  length: number,
  dataLengthBytes: number,
): { first: number; last: number; start: number; end: number } {
  if (length === 0) return { first: 0, last: -1, start: offset, end: offset };
  const first = Math.floor(offset / BLOCK_BYTES);
  const last = Math.max(first, Math.ceil((offset + length) / BLOCK_BYTES) - 1);
  return {
    first,
    last,
    start: first * BLOCK_BYTES,
    end: Math.min((last + 1) * BLOCK_BYTES, dataLengthBytes),
  };
}

/**
 * Checks data bytes read as [before, range, after] (back to back, blocks
 * `first`..`last` of the piece) against the table's entries for those
 * blocks; each part is hashed once. Returns the crc32c of the range alone,
 * or undefined when the bytes do not match.
 */
export function checkBlocks(
  table: Buffer,
  dataLengthBytes: number,
  blocks: { first: number; last: number },
  parts: readonly [Buffer, Buffer, Buffer],
): { rangeCrc32c: number } | undefined {
  const [before, range, after] = parts;
  const rangeCrc32c = crc32c(range);
  const read = crc32cCombine(
    crc32cCombine(crc32c(before), rangeCrc32c, range.length),
    crc32c(after),
    after.length,
  );
  const stored = combineBlocks(table, dataLengthBytes, blocks.first, blocks.last);
  return read === stored ? { rangeCrc32c } : undefined;
}
