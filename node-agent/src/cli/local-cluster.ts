// The processes of a local cluster: one `mosaic agent` child per node, its
// output appended to <dir>/logs/<node>.log, its pid in <dir>/state.json.
// Starts them, waits until each answers, notices one that dies, and stops
// them all: SIGTERM, a bounded wait, then SIGKILL.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { AgentClient } from "../client/agent-client.ts";
import { trustClusterTls, writeClusterFile } from "../config.ts";
import { NODE_FLAGS } from "../node-flags.ts";
import { localAgentTlsDir, prepareLocalTls } from "../tls/local-ca.ts";
import { failoverArgs } from "./failover-options.ts";
import type { LocalAgent, LocalPlan } from "./local-plan.ts";
import { livePids, readLocalState, removeLocalState, writeLocalState } from "./local-state.ts";
import { assertAddressesFree } from "./ports.ts";

const MOSAIC_SCRIPT = fileURLToPath(new URL("./mosaic.ts", import.meta.url));

export interface AgentExit {
  agent: LocalAgent;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Child {
  agent: LocalAgent;
  process: ChildProcess;
  exited: Promise<AgentExit>;
}

export class LocalCluster {
  readonly plan: LocalPlan;
  readonly #children: Child[];
  #stopping = false;
  /** Until every agent has answered once, an exit is waitReady()'s to report. */
  #ready = false;

  private constructor(plan: LocalPlan, children: Child[]) {
    this.plan = plan;
    this.#children = children;
  }

  /**
   * Refuses if the directory's cluster still runs or a port is taken;
   * otherwise spawns every agent. `onUnexpectedExit` hears of agents that
   * exit after waitReady() and before stop().
   */
  static async start(plan: LocalPlan, onUnexpectedExit: (exit: AgentExit) => void): Promise<LocalCluster> {
    await refuseIfRunning(plan);
    await assertAddressesFree(
      plan.agents.flatMap((a) => [
        { address: a.addresses[0], label: `${a.id} channel A` },
        { address: a.addresses[1], label: `${a.id} channel B` },
        { address: a.http, label: `${a.id} HTTP gateway` },
      ]),
    );
    await mkdir(plan.logDir, { recursive: true });
    if (plan.tlsDir !== undefined) {
      await prepareLocalTls(
        plan.tlsDir,
        plan.agents.map((a) => a.id),
      );
      await trustClusterTls(plan.cluster, { dir: plan.tlsDir });
    }
    await writeClusterFile(plan.clusterFile, plan.cluster);
    const children = plan.agents.map((agent) => spawnAgent(plan, agent));
    const cluster = new LocalCluster(plan, children);
    for (const child of children) {
      child.exited.then((exit) => {
        if (cluster.#ready && !cluster.#stopping) onUnexpectedExit(exit);
      });
    }
    // Should this process die without stopping them, the agents still get a SIGTERM.
    process.once("exit", () => cluster.#signalAll("SIGTERM"));
    await writeLocalState(plan.stateFile, {
      upPid: process.pid,
      startedAt: new Date().toISOString(),
      clusterFile: plan.clusterFile,
      agents: children.map((c) => ({ node: c.agent.id, pid: c.process.pid ?? -1, logFile: c.agent.logFile })),
    });
    return cluster;
  }

  pid(agentId: string): number | undefined {
    return this.#children.find((c) => c.agent.id === agentId)?.process.pid;
  }

  /** Every agent running: those that have exited are left out. */
  running(): LocalAgent[] {
    return this.#children.filter((c) => isRunning(c.process)).map((c) => c.agent);
  }

  /** Resolves once every agent answers a cluster() call; rejects naming the first that cannot. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      this.#children.map(async (child) => {
        let died = false;
        child.exited.then(() => {
          died = true;
        });
        while (!died && !(await answers(child.agent.addresses[0]))) {
          if (Date.now() > deadline) {
            throw new Error(
              `${child.agent.id} did not answer at ${child.agent.addresses[0]} within ${timeoutMs / 1000} s;` +
                ` see its log: ${child.agent.logFile}`,
            );
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        if (died) throw new Error(await describeEarlyExit(await child.exited));
      }),
    );
    this.#ready = true;
  }

  /** SIGTERM to every agent, SIGKILL to any still running after `graceMs`; then state.json goes. */
  async stop(graceMs = 5_000): Promise<{ killed: string[] }> {
    this.#stopping = true;
    this.#signalAll("SIGTERM");
    const killed: string[] = [];
    await Promise.all(
      this.#children.map(async (child) => {
        if (await settlesWithin(child.exited, graceMs)) return;
        killed.push(child.agent.id);
        child.process.kill("SIGKILL");
        await settlesWithin(child.exited, 2_000);
      }),
    );
    await removeLocalState(this.plan.stateFile);
    return { killed };
  }

