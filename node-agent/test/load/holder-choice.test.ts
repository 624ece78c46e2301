// The holder choice (load/holder-choice.ts) and PieceIO's use of it: Low
// first in the reader's order, round-robin among Medium, High only when all
// are High.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { PieceIO } from "../../src/data/pieces.ts";
import { rankByLoad } from "../../src/load/holder-choice.ts";
import { LOAD_LEVELS, type LoadLevel } from "../../src/load/level.ts";
import { silentLogger } from "../../src/log.ts";
import type { PeerClients } from "../../src/rpc/peer-client.ts";
import type { ChunkStore } from "../../src/storage/chunk-store.ts";

const levels = fc.array(fc.constantFrom<LoadLevel>(...LOAD_LEVELS), { minLength: 1, maxLength: 8 });
const rank = (l: LoadLevel) => LOAD_LEVELS.indexOf(l);

/** Holders 0..n-1 with these levels, in the reader's order; `turns` choices in a row. */
function firsts(of: readonly LoadLevel[], turns: number, start = 0): number[] {
  const holders = of.map((_, i) => i);
  return Array.from(
    { length: turns },
    (_, t) => rankByLoad(holders, (h) => of[h] as LoadLevel, start + t)[0] as number,
  );
}

describe("holder choice", () => {
  test("the reader's order stands while every holder is Low", () => {
    assert.deepEqual(
      rankByLoad(["b", "c", "a"], () => "Low", 7),
      ["b", "c", "a"],
    );
  });

  test("a Low holder gets the reads until it turns Medium, then the next Low one", () => {
    assert.deepEqual(firsts(["Low", "Low", "Low"], 4), [0, 0, 0, 0]);
    assert.deepEqual(firsts(["Medium", "Low", "Low"], 4), [1, 1, 1, 1]);
    assert.deepEqual(firsts(["Medium", "Medium", "Low"], 4), [2, 2, 2, 2]);
  });

  test("round-robin among Medium holders once none is Low; a High one is passed over", () => {
    assert.deepEqual(firsts(["Medium", "Medium", "Medium"], 6), [0, 1, 2, 0, 1, 2]);
    assert.deepEqual(firsts(["Medium", "High", "Medium"], 4), [0, 2, 0, 2]);
    assert.deepEqual(firsts(["High", "High", "Low"], 3), [2, 2, 2]);
    // Every holder High: still served, in turn.
    assert.deepEqual(firsts(["High", "High"], 4), [0, 1, 0, 1]);
  });

  test("property: a permutation of the holders, ordered Low, Medium, High", () => {
    fc.assert(
      fc.property(levels, fc.nat(1_000), (of, turn) => {
        const holders = of.map((_, i) => i);
        const ranked = rankByLoad(holders, (h) => of[h] as LoadLevel, turn);
        assert.deepEqual(
          [...ranked].sort((a, b) => a - b),
          holders,
        );
        for (let i = 1; i < ranked.length; i++)
          assert.ok(
            rank(of[ranked[i - 1] as number] as LoadLevel) <= rank(of[ranked[i] as number] as LoadLevel),
          );
        // Low ones keep the reader's order.
        const lows = ranked.filter((h) => of[h] === "Low");
        assert.deepEqual(
          lows,
          [...lows].sort((a, b) => a - b),
        );
      }),
    );
  });

  test("property: never a High holder first while another is not High", () => {
    fc.assert(
      fc.property(levels, fc.nat(1_000), (of, turn) => {
        const first = firsts(of, 1, turn)[0] as number;
        if (of.some((l) => l !== "High")) assert.notEqual(of[first], "High");
        if (of.includes("Low")) assert.equal(first, of.indexOf("Low"));
      }),
    );
  });

  test("property: with no Low holder, m turns in a row pick each of the m Medium holders once", () => {
    const noLow = fc.array(fc.constantFrom<LoadLevel>("Medium", "High"), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(noLow, fc.nat(1_000), (of, start) => {
        const mediums = of.flatMap((l, i) => (l === "Medium" ? [i] : []));
        const pool = mediums.length > 0 ? mediums : of.map((_, i) => i);
        const picked = firsts(of, pool.length, start);
        assert.deepEqual(
          [...picked].sort((a, b) => a - b),
          pool,
        );
      }),
    );
  });

  test("PieceIO ranks a stripe's slots by their holders' levels and takes turns", () => {
    const level: Record<string, LoadLevel> = { n0: "High", n1: "Medium", n2: "Medium", n3: "Low" };
    const pieces = new PieceIO(
      "n0",
      {} as ChunkStore,
      {} as PeerClients,
      silentLogger(),
      undefined,
      (node) => level[node] as LoadLevel,
    );
    const nodes = ["n0", "n1", "n2", "n3"];
    assert.deepEqual(pieces.rankByLoad(nodes, [0, 1, 2, 3]), [3, 1, 2, 0]);
    level.n3 = "Medium";
    // Round-robin among the three Medium holders; this node's own copy (High) last.
    const first = [1, 2, 3].map(() => pieces.rankByLoad(nodes, [0, 1, 2, 3])[0]);
    assert.deepEqual([...first].sort(), [1, 2, 3]);
    // Erasure 2+1 on n0..n2: the first k = 2 slots skip the High holder's data piece for parity.
    assert.deepEqual(pieces.rankByLoad(nodes, [0, 1, 2]).slice(0, 2).sort(), [1, 2]);
    // Without levels, every holder is Low: the reader's order stands.
    const plain = new PieceIO("n0", {} as ChunkStore, {} as PeerClients, silentLogger());
    assert.deepEqual(plain.rankByLoad(nodes, [2, 0, 3, 1]), [2, 0, 3, 1]);
  });
});
