// Forks ring-peer.ts with this Node (process.execPath) and the repo's data
// flags, collects its IPC messages, and ends only the processes it started,
// by pid, whatever the test's outcome. With `pidNamespace`, the peer runs in
// a pid namespace of its own (`unshare --pid --fork --mount-proc`, as root),
// as an application pod does next to the agent in Kubernetes; unshare is
// told to SIGKILL it if unshare itself dies, so nothing outlives the test.
import { type ChildProcess, fork, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { NODE_FLAGS } from "../../src/node-flags.ts";

const PEER_SCRIPT = new URL("./ring-peer.ts", import.meta.url).pathname;

export interface PeerMessage {
  ok: boolean;
  error?: string;
  code?: string;
  reason?: string;
  [key: string]: unknown;
}

export class Peer {
  readonly child: ChildProcess;
  readonly #messages: PeerMessage[] = [];
  readonly #waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;

  readonly #pidNamespace: boolean;

  constructor(args: string[], script = PEER_SCRIPT, options: { pidNamespace?: boolean } = {}) {
    this.#pidNamespace = options.pidNamespace ?? false;
    this.child = options.pidNamespace
      ? spawn(
          "unshare",
          [
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child=SIGKILL",
            process.execPath,
            ...NODE_FLAGS,
            script,
            ...args,
          ],
          { stdio: ["ignore", "inherit", "inherit", "ipc"] },
        )
      : fork(script, args, {
          execPath: process.execPath,
          execArgv: [...NODE_FLAGS],
          stdio: ["ignore", "inherit", "inherit", "ipc"],
        });
    this.child.on("message", (message) => {
      this.#messages.push(message as PeerMessage);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.exited = once(this.child, "exit").then(([code]) => code as number | null);
    live.add(this);
    void this.exited.finally(() => live.delete(this));
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** The next message, failing if the child reports an error or exits first or `timeoutMs` passes. */
  async message(timeoutMs = 30_000): Promise<PeerMessage> {
    const deadline = Date.now() + timeoutMs;
    // Bounded by the deadline: every pass awaits a message, an exit or the rest of the time.
    for (;;) {
      const next = this.#messages.shift();
      if (next) {
        if (!next.ok)
          throw new Error(`peer pid ${this.pid} failed: ${next.error} (${next.code}/${next.reason})`);
        return next;
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `peer pid ${this.pid} exited (${this.child.exitCode ?? this.child.signalCode}) without a message`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`peer pid ${this.pid} sent nothing within ${timeoutMs} ms`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push(resolve)),
        this.exited,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, left);
        }),
      ]);
      clearTimeout(timer);
    }
  }

  /**
   * The pid, in this namespace, of the process that runs the script: the
   * child itself, or under `pidNamespace` unshare's one child.
   */
  scriptPid(): number {
    const pid = this.pid;
    if (!this.#pidNamespace) return pid;
    let children: string;
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1").trim();
    } catch {
      return pid;
    }
    return children === "" ? pid : Number(children.split(" ")[0]);
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (this.child.exitCode === null && this.child.signalCode === null) process.kill(this.pid, signal);
  }
}

const live = new Set<Peer>();

/** Kills (by pid) every peer this module started that is still running, and waits for them. */
export async function killPeers(): Promise<void> {
  const peers = [...live];
  for (const peer of peers) peer.kill();
  await Promise.all(peers.map((peer) => peer.exited));
}

/** utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15, clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, "latin1");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The names of Mosaic segments in /dev/shm now. */
export function mosaicSegments(): Set<string> {
  return new Set(readdirSync("/dev/shm").filter((name) => name.startsWith("mosaic-")));
}

/** A process's IPC footprint from /proc: its distinct ring mappings and its open descriptors under `dir`. */
export function ipcHeld(pid: number | "self", dir: string): { mappings: number; fds: number } {
  const maps = readFileSync(`/proc/${pid}/maps`, "latin1");
  const mappings = new Set(
    maps
      .split("\n")
      .filter((l) => l.includes("/dev/shm/mosaic-"))
      .map((l) => l.split(/\s+/)[5]),
  ).size;
  let fds = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(dir)) fds++;
    } catch {
      // closed while we looked
    }
  }
  return { mappings, fds };
}

/** Waits until `condition` holds, polling every 20 ms; returns how long it took, or throws after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const startMs = performance.now();
  while (!condition()) {
    if (performance.now() - startMs > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return performance.now() - startMs;
}
