// Waiting out gRPC's reconnect backoff. A peer that refused a connection is
// retried by grpc-js only after a backoff (≤ 2 s), failing calls at once
// meanwhile. PeerClients gives such a call the channel's next connect
// attempt: a peer that starts after its callers answers their first calls,
// a peer that stays dead costs one bounded wait and then fails fast, and a
// channel the heartbeats (or the map) have down is not waited for at all.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Agent } from "../../src/agent.ts";
import type { ClusterMap, NodeState } from "../../src/core/cluster-map.ts";
import { isMosaicError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import type { ChannelState } from "../../src/membership/channel-detector.ts";
import { PeerClients } from "../../src/rpc/peer-client.ts";
import { RECONNECT_WAIT_MS, worthWaiting } from "../../src/rpc/reconnect.ts";
import { freePort } from "../helpers/process-cluster.ts";

const { READY, TRANSIENT_FAILURE, IDLE, CONNECTING, SHUTDOWN } = grpc.connectivityState;

describe("worthWaiting: which failed calls wait for the channel's next connect attempt", () => {
  const base = {
    connectivity: TRANSIENT_FAILURE,
    heartbeat: "up" as ChannelState,
    node: "up" as NodeState,
    gaveUp: false,
  };
  test("a channel in backoff to a node that is up, heard or not watched: wait", () => {
    assert.equal(worthWaiting(base), true);
    assert.equal(worthWaiting({ ...base, heartbeat: undefined }), true);
    assert.equal(worthWaiting({ ...base, heartbeat: "returning" }), true);
    assert.equal(worthWaiting({ ...base, connectivity: IDLE }), true);
    assert.equal(worthWaiting({ ...base, connectivity: CONNECTING }), true);
  });
  test("connected, closed, down by heartbeats or map, or already waited for in this episode: no wait", () => {
    assert.equal(worthWaiting({ ...base, connectivity: READY }), false);
    assert.equal(worthWaiting({ ...base, connectivity: SHUTDOWN }), false);
    assert.equal(worthWaiting({ ...base, heartbeat: "down" }), false);
    assert.equal(worthWaiting({ ...base, node: "down" }), false);
    assert.equal(worthWaiting({ ...base, node: "out" }), false);
    assert.equal(worthWaiting({ ...base, node: undefined }), false);
    assert.equal(worthWaiting({ ...base, gaveUp: true }), false);
  });
});

describe("PeerClients against peers that are not listening (yet)", { timeout: 60_000 }, () => {
  let root: string;
  const agents: Agent[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-reconnect-"));
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.stop(200)));
    await rm(root, { recursive: true, force: true });
  });

  async function closedAddresses(): Promise<[string, string]> {
    return [`127.0.0.1:${await freePort("127.0.0.1")}`, `127.0.0.2:${await freePort("127.0.0.2")}`];
  }

  function clientsFor(
    addresses: [string, string],
    options: { state?: NodeState; heartbeat?: ChannelState } = {},
  ): PeerClients {
    const map: ClusterMap = { epoch: 1, nodes: [{ id: "x", addresses, state: options.state ?? "up" }] };
    // An agent's PeerClients; the heartbeats know nothing of "x" unless told (a peer not watched here).
    return new PeerClients({ map: () => map, log: silentLogger(), channelState: () => options.heartbeat });
  }

  async function timed<T>(work: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
    const started = performance.now();
    try {
      const value = await work;
      return { ms: performance.now() - started, value };
    } catch (error) {
      return { ms: performance.now() - started, error };
    }
  }

  test("a peer that starts after its caller: the first call waits for it instead of failing", async () => {
    const addresses = await closedAddresses();
    const peers = clientsFor(addresses);
    try {
      const call = timed(peers.usage("x"));
      await new Promise((resolve) => setTimeout(resolve, 700));
      agents.push(
        await Agent.start({
          nodeId: "x",
          listen: addresses,
          dataDir: join(root, "late"),
          capacityBytes: 12_345_678,
          map: { epoch: 0, nodes: [] },
          volumes: [],
          log: silentLogger(),
        }),
      );
      const { ms, value, error } = await call;
      assert.equal(error, undefined, String(error));
      assert.equal(value?.capacityBytes, 12_345_678);
      assert.ok(ms >= 700 && ms < RECONNECT_WAIT_MS + 1_500, `answered after ${Math.round(ms)} ms`);
      assert.equal(peers.callsInFlight, 0);
      // The other channel's wait ends by itself when it connects too (or at its bound).
      for (let i = 0; i < 60 && peers.reconnectWaits > 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(peers.reconnectWaits, 0);
      console.log(`peer started 700 ms after the call; the call was answered after ${Math.round(ms)} ms`);
    } finally {
      peers.close();
    }
  });

  test("a peer that stays dead: one bounded wait, then calls fail at once with both channels named", async () => {
    const peers = clientsFor(await closedAddresses());
    try {
      const first = await timed(peers.usage("x"));
      assert.ok(isMosaicError(first.error, "MOSAIC_ERR_PEER_UNAVAILABLE"), String(first.error));
      assert.match(
        (first.error as Error).message,
        /x: unreachable on channel A \(x@127\.0\.0\.1:\d+: .*\) and channel B \(x@127\.0\.0\.2:\d+: .*\)/,
      );
      assert.ok(
        first.ms >= RECONNECT_WAIT_MS - 100 && first.ms < RECONNECT_WAIT_MS + 2_000,
        `first call failed after ${Math.round(first.ms)} ms`,
      );
      const second = await timed(peers.usage("x"));
      assert.ok(isMosaicError(second.error, "MOSAIC_ERR_PEER_UNAVAILABLE"));
      assert.ok(second.ms < 1_000, `second call failed after ${Math.round(second.ms)} ms`);
      const reachable = await timed(peers.reachable("x", 2_500));
      assert.equal(reachable.value, false);
      assert.ok(reachable.ms < 1_000, `reachable() answered after ${Math.round(reachable.ms)} ms`);
      assert.equal(peers.reconnectWaits, 0);
    } finally {
      peers.close();
    }
  });

  test("no wait on a channel the heartbeats have down, or for a node the map has down", async () => {
    for (const options of [{ heartbeat: "down" as const }, { state: "down" as const }]) {
      const peers = clientsFor(await closedAddresses(), options);
      try {
        const { ms, error } = await timed(peers.usage("x"));
        assert.ok(isMosaicError(error, "MOSAIC_ERR_PEER_UNAVAILABLE"));
        assert.ok(ms < 1_500, `${JSON.stringify(options)}: failed after ${Math.round(ms)} ms`);
      } finally {
        peers.close();
      }
    }
  });

  test("the client library (no heartbeats) does not wait: a refused call fails at once, as before", async () => {
    const map: ClusterMap = {
      epoch: 1,
      nodes: [{ id: "x", addresses: await closedAddresses(), state: "up" }],
    };
    const peers = new PeerClients({ map: () => map, log: silentLogger() });
    try {
      const { ms, error } = await timed(peers.usage("x"));
      assert.ok(isMosaicError(error, "MOSAIC_ERR_PEER_UNAVAILABLE"));
      assert.ok(ms < 1_500, `failed after ${Math.round(ms)} ms`);
    } finally {
      peers.close();
    }
  });

  test("a wait ends as soon as the heartbeats find the channels down", async () => {
    let heartbeat: ChannelState | undefined;
    const map: ClusterMap = {
      epoch: 1,
      nodes: [{ id: "x", addresses: await closedAddresses(), state: "up" }],
    };
    const peers = new PeerClients({ map: () => map, log: silentLogger(), channelState: () => heartbeat });
    try {
      const call = timed(peers.usage("x"));
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(peers.reconnectWaits, 2, "waiting on both channels");
      heartbeat = "down";
      peers.healthChanged("x");
      const { ms, error } = await call;
      assert.ok(isMosaicError(error, "MOSAIC_ERR_PEER_UNAVAILABLE"));
      assert.ok(ms < 1_200, `failed ${Math.round(ms)} ms after the call`);
      assert.equal(peers.reconnectWaits, 0);
    } finally {
      peers.close();
    }
  });
});
