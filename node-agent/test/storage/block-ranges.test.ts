// Ranges of version 2 chunks (a crc32c per 64 KiB block): only the blocks a
// range touches are read and checked, so a flipped bit in one of them is
// caught even outside the range, and one in any other block is left to whole
// reads (get, the scrubber); version 1 chunks (no table) are still read and
// checked whole. Real files in a real store directory.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { crc32c } from "@node-rs/crc32";
import { type ErrorCode, isMosaicError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import { BLOCK_BYTES, encodeTable, tableMatches } from "../../src/storage/block-table.ts";
import {
  encodeHeader,
  FORMAT_VERSION_WHOLE,
  headerLengthOf,
  type PieceKey,
} from "../../src/storage/chunk-format.ts";
import { ChunkLayout } from "../../src/storage/chunk-layout.ts";
import { ChunkStore } from "../../src/storage/chunk-store.ts";
import { flipBit } from "../data/flip-bit.ts";

const root = await mkdtemp(join(tmpdir(), "mosaic-block-ranges-"));
after(() => rm(root, { recursive: true, force: true }));

const KEY: PieceKey = {
  volume: "media",
  fileId: "ab23456789abcdef0123456789abcdef",
  version: 1,
  stripe: 0,
  slot: 0,
};
const HEADER = headerLengthOf(KEY.volume);
// 16 whole blocks and a short 17th.
const DATA = Buffer.alloc(16 * BLOCK_BYTES + 5);
for (let i = 0; i < DATA.length; i++) DATA[i] = (i * 7919 + (i >> 13)) & 0xff;

const fails = (code: ErrorCode) => (error: unknown) => isMosaicError(error, code);
let stores = 0;
const openStore = () =>
  ChunkStore.open(join(root, `store-${++stores}`), { capacityBytes: 1 << 30, log: silentLogger() });

describe("block table", () => {
  test("entries are each block's crc32c, and they add up to the whole data's", () => {
    const parts = [
      DATA.subarray(0, 1000),
      DATA.subarray(1000, 3 * BLOCK_BYTES + 17),
      DATA.subarray(3 * BLOCK_BYTES + 17),
    ];
    const table = encodeTable(parts);
    assert.equal(table.length, 17 * 4);
    for (let b = 0; b < 17; b++) {
      assert.equal(
        table.readUInt32BE(4 * b),
        crc32c(DATA.subarray(b * BLOCK_BYTES, (b + 1) * BLOCK_BYTES)),
        `block ${b}`,
      );
    }
    assert.ok(tableMatches(table, DATA.length, crc32c(DATA)));
    assert.ok(!tableMatches(table, DATA.length, crc32c(DATA) ^ 1));
    assert.ok(!tableMatches(table.subarray(4), DATA.length, crc32c(DATA)));
    assert.ok(tableMatches(encodeTable([]), 0, 0));
  });
});

describe("ranges of version 2 chunks", async () => {
  const store = await openStore();
  const path = new ChunkLayout(store.dir).chunkPath(KEY);
  const fresh = () => store.put(KEY, [DATA.subarray(0, 12345), DATA.subarray(12345)]);
  await fresh();

  test("the file is header, data, block table; the header's crc32c is the data's", async () => {
    const bytes = await readFile(path);
    assert.equal(bytes.length, HEADER + DATA.length + 17 * 4);
    assert.ok(bytes.subarray(HEADER, HEADER + DATA.length).equals(DATA));
    assert.equal((await store.stat(KEY))?.crc32c, crc32c(DATA));
  });

  test("any range, at and across block edges: exactly its bytes, with their own crc32c", async () => {
    const B = BLOCK_BYTES;
    for (const [offset, length] of [
      [0, 1],
      [0, B],
      [B - 1, 2],
      [B, B],
      [3 * B + 100, 5 * B],
      [0, DATA.length],
      [16 * B, 5],
      [DATA.length - 1, 1],
      [7, 0],
    ] as const) {
      const got = await store.getRange(KEY, { offset, length });
      const want = DATA.subarray(offset, offset + length);
      assert.ok(got.data.equals(want), `[${offset}, +${length})`);
      assert.equal(got.crc32c, crc32c(want));
      assert.equal(got.header.crc32c, crc32c(DATA));
    }
  });

  test("a range past the end is BAD_REQUEST; a truncated file CHUNK_CORRUPT", async () => {
    await assert.rejects(
      store.getRange(KEY, { offset: DATA.length - 1, length: 2 }),
      fails("MOSAIC_ERR_BAD_REQUEST"),
    );
    await assert.rejects(store.getRange(KEY, { offset: -1, length: 2 }), fails("MOSAIC_ERR_BAD_REQUEST"));
    for (const size of [HEADER + DATA.length + 17 * 4 - 1, HEADER + 3 * BLOCK_BYTES]) {
      await truncate(path, size);
      await assert.rejects(
        store.getRange(KEY, { offset: 0, length: 10 }),
        fails("MOSAIC_ERR_CHUNK_CORRUPT"),
        `size ${size}`,
      );
      await fresh();
    }
  });

  test("a flipped bit in a block the range touches is caught, inside the range or not", async () => {
    // The range [B + 100, 3B - 100) touches blocks 1 and 2.
    const range = { offset: BLOCK_BYTES + 100, length: 2 * BLOCK_BYTES - 200 };
    for (const [where, at] of [
      ["in the range", 2 * BLOCK_BYTES],
      ["before the range, in its first block", BLOCK_BYTES + 3],
      ["after the range, in its last block", 3 * BLOCK_BYTES - 1],
    ] as const) {
      await fresh();
      await flipBit(path, HEADER + at);
      await assert.rejects(store.getRange(KEY, range), fails("MOSAIC_ERR_CHUNK_CORRUPT"), where);
      await assert.rejects(store.get(KEY), fails("MOSAIC_ERR_CHUNK_CORRUPT"), where);
    }
    for (const [where, at] of [
      ["its block's table entry", HEADER + DATA.length + 4 * 1 + 2],
      ["another block's table entry", HEADER + DATA.length + 4 * 9],
      ["the header", 30],
    ] as const) {
      await fresh();
      await flipBit(path, at);
      await assert.rejects(store.getRange(KEY, range), fails("MOSAIC_ERR_CHUNK_CORRUPT"), where);
    }
  });

  test("a flipped bit in a block the range does not touch is left to whole reads", async () => {
    await fresh();
    await flipBit(path, HEADER + 9 * BLOCK_BYTES + 77);
    const got = await store.getRange(KEY, { offset: 0, length: 2 * BLOCK_BYTES });
    assert.ok(
      got.data.equals(DATA.subarray(0, 2 * BLOCK_BYTES)),
      "the bytes asked for are intact and served",
    );
    await assert.rejects(
      store.getRange(KEY, { offset: 9 * BLOCK_BYTES + 77, length: 1 }),
      fails("MOSAIC_ERR_CHUNK_CORRUPT"),
    );
    await assert.rejects(store.get(KEY), fails("MOSAIC_ERR_CHUNK_CORRUPT"));
    await fresh();
  });
});

describe("version 1 chunks (no block table)", async () => {
  const store = await openStore();
  const path = new ChunkLayout(store.dir).chunkPath(KEY);
  const writeV1 = async () => {
    await mkdir(dirname(path), { recursive: true });
    const header = encodeHeader(
      { ...KEY, dataLengthBytes: DATA.length, crc32c: crc32c(DATA) },
      FORMAT_VERSION_WHOLE,
    );
    await writeFile(path, Buffer.concat([header, DATA]));
  };

  test("are read whole, and in ranges", async () => {
    await writeV1();
    assert.ok((await store.get(KEY)).data.equals(DATA));
    assert.equal((await store.stat(KEY))?.dataLengthBytes, DATA.length);
    const got = await store.getRange(KEY, { offset: 5 * BLOCK_BYTES - 3, length: 10 });
    assert.ok(got.data.equals(DATA.subarray(5 * BLOCK_BYTES - 3, 5 * BLOCK_BYTES + 7)));
    assert.equal(got.crc32c, crc32c(got.data));
    await assert.rejects(
      store.getRange(KEY, { offset: DATA.length, length: 1 }),
      fails("MOSAIC_ERR_BAD_REQUEST"),
    );
  });

  test("a range read still checks the whole piece: a flipped bit anywhere fails it", async () => {
    await writeV1();
    await flipBit(path, HEADER + 15 * BLOCK_BYTES);
    await assert.rejects(store.getRange(KEY, { offset: 0, length: 10 }), fails("MOSAIC_ERR_CHUNK_CORRUPT"));
    await assert.rejects(store.get(KEY), fails("MOSAIC_ERR_CHUNK_CORRUPT"));
  });
});

describe("lent ranges", async () => {
  const store = await openStore();
  await store.put(KEY, DATA);

  test("are the range's bytes; a released buffer serves a later range, never one still lent", async () => {
    const ranges = Array.from({ length: 24 }, (_, i) => ({ offset: i * 40_000, length: 5_000 + i * 1_000 }));
    const lent = await Promise.all(ranges.map((r) => store.lendRange(KEY, r)));
    for (const [i, r] of ranges.entries()) {
      const got = lent[i] as Awaited<ReturnType<ChunkStore["lendRange"]>>;
      assert.ok(got.data.equals(DATA.subarray(r.offset, r.offset + r.length)), `range ${i}`);
      assert.equal(got.crc32c, crc32c(got.data));
    }
    const memories = new Set(lent.map((l) => l.data.buffer));
    assert.equal(memories.size, lent.length, "no two ranges lent at once share memory");
    const first = lent[0] as Awaited<ReturnType<ChunkStore["lendRange"]>>;
    first.release();
    first.release(); // a second release is harmless: the buffer is not given back twice
    const [a, b] = await Promise.all([
      store.lendRange(KEY, { offset: 7, length: 100 }),
      store.lendRange(KEY, { offset: 9, length: 100 }),
    ]);
    // Which of the two takes the pool's buffer depends on which file read
    // the thread pool finishes first; exactly one of them must.
    const reused = [a, b].filter((l) => l?.data.buffer === first.data.buffer);
    assert.equal(reused.length, 1, "the released buffer is lent again, to one range only");
    assert.ok(a?.data.equals(DATA.subarray(7, 107)) && b?.data.equals(DATA.subarray(9, 109)));
  });

  test("a failed read gives its buffer back", async () => {
    const path = new ChunkLayout(store.dir).chunkPath(KEY);
    await flipBit(path, HEADER + 100);
    const before = await store.lendRange(KEY, { offset: 5 * BLOCK_BYTES, length: 10 });
    before.release();
    await assert.rejects(store.lendRange(KEY, { offset: 0, length: 10 }), fails("MOSAIC_ERR_CHUNK_CORRUPT"));
    const after = await store.lendRange(KEY, { offset: 5 * BLOCK_BYTES, length: 10 });
    assert.equal(after.data.buffer, before.data.buffer, "the failed read's buffer came back to the pool");
    await store.put(KEY, DATA);
  });
});
