// Real agent processes on real sockets: one `mosaic agent` process per node,
// each with its own data directory and its own log file (pino JSON lines),
// for tests that kill -9, restart, corrupt and attack agents the way a
// crashing machine, a bad disk or a hostile client would.
//
// Only processes this helper spawned are ever signalled, by PID, and only
// while they have not been seen to exit. stop() must run in `after`, pass
// or fail; a process-exit hook SIGKILLs anything still running if a test
// process dies before it gets there.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AgentClient } from "../../src/client/agent-client.ts";
import { type ClusterFile, writeClusterFile } from "../../src/config.ts";
import type { NodeEntry } from "../../src/core/cluster-map.ts";
import type { VolumeSpec } from "../../src/core/volume.ts";
import { NODE_FLAGS } from "../../src/node-flags.ts";
import { JsonLinesProcess, NetnsLab, removeLeftovers } from "./netns.ts";

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

const CLI = fileURLToPath(new URL("../../src/cli/mosaic.ts", import.meta.url));

/** Volumes of the multi-process suites: 1 MiB chunks, so a stripe of "media" carries 2 MiB. */
export const PROCESS_TEST_VOLUMES: VolumeSpec[] = [
  {
    name: "media",
    chunkSizeBytes: MiB,
    redundancy: { erasure: { data: 2, parity: 1 } },
    capacityBytes: 2 ** 40,
  },
  { name: "replicated", chunkSizeBytes: MiB, redundancy: { replicas: 3 }, capacityBytes: 2 ** 40 },
];

export interface ProcessClusterOptions {
  /** Agents to run, 3 by default. */
  nodes?: number;
  volumes?: VolumeSpec[];
  /** --capacity of every agent, in bytes. */
  capacityBytes?: number;
  /**
   * The cluster file agent `i` reads. Return `cluster` itself (the default)
   * to share one file; return a changed copy to give that agent its own view,
   * e.g. a peer whose channel A address points at a closed port. An agent
   * listens on the addresses its own file gives it, so leave its own entry be.
   */
  clusterFor?: (i: number, cluster: ClusterFile) => ClusterFile;
  /** How long each agent may take to answer its first `cluster` call. */
  startTimeoutMs?: number;
  /** Extra environment for the agents (MOSAIC_LOG_LEVEL, …). */
  env?: Record<string, string>;
  /** Extra `mosaic agent` arguments for every agent (e.g. ["--out-grace", "2s"]). */
  agentArgs?: string[];
  /**
   * Run each agent in its own network namespace (NetnsLab, root only):
   * channel A on its ethA (198.18.0.x), B on its ethB (198.19.0.x), so
   * `setLink` is a real NIC failure and `partition` a real network split.
   * The test process cannot reach the agents then: clients run inside a
   * node's namespace (`inNode`).
   */
  netns?: boolean;
  /** Where the agents' directories go (default: the temp directory); /dev/shm keeps the disk out of a benchmark. */
  parentDir?: string;
}

/** One parsed log line. `raw` is the line as written (JSON.parse keeps only the last of duplicate keys). */
export type LogLine = Record<string, unknown> & { raw: string; msg?: string; level?: number };

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Running {
  child: ChildProcess;
  pid: number;
  exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
}

type ResolvedOptions = Required<Omit<ProcessClusterOptions, "clusterFor" | "env" | "netns" | "parentDir">> & {
  env: Record<string, string>;
};

/** Every agent in a namespace listens on this port: each namespace has its own ports. */
const NETNS_AGENT_PORT = 7400;

const PINO_WARN = 40;

