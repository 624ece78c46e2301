// node --external-memory-accounted-in-global-limit --initial-heap-size=128 bench/tls.ts
// The cost of the agents' mutual TLS on the stripe path: striped put and get
// of one file over three local agent processes (erasure 2+1), on a cluster
// with TLS (as `mosaic up` runs it) and on one started --insecure, in the
// same run, rounds interleaved so both see the same machine. Medians.
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import type { LocalCluster } from "../node-agent/src/cli/local-cluster.ts";
import { planLocalCluster } from "../node-agent/src/cli/local-plan.ts";
import { ClusterClient } from "../node-agent/src/client/cluster-client.ts";
import { benchArgs, repeatedBlock, startBenchCluster } from "./lib/cluster.ts";
import { median, round } from "./lib/stats.ts";

const MiB = 1024 * 1024;
const { sizeBytes, rounds, basePort } = benchArgs("bench/tls.ts");

interface Side {
  name: "tls" | "insecure";
  dir: string;
  cluster: LocalCluster;
  client: ClusterClient;
  put: number[];
  get: number[];
}

async function start(name: Side["name"], port: number): Promise<Side> {
  const dir = await mkdtemp(join("/dev/shm", `mosaic-bench-tls-${name}-`));
  const plan = planLocalCluster({
    nodes: 3,
    dir,
    basePort: port,
    capacityBytes: 4 * sizeBytes,
    insecure: name === "insecure",
  });
  for (const v of plan.cluster.volumes) v.capacityBytes = 2 * sizeBytes;
  const cluster = await startBenchCluster(plan);
  const client = await ClusterClient.connect(plan.agents.map((a) => a.addresses[0]));
  return { name, dir, cluster, client, put: [], get: [] };
}

async function timedRead(body: AsyncIterable<Buffer>): Promise<number> {
  const started = performance.now();
  let received = 0;
  for await (const part of body) received += part.length;
  if (received !== sizeBytes) throw new Error(`read ${received} of ${sizeBytes} bytes`);
  return received / 1e6 / ((performance.now() - started) / 1000);
}

async function round1(side: Side, name: string, record: boolean): Promise<void> {
  const started = performance.now();
  await side.client.put("media", name, repeatedBlock(sizeBytes), sizeBytes);
  const put = sizeBytes / 1e6 / ((performance.now() - started) / 1000);
  const get = await timedRead((await side.client.read("media", name)).body);
  await side.client.agent.delete("media", name);
  if (record) {
    side.put.push(put);
    side.get.push(get);
  }
}

const sides: Side[] = [];
try {
  sides.push(await start("tls", basePort));
  sides.push(await start("insecure", basePort + 20));
  // One round each unmeasured: JIT, heap growth, first connections and handshakes.
  for (const side of sides) await round1(side, "bench/warm-up.bin", false);
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 === 0 ? sides : [...sides].reverse())
      await round1(side, `bench/round-${r}.bin`, true);
    console.log(
      `# round ${r}: ${sides.map((s) => `${s.name} put ${round(s.put[r] as number)} get ${round(s.get[r] as number)} MB/s`).join("; ")}`,
    );
  }
  const [tls, plain] = sides as [Side, Side];
  const [tp, tg, ip, ig] = [median(tls.put), median(tls.get), median(plain.put), median(plain.get)];
  console.log(
    `# ${round(sizeBytes / MiB)} MiB file, erasure 2+1, 1 MiB chunks, 3 agents each, data in /dev/shm, ${rounds} rounds`,
  );
  console.log(
    `tls put_MBps=${round(tp)} get_MBps=${round(tg)} insecure put_MBps=${round(ip)} get_MBps=${round(ig)} ` +
      `put_tls/insecure=${round(tp / ip, 2)} get_tls/insecure=${round(tg / ig, 2)}`,
  );
} finally {
  for (const side of sides) {
    side.client.close();
    await side.cluster.stop();
    await rm(side.dir, { recursive: true, force: true });
  }
}
