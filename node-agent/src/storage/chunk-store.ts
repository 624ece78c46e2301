// A node's chunks, one file each under a local directory (layout in
// chunk-layout.ts). A chunk is whole or absent (temp file, fsync, rename, fsync
// the directory), every read verifies its checksum, and writes are refused
// before they start when they would exceed the store's capacity.
import { randomUUID } from "node:crypto";
import { lstat, mkdir, open, readdir, readFile, rename, rm, rmdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { crc32c } from "@node-rs/crc32";
import { isMosaicError, MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { readBlockRange } from "./block-read.ts";
import { checkBlocks, combineBlocks, encodeTable, tableBytesOf, tableMatches } from "./block-table.ts";
import {
  type ChunkHeader,
  decodeHeader,
  encodeHeader,
  FORMAT_VERSION_WHOLE,
  fileBytesOf,
  HEADER_MAX_BYTES,
  headerLengthOf,
  hex32,
  lengthOf,
  verifyData,
} from "./chunk-format.ts";
import { ChunkLayout, FILE_ID_DIR, parsePieceFileName, parseVersionDirName } from "./chunk-layout.ts";
import { readChunkSlice, ScratchBuffers } from "./chunk-slice.ts";
import { crc32cCombine } from "./crc32c-combine.ts";
import { DirSyncer } from "./dir-sync.ts";
import { DIR_MODE, ensureDir, isErrno, removeQuietly, syncDir, writeSynced } from "./durable-fs.ts";
import { closeFd, openForRead } from "./fd-io.ts";
import { formatBytes } from "./format-bytes.ts";
import { KeyedMutex } from "./keyed-mutex.ts";
import {
  describePieceKey,
  isVolumeName,
  type PieceKey,
  samePieceKey,
  validatePieceKey,
} from "./piece-key.ts";

/** Ranges up to this size are read into lent buffers (lendRange); a piece of the default 1 MiB chunk fits. */
const LEND_MAX_BYTES = 1024 * 1024;

export interface ChunkStoreOptions {
  /** Budget for chunk files (headers included); puts beyond it are refused. */
  capacityBytes: number;
  log: Logger;
}

export interface ChunkStoreUsage {
  usedBytes: number;
  capacityBytes: number;
  /** What a new put may still take: capacity less used and less reserved by puts in progress. */
  freeBytes: number;
}

export class ChunkStore {
  readonly dir: string;
  readonly #layout: ChunkLayout;
  readonly #log: Logger;
  readonly #capacityBytes: number;
  // Per file: a put's rename and usage update, and deleteVersions, never interleave.
  readonly #fileLocks = new KeyedMutex();
  readonly #dirSyncer = new DirSyncer();
  /** The bytes around a range being read (getRange), kept for reuse. */
  readonly #scratch = new ScratchBuffers();
  /** Buffers lent to lendRange's callers, back once they have sent the bytes. */
  readonly #lent = new ScratchBuffers(16);
  #usedBytes: number;
  #reservedBytes = 0;

  private constructor(layout: ChunkLayout, capacityBytes: number, usedBytes: number, log: Logger) {
    this.dir = layout.root;
    this.#layout = layout;
    this.#capacityBytes = capacityBytes;
    this.#usedBytes = usedBytes;
    this.#log = log;
  }

  /** One store per directory: a second open would delete the first's temp files. */
  static async open(dir: string, options: ChunkStoreOptions): Promise<ChunkStore> {
    const { capacityBytes } = options;
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 0) {
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `capacityBytes ${capacityBytes} must be a non-negative integer`,
      );
    }
    const log = options.log.child({ component: "chunk-store" });
    const layout = new ChunkLayout(dir);
    await mkdir(layout.volumesDir, { recursive: true, mode: DIR_MODE });
    await mkdir(layout.tmpDir, { recursive: true, mode: DIR_MODE });
    await syncDir(layout.root); // puts sync the tree only up to volumes/
    const tempFiles = await readdir(layout.tmpDir);
    for (const name of tempFiles) await rm(join(layout.tmpDir, name), { recursive: true, force: true });
    if (tempFiles.length > 0)
      log.info({ dir, count: tempFiles.length }, "removed temp files left by an interrupted write");
    // Directories a crash left empty (made for a chunk never renamed in) would list as versions held.
    const usedBytes = await treeBytes(layout.volumesDir, { pruneEmpty: true });
    log.info({ dir, usedBytes, capacityBytes }, "chunk store open");
    return new ChunkStore(layout, capacityBytes, usedBytes, log);
  }

  usage(): ChunkStoreUsage {
    const freeBytes = Math.max(0, this.#capacityBytes - this.#usedBytes - this.#reservedBytes);
    return { usedBytes: this.#usedBytes, capacityBytes: this.#capacityBytes, freeBytes };
  }

  /**
   * Stores a piece, whole or not at all. `verifiedCrc32c` is the data's crc32c
   * when the caller has just computed it (a peer's put, checked on receipt):
   * it saves a second pass over the bytes.
   */
  async put(key: PieceKey, data: Buffer | Buffer[], verifiedCrc32c?: number): Promise<ChunkHeader> {
    const k = validatePieceKey(key);
    const parts = Buffer.isBuffer(data) ? [data] : data;
    if (!Array.isArray(parts) || !parts.every((part) => Buffer.isBuffer(part))) {
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `chunk ${describePieceKey(k)}: data must be a Buffer or Buffer[]`,
      );
    }
    // One pass over the bytes: the block table, whose entries combine into the whole data's crc32c.
    const table = encodeTable(parts);
    const dataLengthBytes = lengthOf(parts);
    const combined = combineAllBlocks(table, dataLengthBytes);
    if (verifiedCrc32c !== undefined && verifiedCrc32c !== combined) {
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `chunk ${describePieceKey(k)}: data does not match the crc32c it came with ` +
          `(${hex32(verifiedCrc32c)}, computed ${hex32(combined)})`,
      );
    }
    const header: ChunkHeader = { ...k, dataLengthBytes, crc32c: combined };
    const headerBytes = encodeHeader(header);
    const sizeBytes = headerBytes.length + dataLengthBytes + table.length;
    this.#reserve(k, sizeBytes);
    const tmpPath = join(this.#layout.tmpDir, `${randomUUID()}.tmp`);
    try {
      await writeSynced(tmpPath, [headerBytes, ...parts, table]);
      const dirs = await this.#fileLocks.run(fileLockKey(k), () => this.#commit(tmpPath, k, sizeBytes));
      for (const d of dirs) await this.#dirSyncer.sync(d);
    } catch (error) {
      await removeQuietly(tmpPath);
      throw error;
    } finally {
      this.#reservedBytes -= sizeBytes;
    }
    this.#log.debug({ ...k, dataLengthBytes: header.dataLengthBytes }, "put chunk");
    return header;
  }

  #reserve(key: PieceKey, sizeBytes: number): void {
    const used = this.#usedBytes;
    const reserved = this.#reservedBytes;
    if (used + reserved + sizeBytes > this.#capacityBytes) {
      throw new MosaicError(
        "MOSAIC_ERR_STORE_FULL",
        `store full: chunk ${describePieceKey(key)} needs ${formatBytes(sizeBytes)}, ` +
          `${formatBytes(used)} of ${formatBytes(this.#capacityBytes)} used` +
          (reserved > 0 ? ` and ${formatBytes(reserved)} reserved by writes in progress` : ""),
      );
    }
    this.#reservedBytes += sizeBytes;
  }

  /** Moves the piece into place; returns the directories to fsync (outside the lock, grouped). */
  async #commit(tmpPath: string, key: PieceKey, sizeBytes: number): Promise<string[]> {
    const path = this.#layout.chunkPath(key);
    const dir = dirname(path);
    const newParents = await ensureDir(dir, this.#layout.volumesDir);
    const replacedBytes = await sizeIfExists(path);
    await rename(tmpPath, path);
    this.#usedBytes += sizeBytes - replacedBytes;
    return [dir, ...newParents];
  }

  async get(key: PieceKey): Promise<{ header: ChunkHeader; data: Buffer }> {
    const k = validatePieceKey(key);
    let bytes: Buffer;
    try {
      bytes = await readFile(this.#layout.chunkPath(k));
    } catch (error) {
      if (isErrno(error, "ENOENT")) throw noSuchChunk(k, error);
      throw error;
    }
    const result = this.#verified(k, () => {
      const label = `chunk ${describePieceKey(k)}`;
      const { header, headerLengthBytes, formatVersion } = decodeHeader(bytes, label);
      checkKey(k, header);
      if (formatVersion === FORMAT_VERSION_WHOLE) {
        const data = bytes.subarray(headerLengthBytes);
        verifyData(header, data);
        return { header, data };
      }
      checkFileBytes(label, header, bytes.length, headerLengthBytes, formatVersion);
      const dataEnd = headerLengthBytes + header.dataLengthBytes;
      checkTable(label, header, bytes.subarray(dataEnd));
      // The data in one pass against the header's crc32c; the table adds up to it, so it holds for every block.
      const data = bytes.subarray(headerLengthBytes, dataEnd);
      verifyData(header, data);
      return { header, data };
    });
    this.#log.debug({ ...k, dataLengthBytes: result.header.dataLengthBytes }, "get chunk");
    return result;
  }

  /**
   * Data bytes [offset, offset + length) of a piece, in a buffer of their
   * own, with their crc32c. Version 2 pieces: the header, the block table
   * and the 64 KiB blocks the range touches are read, and those blocks are
   * checked against their entries (a flipped bit anywhere in them is caught;
   * one in a block the range does not touch is left to whole reads and the
   * scrubber). Version 1 pieces are read and checked whole (chunk-slice.ts).
   * A range past the piece's end is a BAD_REQUEST.
   */
  async getRange(
    key: PieceKey,
    range: { offset: number; length: number },
  ): Promise<{ header: ChunkHeader; data: Buffer; crc32c: number }> {
    const { header, data, crc32c } = await this.#getRange(key, range, (length) => ({
      buffer: Buffer.allocUnsafeSlow(length),
      release: () => {},
    }));
    return { header, data, crc32c };
  }

  /**
   * getRange with the bytes in a buffer lent from a pool (ranges of up to
   * LEND_MAX_BYTES; larger ones get their own): `release` gives it back,
   * once they have been sent or copied, and they must not be touched after.
   * A server that copies what it sends (gRPC frames every message anew)
   * so reads without a fresh buffer per request, which is what costs it
   * page faults and garbage collection.
   */
  async lendRange(
    key: PieceKey,
    range: { offset: number; length: number },
  ): Promise<{ header: ChunkHeader; data: Buffer; crc32c: number; release: () => void }> {
    return this.#getRange(key, range, (length) => {
      if (length > LEND_MAX_BYTES) return { buffer: Buffer.allocUnsafeSlow(length), release: () => {} };
      const buffer = this.#lent.take(length, LEND_MAX_BYTES);
      let given = false;
      const release = () => {
        if (!given) this.#lent.give(buffer);
        given = true;
      };
      return { buffer: buffer.subarray(0, length), release };
    });
  }

  async #getRange(
    key: PieceKey,
    range: { offset: number; length: number },
    lend: (length: number) => { buffer: Buffer; release: () => void },
  ): Promise<{ header: ChunkHeader; data: Buffer; crc32c: number; release: () => void }> {
    const k = validatePieceKey(key);
    const label = `chunk ${describePieceKey(k)}`;
    const { offset, length } = range;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `${label}: bad range ${offset}+${length}`);
    const fd = await openForRead(this.#layout.chunkPath(k)).catch((error: unknown) => {
      throw isErrno(error, "ENOENT") ? noSuchChunk(k, error) : error;
    });
    let read: Awaited<ReturnType<typeof readBlockRange>>;
    let data: { buffer: Buffer; release: () => void } | undefined;
    const dataBuffer = (length: number) => {
      data = lend(length);
      return data.buffer;
    };
    try {
      read = await readBlockRange(fd, range, {
        scratch: this.#scratch,
        decode: (head) =>
          this.#verified(k, () => {
            const decoded = decodeHeader(head, label);
            checkKey(k, decoded.header);
            return decoded;
          }),
        outside: (head) =>
          new MosaicError(
            "MOSAIC_ERR_BAD_REQUEST",
            `${label}: bytes [${offset}, ${offset + length}) asked of its ${head.header.dataLengthBytes}`,
          ),
        dataBuffer,
      });
    } catch (error) {
      data?.release();
      throw error;
    } finally {
      await closeFd(fd);
    }
    if (!("table" in read)) return { ...(await this.#getRangeWhole(k, range)), release: () => {} };
    const { head, table, blocks, parts } = read;
    const release = (data as { release: () => void }).release;
    try {
      return this.#verified(k, () => {
        const { header } = head;
        if (parts === undefined || table.length !== tableBytesOf(header.dataLengthBytes))
          throw corrupt(
            `${label}: file ends before its ${header.dataLengthBytes} data bytes and block table`,
          );
        checkTable(label, header, table);
        const checked = checkBlocks(table, header.dataLengthBytes, blocks, parts);
        if (checked === undefined)
          throw corrupt(`${label}: checksum mismatch in blocks ${blocks.first}..${blocks.last}`);
        return { header, data: parts[1], crc32c: checked.rangeCrc32c, release };
      });
    } catch (error) {
      release();
      throw error;
    } finally {
      read.release();
    }
  }

  /** A version 1 piece's range: the whole piece read and checked, the range kept. */
  async #getRangeWhole(
    k: PieceKey,
    range: { offset: number; length: number },
  ): Promise<{ header: ChunkHeader; data: Buffer; crc32c: number }> {
    const headerLengthBytes = headerLengthOf(k.volume);
    const read = await readChunkSlice(
      this.#layout.chunkPath(k),
      headerLengthBytes,
      range,
      this.#scratch,
    ).catch((error: unknown) => {
      throw isErrno(error, "ENOENT") ? noSuchChunk(k, error) : error;
    });
    try {
      return this.#verified(k, () => {
        const label = `chunk ${describePieceKey(k)}`;
        const { header } = decodeHeader(read.head, label);
        checkKey(k, header);
        if (read.parts === undefined) {
          const held = read.fileBytes - headerLengthBytes;
          if (held !== header.dataLengthBytes)
            throw corrupt(
              `${label}: length mismatch (header says ${header.dataLengthBytes} bytes, file holds ${held})`,
            );
          throw new MosaicError(
            "MOSAIC_ERR_BAD_REQUEST",
            `${label}: bytes [${range.offset}, ${range.offset + range.length}) asked of its ${held}`,
          );
        }
        // Each part read once: the range's own crc32c (for the wire), the whole piece's combined from the three.
        const [before, data, after] = read.parts.map((part) => crc32c(part)) as [number, number, number];
        const whole = crc32cCombine(
          crc32cCombine(before, data, range.length),
          after,
          (read.parts[2] as Buffer).length,
        );
        verifyData(header, read.parts, whole);
        return { header, data: read.data, crc32c: data };
      });
    } finally {
      read.release();
    }
  }

  /** The header alone, checked against the key and the file's size; the data is not read. */
  async stat(key: PieceKey): Promise<ChunkHeader | undefined> {
    const k = validatePieceKey(key);
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(this.#layout.chunkPath(k), "r");
    } catch (error) {
      if (isErrno(error, "ENOENT")) return undefined;
      throw error;
    }
    try {
      const buf = Buffer.alloc(HEADER_MAX_BYTES);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      const { size } = await fh.stat();
      return this.#verified(k, () => {
        const label = `chunk ${describePieceKey(k)}`;
        const decoded = decodeHeader(buf.subarray(0, bytesRead), label);
        checkKey(k, decoded.header);
        checkFileBytes(label, decoded.header, size, decoded.headerLengthBytes, decoded.formatVersion);
        return decoded.header;
      });
    } finally {
      await fh.close();
    }
  }

  // Runs a check, logging corruption where it is found (callers only see an error).
  #verified<T>(key: PieceKey, check: () => T): T {
    try {
      return check();
    } catch (error) {
      if (isMosaicError(error, "MOSAIC_ERR_CHUNK_CORRUPT")) {
        this.#log.warn({ ...key, reason: error.message }, "corrupt chunk");
      }
      throw error;
    }
  }

  async volumes(): Promise<string[]> {
    return (await listDir(this.#layout.volumesDir)).filter(isVolumeName).sort();
  }

  async files(volume: string): Promise<string[]> {
    const volumeDir = this.#layout.volumeDir(volume);
    const fileIds: string[] = [];
    for (const prefix of await listDir(volumeDir)) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      const ids = await listDir(join(volumeDir, prefix));
      fileIds.push(...ids.filter((id) => FILE_ID_DIR.test(id) && id.startsWith(prefix)));
    }
    return fileIds.sort();
  }

  async versions(volume: string, fileId: string): Promise<number[]> {
    const names = await listDir(this.#layout.fileDir(volume, fileId));
    return names
      .map(parseVersionDirName)
      .filter((v) => v !== undefined)
      .sort((a, b) => a - b);
  }

  async pieces(volume: string, fileId: string, version: number): Promise<PieceKey[]> {
    const names = await listDir(this.#layout.versionDir(volume, fileId, version));
    return names
      .map(parsePieceFileName)
      .filter((p) => p !== undefined)
      .sort((a, b) => a.stripe - b.stripe || a.slot - b.slot)
      .map(({ stripe, slot }) => ({ volume, fileId, version, stripe, slot }));
  }

  /**
   * Removes one piece (the rebuild drops a piece placement has moved to
   * another node, once that node holds it); empty directories go with it.
   * Returns the bytes freed, 0 if the piece was not here.
   */
  async deletePiece(key: PieceKey): Promise<number> {
    const k = validatePieceKey(key);
    const path = this.#layout.chunkPath(k);
    const versionDir = dirname(path);
    return this.#fileLocks.run(fileLockKey(k), async () => {
      const bytes = await sizeIfExists(path);
      try {
        await rm(path);
      } catch (error) {
        if (isErrno(error, "ENOENT")) return 0;
        throw error;
      }
      this.#usedBytes -= bytes;
      const fileDir = this.#layout.fileDir(k.volume, k.fileId);
      // Pruned so that an emptied version is not listed as one this node holds.
      const removed = (dir: string) =>
        rmdir(dir).then(
          () => true,
          () => false, // not empty
        );
      let changed = versionDir;
      if (await removed(versionDir)) changed = (await removed(fileDir)) ? dirname(fileDir) : fileDir;
      await syncDir(changed);
      this.#log.debug({ ...k, freedBytes: bytes }, "deleted chunk");
      return bytes;
    });
  }

  /** Removes the versions the predicate picks; returns the bytes freed. */
  async deleteVersions(
    volume: string,
    fileId: string,
    predicate: (version: number) => boolean,
  ): Promise<number> {
    const fileDir = this.#layout.fileDir(volume, fileId);
    return this.#fileLocks.run(fileLockKey({ volume, fileId }), async () => {
      const doomed = (await this.versions(volume, fileId)).filter((v) => predicate(v));
      let freedBytes = 0;
      for (const version of doomed) {
        const dir = this.#layout.versionDir(volume, fileId, version);
        const bytes = await treeBytes(dir, { pruneEmpty: false });
        await rm(dir, { recursive: true, force: true });
        // Only after the removal: if it fails part way, usage stays over, never under.
        this.#usedBytes -= bytes;
        freedBytes += bytes;
      }
      if (doomed.length === 0) return 0;
      const fileDirGone = await rmdir(fileDir).then(
        () => true,
        () => false, // not empty: other versions remain
      );
      await syncDir(fileDirGone ? dirname(fileDir) : fileDir);
      this.#log.debug({ volume, fileId, versions: doomed, freedBytes }, "deleted versions");
      return freedBytes;
    });
  }
}

