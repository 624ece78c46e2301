// Handlers per kind and event, in the manner of kopf: create, update,
// delete (behind a finalizer, so it runs before the object goes) and timer.
// The controller turns watch events into keys on a WorkQueue, and each run
// reads the object fresh from the informer's cache and decides which handler
// is due:
//   - being deleted, our finalizer on it  → delete, then drop the finalizer
//   - our finalizer missing               → add it (the update brings it back)
//   - generation not yet handled          → create (first time) or update,
//                                           then note the generation handled
//   - a timer due                         → timer
//   - every pass over a live object       → reconcile: for what follows
//                                           other objects (a status computed
//                                           from the cluster; requeueAll())
// Handlers must be idempotent: a crash between a handler and the note that it
// ran means it runs again, which is what level-triggered means.
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { ResilientInformer } from "./informer.ts";
import { isNotFound, type KubeRest } from "./kube-rest.ts";
import { apiVersionOf, keyOf, objectPath, type Resource, splitKey } from "./resources.ts";
import { type BackoffOptions, type QueueObserver, WorkQueue } from "./work-queue.ts";

export const HANDLED_GENERATION = "mosaic.dev/handled-generation";

export interface HandlerContext {
  rest: KubeRest;
  log: Logger;
  /** Merge-patches the object's status subresource. */
  patchStatus(status: Record<string, unknown>): Promise<void>;
  /** Records a Kubernetes Event on the object (kubectl describe shows it). */
  event(type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
}

export type ObjectHandler<T> = (object: T, ctx: HandlerContext) => Promise<void>;

export interface KindHandlers<T extends KubernetesObject> {
  resource: Resource;
  /** When set, deletion waits for the delete handler. */
  finalizer?: string;
  create?: ObjectHandler<T>;
  update?: ObjectHandler<T>;
  delete?: ObjectHandler<T>;
  timer?: { intervalMs: number; handler: ObjectHandler<T> };
  /** Runs on every pass over a live object (watch event, resync, requeueAll), after create or update. */
  reconcile?: ObjectHandler<T>;
  /** Every cached object is handled again this often, repairing missed events (default 60 s). */
  resyncMs?: number;
  backoff?: BackoffOptions;
}

export class Controller<T extends KubernetesObject> {
  readonly #h: KindHandlers<T>;
  readonly #rest: KubeRest;
  readonly #log: Logger;
  readonly #informer: ResilientInformer<T>;
  readonly #queue: WorkQueue;
  readonly #component: string;
  readonly #timerDue = new Map<string, number>();
  /** Generation handled per key (and uid): the cache may not show our own annotation yet. */
  readonly #handled = new Map<string, { uid: string | undefined; generation: number }>();
  #active = false;

  constructor(options: {
    kc: KubeConfig;
    rest: KubeRest;
    handlers: KindHandlers<T>;
    log: Logger;
    component: string;
    /** Reconciles and queue depth, for the operator's metrics. */
    observer?: QueueObserver | undefined;
  }) {
    this.#h = options.handlers;
    this.#rest = options.rest;
    this.#component = options.component;
    this.#log = options.log.child({ component: "controller", kind: this.#h.resource.kind });
    this.#queue = new WorkQueue({
      handler: (key) => this.#run(key),
      ...(this.#h.backoff === undefined ? {} : { backoff: this.#h.backoff }),
      onError: (key, error, retryInMs) =>
        this.#log.warn({ key, err: (error as Error).message, retryInMs }, "handler failed; will retry"),
      ...(options.observer === undefined ? {} : { observer: options.observer }),
    });
    this.#informer = new ResilientInformer<T>({
      kc: options.kc,
      rest: options.rest,
      resource: this.#h.resource,
      onKey: (key) => {
        if (this.#active) this.#queue.add(key);
      },
      log: options.log,
      ...(this.#h.resyncMs === undefined ? {} : { resyncMs: this.#h.resyncMs }),
    });
  }

  get informer(): ResilientInformer<T> {
    return this.#informer;
  }

  /** Fills the cache; handlers run only while active (leading). */
  start(): Promise<void> {
    return this.#informer.start();
  }

  /** Starts or stops acting; becoming active handles every cached object once. */
  setActive(active: boolean): void {
    this.#active = active;
    this.requeueAll();
  }

