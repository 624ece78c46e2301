// A StripedVolume's status from what the agents report (volume-status.ts):
// phase, conditions, chunk counts and rebuild progress for the situations a
// volume goes through — served and settled, a holder down, out and being
// rebuilt, too many down, not yet taken — and the status written only when
// it says something new; and when a volume being deleted may go.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ClusterNodeStatus, StripedVolume } from "../src/api/types.ts";
import type { ClusterView, MemberView } from "../src/cluster-view.ts";
import { piecesStillHeld } from "../src/volume-deletion.ts";
import { statusSays, volumeStatus, withTransitionTimes } from "../src/volume-status.ts";

const SV: StripedVolume = {
  apiVersion: "mosaic.dev/v1alpha1",
  kind: "StripedVolume",
  metadata: { name: "media", generation: 3, uid: "u1" },
  spec: { chunkSize: "1Mi", capacity: "10Gi", redundancy: { erasure: { data: 2, parity: 1 } } },
};

type Rebuild = NonNullable<ClusterNodeStatus["rebuild"]>;
const IDLE = (settledEpoch: number): Rebuild => ({
  state: "Idle",
  epoch: settledEpoch,
  settledEpoch,
  bytesLeft: 0,
  bytesPerSecond: 0,
  etaSeconds: 0,
});

function member(
  id: string,
  pieces: number | undefined,
  over: { state?: MemberView["state"]; liveness?: MemberView["liveness"]; rebuild?: Rebuild } = {},
): MemberView {
  return {
    id,
    state: over.state ?? "up",
    liveness: over.liveness ?? "live",
    status: {
      volumes: pieces === undefined ? [] : [{ name: "media", pieces, bytes: pieces * 2 ** 20 }],
      rebuild: over.rebuild ?? IDLE(5),
    },
  };
}

const view = (members: MemberView[], epoch = 5): ClusterView => ({ epoch, members });
const conditions = (v: ReturnType<typeof volumeStatus>) =>
  Object.fromEntries(v.status.conditions.map((c) => [c.type, `${c.status} ${c.reason}`]));

