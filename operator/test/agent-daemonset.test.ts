// The node-agent DaemonSet on a real kube-apiserver: created as declared, and
// put back when someone edits or deletes it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { V1DaemonSet } from "@kubernetes/client-node";
import { type ControlPlane, startControlPlane } from "../../e2e/control-plane/control-plane.ts";
import { silentLogger } from "../../node-agent/src/log.ts";
import {
  AGENT_LABELS,
  type AgentDaemonSetSettings,
  MULTUS_NETWORKS,
  TEMPLATE_HASH,
} from "../src/agent-daemonset.ts";
import { Operator } from "../src/framework/operator.ts";
import { DAEMON_SETS } from "../src/framework/resources.ts";
import { applyAgentDaemonSet } from "../src/reconcile-daemonset.ts";
import { eventually } from "./helpers/eventually.ts";

const SETTINGS: AgentDaemonSetSettings = {
  namespace: "mosaic-system",
  name: "mosaic-agent",
  image: "mosaic/node-agent:test",
  serviceAccountName: "mosaic-agent",
  networks: { channelA: "mosaic-system/mosaic-a", channelB: "mosaic-system/mosaic-b" },
  hostPaths: { data: "/var/lib/mosaic", ipc: "/run/mosaic" },
  port: 7400,
  resources: { requests: { cpu: "250m", memory: "256Mi" } },
  heartbeat: { intervalMs: 50, channelDownMs: 300, outGraceMs: 30_000 },
  rebuildRate: "32MiB",
};

describe("the node-agent DaemonSet on a real kube-apiserver", () => {
  let cp: ControlPlane;
  let operator: Operator;

  const read = async (): Promise<V1DaemonSet | undefined> => {
    const r = await cp.kubectl(["get", "ds", "-n", SETTINGS.namespace, SETTINGS.name, "-o", "json"], {
      allowFailure: true,
    });
    return r.code === 0 ? (JSON.parse(r.stdout) as V1DaemonSet) : undefined;
  };
  const imageOf = (ds: V1DaemonSet | undefined) => ds?.spec?.template.spec?.containers[0]?.image;

  before(async () => {
    cp = await startControlPlane();
    await cp.kubectl(["create", "namespace", SETTINGS.namespace]);
    operator = new Operator({ kubeconfig: cp.kubeconfig, identity: "keeper", log: silentLogger() });
    operator.keep({
      name: "agent-daemonset",
      watch: {
        resource: DAEMON_SETS,
        namespace: SETTINGS.namespace,
        labelSelector: "app.kubernetes.io/name=mosaic-agent",
      },
      reconcile: () => applyAgentDaemonSet(operator.rest, SETTINGS),
      resyncMs: 60_000,
    });
    await operator.start();
  });

  after(async () => {
    await operator?.stop();
    await cp?.stop();
  });

  test("is created with hostIPC, both Multus networks, hostPaths and downward-API identity", async () => {
    await eventually(async () => (await read()) !== undefined, 20_000, "the DaemonSet");
    const ds = (await read()) as V1DaemonSet;
    const pod = ds.spec?.template;
    assert.deepEqual(ds.spec?.selector.matchLabels, AGENT_LABELS);
    assert.equal(pod?.spec?.hostIPC, true);
    assert.equal(
      pod?.metadata?.annotations?.[MULTUS_NETWORKS],
      "mosaic-system/mosaic-a@net1, mosaic-system/mosaic-b@net2",
    );
    assert.deepEqual(
      pod?.spec?.volumes?.map((v) => [v.name, v.hostPath?.path]),
      [
        ["data", "/var/lib/mosaic"],
        ["ipc", "/run/mosaic"],
      ],
    );
    const env = new Map(
      pod?.spec?.containers[0]?.env?.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value]),
    );
    assert.equal(env.get("MOSAIC_NODE_NAME"), "spec.nodeName");
    assert.equal(env.get("MOSAIC_POD_NAME"), "metadata.name");
    assert.equal(env.get("MOSAIC_HEARTBEAT_CHANNEL_DOWN_MS"), "300");
    assert.deepEqual(pod?.spec?.containers[0]?.command?.slice(-2), ["--rebuild-rate", "32MiB"]);
    // The operator rolls agents itself (agent-rollout.ts), by the template's hash.
    assert.equal(ds.spec?.updateStrategy?.type, "OnDelete");
    assert.match(pod?.metadata?.annotations?.[TEMPLATE_HASH] ?? "", /^[0-9a-f]{16}$/);
    assert.deepEqual(pod?.spec?.containers[0]?.resources?.requests, { cpu: "250m", memory: "256Mi" });
  });

  test("an edited DaemonSet is put back, and a deleted one comes back", async () => {
    await eventually(async () => (await read()) !== undefined, 20_000, "the DaemonSet");
    const before = (await read()) as V1DaemonSet;
    await cp.kubectl([
      "set",
      "image",
      "-n",
      SETTINGS.namespace,
      `ds/${SETTINGS.name}`,
      "agent=someone/else:latest",
    ]);
    const repairMs = await eventually(
      async () => imageOf(await read()) === SETTINGS.image,
      20_000,
      "the image to be put back",
    );
    const uid = before.metadata?.uid;
    await cp.kubectl(["delete", "ds", "-n", SETTINGS.namespace, SETTINGS.name]);
    const recreateMs = await eventually(
      async () => {
        const ds = await read();
        return ds !== undefined && ds.metadata?.uid !== uid;
      },
      20_000,
      "the DaemonSet to come back",
    );
    assert.equal(imageOf(await read()), SETTINGS.image);
    // A repaired object is not re-applied for nothing: a quiet spell leaves its generation alone.
    const settled = (await read())?.metadata?.generation;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal((await read())?.metadata?.generation, settled);
    console.log(`# drift repaired in ${Math.round(repairMs)} ms, deletion in ${Math.round(recreateMs)} ms`);
  });
});
