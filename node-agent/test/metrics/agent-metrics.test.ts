// An agent's Prometheus metrics, scraped over real HTTP from four real agents
// in this process (real gRPC between them, real UDP heartbeats): node-0 serves
// them on its HTTP gateway, the others on a --metrics listener of their own.
// Bytes per channel follow a put and a get; a channel whose heartbeats go
// silent is a failover and moves the bytes to channel B; a stopped holder
// makes a degraded read; once it is out, the rebuild's bytes show on the node
// that takes its piece. The endpoint answers 10,000 scrapes without its heap
// growing, and nothing but /metrics.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Agent } from "../../src/agent.ts";
import { AgentClient } from "../../src/client/agent-client.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import { MANIFEST_STRIPE } from "../../src/core/placement.ts";
import type { VolumeSpec } from "../../src/core/volume.ts";
import { silentLogger } from "../../src/log.ts";
import { gather, MiB, patternBytes } from "../helpers/in-process-cluster.ts";
import { type Sample, scrape, total } from "./prom-text.ts";

const CHUNK = MiB;
/** One stripe of erasure 2+1: three pieces on three of the four nodes, so one node holds none of it. */
const VOLUME: VolumeSpec = {
  name: "media",
  chunkSizeBytes: CHUNK,
  redundancy: { erasure: { data: 2, parity: 1 } },
  capacityBytes: 2 ** 40,
};
const SIZE = 2 * CHUNK;
const FILE = "clips/one-stripe.bin";
const OUT_GRACE_MS = 1_500;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

