import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { pieceLengths, shardBytes, storedBytes, stripeCount, stripeRange } from "../../src/core/stripes.ts";
import { layoutOf, validateVolumeSpec } from "../../src/core/volume.ts";
import { isMosaicError } from "../../src/errors.ts";

const MiB = 1024 * 1024;
const ec42 = layoutOf({ chunkSizeBytes: MiB, redundancy: { erasure: { data: 4, parity: 2 } } });
const rep3 = layoutOf({ chunkSizeBytes: MiB, redundancy: { replicas: 3 } });

describe("stripe math", () => {
  test("layouts", () => {
    assert.deepEqual([ec42.width, ec42.dataPieces, ec42.stripeDataBytes], [6, 4, 4 * MiB]);
    assert.deepEqual([rep3.width, rep3.dataPieces, rep3.stripeDataBytes], [3, 1, MiB]);
  });

  test("edge sizes: 0, 1, chunk size ± 1", () => {
    assert.equal(stripeCount(0, ec42), 0);
    assert.equal(stripeCount(1, ec42), 1);
    assert.deepEqual(pieceLengths(1, ec42), [1, 0, 0, 0, 8, 8]);
    assert.deepEqual(pieceLengths(MiB - 1, ec42), [MiB - 1, 0, 0, 0, MiB, MiB]);
    assert.deepEqual(pieceLengths(MiB + 1, ec42), [MiB, 1, 0, 0, MiB, MiB]);
    assert.equal(stripeCount(4 * MiB + 1, ec42), 2);
    assert.deepEqual(stripeRange(4 * MiB + 1, ec42, 1), { start: 4 * MiB, end: 4 * MiB + 1 });
    assert.deepEqual(pieceLengths(5, rep3), [5, 5, 5]);
  });

  test("stripes tile the file exactly and data pieces tile each stripe", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 64 * MiB }), fc.constantFrom(ec42, rep3), (size, layout) => {
        let covered = 0;
        for (let s = 0; s < stripeCount(size, layout); s++) {
          const { start, end } = stripeRange(size, layout, s);
          assert.equal(start, covered);
          assert.ok(end > start);
          const lengths = pieceLengths(end - start, layout);
          const data =
            layout.kind === "erasure" ? lengths.slice(0, layout.dataPieces) : [lengths[0] as number];
          assert.equal(
            data.reduce((a, b) => a + b, 0),
            end - start,
          );
          assert.equal(shardBytes(end - start, layout) % 8, 0);
          covered = end;
        }
        assert.equal(covered, size);
      }),
    );
  });

  test("stored bytes reflect the redundancy overhead", () => {
    assert.equal(storedBytes(8 * MiB, ec42), 12 * MiB);
    assert.equal(storedBytes(3 * MiB, rep3), 9 * MiB);
  });

  test("volume specs are validated with clear messages", () => {
    const ok = { name: "video", chunkSizeBytes: MiB, capacityBytes: 1e9, redundancy: { replicas: 2 } };
    assert.equal(validateVolumeSpec(ok), ok);
    const bad: [object, RegExp][] = [
      [{ name: "Video" }, /DNS label/],
      [{ chunkSizeBytes: 3 * MiB }, /power of two/],
      [{ chunkSizeBytes: 1024 }, /power of two between/],
      [{ redundancy: { replicas: 0 } }, /replicas 0/],
      [{ redundancy: { erasure: { data: 0, parity: 1 } } }, /erasure.data/],
      [{ redundancy: { erasure: { data: 25, parity: 1 } } }, /from 1 to 24/],
      [{ redundancy: { erasure: { data: 4, parity: 7 } } }, /from 0 to 6/],
      [{ redundancy: { replicas: 33 } }, /replicas 33/],
      [{ redundancy: {} }, /exactly one/],
      [{ capacityBytes: -1 }, /capacityBytes/],
    ];
    for (const [patch, message] of bad) {
      assert.throws(
        () => validateVolumeSpec({ ...ok, ...patch } as typeof ok),
        (e) => isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST") && message.test(e.message),
      );
    }
  });
});
