// What the scenarios read from the cluster, all through kubectl: agent and
// operator pods, ClusterNodes, a StripedVolume's status, the operator's
// leader. Each read is one kubectl call, so a scenario's timings are the
// API's view of the cluster, as a user's `kubectl get` would see it.
import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import { AGENT_SELECTOR } from "../../operator/src/api/agents.ts";
import type { ClusterNode, StripedVolume, StripedVolumeStatus } from "../../operator/src/api/types.ts";
import { podOfIdentity } from "../../operator/src/framework/leader-election.ts";
import type { ChaosCluster } from "./chaos-cluster.ts";

export const OPERATOR_SELECTOR = "app.kubernetes.io/name=mosaic-operator";
const OPERATOR_LEASE = "mosaic-operator";

export class Observer {
  readonly #c: ChaosCluster;

  constructor(cluster: ChaosCluster) {
    this.#c = cluster;
  }

  async json<T>(args: string[]): Promise<T> {
    return JSON.parse((await this.#c.kubectl([...args, "-o", "json"])).stdout) as T;
  }

  async pods(selector: string): Promise<V1Pod[]> {
    return (await this.json<{ items: V1Pod[] }>(["get", "pods", "-n", this.#c.namespace, "-l", selector]))
      .items;
  }

  /** The agent pod on `node` that is not being deleted, if any. */
  async agentPod(node: string): Promise<V1Pod | undefined> {
    return (await this.agentPods([node]))[0];
  }

  /** The agent pod on each of `nodes` that is not being deleted, from one kubectl call. */
  async agentPods(nodes: readonly string[]): Promise<(V1Pod | undefined)[]> {
    const all = await this.pods(AGENT_SELECTOR);
    return nodes.map((node) =>
      all.find((p) => p.spec?.nodeName === node && p.metadata?.deletionTimestamp === undefined),
    );
  }

  async clusterNode(node: string): Promise<ClusterNode | undefined> {
    const r = await this.#c.kubectl(["get", "cn", node, "-o", "json"], { allowFailure: true });
    return r.code === 0 ? (JSON.parse(r.stdout) as ClusterNode) : undefined;
  }

  async volume(name: string): Promise<StripedVolumeStatus | undefined> {
    return (await this.json<StripedVolume>(["get", "sv", name])).status;
  }

  /** The operator leading now: its pod, and the identity of the process in it that holds the Lease. */
  async leader(): Promise<{ pod: string; identity: string } | undefined> {
    const r = await this.#c.kubectl(["get", "lease", "-n", this.#c.namespace, OPERATOR_LEASE, "-o", "json"], {
      allowFailure: true,
    });
    const identity =
      r.code === 0 ? (JSON.parse(r.stdout).spec?.holderIdentity as string | undefined) : undefined;
    return identity === undefined ? undefined : { pod: podOfIdentity(identity), identity };
  }

  async nodeReady(node: string): Promise<string | undefined> {
    const n = await this.json<{ status?: { conditions?: { type: string; status: string }[] } }>([
      "get",
      "node",
      node,
    ]);
    return n.status?.conditions?.find((c) => c.type === "Ready")?.status;
  }

  /** The Events in the Mosaic namespace with `reason`, as the API has them. */
  async events(reason: string): Promise<CoreV1Event[]> {
    return (
      await this.json<{ items: CoreV1Event[] }>([
        "get",
        "events",
        "-n",
        this.#c.namespace,
        "--field-selector",
        `reason=${reason}`,
      ])
    ).items;
  }

  /** `kubectl get <what>` as a user sees it, for a scenario's report. */
  async table(args: string[]): Promise<string> {
    return (await this.#c.kubectl(["get", ...args])).stdout.trimEnd();
  }
}

export function podReady(pod: V1Pod | undefined): boolean {
  return (
    pod?.status?.phase === "Running" &&
    pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true
  );
}

/** The agent's restart count as the kubelet reports it. */
export function restarts(pod: V1Pod | undefined): number {
  return pod?.status?.containerStatuses?.[0]?.restartCount ?? 0;
}