  /** Handles every cached object again (while active): something they depend on changed. */
  requeueAll(): void {
    if (this.#active) for (const o of this.#informer.list()) this.#queue.add(keyOf(o));
  }

  drained(): Promise<void> {
    return this.#queue.drained();
  }

  async stop(): Promise<void> {
    this.#active = false;
    await this.#queue.stop();
    await this.#informer.stop();
  }

  async #run(key: string): Promise<void> {
    if (!this.#active) return;
    const { name, namespace } = splitKey(key);
    const object = this.#informer.get(name, namespace);
    if (object === undefined) {
      this.#handled.delete(key);
      this.#timerDue.delete(key);
      return;
    }
    const meta = object.metadata ?? {};
    const ctx = this.#context(object);
    const finalizer = this.#h.finalizer;
    const finalizers = meta.finalizers ?? [];

    if (meta.deletionTimestamp !== undefined) {
      if (finalizer === undefined || !finalizers.includes(finalizer)) return;
      await this.#h.delete?.(object, ctx);
      await this.#removeFinalizer(object, finalizer);
      this.#timerDue.delete(key);
      this.#handled.delete(key);
      return;
    }
    if (finalizer !== undefined && !finalizers.includes(finalizer)) {
      await this.#patchMeta(object, "json", [
        { op: "test", path: "/metadata/resourceVersion", value: meta.resourceVersion },
        finalizers.length === 0
          ? { op: "add", path: "/metadata/finalizers", value: [finalizer] }
          : { op: "add", path: "/metadata/finalizers/-", value: finalizer },
      ]);
      return;
    }
    const generation = meta.generation ?? 0;
    const noted = Number(meta.annotations?.[HANDLED_GENERATION] ?? Number.NaN);
    const remembered = this.#handled.get(key);
    const handled =
      remembered === undefined || remembered.uid !== meta.uid
        ? noted
        : Math.max(remembered.generation, Number.isNaN(noted) ? 0 : noted);
    if (!(handled >= generation)) {
      const handler = Number.isNaN(handled) ? (this.#h.create ?? this.#h.update) : this.#h.update;
      await handler?.(object, ctx);
      await this.#patchMeta(object, "merge", {
        metadata: { annotations: { [HANDLED_GENERATION]: String(generation) } },
      });
      this.#handled.set(key, { uid: meta.uid, generation });
    }
    await this.#h.reconcile?.(object, ctx);
    const timer = this.#h.timer;
    if (timer !== undefined) {
      const due = this.#timerDue.get(key) ?? 0;
      const now = Date.now();
      if (now >= due) {
        this.#timerDue.set(key, now + timer.intervalMs);
        await timer.handler(object, ctx);
      }
      this.#queue.addAfter(key, Math.max(0, (this.#timerDue.get(key) ?? now) - Date.now()));
    }
  }

  async #removeFinalizer(object: T, finalizer: string): Promise<void> {
    const index = (object.metadata?.finalizers ?? []).indexOf(finalizer);
    try {
      await this.#patchMeta(object, "json", [
        { op: "test", path: `/metadata/finalizers/${index}`, value: finalizer },
        { op: "remove", path: `/metadata/finalizers/${index}` },
      ]);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  #patchMeta(object: T, type: "merge" | "json", body: unknown): Promise<unknown> {
    const { name = "", namespace } = object.metadata ?? {};
    return this.#rest.patch(objectPath(this.#h.resource, name, namespace), type, body);
  }

  #context(object: T): HandlerContext {
    const resource = this.#h.resource;
    const { name = "", namespace } = object.metadata ?? {};
    const log = this.#log.child({ object: keyOf(object) });
    return {
      rest: this.#rest,
      log,
      patchStatus: async (status) => {
        await this.#rest.patch(`${objectPath(resource, name, namespace)}/status`, "merge", { status });
      },
      event: (type, reason, message) =>
        recordEvent(this.#rest, { component: this.#component, resource, object, log }, type, reason, message),
    };
  }
}

/**
 * Records a Kubernetes Event on an object (kubectl describe shows it). An
 * event that cannot be written is logged, never thrown: it must not fail the
 * work it reports. Cluster-scoped objects' events go to "default", as Nodes' do.
 */
export async function recordEvent(
  rest: KubeRest,
  on: { component: string; resource: Resource; object: KubernetesObject; log: Logger },
  type: "Normal" | "Warning",
  reason: string,
  message: string,
): Promise<void> {
  const { name = "", namespace, uid } = on.object.metadata ?? {};
  const now = new Date().toISOString();
  const eventNamespace = namespace ?? "default";
  const involvedObject = {
    apiVersion: apiVersionOf(on.resource),
    kind: on.resource.kind,
    name,
    namespace,
    uid,
  };
  await rest
    .create(`/api/v1/namespaces/${eventNamespace}/events`, {
      apiVersion: "v1",
      kind: "Event",
      metadata: { generateName: `${name}.`, namespace: eventNamespace },
      involvedObject,
      type,
      reason,
      message,
      source: { component: on.component },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    })
    .catch((error: unknown) =>
      on.log.warn({ err: (error as Error).message, reason }, "could not record an event"),
    );
}
