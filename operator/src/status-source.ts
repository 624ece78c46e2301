// The status page's Kubernetes source: ClusterNodes and StripedVolumes as the
// API server holds them, turned into the page's snapshot
// (node-agent/src/status/view-model.ts) and published to its feed on every
// change. Its own two watches, not the controllers' caches: the page is
// served by every operator replica, the leader's standby too (a
// port-forward to the Deployment may land on either), and reads nothing
// else. kubeSnapshot is pure.
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { StatusFeed } from "../../node-agent/src/status/status-feed.ts";
import { STATUS_PORT_DEFAULT, StatusServer } from "../../node-agent/src/status/status-server.ts";
import {
  byName,
  type ChannelView,
  type NodeView,
  type RebuildView,
  type StatusSnapshot,
  type VolumeView,
} from "../../node-agent/src/status/view-model.ts";
import type { ChannelStatus, ClusterNode, Condition, StripedVolume } from "./api/types.ts";
import { ResilientInformer } from "./framework/informer.ts";
import type { KubeRest } from "./framework/kube-rest.ts";
import { CLUSTER_NODES, STRIPED_VOLUMES } from "./framework/resources.ts";

/** Changes that land together (an agent's patch, a volume's status after it) make one snapshot. */
const COALESCE_MS = 100;

export function kubeSnapshot(
  nodes: readonly ClusterNode[],
  volumes: readonly StripedVolume[],
  takenAt: string,
): StatusSnapshot {
  const epochs = nodes.flatMap((n) =>
    n.status?.observedMap?.epoch === undefined ? [] : [n.status.observedMap.epoch],
  );
  return {
    source: "kubernetes",
    takenAt,
    epoch: epochs.length === 0 ? null : Math.max(...epochs),
    nodes: nodes.map(nodeView).sort(byName),
    volumes: volumes.map(volumeView).sort(byName),
  };
}

function channelView(c: ChannelStatus | undefined): ChannelView {
  return { address: c?.address ?? null, state: c?.state ?? "Unknown" };
}

/** A message worth a line: a condition that is not as it should be (Ready False, or Degraded / Rebuilding True). */
function notableMessage(conditions: Condition[] | undefined): string | null {
  const off = conditions?.find((c) => (c.type === "Ready" ? c.status !== "True" : c.status === "True"));
  return off?.message ?? null;
}

function nodeView(n: ClusterNode): NodeView {
  const s = n.status;
  const r = s?.rebuild;
  const rebuild: RebuildView | null =
    r === undefined
      ? null
      : {
          state: r.state ?? "Idle",
          bytesLeft: r.bytesLeft ?? null,
          bytesPerSecond: r.bytesPerSecond ?? null,
          etaSeconds: r.etaSeconds ?? null,
        };
  return {
    name: n.metadata?.name ?? "",
    phase: s?.phase ?? "Joining",
    channels: { A: channelView(s?.channelA), B: channelView(s?.channelB) },
    active: s?.activeChannel ?? null,
    load: s?.load ?? null,
    used: s?.used ?? null,
    capacity: s?.capacity ?? null,
    epoch: s?.observedMap?.epoch ?? null,
    rebuild,
    message: notableMessage(s?.conditions),
  };
}

function describeSpecRedundancy(v: StripedVolume): string {
  const r = v.spec.redundancy;
  if (r.replicas !== undefined) return `replicas ${r.replicas}`;
  if (r.erasure !== undefined) return `erasure ${r.erasure.data}+${r.erasure.parity}`;
  return "";
}

function volumeView(v: StripedVolume): VolumeView {
  const s = v.status;
  const c = s?.chunks;
  const r = s?.rebuild;
  return {
    name: v.metadata?.name ?? "",
    phase: s?.phase ?? "Pending",
    redundancy: s?.redundancy ?? describeSpecRedundancy(v),
    capacity: v.spec.capacity,
    used: s?.used ?? null,
    chunks:
      c === undefined ? null : { healthy: c.healthy ?? 0, degraded: c.degraded ?? 0, lost: c.lost ?? 0 },
    // The agents' reports leave readReplicas out while there are none.
    readCopies: s === undefined ? null : (s.readReplicas?.count ?? 0),
    rebuild:
      r === undefined
        ? null
        : {
            bytesLeft: r.bytesLeft ?? null,
            bytesPerSecond: r.bytesPerSecond ?? null,
            etaSeconds: r.etaSeconds ?? null,
          },
    message: notableMessage(s?.conditions),
  };
}

export interface KubeStatusSourceOptions {
  kc: KubeConfig;
  rest: KubeRest;
  feed: StatusFeed;
  log: Logger;
}

export class KubeStatusSource {
  readonly #nodes: ResilientInformer<ClusterNode>;
  readonly #volumes: ResilientInformer<StripedVolume>;
  readonly #feed: StatusFeed;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: KubeStatusSourceOptions) {
    const { kc, rest, log } = options;
    const onKey = () => this.#soon();
    this.#nodes = new ResilientInformer<ClusterNode>({ kc, rest, resource: CLUSTER_NODES, onKey, log });
    this.#volumes = new ResilientInformer<StripedVolume>({ kc, rest, resource: STRIPED_VOLUMES, onKey, log });
    this.#feed = options.feed;
  }

  /** Resolves once both lists are in and the first snapshot is published. */
  async start(): Promise<void> {
    await Promise.all([this.#nodes.start(), this.#volumes.start()]);
    this.#publish();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await Promise.all([this.#nodes.stop(), this.#volumes.stop()]);
  }

  #soon(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#publish();
    }, COALESCE_MS);
  }

  #publish(): void {
    this.#feed.publish(kubeSnapshot(this.#nodes.list(), this.#volumes.list(), new Date().toISOString()));
  }
}

/** MOSAIC_STATUS_PORT: the status page's port on every interface (the chart's containerPort `status`); 0 turns it off. */
export function statusPortOf(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.MOSAIC_STATUS_PORT;
  if (text === undefined || text === "") return STATUS_PORT_DEFAULT;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65_535)
    throw new Error(
      `MOSAIC_STATUS_PORT ${JSON.stringify(text)} must be a port number (0 turns the page off)`,
    );
  return port === 0 ? undefined : port;
}

/** The operator's status page: this source feeding a StatusServer on `port` (0: any free one). Undefined when port is. */
export async function serveKubeStatus(
  options: Omit<KubeStatusSourceOptions, "feed"> & { port: number | undefined; host?: string },
): Promise<{ address: string; stop(): Promise<void> } | undefined> {
  if (options.port === undefined) return undefined;
  const feed = new StatusFeed();
  const server = await StatusServer.start({
    host: options.host ?? "0.0.0.0",
    port: options.port,
    feed,
    log: options.log,
  });
  const source = new KubeStatusSource({ ...options, feed });
  // The watches start in the background: an API server slow to answer must not hold the operator's start.
  source
    .start()
    .catch((error: unknown) =>
      options.log.error({ err: (error as Error).message }, "status watches not started"),
    );
  return {
    address: server.address,
    stop: async () => {
      await source.stop();
      await server.close();
    },
  };
}
