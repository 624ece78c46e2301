// Reed-Solomon coding of one stripe, over @ronomon/reed-solomon (a native
// addon that runs on libuv's thread pool, so a large stripe never stalls the
// event loop). Systematic code: shards 0..k-1 are the file's data, shards
// k..k+m-1 are parity; any k of the k+m shards rebuild the rest.
//
//   const codec = ErasureCodec.forLayout(layout);            // or new ErasureCodec(k, m)
//   encode(data, shardBytes, parity?)   -> Promise<Buffer>   // m parity shards, back to back
//   decode(pieces, shardBytes, into?)   -> Promise<Buffer>   // k data shards, back to back
//   reconstruct(pieces, shardBytes)     -> Promise<Buffer[]> // all k+m shards
//
// Shapes, chosen so the hot paths copy nothing they need not:
// - encode reads the k data shards from one buffer of exactly k*shardBytes:
//   the writer's stripe buffer, zero-padded past the file's end. The parity is
//   written into `parity` when given (exactly m*shardBytes), else a new buffer.
// - decode and reconstruct take k+m pieces in shard order, `undefined` for a
//   missing one. The addon needs the data shards, and the parity shards,
//   contiguous, so present pieces are copied into place once - except a data
//   piece that already sits at its slot in `into`, which is left where it is.
//   A data piece may be shorter than shardBytes (the last stripe of a file):
//   the rest is zeros, as it was when encoded. An empty Buffer is a present
//   piece of zeros, not a missing one. Parity pieces are exactly shardBytes.
// - decode is the read path: it rebuilds only missing data and returns the
//   stripe's bytes in one buffer (`into` when given, exactly k*shardBytes).
//   reconstruct is the repair path: it returns every shard, shardBytes long
//   (trim data shards to their piece length yourself); shards 0..k-1 are
//   consecutive views of one buffer, k..k+m-1 of another.
// Fewer than k pieces present rejects with MOSAIC_ERR_DATA_UNAVAILABLE; misuse
// (sizes, counts, overlapping buffers) with MOSAIC_ERR_BAD_REQUEST. Buffers
// handed in must not be changed until the promise settles: the addon reads and
// writes them from another thread.
import { createRequire } from "node:module";
import { SHARD_ALIGN_BYTES } from "../core/stripes.ts";
import type { StripeLayout } from "../core/volume.ts";
import { MosaicError } from "../errors.ts";

interface ReedSolomonAddon {
  readonly MAX_K: number;
  readonly MAX_M: number;
  create(k: number, m: number): Buffer;
  encode(
    context: Buffer,
    sources: number,
    targets: number,
    buffer: Buffer,
    bufferOffset: number,
    bufferSize: number,
    parity: Buffer,
    parityOffset: number,
    paritySize: number,
    end: (error?: unknown) => void,
  ): void;
}

const ReedSolomon = createRequire(import.meta.url)("@ronomon/reed-solomon") as ReedSolomonAddon;

export const ERASURE_DATA_MAX: number = ReedSolomon.MAX_K;
export const ERASURE_PARITY_MAX: number = ReedSolomon.MAX_M;
// The addon takes sizes as uint32 and asserts (aborting the process) on a
// Buffer longer than that, so nothing that large may reach it.
const ADDON_BYTES_MAX = 0xffff_ffff;

// Building a context inverts matrices; it is immutable and safe to share
// between concurrent calls, so one per (k, m) for the life of the process.
const contexts = new Map<string, Buffer>();

function contextFor(data: number, parity: number): Buffer {
  const key = `${data}+${parity}`;
  let context = contexts.get(key);
  if (context === undefined) {
    context = ReedSolomon.create(data, parity);
    contexts.set(key, context);
  }
  return context;
}

// Decode's parity workspace is scratch the caller never sees. Faulting in fresh
// pages for it each stripe costs more than the coding of a 2+1 stripe, so a
// few are kept for reuse; the cap bounds what an idle agent holds on to.
const SPARE_MAX_BYTES = 64 * 1024 * 1024;
const spares: Buffer[] = [];
let spareBytes = 0;

function takeSpare(bytes: number): Buffer {
  const i = spares.findIndex((spare) => spare.length === bytes);
  if (i < 0) return Buffer.allocUnsafeSlow(bytes);
  spareBytes -= bytes;
  return spares.splice(i, 1)[0] as Buffer;
}

function giveSpare(spare: Buffer): void {
  if (spare.length > SPARE_MAX_BYTES) return;
  while (spareBytes + spare.length > SPARE_MAX_BYTES) spareBytes -= (spares.shift() as Buffer).length;
  spares.push(spare);
  spareBytes += spare.length;
}

export class ErasureCodec {
  readonly dataShards: number;
  readonly parityShards: number;
  readonly #context: Buffer | undefined;

