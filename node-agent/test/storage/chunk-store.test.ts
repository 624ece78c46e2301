import assert from "node:assert/strict";
import { copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { pino } from "pino";
import { type ErrorCode, isMosaicError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import type { PieceKey } from "../../src/storage/chunk-format.ts";
import { ChunkStore } from "../../src/storage/chunk-store.ts";

const root = await mkdtemp(join(tmpdir(), "mosaic-chunk-store-"));
after(() => rm(root, { recursive: true, force: true }));

let dirs = 0;
async function openStore(capacityBytes = 1024 ** 3, dir?: string): Promise<ChunkStore> {
  dirs += 1;
  return ChunkStore.open(dir ?? join(root, `store-${dirs}`), { capacityBytes, log: silentLogger() });
}

/** A piece of at most 64 KiB has one block, so its table is one crc32c. */
const TABLE_ENTRY = 4;
const FILE_ID = "ab23456789abcdef0123456789abcdef";
const OTHER_ID = "cd23456789abcdef0123456789abcdef";
const key = (change: Partial<PieceKey> = {}): PieceKey => ({
  volume: "media",
  fileId: FILE_ID,
  version: 3,
  stripe: 2,
  slot: 1,
  ...change,
});
const chunkFile = (store: ChunkStore, k: PieceKey = key()) =>
  join(
    store.dir,
    "volumes",
    k.volume,
    k.fileId.slice(0, 2),
    k.fileId,
    `v${k.version}`,
    `${k.stripe}.${k.slot}.chunk`,
  );
const fails = (code: ErrorCode, message?: RegExp) => (error: unknown) =>
  isMosaicError(error, code) && (message === undefined || message.test(error.message));

describe("chunk store: put and get", () => {
  test("round trip of a Buffer, at the documented path", async () => {
    const store = await openStore();
    const data = Buffer.from("the quick brown fox");
    const header = await store.put(key(), data);
    assert.equal(header.dataLengthBytes, data.length);
    const got = await store.get(key());
    assert.deepEqual(got.data, data);
    assert.deepEqual(got.header, header);
    assert.deepEqual(await store.stat(key()), header);
    assert.equal((await lstat(chunkFile(store))).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(join(store.dir, "tmp")), []);
  });

  test("Buffer[] input (with an empty part) and 0-byte data", async () => {
    const store = await openStore();
    await store.put(key(), [Buffer.from("ab"), Buffer.alloc(0), Buffer.from("cd")]);
    assert.equal((await store.get(key())).data.toString(), "abcd");
    await store.put(key({ slot: 2 }), Buffer.alloc(0));
    assert.equal((await store.get(key({ slot: 2 }))).data.length, 0);
    await store.put(key({ slot: 3 }), []);
    assert.equal((await store.stat(key({ slot: 3 })))?.dataLengthBytes, 0);
  });

  test("the manifest copy is stripe -1, stored as manifest.<slot>.chunk", async () => {
    const store = await openStore();
    await store.put(key({ stripe: -1, slot: 0 }), Buffer.from("{}"));
    const path = join(store.dir, "volumes/media/ab", FILE_ID, "v3/manifest.0.chunk");
    assert.ok((await lstat(path)).isFile());
    assert.equal((await store.get(key({ stripe: -1, slot: 0 }))).data.toString(), "{}");
  });

  test("a missing chunk is NO_SUCH_CHUNK for get and undefined for stat", async () => {
    const store = await openStore();
    await assert.rejects(store.get(key()), fails("MOSAIC_ERR_NO_SUCH_CHUNK", /v3 stripe 2 slot 1/));
    assert.equal(await store.stat(key()), undefined);
  });

  test("invalid keys are BAD_REQUEST and touch nothing outside the store", async () => {
    const store = await openStore();
    const bad = [key({ volume: "../x" }), key({ volume: ".." }), key({ fileId: "zz" }), key({ slot: -1 })];
    for (const k of bad) {
      await assert.rejects(
        store.put(k, Buffer.from("x")),
        fails("MOSAIC_ERR_BAD_REQUEST"),
        JSON.stringify(k),
      );
      await assert.rejects(store.get(k), fails("MOSAIC_ERR_BAD_REQUEST"));
      await assert.rejects(store.stat(k), fails("MOSAIC_ERR_BAD_REQUEST"));
    }
    await assert.rejects(store.files("../x"), fails("MOSAIC_ERR_BAD_REQUEST"));
    await assert.rejects(store.versions("media", "../../x"), fails("MOSAIC_ERR_BAD_REQUEST"));
    await assert.rejects(store.pieces("media", FILE_ID, -1), fails("MOSAIC_ERR_BAD_REQUEST"));
    await assert.rejects(
      store.deleteVersions("media", "zz", () => true),
      fails("MOSAIC_ERR_BAD_REQUEST"),
    );
    assert.deepEqual((await readdir(store.dir)).sort(), ["tmp", "volumes"]);
    assert.deepEqual(await readdir(join(store.dir, "volumes")), []);
    assert.equal(store.usage().usedBytes, 0);
  });
});

describe("chunk store: corruption", () => {
  test("every single-bit flip in header, data or block table is CHUNK_CORRUPT, never data", async () => {
    const store = await openStore();
    await store.put(key({ volume: "v" }), Buffer.from("8 bytes!"));
    const path = chunkFile(store, key({ volume: "v" }));
    const original = await readFile(path);
    const headerBytes = original.length - 8 - TABLE_ENTRY;
    for (let bit = 0; bit < original.length * 8; bit += 1) {
      const flipped = Buffer.from(original);
      flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
      await writeFile(path, flipped);
      await assert.rejects(store.get(key({ volume: "v" })), fails("MOSAIC_ERR_CHUNK_CORRUPT"), `bit ${bit}`);
      await assert.rejects(
        store.getRange(key({ volume: "v" }), { offset: 2, length: 3 }),
        fails("MOSAIC_ERR_CHUNK_CORRUPT"),
        `range, bit ${bit}`,
      );
      if (bit < headerBytes * 8) {
        await assert.rejects(
          store.stat(key({ volume: "v" })),
          fails("MOSAIC_ERR_CHUNK_CORRUPT"),
          `bit ${bit}`,
        );
      }
    }
    await writeFile(path, original);
    assert.equal((await store.get(key({ volume: "v" }))).data.toString(), "8 bytes!");
  });

  test("a truncated or extended file is CHUNK_CORRUPT for get and stat", async () => {
    const store = await openStore();
    await store.put(key(), Buffer.from("some data"));
    const original = await readFile(chunkFile(store));
    for (const changed of [original.subarray(0, -1), Buffer.concat([original, Buffer.from("!")])]) {
      await writeFile(chunkFile(store), changed);
      await assert.rejects(store.get(key()), fails("MOSAIC_ERR_CHUNK_CORRUPT", /length mismatch/));
      await assert.rejects(store.stat(key()), fails("MOSAIC_ERR_CHUNK_CORRUPT", /length mismatch/));
    }
  });

  test("a chunk file under another key's path is CHUNK_CORRUPT, and logged at warn", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: "debug" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const store = await ChunkStore.open(join(root, "mismatch"), { capacityBytes: 1 << 20, log });
    await store.put(key({ slot: 1 }), Buffer.from("slot one"));
    await store.put(key({ slot: 2 }), Buffer.from("slot two"));
    await copyFile(chunkFile(store, key({ slot: 1 })), chunkFile(store, key({ slot: 2 })));
    const message = /v3 stripe 2 slot 2: file holds chunk media\/\w+ v3 stripe 2 slot 1$/;
    await assert.rejects(store.get(key({ slot: 2 })), fails("MOSAIC_ERR_CHUNK_CORRUPT", message));
    await assert.rejects(store.stat(key({ slot: 2 })), fails("MOSAIC_ERR_CHUNK_CORRUPT", message));
    const warning = lines.find((line) => line.level === 40);
    assert.equal(warning?.component, "chunk-store");
    assert.equal(warning?.slot, 2);
    assert.match(String(warning?.reason), message);
    assert.ok(lines.some((line) => line.level === 20 && line.msg === "put chunk"));
  });
});

describe("chunk store: capacity and usage", () => {
  test("a put beyond capacity is refused with a clear message and leaves nothing behind", async () => {
    const store = await openStore(8 * 1024);
    await store.put(key({ slot: 0 }), Buffer.alloc(5000));
    const used = store.usage().usedBytes;
    await assert.rejects(
      store.put(key({ slot: 1 }), Buffer.alloc(5000)),
      fails(
        "MOSAIC_ERR_STORE_FULL",
        /^store full: chunk .* slot 1 needs 4\.\d\d KiB, 4\.\d\d KiB of 8 KiB used$/,
      ),
    );
    assert.deepEqual(store.usage(), { usedBytes: used, capacityBytes: 8192, freeBytes: 8192 - used });
    assert.deepEqual(await readdir(join(store.dir, "tmp")), []);
    assert.equal(await store.stat(key({ slot: 1 })), undefined);
  });

  test("concurrent puts reserve capacity: only those that fit succeed", async () => {
    const store = await openStore(2 * 1100);
    const results = await Promise.allSettled(
      [0, 1, 2].map((slot) => store.put(key({ slot }), Buffer.alloc(1000))),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "fulfilled", "rejected"],
    );
    const rejected = results[2] as PromiseRejectedResult;
    assert.match(rejected.reason.message, /reserved by writes in progress/);
    assert.equal(
      store.usage().usedBytes,
      (await store.pieces("media", FILE_ID, 3)).length * (1000 + 55 + TABLE_ENTRY),
    );
  });

  test("replacing a chunk, also concurrently, counts only the file left in place", async () => {
    const store = await openStore();
    await store.put(key(), Buffer.alloc(1000));
    await store.put(key(), Buffer.alloc(10));
    assert.equal(store.usage().usedBytes, (await lstat(chunkFile(store))).size);
    const sizes = [5, 500, 50, 5000, 0];
    await Promise.all(sizes.map((n) => store.put(key(), Buffer.alloc(n, n))));
    assert.equal(store.usage().usedBytes, (await lstat(chunkFile(store))).size);
    const { data } = await store.get(key());
    assert.ok(sizes.some((n) => data.equals(Buffer.alloc(n, n))));
  });

  test("usage after deleteVersions and after reopening the directory", async () => {
    const store = await openStore();
    for (const version of [1, 2, 3]) {
      for (const slot of [0, 1]) await store.put(key({ version, slot }), Buffer.alloc(100 * version));
    }
    await store.put(key({ fileId: OTHER_ID }), Buffer.alloc(7));
    const before = store.usage().usedBytes;
    const freed = await store.deleteVersions("media", FILE_ID, (v) => v < 3);
    assert.equal(freed, 2 * (100 + 55 + TABLE_ENTRY) + 2 * (200 + 55 + TABLE_ENTRY));
    assert.equal(store.usage().usedBytes, before - freed);
    assert.deepEqual(await store.versions("media", FILE_ID), [3]);
    assert.equal((await openStore(1, store.dir)).usage().usedBytes, store.usage().usedBytes);

    assert.equal(await store.deleteVersions("media", FILE_ID, () => false), 0);
    assert.equal(await store.deleteVersions("media", FILE_ID, () => true), 2 * (300 + 55 + TABLE_ENTRY));
    assert.deepEqual(await store.files("media"), [OTHER_ID]);
    assert.equal(store.usage().usedBytes, 7 + 55 + TABLE_ENTRY);
    assert.equal((await openStore(1, store.dir)).usage().usedBytes, 7 + 55 + TABLE_ENTRY);
  });

  test("open removes leftover temp files and directories of a write that never landed", async () => {
    const dir = join(root, "crashed");
    const first = await openStore(1 << 20, dir);
    await first.put(key(), Buffer.from("kept"));
    await writeFile(join(dir, "tmp", "0b7c.tmp"), Buffer.alloc(4096));
    await mkdir(join(dir, "volumes/media/ab", FILE_ID, "v4"));
    const store = await openStore(1 << 20, dir);
    assert.deepEqual(await readdir(join(dir, "tmp")), []);
    assert.deepEqual(await store.versions("media", FILE_ID), [3]);
    assert.equal(store.usage().usedBytes, first.usage().usedBytes);
    assert.equal((await store.get(key())).data.toString(), "kept");
  });
});

describe("chunk store: listing", () => {
  test("volumes, files, versions and pieces, sorted", async () => {
    const store = await openStore();
    assert.deepEqual(await store.volumes(), []);
    assert.deepEqual(await store.files("media"), []);
    assert.deepEqual(await store.versions("media", FILE_ID), []);
    assert.deepEqual(await store.pieces("media", FILE_ID, 1), []);
    const keys = [
      key({ version: 10, stripe: 10, slot: 0 }),
      key({ version: 10, stripe: 2, slot: 1 }),
      key({ version: 10, stripe: -1, slot: 3 }),
      key({ version: 10, stripe: 2, slot: 0 }),
      key({ version: 9 }),
      key({ fileId: OTHER_ID }),
      key({ volume: "archive" }),
    ];
    for (const k of keys) await store.put(k, Buffer.from("x"));
    assert.deepEqual(await store.volumes(), ["archive", "media"]);
    assert.deepEqual(await store.files("media"), [FILE_ID, OTHER_ID]);
    assert.deepEqual(await store.versions("media", FILE_ID), [9, 10]);
    assert.deepEqual(await store.pieces("media", FILE_ID, 10), [keys[2], keys[3], keys[1], keys[0]]);
  });
});
