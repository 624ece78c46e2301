// npm run bench:ipc — reading a file through the same-node path (request
// FIFO + shared-memory ring) from the local agent, with the data already in
// that agent's page cache, against a Unix-domain socket between two
// processes and memcpy in one process, all measured in this run. Medians.
//
// One agent holding the whole file (replicas 1 on a one-node cluster), so
// every piece is read from its own store: what is measured is the agent →
// application path, not the network. (With replicas 3 on 3 agents the
// load-adaptive holder choice, load/holder-choice.ts, sends reads to the
// other agents over gRPC as soon as the reading agent turns Medium, which a
// busy machine makes it: the figure was then the gRPC piece path's.)
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { planLocalCluster } from "../node-agent/src/cli/local-plan.ts";
import { ClusterClient } from "../node-agent/src/client/cluster-client.ts";
import { IpcClient } from "../node-agent/src/ipc/ipc-client.ts";
import { benchArgs, repeatedBlock, startBenchCluster } from "./lib/cluster.ts";
import { measureSocketMBps } from "./lib/socket-baseline.ts";
import { median, round } from "./lib/stats.ts";

const MiB = 1024 * 1024;

const { sizeBytes, rounds, basePort } = benchArgs("bench:ipc");

function memcpyMBps(totalBytes: number): number {
  const from = Buffer.alloc(MiB, 0x11);
  const to = Buffer.alloc(MiB);
  const started = performance.now();
  for (let copied = 0; copied < totalBytes; copied += MiB) from.copy(to);
  return totalBytes / 1e6 / ((performance.now() - started) / 1000);
}

const memcpy: number[] = [];
const uds: number[] = [];
for (let r = 0; r < rounds; r++) {
  memcpy.push(memcpyMBps(sizeBytes));
  uds.push(await measureSocketMBps("unix", sizeBytes));
}
console.log(`# memcpy ${memcpy.map((v) => round(v)).join(" ")} MB/s (1 MiB blocks, one process)`);
console.log(`# uds    ${uds.map((v) => round(v)).join(" ")} MB/s (two processes, 1 MiB writes)`);

const dir = await mkdtemp(join("/dev/shm", "mosaic-bench-ipc-"));
const plan = planLocalCluster({
  nodes: 1,
  dir,
  basePort: basePort,
  capacityBytes: 4 * sizeBytes,
});
plan.cluster.volumes = [
  { name: "local", chunkSizeBytes: MiB, redundancy: { replicas: 1 }, capacityBytes: 2 * sizeBytes },
];
const cluster = await startBenchCluster(plan);
try {
  const writer = await ClusterClient.connect(plan.agents.map((a) => a.addresses[0]));
  await writer.put("local", "bench/ipc.bin", repeatedBlock(sizeBytes), sizeBytes);
  writer.close();

  const app = await IpcClient.connect({ dir: plan.agents[0]?.ipcDir as string });
  const shm: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    const started = performance.now();
    let received = 0;
    for await (const part of (await app.get("local", "bench/ipc.bin")).body) received += part.length;
    if (received !== sizeBytes) throw new Error(`read ${received} of ${sizeBytes} bytes`);
    // Round 0 warms the page cache, JIT and rings; it is not counted.
    if (r > 0) shm.push(received / 1e6 / ((performance.now() - started) / 1000));
  }
  await app.close();
  console.log(
    `# shm    ${shm.map((v) => round(v)).join(" ")} MB/s (IpcClient.get from the local agent, 4 × 1 MiB slots)`,
  );
  const [s, u, m] = [median(shm), median(uds), median(memcpy)];
  console.log(
    `# ${round(sizeBytes / MiB)} MiB file, one agent holding it all (replicas 1), chunks in ${dir}`,
  );
  console.log(
    `ipc shm_MBps=${round(s)} uds_MBps=${round(u)} memcpy_MBps=${round(m)} shm/uds=${round(s / u, 2)} shm/memcpy=${round(s / m, 3)}`,
  );
} finally {
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