  constructor(data: number, parity: number) {
    if (!Number.isInteger(data) || data < 1 || data > ERASURE_DATA_MAX) {
      throw badRequest(`erasure data shards ${data} must be an integer from 1 to ${ERASURE_DATA_MAX}`);
    }
    if (!Number.isInteger(parity) || parity < 0 || parity > ERASURE_PARITY_MAX) {
      throw badRequest(`erasure parity shards ${parity} must be an integer from 0 to ${ERASURE_PARITY_MAX}`);
    }
    this.dataShards = data;
    this.parityShards = parity;
    // The addon refuses m = 0; with no parity there is nothing for it to do.
    this.#context = parity > 0 ? contextFor(data, parity) : undefined;
  }

  static forLayout(layout: StripeLayout): ErasureCodec {
    if (layout.kind !== "erasure") throw badRequest(`a ${layout.kind} layout has no erasure codec`);
    return new ErasureCodec(layout.dataPieces, layout.redundantPieces);
  }

  get name(): string {
    return `erasure ${this.dataShards}+${this.parityShards}`;
  }

  /** Parity of the k data shards held back to back in `data`. */
  async encode(data: Buffer, shardBytes: number, parity?: Buffer): Promise<Buffer> {
    const k = this.dataShards;
    const m = this.parityShards;
    this.#checkShardBytes(shardBytes);
    this.#checkBuffer("data", data, k * shardBytes);
    if (parity === undefined) {
      // Every byte is overwritten below, so no need to zero it first.
      parity = Buffer.allocUnsafeSlow(m * shardBytes);
    } else {
      this.#checkBuffer("parity", parity, m * shardBytes);
      if (overlaps(data, parity)) throw badRequest(`${this.name}: parity output overlaps the data`);
    }
    if (this.#context === undefined) return parity;
    await this.#run(allBits(0, k), allBits(k, m), data, parity, shardBytes);
    return parity;
  }

  /** The k data shards back to back (the stripe's file bytes, zero padded), rebuilding missing ones. */
  async decode(pieces: readonly (Buffer | undefined)[], shardBytes: number, into?: Buffer): Promise<Buffer> {
    const k = this.dataShards;
    this.#checkPieces(pieces, shardBytes);
    if (into === undefined) {
      into = Buffer.allocUnsafeSlow(k * shardBytes);
    } else {
      this.#checkBuffer("decode output", into, k * shardBytes);
      this.#checkAliasing(pieces, shardBytes, into);
    }
    const { sources, missing } = this.#presence(pieces);
    const lostData = missing & allBits(0, k);
    if (lostData === 0) {
      this.#placeData(pieces, shardBytes, into);
      return into;
    }
    this.#checkRecoverable(sources);
    this.#placeData(pieces, shardBytes, into);
    const parity = this.#placeParity(pieces, shardBytes, takeSpare(this.parityShards * shardBytes));
    try {
      await this.#run(sources, lostData, into, parity, shardBytes);
    } finally {
      giveSpare(parity);
    }
    return into;
  }

  /** All k+m shards, shardBytes each, rebuilding every missing one. */
  async reconstruct(pieces: readonly (Buffer | undefined)[], shardBytes: number): Promise<Buffer[]> {
    const k = this.dataShards;
    const m = this.parityShards;
    this.#checkPieces(pieces, shardBytes);
    const { sources, missing } = this.#presence(pieces);
    if (missing !== 0) this.#checkRecoverable(sources);
    const data = Buffer.allocUnsafeSlow(k * shardBytes);
    this.#placeData(pieces, shardBytes, data);
    const parity = this.#placeParity(pieces, shardBytes, Buffer.allocUnsafeSlow(m * shardBytes));
    if (missing !== 0) await this.#run(sources, missing, data, parity, shardBytes);
    const shards: Buffer[] = [];
    for (let i = 0; i < k; i++) shards.push(data.subarray(i * shardBytes, (i + 1) * shardBytes));
    for (let i = 0; i < m; i++) shards.push(parity.subarray(i * shardBytes, (i + 1) * shardBytes));
    return shards;
  }

  #presence(pieces: readonly (Buffer | undefined)[]): { sources: number; missing: number } {
    let sources = 0;
    let missing = 0;
    for (let i = 0; i < pieces.length; i++) {
      if (pieces[i] === undefined) missing |= 1 << i;
      else sources |= 1 << i;
    }
    return { sources, missing };
  }

