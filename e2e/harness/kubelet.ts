// The kubelet of every harness node: one watch per node of the pods bound to
// it (fieldSelector spec.nodeName, as a kubelet watches), each pod handed to
// a PodRunner; a pod marked for deletion has its containers stopped and is
// then deleted for good (grace 0, on its uid), as a kubelet confirms a
// termination. A pod that finished before the harness saw it is left alone.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { ResilientInformer } from "../../operator/src/framework/informer.ts";
import type { KubeRest } from "../../operator/src/framework/kube-rest.ts";
import { type Resource, splitKey } from "../../operator/src/framework/resources.ts";
import type { NodeHost, NodeNetwork } from "./network.ts";
import { PodRunner } from "./pod-runner.ts";
import type { Images } from "./pod-spec.ts";
import { BACKOFF } from "./pod-status.ts";

const PODS: Resource = { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true };

export interface KubeletOptions {
  kc: KubeConfig;
  rest: KubeRest;
  network: NodeNetwork;
  /** Node roots go to <dir>/nodes/<node>, pods to <dir>/pods/<uid>. */
  dir: string;
  images: Images;
  log: Logger;
  /** CrashLoopBackOff timing (kubelet's 10 s doubling to 5 min by default). */
  backoff?: { baseMs: number; maxMs: number };
}

export class Kubelet {
  readonly #o: KubeletOptions;
  readonly #log: Logger;
  readonly #informers = new Map<string, ResilientInformer<V1Pod>>();
  readonly #runners = new Map<string, PodRunner>();
  readonly #deleting = new Set<string>();
  readonly #core: CoreV1Api;
  #apiServer: { host: string; port: number } | undefined;

  constructor(options: KubeletOptions) {
    this.#o = options;
    this.#core = options.kc.makeApiClient(CoreV1Api);
    this.#log = options.log.child({ component: "kubelet" });
  }

  async start(): Promise<void> {
    this.#apiServer = await kubernetesServiceEndpoint(this.#o.rest);
    for (const node of this.#o.network.nodes) {
      await mkdir(this.nodeRoot(node.name), { recursive: true });
      const informer: ResilientInformer<V1Pod> = new ResilientInformer<V1Pod>({
        kc: this.#o.kc,
        rest: this.#o.rest,
        resource: PODS,
        fieldSelector: `spec.nodeName=${node.name}`,
        onKey: (key) => this.#sync(node, informer, key),
        log: this.#log,
        resyncMs: 30_000,
      });
      this.#informers.set(node.name, informer);
      await informer.start();
    }
  }

  /** Stops watching, then ends every pod's containers (SIGTERM, SIGKILL after `graceMs`) and removes their attachments. */
  async stop(graceMs = 5_000): Promise<void> {
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
    this.#informers.clear();
    await Promise.all([...this.#runners.values()].map((r) => r.terminate(graceMs)));
    this.#runners.clear();
  }

  nodeRoot(node: string): string {
    return join(this.#o.dir, "nodes", node);
  }

  /** The runner of a pod this kubelet runs now. */
  runner(namespace: string, name: string): PodRunner | undefined {
    return this.#runners.get(`${namespace}/${name}`);
  }

  /** Pids of every container running now, on every node. */
  pids(): number[] {
    return [...this.#runners.values()].flatMap((r) => r.pids());
  }

  #sync(node: NodeHost, informer: ResilientInformer<V1Pod>, key: string): void {
    const { name, namespace } = splitKey(key);
    const pod = informer.get(name, namespace);
    let runner = this.#runners.get(key);
    if (runner !== undefined && (pod === undefined || pod.metadata?.uid !== runner.uid)) {
      // Deleted without us (forced), or replaced by a new pod of the same name.
      this.#end(key, runner, graceOf(runner.pod));
      runner = undefined;
    }
    if (pod === undefined) return;
    if (runner === undefined) {
      if (pod.metadata?.deletionTimestamp !== undefined) {
        void this.#confirmDeletion(pod);
        return;
      }
      if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") return;
      if (this.#apiServer === undefined) return;
      runner = new PodRunner(pod, {
        rest: this.#o.rest,
        node,
        nodeRoot: this.nodeRoot(node.name),
        podDir: join(this.#o.dir, "pods", pod.metadata?.uid ?? name),
        images: this.#o.images,
        apiServer: this.#apiServer,
        backoff: this.#o.backoff ?? BACKOFF,
        log: this.#log,
      });
      this.#runners.set(key, runner);
      void runner.run();
      return;
    }
    runner.update(pod);
    if (pod.metadata?.deletionTimestamp !== undefined) {
      const ending = this.#end(key, runner, graceOf(pod));
      void ending.then(() => this.#confirmDeletion(pod));
    }
  }

  #end(key: string, runner: PodRunner, graceMs: number): Promise<void> {
    return runner.terminate(graceMs).then(() => {
      if (this.#runners.get(key) === runner) this.#runners.delete(key);
    });
  }

  /**
   * DELETE with grace 0 on the pod's uid: its containers are gone, so the API object may go. Through
   * client-node's CoreV1Api, which sends DeleteOptions as a body with its length (Node drops a DELETE's
   * body sent without one, and the grace period with it).
   */
  async #confirmDeletion(pod: V1Pod): Promise<void> {
    const uid = pod.metadata?.uid ?? "";
    if (this.#deleting.has(uid)) return;
    this.#deleting.add(uid);
    const name = pod.metadata?.name ?? "";
    const namespace = pod.metadata?.namespace ?? "default";
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        await this.#core.deleteNamespacedPod({
          name,
          namespace,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid } },
        });
        this.#log.info({ pod: `${namespace}/${name}` }, "pod deleted");
        return;
      } catch (error) {
        // Gone already, or replaced by another pod of the same name: nothing of ours to delete.
        const code = (error as { code?: number }).code;
        if (code === 404 || code === 409) return;
        this.#log.warn({ err: (error as Error).message, attempt }, "pod not deleted yet");
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      }
    }
  }
}

/** The grace a pod's deletion gave it (or its spec's), in ms. */
function graceOf(pod: V1Pod): number {
  const seconds = pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
  return seconds * 1_000;
}

/** kube-apiserver's address, from the `kubernetes` Service's EndpointSlice: where kube-proxy would send its ClusterIP. */
async function kubernetesServiceEndpoint(rest: KubeRest): Promise<{ host: string; port: number }> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const slice = await rest
      .get<{ endpoints?: { addresses: string[] }[]; ports?: { name?: string; port?: number }[] }>(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",
      )
      .catch(() => undefined);
    const host = slice?.endpoints?.[0]?.addresses[0];
    const port = slice?.ports?.find((p) => p.name === "https")?.port;
    if (host !== undefined && port !== undefined) return { host, port };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("the kubernetes Service has no EndpointSlice after 10 s");
}
