// The operator's map: published when membership changes (a node joins, is
// Lost, returns, moves), never for a down the agents own; the agents' downs
// and outs carried into every map; epochs above everything anyone holds.
// Also the lease clock (liveness on the operator's own clock) and the
// ConfigMap's codec.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { ClusterMap } from "../../node-agent/src/core/cluster-map.ts";
import { decodeClusterMap, encodeClusterMap } from "../src/api/cluster-map.ts";
import { type NodeReport, planClusterMap } from "../src/cluster-map-plan.ts";
import { LeaseClock } from "../src/lease-clock.ts";

const addr = (i: number): [string, string] => [`198.18.0.${i}:7400`, `198.18.1.${i}:7400`];

function report(i: number, over: Partial<NodeReport> = {}): NodeReport {
  return { id: `n${i}`, addresses: addr(i), liveness: "live", observed: undefined, ...over };
}

const THREE: ClusterMap = {
  epoch: 4,
  nodes: [1, 2, 3].map((i) => ({ id: `n${i}`, addresses: addr(i), state: "up" as const })),
};

/** Reports of agents that all hold `map` (grown from `base`). */
function holding(map: ClusterMap, base: number, liveness: Record<string, NodeReport["liveness"]> = {}) {
  const observed = {
    epoch: map.epoch,
    baseEpoch: base,
    down: map.nodes.filter((n) => n.state === "down").map((n) => n.id),
    out: map.nodes.filter((n) => n.state === "out").map((n) => ({ node: n.id, outEpoch: n.outEpoch ?? 0 })),
  };
  return map.nodes.map((n, i) => report(i + 1, { id: n.id, liveness: liveness[n.id] ?? "live", observed }));
}

const stateOf = (map: ClusterMap | undefined, id: string) => map?.nodes.find((n) => n.id === id)?.state;

describe("the cluster map plan", () => {
  test("the first map lists every live agent that has reported both addresses", () => {
    const plan = planClusterMap(undefined, [report(1), report(2), report(3, { addresses: undefined })]);
    assert.deepEqual(plan.publish, {
      epoch: 1,
      nodes: [
        { id: "n1", addresses: addr(1), state: "up" },
        { id: "n2", addresses: addr(2), state: "up" },
      ],
    });
    assert.deepEqual(plan.changes, [
      { node: "n1", kind: "joined" },
      { node: "n2", kind: "joined" },
    ]);
  });

  test("nothing changed: nothing published", () => {
    assert.equal(planClusterMap(THREE, holding(THREE, 4)).publish, undefined);
  });

  test("a node joins above every epoch the agents hold", () => {
    const agreed = { ...THREE, epoch: 9 };
    const plan = planClusterMap(THREE, [...holding(agreed, 4), report(4)]);
    assert.equal(plan.publish?.epoch, 10);
    assert.deepEqual(plan.changes, [{ node: "n4", kind: "joined" }]);
  });

  test("a down the agents agreed on is theirs: no map for it, and kept in a map published for another reason", () => {
    const agreed: ClusterMap = {
      epoch: 5,
      nodes: THREE.nodes.map((n) => (n.id === "n2" ? { ...n, state: "down" } : n)),
    };
    assert.equal(planClusterMap(THREE, holding(agreed, 4)).publish, undefined);
    const plan = planClusterMap(THREE, [...holding(agreed, 4), report(4)]);
    assert.equal(stateOf(plan.publish, "n2"), "down");
    assert.equal(plan.publish?.epoch, 6);
  });

  test("an expired lease alone publishes nothing, but is down in any map published meanwhile", () => {
    const reports = holding(THREE, 4, { n3: "down" });
    assert.equal(planClusterMap(THREE, reports).publish, undefined);
    assert.equal(stateOf(planClusterMap(THREE, [...reports, report(4)]).publish, "n3"), "down");
  });

  test("Lost past the grace: out, at an epoch above all, with that epoch as its outEpoch", () => {
    const agreed: ClusterMap = {
      epoch: 6,
      nodes: THREE.nodes.map((n) => (n.id === "n3" ? { ...n, state: "down" } : n)),
    };
    const plan = planClusterMap(THREE, holding(agreed, 4, { n3: "lost" }));
    assert.deepEqual(plan.changes, [{ node: "n3", kind: "lost" }]);
    assert.equal(plan.publish?.epoch, 7);
    assert.deepEqual(
      plan.publish?.nodes.find((n) => n.id === "n3"),
      { id: "n3", addresses: addr(3), state: "out", outEpoch: 7 },
    );
  });

  test("out already (the agents' own grace ran first): nothing to do, and its outEpoch is kept later", () => {
    const agreed: ClusterMap = {
      epoch: 8,
      nodes: THREE.nodes.map((n) => (n.id === "n3" ? { ...n, state: "out", outEpoch: 8 } : n)),
    };
    assert.equal(planClusterMap(THREE, holding(agreed, 4, { n3: "lost" })).publish, undefined);
    assert.equal(planClusterMap(THREE, holding(agreed, 4, { n3: "down" })).publish, undefined);
    const plan = planClusterMap(THREE, [...holding(agreed, 4, { n3: "lost" }), report(4)]);
    assert.deepEqual(
      plan.publish?.nodes.find((n) => n.id === "n3"),
      { id: "n3", addresses: addr(3), state: "out", outEpoch: 8 },
    );
  });

  test("a Lost node whose lease is live again returns; new addresses are published", () => {
    const lost: ClusterMap = {
      epoch: 7,
      nodes: THREE.nodes.map((n) => (n.id === "n3" ? { ...n, state: "out", outEpoch: 7 } : n)),
    };
    const back = planClusterMap(lost, holding(lost, 7));
    assert.deepEqual(back.changes, [{ node: "n3", kind: "returned" }]);
    assert.equal(stateOf(back.publish, "n3"), "up");
    const moved = planClusterMap(THREE, [
      ...holding(THREE, 4).slice(0, 2),
      report(3, { addresses: addr(33) }),
    ]);
    assert.deepEqual(moved.changes, [{ node: "n3", kind: "moved" }]);
    assert.deepEqual(moved.publish?.nodes.find((n) => n.id === "n3")?.addresses, addr(33));
  });

  test("agents that settled on their own map at our epoch never got ours: published again, above theirs", () => {
    const published: ClusterMap = {
      epoch: 5,
      nodes: [...THREE.nodes, { id: "n4", addresses: addr(4), state: "up" }],
    };
    const theirs = { ...THREE, epoch: 5 }; // agreed on the old base (4), without n4
    const plan = planClusterMap(published, [...holding(theirs, 4), report(4)]);
    assert.equal(plan.superseded, true);
    assert.equal(plan.publish?.epoch, 6);
    assert.equal(stateOf(plan.publish, "n4"), "up");
    // Once they hold it (base 6), all is quiet.
    const now = plan.publish as ClusterMap;
    assert.equal(planClusterMap(now, holding(now, 6)).publish, undefined);
  });

  test("a node that was never a member and is not alive is not added", () => {
    assert.equal(
      planClusterMap(THREE, [...holding(THREE, 4), report(4, { liveness: "down" })]).publish,
      undefined,
    );
  });

  test("property: a published epoch is above the last published one and every epoch an agent reports", () => {
    const reportArb = fc.record({
      i: fc.integer({ min: 1, max: 6 }),
      liveness: fc.constantFrom("live", "down", "lost") as fc.Arbitrary<NodeReport["liveness"]>,
      epoch: fc.integer({ min: 0, max: 50 }),
      base: fc.integer({ min: 0, max: 50 }),
      addressed: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined }),
        fc.array(reportArb),
        (pEpoch, rs) => {
          const published = pEpoch === undefined ? undefined : { ...THREE, epoch: pEpoch };
          const reports = [...new Map(rs.map((r) => [r.i, r])).values()].map((r) =>
            report(r.i, {
              liveness: r.liveness,
              addresses: r.addressed ? addr(r.i) : undefined,
              observed: { epoch: r.epoch, baseEpoch: Math.min(r.base, r.epoch), down: [], out: [] },
            }),
          );
          const plan = planClusterMap(published, reports);
          if (plan.publish === undefined) return;
          assert.ok(plan.publish.epoch > (published?.epoch ?? 0));
          for (const r of reports) assert.ok(plan.publish.epoch > (r.observed?.epoch ?? 0));
          // Whatever the map says, it parses back as published.
          assert.deepEqual(decodeClusterMap(encodeClusterMap(plan.publish), "test"), plan.publish);
        },
      ),
    );
  });
});

