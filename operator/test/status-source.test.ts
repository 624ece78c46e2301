// The operator's status page against a real kube-apiserver: ClusterNodes and
// StripedVolumes created with statuses (the status subresource, as agents
// and the operator patch it) are served as the page's JSON snapshot, and a
// status change reaches an open event stream without a new request.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { type ControlPlane, startControlPlane } from "../../e2e/control-plane/control-plane.ts";
import { silentLogger } from "../../node-agent/src/log.ts";
import type { StatusSnapshot } from "../../node-agent/src/status/view-model.ts";
import { snapshots } from "../../node-agent/test/status/status-fixtures.ts";
import type { ClusterNode, ClusterNodeStatus, StripedVolume } from "../src/api/types.ts";
import { KubeRest } from "../src/framework/kube-rest.ts";
import { CLUSTER_NODES, collectionPath, objectPath, STRIPED_VOLUMES } from "../src/framework/resources.ts";
import { serveKubeStatus } from "../src/status-source.ts";
import { eventually } from "./helpers/eventually.ts";

const CRDS = join(import.meta.dirname, "..", "..", "crds");

function nodeStatus(name: string, i: number, channelB: "Up" | "Down"): ClusterNodeStatus {
  return {
    phase: "Up",
    channelA: { address: `198.18.1.${10 + i}:7100`, interface: "net1", state: "Up" },
    channelB: { address: `198.18.2.${10 + i}:7100`, interface: "net2", state: channelB },
    activeChannel: "A",
    load: "Low",
    capacity: "100Gi",
    used: "1Gi",
    observedMap: { epoch: 3, baseEpoch: 3, down: [], out: [] },
    rebuild: { state: "Idle", epoch: 3, settledEpoch: 3, bytesLeft: 0, bytesPerSecond: 0, etaSeconds: 0 },
    conditions: [
      {
        type: "Ready",
        status: "True",
        reason: "Serving",
        message: `${name} serving`,
        lastTransitionTime: "2026-11-21T10:00:00Z",
      },
    ],
  };
}

describe("the operator's status page on a real kube-apiserver", { timeout: 180_000 }, () => {
  let cp: ControlPlane;
  let rest: KubeRest;
  let page: Awaited<ReturnType<typeof serveKubeStatus>>;
  let base: string;

  before(async () => {
    cp = await startControlPlane();
    await cp.installCrds([join(CRDS, "clusternodes.yaml"), join(CRDS, "stripedvolumes.yaml")]);
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    rest = new KubeRest(kc);
    for (const [i, name] of ["worker-1", "worker-0"].entries()) {
      await rest.create<ClusterNode>(collectionPath(CLUSTER_NODES), {
        apiVersion: "mosaic.dev/v1alpha1",
        kind: "ClusterNode",
        metadata: { name },
        spec: { nodeName: name },
      });
      await rest.patch(`${objectPath(CLUSTER_NODES, name)}/status`, "merge", {
        status: nodeStatus(name, i, "Up"),
      });
    }
    await rest.create<StripedVolume>(collectionPath(STRIPED_VOLUMES), {
      apiVersion: "mosaic.dev/v1alpha1",
      kind: "StripedVolume",
      metadata: { name: "video-library" },
      spec: { chunkSize: "4Mi", redundancy: { erasure: { data: 1, parity: 1 } }, capacity: "20Ti" },
    });
    await rest.patch(`${objectPath(STRIPED_VOLUMES, "video-library")}/status`, "merge", {
      status: {
        phase: "Healthy",
        redundancy: "erasure 1+1",
        used: "2Gi",
        epoch: 3,
        chunks: { healthy: 512, degraded: 0, lost: 0 },
      },
    });
    page = await serveKubeStatus({ kc, rest, port: 0, host: "127.0.0.1", log: silentLogger() });
    base = `http://${page?.address}`;
  });

  after(async () => {
    await page?.stop();
    await cp?.stop();
  });

  test("the JSON snapshot shows the objects' statuses; a status change reaches the open stream", async () => {
    let snapshot: StatusSnapshot | undefined;
    await eventually(
      async () => {
        const answer = await fetch(`${base}/api/status`);
        if (answer.status !== 200) return (await answer.text()) === "never";
        snapshot = (await answer.json()) as StatusSnapshot;
        return snapshot.nodes.length === 2 && snapshot.volumes.length === 1;
      },
      30_000,
      "a snapshot of both nodes and the volume",
    );
    assert.ok(snapshot);
    assert.equal(snapshot.source, "kubernetes");
    assert.equal(snapshot.epoch, 3);
    assert.deepEqual(
      snapshot.nodes.map((n) => [n.name, n.phase, n.channels.A.state, n.channels.B.state, n.active, n.load]),
      [
        ["worker-0", "Up", "Up", "Up", "A", "Low"],
        ["worker-1", "Up", "Up", "Up", "A", "Low"],
      ],
    );
    assert.equal(snapshot.nodes[1]?.channels.B.address, "198.18.2.10:7100");
    assert.deepEqual(snapshot.volumes[0], {
      name: "video-library",
      phase: "Healthy",
      redundancy: "erasure 1+1",
      capacity: "20Ti",
      used: "2Gi",
      chunks: { healthy: 512, degraded: 0, lost: 0 },
      readCopies: 0,
      rebuild: null,
      message: null,
    });

    const abort = new AbortController();
    const answer = await fetch(`${base}/api/events`, { signal: abort.signal });
    assert.equal(answer.status, 200);
    const events = snapshots(answer.body as ReadableStream<Uint8Array>);
    try {
      const first = await events.next();
      assert.equal(first.value?.nodes[1]?.channels.B.state, "Up");
      const changedAt = performance.now();
      await rest.patch(`${objectPath(CLUSTER_NODES, "worker-0")}/status`, "merge", {
        status: { channelB: { state: "Down" }, activeChannel: "A" },
      });
      await rest.patch(`${objectPath(STRIPED_VOLUMES, "video-library")}/status`, "merge", {
        status: {
          phase: "Rebuilding",
          chunks: { healthy: 500, degraded: 12, lost: 0 },
          rebuild: { bytesLeft: 50_331_648, bytesPerSecond: 16_777_216, etaSeconds: 3 },
        },
      });
      // Both patches, as one or two events: read until the stream shows both (bounded by the test's timeout).
      let last: StatusSnapshot | undefined;
      while (last?.nodes[0]?.channels.B.state !== "Down" || last.volumes[0]?.phase !== "Rebuilding") {
        const next = await events.next();
        assert.equal(next.done, false, "the stream stays open");
        last = next.value as StatusSnapshot;
      }
      console.log(
        `# both changes on the stream ${Math.round(performance.now() - changedAt)} ms after the patches`,
      );
      assert.equal(last.nodes[0]?.name, "worker-0");
      assert.equal(last.nodes[1]?.channels.B.state, "Up", "the other node unchanged");
      assert.deepEqual(last.volumes[0]?.rebuild, {
        bytesLeft: 50_331_648,
        bytesPerSecond: 16_777_216,
        etaSeconds: 3,
      });
      assert.deepEqual(last.volumes[0]?.chunks, { healthy: 500, degraded: 12, lost: 0 });
    } finally {
      abort.abort();
      await events.return(undefined).catch(() => {});
    }
  });
});
