// Reading a byte range of a version 2 chunk file: its header, its block
// table and the 64 KiB blocks the range touches, nothing else. The range's
// bytes get a buffer of their own (they leave with the answer); the rest of
// its first and last blocks, needed only for their checksums, goes to reused
// scratch. The header is read first (it says where the table is); the table
// and the blocks are then read at once.

import { BLOCK_BYTES, blocksOf, tableBytesOf } from "./block-table.ts";
import { type ChunkHeader, FORMAT_VERSION_WHOLE, HEADER_MAX_BYTES } from "./chunk-format.ts";
import type { ScratchBuffers } from "./chunk-slice.ts";
import { readAt, readvAt } from "./fd-io.ts";

export interface DecodedHead {
  header: ChunkHeader;
  headerLengthBytes: number;
  formatVersion: number;
}

export interface BlockRead {
  head: DecodedHead;
  /** The whole block table, as many bytes of it as the file had. */
  table: Buffer;
  blocks: { first: number; last: number };
  /** [before the range in its first block, the range, after it in its last block]; undefined if the file ended early. */
  parts: [Buffer, Buffer, Buffer] | undefined;
  /** Gives the scratch back: call once the parts have been checked. */
  release: () => void;
}

export interface BlockReadOptions {
  scratch: ScratchBuffers;
  /** Checks the header's bytes: throws if they are corrupt or name another chunk. */
  decode: (head: Buffer) => DecodedHead;
  /** The error for a range past the data's end. */
  outside: (head: DecodedHead) => Error;
  /** The range's buffer, exactly its length (every byte of it is overwritten by the read). */
  dataBuffer: (length: number) => Buffer;
}

/**
 * Reads data bytes `range` of the chunk open at `fd`. A version 1 chunk (no
 * block table) is read no further than its header, which comes back alone.
 */
export async function readBlockRange(
  fd: number,
  range: { offset: number; length: number },
  { scratch, decode, outside, dataBuffer }: BlockReadOptions,
): Promise<BlockRead | DecodedHead> {
  const headBuf = Buffer.allocUnsafe(HEADER_MAX_BYTES);
  const head = decode(headBuf.subarray(0, await readAt(fd, headBuf, 0)));
  if (head.formatVersion === FORMAT_VERSION_WHOLE) return head;
  const { dataLengthBytes } = head.header;
  const { offset, length } = range;
  if (offset + length > dataLengthBytes) throw outside(head);
  const blocks = blocksOf(offset, length, dataLengthBytes);
  const table = Buffer.allocUnsafe(tableBytesOf(dataLengthBytes));
  const edges = scratch.take(2 * BLOCK_BYTES);
  const data = dataBuffer(length);
  const parts: [Buffer, Buffer, Buffer] = [
    edges.subarray(0, offset - blocks.start),
    data,
    edges.subarray(BLOCK_BYTES, BLOCK_BYTES + blocks.end - offset - length),
  ];
  const release = () => scratch.give(edges);
  try {
    const dataStart = head.headerLengthBytes;
    const [tableRead, partsRead] = await Promise.all([
      readAt(fd, table, dataStart + dataLengthBytes),
      readvAt(
        fd,
        parts.filter((p) => p.length > 0),
        dataStart + blocks.start,
      ),
    ]);
    const whole = partsRead === blocks.end - blocks.start;
    return { head, table: table.subarray(0, tableRead), blocks, parts: whole ? parts : undefined, release };
  } catch (error) {
    release();
    throw error;
  }
}
