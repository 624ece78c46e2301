// npm run bench:stripe — striped put and get of one large file over three
// local agent processes (erasure 2+1), against raw TCP between two local
// processes measured in the same run. Medians over rounds.
//
// Agents keep their chunks in /dev/shm by default, so the figure is the
// software path (gRPC, coding, checksums, store) and not this machine's disk;
// `--disk` puts them on the temp directory's disk and also measures that
// disk's fsync'd write rate as a second baseline.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { planLocalCluster } from "../node-agent/src/cli/local-plan.ts";
import { ClusterClient } from "../node-agent/src/client/cluster-client.ts";
import { benchArgs, repeatedBlock, startBenchCluster } from "./lib/cluster.ts";
import { measureDiskWriteMBps } from "./lib/disk-baseline.ts";
import { measureTcpMBps } from "./lib/socket-baseline.ts";
import { median, round } from "./lib/stats.ts";

const MiB = 1024 * 1024;

const { sizeBytes, rounds, basePort, disk } = benchArgs("bench:stripe", { disk: true });

const tcp: number[] = [];
for (let r = 0; r < rounds; r++) tcp.push(await measureTcpMBps(sizeBytes));
console.log(`# tcp  ${tcp.map((v) => round(v)).join(" ")} MB/s (two local processes, 1 MiB writes)`);

const dir = await mkdtemp(join(disk ? tmpdir() : "/dev/shm", "mosaic-bench-stripe-"));
if (disk)
  console.log(
    `# disk ${round(await measureDiskWriteMBps(dir, Math.min(sizeBytes, 512 * MiB)))} MB/s (1 MiB files, each fsync'd, 4 in flight)`,
  );
const plan = planLocalCluster({
  nodes: 3,
  dir,
  basePort: basePort,
  capacityBytes: 4 * sizeBytes,
});
for (const v of plan.cluster.volumes) v.capacityBytes = 2 * sizeBytes;
const cluster = await startBenchCluster(plan);
try {
  const client = await ClusterClient.connect(plan.agents.map((a) => a.addresses[0]));
  const put: number[] = [];
  const get: number[] = [];
  const viaAgent: number[] = [];
  const timed = async (body: AsyncIterable<Buffer>): Promise<number> => {
    const started = performance.now();
    let received = 0;
    for await (const part of body) received += part.length;
    if (received !== sizeBytes) throw new Error(`read ${received} of ${sizeBytes} bytes`);
    return received / 1e6 / ((performance.now() - started) / 1000);
  };
  // One round unmeasured: JIT, heap growth and first connections would otherwise count.
  await client.put("media", "bench/warm-up.bin", repeatedBlock(sizeBytes), sizeBytes);
  await timed((await client.read("media", "bench/warm-up.bin")).body);
  await client.agent.delete("media", "bench/warm-up.bin");
  for (let r = 0; r < rounds; r++) {
    const name = `bench/round-${r}.bin`;
    const started = performance.now();
    await client.put("media", name, repeatedBlock(sizeBytes), sizeBytes);
    put.push(sizeBytes / 1e6 / ((performance.now() - started) / 1000));
    get.push(await timed((await client.read("media", name)).body));
    viaAgent.push(await timed((await client.get("media", name)).body));
    await client.agent.delete("media", name);
    console.log(
      `# round ${r}: put ${round(put[r] as number)} MB/s, get ${round(get[r] as number)} MB/s, ` +
        `get through one agent ${round(viaAgent[r] as number)} MB/s`,
    );
  }
  client.close();
  const [g, p, t] = [median(get), median(put), median(tcp)];
  console.log(`# ${round(sizeBytes / MiB)} MiB file, erasure 2+1, 1 MiB chunks, 3 agents, data in ${dir}`);
  console.log(
    "# put: client -> file's owner -> holders; get: pieces straight from their holders (as a node's agent reads)",
  );
  console.log(`# get through one agent (holders -> agent -> client): ${round(median(viaAgent))} MB/s`);
  console.log(
    `stripe get_MBps=${round(g)} put_MBps=${round(p)} tcp_MBps=${round(t)} get/tcp=${round(g / t, 2)} put/tcp=${round(p / t, 2)}`,
  );
} finally {
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
