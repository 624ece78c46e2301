// `mosaic up`: a local cluster of N agent processes on this machine, a check
// that it stores and returns a file intact, then service until Ctrl-C.
import { resolve } from "node:path";
import { AgentClient } from "../../client/agent-client.ts";
import { readClusterFile } from "../../config.ts";
import { describeRedundancy } from "../../core/volume.ts";
import { silentLogger } from "../../log.ts";
import type { HeartbeatTimings } from "../../membership/config.ts";
import { type LocalStatusPage, serveLocalStatus } from "../../status/local-status.ts";
import { runCheck } from "../check.ts";
import { describeFailure } from "../failure.ts";
import { formatBytes, formatDuration, table } from "../format.ts";
import { type AgentExit, LocalCluster, lastLogLine } from "../local-cluster.ts";
import { type LocalPlan, planLocalCluster } from "../local-plan.ts";
import { progressMode } from "../progress.ts";
import { listenForStop } from "../stop-signal.ts";
import { defaultClusterFile } from "../target.ts";

export interface UpOptions {
  nodes: number;
  dir: string;
  basePort: number;
  sizeBytes: number;
  capacityBytes: number;
  outGraceMs: number;
  rebuildRateBytesPerSecond: number;
  /** Heartbeat interval and channel-down time of every agent; unset: the agents' defaults. */
  heartbeat?: Partial<HeartbeatTimings>;
  once: boolean;
  check: boolean;
  /** Port of the status page on 127.0.0.1 (0: any free one); unset: no page. */
  statusPort?: number;
}

export const READY_TIMEOUT_MS = 20_000;
const print = (line = "") => process.stdout.write(`${line}\n`);
const warn = (line: string) => process.stderr.write(`mosaic up: ${line}\n`);

/** Resolves with the exit code once every agent has been stopped. */
export async function up(options: UpOptions): Promise<number> {
  const plan = planLocalCluster({
    nodes: options.nodes,
    dir: resolve(options.dir),
    basePort: options.basePort,
    capacityBytes: options.capacityBytes,
    failover: {
      outGraceMs: options.outGraceMs,
      rebuildRateBytesPerSecond: options.rebuildRateBytesPerSecond,
      ...options.heartbeat,
    },
  });
  // A closed terminal (SIGHUP) stops the cluster too: the agents do not hear it themselves.
  const stop = listenForStop(["SIGINT", "SIGTERM", "SIGHUP"]);
  await noteReshape(plan);
  const lastExit = Promise.withResolvers<number>();
  // Agents may exit before start() returns: the callback must not rely on `cluster` yet.
  let started: LocalCluster | undefined;
  const cluster = await LocalCluster.start(plan, (exit) => {
    void reportExit(exit);
    if (started?.running().length === 0) {
      warn("every agent has exited; stopping");
      lastExit.resolve(1);
    }
  }).catch((error) => {
    stop.dispose();
    throw error;
  });
  started = cluster;
  stop.onRepeat(() => {
    warn("second interrupt: killing the agents now");
    cluster.killNow();
  });
  printCluster(plan, cluster);
  // A --once run stops right after its check: no page to watch.
  const page = options.once ? undefined : await startStatusPage(plan, options.statusPort);

  const abort = new AbortController();
  const serving = serve(cluster, options, abort.signal);
  let code: number;
  try {
    code = await Promise.race([serving, stop.received.then(() => 0), lastExit.promise]);
  } catch (error) {
    warn(describeFailure(error).line);
    code = 1;
  }
  // A check still streaming would keep the agents' calls open and their shutdown waiting.
  abort.abort();
  await Promise.race([serving.catch(() => {}), sleep(1_000)]);
  await page?.stop();
  const running = cluster.running().length;
  print(`stopping ${running} agent${running === 1 ? "" : "s"}…`);
  const { killed } = await cluster.stop();
  if (killed.length > 0) warn(`${killed.join(", ")} did not stop within 5 s and were killed`);
  print("stopped; state.json removed");
  stop.dispose();
  return code;
}

