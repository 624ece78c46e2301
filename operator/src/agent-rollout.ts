// Rolling the node agents to a new DaemonSet template, one node at a time,
// and only while the data can spare a node: the DaemonSet is OnDelete, and
// this deletes one outdated agent pod when every agent is Ready and every
// StripedVolume Healthy, then waits for its replacement to be Ready and the
// volumes Healthy again before the next. A pod is outdated when its
// template-hash annotation is not the DaemonSet's. nextRollout is pure;
// rollAgents reads the API and acts. Each deletion is recorded as an Event
// on the DaemonSet naming the volumes' phases it was decided on, so a user
// (and the e2e rollout check) sees what the operator saw, not a later sample.
import type { V1DaemonSet, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { TEMPLATE_HASH } from "./agent-daemonset.ts";
import { AGENT_SELECTOR } from "./api/agents.ts";
import type { StripedVolume } from "./api/types.ts";
import { recordEvent } from "./framework/controller.ts";
import type { KubeRest } from "./framework/kube-rest.ts";
import { collectionPath, DAEMON_SETS, objectPath, STRIPED_VOLUMES } from "./framework/resources.ts";

export interface AgentPodView {
  name: string;
  node: string;
  hash: string | undefined;
  ready: boolean;
  deleting: boolean;
}

export interface VolumePhase {
  name: string;
  phase: string | undefined;
}

export type RolloutStep =
  | { kind: "done" }
  | { kind: "wait"; reason: string }
  /** `volumes`: the phases the deletion was decided on. */
  | { kind: "delete"; pod: string; node: string; left: number; volumes: readonly VolumePhase[] };

/** The reason of the Event recorded for each agent pod the rollout deletes. */
export const ROLLING_AGENT = "RollingAgent";

export function nextRollout(
  want: string,
  pods: readonly AgentPodView[],
  volumes: readonly VolumePhase[],
): RolloutStep {
  const outdated = pods.filter((p) => p.hash !== want).sort((a, b) => a.node.localeCompare(b.node));
  if (outdated.length === 0) return { kind: "done" };
  const going = pods.find((p) => p.deleting);
  if (going !== undefined) return { kind: "wait", reason: `the agent on ${going.node} is being replaced` };
  const notReady = pods.find((p) => !p.ready);
  if (notReady !== undefined) return { kind: "wait", reason: `the agent on ${notReady.node} is not Ready` };
  const unhealthy = volumes.find((v) => v.phase !== "Healthy");
  if (unhealthy !== undefined)
    return { kind: "wait", reason: `volume ${unhealthy.name} is ${unhealthy.phase ?? "not reported yet"}` };
  const next = outdated[0] as AgentPodView;
  return { kind: "delete", pod: next.name, node: next.node, left: outdated.length, volumes };
}

function viewOf(pod: V1Pod): AgentPodView {
  return {
    name: pod.metadata?.name ?? "",
    node: pod.spec?.nodeName ?? "",
    hash: pod.metadata?.annotations?.[TEMPLATE_HASH],
    ready:
      pod.status?.phase === "Running" &&
      pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true,
    deleting: pod.metadata?.deletionTimestamp !== undefined,
  };
}

/** One step of the rollout: reads the DaemonSet, its pods and the volumes; deletes at most one pod. */
export async function rollAgents(
  rest: KubeRest,
  daemonSet: { namespace: string; name: string },
  log: Logger,
): Promise<RolloutStep> {
  const ds = await rest.get<V1DaemonSet>(objectPath(DAEMON_SETS, daemonSet.name, daemonSet.namespace));
  const want = ds.spec?.template.metadata?.annotations?.[TEMPLATE_HASH];
  if (want === undefined) return { kind: "wait", reason: "the DaemonSet has no template hash yet" };
  const pods = await rest.get<{ items: V1Pod[] }>(
    `/api/v1/namespaces/${daemonSet.namespace}/pods?labelSelector=${encodeURIComponent(AGENT_SELECTOR)}`,
  );
  const volumes = await rest.get<{ items: StripedVolume[] }>(collectionPath(STRIPED_VOLUMES));
  const step = nextRollout(
    want,
    pods.items.map(viewOf),
    volumes.items.map((v) => ({ name: v.metadata?.name ?? "", phase: v.status?.phase })),
  );
  if (step.kind === "delete") {
    log.info(
      { pod: step.pod, node: step.node, left: step.left, template: want },
      "rolling the agent on a node",
    );
    const phases = step.volumes.map((v) => `${v.name} ${v.phase}`).join(", ") || "no volumes";
    await recordEvent(
      rest,
      { component: "mosaic-operator", resource: DAEMON_SETS, object: ds, log },
      "Normal",
      ROLLING_AGENT,
      `deleting ${step.pod} on ${step.node} (${step.left} outdated); every agent Ready; volumes: ${phases}`,
    );
    await rest.delete(`/api/v1/namespaces/${daemonSet.namespace}/pods/${step.pod}`);
  } else if (step.kind === "wait") {
    log.debug({ reason: step.reason }, "agent rollout waiting");
  }
  return step;
}
