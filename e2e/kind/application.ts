// The scenarios' application on kind: a pod pinned to its node, from the
// node-agent image (Node 24 and the agent's client library), with the
// workload script mounted from a ConfigMap and the client certificate from a
// Secret, and Multus' net1 on channel A: a macvlan sibling of the agent's
// net1 on the same NIC, which is how it reaches that node's agent (a node
// cannot reach its own pods' macvlan addresses). The workload runs in it by
// `kubectl exec -i`, its JSON lines streamed back (remote-application.ts).
import type { WorkloadArgs } from "../../node-agent/test/netns/workload.ts";

export const WORKLOAD_CONFIGMAP = "e2e-workload";
export const WORKLOAD_TLS_SECRET = "e2e-workload-tls";
/** Where the script sits in the image's tree, so its imports (../../src/...) resolve to the agent's sources. */
export const WORKLOAD_PATH = "/app/node-agent/test/netns/workload.ts";
export const WORKLOAD_TLS_DIR = "/var/run/mosaic-client-tls";

export interface ApplicationPodOptions {
  namespace: string;
  node: string;
  image: string;
  /** The NAD of channel A, as Multus' annotation names it. */
  networkA: string;
  tls: boolean;
}

export function applicationPodName(node: string): string {
  return `e2e-app-${node}`.slice(0, 63).replace(/-+$/, "");
}

export function applicationPod(o: ApplicationPodOptions): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: applicationPodName(o.node),
      namespace: o.namespace,
      labels: { "app.kubernetes.io/name": "mosaic-e2e-application" },
      annotations: { "k8s.v1.cni.cncf.io/networks": o.networkA },
    },
    spec: {
      nodeName: o.node,
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 1,
      // It must stay through a node cut off and back, as the agent does.
      tolerations: [{ operator: "Exists" }],
      containers: [
        {
          name: "application",
          image: o.image,
          imagePullPolicy: "IfNotPresent",
          command: ["sleep", "infinity"],
          // subPath: a plain file, not the ConfigMap's symlink, whose real path would break the imports.
          volumeMounts: [
            { name: "workload", mountPath: WORKLOAD_PATH, subPath: "workload.ts" },
            ...(o.tls ? [{ name: "tls", mountPath: WORKLOAD_TLS_DIR, readOnly: true }] : []),
          ],
        },
      ],
      volumes: [
        { name: "workload", configMap: { name: WORKLOAD_CONFIGMAP } },
        ...(o.tls ? [{ name: "tls", secret: { secretName: WORKLOAD_TLS_SECRET } }] : []),
      ],
    },
  };
}

/** What remote-application.ts takes as its one JSON argument. */
export interface RemoteApplicationArgs {
  kubeconfig: string;
  pod: Record<string, unknown>;
  workload: WorkloadArgs;
}

/** The kubectl lines the relay runs: the pod applied, Ready, then the workload exec'd with stdin attached. */
export function relayCommands(a: RemoteApplicationArgs): {
  apply: string[];
  ready: string[];
  exec: string[];
} {
  const meta = a.pod.metadata as { name: string; namespace: string };
  const base = [`--kubeconfig=${a.kubeconfig}`, "-n", meta.namespace];
  return {
    apply: [...base, "apply", "-f", "-"],
    ready: [...base, "wait", "--for=condition=Ready", `pod/${meta.name}`, "--timeout=180s"],
    exec: [
      ...base,
      "exec",
      "-i",
      meta.name,
      "-c",
      "application",
      "--",
      "node",
      WORKLOAD_PATH,
      JSON.stringify(a.workload),
    ],
  };
}
