// The agents' rollout plan: one outdated pod at a time, never while an agent
// is missing or not Ready, or a volume is anything but Healthy.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type AgentPodView, nextRollout } from "../src/agent-rollout.ts";

const pod = (node: string, hash: string, extra: Partial<AgentPodView> = {}): AgentPodView => ({
  name: `mosaic-agent-${node}`,
  node,
  hash,
  ready: true,
  deleting: false,
  ...extra,
});
const healthy = [{ name: "clips", phase: "Healthy" }];

test("every pod on the template: done; else the first outdated node, when all is well", () => {
  assert.deepEqual(nextRollout("new", [pod("node-0", "new"), pod("node-1", "new")], healthy), {
    kind: "done",
  });
  assert.deepEqual(
    nextRollout("new", [pod("node-1", "old"), pod("node-0", "old"), pod("node-2", "new")], healthy),
    {
      kind: "delete",
      pod: "mosaic-agent-node-0",
      node: "node-0",
      left: 2,
      volumes: healthy,
    },
  );
  // A pod made before template hashes existed is outdated too.
  assert.equal(
    nextRollout("new", [pod("node-0", "new"), pod("node-1", undefined as unknown as string)], healthy).kind,
    "delete",
  );
});

test("waits while an agent is being replaced or not Ready, or a volume is not Healthy", () => {
  const pods = [pod("node-0", "new"), pod("node-1", "old"), pod("node-2", "old")];
  const waiting = (step: ReturnType<typeof nextRollout>) => (step.kind === "wait" ? step.reason : step.kind);
  assert.match(
    waiting(nextRollout("new", [pod("node-0", "new", { ready: false }), ...pods.slice(1)], healthy)),
    /node-0 is not Ready/,
  );
  assert.match(
    waiting(nextRollout("new", [pod("node-0", "old", { deleting: true }), ...pods.slice(1)], healthy)),
    /node-0 is being replaced/,
  );
  for (const phase of ["Degraded", "Rebuilding", "Pending", "Failed", undefined]) {
    assert.match(
      waiting(nextRollout("new", pods, [...healthy, { name: "thumbs", phase }])),
      /volume thumbs is/,
    );
  }
});

test("property: a delete only when nothing is unavailable and every volume is Healthy, and only of an outdated pod", () => {
  const arbPod = fc.record({
    node: fc.constantFrom("node-0", "node-1", "node-2", "node-3"),
    hash: fc.constantFrom("old", "new"),
    ready: fc.boolean(),
    deleting: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.uniqueArray(arbPod, { selector: (p) => p.node, maxLength: 4 }),
      fc.array(fc.constantFrom("Healthy", "Degraded", "Rebuilding"), { maxLength: 3 }),
      (raw, phases) => {
        const pods = raw.map((p) => ({ ...p, name: `agent-${p.node}` }));
        const volumes = phases.map((phase, i) => ({ name: `v${i}`, phase }));
        const step = nextRollout("new", pods, volumes);
        if (step.kind !== "delete") return;
        assert.ok(pods.every((p) => p.ready && !p.deleting));
        assert.ok(volumes.every((v) => v.phase === "Healthy"));
        assert.equal(pods.find((p) => p.name === step.pod)?.hash, "old");
      },
    ),
  );
});
