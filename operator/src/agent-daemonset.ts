// The node-agent DaemonSet the operator keeps in place: a pure function of
// the operator's settings, so drift is a comparison and a test needs no
// cluster. Each agent pod:
//   - shares the node's IPC namespace (hostIPC) so applications on the node
//     reach its shared-memory rings, and the IPC directory (FIFOs) by hostPath;
//   - keeps its chunks in a hostPath directory, so a new pod finds them;
//   - gets two extra interfaces from Multus, net1 and net2, for channel A and B;
//   - learns who it is from the downward API.
import type { V1DaemonSet } from "@kubernetes/client-node";
import { READINESS_SERVICE } from "../../node-agent/src/rpc/readiness-service.ts";
import { AGENT_LABELS } from "./api/agents.ts";

export interface AgentDaemonSetSettings {
  namespace: string;
  /** Name of the DaemonSet and prefix of its pods. */
  name: string;
  image: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  serviceAccountName: string;
  /** NetworkAttachmentDefinition names ([namespace/]name) for channel A and channel B. */
  networks: { channelA: string; channelB: string };
  hostPaths: { data: string; ipc: string };
  /** gRPC port of both channels; heartbeats use the same number over UDP. */
  port: number;
  nodeSelector?: Record<string, string>;
  tolerations?: NonNullable<NonNullable<V1DaemonSet["spec"]>["template"]["spec"]>["tolerations"];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  /** Heartbeat timings handed to every agent. */
  heartbeat?: { intervalMs?: number; channelDownMs?: number; outGraceMs?: number };
  /** Each agent's rebuild rate, as `mosaic agent --rebuild-rate` takes it (e.g. 64MiB); the agent's default when absent. */
  rebuildRate?: string;
}

export { AGENT_LABELS };
export const MULTUS_NETWORKS = "k8s.v1.cni.cncf.io/networks";

export function agentDaemonSet(s: AgentDaemonSetSettings): V1DaemonSet {
  const env = [
    { name: "MOSAIC_NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
    { name: "MOSAIC_POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    { name: "MOSAIC_POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    { name: "MOSAIC_POD_UID", valueFrom: { fieldRef: { fieldPath: "metadata.uid" } } },
    // Where kubelet's readiness probe dials: the agent serves its health there too (kube/probe-server.ts).
    { name: "MOSAIC_POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    // Multus writes the interfaces it attached, with their addresses, into this annotation.
    {
      name: "MOSAIC_NETWORK_STATUS",
      valueFrom: { fieldRef: { fieldPath: "metadata.annotations['k8s.v1.cni.cncf.io/network-status']" } },
    },
    { name: "MOSAIC_PORT", value: String(s.port) },
    ...Object.entries(s.heartbeat ?? {}).map(([key, value]) => ({
      name: `MOSAIC_HEARTBEAT_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`,
      value: String(value),
    })),
  ];
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: s.name, namespace: s.namespace, labels: { ...AGENT_LABELS } },
    spec: {
      selector: { matchLabels: { ...AGENT_LABELS } },
      // One node at a time: a second agent down at once would cost redundancy.
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: {
          labels: { ...AGENT_LABELS },
          annotations: { [MULTUS_NETWORKS]: `${s.networks.channelA}@net1, ${s.networks.channelB}@net2` },
        },
        spec: {
          serviceAccountName: s.serviceAccountName,
          hostIPC: true,
          ...(s.nodeSelector === undefined ? {} : { nodeSelector: s.nodeSelector }),
          ...(s.tolerations === undefined ? {} : { tolerations: s.tolerations }),
          // In-flight transfers get time to finish; the agent stops taking new ones at once.
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: "agent",
              image: s.image,
              imagePullPolicy: s.imagePullPolicy ?? "IfNotPresent",
              command: [
                "mosaic",
                "agent",
                "--kubernetes",
                "--data-dir",
                "/var/lib/mosaic",
                "--ipc-dir",
                "/run/mosaic",
                ...(s.rebuildRate === undefined ? [] : ["--rebuild-rate", s.rebuildRate]),
              ],
              env,
              ports: [{ name: "grpc", containerPort: s.port, protocol: "TCP" }],
              // grpc.health.v1.Health/Check on the pod IP: SERVING once the agent is up in the map it holds.
              readinessProbe: {
                grpc: {
                  port: s.port,
                  ...(READINESS_SERVICE === "" ? {} : { service: READINESS_SERVICE }),
                },
                periodSeconds: 2,
                failureThreshold: 2,
              },
              ...(s.resources === undefined ? {} : { resources: s.resources }),
              volumeMounts: [
                { name: "data", mountPath: "/var/lib/mosaic" },
                { name: "ipc", mountPath: "/run/mosaic" },
              ],
            },
          ],
          volumes: [
            { name: "data", hostPath: { path: s.hostPaths.data, type: "DirectoryOrCreate" } },
            { name: "ipc", hostPath: { path: s.hostPaths.ipc, type: "DirectoryOrCreate" } },
          ],
        },
      },
    },
  };
}