/** The whole data's crc32c from its block table. */
function combineAllBlocks(table: Buffer, dataLengthBytes: number): number {
  return combineBlocks(table, dataLengthBytes, 0, tableBytesOf(dataLengthBytes) / 4 - 1);
}

function fileLockKey(key: Pick<PieceKey, "volume" | "fileId">): string {
  return `${key.volume}/${key.fileId}`;
}

function checkKey(expected: PieceKey, header: ChunkHeader): void {
  if (!samePieceKey(expected, header)) {
    throw corrupt(`chunk ${describePieceKey(expected)}: file holds chunk ${describePieceKey(header)}`);
  }
}

/** The file is as long as its header says: header, data and (version 2) block table. */
function checkFileBytes(
  label: string,
  header: ChunkHeader,
  fileBytes: number,
  headerLengthBytes: number,
  formatVersion: number,
): void {
  const expected = fileBytesOf(header, headerLengthBytes, formatVersion);
  if (fileBytes !== expected) {
    const table = formatVersion === FORMAT_VERSION_WHOLE ? "" : " and its block table";
    throw corrupt(
      `${label}: length mismatch (header says ${header.dataLengthBytes} bytes${table}: ` +
        `a file of ${expected}; it holds ${fileBytes})`,
    );
  }
}

function checkTable(label: string, header: ChunkHeader, table: Buffer): void {
  if (!tableMatches(table, header.dataLengthBytes, header.crc32c))
    throw corrupt(
      `${label}: block table checksum mismatch (its blocks do not add up to ${hex32(header.crc32c)})`,
    );
}

function corrupt(message: string): MosaicError {
  return new MosaicError("MOSAIC_ERR_CHUNK_CORRUPT", message);
}

function noSuchChunk(key: PieceKey, cause: unknown): MosaicError {
  return new MosaicError("MOSAIC_ERR_NO_SUCH_CHUNK", `no chunk ${describePieceKey(key)} on this node`, {
    cause,
  });
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if (isErrno(error, "ENOENT")) return [];
    throw error;
  }
}

async function sizeIfExists(path: string): Promise<number> {
  try {
    return (await lstat(path)).size;
  } catch (error) {
    if (isErrno(error, "ENOENT")) return 0;
    throw error;
  }
}

/** Bytes of the files under `dir`; with pruneEmpty, removes directories below it left empty. */
async function treeBytes(dir: string, options: { pruneEmpty: boolean }): Promise<number> {
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (!entry.isDirectory()) {
      bytes += (await lstat(path)).size;
      continue;
    }
    const below = await treeBytes(path, options);
    bytes += below;
    if (options.pruneEmpty && (await readdir(path)).length === 0) await rmdir(path);
  }
  return bytes;
}
