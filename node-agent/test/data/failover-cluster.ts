// Real agents in this process that can be stopped and started again on the
// same ports and data directories (a node that fails and returns), and what
// the rebuild and write-around tests check against: every piece of a file,
// where placement puts it, and what each store holds.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, type AgentConfig } from "../../src/agent.ts";
import { AgentClient } from "../../src/client/agent-client.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import { placeFileStripe } from "../../src/core/file-placement.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import { MANIFEST_STRIPE } from "../../src/core/placement.ts";
import type { VolumeSpec } from "../../src/core/volume.ts";
import type { RebuildProgress } from "../../src/data/rebuild.ts";
import { type Logger, silentLogger } from "../../src/log.ts";
import type { PieceKey } from "../../src/storage/chunk-format.ts";
import { isReadCopy } from "../../src/storage/piece-key.ts";
import { gather, patternBytes, TEST_VOLUMES } from "../helpers/in-process-cluster.ts";

export interface FailoverClusterOptions {
  volumes?: VolumeSpec[];
  rebuildRateBytesPerSecond?: number;
  /** Logger of agent i (default silent). */
  log?: (i: number) => Logger;
}

export class FailoverCluster {
  readonly ids: string[];
  readonly agents: (Agent | undefined)[];
  map: ClusterMap;
  readonly #root: string;
  readonly #options: FailoverClusterOptions;
  readonly #clients = new Map<string, AgentClient>();

  private constructor(root: string, agents: Agent[], map: ClusterMap, options: FailoverClusterOptions) {
    this.#root = root;
    this.agents = agents;
    this.ids = agents.map((a) => a.nodeId);
    this.map = map;
    this.#options = options;
  }

  static async start(n: number, options: FailoverClusterOptions = {}): Promise<FailoverCluster> {
    const root = await mkdtemp(join(tmpdir(), "mosaic-failover-"));
    const agents: Agent[] = [];
    for (let i = 0; i < n; i++) {
      agents.push(
        await Agent.start(
          configOf(root, i, ["127.0.0.1:0", "127.0.0.2:0"], { epoch: 0, nodes: [] }, options),
        ),
      );
    }
    const map: ClusterMap = {
      epoch: 1,
      nodes: agents.map((a) => ({ id: a.nodeId, addresses: a.addresses, state: "up" as const })),
    };
    for (const agent of agents) agent.update(map);
    return new FailoverCluster(root, agents, map, options);
  }

  agent(i: number): Agent {
    const agent = this.agents[i];
    if (agent === undefined) throw new Error(`${this.ids[i]} is stopped`);
    return agent;
  }

  running(): Agent[] {
    return this.agents.filter((a) => a !== undefined);
  }

