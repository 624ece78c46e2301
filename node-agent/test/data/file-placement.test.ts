// Placement of a file written around unreachable nodes, and the rebuild's
// plan over it: pure functions, checked over many stripes and maps.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type ClusterMap, withNodeOut, withNodeState } from "../../src/core/cluster-map.ts";
import { mapAround, placeFileStripe } from "../../src/core/file-placement.ts";
import { type FileManifest, newestManifest, validateManifest } from "../../src/core/manifest.ts";
import { MANIFEST_STRIPE, placeStripe } from "../../src/core/placement.ts";
import { slotPlacements } from "../../src/core/rebuild-plan.ts";

function mapOf(n: number): ClusterMap {
  return {
    epoch: 1,
    nodes: Array.from({ length: n }, (_, i) => ({
      id: `node-${i}`,
      addresses: [`198.18.0.${i + 1}:7000`, `198.19.0.${i + 1}:7000`] as [string, string],
      state: "up" as const,
    })),
  };
}

function manifestOf(stripes: number, writtenAround?: string[]): FileManifest {
  return {
    volume: "media",
    name: "a.bin",
    fileId: "0123456789abcdef0123456789abcdef",
    version: 7,
    sizeBytes: stripes * 2 * 65_536,
    chunkSizeBytes: 65_536,
    redundancy: { erasure: { data: 4, parity: 2 } },
    stripes,
    crc32c: 0,
    createdAt: "2026-11-01T00:00:00.000Z",
    writer: "node-0",
    ...(writtenAround === undefined ? {} : { writtenAround }),
  };
}

const STRIPES = 2_000;

describe("placement of a file written around nodes", () => {
  test("only the slots of the nodes gone around move, each to a node not already in its stripe", () => {
    const map = mapOf(10);
    const plain = manifestOf(STRIPES);
    const around = manifestOf(STRIPES, ["node-3", "node-7"]);
    for (let stripe = MANIFEST_STRIPE; stripe < STRIPES; stripe++) {
      const before = placeFileStripe(map, plain, stripe);
      const after = placeFileStripe(map, around, stripe);
      assert.equal(new Set(after).size, after.length, `stripe ${stripe}: distinct nodes`);
      assert.ok(!after.includes("node-3") && !after.includes("node-7"));
      before.forEach((node, slot) => {
        if (node !== "node-3" && node !== "node-7")
          assert.equal(after[slot], node, `stripe ${stripe} slot ${slot}`);
      });
    }
  });

  test("declared out later: the file's pieces stay where they were written", () => {
    const map = {
      ...mapOf(10),
      nodes: mapOf(10).nodes.map((n) =>
        n.id === "node-9" ? { ...n, state: "out" as const, outEpoch: 1 } : n,
      ),
    };
    const file = manifestOf(STRIPES, ["node-3", "node-7"]);
    const later = withNodeOut(withNodeOut(map, "node-7"), "node-3");
    for (let stripe = MANIFEST_STRIPE; stripe < STRIPES; stripe++) {
      assert.deepEqual(
        placeFileStripe(later, file, stripe),
        placeFileStripe(map, file, stripe),
        `stripe ${stripe}`,
      );
    }
  });

  test("mapAround leaves a map with nothing to go around untouched", () => {
    const map = mapOf(5);
    assert.equal(mapAround(map, undefined), map);
    assert.equal(mapAround(map, []), map);
    assert.deepEqual(
      placeStripe(mapAround(map, ["node-1"]), { volume: "v", fileId: "f", stripe: 0 }, 3).includes("node-1"),
      false,
    );
  });
});

describe("the rebuild's plan", () => {
  test("a node gone around that is back takes its slots home; everything else stays", () => {
    const map = mapOf(8);
    const file = manifestOf(200, ["node-2"]);
    const back = (node: string) => node === "node-2";
    let home = 0;
    for (const p of slotPlacements(file, map, { back })) {
      const normal = placeFileStripe(map, { ...file, writtenAround: [] }, p.stripe)[p.slot];
      assert.equal(p.target, normal, `stripe ${p.stripe} slot ${p.slot}: target is the normal placement`);
      assert.equal(p.read, placeFileStripe(map, file, p.stripe)[p.slot]);
      if (p.target !== p.read) {
        assert.equal(p.target, "node-2");
        home++;
      }
    }
    assert.ok(home > 0);
    for (const p of slotPlacements(file, map, { back: () => false })) assert.equal(p.target, p.read);
  });

  test("with a previous map, a slot that moved names where it was", () => {
    const before = mapOf(8);
    const after = withNodeOut(before, "node-4");
    const file = manifestOf(100);
    for (const p of slotPlacements(file, after, { back: () => true, previous: before })) {
      const was = placeFileStripe(before, file, p.stripe)[p.slot];
      assert.equal(p.previous, was === p.read ? undefined : was);
      if (p.previous !== undefined) assert.equal(p.previous, "node-4");
    }
    const returned = withNodeState(after, "node-4", "up");
    const moved = [...slotPlacements(file, returned, { back: () => true, previous: after })].filter(
      (p) => p.previous !== undefined,
    );
    assert.ok(
      moved.length > 0 && moved.every((p) => p.read === "node-4"),
      "back home, copied from the replacement",
    );
  });
});

describe("manifest fields of a write around nodes", () => {
  test("the highest revision of a version wins; a higher version beats any revision", () => {
    const a = manifestOf(1, ["node-1"]);
    const b = { ...a, revision: 1 };
    const c = { ...a, version: 8 };
    assert.equal(newestManifest([a, b]), b);
    assert.equal(newestManifest([b, a]), b);
    assert.equal(newestManifest([b, c, a]), c);
  });

  test("writtenAround and revision are validated", () => {
    assert.deepEqual(validateManifest(manifestOf(1, ["node-1"])).writtenAround, ["node-1"]);
    for (const bad of [
      { writtenAround: "node-1" },
      { writtenAround: ["a", "a"] },
      { writtenAround: [""] },
      { revision: -1 },
    ]) {
      assert.throws(() => validateManifest({ ...manifestOf(1), ...bad }), /MOSAIC_ERR_BAD_REQUEST|manifest:/);
    }
  });
});
