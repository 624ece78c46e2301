// Reading a byte range of a chunk file while still checking the whole piece:
// one readv puts the header, the bytes before the range, the range and the
// bytes after it into separate buffers. Only the range gets a buffer of its
// own; the bytes around it are read into scratch that is reused, since they
// are needed only for the crc32c. A Range request that wants half a piece so
// costs half a piece of fresh memory, not a whole one (fresh large buffers
// are what a server pays for most: page faults and garbage collection).
import { open } from "node:fs/promises";

/** Bytes of a chunk file as read by readChunkSlice; `parts` is undefined when the range ends past the file. */
export interface ChunkSliceRead {
  /** The header's bytes (as many as the file had, up to the expected header length). */
  head: Buffer;
  fileBytes: number;
  /** The data back to back: before the range, the range, after it (for the whole piece's crc32c). */
  parts: Buffer[] | undefined;
  /** The range's bytes, in a buffer of its own. */
  data: Buffer;
  /** Gives the scratch back: call once the parts have been checked. */
  release: () => void;
}

/**
 * Reads the file at `path` whose header is `headerLengthBytes` long, keeping
 * data bytes [offset, offset + length) in a buffer of their own. A file
 * shorter than the range's end is read no further than its header (the
 * caller tells a corrupt file from a range past the piece's end by it).
 */
export async function readChunkSlice(
  path: string,
  headerLengthBytes: number,
  range: { offset: number; length: number },
  scratch: ScratchBuffers,
): Promise<ChunkSliceRead> {
  const fh = await open(path, "r");
  try {
    const fileBytes = (await fh.stat()).size;
    const head = Buffer.allocUnsafe(Math.min(headerLengthBytes, fileBytes));
    const dataBytes = fileBytes - headerLengthBytes;
    const { offset, length } = range;
    if (offset + length > dataBytes) {
      const { bytesRead } = await fh.read(head, 0, head.length, 0);
      return {
        head: head.subarray(0, bytesRead),
        fileBytes,
        parts: undefined,
        data: head,
        release: () => {},
      };
    }
    // Sized for the whole piece, so that it serves any later range of a piece of this size.
    const around = scratch.take(dataBytes - length, dataBytes);
    const data = Buffer.allocUnsafeSlow(length);
    const parts = [around.subarray(0, offset), data, around.subarray(offset, dataBytes - length)];
    try {
      const { bytesRead } = await fh.readv(
        [head, ...parts].filter((b) => b.length > 0),
        0,
      );
      // Pieces are replaced by rename, so an open file never shrinks; a short read is a broken file system.
      if (bytesRead !== fileBytes) throw new Error(`${path}: read ${bytesRead} of its ${fileBytes} bytes`);
    } catch (error) {
      scratch.give(around);
      throw error;
    }
    return { head, fileBytes, parts, data, release: () => scratch.give(around) };
  } finally {
    await fh.close();
  }
}

/**
 * A few large buffers kept for reuse. What is left in one from an earlier
 * read must never leave the process: a buffer is used as scratch, or lent
 * as a view of exactly the bytes a read has just overwritten.
 */
export class ScratchBuffers {
  readonly #free: Buffer[] = [];
  readonly #keep: number;

  constructor(keep = 8) {
    this.#keep = keep;
  }

  /** A buffer of at least `bytes` (its length may be larger); a new one has `newBytes` (at least `bytes`). */
  take(bytes: number, newBytes = bytes): Buffer {
    const i = this.#free.findIndex((b) => b.length >= bytes);
    if (i >= 0) return this.#free.splice(i, 1)[0] as Buffer;
    return Buffer.allocUnsafeSlow(Math.max(bytes, newBytes));
  }

  give(buffer: Buffer): void {
    if (this.#free.length < this.#keep) {
      this.#free.push(buffer);
      return;
    }
    // Full: keep the larger ones, which serve any smaller request too.
    const smallest = this.#free.reduce(
      (at, b, i, all) => (b.length < (all[at] as Buffer).length ? i : at),
      0,
    );
    if ((this.#free[smallest] as Buffer).length < buffer.length) this.#free[smallest] = buffer;
  }
}
