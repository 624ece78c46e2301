// Chaos in network namespaces (issue 4, DESIGN.md §5): four real agents,
// each in its own namespace with two veth NICs, and an application on node-0
// reading and writing media files through its local agent the whole time.
// One cluster lives through every fault in turn:
//   1. NIC A of a node that node-0 does not watch on the heartbeat ring goes
//      down, then comes back (node-0 learns it from the node's watchers);
//   2. node-1 is cut off from everyone (both NICs), then rejoins;
//   3. node-3 is killed with kill -9 and stays dead.
// After each, the application stops, reads every file back whole at its last
// acknowledged generation and checks every piece of it is in place.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { VolumeSpec } from "../../src/core/volume.ts";
import { predecessors, ringOrder } from "../../src/membership/ring.ts";
import { channelMoved, mapChanged } from "../helpers/agent-log.ts";
import type { JsonLinesProcess, Line } from "../helpers/netns.ts";
import { netnsUnavailable } from "../helpers/netns.ts";
import { MiB, type ProcessCluster, sleep, startProcessCluster } from "../helpers/process-cluster.ts";
import type { WorkloadArgs, WorkloadSummary } from "./workload.ts";

const WORKLOAD = fileURLToPath(new URL("./workload.ts", import.meta.url));
const skip = await netnsUnavailable();
const OUT_GRACE_MS = 3_000;

const VOLUME: VolumeSpec = {
  name: "media",
  chunkSizeBytes: MiB,
  redundancy: { erasure: { data: 2, parity: 1 } },
  capacityBytes: 2 ** 40,
};

/** Node-0's application: 12 clips of 4 MiB (two stripes each), 2 readers, 1 writer. */
function workloadArgs(pc: ProcessCluster, node: number, extra: Partial<WorkloadArgs> = {}): WorkloadArgs {
  return {
    node: pc.nodeId(node),
    agent: pc.address(node),
    volume: VOLUME.name,
    files: 12,
    sizeBytes: 4 * MiB,
    readers: 2,
    writers: 1,
    ...extra,
  };
}

async function startWorkload(pc: ProcessCluster): Promise<JsonLinesProcess> {
  const app = pc.inNode(0, WORKLOAD, workloadArgs(pc, 0));
  await app.until((l) => l.kind === "ready", 60_000, "workload ready");
  return app;
}

async function stopWorkload(app: JsonLinesProcess): Promise<WorkloadSummary> {
  app.command("stop");
  const line = await app.until((l) => l.kind === "summary", 120_000, "workload summary");
  return line as unknown as WorkloadSummary;
}

function ops(app: JsonLinesProcess, fromMs: number, toMs = Number.POSITIVE_INFINITY): Line[] {
  return app.lines.filter((l) => l.kind === "op" && (l.at as number) >= fromMs && (l.at as number) < toMs);
}

/** The ops in flight when a fault struck at `atMs`, and how long after it the last of them finished. */
function inFlightAt(
  app: JsonLinesProcess,
  atMs: number,
  op?: "read" | "write",
): { count: number; stallMs: number; slowest?: Line } {
  const end = (l: Line) => (l.at as number) + (l.ms as number);
  const caught = ops(app, atMs - 60_000, atMs)
    .filter((l) => end(l) > atMs && (op === undefined || l.op === op))
    .sort((a, b) => end(b) - end(a));
  const slowest = caught[0];
  return slowest === undefined
    ? { count: 0, stallMs: 0 }
    : { count: caught.length, stallMs: end(slowest) - atMs, slowest };
}

function assertClean(summary: WorkloadSummary, what: string): void {
  const detail = `${what}: ${JSON.stringify({ ...summary, acked: undefined })}`;
  assert.equal(summary.readErrors, 0, detail);
  assert.equal(summary.writeFailures, 0, detail);
  assert.equal(summary.stale, 0, detail);
  assert.equal(summary.corrupt, 0, detail);
  assert.equal(summary.piecesNotOk, 0, detail);
  assert.equal(summary.verified, 12, detail);
}

