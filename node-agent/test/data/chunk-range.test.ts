// ChunkStore.getRange on real chunk files: the bytes of a range, its own
// crc32c, every 64 KiB block it touches checked (a flipped bit in them
// fails it even outside the range, the header too), a range past the
// piece's end a clear BAD_REQUEST, a missing piece NO_SUCH_CHUNK, and many
// ranges of pieces of different sizes read at once, through the same reused scratch, each
// exactly right.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { crc32c } from "@node-rs/crc32";
import { isMosaicError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import { headerLengthOf, type PieceKey } from "../../src/storage/chunk-format.ts";
import { ChunkLayout } from "../../src/storage/chunk-layout.ts";
import { ChunkStore } from "../../src/storage/chunk-store.ts";
import { gather, patternBytes } from "../helpers/in-process-cluster.ts";
import { flipBit } from "./flip-bit.ts";

const FILE_ID = "00112233445566778899aabbccddeeff";
const keyOf = (stripe: number, slot = 0): PieceKey => ({
  volume: "media",
  fileId: FILE_ID,
  version: 3,
  stripe,
  slot,
});

describe("ChunkStore.getRange", () => {
  let root: string;
  let store: ChunkStore;
  const pieces: Buffer[] = [];

  const flip = (key: PieceKey, at: number) => flipBit(new ChunkLayout(store.dir).chunkPath(key), at, 0x04);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-chunk-range-"));
    store = await ChunkStore.open(root, { capacityBytes: 1 << 30, log: silentLogger() });
    // Pieces of several sizes, so scratch taken for one is reused for others.
    for (const [stripe, size] of [300_000, 1, 65_536, 1_048_576, 77_777].entries()) {
      pieces[stripe] = await gather(patternBytes(size, stripe + 1));
      await store.put(keyOf(stripe), pieces[stripe] as Buffer);
    }
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test("a range is those bytes with their own crc32c; ranges of many pieces at once are each right", async () => {
    const asks: [number, number, number][] = [];
    for (const [stripe, piece] of pieces.entries()) {
      const n = piece.length;
      for (const [offset, length] of [
        [0, n],
        [0, 1],
        [n - 1, 1],
        [Math.floor(n / 3), Math.max(1, Math.floor(n / 2))],
      ] as const) {
        if (offset + length <= n) asks.push([stripe, offset, length]);
      }
    }
    const got = await Promise.all(
      asks.map(([s, offset, length]) => store.getRange(keyOf(s), { offset, length })),
    );
    for (const [i, [stripe, offset, length]] of asks.entries()) {
      const want = (pieces[stripe] as Buffer).subarray(offset, offset + length);
      const r = got[i] as Awaited<ReturnType<ChunkStore["getRange"]>>;
      assert.ok(r.data.equals(want), `stripe ${stripe} [${offset}, +${length})`);
      assert.equal(r.crc32c, crc32c(want));
      assert.equal(r.header.dataLengthBytes, (pieces[stripe] as Buffer).length);
    }
  });

  test("a range past the piece's end is BAD_REQUEST; a missing piece NO_SUCH_CHUNK", async () => {
    await assert.rejects(store.getRange(keyOf(0), { offset: 299_999, length: 2 }), (e: unknown) =>
      isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST"),
    );
    await assert.rejects(store.getRange(keyOf(0, 1), { offset: 0, length: 1 }), (e: unknown) =>
      isMosaicError(e, "MOSAIC_ERR_NO_SUCH_CHUNK"),
    );
  });

  test("a flipped bit before, in or after the range (in the blocks it touches), or in the header, fails the read as corrupt", async () => {
    const header = headerLengthOf("media");
    // Stripe 3 (1 MiB): the range [400_000, 500_000) is asked each time, which touches the 64 KiB blocks
    // [393_216, 524_288); a new bit is flipped each time.
    for (const [where, at] of [
      ["before the range", header + 393_300],
      ["in the range", header + 450_000],
      ["after the range", header + 524_000],
      ["in the header", 20],
    ] as const) {
      await store.put(keyOf(3), pieces[3] as Buffer);
      await flip(keyOf(3), at);
      await assert.rejects(
        store.getRange(keyOf(3), { offset: 400_000, length: 100_000 }),
        (e: unknown) => isMosaicError(e, "MOSAIC_ERR_CHUNK_CORRUPT"),
        where,
      );
    }
  });
});