describe("agent metrics over /metrics", { timeout: 180_000 }, () => {
  let root: string;
  const agents: Agent[] = [];
  const stopped = new Set<Agent>();
  const clients: AgentClient[] = [];

  const addressOf = (agent: Agent): string => (agent.gateway?.address ?? agent.metricsAddress) as string;
  const clientOf = (agent: Agent): AgentClient => {
    const client = new AgentClient(agent.addresses[0]);
    clients.push(client);
    return client;
  };
  /** Every running agent's samples, by node. */
  const scrapeAll = async (): Promise<Map<Agent, Sample[]>> =>
    new Map(
      await Promise.all(
        agents.filter((a) => !stopped.has(a)).map(async (a) => [a, await scrape(addressOf(a))] as const),
      ),
    );
  const sumOver = (all: Map<Agent, Sample[]>, name: string, where: Record<string, string> = {}): number =>
    [...all.values()].reduce((n, samples) => n + total(samples, name, where), 0);
  /** Polls `agent`'s metric until `ok` holds (at most `ms`); returns its last value. */
  const waitFor = async (
    agent: Agent,
    read: (s: Sample[]) => number,
    ok: (v: number) => boolean,
    ms: number,
  ) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = read(await scrape(addressOf(agent)));
      if (ok(value) || Date.now() > deadline) return value;
      await sleep(100);
    }
  };
  const readBack = async (agent: Agent): Promise<void> => {
    const { body } = await clientOf(agent).get(VOLUME.name, FILE);
    assert.deepEqual(await gather(body), await gather(patternBytes(SIZE, 7)), "the file reads back whole");
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-metrics-"));
    for (let i = 0; i < 4; i++) {
      agents.push(
        await Agent.start({
          nodeId: `node-${i}`,
          listen: ["127.0.0.1:0", "127.0.0.2:0"],
          dataDir: join(root, `node-${i}`),
          capacityBytes: 2 ** 40,
          scrubRateBytesPerSecond: 0,
          outGraceMs: OUT_GRACE_MS,
          // node-0 serves them on its gateway, the others on a listener for /metrics alone.
          ...(i === 0 ? { http: "127.0.0.1:0" } : { metrics: "127.0.0.1:0" }),
          map: { epoch: 0, nodes: [] },
          volumes: [VOLUME],
          log: silentLogger(),
        }),
      );
    }
    const map: ClusterMap = {
      epoch: 1,
      nodes: agents.map((a) => ({ id: a.nodeId, addresses: a.addresses, state: "up" as const })),
    };
    for (const agent of agents) agent.update(map);
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(agents.filter((a) => !stopped.has(a)).map((a) => a.stop(200)));
    await rm(root, { recursive: true, force: true });
  });

  /** The node that holds none of the stripe (reads through it fetch every byte), and the holder of data slot 0. */
  let reader: Agent;
  let holder: Agent;

  test("a put and a get grow channel A's bytes by at least the file's size, and the latencies count them", async () => {
    const before = await scrapeAll();
    const manifest = await clientOf(agents[0] as Agent).put(VOLUME.name, FILE, patternBytes(SIZE, 7), SIZE);
    const afterPut = await scrapeAll();
    const sent = sumOver(afterPut, "mosaic_peer_sent_bytes_total", { channel: "A" });
    assert.ok(
      sent - sumOver(before, "mosaic_peer_sent_bytes_total", { channel: "A" }) >= SIZE,
      `the agents sent at least ${SIZE} bytes to each other on A for the put`,
    );
    const putServed = { service: "mosaic.v1.Files", method: "Put", code: "OK" };
    const node0 = afterPut.get(agents[0] as Agent) as Sample[];
    assert.equal(total(node0, "mosaic_grpc_server_call_duration_seconds_count", putServed), 1);
    assert.ok(total(node0, "mosaic_grpc_server_call_duration_seconds_sum", putServed) > 0);

    const holdings = await Promise.all(
      agents.map(async (a) =>
        (await a.store.pieces(VOLUME.name, manifest.fileId, manifest.version)).filter(
          (k) => k.stripe !== MANIFEST_STRIPE,
        ),
      ),
    );
    reader = agents[holdings.findIndex((keys) => keys.length === 0)] as Agent;
    holder = agents[holdings.findIndex((keys) => keys.some((k) => k.stripe === 0 && k.slot === 0))] as Agent;
    assert.ok(reader !== undefined && holder !== undefined, "three pieces on three of four nodes");

    const received = (s: Sample[], channel: string) =>
      total(s, "mosaic_peer_received_bytes_total", { channel });
    const getPieces = (s: Sample[]) =>
      total(s, "mosaic_peer_call_duration_seconds_count", { method: "GetPiece", channel: "A", code: "OK" });
    const was = await scrape(addressOf(reader));
    await readBack(reader);
    const now = await scrape(addressOf(reader));
    assert.ok(
      received(now, "A") - received(was, "A") >= SIZE,
      `${reader.nodeId} received the whole file on A`,
    );
    assert.ok(getPieces(now) - getPieces(was) >= 2, "each data piece fetched is a GetPiece call timed on A");
  });

  test("the state gauges and the process metrics are there", async () => {
    const samples = await scrape(addressOf(agents[0] as Agent));
    const level = total(samples, "mosaic_load_level");
    assert.ok(level >= 0 && level <= 2, `load level ${level} is 0, 1 or 2`);
    assert.equal(total(samples, "mosaic_cluster_map_epoch"), 1);
    assert.ok(total(samples, "mosaic_process_cpu_seconds_total") > 0, "process metrics, prefixed");
    assert.ok(total(samples, "mosaic_nodejs_heap_size_used_bytes") > 0);
    const peers = new Set(
      samples.filter((s) => s.name === "mosaic_peer_channel_state").map((s) => s.labels.peer),
    );
    assert.ok(peers.size >= 2, "each watched peer's channels have a state (k + 1 = 2 watched)");
    assert.equal(
      total(samples, "mosaic_peer_channel_state", { state: "up" }),
      2 * peers.size,
      "every watched channel up",
    );
  });

  test("the endpoint serves 10,000 scrapes with its heap bounded, and only /metrics", async () => {
    const address = addressOf(agents[0] as Agent);
    const scrapes = async (n: number, concurrency = 8) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next++ < n) {
            const res = await fetch(`http://${address}/metrics`);
            assert.equal(res.status, 200);
            await res.arrayBuffer();
          }
        }),
      );
    };
    const heap = async () => {
      for (let i = 0; i < 3; i++) {
        gc();
        await sleep(20);
      }
      return process.memoryUsage().heapUsed;
    };
    await scrapes(1_000);
    const warm = await heap();
    const started = performance.now();
    await scrapes(10_000);
    const seconds = (performance.now() - started) / 1000;
    const grown = (await heap()) - warm;
    console.log(`10,000 scrapes in ${seconds.toFixed(1)} s; heap ${(grown / MiB).toFixed(2)} MiB after them`);
    assert.ok(grown < 8 * MiB, `heap grew ${(grown / MiB).toFixed(1)} MiB over 10,000 scrapes`);
    const served = total(await scrape(address), "mosaic_http_request_duration_seconds_count", {
      method: "GET",
      status: "200",
    });
    assert.ok(served >= 11_000, "the gateway times its own scrapes too");

    const standalone = (agents[1] as Agent).metricsAddress as string;
    for (const target of [
      `${standalone}/`,
      `${standalone}/metricsx`,
      `${standalone}/metrics/x`,
      `${address}/metricz`,
    ]) {
      const res = await fetch(`http://${target}`);
      await res.arrayBuffer();
      assert.equal(res.status, 404, `GET ${target}`);
    }
    const post = await fetch(`http://${standalone}/metrics`, { method: "POST", body: "x" });
    await post.arrayBuffer();
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
  });

  test("a channel gone silent is a failover, and the holder's piece comes over channel B", async () => {
    assert.ok(reader !== holder);
    const failovers = (s: Sample[]) =>
      total(s, "mosaic_channel_failovers_total", { peer: holder.nodeId, from: "A", to: "B" });
    const was = await scrape(addressOf(reader));
    // The holder's heartbeats on A stop both ways, as with a dead NIC (its gRPC port stays open: only the choice moves).
    holder.heartbeats?.closeChannel("A");
    const moved = await waitFor(reader, failovers, (n) => n > failovers(was), 10_000);
    assert.ok(moved > failovers(was), `${reader.nodeId} moved ${holder.nodeId}'s traffic to B`);
    const before = await scrape(addressOf(reader));
    await readBack(reader);
    const now = await scrape(addressOf(reader));
    const onB = (s: Sample[]) => total(s, "mosaic_peer_received_bytes_total", { channel: "B" });
    assert.ok(onB(now) - onB(before) >= CHUNK, `${holder.nodeId}'s data piece came over channel B`);
  });

  test("a stopped holder makes a degraded read; once it is out the rebuild's bytes grow", async () => {
    const degraded = (s: Sample[]) => total(s, "mosaic_degraded_reads_total", { how: "parity" });
    const was = await scrape(addressOf(reader));
    await holder.stop(200);
    stopped.add(holder);
    await readBack(reader);
    assert.ok(
      degraded(await scrape(addressOf(reader))) > degraded(was),
      "the stripe was decoded from parity",
    );

    // Out after the grace: its slot moves to the one node without a piece of the stripe, the reader.
    const rebuilt = await waitFor(
      reader,
      (s) => total(s, "mosaic_rebuild_bytes_total"),
      (n) => n >= CHUNK,
      30_000,
    );
    assert.ok(rebuilt >= CHUNK, `${reader.nodeId} rebuilt ${rebuilt} bytes, at least the piece`);
    const samples = await scrape(addressOf(reader));
    assert.ok(total(samples, "mosaic_rebuild_pieces_total", { outcome: "rebuilt" }) >= 1);
    assert.ok(total(samples, "mosaic_cluster_map_epoch") > 1, "the map moved on");
  });
});
