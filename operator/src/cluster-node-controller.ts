// The operator's side of ClusterNodes and the cluster map. One reconcile
// over everything, since the map is a function of all of it: every
// ClusterNode (addresses, the map its agent holds), every agent Lease
// (liveness, on our clock: lease-clock.ts) and the published map (the
// ConfigMap of api/cluster-map.ts). It:
//   - publishes a new map when membership changes (cluster-map-plan.ts):
//     the agents adopt it and their rebuild moves the pieces;
//   - marks a node whose Lease expired Down, and Lost after the grace, in
//     ClusterNode status (phase and Ready), while the agent cannot speak for
//     itself; a live agent owns its status and puts its own view back;
//   - records Events on the ClusterNode at each transition.
// Caches stay warm on followers (and Lease changes are timed there too);
// only the leader writes. Time-driven transitions (a Lease running out, a
// grace ending) wake it on a timer at the next deadline, not on a poll.
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { ClusterMap } from "../../node-agent/src/core/cluster-map.ts";
import { AGENT_SELECTOR, agentLeaseName, nodeOfAgentLease } from "./api/agents.ts";
import {
  CLUSTER_MAP_CONFIGMAP,
  CLUSTER_MAP_KEY,
  CLUSTER_MAP_SELECTOR,
  CONFIG_MAPS,
  decodeClusterMap,
  encodeClusterMap,
} from "./api/cluster-map.ts";
import type { ClusterNode, ClusterNodeStatus, Condition } from "./api/types.ts";
import { type MembershipChange, type NodeReport, planClusterMap } from "./cluster-map-plan.ts";
import { type ClusterView, clusterView } from "./cluster-view.ts";
import { recordEvent } from "./framework/controller.ts";
import { ResilientInformer } from "./framework/informer.ts";
import { isNotFound, type KubeRest } from "./framework/kube-rest.ts";
import type { Lease } from "./framework/leader-election.ts";
import type { OperatorPart } from "./framework/operator.ts";
import { CLUSTER_NODES, collectionPath, LEASES, newerOf, objectPath } from "./framework/resources.ts";
import { type QueueObserver, WorkQueue } from "./framework/work-queue.ts";
import { LeaseClock, type Liveness } from "./lease-clock.ts";

interface ConfigMap {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    labels?: Record<string, string>;
  };
  data?: Record<string, string>;
}

export interface ClusterNodeControllerOptions {
  kc: KubeConfig;
  rest: KubeRest;
  /** The operator's and agents' namespace: agent Leases and the map's ConfigMap. */
  namespace: string;
  /** A node whose Lease has been expired this long is Lost (MOSAIC_OUT_GRACE_MS). */
  outGraceMs: number;
  log: Logger;
  /** Lease duration assumed for an agent whose Lease was never seen (default 15 s). */
  defaultLeaseMs?: number;
  /** Names the operator in Events. */
  component?: string;
  /** After each reconcile (something about nodes, Leases or the map may have changed): StripedVolume status follows. */
  onChange?: () => void;
  /** Reconciles and queue depth, for the operator's metrics. */
  observer?: QueueObserver | undefined;
}

const KEY = "membership";
/** A timer may fire a little early; waking slightly after a deadline avoids a wasted pass. */
const DEADLINE_SLACK_MS = 20;

export class ClusterNodeController implements OperatorPart {
  readonly #o: ClusterNodeControllerOptions;
  readonly #log: Logger;
  readonly #nodes: ResilientInformer<ClusterNode>;
  readonly #leases: ResilientInformer<Lease & { metadata: { name: string } }>;
  readonly #maps: ResilientInformer<ConfigMap>;
  readonly #queue: WorkQueue;
  readonly #clock: LeaseClock;
  /** The map we last wrote, kept in case the watch has not brought it back yet. */
  #written: ConfigMap | undefined;
  /** The phase we last wrote per node while its agent was silent (a lagging cache must not repeat it). */
  readonly #silent = new Map<string, "Down" | "Lost">();
  #timer: NodeJS.Timeout | undefined;
  #timerAtMs = Number.POSITIVE_INFINITY;
  #active = false;
  /** Maps published by this replica (tests, logs). */
  published = 0;

