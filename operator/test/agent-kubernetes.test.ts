// The data plane inside Kubernetes, on a real kube-apiserver: three real
// `mosaic agent --kubernetes` processes (identity from the downward API's
// variables, addresses from a Multus network-status, the chart's RBAC through
// a ServiceAccount token) and the operator's ClusterNode controller in
// process. The agents create and report their ClusterNodes and renew their
// Leases; the operator publishes the cluster map; a StripedVolume applied
// with kubectl is served by all three; a kill -9 makes the node Down when its
// Lease lapses and Lost after the grace, and every other agent adopts the
// map that takes it out.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ControlPlane } from "../../e2e/control-plane/control-plane.ts";
import type { ClusterMap } from "../../node-agent/src/core/cluster-map.ts";
import { silentLogger } from "../../node-agent/src/log.ts";
import { expectTestFile, putTestFile, testFile } from "../../node-agent/test/helpers/cluster-files.ts";
import { CLUSTER_MAP_CONFIGMAP, CLUSTER_MAP_KEY, decodeClusterMap } from "../src/api/cluster-map.ts";
import type { ClusterNode } from "../src/api/types.ts";
import { ClusterNodeController } from "../src/cluster-node-controller.ts";
import { eventually } from "./helpers/eventually.ts";
import { eventsOn, type KubeAgents } from "./helpers/kube-agents.ts";
import { type OperatorWithAgents, startOperatorWithAgents } from "./helpers/operator-with-agents.ts";

const NS = "mosaic-system";
const LEASE_SECONDS = 2;
/** The operator's grace: short, so the test sees Lost soon. */
const GRACE_MS = 5_000;
/** The agents' own down → out grace: long, so that out is the operator's doing here. */
const AGENTS_OUT_GRACE_MS = 600_000;
const WAIT_MS = 60_000;

