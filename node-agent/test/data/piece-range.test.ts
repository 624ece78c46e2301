// The pure parts of ranged piece reads: which part of which data piece a
// stripe range needs, the range a GetPiece request may carry, and the check
// a reader makes of what a holder sent (crc32c of the slice, the range it
// echoes, a holder that sent the whole piece instead), and the crc32c
// arithmetic a holder uses to check a whole piece it reads in three parts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { crc32c } from "@node-rs/crc32";
import fc from "fast-check";
import { piecesOfRange } from "../../src/data/file-reader.ts";
import { isMosaicError } from "../../src/errors.ts";
import { validateGetPieceRequest, validatePieceRange } from "../../src/rpc/messages.ts";
import { checkReceivedPiece, sliceParts } from "../../src/rpc/piece-range.ts";
import { crc32cCombine } from "../../src/storage/crc32c-combine.ts";

const piece = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7 + 3) & 0xff));
const LABEL = "piece media/x stripe 0 slot 1 from node-1";

/** Split as a gRPC stream may deliver it. */
function parts(bytes: Buffer, ...cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(bytes.subarray(at, cut));
    at = cut;
  }
  return out;
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isMosaicError(error) ? error.code : `not a MosaicError: ${error}`;
  }
  return undefined;
}

describe("checkReceivedPiece", () => {
  test("a ranged answer with its range echoed and the slice's crc32c is those bytes", () => {
    const slice = piece.subarray(100, 400);
    const header = { dataLengthBytes: 300, crc32c: crc32c(slice), range: { offset: 100, length: 300 } };
    const got = checkReceivedPiece(parts(slice, 17, 250), header, { offset: 100, length: 300 }, LABEL);
    assert.deepEqual(Buffer.concat(got.data), slice);
    assert.equal(got.crc32c, crc32c(slice));
  });

  test("a slice whose bytes differ from its crc32c is CHUNK_CORRUPT, naming the piece", () => {
    const slice = Buffer.from(piece.subarray(100, 400));
    const header = { dataLengthBytes: 300, crc32c: crc32c(slice), range: { offset: 100, length: 300 } };
    slice[299] = (slice[299] as number) ^ 0x01; // one bit flipped on the way
    assert.throws(
      () => checkReceivedPiece([slice], header, { offset: 100, length: 300 }, LABEL),
      (e: unknown) => isMosaicError(e, "MOSAIC_ERR_CHUNK_CORRUPT") && e.message.startsWith(LABEL),
    );
  });

  test("fewer bytes than announced is CHUNK_CORRUPT even when the crc32c of what came matches", () => {
    const slice = piece.subarray(0, 200);
    const header = { dataLengthBytes: 300, crc32c: crc32c(slice), range: { offset: 0, length: 300 } };
    assert.equal(
      code(() => checkReceivedPiece([slice], header, { offset: 0, length: 300 }, LABEL)),
      "MOSAIC_ERR_CHUNK_CORRUPT",
    );
  });

  test("a holder that echoes another range than the one asked, or one never asked, is refused", () => {
    const slice = piece.subarray(100, 400);
    const header = { dataLengthBytes: 300, crc32c: crc32c(slice), range: { offset: 100, length: 300 } };
    assert.equal(
      code(() => checkReceivedPiece([slice], header, { offset: 0, length: 300 }, LABEL)),
      "MOSAIC_ERR_INTERNAL",
    );
    assert.equal(
      code(() => checkReceivedPiece([slice], header, undefined, LABEL)),
      "MOSAIC_ERR_INTERNAL",
    );
  });

  test("a holder that knows no ranges sends the whole piece: checked whole, then cut to the range", () => {
    const header = { dataLengthBytes: piece.length, crc32c: crc32c(piece) };
    const got = checkReceivedPiece(parts(piece, 50, 500), header, { offset: 450, length: 100 }, LABEL);
    assert.deepEqual(Buffer.concat(got.data), piece.subarray(450, 550));
    assert.equal(got.crc32c, crc32c(piece.subarray(450, 550)), "the crc32c is the range's, not the piece's");
    assert.ok(
      got.data.every((b) => b.buffer === piece.buffer),
      "the range is views of what arrived, not a copy",
    );
    const bad = Buffer.from(piece);
    bad[999] = (bad[999] as number) ^ 0x80; // outside the range asked: still caught
    assert.equal(
      code(() => checkReceivedPiece([bad], header, { offset: 0, length: 10 }, LABEL)),
      "MOSAIC_ERR_CHUNK_CORRUPT",
    );
    assert.equal(
      code(() => checkReceivedPiece([piece], header, { offset: 990, length: 20 }, LABEL)),
      "MOSAIC_ERR_BAD_REQUEST",
    );
  });

  test("a whole-piece answer to a whole-piece request is returned as it came", () => {
    const header = { dataLengthBytes: piece.length, crc32c: crc32c(piece) };
    const got = checkReceivedPiece(parts(piece, 1, 999), header, undefined, LABEL);
    assert.deepEqual(Buffer.concat(got.data), piece);
    assert.equal(got.crc32c, crc32c(piece));
  });
});

