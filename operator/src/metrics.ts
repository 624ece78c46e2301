// Every Prometheus metric of the operator, defined here and nowhere else, on
// a registry of its own (served with the process's metrics by
// node-agent/src/metrics/metrics-http.ts). Reconciles are counted by the work
// queues (framework/work-queue.ts QueueObserver); what is a state (leader,
// queue depth, map epoch, ClusterNodes and volumes by phase) is read from the
// operator's caches when scraped, so it costs nothing between scrapes and
// needs no API call.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ClusterNode, StripedVolume } from "./api/types.ts";
import type { Operator } from "./framework/operator.ts";
import type { QueueObserver } from "./framework/work-queue.ts";
import type { MembershipAndVolumes } from "./membership-and-volumes.ts";

/** The operator's metrics port, on the pod IP (the chart's operator Deployment names it `metrics`). */
export const OPERATOR_METRICS_PORT_DEFAULT = 9401;

const NODE_PHASES = ["Joining", "Up", "Down", "Lost"] as const;
const VOLUME_PHASES = ["Pending", "Healthy", "Degraded", "Rebuilding", "Failed"] as const;
/** A reconcile is a few API calls: milliseconds on a healthy API server, seconds when it struggles. */
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What the operator knows, read at each scrape. */
export interface OperatorReadings {
  leading(): boolean;
  /** Epoch of the cluster map in the ConfigMap; undefined before the first. */
  publishedEpoch(): number | undefined;
  clusterNodes(): readonly ClusterNode[];
  volumes(): readonly StripedVolume[];
}

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly #reconciles: Counter<"controller" | "result">;
  readonly #duration: Histogram<"controller">;
  readonly #depths = new Map<string, () => number>();

  constructor() {
    const registers = [this.registry];
    this.#reconciles = new Counter({
      name: "mosaic_operator_reconciles_total",
      help: "Reconciles the operator ran, by controller (a kind, or a kept object's name) and result (success, error)",
      labelNames: ["controller", "result"],
      registers,
    });
    this.#duration = new Histogram({
      name: "mosaic_operator_reconcile_duration_seconds",
      help: "Time of the operator's reconciles, by controller",
      labelNames: ["controller"],
      buckets: RECONCILE_BUCKETS,
      registers,
    });
    const depths = this.#depths;
    new Gauge({
      name: "mosaic_operator_queue_depth",
      help: "Keys waiting in each controller's work queue (not counting the ones being reconciled)",
      labelNames: ["controller"],
      registers,
      collect() {
        for (const [controller, read] of depths) this.set({ controller }, read());
      },
    });
  }

  /** The observer of one controller's work queue (OperatorOptions.observe). */
  queue(controller: string): QueueObserver {
    return {
      depth: (read) => this.#depths.set(controller, read),
      handled: (result, seconds) => {
        this.#reconciles.inc({ controller, result });
        this.#duration.observe({ controller }, seconds);
      },
    };
  }

  /** Gauges read from the operator at each scrape; call once, when its parts exist. */
  read(readings: OperatorReadings): void {
    const registers = [this.registry];
    new Gauge({
      name: "mosaic_operator_leader",
      help: "1 while this replica holds the leader Lease and acts, 0 while it follows",
      registers,
      collect() {
        this.set(readings.leading() ? 1 : 0);
      },
    });
    new Gauge({
      name: "mosaic_operator_cluster_map_epoch",
      help: "Epoch of the cluster map published in the ConfigMap (0 before the first)",
      registers,
      collect() {
        this.set(readings.publishedEpoch() ?? 0);
      },
    });
    new Gauge({
      name: "mosaic_operator_cluster_nodes",
      help: "ClusterNodes by status phase (Unknown: no phase reported yet)",
      labelNames: ["phase"],
      registers,
      collect() {
        setByPhase(this, NODE_PHASES, readings.clusterNodes());
      },
    });
    new Gauge({
      name: "mosaic_operator_striped_volumes",
      help: "StripedVolumes by status phase (Unknown: no phase yet)",
      labelNames: ["phase"],
      registers,
      collect() {
        setByPhase(this, VOLUME_PHASES, readings.volumes());
      },
    });
  }
}

/** The readings of an operator running main.ts's controllers. */
export function readingsOf(operator: Operator, parts: MembershipAndVolumes): OperatorReadings {
  return {
    leading: () => operator.leading,
    publishedEpoch: () => parts.membership.publishedEpoch(),
    clusterNodes: () => parts.membership.clusterNodes(),
    volumes: () => parts.volumes.informer.list(),
  };
}

/** Every known phase (0 when none), and Unknown for objects without one. */
function setByPhase(
  gauge: Gauge<"phase">,
  phases: readonly string[],
  objects: readonly { status?: { phase?: string } }[],
): void {
  const counts = new Map<string, number>([...phases, "Unknown"].map((p) => [p, 0]));
  for (const o of objects) {
    const phase = o.status?.phase ?? "Unknown";
    counts.set(phase, (counts.get(phase) ?? 0) + 1);
  }
  for (const [phase, n] of counts) gauge.set({ phase }, n);
}

/**
 * Where the operator serves its metrics: `--metrics <host:port>` on its
 * command line, else every address at MOSAIC_METRICS_PORT (default 9401);
 * MOSAIC_METRICS_PORT=0 turns them off. A bad value is an error naming it.
 */
export function metricsListenOf(
  argv: readonly string[],
  env: Record<string, string | undefined>,
): string | undefined {
  const flag = argv.indexOf("--metrics");
  if (flag >= 0) {
    const value = argv[flag + 1];
    if (value === undefined || !/^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):\d{1,5}$/.test(value))
      throw new Error(`--metrics ${value ?? ""} must be host:port`);
    return value;
  }
  const raw = env.MOSAIC_METRICS_PORT?.trim() || String(OPERATOR_METRICS_PORT_DEFAULT);
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65_535)
    throw new Error(`MOSAIC_METRICS_PORT=${raw} must be a port number (0 turns the metrics off)`);
  return port === 0 ? undefined : `0.0.0.0:${port}`;
}
