// The node-agent DaemonSet the operator keeps in place: a pure function of
// the operator's settings, so drift is a comparison and a test needs no
// cluster. Each agent pod:
//   - shares the node's IPC namespace (hostIPC) so applications on the node
//     reach its shared-memory rings, and the IPC directory (FIFOs) by hostPath;
//   - keeps its chunks in a hostPath directory, so a new pod finds them;
//   - gets two extra interfaces from Multus, net1 and net2, for channel A and B;
//   - learns who it is from the downward API.
import { createHash } from "node:crypto";
import type { V1DaemonSet } from "@kubernetes/client-node";
import { AGENT_METRICS_PORT } from "../../node-agent/src/metrics/metrics-http.ts";
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
  /** Port of each agent's HTTP gateway on its pod IP (`mosaic agent --http`); none: no gateway. */
  gatewayPort?: number;
  /** Mutual TLS between agents: each fills an emptyDir through a CSR the operator signs (agent-certificates.ts). */
  tls?: { enabled: boolean };
  /** Each agent's rebuild rate, as `mosaic agent --rebuild-rate` takes it (e.g. 64MiB); the agent's default when absent. */
  rebuildRate?: string;
}

export { AGENT_LABELS };
export const MULTUS_NETWORKS = "k8s.v1.cni.cncf.io/networks";
/** Where each agent keeps its TLS directory (an emptyDir). */
export const AGENT_TLS_DIR = "/run/mosaic-tls";

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
  const ds: V1DaemonSet = {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: s.name, namespace: s.namespace, labels: { ...AGENT_LABELS } },
    spec: {
      selector: { matchLabels: { ...AGENT_LABELS } },
      // The operator rolls agents itself (agent-rollout.ts): one node at a time, and only while
      // every volume is Healthy, which the DaemonSet controller's RollingUpdate cannot wait for.
      updateStrategy: { type: "OnDelete" },
      template: {
        metadata: {
          labels: { ...AGENT_LABELS },
          annotations: {
            [MULTUS_NETWORKS]: `${s.networks.channelA}@net1, ${s.networks.channelB}@net2`,
            // Annotation-based Prometheus scraping finds the agent's metrics on the pod IP; a PodMonitor uses the port's name.
            "prometheus.io/scrape": "true",
            "prometheus.io/port": String(AGENT_METRICS_PORT),
            "prometheus.io/path": "/metrics",
          },
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
                ...(s.tls?.enabled === true ? ["--tls-dir", AGENT_TLS_DIR] : []),
                ...(s.rebuildRate === undefined ? [] : ["--rebuild-rate", s.rebuildRate]),
                // On the pod network, where players and the gateway Service reach it; kubelet expands $(…).
                ...(s.gatewayPort === undefined ? [] : ["--http", `$(MOSAIC_POD_IP):${s.gatewayPort}`]),
              ],
              env,
              ports: [
                { name: "grpc", containerPort: s.port, protocol: "TCP" },
                { name: "metrics", containerPort: AGENT_METRICS_PORT, protocol: "TCP" },
                ...(s.gatewayPort === undefined
                  ? []
                  : [{ name: "http", containerPort: s.gatewayPort, protocol: "TCP" }]),
              ],
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
                ...(s.tls?.enabled === true ? [{ name: "tls", mountPath: AGENT_TLS_DIR }] : []),
              ],
            },
          ],
          volumes: [
            { name: "data", hostPath: { path: s.hostPaths.data, type: "DirectoryOrCreate" } },
            { name: "ipc", hostPath: { path: s.hostPaths.ipc, type: "DirectoryOrCreate" } },
            // The key is made in the pod and dies with it: memory, never the node's disk.
            ...(s.tls?.enabled === true ? [{ name: "tls", emptyDir: { medium: "Memory" } }] : []),
          ],
        },
      },
    },
  };
  // The template's own digest names its revision: pods that do not carry it are the ones to roll.
  const template = ds.spec?.template as NonNullable<V1DaemonSet["spec"]>["template"];
  template.metadata = {
    ...template.metadata,
    annotations: { ...template.metadata?.annotations, [TEMPLATE_HASH]: templateHash(template) },
  };
  return ds;
}

/** The pod template annotation carrying templateHash(): the revision an agent pod was made from. */
export const TEMPLATE_HASH = "mosaic.dev/template-hash";

export function templateHash(template: NonNullable<V1DaemonSet["spec"]>["template"]): string {
  return createHash("sha256").update(JSON.stringify(template)).digest("hex").slice(0, 16);
}
