// The scenarios' cluster here: the harness's local cluster (nodes as network
// namespaces, the real control plane, the harness playing kubelet and
// Multus), `helm install` of the real chart with failure timings short
// enough for a test, and a StripedVolume applied with kubectl and Healthy.
// Faults are the harness's: `ip link` in a node's namespace, a node's NICs
// and kubelet Lease cut, kill -9 of a container's process by pid.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JsonLinesProcess } from "../../node-agent/test/helpers/netns.ts";
import { installChart, MOSAIC_NAMESPACE, upgradeChart } from "../harness/chart.ts";
import { writeClientTlsDir } from "../harness/client-certificate.ts";
import { LocalCluster } from "../harness/local-cluster.ts";
import type { ChaosCluster } from "./chaos-cluster.ts";
import { Observer } from "./observe.ts";
import { agentsReadyAndUp, type ScenarioVolume, volumeHealthy } from "./readiness.ts";
import type { ScenarioContext } from "./scenarios.ts";

const WORKLOAD = fileURLToPath(new URL("../../node-agent/test/netns/workload.ts", import.meta.url));
/** helm install to every agent Ready and every ClusterNode Up: operator start, DaemonSet, pods, probes. */
const START_MS = 240_000;

export interface LocalChaosOptions {
  nodes?: number;
  /** Down → Lost grace of the agents and the operator. */
  outGraceMs: number;
  /** Each agent's rebuild rate (slow enough that a rebuild is seen, and an operator killed during it). */
  rebuildRate: string;
  volume: ScenarioVolume;
  log(line: string): void;
}

/** What the test and `npm run e2e` use: 3 nodes, an 8 s grace, a rebuild slow enough to watch. */
export const LOCAL_CHAOS_DEFAULTS: Omit<LocalChaosOptions, "log"> = {
  nodes: 3,
  outGraceMs: 8_000,
  rebuildRate: "8MiB",
  // Two copies on three nodes: with one node gone the other two still hold both, so writes go on.
  volume: { name: "clips", chunkSize: "1Mi", redundancy: { replicas: 2 } },
};

/** The application's shape, on any cluster: 12 clips of 4 MiB, 2 readers and a writer, on the first node. */
export function scenarioContext(
  chaos: { cluster: ChaosCluster; observe: Observer },
  o: Pick<LocalChaosOptions, "volume" | "outGraceMs" | "log">,
): ScenarioContext {
  return {
    cluster: chaos.cluster,
    observe: chaos.observe,
    volume: o.volume.name,
    clientNode: chaos.cluster.nodes[0] as string,
    outGraceMs: o.outGraceMs,
    application: { files: 12, fileBytes: 4 * 1024 * 1024, readers: 2, writers: 1 },
    log: o.log,
  };
}

/** The node each scenario breaks: never the client's, and spread over the others. */
export function victimOf(nodes: readonly string[], scenarioIndex: number): string {
  const others = nodes.slice(1);
  return others[scenarioIndex % others.length] as string;
}

export interface LocalChaos {
  cluster: ChaosCluster;
  observe: Observer;
  local: LocalCluster;
  stop(): Promise<void>;
}

export async function startLocalChaos(o: LocalChaosOptions): Promise<LocalChaos> {
  const started = performance.now();
  const local = await LocalCluster.start({ nodes: o.nodes ?? 3 });
  try {
    // With the chart's mutual TLS, the application needs a client certificate; made once the CA exists.
    let clientTlsDir: string | undefined;
    const cluster: ChaosCluster = {
      namespace: MOSAIC_NAMESPACE,
      nodes: local.network.nodes.map((n) => n.name),
      kubectl: (args, options) => local.cp.kubectl(args, options),
      killPod: async (pod) => {
        local.killContainer(MOSAIC_NAMESPACE, pod);
      },
      setLink: (node, link, up) => local.setLink(node, link, up),
      setConnected: (node, connected) => local.setConnected(node, connected),
      upgrade: async (values) => {
        await upgradeChart(local, values);
      },
      startApplication: (node, args) =>
        new JsonLinesProcess(
          WORKLOAD,
          node,
          { ...args, node, ...(clientTlsDir === undefined ? {} : { tlsDir: clientTlsDir }) },
          local.network.node(node).ns,
        ),
    };
    const observe = new Observer(cluster);
    await installChart(local, [`heartbeat.outGraceMs=${o.outGraceMs}`, `agent.rebuildRate=${o.rebuildRate}`]);
    await agentsReadyAndUp(cluster, observe, START_MS);
    const tlsDir = join(local.dir, "client-tls");
    if (await writeClientTlsDir(cluster.kubectl, MOSAIC_NAMESPACE, "e2e-workload", tlsDir))
      clientTlsDir = tlsDir;
    await volumeHealthy(cluster, observe, o.volume, 60_000);
    o.log(
      `local cluster of ${cluster.nodes.length} nodes up, chart installed, volume Healthy in ${Math.round(performance.now() - started)} ms`,
    );
    return { cluster, observe, local, stop: () => local.stop() };
  } catch (error) {
    await local.stop();
    throw error;
  }
}
