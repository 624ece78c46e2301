// StripedVolume status and agent readiness on a real kube-apiserver: three
// real `mosaic agent --kubernetes` processes (the chart's RBAC, a slow
// rebuild so it can be watched), the operator's controllers in process as
// main.ts runs them. A volume applied with kubectl becomes Healthy with its
// pieces counted; kill -9 of an agent makes it Degraded, then Rebuilding
// with progress once the node is out and its pieces move, then Healthy again
// with every piece back on two live nodes; `kubectl get sv` shows it, and
// each phase change is an Event. Each agent answers kubelet's gRPC readiness
// probe on its pod IP, as the DaemonSet's probe asks. Deleting the volume
// removes its pieces from every live agent before the object goes.
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { ControlPlane } from "../../e2e/control-plane/control-plane.ts";
import { silentLogger } from "../../node-agent/src/log.ts";
import { putTestFile, testFile } from "../../node-agent/test/helpers/cluster-files.ts";
import { daemonSetProbe, healthCheck } from "../../node-agent/test/kube/health-check.ts";
import { CLUSTER_MAP_CONFIGMAP, CLUSTER_MAP_KEY, decodeClusterMap } from "../src/api/cluster-map.ts";
import type { StripedVolume, StripedVolumeStatus } from "../src/api/types.ts";
import type { Operator } from "../src/framework/operator.ts";
import { objectPath, STRIPED_VOLUMES } from "../src/framework/resources.ts";
import { runMembershipAndVolumes } from "../src/membership-and-volumes.ts";
import { VOLUME_DATA_FINALIZER } from "../src/striped-volume-controller.ts";
import { eventually } from "./helpers/eventually.ts";
import { eventsOn, type KubeAgents } from "./helpers/kube-agents.ts";
import { type OperatorWithAgents, startOperatorWithAgents } from "./helpers/operator-with-agents.ts";

const NS = "mosaic-system";
const LEASE_SECONDS = 2;
const GRACE_MS = 5_000;
const VOLUME = "clips";
const MiB = 2 ** 20;
/** Slow enough that a third of 48 MiB of pieces takes seconds to move. */
const REBUILD_RATE = "2MiB";
const FILES = 3;
const FILE_BYTES = 8 * MiB;
/** replicas 2: each 1 MiB stripe twice, and the manifest on m + 1 = 2 nodes. */
const PIECES = FILES * ((FILE_BYTES / MiB) * 2 + 2);
const WAIT_MS = 90_000;

/** Chunk files under a directory (none if it is gone). */
function chunkFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".chunk")).length;
}