describe("agents in Kubernetes with the operator, on a real kube-apiserver", () => {
  let cp: ControlPlane;
  let controller: ClusterNodeController;
  let agents: KubeAgents;
  let setting: OperatorWithAgents | undefined;
  const nodes = [0, 1, 2];
  const file = testFile("media", "films/clip.mp4", 5 * 2 ** 20 + 12_345);
  const copies = testFile("replicated", "thumbs/poster.jpg", 3 * 2 ** 20 + 999);

  const clusterNode = async (name: string): Promise<ClusterNode | undefined> => {
    const r = await cp.kubectl(["get", "cn", name, "-o", "json"], { allowFailure: true });
    return r.code === 0 ? (JSON.parse(r.stdout) as ClusterNode) : undefined;
  };
  const publishedMap = async (): Promise<ClusterMap | undefined> => {
    const r = await cp.kubectl(["get", "cm", "-n", NS, CLUSTER_MAP_CONFIGMAP, "-o", "json"], {
      allowFailure: true,
    });
    if (r.code !== 0) return undefined;
    const text = (JSON.parse(r.stdout) as { data: Record<string, string> }).data[CLUSTER_MAP_KEY] ?? "";
    return decodeClusterMap(text, "test");
  };
  /** The map agent i holds, asked over gRPC; undefined if it does not answer. */
  const heldMap = async (i: number): Promise<ClusterMap | undefined> => {
    try {
      return (await agents.client(i).cluster(2_000)).map;
    } catch {
      return undefined;
    }
  };
  const stateIn = (map: ClusterMap | undefined, i: number) =>
    map?.nodes.find((n) => n.id === agents.nodeName(i))?.state;
  const eventsOf = (name: string) => eventsOn(cp, "ClusterNode", name);
  const logs = () => nodes.map((i) => `--- ${agents.nodeName(i)}\n${agents.logTail(i)}`).join("\n");

  before(async () => {
    setting = await startOperatorWithAgents(
      NS,
      (o) => {
        controller = o.run(
          new ClusterNodeController({
            kc: o.kc,
            rest: o.rest,
            namespace: NS,
            outGraceMs: GRACE_MS,
            log: silentLogger(),
          }),
        );
      },
      { count: nodes.length, leaseSeconds: LEASE_SECONDS, outGraceMs: AGENTS_OUT_GRACE_MS },
    );
    ({ cp, agents } = setting);
  });

  after(() => setting?.stop());

  test("each agent creates its ClusterNode and reports both channels: kubectl get cn shows them", async () => {
    const ms = await eventually(
      async () => {
        const cns = await Promise.all(nodes.map((i) => clusterNode(agents.nodeName(i))));
        return cns.every((cn) => cn?.status?.channelA?.address && cn.status.channelB?.address);
      },
      WAIT_MS,
      `three ClusterNodes with both channels\n${logs()}`,
    );
    for (const i of nodes) {
      const cn = (await clusterNode(agents.nodeName(i))) as ClusterNode;
      assert.equal(cn.spec.nodeName, agents.nodeName(i));
      assert.deepEqual(cn.status?.channelA, {
        address: agents.address(i, 0),
        interface: "net1",
        state: "Up",
      });
      assert.equal(cn.status?.channelB?.address, agents.address(i, 1));
      assert.equal(cn.status?.channelB?.interface, "net2");
      assert.equal(cn.status?.capacity, "8Gi");
    }
    const lease = JSON.parse(
      (await cp.kubectl(["get", "lease", "-n", NS, "mosaic-agent-node-0", "-o", "json"])).stdout,
    );
    assert.equal(lease.spec.holderIdentity, agents.podName(0));
    assert.equal(lease.spec.leaseDurationSeconds, LEASE_SECONDS);
    console.log(`# ClusterNodes with both channels after ${Math.round(ms)} ms`);
  });

  test("the operator publishes a map of the three, every agent holds it, and each says it is Up and Ready", async () => {
    await eventually(
      async () => {
        const map = await publishedMap();
        return nodes.every((i) => stateIn(map, i) === "up");
      },
      WAIT_MS,
      `a published map with the three up\n${logs()}`,
    );
    const published = (await publishedMap()) as ClusterMap;
    assert.deepEqual(
      published.nodes.map((n) => n.addresses),
      nodes.map((i) => [agents.address(i, 0), agents.address(i, 1)]),
    );
    await eventually(
      async () => {
        const held = await Promise.all(nodes.map(heldMap));
        return held.every(
          (m) => (m?.epoch ?? 0) >= published.epoch && nodes.every((i) => stateIn(m, i) === "up"),
        );
      },
      WAIT_MS,
      `every agent holding epoch ${published.epoch}\n${logs()}`,
    );
    await eventually(
      async () => {
        const table = (await cp.kubectl(["get", "cn"])).stdout;
        return nodes.every((i) =>
          new RegExp(`${agents.nodeName(i)}\\s+${agents.nodeName(i)}\\s+Up\\s+Up\\s+A\\s+Low\\s+True`).test(
            table,
          ),
        );
      },
      WAIT_MS,
      "kubectl get cn: both channels Up, active A, Ready True",
    );
    console.log(`# kubectl get cn\n${(await cp.kubectl(["get", "cn"])).stdout.replace(/^/gm, "# ")}`);
    for (const i of nodes) {
      const cn = (await clusterNode(agents.nodeName(i))) as ClusterNode;
      assert.equal(cn.status?.phase, "Up");
      assert.ok((cn.status?.observedMap?.epoch ?? 0) >= published.epoch);
    }
  });

  test("a quiet cluster writes no status: liveness is the Lease, renewed meanwhile", async () => {
    const versions = async () =>
      Promise.all(nodes.map(async (i) => (await clusterNode(agents.nodeName(i)))?.metadata?.resourceVersion));
    const lease = async () =>
      JSON.parse((await cp.kubectl(["get", "lease", "-n", NS, "mosaic-agent-node-0", "-o", "json"])).stdout)
        .spec.renewTime as string;
    // First let the start settle: each agent's first rebuild pass and holdings count are news once.
    let settled = await versions();
    for (let still = 0, deadline = Date.now() + 30_000; still < 2 && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const now = await versions();
      still = JSON.stringify(now) === JSON.stringify(settled) ? still + 1 : 0;
      settled = now;
    }
    const [cnBefore, leaseBefore] = [await versions(), await lease()];
    const statusBefore = (await clusterNode(agents.nodeName(0)))?.status;
    await new Promise((resolve) => setTimeout(resolve, 3 * LEASE_SECONDS * 1000));
    const statusAfter = (await clusterNode(agents.nodeName(0)))?.status;
    assert.deepEqual(
      await versions(),
      cnBefore,
      `no ClusterNode was written (node-0 before: ${JSON.stringify(statusBefore)}, after: ${JSON.stringify(statusAfter)})`,
    );
    assert.notEqual(await lease(), leaseBefore, "the Lease was renewed");
  });

  test("StripedVolumes applied with kubectl are usable on all three: put through one, read through the others", async () => {
    const volume = (name: string, redundancy: object) =>
      JSON.stringify({
        apiVersion: "mosaic.dev/v1alpha1",
        kind: "StripedVolume",
        metadata: { name },
        spec: { chunkSize: "1Mi", redundancy, capacity: "10Gi" },
      });
    await cp.kubectl(["apply", "-f", "-"], {
      input: `${volume("media", { erasure: { data: 2, parity: 1 } })}\n${volume("replicated", { replicas: 2 })}`,
    });
    const ms = await eventually(
      async () => {
        const infos = await Promise.all(
          nodes.map((i) =>
            agents
              .client(i)
              .cluster(2_000)
              .catch(() => undefined),
          ),
        );
        return infos.every((info) => info?.volumes.filter((v) => v.chunkSizeBytes === 2 ** 20).length === 2);
      },
      WAIT_MS,
      "every agent serving volume media",
    );
    await putTestFile(agents.client(0), file);
    await expectTestFile(agents.client(1), file);
    await expectTestFile(agents.client(2), file);
    await putTestFile(agents.client(2), copies);
    await expectTestFile(agents.client(0), copies);
    console.log(`# volume usable on all agents ${Math.round(ms)} ms after kubectl apply`);
  });

  test("kill -9: Lease lapses → Down, Lost after the grace → a new epoch the others adopt, with Events", async () => {
    const victim = 2;
    const name = agents.nodeName(victim);
    const before = (await publishedMap()) as ClusterMap;
    const published = controller.published;
    const started = performance.now();
    await agents.kill9(victim);
    const since = () => performance.now() - started;
    await eventually(
      async () => (await Promise.all([0, 1].map(heldMap))).every((m) => stateIn(m, victim) === "down"),
      WAIT_MS,
      "the agents agreeing it is down",
    );
    const agreedDownMs = since();
    await eventually(
      async () => (await clusterNode(name))?.status?.phase === "Down",
      WAIT_MS,
      "ClusterNode phase Down",
    );
    const downMs = since();
    const down = (await clusterNode(name)) as ClusterNode;
    assert.equal(down.status?.conditions?.find((c) => c.type === "Ready")?.reason, "LeaseExpired");
    assert.equal(controller.published, published, "a down alone is the agents' business: no map for it");
    await eventually(
      async () => (await clusterNode(name))?.status?.phase === "Lost",
      WAIT_MS,
      "ClusterNode phase Lost",
    );
    const lostMs = since();
    const after = (await publishedMap()) as ClusterMap;
    assert.equal(stateIn(after, victim), "out");
    assert.ok(after.epoch > before.epoch);
    await eventually(
      async () =>
        (await Promise.all([0, 1].map(heldMap))).every(
          (m) => (m?.epoch ?? 0) >= after.epoch && stateIn(m, victim) === "out",
        ),
      WAIT_MS,
      `both survivors holding epoch ${after.epoch} with ${name} out\n${logs()}`,
    );
    const adoptedMs = since();
    // The last renewal came at most a third of the duration before the kill.
    const lapseMs = (LEASE_SECONDS * 1000 * 2) / 3;
    assert.ok(downMs >= lapseMs, `Down ${downMs} ms after the kill: before its Lease could lapse`);
    assert.ok(lostMs >= lapseMs + GRACE_MS, `Lost ${lostMs} ms after the kill: before the grace`);
    const events = await eventsOf(name);
    const reasons = events.map((e) => e.reason);
    for (const reason of ["Joined", "LeaseExpired", "Lost"])
      assert.ok(reasons.includes(reason), `${reason} in ${reasons}`);
    assert.match(events.find((e) => e.reason === "Lost")?.message ?? "", new RegExp(`epoch ${after.epoch}`));
    // Two copies on three nodes: the file still reads, whole, from both survivors. (An erasure 2+1
    // stripe needs three nodes to be placed at all, so "media" waits for a third node to return.)
    await expectTestFile(agents.client(0), copies);
    await expectTestFile(agents.client(1), copies);
    console.log(
      `# after kill -9: agents agreed down at ${Math.round(agreedDownMs)} ms, ClusterNode Down at ${Math.round(downMs)} ms, ` +
        `Lost at ${Math.round(lostMs)} ms (map epoch ${before.epoch} → ${after.epoch}), adopted by both survivors at ${Math.round(adoptedMs)} ms ` +
        `(Lease ${LEASE_SECONDS} s, grace ${GRACE_MS / 1000} s)`,
    );
  });

  test("the Lost node's agent comes back: its Lease renews, the operator returns it to the map, it is Up again", async () => {
    const victim = 2;
    const name = agents.nodeName(victim);
    const lost = (await publishedMap()) as ClusterMap;
    const started = performance.now();
    agents.spawn(victim);
    await eventually(
      async () => stateIn(await publishedMap(), victim) === "up",
      WAIT_MS,
      `${name} back in the published map\n${logs()}`,
    );
    const returnedMs = performance.now() - started;
    const back = (await publishedMap()) as ClusterMap;
    assert.ok(back.epoch > lost.epoch);
    await eventually(
      async () => {
        const held = await Promise.all(nodes.map(heldMap));
        return held.every((m) => (m?.epoch ?? 0) >= back.epoch && nodes.every((i) => stateIn(m, i) === "up"));
      },
      WAIT_MS,
      `all three holding epoch ≥ ${back.epoch} with ${name} up\n${logs()}`,
    );
    await eventually(
      async () => {
        const cn = await clusterNode(name);
        return cn?.status?.phase === "Up" && cn.status.conditions?.[0]?.status === "True";
      },
      WAIT_MS,
      `${name} Up and Ready again`,
    );
    const reasons = (await eventsOf(name)).map((e) => e.reason);
    for (const reason of ["LeaseRenewed", "Returned"])
      assert.ok(reasons.includes(reason), `${reason} in ${reasons}`);
    // The erasure-coded file has all three of its nodes again.
    await expectTestFile(agents.client(victim), file);
    await expectTestFile(agents.client(0), file);
    console.log(
      `# restarted agent back in the map (epoch ${lost.epoch} → ${back.epoch}) ${Math.round(returnedMs)} ms after its start`,
    );
  });
});
