// The container runtime's part (containerd and runc): one container is one
// process in its node's network namespace (`ip netns exec`), in mount and UTS
// namespaces of its own (`unshare`), where a script from pod-spec.ts binds
// its volumes and execs the command as its user. Each exec replaces the one
// before, so the pid held is the container's process itself: signals reach
// it, and only it. Output goes to a log file, as the kubelet keeps one per
// container and restart. There is no PID namespace or cgroup: a process the
// container forks is not stopped with it (the harness's images fork none).
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { constants } from "node:os";
import { tool } from "./ip.ts";

export interface ContainerLaunch {
  /** The node's network namespace. */
  ns: string;
  /** What `sh -c` runs before exec of argv (containerScript). */
  script: string;
  argv: readonly string[];
  env: Record<string, string>;
  logFile: string;
}

export interface ExitStatus {
  /** As a runtime reports it: the exit code, or 128 + the signal's number. */
  exitCode: number;
  signal: string | undefined;
  at: Date;
}

/** Containers still running; a test runner that dies must not leave them behind. */
const live = new Set<ChildProcess>();
let reaping = false;

function reapOnExit(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (reaping) return;
  reaping = true;
  process.once("exit", () => {
    for (const c of live) c.kill("SIGKILL");
  });
}

export class ContainerProcess {
  readonly pid: number;
  readonly startedAt = new Date();
  readonly exited: Promise<ExitStatus>;
  #status: ExitStatus | undefined;
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.pid = child.pid as number;
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        const number = signal === null ? undefined : constants.signals[signal];
        this.#status = {
          exitCode: code ?? 128 + (number ?? 0),
          signal: signal ?? undefined,
          at: new Date(),
        };
        resolve(this.#status);
      }),
    );
    reapOnExit(child);
  }

  static start(launch: ContainerLaunch): ContainerProcess {
    const fd = openSync(launch.logFile, "a");
    try {
      const child = spawn(
        tool("ip"),
        [
          "netns",
          "exec",
          launch.ns,
          tool("unshare"),
          "--mount",
          "--uts",
          "--propagation",
          "private",
          "--",
          tool("sh"),
          "-c",
          launch.script,
          "sh",
          ...launch.argv,
        ],
        { env: launch.env, stdio: ["ignore", fd, fd], cwd: "/" },
      );
      if (child.pid === undefined) throw new Error(`could not start ${launch.argv.join(" ")}`);
      child.on("error", () => {});
      return new ContainerProcess(child);
    } finally {
      closeSync(fd);
    }
  }

  get running(): boolean {
    return this.#status === undefined;
  }

  /** SIGTERM, then SIGKILL once `graceMs` has passed; resolves with how it ended. */
  async stop(graceMs: number): Promise<ExitStatus> {
    if (this.#status !== undefined) return this.#status;
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), graceMs);
    const status = await this.exited;
    clearTimeout(timer);
    return status;
  }
}