describe("StripedVolume status from the agents' reports", () => {
  test("every node serves it and has settled at the epoch: Healthy, counts and size summed", () => {
    const v = volumeStatus(SV, view([member("n0", 10), member("n1", 12), member("n2", 8)]));
    assert.equal(v.status.phase, "Healthy");
    assert.deepEqual(v.status.chunks, { healthy: 30, degraded: 0 });
    assert.equal(v.status.used, "30Mi");
    assert.equal(v.status.redundancy, "erasure 2+1");
    assert.equal(v.status.epoch, 5);
    assert.equal(v.status.observedGeneration, 3);
    assert.equal(v.status.rebuild, null);
    assert.deepEqual(conditions(v), {
      Ready: "True Serving",
      Degraded: "False AllPiecesAvailable",
      Rebuilding: "False Settled",
    });
    assert.ok(v.status.conditions.every((c) => c.observedGeneration === 3));
  });

  test("no agent has taken it yet, or none has settled and it holds nothing: Pending", () => {
    assert.equal(
      volumeStatus(SV, view([member("n0", undefined), member("n1", undefined)])).status.phase,
      "Pending",
    );
    const behind = volumeStatus(SV, view([member("n0", 0), member("n1", 0), member("n2", 0)], 6));
    assert.equal(behind.status.phase, "Pending");
    assert.match(behind.summary, /n0, n1, n2 not yet settled at map epoch 6/);
  });

  test("a holder down (the agents' map, or its Lease lapsed): Degraded, its pieces counted as degraded", () => {
    const down = volumeStatus(
      SV,
      view([member("n0", 10), member("n1", 12), member("n2", 8, { state: "down" })]),
    );
    assert.equal(down.status.phase, "Degraded");
    assert.deepEqual(down.status.chunks, { healthy: 22, degraded: 8 });
    assert.equal(conditions(down).Degraded, "True NodesUnavailable");
    assert.match(down.summary, /n2 down: their 8 pieces are read around/);
    assert.equal(conditions(down).Ready, "True Serving", "still readable: one of 2+1 may be missing");
    const silent = volumeStatus(
      SV,
      view([member("n0", 10), member("n1", 12), member("n2", 8, { liveness: "down" })]),
    );
    assert.match(silent.summary, /n2 silent/);
  });

  test("a holder out and the others pulling its pieces: Rebuilding with their summed progress", () => {
    const pulling: Rebuild = {
      state: "Rebuilding",
      epoch: 6,
      settledEpoch: 5,
      bytesLeft: 3 * 2 ** 20,
      bytesPerSecond: 2 ** 20,
      etaSeconds: 3,
    };
    const v = volumeStatus(
      SV,
      view(
        [
          member("n0", 10, { rebuild: pulling }),
          member("n1", 12, { rebuild: { ...pulling, bytesLeft: 2 ** 20, etaSeconds: 1 } }),
          member("n2", 8, { state: "out" }),
          member("n3", 0, { rebuild: IDLE(6) }),
        ],
        6,
      ),
    );
    assert.equal(v.status.phase, "Rebuilding");
    assert.deepEqual(v.status.rebuild, {
      bytesLeft: 4 * 2 ** 20,
      bytesPerSecond: 2 * 2 ** 20,
      etaSeconds: 3,
    });
    assert.equal(conditions(v).Rebuilding, "True PiecesMoving");
    assert.equal(conditions(v).Degraded, "True NodesUnavailable", "not yet rebuilt: still degraded");
    assert.deepEqual(v.status.chunks, { healthy: 22, degraded: 8 });
    const unmeasured = volumeStatus(
      SV,
      view(
        [
          member("n0", 10, { rebuild: { ...pulling, bytesPerSecond: 0, etaSeconds: 0 } }),
          member("n2", 8, { state: "out" }),
        ],
        6,
      ),
    );
    assert.equal(unmeasured.status.rebuild?.etaSeconds, null, "no rate yet: no ETA, rather than 0 s");
    assert.match(unmeasured.summary, /rate not measured yet/);
  });

  test("agents that list their volumes: each volume shows its own bytes, its share of the rate, none if untouched", () => {
    // n0 pulls 3 MiB, 1 MiB of it for media; n1 pulls only for another volume.
    const n0: Rebuild = {
      state: "Rebuilding",
      epoch: 6,
      settledEpoch: 5,
      bytesLeft: 3 * 2 ** 20,
      bytesPerSecond: 3 * 2 ** 20,
      etaSeconds: 1,
      volumes: [
        { name: "clips", bytesLeft: 2 * 2 ** 20 },
        { name: "media", bytesLeft: 2 ** 20 },
      ],
    };
    const n1: Rebuild = { ...n0, etaSeconds: 4, volumes: [{ name: "clips", bytesLeft: 3 * 2 ** 20 }] };
    const members = [
      member("n0", 10, { rebuild: n0 }),
      member("n1", 12, { rebuild: n1 }),
      member("n2", 8, { state: "out" }),
    ];
    const v = volumeStatus(SV, view(members, 6));
    assert.equal(v.status.phase, "Rebuilding");
    assert.deepEqual(v.status.rebuild, { bytesLeft: 2 ** 20, bytesPerSecond: 2 ** 20, etaSeconds: 1 });
    assert.match(v.summary, /^n0 pulling/, "only the agent pulling for this volume is named");
    // Nothing pulled for media anywhere: no progress of other volumes shown, and not settled yet.
    const untouched = volumeStatus(
      SV,
      view([member("n0", 10, { rebuild: n1 }), member("n1", 12, { rebuild: n1 }), member("n2", 8)], 6),
    );
    assert.equal(untouched.status.rebuild, null);
    assert.equal(conditions(untouched).Rebuilding, "True CatchingUp");
  });

  test("every serving node settled after the out: Healthy again, the out node's old pieces no longer count", () => {
    const v = volumeStatus(
      SV,
      view(
        [
          member("n0", 14, { rebuild: IDLE(6) }),
          member("n1", 16, { rebuild: IDLE(6) }),
          member("n2", 8, { state: "out" }),
          member("n3", 4, { rebuild: IDLE(6) }),
        ],
        6,
      ),
    );
    assert.equal(v.status.phase, "Healthy");
    assert.deepEqual(v.status.chunks, { healthy: 34, degraded: 0 });
  });

  test("settled but a node short of a stripe's width: Degraded, TooFewNodes", () => {
    const v = volumeStatus(SV, view([member("n0", 10), member("n1", 12), member("n2", 8, { state: "out" })]));
    assert.equal(v.status.phase, "Degraded");
    assert.match(v.summary, /2 nodes serve it; a stripe of erasure 2\+1 needs 3/);
  });

  test("more holders unavailable than the redundancy survives: Failed, not Ready", () => {
    const v = volumeStatus(
      SV,
      view([member("n0", 10), member("n1", 12, { state: "down" }), member("n2", 8, { state: "down" })]),
    );
    assert.equal(v.status.phase, "Failed");
    assert.equal(conditions(v).Ready, "False TooManyNodesUnavailable");
  });

  test("after a map change, nothing pulling yet and a node not caught up: Rebuilding, CatchingUp", () => {
    const v = volumeStatus(
      SV,
      view([member("n0", 10, { rebuild: IDLE(6) }), member("n1", 12), member("n2", 8)], 6),
    );
    assert.equal(v.status.phase, "Rebuilding");
    assert.equal(conditions(v).Rebuilding, "True CatchingUp");
    assert.match(v.summary, /n1, n2 not yet settled at map epoch 6/);
  });
});

