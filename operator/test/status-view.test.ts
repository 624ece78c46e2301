// The Kubernetes source's snapshot, pure: ClusterNodes and StripedVolumes
// with statuses as agents and the operator write them (kube/node-status.ts,
// volume-status.ts), turned into the page's view model.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ClusterNode, StripedVolume } from "../src/api/types.ts";
import { kubeSnapshot, statusPortOf } from "../src/status-source.ts";

const NODE_UP: ClusterNode = {
  apiVersion: "mosaic.dev/v1alpha1",
  kind: "ClusterNode",
  metadata: { name: "worker-1" },
  spec: { nodeName: "worker-1" },
  status: {
    phase: "Up",
    channelA: { address: "198.18.1.11:7100", interface: "net1", state: "Up" },
    channelB: { address: "198.18.2.11:7100", interface: "net2", state: "Suspect" },
    activeChannel: "A",
    load: "Medium",
    capacity: "100Gi",
    used: "12Gi",
    observedMap: { epoch: 7, baseEpoch: 6, down: [], out: [] },
    rebuild: {
      state: "Rebuilding",
      epoch: 7,
      bytesLeft: 3_221_225_472,
      bytesPerSecond: 67_108_864,
      etaSeconds: 48,
    },
    conditions: [
      {
        type: "Ready",
        status: "True",
        reason: "Serving",
        message: "both channels up; 2 of 2 watched peers heard",
      },
    ],
  },
};
const NODE_DOWN: ClusterNode = {
  apiVersion: "mosaic.dev/v1alpha1",
  kind: "ClusterNode",
  metadata: { name: "worker-0" },
  spec: { nodeName: "worker-0" },
  status: {
    phase: "Down",
    channelA: { address: "198.18.1.10:7100", state: "Down" },
    channelB: { address: "198.18.2.10:7100", state: "Down" },
    activeChannel: "none",
    load: "Low",
    observedMap: { epoch: 6 },
    conditions: [
      { type: "Ready", status: "False", reason: "LeaseExpired", message: "no lease renewal for 12 s" },
    ],
  },
};
const NODE_NEW: ClusterNode = {
  apiVersion: "mosaic.dev/v1alpha1",
  kind: "ClusterNode",
  metadata: { name: "worker-2" },
  spec: { nodeName: "worker-2" },
};
const VOLUME: StripedVolume = {
  apiVersion: "mosaic.dev/v1alpha1",
  kind: "StripedVolume",
  metadata: { name: "video-library" },
  spec: { chunkSize: "4Mi", redundancy: { erasure: { data: 4, parity: 2 } }, capacity: "20Ti" },
  status: {
    phase: "Rebuilding",
    redundancy: "erasure 4+2",
    used: "1.5Ti",
    epoch: 7,
    chunks: { healthy: 9000, degraded: 120, lost: 0 },
    rebuild: { bytesLeft: 3_221_225_472, bytesPerSecond: 67_108_864, etaSeconds: 48 },
    readReplicas: { count: 2, nodes: [] },
    conditions: [
      { type: "Ready", status: "True", reason: "Readable", message: "every file readable" },
      {
        type: "Rebuilding",
        status: "True",
        reason: "PiecesMoving",
        message: "worker-0 is out: 120 pieces moving",
      },
    ],
  },
};
const VOLUME_NEW: StripedVolume = {
  apiVersion: "mosaic.dev/v1alpha1",
  kind: "StripedVolume",
  metadata: { name: "thumbs" },
  spec: { chunkSize: "256Ki", redundancy: { replicas: 3 }, capacity: "1Ti" },
};

test("nodes and volumes with statuses become the page's snapshot, sorted by name", () => {
  const s = kubeSnapshot([NODE_UP, NODE_NEW, NODE_DOWN], [VOLUME, VOLUME_NEW], "2026-11-21T10:00:00.000Z");
  assert.equal(s.source, "kubernetes");
  assert.equal(s.epoch, 7);
  assert.deepEqual(
    s.nodes.map((n) => n.name),
    ["worker-0", "worker-1", "worker-2"],
  );
  assert.deepEqual(s.nodes[1], {
    name: "worker-1",
    phase: "Up",
    channels: {
      A: { address: "198.18.1.11:7100", state: "Up" },
      B: { address: "198.18.2.11:7100", state: "Suspect" },
    },
    active: "A",
    load: "Medium",
    used: "12Gi",
    capacity: "100Gi",
    epoch: 7,
    rebuild: { state: "Rebuilding", bytesLeft: 3_221_225_472, bytesPerSecond: 67_108_864, etaSeconds: 48 },
    message: null,
  });
  assert.equal(s.nodes[0]?.phase, "Down");
  assert.equal(s.nodes[0]?.message, "no lease renewal for 12 s");
  assert.deepEqual(s.nodes[2], {
    name: "worker-2",
    phase: "Joining",
    channels: { A: { address: null, state: "Unknown" }, B: { address: null, state: "Unknown" } },
    active: null,
    load: null,
    used: null,
    capacity: null,
    epoch: null,
    rebuild: null,
    message: null,
  });
  assert.deepEqual(s.volumes, [
    {
      name: "thumbs",
      phase: "Pending",
      redundancy: "replicas 3",
      capacity: "1Ti",
      used: null,
      chunks: null,
      readCopies: null,
      rebuild: null,
      message: null,
    },
    {
      name: "video-library",
      phase: "Rebuilding",
      redundancy: "erasure 4+2",
      capacity: "20Ti",
      used: "1.5Ti",
      chunks: { healthy: 9000, degraded: 120, lost: 0 },
      readCopies: 2,
      rebuild: { bytesLeft: 3_221_225_472, bytesPerSecond: 67_108_864, etaSeconds: 48 },
      message: "worker-0 is out: 120 pieces moving",
    },
  ]);
});

test("no objects: an empty snapshot, no epoch", () => {
  assert.deepEqual(kubeSnapshot([], [], "t"), {
    source: "kubernetes",
    takenAt: "t",
    epoch: null,
    nodes: [],
    volumes: [],
  });
});

test("MOSAIC_STATUS_PORT: 8090 by default, 0 turns the page off, anything else not a port is refused", () => {
  assert.equal(statusPortOf({}), 8090);
  assert.equal(statusPortOf({ MOSAIC_STATUS_PORT: "9090" }), 9090);
  assert.equal(statusPortOf({ MOSAIC_STATUS_PORT: "0" }), undefined);
  for (const bad of ["http", "-1", "70000", "80.5"])
    assert.throws(
      () => statusPortOf({ MOSAIC_STATUS_PORT: bad }),
      /MOSAIC_STATUS_PORT .* must be a port number/,
    );
});
