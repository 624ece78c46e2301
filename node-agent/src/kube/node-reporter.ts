// The agent's ClusterNode: created at start if missing (name = the node's),
// and its status kept saying what the agent sees (node-status.ts). It
// reconciles rather than reports: the stored status is watched, and any
// difference from what the agent would write — after its own view changed,
// or after someone else wrote (the operator marks a silent node Down) — is
// patched. Changes a few ms apart go out as one patch, at most one every
// `minIntervalMs`, so a flapping link cannot flood the API server.
import type { KubeConfig } from "@kubernetes/client-node";
import type { ClusterNode } from "@mosaic/operator/api/types.ts";
import { ResilientInformer } from "@mosaic/operator/framework/informer.ts";
import { isConflict, isNotFound, type KubeRest } from "@mosaic/operator/framework/kube-rest.ts";
import { CLUSTER_NODES, collectionPath, newerOf, objectPath } from "@mosaic/operator/framework/resources.ts";
import type { Logger } from "../log.ts";
import { type AgentStatus, statusPatch } from "./node-status.ts";

export interface NodeReporterOptions {
  kc: KubeConfig;
  rest: KubeRest;
  node: string;
  /** What the agent would write now. */
  status: () => AgentStatus;
  log: Logger;
  /** Least time between two status patches (default 500 ms). */
  minIntervalMs?: number;
}

const SETTLE_MS = 50;
const RETRY_MAX_MS = 30_000;

export class NodeReporter {
  readonly #o: NodeReporterOptions;
  readonly #log: Logger;
  readonly #informer: ResilientInformer<ClusterNode>;
  readonly #minIntervalMs: number;
  /** The newest copy we know: the informer's, or what our own last patch returned if that is newer. */
  #stored: ClusterNode | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #lastWriteMs = Number.NEGATIVE_INFINITY;
  #failures = 0;
  #stopped = false;
  /** Status patches written (for tests and logs). */
  patches = 0;

  constructor(options: NodeReporterOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: "cluster-node" });
    this.#minIntervalMs = options.minIntervalMs ?? 500;
    this.#informer = new ResilientInformer<ClusterNode>({
      kc: options.kc,
      rest: options.rest,
      resource: CLUSTER_NODES,
      fieldSelector: `metadata.name=${options.node}`,
      onKey: () => {
        this.#stored = newerOf(this.#informer.get(options.node), this.#stored);
        this.nudge();
      },
      log: this.#log,
    });
  }

  /** Creates the ClusterNode if missing, starts watching it and writes its status. */
  async start(): Promise<void> {
    await this.#ensureExists();
    await this.#informer.start();
    this.nudge();
  }

  /** Something the status says may have changed: reconcile soon (folded with any pending). */
  nudge(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) return;
    const waitMs = Math.max(SETTLE_MS, this.#lastWriteMs + this.#minIntervalMs - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#reconcile().finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.nudge();
        }
      });
    }, waitMs);
  }

  /** Resolves once no reconcile is pending or running (tests). */
  async settled(): Promise<void> {
    while (this.#timer !== undefined || this.#running !== undefined) {
      await (this.#running ?? new Promise((resolve) => setTimeout(resolve, SETTLE_MS)));
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
    await this.#informer.stop();
  }

  async #reconcile(): Promise<void> {
    const { rest, node } = this.#o;
    const patch = statusPatch(this.#o.status(), this.#stored?.status, new Date().toISOString());
    if (patch === undefined) return;
    try {
      const path = `${objectPath(CLUSTER_NODES, node)}/status`;
      let written: ClusterNode;
      try {
        written = await rest.patch<ClusterNode>(path, "merge", { status: patch });
      } catch (error) {
        if (!isNotFound(error)) throw error;
        // Deleted under us (kubectl delete cn): the agent still runs, so its ClusterNode comes back.
        await this.#ensureExists();
        written = await rest.patch<ClusterNode>(path, "merge", { status: this.#o.status() });
      }
      this.#stored = newerOf(written, this.#stored);
      this.#lastWriteMs = performance.now();
      this.patches++;
      this.#failures = 0;
      this.#log.info(
        { changed: Object.keys(patch), phase: written.status?.phase },
        "ClusterNode status written",
      );
    } catch (error) {
      this.#failures++;
      const retryMs = Math.min(RETRY_MAX_MS, 250 * 2 ** this.#failures);
      this.#log.warn({ err: (error as Error).message, retryMs }, "ClusterNode status not written; retrying");
      setTimeout(() => this.nudge(), retryMs).unref();
    }
  }

  async #ensureExists(): Promise<void> {
    const { rest, node } = this.#o;
    try {
      const created = await rest.create<ClusterNode>(collectionPath(CLUSTER_NODES), {
        apiVersion: "mosaic.dev/v1alpha1",
        kind: "ClusterNode",
        metadata: { name: node },
        spec: { nodeName: node },
      });
      this.#stored = newerOf(created, this.#stored);
      this.#log.info("ClusterNode created");
    } catch (error) {
      if (!isConflict(error)) throw error;
    }
  }
}