export class ProcessCluster {
  readonly root: string;
  readonly size: number;
  /** The shared cluster file's contents (ports included). */
  readonly cluster: ClusterFile;
  /** How each agent's last stop went: whether SIGTERM sufficed. Filled by stop() and stopNode(). */
  readonly stops: { node: string; graceful: boolean; exit: ExitInfo | undefined; ms: number }[] = [];
  readonly #options: ResolvedOptions;
  readonly #clusterFiles: string[] = [];
  readonly #running: (Running | undefined)[] = [];
  readonly #clients = new Map<string, AgentClient>();
  readonly #fixtures: JsonLinesProcess[] = [];
  /** Agent i's log line count when it was last spawned: its lines from this run start there. */
  readonly #runStartLine: number[] = [];
  /** The namespaces the agents run in, with the `netns` option. */
  readonly lab: NetnsLab | undefined;
  #stopped = false;
  readonly #onExit = () => {
    for (const r of this.#running) {
      if (r !== undefined && r.exit === undefined) {
        try {
          process.kill(r.pid, "SIGKILL");
        } catch {}
      }
    }
  };

  private constructor(root: string, cluster: ClusterFile, options: ResolvedOptions, lab?: NetnsLab) {
    this.root = root;
    this.lab = lab;
    this.cluster = cluster;
    this.size = cluster.nodes.length;
    this.#options = options;
    process.on("exit", this.#onExit);
  }

  /** Starts the agents; retries with fresh ports if one could not bind (another process took a port). */
  static async start(options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const resolved = {
      nodes: options.nodes ?? 3,
      volumes: options.volumes ?? PROCESS_TEST_VOLUMES,
      capacityBytes: options.capacityBytes ?? 2 ** 40,
      startTimeoutMs: options.startTimeoutMs ?? 20_000,
      env: options.env ?? {},
      agentArgs: options.agentArgs ?? [],
    };
    for (let attempt = 1; ; attempt++) {
      const root = await mkdtemp(join(options.parentDir ?? tmpdir(), "mosaic-proc-"));
      let lab: NetnsLab | undefined;
      if (options.netns === true) {
        await removeLeftovers();
        lab = await NetnsLab.create(resolved.nodes);
      }
      const nodes: NodeEntry[] = [];
      for (let i = 0; i < resolved.nodes; i++) {
        const hosts = lab?.nodes[i]?.hosts;
        nodes.push({
          id: nodeId(i),
          addresses:
            hosts === undefined
              ? [`127.0.0.1:${await freePort("127.0.0.1")}`, `127.0.0.2:${await freePort("127.0.0.2")}`]
              : [`${hosts[0]}:${NETNS_AGENT_PORT}`, `${hosts[1]}:${NETNS_AGENT_PORT}`],
          state: "up",
        });
      }
      const cluster: ClusterFile = { epoch: 1, nodes, volumes: resolved.volumes };
      const pc = new ProcessCluster(root, cluster, resolved, lab);
      try {
        await pc.#writeClusterFiles(options.clusterFor);
        for (let i = 0; i < pc.size; i++) pc.#spawn(i);
        await Promise.all(Array.from({ length: pc.size }, (_, i) => pc.#waitReady(i)));
        return pc;
      } catch (error) {
        await pc.stop();
        const portClash = /EADDRINUSE|cannot listen/.test((error as Error).message);
        if (!portClash || attempt >= 3) throw error;
      }
    }
  }

  nodeId(i: number): string {
    return nodeId(i);
  }

  /** host:port of agent i's channel A (0) or B (1), as the shared cluster file lists it. */
  address(i: number, channel: 0 | 1 = 0): string {
    return (this.cluster.nodes[i] as NodeEntry).addresses[channel];
  }

  /** Takes agent i's NIC for `channel` down or up (netns option only). */
  setLink(i: number, channel: "A" | "B", up: boolean): Promise<void> {
    return this.#lab().setLink(i, channel, up);
  }

  /** Cuts agent i's node off from the others (both NICs down), or joins it again (netns option only). */
  partition(i: number, cut: boolean): Promise<void> {
    return this.#lab().partition(i, cut);
  }

  /** Runs a JSON-lines fixture script on agent i's node: inside its namespace with the netns option. */
  inNode(i: number, script: string, args: unknown): JsonLinesProcess {
    const proc = new JsonLinesProcess(script, nodeId(i), args, this.lab?.nodes[i]?.ns);
    this.#fixtures.push(proc);
    return proc;
  }

  #lab(): NetnsLab {
    if (this.lab === undefined) throw new Error("start the cluster with { netns: true } for network faults");
    return this.lab;
  }

  /** A client of agent i (cached; closed by stop, and by restart of that agent). */
  client(i: number, channel: 0 | 1 = 0): AgentClient {
    const address = this.address(i, channel);
    let client = this.#clients.get(address);
    if (client === undefined) {
      client = new AgentClient(address);
      this.#clients.set(address, client);
    }
    return client;
  }

  dataDir(i: number): string {
    return join(this.root, nodeId(i));
  }

  logPath(i: number): string {
    return join(this.root, `${nodeId(i)}.log`);
  }

  clusterFile(i: number): string {
    return this.#clusterFiles[i] as string;
  }

  pid(i: number): number | undefined {
    const r = this.#running[i];
    return r === undefined || r.exit !== undefined ? undefined : r.pid;
  }

  alive(i: number): boolean {
    return this.pid(i) !== undefined;
  }

  /** Resident memory of agent i, from /proc. */
  rssBytes(i: number): number {
    const pid = this.pid(i);
    if (pid === undefined) throw new Error(`${nodeId(i)} is not running`);
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    if (match === null) throw new Error(`no VmRSS for ${nodeId(i)} (pid ${pid})`);
    return Number(match[1]) * 1024;
  }

  /** Every line agent i has logged, across restarts, parsed. Lines that are not JSON keep only `raw`. */
  log(i: number): LogLine[] {
    const path = this.logPath(i);
    if (!existsSync(path)) return [];
    const lines: LogLine[] = [];
    for (const raw of readFileSync(path, "utf8").split("\n")) {
      if (raw.trim() === "") continue;
      try {
        const value: unknown = JSON.parse(raw);
        lines.push(
          typeof value === "object" && value !== null ? { ...(value as object), raw } : { raw, msg: raw },
        );
      } catch {
        lines.push({ raw, msg: raw });
      }
    }
    return lines;
  }

  /** Warnings and worse that agent i logged, from line `from` on. */
  warnings(i: number, from = 0): LogLine[] {
    return this.log(i)
      .slice(from)
      .filter((l) => (l.level ?? 0) >= PINO_WARN);
  }

  /** Polls agent i's log (pino writes asynchronously) until a line matches, from line `from` on. */
  async waitForLog(
    i: number,
    match: (line: LogLine) => boolean,
    timeoutMs = 5_000,
    from = 0,
  ): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.log(i).slice(from).find(match);
      if (line !== undefined) return line;
      if (Date.now() > deadline) {
        throw new Error(
          `${nodeId(i)} logged no matching line within ${timeoutMs} ms; tail:\n${this.logTail(i)}`,
        );
      }
      await sleep(50);
    }
  }

  /** The first line agent i logged at or after wall-clock `fromMs` that matches (see waitForLog). */
  waitForLogSince(
    i: number,
    fromMs: number,
    match: (line: LogLine) => boolean,
    timeoutMs = 5_000,
  ): Promise<LogLine> {
    return this.waitForLog(i, (l) => (l.time as number) >= fromMs && match(l), timeoutMs);
  }

  logTail(i: number, lines = 20): string {
    return this.log(i)
      .slice(-lines)
      .map((l) => l.raw)
      .join("\n");
  }

  /** SIGKILLs agent i and waits until it has exited. */
  async kill9(i: number): Promise<ExitInfo> {
    const r = this.#running[i];
    if (r === undefined || r.exit !== undefined) throw new Error(`${nodeId(i)} is not running`);
    process.kill(r.pid, "SIGKILL");
    const exit = await withTimeout(r.exited, 10_000);
    if (exit === undefined) throw new Error(`${nodeId(i)} (pid ${r.pid}) did not exit after SIGKILL`);
    return exit;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once agent i has exited. */
  async stopNode(i: number, graceMs = 10_000): Promise<ExitInfo | undefined> {
    const r = this.#running[i];
    if (r === undefined || r.exit !== undefined) return r?.exit;
    const started = Date.now();
    try {
      process.kill(r.pid, "SIGTERM");
    } catch {}
    let exit = await withTimeout(r.exited, graceMs);
    const graceful = exit !== undefined;
    if (exit === undefined) {
      try {
        process.kill(r.pid, "SIGKILL");
      } catch {}
      exit = await withTimeout(r.exited, 10_000);
    }
    this.stops.push({ node: nodeId(i), graceful, exit, ms: Date.now() - started });
    return exit;
  }

  /** Starts agent i again (stopping it first if it runs) on the same ports and data directory. */
  async restart(i: number): Promise<void> {
    if (this.alive(i)) await this.stopNode(i);
    for (const channel of [0, 1] as const) {
      const address = this.address(i, channel);
      this.#clients.get(address)?.close();
      this.#clients.delete(address);
    }
    this.#spawn(i);
    await this.#waitReady(i);
  }

  /**
   * Stops every agent this helper started (SIGTERM; SIGKILL after `graceMs`) and removes the directory.
   * Safe to call twice, and after a failed start.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
    await Promise.all(this.#fixtures.map((f) => f.kill9()));
    await Promise.all(this.#running.map((_, i) => this.stopNode(i, graceMs)));
    if (this.lab !== undefined) {
      await this.lab.destroy();
      await this.lab.assertGone();
    }
    process.off("exit", this.#onExit);
    if (process.env.MOSAIC_KEEP_TEST_DIRS === "1") process.stderr.write(`kept ${this.root}\n`);
    else await rm(this.root, { recursive: true, force: true });
  }

  async #writeClusterFiles(clusterFor: ProcessClusterOptions["clusterFor"]): Promise<void> {
    const shared = join(this.root, "cluster.json");
    await writeClusterFile(shared, this.cluster);
    for (let i = 0; i < this.size; i++) {
      const own = clusterFor?.(i, structuredClone(this.cluster));
      if (own === undefined) {
        this.#clusterFiles[i] = shared;
        continue;
      }
      const path = join(this.root, `cluster-${nodeId(i)}.json`);
      await writeClusterFile(path, own);
      this.#clusterFiles[i] = path;
    }
  }

  #spawn(i: number): void {
    this.#runStartLine[i] = this.log(i).length;
    const fd = openSync(this.logPath(i), "a");
    let child: ChildProcess;
    try {
      // Only what the test sets: no MOSAIC_* settings leak in from the shell running the tests.
      const env: NodeJS.ProcessEnv = {};
      for (const [key, value] of Object.entries(process.env)) {
        if (!key.startsWith("MOSAIC_") && key !== "NODE_TEST_CONTEXT" && key !== "NODE_OPTIONS")
          env[key] = value;
      }
      Object.assign(env, { MOSAIC_LOG_PRETTY: "0", MOSAIC_LOG_LEVEL: "info" }, this.#options.env);
      const ns = this.lab?.nodes[i]?.ns;
      // `ip netns exec` execs node itself, so the pid we hold (and kill -9) is the agent's.
      const [file, ...prefix] =
        ns === undefined ? [process.execPath] : ["ip", "netns", "exec", ns, process.execPath];
      child = spawn(
        file as string,
        [
          ...prefix,
          ...NODE_FLAGS,
          CLI,
          "agent",
          "--cluster",
          this.clusterFile(i),
          "--node",
          nodeId(i),
          "--data-dir",
          this.dataDir(i),
          "--capacity",
          String(this.#options.capacityBytes),
          // Off: a background scrub would repair bytes a test corrupts on purpose.
          "--scrub-rate",
          "0",
          ...this.#options.agentArgs,
        ],
        { stdio: ["ignore", fd, fd], env },
      );
    } finally {
      closeSync(fd); // the child holds its own copy
    }
    if (child.pid === undefined) throw new Error(`could not start ${nodeId(i)}`);
    const running: Running = {
      child,
      pid: child.pid,
      exit: undefined,
      exited: new Promise((resolve) => {
        child.once("exit", (code, signal) => {
          running.exit = { code, signal };
          resolve(running.exit);
        });
      }),
    };
    child.on("error", () => {}); // reported through 'exit' or the readiness wait
    this.#running[i] = running;
  }

  async #waitReady(i: number): Promise<void> {
    const deadline = Date.now() + this.#options.startTimeoutMs;
    const r = this.#running[i] as Running;
    for (;;) {
      if (r.exit !== undefined) {
        throw new Error(
          `${nodeId(i)} exited while starting (code ${r.exit.code}, signal ${r.exit.signal}):\n${this.logTail(i)}`,
        );
      }
      if (this.lab !== undefined) {
        // Out of the test's reach: the server is bound once the agent says it started.
        if (
          this.log(i)
            .slice(this.#runStartLine[i])
            .some((l) => l.msg === "agent started")
        )
          return;
        if (Date.now() > deadline) throw new Error(`${nodeId(i)} did not start:\n${this.logTail(i)}`);
        await sleep(100);
        continue;
      }
      // A fresh client per attempt: a cached one would sit out grpc's reconnect backoff.
      const client = new AgentClient(this.address(i));
      try {
        const info = await client.cluster(1_000);
        if (info.node === nodeId(i)) return;
      } catch {
      } finally {
        client.close();
      }
      if (Date.now() > deadline) {
        throw new Error(
          `${nodeId(i)} did not answer within ${this.#options.startTimeoutMs} ms:\n${this.logTail(i)}`,
        );
      }
      await sleep(100);
    }
  }
}

export function startProcessCluster(options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
  return ProcessCluster.start(options);
}

export function nodeId(i: number): string {
  return `node-${i}`;
}

/** A port nothing listens on right now (bound to 0, then closed): free to use, or to point at as a dead address. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The promise's value, or undefined if it takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
