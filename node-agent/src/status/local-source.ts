// The local cluster's status source (`mosaic up`): every second, asks each
// agent on both its addresses for the cluster (map, rebuild) and reads its
// metrics from its gateway (load level, what its heartbeats hear), then
// publishes the snapshot (local-view.ts) to the feed. One round at a time;
// every call is bounded, so a dead agent costs a timeout, not a stall.

import type { ChannelAnswer } from "../cli/node-status.ts";
import { AgentClient } from "../client/agent-client.ts";
import type { ClusterFile } from "../config.ts";
import type { Logger } from "../log.ts";
import { type AgentReadings, agentReadings } from "./agent-readings.ts";
import { localSnapshot } from "./local-view.ts";
import type { StatusFeed } from "./status-feed.ts";
import type { StatusSnapshot } from "./view-model.ts";

export interface LocalSourceOptions {
  cluster: ClusterFile;
  /** host:port of each node's HTTP gateway (its /metrics), in cluster.nodes order; undefined: none. */
  gateways: (string | undefined)[];
  capacityBytes: number | null;
  feed: StatusFeed;
  log: Logger;
  /** Between the end of one round and the start of the next; 1 s by default. */
  intervalMs?: number;
}

/** Under the interval, so a round with a dead agent still ends before the next is due. */
const CALL_TIMEOUT_MS = 800;

export class LocalStatusSource {
  readonly #options: LocalSourceOptions;
  readonly #clients: AgentClient[][];
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;

  constructor(options: LocalSourceOptions) {
    this.#options = options;
    this.#clients = options.cluster.nodes.map((n) => n.addresses.map((a) => new AgentClient(a)));
  }

  /** Takes the first snapshot, then one per interval until stop(). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round;
    for (const client of this.#clients.flat()) client.close();
  }

  /** One round: every agent asked, in parallel. */
  async observe(): Promise<StatusSnapshot> {
    const { cluster, gateways, capacityBytes } = this.#options;
    const [answers, readings] = await Promise.all([
      Promise.all(this.#clients.map((clients) => Promise.all(clients.map(ask)))),
      Promise.all(gateways.map((g) => (g === undefined ? undefined : readMetrics(g)))),
    ]);
    return localSnapshot({
      file: cluster,
      volumes: cluster.volumes,
      answers,
      readings,
      capacityBytes,
      takenAt: new Date().toISOString(),
    });
  }

  async #tick(): Promise<void> {
    const round = this.observe().then(
      (snapshot) => void this.#options.feed.publish(snapshot),
      (error: unknown) => this.#options.log.warn({ err: (error as Error).message }, "status round failed"),
    );
    this.#round = round;
    await round;
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), this.#options.intervalMs ?? 1_000);
    this.#timer.unref();
  }
}

async function ask(client: AgentClient): Promise<ChannelAnswer> {
  try {
    return { address: client.address, info: await client.cluster(CALL_TIMEOUT_MS) };
  } catch (error) {
    return { address: client.address, error: (error as Error).message };
  }
}

async function readMetrics(gateway: string): Promise<AgentReadings | undefined> {
  try {
    const answer = await fetch(`http://${gateway}/metrics`, { signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
    if (!answer.ok) return undefined;
    return agentReadings(await answer.text());
  } catch {
    return undefined;
  }
}