/** Ready, check, then (unless --once) run until a signal settles the race in up(). */
async function serve(cluster: LocalCluster, options: UpOptions, signal: AbortSignal): Promise<number> {
  const started = performance.now();
  await cluster.waitReady(READY_TIMEOUT_MS);
  const n = cluster.plan.agents.length;
  print(`ready: all ${n} agent${n === 1 ? "" : "s"} answer (${formatDuration(performance.now() - started)})`);
  let passed = true;
  let sample: string | undefined;
  if (options.check) {
    print();
    const client = new AgentClient((cluster.plan.agents[0] as { addresses: [string, string] }).addresses[0]);
    try {
      const result = await runCheck(client, {
        volume: "media",
        sizeBytes: options.sizeBytes,
        out: process.stdout,
        progress: progressMode(process.stdout, "lines"),
        signal,
      });
      passed = result.passed;
      sample = `media/${result.name}`;
    } catch (error) {
      warn(signal.aborted ? "check interrupted" : `check failed: ${describeFailure(error).line}`);
      passed = false;
    } finally {
      client.close();
    }
  }
  if (options.once || signal.aborted) return passed ? 0 : 1;
  printUsage(cluster.plan, sample);
  return new Promise<number>(() => {}); // until Ctrl-C, SIGTERM or the last agent's exit
}

/** Best effort: a cluster whose page cannot listen (the port taken) still runs. */
async function startStatusPage(
  plan: LocalPlan,
  port: number | undefined,
): Promise<LocalStatusPage | undefined> {
  if (port === undefined) return undefined;
  try {
    const page = await serveLocalStatus(plan, port, silentLogger());
    print(`status page: ${page.url}`);
    return page;
  } catch (error) {
    warn(`no status page: ${(error as Error).message} (choose another with --status-port)`);
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function printCluster(plan: LocalPlan, cluster: LocalCluster): void {
  const n = plan.agents.length;
  print(`mosaic up: ${n} agent${n === 1 ? "" : "s"} in ${plan.dir}`);
  const rows = plan.agents.map((a) => [a.id, ...a.addresses, String(cluster.pid(a.id) ?? "?"), a.logFile]);
  for (const line of table(["node", "channel A", "channel B", "pid", "log"], rows, "  ")) print(line);
  const volumes = plan.cluster.volumes.map(
    (v) =>
      `${v.name} (${describeRedundancy(v.redundancy)}, chunk ${formatBytes(v.chunkSizeBytes)}, ` +
      `capacity ${formatBytes(v.capacityBytes)})`,
  );
  print(`volumes: ${volumes.join(", ")}; ${formatBytes(plan.capacityBytes)} per agent`);
  if (plan.failover !== undefined) {
    const { outGraceMs, rebuildRateBytesPerSecond: rate } = plan.failover;
    const out = `failover: a node down for ${formatDuration(outGraceMs)} is out`;
    print(
      rate > 0
        ? `${out} and its pieces are rebuilt on the others at up to ${formatBytes(rate)}/s per agent`
        : `${out}; rebuild off (--rebuild-rate 0): its pieces stay missing until it returns`,
    );
  }
}

function printUsage(plan: LocalPlan, sample: string | undefined): void {
  print();
  print("The cluster is running. In another terminal:");
  if (plan.clusterFile !== defaultClusterFile()) print(`  export MOSAIC_CLUSTER=${plan.clusterFile}`);
  print("  npm run mosaic -- put ./movie.mp4 media/films/movie.mp4");
  print("  npm run mosaic -- ls media");
  print(`  npm run mosaic -- stat ${sample ?? "media/films/movie.mp4"}`);
  print("  npm run mosaic -- get media/films/movie.mp4 ./copy.mp4");
  print("  npm run mosaic -- nodes          # kill an agent's pid to see degraded reads");
  print(`Agent logs: ${plan.logDir}. Stop with Ctrl-C.`);
}

async function reportExit(exit: AgentExit): Promise<void> {
  const how = exit.signal === null ? `with code ${exit.code}` : `on ${exit.signal}`;
  const last = await lastLogLine(exit.agent.logFile);
  warn(
    `${exit.agent.id} (pid ${exit.pid}) exited unexpectedly ${how}; the cluster carries on without it.` +
      ` Log: ${exit.agent.logFile}${last ? ` (last line: ${last})` : ""}`,
  );
}

/** Placement follows node ids: files written by a cluster of other nodes may not be found by this one. */
async function noteReshape(plan: LocalPlan): Promise<void> {
  const previous = await readClusterFile(plan.clusterFile).catch(() => undefined);
  if (previous === undefined) return;
  const before = previous.nodes.map((n) => n.id).join(",");
  if (before === plan.cluster.nodes.map((n) => n.id).join(",")) return;
  warn(
    `${plan.dir} last held a cluster of ${previous.nodes.length} nodes; files written then may not read` +
      ` back with ${plan.agents.length} (use a fresh --dir to start empty)`,
  );
}