  /** A second Ctrl-C: no more waiting. */
  killNow(): void {
    this.#stopping = true;
    this.#signalAll("SIGKILL");
  }

  #signalAll(signal: NodeJS.Signals): void {
    for (const child of this.#children) if (isRunning(child.process)) child.process.kill(signal);
  }
}

async function refuseIfRunning(plan: LocalPlan): Promise<void> {
  const state = await readLocalState(plan.stateFile);
  if (state === undefined) return;
  const pids = livePids(state);
  if (pids.length === 0) return; // left by a cluster that did not stop cleanly: its processes are gone
  // Agents outlive an `up` that was killed outright (they have their own process group).
  const stop = pids.includes(state.upPid)
    ? `Ctrl-C in its terminal, or kill ${state.upPid}`
    : `kill ${pids.join(" ")}`;
  throw new Error(
    `a local cluster already runs from ${plan.dir} (pids ${pids.join(", ")}): use it, stop it ` +
      `(${stop}), or start another with --dir and --base-port`,
  );
}

function spawnAgent(plan: LocalPlan, agent: LocalAgent): Child {
  const log = openSync(agent.logFile, "a");
  try {
    const args = [...NODE_FLAGS, MOSAIC_SCRIPT, "agent", "--cluster", plan.clusterFile, "--node", agent.id];
    args.push(
      "--data-dir",
      agent.dataDir,
      "--ipc-dir",
      agent.ipcDir,
      "--capacity",
      String(plan.capacityBytes),
      "--http",
      agent.http,
    );
    if (plan.failover !== undefined) args.push(...failoverArgs(plan.failover));
    if (plan.tlsDir === undefined) args.push("--insecure");
    else args.push("--tls-dir", localAgentTlsDir(plan.tlsDir, agent.id));
    const child = spawn(process.execPath, args, {
      // Its own process group: a Ctrl-C in the terminal reaches `up` alone, which stops the agents in order.
      detached: true,
      stdio: ["ignore", log, log],
      env: { ...process.env, MOSAIC_LOG_PRETTY: "0" },
    });
    const exited = new Promise<AgentExit>((resolve) => {
      child.once("error", () => resolve({ agent, pid: child.pid ?? -1, code: null, signal: null }));
      child.once("exit", (code, signal) => resolve({ agent, pid: child.pid ?? -1, code, signal }));
    });
    return { agent, process: child, exited };
  } finally {
    closeSync(log);
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && child.pid !== undefined;
}

async function answers(address: string): Promise<boolean> {
  const client = new AgentClient(address);
  try {
    await client.cluster(1_000);
    return true;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([promise.then(() => true), timeout]).finally(() => clearTimeout(timer));
}

/** "node-1 exited during start (code 1): cannot listen on …; see its log: …" */
export async function describeEarlyExit(exit: AgentExit): Promise<string> {
  const how = exit.signal === null ? `code ${exit.code}` : exit.signal;
  const last = await lastLogLine(exit.agent.logFile);
  return `${exit.agent.id} exited during start (${how})${last ? `: ${last}` : ""}; see its log: ${exit.agent.logFile}`;
}

/** The last line of an agent's log, in words: pino's msg and error, or the raw text. */
export async function lastLogLine(path: string): Promise<string | undefined> {
  let text: string;
  try {
    const file = await open(path, "r");
    try {
      const { size } = await file.stat();
      const length = Math.min(size, 8192);
      const buffer = Buffer.alloc(length);
      await file.read(buffer, 0, length, size - length);
      text = buffer.toString("utf8");
    } finally {
      await file.close();
    }
  } catch {
    return undefined;
  }
  const line = text
    .trimEnd()
    .split("\n")
    .at(-1)
    ?.trim()
    .replace(/^mosaic: /, "");
  if (!line) return undefined;
  try {
    const entry = JSON.parse(line) as { msg?: string; err?: { message?: string } };
    return [entry.msg, entry.err?.message].filter(Boolean).join(": ") || line.slice(0, 300);
  } catch {
    return line.slice(0, 300);
  }
}
