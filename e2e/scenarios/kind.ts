// The scenarios' cluster on kind (e2e/kind/): the chart installed with helm
// on a kind cluster with Multus, each worker with two extra NICs. Faults
// are done where they would be on machines, inside the node's container:
// kill -9 of the container's process (its pid from crictl inspect), `ip link`
// in the agent pod's network namespace (nsenter with that pid), every NIC of
// the node down (its kubelet loses the API, the Node goes NotReady). The
// application runs in a pod on its node (e2e/kind/application.ts).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import { JsonLinesProcess } from "../../node-agent/test/helpers/netns.ts";
import { MOSAIC_NAMESPACE } from "../harness/chart.ts";
import { writeClientTlsDir } from "../harness/client-certificate.ts";
import {
  applicationPod,
  WORKLOAD_CONFIGMAP,
  WORKLOAD_TLS_DIR,
  WORKLOAD_TLS_SECRET,
} from "../kind/application.ts";
import { chartImages, type KindCluster } from "../kind/cluster.ts";
import {
  containerdId,
  crictlInspect,
  kill9,
  linkInPod,
  linksSet,
  nodeNics,
  pidOfInspect,
  ROUTES,
  restoreRoutes,
} from "../kind/commands.ts";
import type { ChaosCluster } from "./chaos-cluster.ts";
import { type LocalChaosOptions, scenarioContext } from "./local.ts";
import { Observer } from "./observe.ts";
import { agentsReadyAndUp, volumeHealthy } from "./readiness.ts";
import type { ScenarioContext } from "./scenarios.ts";

/** The chart's default name of channel A's NetworkAttachmentDefinition (values.yaml networks.channelA.name). */
const CHANNEL_A_NAD = "mosaic-a";
const RELAY = join(import.meta.dirname, "..", "kind", "remote-application.ts");
const WORKLOAD = join(import.meta.dirname, "..", "..", "node-agent", "test", "netns", "workload.ts");
/** helm install to every agent Ready and Up: image already loaded, but Multus and whereabouts per pod. */
const START_MS = 300_000;

export interface KindChaos {
  cluster: ChaosCluster;
  observe: Observer;
}

/** The ChaosCluster of a kind cluster whose chart is installed; `tls` once the client certificate is in its Secret. */
export function kindChaosCluster(
  kind: KindCluster,
  application: { image: string; tls: () => boolean },
): ChaosCluster {
  const namespace = MOSAIC_NAMESPACE;
  const savedRoutes = new Map<string, string>();
  const kubectl: ChaosCluster["kubectl"] = (args, options) => kind.kubectl(args, options);
  /** The host pid of the pod's first container, on its node. */
  const containerPid = async (pod: V1Pod): Promise<{ node: string; pid: number }> => {
    const node = pod.spec?.nodeName;
    if (node === undefined) throw new Error(`pod ${pod.metadata?.name} is not on a node`);
    const id = containerdId(pod.status?.containerStatuses?.[0]?.containerID);
    return { node, pid: pidOfInspect((await kind.exec(node, crictlInspect(id))).stdout) };
  };
  const cluster: ChaosCluster = {
    namespace,
    nodes: kind.plan.workers,
    kubectl,
    killPod: async (name) => {
      const pod = JSON.parse(
        (await kubectl(["get", "pod", "-n", namespace, name, "-o", "json"])).stdout,
      ) as V1Pod;
      const { node, pid } = await containerPid(pod);
      await kind.exec(node, kill9(pid));
    },
    setLink: async (node, link, up) => {
      const pod = await observe.agentPod(node);
      if (pod === undefined) throw new Error(`no agent pod on ${node}`);
      const { pid } = await containerPid(pod);
      await kind.exec(node, linkInPod(pid, link, up));
    },
    setConnected: async (node, connected) => {
      const nics = nodeNics(kind.plan);
      if (!connected) {
        savedRoutes.set(node, (await kind.exec(node, ROUTES)).stdout);
        await kind.exec(node, linksSet(nics, false));
        return;
      }
      await kind.exec(node, linksSet(nics, true));
      const restore = restoreRoutes(savedRoutes.get(node) ?? "", nics);
      if (restore.length > 0) await kind.exec(node, restore);
      savedRoutes.delete(node);
    },
    upgrade: (values) => kind.upgrade(values),
    startApplication: (node, args) =>
      new JsonLinesProcess(RELAY, node, {
        kubeconfig: kind.kubeconfig,
        pod: applicationPod({
          namespace,
          node,
          image: application.image,
          networkA: CHANNEL_A_NAD,
          tls: application.tls(),
        }),
        workload: { ...args, node, ...(application.tls() ? { tlsDir: WORKLOAD_TLS_DIR } : {}) },
      }),
  };
  const observe = new Observer(cluster);
  return cluster;
}

/**
 * After `helm install`: every agent Ready and Up, the application's
 * ConfigMap and client certificate in place, the volume applied and Healthy.
 */
export async function startKindChaos(
  kind: KindCluster,
  o: Omit<LocalChaosOptions, "nodes">,
): Promise<{ chaos: KindChaos; context: ScenarioContext }> {
  const started = performance.now();
  const agentImage = (await chartImages()).find((i) => i.includes("node-agent")) as string;
  let tls = false;
  const cluster = kindChaosCluster(kind, { image: agentImage, tls: () => tls });
  const observe = new Observer(cluster);
  await agentsReadyAndUp(cluster, observe, START_MS);
  await applyFrom(cluster, [
    "create",
    "configmap",
    WORKLOAD_CONFIGMAP,
    `--from-file=workload.ts=${WORKLOAD}`,
  ]);
  const dir = await mkdtemp(join(tmpdir(), "mosaic-kind-tls-"));
  try {
    if (await writeClientTlsDir(cluster.kubectl, cluster.namespace, "e2e-workload", dir)) {
      await applyFrom(cluster, ["create", "secret", "generic", WORKLOAD_TLS_SECRET, `--from-file=${dir}`]);
      tls = true;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await volumeHealthy(cluster, observe, o.volume, 120_000);
  o.log(`kind chaos ready in ${Math.round(performance.now() - started)} ms: agents Up, volume Healthy`);
  return { chaos: { cluster, observe }, context: scenarioContext({ cluster, observe }, o) };
}

/** `kubectl create ... --dry-run=client -o yaml | kubectl apply`: created, or replaced when it exists. */
async function applyFrom(cluster: ChaosCluster, create: string[]): Promise<void> {
  const manifest = await cluster.kubectl([
    ...create,
    "-n",
    cluster.namespace,
    "--dry-run=client",
    "-o",
    "yaml",
  ]);
  await cluster.kubectl(["apply", "-f", "-"], { input: manifest.stdout });
}
