// What the cluster benchmarks share: their command line, a local cluster of
// agent processes, and a cheap source of file bytes.
import { parseArgs } from "node:util";
import { LocalCluster } from "../../node-agent/src/cli/local-cluster.ts";
import type { LocalPlan } from "../../node-agent/src/cli/local-plan.ts";
import { parseSize } from "../../node-agent/src/cli/parse.ts";

const MiB = 1024 * 1024;

export interface BenchArgs {
  sizeBytes: number;
  rounds: number;
  basePort: number;
  disk: boolean;
}

/** --size, --rounds, --base-port (random by default, so two runs do not collide) and --disk where offered. */
export function benchArgs(script: string, options: { disk?: boolean } = {}): BenchArgs {
  const { values } = parseArgs({
    options: {
      size: { type: "string", default: "1GiB" },
      rounds: { type: "string", default: "5" },
      disk: { type: "boolean", default: false },
      "base-port": { type: "string", default: String(30_000 + 2 * Math.floor(Math.random() * 5_000)) },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    const disk = options.disk ? " [--disk]" : "";
    console.log(`usage: npm run ${script} [-- --size 1GiB] [--rounds 5]${disk} [--base-port 30000]`);
    process.exit(0);
  }
  return {
    sizeBytes: parseSize(values.size),
    rounds: Number(values.rounds),
    basePort: Number(values["base-port"]),
    disk: options.disk === true && values.disk,
  };
}

/** Starts the plan's agents and waits for them; an agent that dies ends the benchmark. */
export async function startBenchCluster(plan: LocalPlan): Promise<LocalCluster> {
  const cluster = await LocalCluster.start(plan, (exit) => {
    console.error(
      `agent ${exit.agent.id} exited (code ${exit.code}, signal ${exit.signal}); see ${exit.agent.logFile}`,
    );
    process.exit(1);
  });
  await cluster.waitReady(20_000);
  return cluster;
}

/** `sizeBytes` of file data as 1 MiB views of one buffer: the source costs nothing to produce. */
export async function* repeatedBlock(sizeBytes: number): AsyncGenerator<Buffer> {
  const block = Buffer.alloc(MiB, 0x5a);
  for (let sent = 0; sent < sizeBytes; sent += MiB) {
    yield sent + MiB <= sizeBytes ? block : block.subarray(0, sizeBytes - sent);
  }
}
