import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type ClusterMap, withNodeOut } from "../../src/core/cluster-map.ts";
import { placeStripe } from "../../src/core/placement.ts";
import { isMosaicError } from "../../src/errors.ts";

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

const STRIPES = 10_000;
const key = (stripe: number) => ({ volume: "video", fileId: "0123456789abcdef0123456789abcdef", stripe });

describe("placement", () => {
  test("never puts two pieces of a stripe on one node", () => {
    const map = mapOf(6);
    for (let s = 0; s < 2_000; s++) {
      const nodes = placeStripe(map, key(s), 6);
      assert.equal(new Set(nodes).size, 6);
    }
  });

  test("is a pure function of key and map", () => {
    const a = placeStripe(mapOf(10), key(42), 6);
    const b = placeStripe(structuredClone(mapOf(10)), key(42), 6);
    assert.deepEqual(a, b);
  });

  test("balances pieces: every node within ±10% of the mean (10 nodes, 10,000 stripes)", () => {
    for (const width of [3, 6]) {
      const counts = new Map<string, number>();
      for (let s = 0; s < STRIPES; s++) {
        for (const id of placeStripe(mapOf(10), key(s), width)) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      const mean = (STRIPES * width) / 10;
      for (const [id, count] of counts) {
        assert.ok(Math.abs(count - mean) <= 0.1 * mean, `width ${width}: ${id} holds ${count}, mean ${mean}`);
      }
      // each slot is balanced too, so parity is not concentrated on a few nodes
      const slot0 = new Map<string, number>();
      for (let s = 0; s < STRIPES; s++) {
        const id = placeStripe(mapOf(10), key(s), width)[width - 1] as string;
        slot0.set(id, (slot0.get(id) ?? 0) + 1);
      }
      for (const [id, count] of slot0) {
        assert.ok(Math.abs(count - STRIPES / 10) <= 0.15 * (STRIPES / 10), `last slot on ${id}: ${count}`);
      }
    }
  });

  test("minimal movement: when one node leaves, only its pieces move", () => {
    const before = mapOf(10);
    for (const leaving of ["node-0", "node-3", "node-9"]) {
      const after = withNodeOut(before, leaving);
      let moved = 0;
      for (let s = 0; s < STRIPES; s++) {
        const a = placeStripe(before, key(s), 6);
        const b = placeStripe(after, key(s), 6);
        for (let slot = 0; slot < 6; slot++) {
          if (a[slot] === leaving) {
            assert.notEqual(b[slot], leaving);
            moved++;
          } else {
            assert.equal(b[slot], a[slot], `stripe ${s} slot ${slot} moved from ${a[slot]} to ${b[slot]}`);
          }
        }
        assert.equal(new Set(b).size, 6);
      }
      assert.ok(moved > 0);
    }
  });

  test("a second departure moves only the second node's pieces", () => {
    const one = withNodeOut(mapOf(10), "node-2");
    const two = withNodeOut(one, "node-5");
    for (let s = 0; s < STRIPES; s++) {
      const a = placeStripe(one, key(s), 4);
      const b = placeStripe(two, key(s), 4);
      for (let slot = 0; slot < 4; slot++) {
        if (a[slot] !== "node-5") assert.equal(b[slot], a[slot], `stripe ${s} slot ${slot}`);
      }
    }
  });

  test("with too few live nodes, a slot no live node can take stays with its departed node", () => {
    const map = withNodeOut(mapOf(3), "node-1");
    for (let s = 0; s < STRIPES; s++) {
      const before = placeStripe(mapOf(3), key(s), 3);
      const after = placeStripe(map, key(s), 3);
      assert.deepEqual(after, before, `stripe ${s}: nothing can move, so nothing does`);
    }
    // Four nodes, two out: a 3-wide stripe keeps one slot on a departed node, the rest on live ones.
    const four = withNodeOut(withNodeOut(mapOf(4), "node-0"), "node-3");
    for (let s = 0; s < STRIPES; s++) {
      const slots = placeStripe(four, key(s), 3);
      assert.equal(new Set(slots).size, 3, `stripe ${s}: distinct nodes`);
      assert.ok(slots.includes("node-1") && slots.includes("node-2"), `stripe ${s}: both live nodes used`);
    }
  });

  test("refuses a stripe wider than the whole map", () => {
    assert.throws(
      () => placeStripe(mapOf(2), key(0), 3),
      (e) => isMosaicError(e, "MOSAIC_ERR_NOT_ENOUGH_NODES") && /needs 3 nodes.*has 2/.test(e.message),
    );
  });
});
