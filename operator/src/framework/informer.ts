// A watch that never dies: client-node's ListWatch keeps the cache and
// relists on 410 Gone, but stops for good on any other error (the API server
// restarting, a dropped connection). This restarts it after an exponential
// backoff, and every `resyncMs` hands every cached key to `onKey` again so a
// missed event is repaired by the next resync (level-triggered).
import { type KubeConfig, type KubernetesObject, ListWatch, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { KubeRest } from "./kube-rest.ts";
import { collectionPath, keyOf, type Resource } from "./resources.ts";

export interface InformerOptions {
  kc: KubeConfig;
  rest: KubeRest;
  resource: Resource;
  /** Called with the key of every object added, changed or deleted, and of every cached object on resync. */
  onKey: (key: string) => void;
  log: Logger;
  resyncMs?: number;
  labelSelector?: string;
  /** e.g. metadata.name=x: one object by name (RBAC resourceNames can then allow exactly that one). */
  fieldSelector?: string;
  /** Only this namespace (a namespaced kind); default: all. */
  namespace?: string;
}

const RESTART_BASE_MS = 500;
const RESTART_MAX_MS = 30_000;

export class ResilientInformer<T extends KubernetesObject> {
  readonly #watch: ListWatch<T>;
  readonly #log: Logger;
  readonly #onKey: (key: string) => void;
  readonly #resyncMs: number;
  #restartMs = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Times the watch broke and was started again. */
  restarts = 0;

  constructor(options: InformerOptions) {
    const { kc, rest, resource } = options;
    const path = collectionPath(resource, options.namespace);
    const list = () =>
      rest.get<{ items: T[]; metadata: { resourceVersion: string } }>(withSelector(path, options));
    this.#watch = new ListWatch<T>(
      path,
      new Watch(kc),
      list,
      false,
      options.labelSelector,
      options.fieldSelector,
    );
    this.#log = options.log.child({ component: "informer", resource: resource.plural });
    this.#onKey = options.onKey;
    this.#resyncMs = options.resyncMs ?? 60_000;
    for (const verb of ["add", "update", "delete"] as const) {
      this.#watch.on(verb, (o) => this.#onKey(keyOf(o)));
    }
    this.#watch.on("error", (error) => this.#restart(error));
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#watch.get(name, namespace);
  }

  list(): readonly T[] {
    return this.#watch.list();
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await this.#watch.start();
    this.#resyncTimer = setInterval(() => {
      for (const o of this.#watch.list()) this.#onKey(keyOf(o));
    }, this.#resyncMs);
    this.#resyncTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    clearInterval(this.#resyncTimer);
    await this.#watch.stop();
  }

  #restart(error: unknown): void {
    if (this.#stopped) return;
    this.#restartMs = Math.min(RESTART_MAX_MS, this.#restartMs === 0 ? RESTART_BASE_MS : this.#restartMs * 2);
    this.#log.warn(
      { err: (error as Error)?.message ?? String(error), retryInMs: this.#restartMs },
      "watch broke; starting it again",
    );
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      this.restarts++;
      this.#watch
        .start()
        .then(() => {
          // start() returns once the list and the new watch are in place, or after it reported an error.
          if (!this.#stopped && this.#restartTimer === undefined) this.#restartMs = 0;
        })
        .catch((e: unknown) => this.#restart(e));
      this.#restartTimer = undefined;
    }, this.#restartMs);
  }
}

function withSelector(path: string, options: InformerOptions): string {
  const query = new URLSearchParams();
  if (options.labelSelector !== undefined) query.set("labelSelector", options.labelSelector);
  if (options.fieldSelector !== undefined) query.set("fieldSelector", options.fieldSelector);
  return query.size === 0 ? path : `${path}?${query}`;
}