describe("writing the status", () => {
  const NOW = "2026-11-21T10:00:00.000Z";
  const EARLIER = "2026-11-21T09:00:00.000Z";

  test("said already: nothing to write; a changed count or condition: write; times kept while a status holds", () => {
    const healthy = volumeStatus(SV, view([member("n0", 10), member("n1", 12), member("n2", 8)])).status;
    const stored = { ...healthy, conditions: withTransitionTimes(healthy.conditions, undefined, EARLIER) };
    assert.equal(statusSays(stored as never, healthy), true);
    const more = volumeStatus(SV, view([member("n0", 11), member("n1", 12), member("n2", 8)])).status;
    assert.equal(statusSays(stored as never, more), false);
    const down = volumeStatus(
      SV,
      view([member("n0", 10), member("n1", 12), member("n2", 8, { state: "down" })]),
    ).status;
    const times = withTransitionTimes(down.conditions, stored.conditions, NOW);
    assert.equal(times.find((c) => c.type === "Ready")?.lastTransitionTime, EARLIER, "Ready still True");
    assert.equal(times.find((c) => c.type === "Degraded")?.lastTransitionTime, NOW, "Degraded became True");
  });
});

describe("whether a volume being deleted may go", () => {
  const acked = (m: MemberView, pieces: number): MemberView => ({
    ...m,
    status: {
      ...m.status,
      deletedVolumes: ["u1"],
      volumes: pieces > 0 ? [{ name: "media", pieces, bytes: pieces }] : [],
    },
  });

  test("every live agent must report the uid and hold no piece of it; silent ones are not waited for", () => {
    const live = [member("n0", 10), member("n1", 12)];
    const silent = member("n2", 8, { state: "out", liveness: "lost" });
    assert.deepEqual(piecesStillHeld(SV, view([...live, silent])), {
      waiting: ["n0", "n1"],
      done: [],
      silent: ["n2"],
    });
    const partly = piecesStillHeld(
      SV,
      view([acked(member("n0", 10), 0), acked(member("n1", 12), 3), silent]),
    );
    assert.deepEqual(
      partly.waiting,
      ["n1"],
      "reported, but pieces of it are still there (a write in flight)",
    );
    assert.deepEqual(
      piecesStillHeld(SV, view([acked(member("n0", 10), 0), acked(member("n1", 12), 0), silent])),
      {
        waiting: [],
        done: ["n0", "n1"],
        silent: ["n2"],
      },
    );
  });
});
