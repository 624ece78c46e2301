// Keeps one object as declared, whatever happens to it: any event on the
// watched objects (edited, deleted, a sibling changed) and every resync run
// the same `reconcile`, which reads the world and converges (server-side
// apply makes that one call). For objects the operator owns outright, like
// the node-agent DaemonSet, rather than objects users create.
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { ResilientInformer } from "./informer.ts";
import type { KubeRest } from "./kube-rest.ts";
import type { Resource } from "./resources.ts";
import { type QueueObserver, WorkQueue } from "./work-queue.ts";

export interface KeeperOptions {
  /** Names the kept object in logs and the queue. */
  name: string;
  watch: { resource: Resource; namespace?: string; labelSelector?: string };
  reconcile: () => Promise<void>;
  resyncMs?: number;
}

export class Keeper {
  readonly #informer: ResilientInformer<KubernetesObject>;
  readonly #queue: WorkQueue;
  readonly #name: string;
  readonly #resyncMs: number;
  #resync: NodeJS.Timeout | undefined;
  #active = false;

  constructor(
    options: KeeperOptions & {
      kc: KubeConfig;
      rest: KubeRest;
      log: Logger;
      observer?: QueueObserver | undefined;
    },
  ) {
    const log = options.log.child({ component: "keeper", keeps: options.name });
    this.#name = options.name;
    this.#resyncMs = options.resyncMs ?? 60_000;
    this.#queue = new WorkQueue({
      concurrency: 1,
      handler: () => (this.#active ? options.reconcile() : Promise.resolve()),
      onError: (_key, error, retryInMs) =>
        log.warn({ err: (error as Error).message, retryInMs }, "reconcile failed; will retry"),
      ...(options.observer === undefined ? {} : { observer: options.observer }),
    });
    this.#informer = new ResilientInformer({
      kc: options.kc,
      rest: options.rest,
      resource: options.watch.resource,
      ...(options.watch.namespace === undefined ? {} : { namespace: options.watch.namespace }),
      ...(options.watch.labelSelector === undefined ? {} : { labelSelector: options.watch.labelSelector }),
      resyncMs: this.#resyncMs,
      onKey: () => this.nudge(),
      log,
    });
  }

  /** Asks for a reconcile (folded with any already waiting). */
  nudge(): void {
    if (this.#active) this.#queue.add(this.#name);
  }

  async start(): Promise<void> {
    await this.#informer.start();
    // Also when nothing is watched any more (the kept object deleted while a watch was down).
    this.#resync = setInterval(() => this.nudge(), this.#resyncMs);
    this.#resync.unref();
  }

  setActive(active: boolean): void {
    this.#active = active;
    this.nudge();
  }

  drained(): Promise<void> {
    return this.#queue.drained();
  }

  async stop(): Promise<void> {
    this.#active = false;
    clearInterval(this.#resync);
    await this.#queue.stop();
    await this.#informer.stop();
  }
}