  constructor(options: ClusterNodeControllerOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: "cluster-nodes" });
    this.#clock = new LeaseClock(performance.now(), options.defaultLeaseMs ?? 15_000);
    this.#queue = new WorkQueue({
      concurrency: 1,
      handler: () => this.#reconcile(),
      backoff: { baseMs: 200, maxMs: 10_000 },
      onError: (_key, error, retryInMs) =>
        this.#log.warn(
          { err: (error as Error).message, retryInMs },
          "membership reconcile failed; will retry",
        ),
      ...(options.observer === undefined ? {} : { observer: options.observer }),
    });
    const common = { kc: options.kc, rest: options.rest, log: this.#log };
    this.#nodes = new ResilientInformer<ClusterNode>({
      ...common,
      resource: CLUSTER_NODES,
      onKey: () => this.#nudge(),
    });
    this.#leases = new ResilientInformer({
      ...common,
      resource: LEASES,
      namespace: options.namespace,
      labelSelector: AGENT_SELECTOR,
      onKey: (key) => this.#leaseChanged(key.slice(key.indexOf("/") + 1)),
    });
    this.#maps = new ResilientInformer<ConfigMap>({
      ...common,
      resource: CONFIG_MAPS,
      namespace: options.namespace,
      fieldSelector: CLUSTER_MAP_SELECTOR,
      onKey: () => this.#nudge(),
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.#nodes.start(), this.#leases.start(), this.#maps.start()]);
    const now = performance.now();
    for (const lease of this.#leases.list()) this.#observe(lease, now);
  }

  setActive(active: boolean): void {
    this.#active = active;
    if (active) this.#nudge();
  }

  /** Resolves when no reconcile is queued or running (a deadline timer may still be armed). */
  drained(): Promise<void> {
    return this.#queue.drained();
  }

  async stop(): Promise<void> {
    this.#active = false;
    clearTimeout(this.#timer);
    await this.#queue.stop();
    await Promise.all([this.#nodes.stop(), this.#leases.stop(), this.#maps.stop()]);
  }

  #nudge(): void {
    if (this.#active) this.#queue.add(KEY);
  }

  #leaseChanged(name: string): void {
    const node = nodeOfAgentLease(name);
    if (node === undefined) return;
    const now = performance.now();
    const before = this.#clock.liveness(node, now, this.#o.outGraceMs).liveness;
    const lease = this.#leases.get(name, this.#o.namespace);
    if (lease === undefined) this.#clock.deleted(node, now);
    else this.#observe(lease, now);
    // A renewal of a live Lease only moves a deadline the timer already watches.
    if (before !== "live" || lease === undefined) this.#nudge();
  }

  #observe(lease: Lease & { metadata: { name: string } }, nowMs: number): void {
    const node = nodeOfAgentLease(lease.metadata.name);
    if (node === undefined) return;
    const { holderIdentity, renewTime, acquireTime, leaseDurationSeconds } = lease.spec;
    const record = JSON.stringify([holderIdentity, renewTime, acquireTime]);
    this.#clock.observe(node, { record, durationMs: (leaseDurationSeconds ?? 0) * 1000 }, nowMs);
  }

  async #reconcile(): Promise<void> {
    if (!this.#active) return;
    const now = performance.now();
    const grace = this.#o.outGraceMs;
    const nodes = this.#nodes.list();
    const liveness = new Map(nodes.map((cn) => [nameOf(cn), this.#clock.liveness(nameOf(cn), now, grace)]));
    const reports: NodeReport[] = nodes.map((cn) => ({
      id: nameOf(cn),
      addresses: addressesOf(cn.status),
      liveness: liveness.get(nameOf(cn))?.liveness ?? "lost",
      observed: cn.status?.observedMap,
    }));
    const plan = planClusterMap(this.#publishedMap(), reports);
    let epoch: number | undefined;
    if (plan.publish !== undefined) {
      await this.#publish(plan.publish);
      epoch = plan.publish.epoch;
      this.#log.info(
        { epoch, changes: plan.changes, superseded: plan.superseded, nodes: plan.publish.nodes.length },
        "cluster map published",
      );
      for (const change of plan.changes) {
        const cn = nodes.find((n) => nameOf(n) === change.node);
        if (cn !== undefined) await this.#announce(cn, change, plan.publish);
      }
    }
    for (const cn of nodes)
      await this.#markSilence(cn, liveness.get(nameOf(cn))?.liveness ?? "lost", now, epoch);
    let next = Number.POSITIVE_INFINITY;
    for (const l of liveness.values()) next = Math.min(next, l.nextChangeMs);
    this.#wakeAt(next);
    this.#o.onChange?.();
  }

  /** The ClusterNodes in the cache (every node's agent reports one), for the metrics. */
  clusterNodes(): readonly ClusterNode[] {
    return this.#nodes.list();
  }

  /** Epoch of the cluster map published in the ConfigMap; undefined before the first. */
  publishedEpoch(): number | undefined {
    return this.#publishedMap()?.epoch;
  }

  /** The members of the map, their state, liveness and reports, from the caches (cluster-view.ts). */
  view(): ClusterView {
    const now = performance.now();
    return clusterView(
      this.#publishedMap(),
      this.#nodes.list(),
      (node) => this.#clock.liveness(node, now, this.#o.outGraceMs).liveness,
    );
  }

  #publishedMap(): ClusterMap | undefined {
    const cm = newerOf(this.#maps.get(CLUSTER_MAP_CONFIGMAP, this.#o.namespace), this.#written);
    const text = cm?.data?.[CLUSTER_MAP_KEY];
    if (text === undefined) return undefined;
    try {
      return decodeClusterMap(text, `ConfigMap ${this.#o.namespace}/${CLUSTER_MAP_CONFIGMAP}`);
    } catch (error) {
      // Someone edited it into nonsense: the next map replaces it, above every epoch the agents report.
      this.#log.error({ err: (error as Error).message }, "published cluster map unreadable; replacing it");
      return undefined;
    }
  }

  async #publish(map: ClusterMap): Promise<void> {
    const { rest, namespace } = this.#o;
    const current = newerOf(this.#maps.get(CLUSTER_MAP_CONFIGMAP, namespace), this.#written);
    const body: ConfigMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: CLUSTER_MAP_CONFIGMAP,
        namespace,
        labels: { "app.kubernetes.io/part-of": "mosaic", "app.kubernetes.io/component": "cluster-map" },
        ...(current?.metadata.resourceVersion === undefined
          ? {}
          : { resourceVersion: current.metadata.resourceVersion }),
      },
      data: { [CLUSTER_MAP_KEY]: encodeClusterMap(map) },
    };
    // The resourceVersion makes a write over a map we have not seen fail (409) and retry on fresh state.
    try {
      this.#written =
        current === undefined
          ? await rest.create<ConfigMap>(collectionPath(CONFIG_MAPS, namespace), body)
          : await rest.replace<ConfigMap>(objectPath(CONFIG_MAPS, CLUSTER_MAP_CONFIGMAP, namespace), body);
    } catch (error) {
      if (isNotFound(error)) this.#written = undefined; // deleted meanwhile: created on the retry
      throw error;
    }
    this.published++;
  }

  /** Down while the Lease is expired, Lost past the grace: written only while the agent cannot write. */
  async #markSilence(
    cn: ClusterNode,
    liveness: Liveness,
    nowMs: number,
    epoch: number | undefined,
  ): Promise<void> {
    const node = nameOf(cn);
    if (liveness === "live") {
      const was = this.#silent.get(node);
      this.#silent.delete(node);
      // The agent puts its own status back; the event says why the phase moves.
      if (was !== undefined)
        await this.#event(
          cn,
          "Normal",
          "LeaseRenewed",
          `lease ${agentLeaseName(node)} renewed: the agent is back (was ${was})`,
        );
      return;
    }
    const phase = liveness === "down" ? "Down" : "Lost";
    if (this.#silent.get(node) === phase) return;
    const expiredS = Math.round(this.#clock.expiredForMs(node, nowMs) / 1000);
    const graceS = Math.round(this.#o.outGraceMs / 1000);
    const ready: Omit<Condition, "lastTransitionTime"> =
      phase === "Down"
        ? {
            type: "Ready",
            status: "False",
            reason: "LeaseExpired",
            message: `lease ${agentLeaseName(node)} not renewed for ${expiredS}s past its duration; Lost after ${graceS}s`,
          }
        : {
            type: "Ready",
            status: "False",
            reason: "Lost",
            message: `silent for ${expiredS}s past its lease (grace ${graceS}s): out of the cluster map, its pieces rebuilt on the other nodes`,
          };
    if (cn.status?.phase !== phase || readyOf(cn.status)?.reason !== ready.reason) {
      const had = readyOf(cn.status);
      const since =
        had?.status === "False"
          ? (had.lastTransitionTime ?? new Date().toISOString())
          : new Date().toISOString();
      await this.#o.rest.patch(`${objectPath(CLUSTER_NODES, node)}/status`, "merge", {
        status: { phase, conditions: [{ ...ready, lastTransitionTime: since }] },
      });
      const atEpoch = epoch === undefined ? "" : ` (cluster map epoch ${epoch})`;
      await this.#event(
        cn,
        "Warning",
        phase === "Down" ? "LeaseExpired" : "Lost",
        `${ready.message}${atEpoch}`,
      );
    }
    this.#silent.set(node, phase);
  }

  async #announce(cn: ClusterNode, change: MembershipChange, map: ClusterMap): Promise<void> {
    const entry = map.nodes.find((n) => n.id === change.node);
    const where =
      entry === undefined ? "" : ` (channel A ${entry.addresses[0]}, channel B ${entry.addresses[1]})`;
    switch (change.kind) {
      case "joined":
        return this.#event(cn, "Normal", "Joined", `joined the cluster map at epoch ${map.epoch}${where}`);
      case "returned":
        return this.#event(cn, "Normal", "Returned", `back in the cluster map at epoch ${map.epoch}`);
      case "moved":
        return this.#event(cn, "Normal", "AddressesChanged", `new addresses at epoch ${map.epoch}${where}`);
      case "lost":
        return; // said by the Lost phase's event, with the epoch
    }
  }

  #event(cn: ClusterNode, type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    const on = {
      component: this.#o.component ?? "mosaic-operator",
      resource: CLUSTER_NODES,
      object: cn,
      log: this.#log,
    };
    return recordEvent(this.#o.rest, on, type, reason, message);
  }

  /** Re-runs the reconcile at `atMs` (our clock), unless an earlier wake-up is already set. */
  #wakeAt(atMs: number): void {
    if (!Number.isFinite(atMs) || atMs >= this.#timerAtMs) return;
    clearTimeout(this.#timer);
    this.#timerAtMs = atMs;
    this.#timer = setTimeout(
      () => {
        this.#timerAtMs = Number.POSITIVE_INFINITY;
        this.#timer = undefined;
        this.#nudge();
      },
      Math.max(0, atMs - performance.now()) + DEADLINE_SLACK_MS,
    );
    this.#timer.unref();
  }
}

function nameOf(cn: ClusterNode): string {
  return cn.metadata?.name ?? "";
}

function addressesOf(status: ClusterNodeStatus | undefined): [string, string] | undefined {
  const a = status?.channelA?.address;
  const b = status?.channelB?.address;
  return a && b ? [a, b] : undefined;
}

function readyOf(status: ClusterNodeStatus | undefined): Condition | undefined {
  return status?.conditions?.find((c) => c.type === "Ready");
}
