// The kubelet's node registration and heartbeat: a Node object per harness
// node (Ready, capacity, addresses, as a kubelet registers it) and its Lease
// in kube-node-lease, renewed every 10 s as a kubelet renews it; the node
// lifecycle controller judges a node by that Lease. The harness acts with the
// cluster administrator's credentials, not a kubelet's system:node identity.
import type { V1Node } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { isConflict, isNotFound, type KubeRest } from "../../operator/src/framework/kube-rest.ts";
import type { NodeHost } from "./network.ts";

/** What each node offers the scheduler. */
export interface NodeCapacity {
  cpu: string;
  memory: string;
  pods: string;
  "ephemeral-storage": string;
}

export const DEFAULT_CAPACITY: NodeCapacity = {
  cpu: "4",
  memory: "8Gi",
  pods: "110",
  "ephemeral-storage": "50Gi",
};

/** kubelet's defaults: a 40 s Lease renewed every 10 s. */
const LEASE_SECONDS = 40;
const RENEW_MS = 10_000;

/** The Node a kubelet on `host` registers: Ready, its capacity, its address and the harness as its runtime. */
export function nodeObject(host: NodeHost, capacity: NodeCapacity, now: Date): V1Node {
  const time = now.toISOString();
  const condition = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: time as unknown as Date,
    lastTransitionTime: time as unknown as Date,
  });
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: host.name,
      labels: {
        "kubernetes.io/hostname": host.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": process.arch === "x64" ? "amd64" : process.arch,
      },
    },
    spec: {},
    status: {
      capacity: { ...capacity },
      allocatable: { ...capacity },
      addresses: [
        { type: "InternalIP", address: host.ip },
        { type: "Hostname", address: host.name },
      ],
      conditions: [
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "harness node"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "harness node"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "harness node"),
        condition("Ready", "True", "KubeletReady", "the e2e harness runs this node's pods"),
      ],
      nodeInfo: {
        architecture: process.arch === "x64" ? "amd64" : process.arch,
        bootID: "",
        containerRuntimeVersion: "mosaic-harness://1",
        kernelVersion: "",
        kubeProxyVersion: "",
        kubeletVersion: "v1.36.3",
        machineID: "",
        operatingSystem: "linux",
        osImage: `network namespace ${host.ns}`,
        systemUUID: "",
      },
    },
  };
}

/** Registers the nodes and keeps their Leases renewed until stop(). */
export class NodeRegistrar {
  readonly #rest: KubeRest;
  readonly #hosts: readonly NodeHost[];
  readonly #capacity: NodeCapacity;
  readonly #log: Logger;
  /** Nodes whose kubelet is cut off: their Leases lapse and the node lifecycle controller marks them NotReady. */
  readonly #silent = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: { rest: KubeRest; hosts: readonly NodeHost[]; capacity?: NodeCapacity; log: Logger }) {
    this.#rest = options.rest;
    this.#hosts = options.hosts;
    this.#capacity = options.capacity ?? DEFAULT_CAPACITY;
    this.#log = options.log.child({ component: "nodes" });
  }

  async start(): Promise<void> {
    for (const host of this.#hosts) {
      const node = nodeObject(host, this.#capacity, new Date());
      await this.#rest.create("/api/v1/nodes", node);
      // Status on create is kept for Nodes today; set it through the subresource all the same, as a kubelet does.
      await this.#rest.patch(`/api/v1/nodes/${host.name}/status`, "merge", { status: node.status });
      await this.#renew(host);
    }
    this.#timer = setInterval(() => {
      for (const host of this.#hosts.filter((h) => !this.#silent.has(h.name)))
        this.#renew(host).catch((error: unknown) =>
          this.#log.warn({ node: host.name, err: (error as Error).message }, "node lease not renewed"),
        );
    }, RENEW_MS);
  }

  /** Stops (false) or resumes (true) renewing `node`'s Lease, as its kubelet losing and regaining the API would. */
  async setReachable(node: string, reachable: boolean): Promise<void> {
    if (reachable) {
      this.#silent.delete(node);
      const host = this.#hosts.find((h) => h.name === node);
      if (host === undefined) return;
      // Back in touch, a kubelet posts its status (Ready again) and renews its Lease.
      const status = nodeObject(host, this.#capacity, new Date()).status;
      await this.#rest.patch(`/api/v1/nodes/${node}/status`, "merge", { status });
      await this.#renew(host);
    } else this.#silent.add(node);
  }

  /** Stops renewing; the Nodes stay (a kubelet that stops does not delete its Node). */
  stop(): void {
    clearInterval(this.#timer);
  }

  async #renew(host: NodeHost): Promise<void> {
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${host.name}`;
    const spec = {
      holderIdentity: host.name,
      leaseDurationSeconds: LEASE_SECONDS,
      renewTime: new Date().toISOString().replace("Z", "000Z"),
    };
    try {
      await this.#rest.patch(path, "merge", { spec });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      try {
        await this.#rest.create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: host.name, namespace: "kube-node-lease" },
          spec,
        });
      } catch (createError) {
        if (!isConflict(createError)) throw createError;
      }
    }
  }
}
