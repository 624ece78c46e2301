// Starting and stopping the cpu-holder.ts agent processes that the load
// tests (experiment 3, read copies) read from: a map of nodes on loopback
// (two addresses each, for the two channels), one process per holder, each
// awaited until it serves. Only processes started here are signalled, by PID.
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Agent, type AgentConfig } from "../../../src/agent.ts";
import type { ClusterMap } from "../../../src/core/cluster-map.ts";
import type { VolumeSpec } from "../../../src/core/volume.ts";
import { silentLogger } from "../../../src/log.ts";
import { freePort } from "../../helpers/process-cluster.ts";
import type { CpuHolderConfig } from "./cpu-holder.ts";

const HOLDER_SCRIPT = fileURLToPath(new URL("./cpu-holder.ts", import.meta.url));

/** The hot volume the load tests read: 64 KiB pieces, `replicas` copies of each. */
export function hotVolume(replicas: number): VolumeSpec {
  return { name: "hot", chunkSizeBytes: 64 * 1024, redundancy: { replicas }, capacityBytes: 2 ** 40 };
}

/** The reading agent, in the test's process: node "reader", the map's first. */
export function startReader(
  map: ClusterMap,
  dataDir: string,
  volume: VolumeSpec,
  more: Partial<AgentConfig> = {},
): Promise<Agent> {
  return Agent.start({
    nodeId: "reader",
    listen: (map.nodes[0] as ClusterMap["nodes"][number]).addresses,
    dataDir,
    capacityBytes: 2 ** 40,
    map,
    volumes: [volume],
    scrubRateBytesPerSecond: 0,
    log: silentLogger(),
    ...more,
  });
}

/** A map of `ids`, all up, each on free ports of 127.0.0.1 (channel A) and 127.0.0.2 (channel B). */
export async function loopbackMap(ids: readonly string[]): Promise<ClusterMap> {
  const addresses = await Promise.all(
    ids.map(
      async (): Promise<[string, string]> => [
        `127.0.0.1:${await freePort("127.0.0.1")}`,
        `127.0.0.2:${await freePort("127.0.0.2")}`,
      ],
    ),
  );
  return {
    epoch: 1,
    nodes: ids.map((id, i) => ({ id, addresses: addresses[i] as [string, string], state: "up" as const })),
  };
}

export interface CpuHolder {
  child: ChildProcess;
  /** host:port of its /metrics. */
  metrics: string;
}

/**
 * Starts holder `nodeId` of `map` (its data under `root`), serving `volume`;
 * resolves once it serves. `onLine`: every later line it prints.
 */
export async function startCpuHolder(
  map: ClusterMap,
  nodeId: string,
  root: string,
  volume: VolumeSpec,
  more: Pick<CpuHolderConfig, "costMs"> & Partial<CpuHolderConfig>,
  onLine?: (line: string) => void,
): Promise<CpuHolder> {
  const node = map.nodes.find((n) => n.id === nodeId);
  if (node === undefined) throw new Error(`${nodeId} is not in the map`);
  const config: CpuHolderConfig = {
    nodeId,
    listen: node.addresses,
    dataDir: join(root, nodeId),
    map,
    volumes: [volume],
    ...more,
  };
  const child = spawn(process.execPath, [HOLDER_SCRIPT, JSON.stringify(config)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const metrics = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${config.nodeId} not ready in 20 s`)), 20_000);
    child.once("exit", (code) => reject(new Error(`${config.nodeId} exited with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const ready = /^ready (\S+)/.exec(line);
      if (ready === null) return onLine?.(line);
      clearTimeout(timer);
      resolve(ready[1] as string);
    });
  });
  return { child, metrics };
}

/** SIGTERM to each child still running, SIGKILL after 3 s if that is not enough. */
export async function stopChildren(children: Iterable<ChildProcess>): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    }),
  );
}
