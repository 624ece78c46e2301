// What a chaos scenario needs from a cluster, whatever runs it: kubectl, the
// faults, and an application on a node. The local cluster (local.ts) does
// these with the harness's namespaces and processes; a kind cluster would do
// them with `docker exec` into its node containers. Everything a scenario
// observes goes through kubectl, so one definition serves both.
import type { JsonLinesProcess } from "../../node-agent/test/helpers/netns.ts";
import type { WorkloadArgs } from "../../node-agent/test/netns/workload.ts";

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type Kubectl = (
  args: string[],
  options?: { input?: string; allowFailure?: boolean },
) => Promise<KubectlResult>;

export interface ChaosCluster {
  /** Where the chart is installed. */
  readonly namespace: string;
  /** The nodes, by name. */
  readonly nodes: readonly string[];
  readonly kubectl: Kubectl;
  /** kill -9 of a pod's first container process (its restartPolicy brings it back). */
  killPod(pod: string): Promise<void>;
  /** `ip link set <link> up|down` on a node (net1 and net2 are the agent's channels A and B). */
  setLink(node: string, link: string, up: boolean): Promise<void>;
  /** A node cut off from every network and its kubelet from the API (false), or plugged back in. */
  setConnected(node: string, connected: boolean): Promise<void>;
  /** `helm upgrade` of the release with these values (`key=value`), the rest as installed. */
  upgrade(values: readonly string[]): Promise<void>;
  /** The media application (node-agent/test/netns/workload.ts) on `node`, talking to that node's agent. */
  startApplication(node: string, args: Omit<WorkloadArgs, "node">): JsonLinesProcess;
}