describe("the lease clock", () => {
  test("live for a lease duration after each change seen, down after it, lost after the grace", () => {
    const clock = new LeaseClock(0, 15_000);
    clock.observe("n1", { record: "r1", durationMs: 3_000 }, 1_000);
    assert.deepEqual(clock.liveness("n1", 3_999, 10_000), { liveness: "live", nextChangeMs: 4_000 });
    clock.observe("n1", { record: "r1", durationMs: 3_000 }, 3_500); // relisted, unchanged: no renewal
    assert.deepEqual(clock.liveness("n1", 4_000, 10_000), { liveness: "down", nextChangeMs: 14_000 });
    assert.equal(clock.expiredForMs("n1", 9_000), 5_000);
    assert.equal(clock.liveness("n1", 14_000, 10_000).liveness, "lost");
    clock.observe("n1", { record: "r2", durationMs: 3_000 }, 20_000);
    assert.equal(clock.liveness("n1", 20_001, 10_000).liveness, "live");
  });

  test("a lease never seen gets one default duration from when it was first asked about; a deleted one is expired", () => {
    const clock = new LeaseClock(100, 15_000);
    assert.equal(clock.liveness("new", 5_000, 10_000).liveness, "live");
    assert.equal(clock.liveness("new", 20_000, 10_000).liveness, "down");
    clock.observe("gone", { record: "r", durationMs: 10_000 }, 0);
    clock.deleted("gone", 1_000);
    assert.equal(clock.liveness("gone", 1_000, 10_000).liveness, "down");
  });
});

describe("the published map's codec", () => {
  test("round trip, one node per line", () => {
    const text = encodeClusterMap(THREE);
    assert.equal(text.split("\n").filter((l) => l.includes('"id"')).length, 3);
    assert.deepEqual(decodeClusterMap(text, "x"), THREE);
  });

  const BAD: [string, string, RegExp][] = [
    ["not JSON", "{", /not JSON/],
    ["no epoch", '{"nodes":[]}', /epoch/],
    [
      "a node twice",
      JSON.stringify({ epoch: 1, nodes: [THREE.nodes[0], THREE.nodes[0]] }),
      /n1 listed twice/,
    ],
    [
      "one address",
      JSON.stringify({ epoch: 1, nodes: [{ id: "a", addresses: ["x:1"], state: "up" }] }),
      /two host:port/,
    ],
    [
      "a bad state",
      JSON.stringify({ epoch: 1, nodes: [{ id: "a", addresses: ["x:1", "y:2"], state: "gone" }] }),
      /up, down or out/,
    ],
    [
      "out without its epoch",
      JSON.stringify({ epoch: 1, nodes: [{ id: "a", addresses: ["x:1", "y:2"], state: "out" }] }),
      /outEpoch/,
    ],
  ];
  for (const [why, text, says] of BAD) {
    test(`refused: ${why}`, () => assert.throws(() => decodeClusterMap(text, "ConfigMap m"), says));
  }
});
