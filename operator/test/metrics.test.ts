// The operator's metrics on a real kube-apiserver: two replicas wired as
// main.ts wires them (leader election, the ClusterNode and StripedVolume
// controllers, the work queues observed), each serving /metrics over real
// HTTP. The one that leads says leader 1 and the other 0; applying
// StripedVolumes with kubectl grows the leader's reconcile count and shows
// in the volumes by phase; the follower reconciles nothing.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type ControlPlane, startControlPlane } from "../../e2e/control-plane/control-plane.ts";
import { silentLogger } from "../../node-agent/src/log.ts";
import { MetricsServer } from "../../node-agent/src/metrics/metrics-http.ts";
import { type Sample, scrape, total } from "../../node-agent/test/metrics/prom-text.ts";
import { Operator } from "../src/framework/operator.ts";
import { runMembershipAndVolumes } from "../src/membership-and-volumes.ts";
import { metricsListenOf, OperatorMetrics, readingsOf } from "../src/metrics.ts";
import { eventually } from "./helpers/eventually.ts";

const NS = "mosaic-system";
const CRDS = join(import.meta.dirname, "../../crds");

function volume(name: string): string {
  return JSON.stringify({
    apiVersion: "mosaic.dev/v1alpha1",
    kind: "StripedVolume",
    metadata: { name },
    spec: {
      chunkSize: "1Mi",
      redundancy: { replicas: 2 },
      capacity: "1Gi",
      networks: { channelA: "mosaic-a", channelB: "mosaic-b" },
    },
  });
}

describe("operator metrics on a real kube-apiserver", { timeout: 180_000 }, () => {
  let cp: ControlPlane;
  const replicas: { operator: Operator; server: MetricsServer }[] = [];

  before(async () => {
    cp = await startControlPlane();
    await cp.installCrds([join(CRDS, "stripedvolumes.yaml"), join(CRDS, "clusternodes.yaml")]);
    await cp.kubectl(["create", "namespace", NS]);
    for (const identity of ["replica-a", "replica-b"]) {
      const metrics = new OperatorMetrics();
      const operator = new Operator({
        kubeconfig: cp.kubeconfig,
        identity,
        log: silentLogger(),
        leaderElection: {
          namespace: NS,
          name: "mosaic-operator",
          leaseDurationMs: 3_000,
          renewDeadlineMs: 2_000,
          retryMs: 300,
        },
        observe: (part) => metrics.queue(part),
      });
      metrics.read(
        readingsOf(
          operator,
          runMembershipAndVolumes(operator, { namespace: NS, outGraceMs: 5_000, log: silentLogger() }),
        ),
      );
      const server = await MetricsServer.start("127.0.0.1:0", metrics.registry, silentLogger());
      replicas.push({ operator, server });
      await operator.start();
    }
  });

  after(async () => {
    for (const r of replicas) await Promise.all([r.operator.stop(), r.server.close()]);
    await cp?.stop();
  });

  const reconciles = (s: Sample[], controller: string) =>
    total(s, "mosaic_operator_reconciles_total", { controller, result: "success" });

  test("the leader says 1 and reconciles; applied volumes grow its count and show by phase", async () => {
    await eventually(() => replicas.some((r) => r.operator.leading), 20_000, "a leader");
    const leader = replicas.find((r) => r.operator.leading) as (typeof replicas)[number];
    const follower = replicas.find((r) => r !== leader) as (typeof replicas)[number];
    const was = await scrape(leader.server.address);
    assert.equal(total(was, "mosaic_operator_leader"), 1);
    assert.equal(total(await scrape(follower.server.address), "mosaic_operator_leader"), 0);

    for (const name of ["clips", "thumbs"]) await cp.kubectl(["apply", "-f", "-"], { input: volume(name) });
    let now: Sample[] = was;
    await eventually(
      async () => {
        now = await scrape(leader.server.address);
        return (
          reconciles(now, "StripedVolume") >= reconciles(was, "StripedVolume") + 2 &&
          total(now, "mosaic_operator_striped_volumes") === 2
        );
      },
      20_000,
      "the leader to reconcile both volumes",
    );
    assert.ok(reconciles(now, "ClusterNode") >= 1, "the membership reconcile ran");
    assert.ok(
      total(now, "mosaic_operator_reconcile_duration_seconds_count", { controller: "StripedVolume" }) >= 2,
    );
    const depths = now
      .filter((x) => x.name === "mosaic_operator_queue_depth")
      .map((x) => x.labels.controller);
    assert.deepEqual(depths.sort(), ["ClusterNode", "StripedVolume"], "each queue's depth is there");
    assert.equal(total(now, "mosaic_operator_cluster_nodes"), 0, "no agents, no ClusterNodes");
    assert.ok(total(now, "mosaic_process_resident_memory_bytes") > 0, "process metrics too");
    const followerNow = await scrape(follower.server.address);
    assert.equal(reconciles(followerNow, "StripedVolume"), 0, "a follower does not act");
    assert.equal(total(followerNow, "mosaic_operator_striped_volumes"), 2, "but its cache is warm");
  });

  test("the listen address: --metrics, MOSAIC_METRICS_PORT (9401 by default, 0 off), bad values named", () => {
    assert.equal(metricsListenOf([], {}), "0.0.0.0:9401");
    assert.equal(metricsListenOf([], { MOSAIC_METRICS_PORT: "9500" }), "0.0.0.0:9500");
    assert.equal(metricsListenOf([], { MOSAIC_METRICS_PORT: "0" }), undefined);
    assert.equal(metricsListenOf(["--metrics", "127.0.0.1:9402"], {}), "127.0.0.1:9402");
    assert.throws(() => metricsListenOf([], { MOSAIC_METRICS_PORT: "http" }), /MOSAIC_METRICS_PORT=http/);
    assert.throws(() => metricsListenOf(["--metrics"], {}), /--metrics {2}must be host:port/);
    assert.throws(() => metricsListenOf(["--metrics", "9402"], {}), /must be host:port/);
  });
});