  dataDir(i: number): string {
    return join(this.#root, `node-${i}`);
  }

  indexOf(id: string): number {
    return this.ids.indexOf(id);
  }

  /** A client of agent i on channel A (closed when the agent stops). */
  client(i: number): AgentClient {
    const address = this.agent(i).addresses[0];
    let client = this.#clients.get(address);
    if (client === undefined) {
      client = new AgentClient(address);
      this.#clients.set(address, client);
    }
    return client;
  }

  /** Stops agent i as a failing node would vanish (its heartbeats and sockets go silent); its disk stays. */
  async stopNode(i: number): Promise<void> {
    const agent = this.agent(i);
    this.#clients.get(agent.addresses[0])?.close();
    this.#clients.delete(agent.addresses[0]);
    this.agents[i] = undefined;
    await agent.stop(200);
  }

  /** Starts agent i again on its old ports and data directory, with the current map. */
  async startNode(i: number): Promise<Agent> {
    const entry = this.map.nodes[i];
    if (entry === undefined || this.agents[i] !== undefined) throw new Error(`cannot start node ${i}`);
    const agent = await Agent.start(configOf(this.#root, i, entry.addresses, this.map, this.#options));
    this.agents[i] = agent;
    return agent;
  }

  /** Every running agent adopts `map`. */
  update(map: ClusterMap): void {
    this.map = map;
    for (const agent of this.running()) agent.update(map);
  }

  /** Waits until every running agent's rebuild has finished a pass at the current epoch with nothing left. */
  async rebuildSettled(timeoutMs: number): Promise<RebuildProgress[]> {
    const epoch = this.map.epoch;
    let last: RebuildProgress[] = [];
    await waitFor(
      async () => {
        last = this.running().map((a) => a.rebuild?.progress() as RebuildProgress);
        return last.every((p) => p.state === "idle" && p.epoch === epoch && p.pending === 0 && p.passes > 0);
      },
      timeoutMs,
      () => `rebuild settled at epoch ${epoch}: ${JSON.stringify(last)}`,
    );
    return last;
  }

  async stop(): Promise<void> {
    for (const client of this.#clients.values()) client.close();
    await Promise.all(this.running().map((a) => a.stop(200)));
    await rm(this.#root, { recursive: true, force: true });
  }
}

function configOf(
  root: string,
  i: number,
  listen: [string, string],
  map: ClusterMap,
  options: FailoverClusterOptions,
): AgentConfig {
  const rate = options.rebuildRateBytesPerSecond;
  return {
    nodeId: `node-${i}`,
    listen,
    dataDir: join(root, `node-${i}`),
    capacityBytes: 2 ** 40,
    scrubRateBytesPerSecond: 0,
    ...(rate === undefined ? {} : { rebuildRateBytesPerSecond: rate }),
    map,
    volumes: options.volumes ?? TEST_VOLUMES,
    log: options.log?.(i) ?? silentLogger(),
  };
}

/** Polls `condition` until it holds; fails after `timeoutMs` saying what was awaited. Returns the ms it took. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: () => string,
): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await condition()) return performance.now() - started;
    if (performance.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await sleep(50);
  }
}

/** Every piece of the file's current version (manifest copies included) and the node placement puts it on. */
export function placedPieces(map: ClusterMap, m: FileManifest): { key: PieceKey; node: string }[] {
  const pieces: { key: PieceKey; node: string }[] = [];
  const stripes = m.deleted ? 0 : m.stripes;
  for (let stripe = MANIFEST_STRIPE; stripe < stripes; stripe++) {
    placeFileStripe(map, m, stripe).forEach((node, slot) => {
      pieces.push({ key: { volume: m.volume, fileId: m.fileId, version: m.version, stripe, slot }, node });
    });
  }
  return pieces;
}

/** Placement's pieces that are not on their node: "stripe/slot@node" for each. */
export async function missingPieces(
  cluster: FailoverCluster,
  map: ClusterMap,
  m: FileManifest,
): Promise<string[]> {
  const missing: string[] = [];
  for (const { key, node } of placedPieces(map, m)) {
    const agent = cluster.agents[cluster.indexOf(node)];
    if (agent === undefined || (await agent.store.stat(key)) === undefined) {
      missing.push(`${key.stripe}/${key.slot}@${node}`);
    }
  }
  return missing;
}

/** Pieces of the file's current version that running agents hold although placement does not put them there. */
export async function strayPieces(
  cluster: FailoverCluster,
  map: ClusterMap,
  m: FileManifest,
): Promise<string[]> {
  const placed = new Set(placedPieces(map, m).map(({ key, node }) => `${key.stripe}/${key.slot}@${node}`));
  const stray: string[] = [];
  for (const agent of cluster.running()) {
    for (const key of await agent.store.pieces(m.volume, m.fileId, m.version)) {
      // A temporary read copy (a hot stripe under the test's own reads) is placed by load, not by the map.
      if (isReadCopy(key)) continue;
      const where = `${key.stripe}/${key.slot}@${agent.nodeId}`;
      if (!placed.has(where)) stray.push(where);
    }
  }
  return stray;
}

/** A file a test wrote: enough to read it back and compare every byte. */
export interface Written {
  volume: string;
  name: string;
  size: number;
  seed: number;
  manifest: FileManifest;
}

/** Reads `file` through node `via` and checks its version and every byte. */
export async function expectWhole(cluster: FailoverCluster, via: number, file: Written): Promise<void> {
  const { manifest, body } = await cluster.client(via).get(file.volume, file.name);
  assert.equal(manifest.version, file.manifest.version, `${file.name}: version`);
  assert.ok(
    (await gather(body)).equals(await gather(patternBytes(file.size, file.seed))),
    `${file.name} read through node-${via}`,
  );
}
