// Running the real `mosaic` command as a child process: one-shot commands,
// a background `mosaic up`, free port ranges, and cleanup that kills by pid
// whatever a test started, pass or fail. Every wait is bounded.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { NODE_FLAGS } from "../../src/node-flags.ts";

export const MOSAIC = fileURLToPath(new URL("../../src/cli/mosaic.ts", import.meta.url));

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
  elapsedMs: number;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: Buffer;
  timeoutMs?: number;
}

/** Runs `mosaic <args>` to completion (killed after timeoutMs). */
export function runMosaic(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const started = performance.now();
  const child = spawn(process.execPath, [...NODE_FLAGS, MOSAIC, ...args], {
    cwd: options.cwd,
    env: { ...process.env, MOSAIC_CLUSTER: undefined, ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  child.stderr.on("data", (b: Buffer) => err.push(b));
  child.stdin.end(options.input);
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
  return new Promise((resolve) => {
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code,
        signal,
        stdout: stdoutBytes.toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        stdoutBytes,
        elapsedMs: performance.now() - started,
      });
    });
  });
}

/** `mosaic up` running in the background. */
export interface BackgroundUp {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `mosaic up <args>` and resolves once it prints its ready line. */
export async function startUp(args: string[], readyTimeoutMs = 30_000): Promise<BackgroundUp> {
  const child = spawn(process.execPath, [...NODE_FLAGS, MOSAIC, "up", ...args], {
    env: { ...process.env, MOSAIC_CLUSTER: undefined },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout.on("data", (b: Buffer) => {
    text += b.toString("utf8");
  });
  child.stderr.on("data", (b: Buffer) => {
    text += b.toString("utf8");
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const up = { child, output: () => text, exited };
  const ready = await waitFor(() => /^ready: /m.test(text) || child.exitCode !== null, readyTimeoutMs);
  if (!ready || child.exitCode !== null) {
    child.kill("SIGKILL");
    throw new Error(`mosaic up did not become ready:\n${text}`);
  }
  return up;
}

/** The promise's value, or "timeout" after ms; the timer never outlives it. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(resolve, ms, "timeout");
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` every 50 ms; false if it never held within timeoutMs. */
export async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids recorded in a local cluster's state.json, the `up` process first. */
export function statePids(stateFile: string): number[] {
  try {
    const state = JSON.parse(readFileSync(stateFile, "utf8")) as { upPid: number; agents: { pid: number }[] };
    return [state.upPid, ...state.agents.map((a) => a.pid)];
  } catch {
    return [];
  }
}

/** Last resort of an after hook: SIGKILL every pid given that still runs. */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    if (pid > 0 && isAlive(pid)) process.kill(pid, "SIGKILL");
  }
}

/**
 * A base port such that every port `mosaic up --nodes n` listens on is free:
 * the channels (base..base+2n-1 on 127.0.0.1 and 127.0.0.2) and the
 * gateways (base+2n..base+3n-1 on 127.0.0.1). Below Linux's ephemeral range
 * (32768 and up), so no outgoing connection takes one between this check
 * and the agents' listen.
 */
export async function freeBasePort(nodes: number): Promise<number> {
  const span = 3 * nodes;
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + 2 * Math.floor(Math.random() * ((32_768 - 20_000 - span) / 2));
    let free = true;
    for (let i = 0; i < nodes && free; i++) {
      free =
        (await canListen("127.0.0.1", base + 2 * i)) &&
        (await canListen("127.0.0.2", base + 2 * i + 1)) &&
        (await canListen("127.0.0.1", base + 2 * nodes + i));
    }
    if (free) return base;
  }
  throw new Error("no free port range found");
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Pids in the node table `mosaic up` prints: "node-0  127.0.0.1:7100  127.0.0.2:7101  1234  …". */
export function pidsInOutput(text: string): Map<string, number> {
  const pids = new Map<string, number>();
  for (const match of text.matchAll(/^\s+(node-\d+)\s+\S+:\d+\s+\S+:\d+\s+(\d+)\s/gm)) {
    pids.set(match[1] as string, Number(match[2]));
  }
  return pids;
}