describe("piecesOfRange", () => {
  // A stripe of 2 data pieces of 100 bytes (chunk 100) and a short last one of 130 bytes.
  const full = [100, 100, 100];
  const short = [100, 30, 100];

  test("a range inside one piece asks that piece for its part alone", () => {
    assert.deepEqual(piecesOfRange(100, full, 0, 1), [{ slot: 0, range: { offset: 0, length: 1 } }]);
    assert.deepEqual(piecesOfRange(100, full, 40, 60), [{ slot: 0, range: { offset: 40, length: 20 } }]);
    assert.deepEqual(piecesOfRange(100, full, 199, 200), [{ slot: 1, range: { offset: 99, length: 1 } }]);
  });

  test("a range across pieces asks each for the part it holds; a short last piece ends at its length", () => {
    assert.deepEqual(piecesOfRange(100, full, 90, 110), [
      { slot: 0, range: { offset: 90, length: 10 } },
      { slot: 1, range: { offset: 0, length: 10 } },
    ]);
    assert.deepEqual(piecesOfRange(100, full, 0, 200), [
      { slot: 0, range: { offset: 0, length: 100 } },
      { slot: 1, range: { offset: 0, length: 100 } },
    ]);
    assert.deepEqual(piecesOfRange(100, short, 50, 130), [
      { slot: 0, range: { offset: 50, length: 50 } },
      { slot: 1, range: { offset: 0, length: 30 } },
    ]);
  });
});

describe("GetPiece ranges on the wire", () => {
  const key = { volume: "media", fileId: "0123456789abcdef0123456789abcdef", version: 1, stripe: 0, slot: 0 };

  test("a request without a range is a whole-piece request; with one, the range is kept", () => {
    assert.deepEqual(validateGetPieceRequest({ key }), { key });
    assert.deepEqual(validateGetPieceRequest({ key, range: { offset: 5, length: 9 } }), {
      key,
      range: { offset: 5, length: 9 },
    });
  });

  test("an empty, negative, fractional or overflowing range is a clear BAD_REQUEST", () => {
    for (const range of [
      { offset: 0, length: 0 },
      { offset: -1, length: 5 },
      { offset: 1.5, length: 5 },
      { offset: 2 ** 32 - 2, length: 2 },
      { offset: "0", length: 5 },
      [0, 5],
    ]) {
      assert.equal(
        code(() => validatePieceRange(range)),
        "MOSAIC_ERR_BAD_REQUEST",
        JSON.stringify(range),
      );
      assert.equal(
        code(() => validateGetPieceRequest({ key, range })),
        "MOSAIC_ERR_BAD_REQUEST",
        JSON.stringify(range),
      );
    }
  });
});

test("sliceParts cuts across part boundaries without copying", () => {
  const split = parts(piece, 10, 20, 700);
  for (const [offset, length] of [
    [0, 1000],
    [0, 0],
    [5, 10],
    [10, 10],
    [15, 700],
    [999, 1],
  ] as const) {
    const got = sliceParts(split, offset, length);
    assert.deepEqual(Buffer.concat(got), piece.subarray(offset, offset + length), `${offset}+${length}`);
    assert.ok(got.every((b) => b.buffer === piece.buffer && b.length > 0));
  }
});

test("crc32cCombine: the crc32c of two strings back to back from theirs, for any split", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 3000 }), (a, b) => {
      const [x, y] = [Buffer.from(a), Buffer.from(b)];
      assert.equal(crc32cCombine(crc32c(x), crc32c(y), y.length), crc32c(Buffer.concat([x, y])));
    }),
    { numRuns: 300 },
  );
  const big = Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 131) & 0xff));
  const cut = 1024 * 1024 + 17;
  assert.equal(
    crc32cCombine(crc32c(big.subarray(0, cut)), crc32c(big.subarray(cut)), big.length - cut),
    crc32c(big),
  );
});
