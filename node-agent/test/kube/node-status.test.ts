// What an agent writes in its ClusterNode: its own channels as its live peers
// hear them, the channel its traffic takes, Ready from its view and its
// store, the map it holds; and the patch that writes only what changed.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ClusterNodeStatus } from "@mosaic/operator/api/crds.generated.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import { type AgentSnapshot, agentStatus, ownChannelState, statusPatch } from "../../src/kube/node-status.ts";
import type { ChannelState } from "../../src/membership/channel-detector.ts";
import type { PeerView } from "../../src/membership/peer-health.ts";

function peer(
  a: ChannelState,
  b: ChannelState,
  active: "A" | "B" | null = a === "down" ? "B" : "A",
): PeerView {
  const state = a === "down" && b === "down" ? "down" : "up";
  return { channels: { A: a, B: b }, state, active: state === "down" ? null : active };
}

const MAP: ClusterMap = {
  epoch: 7,
  nodes: [
    { id: "n1", addresses: ["198.18.0.1:7400", "198.18.1.1:7400"], state: "up" },
    { id: "n2", addresses: ["198.18.0.2:7400", "198.18.1.2:7400"], state: "down" },
    { id: "n3", addresses: ["198.18.0.3:7400", "198.18.1.3:7400"], state: "out", outEpoch: 5 },
    { id: "n4", addresses: ["198.18.0.4:7400", "198.18.1.4:7400"], state: "up" },
  ],
};

function snapshot(over: Partial<AgentSnapshot> = {}): AgentSnapshot {
  return {
    self: "n1",
    channels: [
      { interface: "net1", ip: "198.18.0.1", address: "198.18.0.1:7400" },
      { interface: "net2", ip: "198.18.1.1", address: "198.18.1.1:7400" },
    ],
    map: MAP,
    baseEpoch: 6,
    peers: [peer("up", "up"), peer("up", "up")],
    usage: { usedBytes: 3 * 2 ** 30, capacityBytes: 100 * 2 ** 30, freeBytes: 97 * 2 ** 30 },
    load: "Low",
    holdings: [{ name: "media", pieces: 12, bytes: 12 * 2 ** 20 }],
    rebuild: {
      state: "Idle",
      epoch: 7,
      settledEpoch: 7,
      bytesLeft: 0,
      bytesPerSecond: 0,
      etaSeconds: 0,
      volumes: [],
    },
    deletedVolumes: [],
    ...over,
  };
}

describe("own channels", () => {
  test("a channel no live peer hears is down; a peer dead on both channels tells nothing", () => {
    const peers = [peer("down", "up"), peer("down", "up"), peer("down", "down")];
    assert.equal(ownChannelState(peers, "A"), "Down");
    assert.equal(ownChannelState(peers, "B"), "Up");
  });

  test("one live peer still hearing the channel keeps it up; a returning channel counts as heard", () => {
    assert.equal(ownChannelState([peer("down", "up"), peer("up", "up")], "A"), "Up");
    assert.equal(ownChannelState([peer("returning", "up")], "A"), "Up");
    assert.equal(ownChannelState([peer("suspect", "up"), peer("down", "up")], "A"), "Suspect");
  });

  test("no peers: nothing to contradict; every peer silent: cannot tell ours from theirs", () => {
    assert.equal(ownChannelState([], "A"), "Up");
    assert.equal(ownChannelState([peer("down", "down")], "A"), "Suspect");
  });
});

describe("the status an agent writes", () => {
  test("both channels, the map it holds, and Ready", () => {
    const s = agentStatus(snapshot());
    assert.equal(s.phase, "Up");
    assert.deepEqual(s.channelA, { address: "198.18.0.1:7400", interface: "net1", state: "Up" });
    assert.deepEqual(s.channelB, { address: "198.18.1.1:7400", interface: "net2", state: "Up" });
    assert.equal(s.activeChannel, "A");
    assert.equal(s.capacity, "100Gi");
    assert.equal(s.used, "3Gi");
    assert.deepEqual(s.observedMap, {
      epoch: 7,
      baseEpoch: 6,
      down: ["n2"],
      out: [{ node: "n3", outEpoch: 5 }],
    });
    assert.deepEqual(s.conditions, [
      {
        type: "Ready",
        status: "True",
        reason: "Serving",
        message: "both channels up; 2 of 2 watched peers heard",
      },
    ]);
  });

  test("channel A down: still Ready, on B, and traffic moved to B", () => {
    const s = agentStatus(snapshot({ peers: [peer("down", "up"), peer("down", "up")] }));
    assert.equal(s.channelA.state, "Down");
    assert.equal(s.activeChannel, "B");
    assert.equal(s.conditions[0]?.status, "True");
    assert.equal(s.conditions[0]?.reason, "ChannelADown");
  });

  test("not Ready: isolated, full, down, out or not yet in the map", () => {
    const reason = (over: Partial<AgentSnapshot>) => {
      const c = agentStatus(snapshot(over)).conditions[0];
      return `${c?.status} ${c?.reason}`;
    };
    assert.equal(reason({ peers: [peer("down", "down"), peer("down", "down")] }), "False Isolated");
    assert.equal(reason({ usage: { usedBytes: 10, capacityBytes: 10, freeBytes: 0 } }), "False StoreFull");
    assert.equal(reason({ self: "n2" }), "False DownInClusterMap");
    assert.equal(reason({ self: "n3" }), "False OutOfClusterMap");
    assert.equal(reason({ self: "n9" }), "False NotInClusterMap");
    assert.equal(agentStatus(snapshot({ self: "n9" })).phase, "Joining");
    assert.equal(agentStatus(snapshot({ self: "n2" })).phase, "Down");
  });
});

