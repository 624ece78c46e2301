// Temporary read replicas' policy (load/read-replicas.ts): add when every
// reader-facing holder is High, drain when all are Low, remove a drained
// copy only once its reads in flight are done.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { LOAD_LEVELS, type LoadLevel } from "../../src/load/level.ts";
import {
  nextReplicaStep,
  type ReplicaState,
  readableHolders,
  type TempReplica,
} from "../../src/load/read-replicas.ts";

const NODES = ["a", "b", "c", "d", "e", "f"];

function state(levels: Record<string, LoadLevel>, temps: TempReplica[] = [], max = 2): ReplicaState {
  return {
    holders: ["a", "b"],
    temps,
    candidates: ["c", "d", "e", "f"],
    levelOf: (n) => levels[n] ?? "Low",
    max,
  };
}

describe("temporary read replicas", () => {
  test("a hot stripe's life: copies added one at a time while all are High, drained newest first when all are Low, removed once idle", () => {
    const levels: Record<string, LoadLevel> = {
      a: "High",
      b: "High",
      c: "Medium",
      d: "Low",
      e: "High",
      f: "High",
    };
    // The Low candidate before the Medium one ahead of it.
    assert.deepEqual(nextReplicaStep(state(levels)), { kind: "add", node: "d" });
    const temps: TempReplica[] = [{ node: "d", phase: "serving", inFlight: 0 }];
    // The new copy still takes load: nothing more until it is High too.
    assert.deepEqual(nextReplicaStep(state(levels, temps)), { kind: "none" });
    levels.d = "High";
    assert.deepEqual(nextReplicaStep(state(levels, temps)), { kind: "add", node: "c" });
    temps.push({ node: "c", phase: "serving", inFlight: 3 });
    levels.c = "High";
    assert.deepEqual(nextReplicaStep(state(levels, temps)), { kind: "none" }, "at most max copies");
    // Load falls; mixed levels change nothing.
    Object.assign(levels, { a: "Low", b: "Medium", c: "Low", d: "Low" });
    assert.deepEqual(nextReplicaStep(state(levels, temps)), { kind: "none" });
    levels.b = "Low";
    assert.deepEqual(nextReplicaStep(state(levels, temps)), { kind: "drain", node: "c" });
    (temps[1] as TempReplica).phase = "draining";
    assert.deepEqual(readableHolders(["a", "b"], temps), ["a", "b", "d"], "no new read to a draining copy");
    // Its three reads still run: the older copy drains next, c stays until they end.
    assert.deepEqual(nextReplicaStep(state(levels, temps)), { kind: "drain", node: "d" });
    (temps[0] as TempReplica).phase = "draining";
    assert.deepEqual(nextReplicaStep(state(levels, temps)), { kind: "remove", node: "d" });
    temps.shift();
    assert.deepEqual(nextReplicaStep(state(levels, temps)), { kind: "none" });
    (temps[0] as TempReplica).inFlight = 0;
    assert.deepEqual(nextReplicaStep(state(levels, temps)), { kind: "remove", node: "c" });
  });

  test("a draining copy serves again if the stripe turns hot before it is gone; no copy where every node is High", () => {
    const temps: TempReplica[] = [{ node: "c", phase: "draining", inFlight: 1 }];
    const hot = { a: "High", b: "High", c: "Medium" } as const;
    assert.deepEqual(nextReplicaStep(state(hot, temps)), { kind: "serve", node: "c" });
    const allHigh = Object.fromEntries(NODES.map((n) => [n, "High" as const]));
    assert.deepEqual(nextReplicaStep(state(allHigh)), { kind: "none" });
  });

  const arbitrary = fc
    .record({
      levels: fc.array(fc.constantFrom<LoadLevel>(...LOAD_LEVELS), { minLength: 6, maxLength: 6 }),
      temps: fc.uniqueArray(
        fc.record({
          node: fc.constantFrom("c", "d", "e", "f"),
          phase: fc.constantFrom("serving" as const, "draining" as const),
          inFlight: fc.nat(3),
        }),
        { selector: (t) => t.node, maxLength: 3 },
      ),
      max: fc.integer({ min: 1, max: 3 }),
    })
    .map(({ levels, temps, max }) =>
      state(Object.fromEntries(NODES.map((n, i) => [n, levels[i] as LoadLevel])), temps, max),
    );

  test("property: each step only when the seed's rule allows it", () => {
    fc.assert(
      fc.property(arbitrary, (s) => {
        const step = nextReplicaStep(s);
        const readable = readableHolders(s.holders, s.temps);
        if (step.kind === "add") {
          assert.ok(
            readable.every((n) => s.levelOf(n) === "High"),
            "added only while all are High",
          );
          assert.ok(!s.holders.includes(step.node) && !s.temps.some((t) => t.node === step.node));
          assert.notEqual(s.levelOf(step.node), "High");
          assert.ok(s.temps.length < s.max);
        }
        if (step.kind === "drain") {
          assert.ok(
            readable.every((n) => s.levelOf(n) === "Low"),
            "drained only while all are Low",
          );
          assert.equal(s.temps.find((t) => t.node === step.node)?.phase, "serving");
        }
        if (step.kind === "remove") {
          const t = s.temps.find((x) => x.node === step.node);
          assert.deepEqual([t?.phase, t?.inFlight], ["draining", 0], "never with reads in flight");
        }
        if (step.kind === "serve") assert.ok(readable.every((n) => s.levelOf(n) === "High"));
      }),
    );
  });
});