describe("StripedVolume status and agent readiness, on a real kube-apiserver", () => {
  let cp: ControlPlane;
  let operator: Operator;
  let agents: KubeAgents;
  let setting: OperatorWithAgents | undefined;
  const nodes = [0, 1, 2];
  const logs = () => nodes.map((i) => `--- ${agents.nodeName(i)}\n${agents.logTail(i)}`).join("\n");

  const status = async (): Promise<StripedVolumeStatus | undefined> =>
    (await operator.rest.get<StripedVolume>(objectPath(STRIPED_VOLUMES, VOLUME))).status;
  /** Polls the status until `ok`, recording every phase seen on the way. */
  const until = async (ok: (s: StripedVolumeStatus) => boolean, what: string, seen: string[] = []) => {
    let last: StripedVolumeStatus | undefined;
    await eventually(
      async () => {
        last = await status();
        if (last?.phase !== undefined && seen.at(-1) !== last.phase) seen.push(last.phase);
        return last !== undefined && ok(last);
      },
      WAIT_MS,
      `${what}; last status ${JSON.stringify(last)}\n${logs()}`,
    );
    return last as StripedVolumeStatus;
  };
  const events = async () =>
    (await eventsOn(cp, "StripedVolume", VOLUME)).map((e) => `${e.type} ${e.reason}: ${e.message}`);

  before(async () => {
    setting = await startOperatorWithAgents(
      NS,
      (o) => runMembershipAndVolumes(o, { namespace: NS, outGraceMs: GRACE_MS, log: silentLogger() }),
      {
        count: nodes.length,
        leaseSeconds: LEASE_SECONDS,
        outGraceMs: 600_000,
        agentArgs: ["--rebuild-rate", REBUILD_RATE],
      },
    );
    ({ cp, operator, agents } = setting);
  });

  after(() => setting?.stop());

  test("each agent answers kubelet's probe on its pod IP: SERVING once the map has it up", async () => {
    await eventually(
      async () => {
        const r = await cp.kubectl(["get", "cm", "-n", NS, CLUSTER_MAP_CONFIGMAP, "-o", "json"], {
          allowFailure: true,
        });
        if (r.code !== 0) return false;
        const map = decodeClusterMap(JSON.parse(r.stdout).data[CLUSTER_MAP_KEY], "test");
        return map.nodes.filter((n) => n.state === "up").length === nodes.length;
      },
      WAIT_MS,
      `a map with the three up\n${logs()}`,
    );
    const probe = daemonSetProbe(agents.port);
    assert.equal(probe.port, agents.port);
    const answers = async () =>
      Promise.all(
        nodes.map((i) => healthCheck(`${agents.podIP(i)}:${probe.port}`, probe.service).catch(String)),
      );
    await eventually(
      async () => (await answers()).every((a) => a === "SERVING"),
      WAIT_MS,
      "every agent SERVING on its pod IP",
    );
  });

  test("a volume applied with kubectl becomes Healthy; its pieces are counted once written", async () => {
    const sv = {
      apiVersion: "mosaic.dev/v1alpha1",
      kind: "StripedVolume",
      metadata: { name: VOLUME },
      spec: { chunkSize: "1Mi", redundancy: { replicas: 2 }, capacity: "10Gi" },
    };
    const applied = performance.now();
    await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(sv) });
    const healthy = await until((s) => s.phase === "Healthy", "volume Healthy");
    const healthyMs = performance.now() - applied;
    assert.equal(healthy.redundancy, "replicas 2");
    assert.equal(healthy.observedGeneration, 1);
    assert.deepEqual(
      healthy.conditions?.map((c) => `${c.type}=${c.status}`),
      ["Ready=True", "Degraded=False", "Rebuilding=False"],
    );
    for (let f = 0; f < FILES; f++)
      await putTestFile(agents.client(f), testFile(VOLUME, `clip-${f}.mp4`, FILE_BYTES));
    const written = performance.now();
    const counted = await until((s) => s.chunks?.healthy === PIECES, `${PIECES} healthy pieces`);
    assert.equal(counted.phase, "Healthy");
    assert.equal(counted.chunks?.degraded, 0);
    // 48 MiB of data and a few KiB of manifests and headers, rounded to three digits.
    assert.match(counted.used ?? "", /^48(\.\d)?Mi$/);
    const table = (await cp.kubectl(["get", "sv", VOLUME])).stdout;
    assert.match(table, /^NAME\s+PHASE\s+REDUNDANCY\s+SIZE\s+USED\s+HEALTHY\s+DEGRADED\s+AGE$/m);
    assert.match(
      table,
      new RegExp(
        `^${VOLUME}\\s+Healthy\\s+replicas 2\\s+10Gi\\s+48(\\.\\d)?Mi\\s+${PIECES}\\s+0\\s+\\S+$`,
        "m",
      ),
    );
    console.log(
      `# Healthy ${Math.round(healthyMs)} ms after kubectl apply; ${PIECES} pieces counted ${Math.round(performance.now() - written)} ms after the writes\n` +
        table.replace(/^/gm, "# "),
    );
  });

  test("kill -9: Degraded, then Rebuilding with progress once it is out, then Healthy with every piece on two live nodes", async () => {
    const victim = 2;
    const before = (await status()) as StripedVolumeStatus;
    const seen: string[] = [];
    const started = performance.now();
    const since = () => Math.round(performance.now() - started);
    await agents.kill9(victim);
    const degraded = await until((s) => s.phase === "Degraded", "Degraded after the kill", seen);
    const degradedMs = since();
    assert.equal(degraded.conditions?.find((c) => c.type === "Degraded")?.reason, "NodesUnavailable");
    assert.ok((degraded.chunks?.degraded ?? 0) > 0, "the dead node's pieces count as degraded");
    assert.equal((degraded.chunks?.healthy ?? 0) + (degraded.chunks?.degraded ?? 0), before.chunks?.healthy);
    const rebuilding = await until(
      (s) => s.phase === "Rebuilding" && s.rebuild !== undefined,
      "Rebuilding",
      seen,
    );
    const rebuildingMs = since();
    assert.ok((rebuilding.rebuild?.bytesLeft ?? 0) > 0, `bytes left: ${JSON.stringify(rebuilding.rebuild)}`);
    assert.equal(rebuilding.conditions?.find((c) => c.type === "Rebuilding")?.reason, "PiecesMoving");
    const healthy = await until(
      (s) => s.phase === "Healthy" && s.chunks?.healthy === PIECES,
      "Healthy again",
      seen,
    );
    const healthyMs = since();
    assert.equal(healthy.chunks?.degraded, 0);
    assert.equal(healthy.rebuild, undefined, "progress cleared once settled");
    assert.ok((healthy.epoch ?? 0) > (before.epoch ?? 0));
    const phases = seen[0] === "Healthy" ? seen.slice(1) : seen;
    assert.equal(phases[0], "Degraded", `phases seen: ${phases}`);
    assert.ok(phases.indexOf("Rebuilding") > 0 && phases.at(-1) === "Healthy", `phases seen: ${phases}`);
    const said = await events();
    for (const expected of [
      /^Warning Degraded: node-2 down/,
      /^Normal Rebuilding: .*pulling pieces/,
      /^Normal Healthy/,
    ])
      assert.ok(
        said.some((e) => expected.test(e)),
        `${expected} in\n${said.join("\n")}`,
      );
    const table = (await cp.kubectl(["get", "sv", VOLUME])).stdout;
    assert.match(
      table,
      new RegExp(`^${VOLUME}\\s+Healthy\\s+replicas 2\\s+10Gi\\s+\\S+\\s+${PIECES}\\s+0\\s+`, "m"),
    );
    console.log(
      `# after kill -9: Degraded at ${degradedMs} ms, Rebuilding at ${rebuildingMs} ms ` +
        `(first seen: ${((rebuilding.rebuild?.bytesLeft ?? 0) / MiB).toFixed(1)} MiB left, ${Math.round((rebuilding.rebuild?.bytesPerSecond ?? 0) / 1024)} KiB/s, ETA ${rebuilding.rebuild?.etaSeconds ?? "not yet known"}), ` +
        `Healthy at ${healthyMs} ms (Lease ${LEASE_SECONDS} s, grace ${GRACE_MS / 1000} s, rebuild ${REBUILD_RATE}/s per agent); phases ${phases.join(" → ")}`,
    );
  });

  test("kubectl delete sv: the object goes only once the live agents have removed its pieces", async () => {
    const sv = await operator.rest.get<StripedVolume>(objectPath(STRIPED_VOLUMES, VOLUME));
    assert.deepEqual(sv.metadata?.finalizers, [VOLUME_DATA_FINALIZER]);
    const piecesOn = (i: number) => chunkFiles(join(agents.root, agents.nodeName(i), "volumes", VOLUME));
    assert.ok(piecesOn(0) > 0 && piecesOn(1) > 0 && piecesOn(2) > 0, "every node holds pieces before");
    const started = performance.now();
    await cp.kubectl(["delete", "sv", VOLUME, "--wait=false"]);
    let heldBack = false;
    await eventually(
      async () => {
        const r = await cp.kubectl(["get", "sv", VOLUME, "-o", "json"], { allowFailure: true });
        if (r.code === 0) heldBack ||= JSON.parse(r.stdout).metadata.deletionTimestamp !== undefined;
        return r.code !== 0 && /NotFound/.test(r.stderr);
      },
      WAIT_MS,
      `the StripedVolume gone\n${logs()}`,
    );
    const goneMs = Math.round(performance.now() - started);
    assert.ok(heldBack, "the finalizer held the object while the agents deleted");
    assert.equal(piecesOn(0), 0, "node-0's pieces were gone before the object");
    assert.equal(piecesOn(1), 0, "node-1's pieces were gone before the object");
    assert.ok(piecesOn(2) > 0, "the dead node's pieces stay where they are: it is not waited for");
    const said = await events();
    assert.ok(
      said.some((e) => /^Normal DataDeleted: pieces removed from node-0, node-1; node-2 silent/.test(e)),
      said.join("\n"),
    );
    console.log(`# kubectl delete sv: gone ${goneMs} ms later, after both live agents removed its pieces`);
  });
});
