// npm run bench:failover — four agents, each in its own network namespace
// with two veth NICs, while an application on node-0 reads media files
// through its local agent without pause:
//   - NIC trials: one peer's `ip link set ethA down`; timed from the command
//     to node-0 moving that peer's traffic to channel B (nic_ms), then the
//     link comes back and traffic returns to A;
//   - node trials: kill -9 of one peer; timed to node-0's agreed map marking
//     it down (node_detect_ms); the agent is restarted and rejoins;
//   - the last kill is left dead: once it is out (after the grace) the
//     survivors rebuild its pieces, unpaced (rebuild_MBps: bytes rebuilt
//     across the survivors over the wall time from out to the last finish).
// Baseline, same run: raw TCP between two of the namespaces over channel A.
// failed_reads counts every read the application saw fail, stale or corrupt.
//
// Needs root and `ip netns` (as the chaos test does).
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseSize } from "../node-agent/src/cli/parse.ts";
import type { VolumeSpec } from "../node-agent/src/core/volume.ts";
import { channelMoved, mapChanged } from "../node-agent/test/helpers/agent-log.ts";
import { type Line, netnsUnavailable } from "../node-agent/test/helpers/netns.ts";
import { MiB, type ProcessCluster, startProcessCluster } from "../node-agent/test/helpers/process-cluster.ts";
import type { WorkloadSummary } from "../node-agent/test/netns/workload.ts";
import { measureNetnsTcpMBps } from "./lib/socket-baseline.ts";
import { median, round } from "./lib/stats.ts";

const { values } = parseArgs({
  options: {
    trials: { type: "string", default: "5" },
    files: { type: "string", default: "24" },
    size: { type: "string", default: "16MiB" },
    grace: { type: "string", default: "10000" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(
    "usage: npm run bench:failover [-- --trials 5] [--files 24] [--size 16MiB] [--grace 10000]\n" +
      "  trials: NIC and node trials each (medians are printed); files × size: the data read, and rebuilt\n" +
      "  grace: ms a dead node stays down before it is out and rebuilt (longer than an agent restart)",
  );
  process.exit(0);
}
const trials = Number(values.trials);
const files = Number(values.files);
const sizeBytes = parseSize(values.size);
const graceMs = Number(values.grace);

const unavailable = await netnsUnavailable();
if (unavailable !== undefined) {
  console.log(`# skipped: ${unavailable}`);
  console.log("failover skipped=1");
  process.exit(0);
}

const WORKLOAD = fileURLToPath(new URL("../node-agent/test/netns/workload.ts", import.meta.url));
const VOLUME: VolumeSpec = {
  name: "media",
  chunkSizeBytes: MiB,
  redundancy: { erasure: { data: 2, parity: 1 } },
  capacityBytes: 2 ** 40,
};
const PEERS = [1, 2, 3];

const pc = await startProcessCluster({
  nodes: 4,
  volumes: [VOLUME],
  netns: true,
  parentDir: "/dev/shm",
  agentArgs: ["--out-grace", `${graceMs}ms`, "--rebuild-rate", "10GiB"],
});
try {
  const lab = pc.lab as NonNullable<ProcessCluster["lab"]>;
  const tcp = await measureNetnsTcpMBps(
    lab.nodes[1]?.ns as string,
    { ns: lab.nodes[2]?.ns as string, host: lab.nodes[2]?.hosts[0] as string },
    512 * MiB,
  );
  console.log(`# raw TCP between two namespaces over channel A: ${round(tcp)} MB/s`);

  const app = pc.inNode(0, WORKLOAD, {
    node: pc.nodeId(0),
    agent: pc.address(0),
    volume: VOLUME.name,
    files,
    sizeBytes,
    readers: 2,
    writers: 0,
  });
  await app.until((l) => l.kind === "ready", 300_000, "the files written");
  console.log(
    `# ${files} files of ${round(sizeBytes / MiB)} MiB written (erasure 2+1, 1 MiB chunks); reading`,
  );

  const nic: number[] = [];
  for (let t = 0; t < trials; t++) {
    const peer = PEERS[t % PEERS.length] as number;
    const at = Date.now();
    await pc.setLink(peer, "A", false);
    const moved = await pc.waitForLogSince(0, at, channelMoved(pc.nodeId(peer), "B"), 10_000);
    nic.push((moved.time as number) - at);
    await new Promise((r) => setTimeout(r, 1_000));
    const upAt = Date.now();
    await pc.setLink(peer, "A", true);
    const back = await pc.waitForLogSince(0, upAt, channelMoved(pc.nodeId(peer), "A"), 20_000);
    console.log(
      `# NIC trial ${t + 1}: ${pc.nodeId(peer)} ethA down → channel B in ${nic[t]} ms; ` +
        `up → channel A again in ${(back.time as number) - upAt} ms (hold-down)`,
    );
  }

  const detect: number[] = [];
  for (let t = 0; t < trials; t++) {
    const peer = PEERS[t % PEERS.length] as number;
    const at = Date.now();
    await pc.kill9(peer);
    const down = await pc.waitForLogSince(0, at, mapChanged(pc.nodeId(peer), "down"), 10_000);
    detect.push((down.time as number) - at);
    const restartAt = Date.now();
    await pc.restart(peer);
    await pc.waitForLogSince(0, restartAt, mapChanged(pc.nodeId(peer), "up"), 20_000);
    console.log(
      `# node trial ${t + 1}: ${pc.nodeId(peer)} kill -9 → agreed down in ${detect[t]} ms; ` +
        `restarted and up again after ${Date.now() - restartAt} ms`,
    );
  }

  const victim = 3;
  const killAt = Date.now();
  await pc.kill9(victim);
  const out = await pc.waitForLogSince(0, killAt, mapChanged(pc.nodeId(victim), "out"), graceMs + 20_000);
  const outAt = out.time as number;
  const rebuilt = await Promise.all(
    [0, 1, 2].map((i) =>
      pc.waitForLogSince(
        i,
        outAt,
        (l) => l.msg === "rebuild pass done" && (l.pending as number) === 0,
        600_000,
      ),
    ),
  );
  const bytes = rebuilt.reduce((sum, l) => sum + (l.bytes as number), 0);
  const seconds = (Math.max(...rebuilt.map((l) => l.time as number)) - outAt) / 1000;
  const rebuildMBps = bytes / 1e6 / seconds;
  console.log(
    `# rebuild: ${pc.nodeId(victim)} out ${outAt - killAt} ms after kill -9 (grace ${graceMs} ms); ` +
      `${round(bytes / MiB, 1)} MiB rebuilt on 3 nodes in ${round(seconds, 2)} s`,
  );

  app.command("stop");
  const summary = (await app.until(
    (l: Line) => l.kind === "summary",
    300_000,
    "summary",
  )) as unknown as WorkloadSummary;
  const failedReads = summary.readErrors + summary.stale + summary.corrupt;
  console.log(
    `# application: ${summary.reads} reads (${round(summary.bytesRead / 1e6)} MB), ${failedReads} failed; ` +
      `${summary.verified} of ${files} files verified whole at the end${summary.errors.length > 0 ? `; ${summary.errors.join("; ")}` : ""}`,
  );
  console.log(`# baseline: raw TCP ${round(tcp)} MB/s; rebuild/tcp=${round(rebuildMBps / tcp, 2)}`);
  console.log(
    `failover nic_ms=${round(median(nic))} node_detect_ms=${round(median(detect))} failed_reads=${failedReads} rebuild_MBps=${round(rebuildMBps)}`,
  );
} finally {
  await pc.stop();
}