describe("chaos in network namespaces: four agents under continuous I/O", { skip }, () => {
  let pc: ProcessCluster;

  before(async () => {
    pc = await startProcessCluster({
      nodes: 4,
      volumes: [VOLUME],
      netns: true,
      agentArgs: process.env.NO_OUT_GRACE ? [] : ["--out-grace", `${OUT_GRACE_MS}ms`],
    });
  });

  after(async () => {
    await pc?.stop();
  });

  it("NIC A of an unwatched node down: its traffic moves to B within the budget, no client error; back up: A again", async () => {
    // A peer node-0 does not watch: it hears of the dead NIC from the peer's watchers, not from its own heartbeats.
    const ring = ringOrder(pc.cluster.nodes.map((n) => n.id));
    const watched = predecessors(ring, pc.nodeId(0), 1);
    const victim = [1, 2, 3].find((i) => !watched.includes(pc.nodeId(i))) as number;
    const peer = pc.nodeId(victim);
    const app = await startWorkload(pc);
    await sleep(1_000);
    const downAt = Date.now();
    await pc.setLink(victim, "A", false);
    const moved = await pc.waitForLogSince(0, downAt, channelMoved(peer, "B"), 5_000);
    const movedMs = (moved.time as number) - downAt;
    await sleep(3_000);
    const upAt = Date.now();
    await pc.setLink(victim, "A", true);
    const back = await pc.waitForLogSince(0, upAt, channelMoved(peer, "A"), 15_000);
    const backMs = (back.time as number) - upAt;
    await sleep(1_000);
    const summary = await stopWorkload(app);
    const during = ops(app, downAt, upAt);
    // An op in flight when the NIC died must move to B, not wait for the link (or a TCP timeout).
    const { count, stallMs, slowest } = inFlightAt(app, downAt);
    const slowestDuring = Math.max(0, ...during.map((l) => l.ms as number));
    console.log(
      `NIC down: node-0 moved ${peer} (not watched by it) to channel B in ${movedMs} ms; back on A ${backMs} ms after the link returned; ` +
        `${count} ops in flight at the fault done ${stallMs} ms after it; ` +
        `${during.length} ops while down, the slowest ${slowestDuring} ms; ` +
        `${summary.reads} reads, ${summary.writes} writes, ${summary.writeRetries} write retries`,
    );
    assert.ok(
      movedMs <= 1_000,
      `channel B took ${movedMs} ms (budget 300 ms, 1 s allowed on a loaded machine)`,
    );
    assert.ok(
      during.some((l) => l.op === "read" && l.ok === true),
      "reads completed while NIC A was down",
    );
    assert.ok(
      stallMs <= 2_000,
      `ops in flight at the fault finished only ${stallMs} ms after it: ${JSON.stringify(slowest)}`,
    );
    assert.equal(summary.writeRetries, 0, "a NIC failure costs no write a retry");
    assertClean(summary, "NIC down");
    // A NIC failure is not a node failure: no map change.
    assert.ok(
      !pc.log(0).some((l) => (l.time as number) >= downAt && l.msg === "membership agreed on a map"),
      "the map changed over a NIC failure",
    );
  });

  it("node-1 cut off from everyone: reads and writes go around it; rejoined, it serves only current data", async () => {
    const app = await startWorkload(pc);
    await sleep(1_000);
    const cutAt = Date.now();
    await pc.partition(1, true);
    const down = await pc.waitForLogSince(0, cutAt, mapChanged("node-1", "down"), 5_000);
    const downMs = (down.time as number) - cutAt;
    await sleep(1_000);
    const healAt = Date.now();
    await pc.partition(1, false);
    await sleep(3_000);
    const summary = await stopWorkload(app);
    // Reads in flight to node-1 at the cut end with the agreed map (then go around it), not at keepalive (15 s).
    const cut = inFlightAt(app, cutAt, "read");
    const cutWrites = inFlightAt(app, cutAt, "write");
    assertClean(summary, "partition");
    // Through node-1's own agent, every file must be exactly what was last acknowledged.
    const check = pc.inNode(1, WORKLOAD, workloadArgs(pc, 1, { verifyOnly: true, expect: summary.acked }));
    const seen = (await check.until(
      (l) => l.kind === "summary",
      120_000,
      "node-1 verification",
    )) as unknown as WorkloadSummary;
    console.log(
      `partition: node-1 agreed down ${downMs} ms after the cut; ${cut.count} reads in flight at the cut done ` +
        `${cut.stallMs} ms after it, ${cutWrites.count} writes ${cutWrites.stallMs} ms after it; ` +
        `healed at +${healAt - cutAt} ms; ${summary.writeRetries} write retries; ` +
        `node-0 ${summary.reads} reads, ${summary.writes} writes; node-1 verified ${seen.verified} files`,
    );
    assert.ok(downMs <= 2_000, `node-1 agreed down after ${downMs} ms (budget 1 s)`);
    assert.ok(
      cut.stallMs <= downMs + 1_500,
      `reads in flight at the cut finished only ${cut.stallMs} ms after it: ${JSON.stringify(cut.slowest)}`,
    );
    assertClean(seen, "node-1 after the partition");
  });

  it("node-3 killed with kill -9: degraded reads, no client error, rebuilt onto the others", async () => {
    const app = await startWorkload(pc);
    await sleep(1_000);
    const killAt = Date.now();
    await pc.kill9(3);
    const out = await pc.waitForLogSince(0, killAt, mapChanged("node-3", "out"), OUT_GRACE_MS + 10_000);
    const rebuilt = await Promise.all(
      [0, 1, 2].map((i) =>
        pc.waitForLogSince(
          i,
          out.time as number,
          (l) => l.msg === "rebuild pass done" && (l.pending as number) === 0,
          60_000,
        ),
      ),
    );
    const bytes = rebuilt.reduce((sum, l) => sum + (l.bytes as number), 0);
    const doneMs = Math.max(...rebuilt.map((l) => l.time as number)) - (out.time as number);
    const summary = await stopWorkload(app);
    console.log(
      `kill -9: node-3 out ${(out.time as number) - killAt} ms after the kill (grace ${OUT_GRACE_MS} ms); ` +
        `${(bytes / MiB).toFixed(1)} MiB rebuilt in ${doneMs} ms; ${summary.reads} reads, ${summary.writes} writes, ` +
        `${summary.writeRetries} write retries`,
    );
    assertClean(summary, "kill -9");
  });
});
