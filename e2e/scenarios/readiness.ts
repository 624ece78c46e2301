// The two waits every cluster the scenarios run on goes through after
// `helm install`, whatever runs it (local.ts, kind.ts): every agent Ready
// and its ClusterNode Up on channel A; then the volume applied with kubectl
// and Healthy.
import { AGENT_SELECTOR } from "../../operator/src/api/agents.ts";
import type { ChaosCluster } from "./chaos-cluster.ts";
import { type Observer, podReady } from "./observe.ts";
import { within } from "./scenarios.ts";

export interface ScenarioVolume {
  name: string;
  chunkSize: string;
  redundancy: Record<string, unknown>;
}

export async function agentsReadyAndUp(
  cluster: ChaosCluster,
  observe: Observer,
  timeoutMs: number,
): Promise<void> {
  await within(timeoutMs, "an agent Ready and Up on every node", async () => {
    const agents = await observe.pods(AGENT_SELECTOR);
    if (agents.filter(podReady).length !== cluster.nodes.length) return false;
    const cns = await Promise.all(cluster.nodes.map((n) => observe.clusterNode(n)));
    return cns.every((cn) => cn?.status?.phase === "Up" && cn.status.activeChannel === "A");
  });
}

export async function volumeHealthy(
  cluster: ChaosCluster,
  observe: Observer,
  volume: ScenarioVolume,
  timeoutMs: number,
): Promise<void> {
  const object = {
    apiVersion: "mosaic.dev/v1alpha1",
    kind: "StripedVolume",
    metadata: { name: volume.name },
    spec: { chunkSize: volume.chunkSize, redundancy: volume.redundancy, capacity: "100Gi" },
  };
  await cluster.kubectl(["apply", "-f", "-"], { input: JSON.stringify(object) });
  await within(timeoutMs, `volume ${volume.name} Healthy`, async () => {
    return (await observe.volume(volume.name))?.phase === "Healthy";
  });
}
