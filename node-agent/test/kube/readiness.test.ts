// Readiness as kubelet checks it: a real grpc.health.v1.Health/Check call,
// with the service name and port the DaemonSet's probe gives, against a real
// agent on both its channels and on the probe-only server the Kubernetes
// agent starts on the pod IP. Not ready until it is up in the map it holds;
// not ready when the map has it down; not ready from the moment it stops.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Agent } from "../../src/agent.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import { type ProbeServer, startProbeServer } from "../../src/kube/probe-server.ts";
import { silentLogger } from "../../src/log.ts";
import { readinessOf } from "../../src/rpc/health.ts";
import { daemonSetProbe, healthCheck } from "./health-check.ts";

const check = (address: string, service: string) => healthCheck(address, service);

describe("the agent's readiness over gRPC health, as kubelet probes it", () => {
  let root: string;
  let agent: Agent;
  let probeServer: ProbeServer;
  let probe: { port: number; service: string };
  const map = (state: "up" | "down", epoch: number): ClusterMap => ({
    epoch,
    nodes: [
      { id: "node-0", addresses: agent.addresses, state },
      { id: "node-1", addresses: ["127.0.0.1:9", "127.0.0.2:9"], state: "up" },
    ],
  });
  const everywhere = async () => {
    const addresses = [...agent.addresses, probeServer.address];
    return Promise.all(addresses.map((a) => check(a, probe.service)));
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-readiness-"));
    agent = await Agent.start({
      nodeId: "node-0",
      listen: ["127.0.0.1:0", "127.0.0.2:0"],
      dataDir: join(root, "node-0"),
      capacityBytes: 2 ** 30,
      scrubRateBytesPerSecond: 0,
      map: { epoch: 0, nodes: [] },
      volumes: [],
      log: silentLogger(),
    });
    const port = Number(agent.addresses[0].split(":")[1]);
    probe = daemonSetProbe(port);
    // The pod IP: another address, the DaemonSet's probe port (as kube-agent.ts starts it).
    probeServer = await startProbeServer(agent.health, "127.0.0.3", probe.port, silentLogger());
  });

  after(async () => {
    await agent?.stop().catch(() => {});
    await probeServer?.stop();
    await rm(root, { recursive: true, force: true });
  });

  test("the DaemonSet's probe asks the port the agent listens on and the service it reports under", () => {
    assert.equal(`127.0.0.1:${probe.port}`, agent.addresses[0]);
    assert.equal(probe.service, "");
  });

  test("started but not in the map: NOT_SERVING on both channels and the pod IP", async () => {
    assert.deepEqual(await everywhere(), ["NOT_SERVING", "NOT_SERVING", "NOT_SERVING"]);
    assert.match(agent.health.current.reason, /not in the cluster map/);
  });

  test("up in the map: SERVING; the agents' map has it down: NOT_SERVING; up again: SERVING", async () => {
    agent.update(map("up", 1));
    assert.deepEqual(await everywhere(), ["SERVING", "SERVING", "SERVING"]);
    agent.update(map("down", 2));
    assert.deepEqual(await everywhere(), ["NOT_SERVING", "NOT_SERVING", "NOT_SERVING"]);
    agent.update(map("up", 3));
    assert.deepEqual(await everywhere(), ["SERVING", "SERVING", "SERVING"]);
  });

  test("a service nobody reports under is NOT_FOUND, as the health protocol says", async () => {
    await assert.rejects(check(agent.addresses[0], "mosaic.nothing"), { code: grpc.status.NOT_FOUND });
  });

  test("stopping: NOT_SERVING from the moment stop begins", async () => {
    const stopping = agent.stop();
    assert.equal(await check(probeServer.address, probe.service), "NOT_SERVING");
    await stopping;
    assert.equal(await check(probeServer.address, probe.service), "NOT_SERVING");
  });
});

describe("readiness from the map", () => {
  const node = (state: "up" | "down" | "out") => ({
    epoch: 4,
    nodes: [{ id: "n1", addresses: ["a:1", "b:1"] as [string, string], state }],
  });
  test("up: ready; down, out, absent or stopping: not, saying why", () => {
    assert.deepEqual(readinessOf({ self: "n1", map: node("up"), stopping: false }).serving, true);
    assert.match(
      readinessOf({ self: "n1", map: node("down"), stopping: false }).reason,
      /down in the cluster map/,
    );
    assert.match(
      readinessOf({ self: "n1", map: node("out"), stopping: false }).reason,
      /out in the cluster map/,
    );
    assert.match(
      readinessOf({ self: "n2", map: node("up"), stopping: false }).reason,
      /not in the cluster map/,
    );
    assert.equal(readinessOf({ self: "n1", map: node("up"), stopping: true }).reason, "stopping");
  });
});