describe("the status patch", () => {
  const NOW = "2026-11-21T10:00:00.000Z";
  const EARLIER = "2026-11-21T09:00:00.000Z";

  test("nothing stored: everything; the same again: nothing at all", () => {
    const desired = agentStatus(snapshot());
    const first = statusPatch(desired, undefined, NOW);
    assert.deepEqual(Object.keys(first ?? {}).sort(), [
      "activeChannel",
      "capacity",
      "channelA",
      "channelB",
      "conditions",
      "deletedVolumes",
      "load",
      "observedMap",
      "phase",
      "rebuild",
      "used",
      "volumes",
    ]);
    const stored = { ...first } as ClusterNodeStatus;
    assert.equal(statusPatch(desired, stored, NOW), undefined);
  });

  test("a channel going down patches that channel, the active one and Ready; Ready's time moves only with its status", () => {
    const stored = statusPatch(agentStatus(snapshot()), undefined, EARLIER) as ClusterNodeStatus;
    const patch = statusPatch(agentStatus(snapshot({ peers: [peer("down", "up")] })), stored, NOW);
    assert.deepEqual(Object.keys(patch ?? {}).sort(), ["activeChannel", "channelA", "conditions"]);
    assert.equal(
      patch?.conditions?.[0]?.lastTransitionTime,
      EARLIER,
      "still True: the transition time stays",
    );
    const isolated = statusPatch(agentStatus(snapshot({ peers: [peer("down", "down")] })), stored, NOW);
    assert.equal(isolated?.conditions?.[0]?.lastTransitionTime, NOW);
  });

  test("what someone else wrote over the agent's fields is put back", () => {
    const stored = statusPatch(agentStatus(snapshot()), undefined, EARLIER) as ClusterNodeStatus;
    const byOperator: ClusterNodeStatus = {
      ...stored,
      phase: "Down",
      conditions: [
        { type: "Ready", status: "False", reason: "LeaseExpired", message: "m", lastTransitionTime: NOW },
      ],
    };
    const patch = statusPatch(agentStatus(snapshot()), byOperator, NOW);
    assert.equal(patch?.phase, "Up");
    assert.equal(patch?.conditions?.[0]?.reason, "Serving");
  });

  test("used bytes are written when their rounded size changes, not on every byte", () => {
    const stored = statusPatch(agentStatus(snapshot()), undefined, EARLIER) as ClusterNodeStatus;
    const usage = (usedBytes: number) => ({ usedBytes, capacityBytes: 100 * 2 ** 30, freeBytes: 1 });
    assert.equal(
      statusPatch(agentStatus(snapshot({ usage: usage(3 * 2 ** 30 + 4096) })), stored, NOW)?.used,
      undefined,
    );
    assert.equal(
      statusPatch(agentStatus(snapshot({ usage: usage(3.5 * 2 ** 30) })), stored, NOW)?.used,
      "3.5Gi",
    );
  });
});

describe("volumes and rebuild in the status", () => {
  const NOW = "2026-11-21T10:00:00.000Z";

  test("what it holds per volume and its rebuild are reported as given, and patched only when they change", () => {
    const s = agentStatus(snapshot());
    assert.deepEqual(s.volumes, [{ name: "media", pieces: 12, bytes: 12 * 2 ** 20 }]);
    assert.equal(s.rebuild.settledEpoch, 7);
    const stored = statusPatch(s, undefined, NOW) as ClusterNodeStatus;
    const moving = snapshot({
      rebuild: {
        state: "Rebuilding",
        epoch: 8,
        settledEpoch: 7,
        bytesLeft: 5 * 2 ** 20,
        bytesPerSecond: 2 ** 20,
        etaSeconds: 5,
        volumes: [{ name: "media", bytesLeft: 5 * 2 ** 20 }],
      },
    });
    assert.deepEqual(Object.keys(statusPatch(agentStatus(moving), stored, NOW) ?? {}), ["rebuild"]);
    const more = snapshot({ holdings: [{ name: "media", pieces: 13, bytes: 13 * 2 ** 20 }] });
    assert.deepEqual(Object.keys(statusPatch(agentStatus(more), stored, NOW) ?? {}), ["volumes"]);
  });
});
