// StripedVolumes as the agent's VolumeSpecs: quantities read exactly as the
// API server's grammar writes them, and specs the data plane cannot take
// refused one by one, by name.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { StripedVolume } from "@mosaic/operator/api/types.ts";
import fc from "fast-check";
import { parse } from "yaml";
import { bytesQuantity, quantityBytes } from "../../src/kube/quantity.ts";
import { volumeSpecOf, volumeSpecsOf } from "../../src/kube/volumes.ts";

const EXAMPLES = join(import.meta.dirname, "../../../crds/examples");

function sv(name: string, spec: Record<string, unknown>): StripedVolume {
  const object = { apiVersion: "mosaic.dev/v1alpha1", kind: "StripedVolume", metadata: { name }, spec };
  return object as unknown as StripedVolume;
}

describe("quantities", () => {
  const GOOD: [string, number][] = [
    ["4Mi", 4 * 2 ** 20],
    ["256Ki", 256 * 1024],
    ["1.5Gi", 1.5 * 2 ** 30],
    ["20Ti", 20 * 2 ** 40],
    ["0.5Ki", 512],
    ["1000", 1000],
    ["1k", 1000],
    ["20e9", 20e9],
    ["5E3", 5000],
    ["2000m", 2],
    ["+3M", 3e6],
    [".5k", 500],
    ["0", 0],
  ];
  for (const [text, bytes] of GOOD) {
    test(`${text} is ${bytes} bytes`, () => assert.equal(quantityBytes(text, "x"), bytes));
  }

  const BAD: [string, RegExp][] = [
    ["1.5", /not a whole number of bytes/],
    ["1500m", /not a whole number of bytes/],
    ["-1Gi", /is negative/],
    ["1E", /too large/],
    ["12Gb", /not a quantity/],
    ["", /not a quantity/],
    ["Mi", /not a quantity/],
    ["1e99", /exponent out of range/],
  ];
  for (const [text, says] of BAD) {
    test(`${JSON.stringify(text)} is refused`, () =>
      assert.throws(() => quantityBytes(text, "chunkSize"), says));
  }

  test("a byte count written as a quantity reads back within its rounding, exactly when a unit divides it", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 50 }), (bytes) => {
        const text = bytesQuantity(bytes);
        const back = quantityBytesLoose(text);
        const unit = 1024 ** Math.min(5, Math.floor(Math.log(Math.max(bytes, 1)) / Math.log(1024)));
        if (bytes % unit === 0) assert.equal(back, bytes, text);
        else assert.ok(Math.abs(back - bytes) / bytes < 0.006, `${bytes} → ${text}`);
      }),
    );
  });

  test("sizes are written the short way", () => {
    assert.equal(bytesQuantity(0), "0");
    assert.equal(bytesQuantity(1023), "1023");
    assert.equal(bytesQuantity(100 * 2 ** 30), "100Gi");
    assert.equal(bytesQuantity(1.5 * 2 ** 30), "1.5Gi");
    assert.equal(bytesQuantity(1_234_567), "1.18Mi");
    assert.equal(bytesQuantity(123.4 * 2 ** 40), "123Ti");
  });
});

/** Reads "1.18Mi" as a number of bytes, rounding allowed (quantityBytes refuses fractions, rightly). */
function quantityBytesLoose(text: string): number {
  const m = /^([\d.]+)(Ki|Mi|Gi|Ti|Pi)?$/.exec(text);
  assert.ok(m, text);
  const exp = { "": 0, Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5 }[(m[2] ?? "") as "Ki"];
  return Number(m[1]) * 1024 ** exp;
}

describe("StripedVolume → VolumeSpec", () => {
  test("the two examples of crds/examples", () => {
    const read = (file: string) => parse(readFileSync(join(EXAMPLES, file), "utf8")) as StripedVolume;
    assert.deepEqual(volumeSpecOf(read("video-library.yaml")), {
      name: "video-library",
      chunkSizeBytes: 4 * 2 ** 20,
      redundancy: { erasure: { data: 4, parity: 2 } },
      capacityBytes: 20 * 2 ** 40,
    });
    assert.deepEqual(volumeSpecOf(read("thumbnails.yaml")), {
      name: "thumbnails",
      chunkSizeBytes: 256 * 1024,
      redundancy: { replicas: 3 },
      capacityBytes: 500 * 2 ** 30,
    });
  });

  const BAD: [string, Record<string, unknown>, RegExp][] = [
    [
      "both redundancies",
      { chunkSize: "1Mi", capacity: "1Ti", redundancy: { replicas: 2, erasure: { data: 2, parity: 1 } } },
      /exactly one of replicas or erasure/,
    ],
    [
      "no redundancy",
      { chunkSize: "1Mi", capacity: "1Ti", redundancy: {} },
      /exactly one of replicas or erasure/,
    ],
    [
      "a chunk size not a power of two",
      { chunkSize: "3Mi", capacity: "1Ti", redundancy: { replicas: 2 } },
      /power of two/,
    ],
    [
      "a fractional capacity",
      { chunkSize: "1Mi", capacity: "0.5", redundancy: { replicas: 2 } },
      /capacity "0.5" is not a whole number/,
    ],
    ["no chunk size", { capacity: "1Ti", redundancy: { replicas: 2 } }, /chunkSize "" is not a quantity/],
  ];
  for (const [why, spec, says] of BAD) {
    test(`refused, naming the volume: ${why}`, () => {
      assert.throws(
        () => volumeSpecOf(sv("bad", spec)),
        (e: Error) => says.test(e.message) && /volume bad/.test(e.message),
      );
    });
  }

  test("one bad volume leaves the others usable, in name order", () => {
    const { volumes, refused } = volumeSpecsOf([
      sv("zeta", { chunkSize: "1Mi", capacity: "1Ti", redundancy: { replicas: 2 } }),
      sv("bad", { chunkSize: "3Mi", capacity: "1Ti", redundancy: { replicas: 2 } }),
      sv("alpha", { chunkSize: "64Ki", capacity: "1Gi", redundancy: { erasure: { data: 2, parity: 1 } } }),
    ]);
    assert.deepEqual(
      volumes.map((v) => v.name),
      ["alpha", "zeta"],
    );
    assert.equal(refused.length, 1);
    assert.equal(refused[0]?.name, "bad");
  });
});
