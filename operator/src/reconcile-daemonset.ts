// Makes the node-agent DaemonSet what the settings declare. Server-side apply
// with the operator as field manager: one call creates it if deleted, puts
// back any field someone edited, and changes nothing (no new generation, so
// no rollout) when it already matches.
import { type AgentDaemonSetSettings, agentDaemonSet } from "./agent-daemonset.ts";
import type { KubeRest } from "./framework/kube-rest.ts";
import { DAEMON_SETS, objectPath } from "./framework/resources.ts";

export const FIELD_MANAGER = "mosaic-operator";

export async function applyAgentDaemonSet(rest: KubeRest, settings: AgentDaemonSetSettings): Promise<void> {
  const desired = agentDaemonSet(settings);
  const path = objectPath(DAEMON_SETS, settings.name, settings.namespace);
  await rest.patch(`${path}?fieldManager=${FIELD_MANAGER}&force=true`, "apply", desired);
}
