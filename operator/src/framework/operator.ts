// The operator runtime: one controller per kind, all acting only while this
// replica holds the leader lease, so two replicas never both act. Caches stay
// warm on followers, so a new leader acts at once.
import { KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { Controller, type KindHandlers } from "./controller.ts";
import { Keeper, type KeeperOptions } from "./keeper.ts";
import { KubeRest } from "./kube-rest.ts";
import { type LeaderElectionOptions, LeaderElector } from "./leader-election.ts";
import type { QueueObserver } from "./work-queue.ts";

export interface OperatorOptions {
  /** Path of a kubeconfig; default: in-cluster service account, else ~/.kube/config. */
  kubeconfig?: string;
  /** Names this replica in the lease and in events. */
  identity: string;
  log: Logger;
  /** Lease to lead on; none: act at once (a single replica, or tests). */
  leaderElection?: Pick<
    LeaderElectionOptions,
    "namespace" | "name" | "leaseDurationMs" | "renewDeadlineMs" | "retryMs"
  >;
  /** An observer of each part's work queue, by the part's name (the operator's metrics); none: unobserved. */
  observe?: (part: string) => QueueObserver;
}

/** Something that keeps its cache warm from start() and acts only while active (leading). */
export interface OperatorPart {
  start(): Promise<void>;
  setActive(active: boolean): void;
  stop(): Promise<void>;
}

export class Operator {
  readonly kc: KubeConfig;
  readonly rest: KubeRest;
  readonly #log: Logger;
  /** Controllers and keepers: everything that acts only while leading. */
  readonly #parts: OperatorPart[] = [];
  readonly #elector: LeaderElector | undefined;
  readonly #component = "mosaic-operator";
  readonly #observe: ((part: string) => QueueObserver) | undefined;

  constructor(options: OperatorOptions) {
    this.kc = new KubeConfig();
    if (options.kubeconfig !== undefined) this.kc.loadFromFile(options.kubeconfig);
    else this.kc.loadFromDefault();
    this.rest = new KubeRest(this.kc);
    this.#log = options.log.child({ identity: options.identity });
    this.#observe = options.observe;
    const election = options.leaderElection;
    this.#elector =
      election === undefined
        ? undefined
        : new LeaderElector({
            ...election,
            rest: this.rest,
            identity: options.identity,
            log: this.#log,
            onStartedLeading: () => this.#setActive(true),
            onStoppedLeading: () => this.#setActive(false),
          });
  }

  handle<T extends KubernetesObject>(handlers: KindHandlers<T>): Controller<T> {
    const controller = new Controller<T>({
      kc: this.kc,
      rest: this.rest,
      handlers,
      log: this.#log,
      component: this.#component,
      observer: this.observer(handlers.resource.kind),
    });
    this.#parts.push(controller);
    return controller;
  }

  /** Keeps an object the operator owns as `reconcile` declares it, on every event and resync. */
  keep(options: KeeperOptions): Keeper {
    const keeper = new Keeper({
      ...options,
      kc: this.kc,
      rest: this.rest,
      log: this.#log,
      observer: this.observer(options.name),
    });
    this.#parts.push(keeper);
    return keeper;
  }

  /** Runs a part of the operator's own making (one reconcile over many kinds) under the same leadership. */
  run<P extends OperatorPart>(part: P): P {
    this.#parts.push(part);
    return part;
  }

  /** The observer of a part's work queue named `part` (OperatorOptions.observe); undefined without one. */
  observer(part: string): QueueObserver | undefined {
    return this.#observe?.(part);
  }

  get leading(): boolean {
    return this.#elector?.leading ?? true;
  }

  async start(): Promise<void> {
    await Promise.all(this.#parts.map((c) => c.start()));
    if (this.#elector === undefined) this.#setActive(true);
    else this.#elector.start();
  }

  async stop(): Promise<void> {
    await this.#elector?.stop();
    await Promise.all(this.#parts.map((c) => c.stop()));
  }

  #setActive(active: boolean): void {
    for (const c of this.#parts) c.setActive(active);
  }
}
