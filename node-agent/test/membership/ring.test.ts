import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isMosaicError } from "../../src/errors.ts";
import { predecessors, ringOrder, successors } from "../../src/membership/ring.ts";

describe("heartbeat ring", () => {
  const ring = ringOrder(["d", "b", "a", "c", "e", "b"]);

  test("sorted, without duplicates, wraps around", () => {
    assert.deepEqual(ring, ["a", "b", "c", "d", "e"]);
    assert.deepEqual(successors(ring, "d", 1), ["e", "a"]);
    assert.deepEqual(predecessors(ring, "a", 1), ["e", "d"]);
    assert.deepEqual(successors(ring, "a", 0), ["b"]);
  });

  test("small rings: every other member once, never self", () => {
    assert.deepEqual(successors(["a"], "a", 2), []);
    assert.deepEqual(successors(["a", "b"], "a", 2), ["b"]);
    assert.deepEqual(predecessors(["a", "b", "c"], "a", 5), ["c", "b"]);
  });

  test("a non-member or a bad k is refused", () => {
    assert.throws(
      () => successors(ring, "z", 1),
      (e) => isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST"),
    );
    assert.throws(
      () => predecessors(ring, "a", -2),
      (e) => isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST"),
    );
  });

  test("x sends to y exactly when y watches x; every node has min(k+1, n-1) watchers", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 30 }),
        fc.nat(4),
        (members, k) => {
          const r = ringOrder(members);
          const expected = Math.min(k + 1, r.length - 1);
          const watchers = new Map(r.map((m) => [m, 0]));
          for (const x of r) {
            const out = successors(r, x, k);
            assert.equal(out.length, expected);
            assert.ok(!out.includes(x));
            assert.equal(new Set(out).size, out.length);
            for (const y of out) {
              assert.ok(predecessors(r, y, k).includes(x));
              watchers.set(y, (watchers.get(y) ?? 0) + 1);
            }
          }
          for (const count of watchers.values()) assert.equal(count, expected);
        },
      ),
    );
  });
});
