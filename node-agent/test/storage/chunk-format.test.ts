import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { crc32c } from "@node-rs/crc32";
import fc from "fast-check";
import { isMosaicError } from "../../src/errors.ts";
import {
  type ChunkHeader,
  decodeHeader,
  encodeHeader,
  FORMAT_VERSION,
  FORMAT_VERSION_WHOLE,
  HEADER_MAX_BYTES,
  verifyData,
} from "../../src/storage/chunk-format.ts";

const FILE_ID = "0123456789abcdef0123456789abcdef";
const header: ChunkHeader = {
  volume: "media",
  fileId: FILE_ID,
  version: 3,
  stripe: 2,
  slot: 1,
  dataLengthBytes: 5,
  crc32c: crc32c(Buffer.from("hello")),
};

// fast-check builds records without a prototype; a plain copy compares with decoded headers.
const headers = fc
  .record({
    volume: fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/),
    fileId: fc.stringMatching(/^[0-9a-f]{32}$/),
    version: fc.maxSafeNat(),
    stripe: fc.integer({ min: -1, max: 2 ** 31 - 1 }),
    slot: fc.integer({ min: 0, max: 2 ** 16 - 1 }),
    dataLengthBytes: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    crc32c: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  })
  .map((h): ChunkHeader => ({ ...h }));

const isCorrupt = (error: unknown) => isMosaicError(error, "MOSAIC_ERR_CHUNK_CORRUPT");
const isBadRequest = (error: unknown) => isMosaicError(error, "MOSAIC_ERR_BAD_REQUEST");

describe("chunk header", () => {
  test("round trip, with data after the header", () => {
    const bytes = encodeHeader(header);
    assert.equal(bytes.subarray(0, 4).toString("latin1"), "MOSC");
    const decoded = decodeHeader(Buffer.concat([bytes, Buffer.from("hello")]));
    assert.deepEqual(decoded, { header, headerLengthBytes: bytes.length, formatVersion: FORMAT_VERSION });
  });

  test("version 1 headers (chunks without a block table) are still read", () => {
    const bytes = encodeHeader(header, FORMAT_VERSION_WHOLE);
    assert.equal(bytes[4], 1);
    assert.deepEqual(decodeHeader(bytes), { header, headerLengthBytes: bytes.length, formatVersion: 1 });
    assert.throws(() => encodeHeader(header, 3), isBadRequest);
  });

  test("round trip at the limits: manifest stripe, 63-byte volume, version 2^53 - 1", () => {
    const edge = {
      ...header,
      volume: "v".repeat(63),
      version: Number.MAX_SAFE_INTEGER,
      stripe: -1,
      slot: 65535,
    };
    const bytes = encodeHeader(edge);
    assert.equal(bytes.length, HEADER_MAX_BYTES);
    assert.deepEqual(decodeHeader(bytes).header, edge);
  });

  test("round trip of any valid header (property)", () => {
    fc.assert(
      fc.property(headers, fc.uint8Array({ maxLength: 16 }), (h, tail) => {
        const bytes = encodeHeader(h);
        const decoded = decodeHeader(Buffer.concat([bytes, tail]));
        assert.deepEqual(decoded, {
          header: h,
          headerLengthBytes: bytes.length,
          formatVersion: FORMAT_VERSION,
        });
      }),
    );
  });

  test("any single flipped bit is detected (property)", () => {
    fc.assert(
      fc.property(headers, fc.nat(), (h, n) => {
        const bytes = encodeHeader(h);
        const bit = n % (bytes.length * 8);
        bytes[bit >> 3] = (bytes[bit >> 3] as number) ^ (1 << (bit & 7));
        assert.throws(() => decodeHeader(bytes), isCorrupt);
      }),
    );
  });

  test("a truncated header is refused at every length", () => {
    const bytes = encodeHeader(header);
    for (let length = 0; length < bytes.length; length += 1) {
      assert.throws(() => decodeHeader(bytes.subarray(0, length)), isCorrupt, `length ${length}`);
    }
  });

  test("errors say what is wrong, prefixed by the label", () => {
    const bytes = encodeHeader(header);
    const badMagic = Buffer.from(bytes);
    badMagic.write("MOSX", 0, "latin1");
    assert.throws(() => decodeHeader(badMagic, "chunk X"), /^MosaicError: chunk X: bad magic 0x4d4f5358$/);
    const badFormat = Buffer.from(bytes);
    badFormat[4] = 3;
    assert.throws(() => decodeHeader(badFormat), /unknown format version 3/);
    const badCrc = Buffer.from(bytes);
    badCrc[bytes.length - 1] = (badCrc[bytes.length - 1] as number) ^ 1;
    assert.throws(
      () => decodeHeader(badCrc),
      /header checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)/,
    );
  });

  test("a header whose checksum matches but whose volume is not a volume name is refused", () => {
    const bytes = encodeHeader({ ...header, volume: "abc" });
    bytes.write("../", 8, "latin1");
    bytes.writeUInt32BE(crc32c(bytes.subarray(0, bytes.length - 4)), bytes.length - 4);
    assert.throws(() => decodeHeader(bytes), /bad volume name "\.\.\/"/);
  });

  test("encoding refuses invalid fields", () => {
    const invalid: Partial<ChunkHeader>[] = [
      { volume: "../x" },
      { volume: "Media" },
      { volume: "v".repeat(64) },
      { fileId: "zz" },
      { fileId: FILE_ID.toUpperCase() },
      { version: -1 },
      { version: 2 ** 53 },
      { version: 1.5 },
      { stripe: -2 },
      { stripe: 2 ** 31 },
      { slot: -1 },
      { slot: 65536 },
      { dataLengthBytes: 2 ** 32 },
      { crc32c: -1 },
    ];
    for (const change of invalid) {
      assert.throws(() => encodeHeader({ ...header, ...change }), isBadRequest, JSON.stringify(change));
    }
  });
});

describe("chunk data", () => {
  test("verifies whole or in parts", () => {
    verifyData(header, Buffer.from("hello"));
    verifyData(header, [Buffer.from("he"), Buffer.alloc(0), Buffer.from("llo")]);
    verifyData({ ...header, dataLengthBytes: 0, crc32c: 0 }, Buffer.alloc(0));
  });

  test("a changed byte is a checksum mismatch naming the chunk", () => {
    assert.throws(
      () => verifyData(header, Buffer.from("hellO")),
      (error) =>
        isCorrupt(error) &&
        /^chunk media\/0123456789abcdef0123456789abcdef v3 stripe 2 slot 1: checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)$/.test(
          (error as Error).message,
        ),
    );
  });

  test("a wrong length is refused before the checksum", () => {
    assert.throws(
      () => verifyData(header, Buffer.from("hello!")),
      /length mismatch \(header says 5 bytes, data is 6\)/,
    );
    assert.throws(
      () => verifyData({ ...header, stripe: -1 }, [Buffer.from("hell")]),
      /manifest slot 1: length mismatch/,
    );
  });
});