  #checkRecoverable(sources: number): void {
    const k = this.dataShards;
    const width = k + this.parityShards;
    const present = bitCount(sources);
    if (present >= k) return;
    const lost: number[] = [];
    for (let i = 0; i < width; i++) if ((sources & (1 << i)) === 0) lost.push(i);
    throw new MosaicError(
      "MOSAIC_ERR_DATA_UNAVAILABLE",
      `${this.name}: ${present} of ${width} pieces present, ${k} needed to rebuild the stripe (missing ${lost.join(", ")})`,
    );
  }

  // Copies present data pieces to their slots and zero-fills what they leave;
  // slots of missing pieces stay as they are, the addon overwrites them.
  #placeData(pieces: readonly (Buffer | undefined)[], shardBytes: number, data: Buffer): void {
    for (let i = 0; i < this.dataShards; i++) {
      const piece = pieces[i];
      if (piece === undefined) continue;
      const slot = i * shardBytes;
      if (!isAt(piece, data, slot)) piece.copy(data, slot);
      if (piece.length < shardBytes) data.fill(0, slot + piece.length, slot + shardBytes);
    }
  }

  // Pieces read straight into their slot of the output are welcome; any other
  // overlap would be overwritten before it is read.
  #checkAliasing(pieces: readonly (Buffer | undefined)[], shardBytes: number, into: Buffer): void {
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (piece === undefined || !overlaps(piece, into)) continue;
      if (i < this.dataShards && isAt(piece, into, i * shardBytes)) continue;
      throw badRequest(`${this.name}: piece ${i} overlaps the output but is not at its slot`);
    }
  }

  #placeParity(pieces: readonly (Buffer | undefined)[], shardBytes: number, parity: Buffer): Buffer {
    const k = this.dataShards;
    for (let i = 0; i < this.parityShards; i++) pieces[k + i]?.copy(parity, i * shardBytes);
    return parity;
  }

  #run(sources: number, targets: number, data: Buffer, parity: Buffer, shardBytes: number): Promise<void> {
    const context = this.#context;
    if (context === undefined) throw internal(`${this.name}: nothing to rebuild from without parity`);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const dataBytes = this.dataShards * shardBytes;
    const parityBytes = this.parityShards * shardBytes;
    try {
      ReedSolomon.encode(context, sources, targets, data, 0, dataBytes, parity, 0, parityBytes, (error) => {
        if (error) reject(internal(`${this.name}: coding failed`, error));
        else resolve();
      });
    } catch (error) {
      // Arguments were checked above, so the addon refusing them is our bug.
      reject(internal(`${this.name}: the codec refused its arguments`, error));
    }
    return promise;
  }

  #checkShardBytes(shardBytes: number): void {
    if (!Number.isInteger(shardBytes) || shardBytes <= 0 || shardBytes % SHARD_ALIGN_BYTES !== 0) {
      throw badRequest(
        `${this.name}: shardBytes ${shardBytes} must be a positive multiple of ${SHARD_ALIGN_BYTES}`,
      );
    }
    const widest = Math.max(this.dataShards, this.parityShards) * shardBytes;
    if (widest > ADDON_BYTES_MAX) {
      throw badRequest(`${this.name}: shardBytes ${shardBytes} makes a stripe over ${ADDON_BYTES_MAX} bytes`);
    }
  }

  #checkBuffer(what: string, buffer: unknown, expectedBytes: number): asserts buffer is Buffer {
    if (!Buffer.isBuffer(buffer)) throw badRequest(`${this.name}: ${what} must be a Buffer`);
    if (buffer.length !== expectedBytes) {
      throw badRequest(`${this.name}: ${what} is ${buffer.length} bytes, expected ${expectedBytes}`);
    }
  }

  #checkPieces(pieces: readonly (Buffer | undefined)[], shardBytes: number): void {
    this.#checkShardBytes(shardBytes);
    const k = this.dataShards;
    const width = k + this.parityShards;
    if (!Array.isArray(pieces) || pieces.length !== width) {
      throw badRequest(`${this.name}: expected ${width} pieces (undefined for missing ones)`);
    }
    for (let i = 0; i < width; i++) {
      const piece: unknown = pieces[i];
      if (piece === undefined) continue;
      if (!Buffer.isBuffer(piece)) throw badRequest(`${this.name}: piece ${i} must be a Buffer or undefined`);
      if (i < k ? piece.length > shardBytes : piece.length !== shardBytes) {
        const expected = i < k ? `at most ${shardBytes}` : `${shardBytes}`;
        throw badRequest(`${this.name}: piece ${i} is ${piece.length} bytes, expected ${expected}`);
      }
    }
  }
}

function allBits(first: number, count: number): number {
  let bits = 0;
  for (let i = first; i < first + count; i++) bits |= 1 << i;
  return bits;
}

function bitCount(bits: number): number {
  let count = 0;
  for (let rest = bits; rest !== 0; rest &= rest - 1) count++;
  return count;
}

function overlaps(a: Buffer, b: Buffer): boolean {
  return (
    a.buffer === b.buffer &&
    a.length > 0 &&
    b.length > 0 &&
    a.byteOffset < b.byteOffset + b.length &&
    b.byteOffset < a.byteOffset + a.length
  );
}

function isAt(piece: Buffer, buffer: Buffer, offset: number): boolean {
  return piece.buffer === buffer.buffer && piece.byteOffset === buffer.byteOffset + offset;
}

function badRequest(message: string): MosaicError {
  return new MosaicError("MOSAIC_ERR_BAD_REQUEST", message);
}

function internal(message: string, cause?: unknown): MosaicError {
  return new MosaicError("MOSAIC_ERR_INTERNAL", message, { cause });
}
