// Network namespaces for multi-process heartbeat tests, and the heartbeat
// fixture processes that run in them. Each node gets a namespace with two
// veth "NICs" (ethA, ethB); their other ends sit in a bridge per channel in a
// fourth namespace, so `ip link set ethA down` is a real NIC failure and
// nothing touches the root namespace. Addresses come from 198.18.0.0/15 only.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";

export const NETNS_PREFIX = "mosaic-hb-";
const IP_TIMEOUT_MS = 5_000;
const FIXTURE = fileURLToPath(new URL("../netns/heartbeat-node.ts", import.meta.url));

export type Line = Record<string, unknown> & { kind: string; node: string };

/** Runs `ip args…`; rejects with its stderr on failure or after IP_TIMEOUT_MS. */
export function ip(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("ip", args, { timeout: IP_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error) reject(new Error(`ip ${args.join(" ")}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** Why namespaces cannot be used here, or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (process.getuid?.() !== 0) return "network namespaces need root";
  try {
    await ip("netns", "list");
  } catch (error) {
    return `\`ip netns\` is unavailable: ${(error as Error).message}`;
  }
  return undefined;
}

export async function ourNamespaces(): Promise<string[]> {
  const out = await ip("netns", "list");
  return out
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.startsWith(NETNS_PREFIX));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Deletes namespaces a crashed earlier run left; a run still alive (its pid is in the name) keeps its own. */
export async function removeLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of await ourNamespaces()) {
    const pid = Number(ns.slice(NETNS_PREFIX.length).split("-")[0]);
    if (Number.isSafeInteger(pid) && pid > 0 && alive(pid)) continue;
    await ip("netns", "del", ns).catch(() => undefined);
    removed.push(ns);
  }
  return removed;
}

export interface LabNode {
  ns: string;
  /** Channel A and B addresses, host only. */
  hosts: [string, string];
}

/** n nodes, each in its own namespace, on two bridged channels: A 198.18.0.0/24, B 198.19.0.0/24. */
export class NetnsLab {
  readonly base: string;
  readonly bridgeNs: string;
  readonly nodes: LabNode[];

  private constructor(base: string, count: number) {
    this.base = base;
    this.bridgeNs = `${base}-br`;
    this.nodes = Array.from({ length: count }, (_, i) => ({
      ns: `${base}-n${i}`,
      hosts: [`198.18.0.${i + 1}`, `198.19.0.${i + 1}`] as [string, string],
    }));
  }

  static async create(count: number): Promise<NetnsLab> {
    const lab = new NetnsLab(`${NETNS_PREFIX}${process.pid}-${randomBytes(3).toString("hex")}`, count);
    try {
      await lab.#build();
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  async #build(): Promise<void> {
    const br = this.bridgeNs;
    await ip("netns", "add", br);
    for (const c of ["A", "B"]) {
      await ip("-n", br, "link", "add", `br${c}`, "type", "bridge");
      await ip("-n", br, "link", "set", `br${c}`, "up");
    }
    for (const [i, node] of this.nodes.entries()) {
      await ip("netns", "add", node.ns);
      await ip("-n", node.ns, "link", "set", "lo", "up");
      for (const [c, channel] of (["A", "B"] as const).entries()) {
        await ip(
          "-n",
          br,
          "link",
          "add",
          `v${channel}${i}`,
          "type",
          "veth",
          "peer",
          "name",
          `eth${channel}`,
          "netns",
          node.ns,
        );
        await ip("-n", br, "link", "set", `v${channel}${i}`, "master", `br${channel}`, "up");
        await ip("-n", node.ns, "addr", "add", `${node.hosts[c]}/24`, "dev", `eth${channel}`);
        await ip("-n", node.ns, "link", "set", `eth${channel}`, "up");
      }
    }
  }

  /** Takes a node's NIC for `channel` down or up, inside its namespace. */
  async setLink(node: number, channel: "A" | "B", up: boolean): Promise<void> {
    await ip("-n", (this.nodes[node] as LabNode).ns, "link", "set", `eth${channel}`, up ? "up" : "down");
  }

  /** Cuts a node off from every other (both NICs down), or joins it again; its processes keep running. */
  async partition(node: number, cut: boolean): Promise<void> {
    await this.setLink(node, "A", !cut);
    await this.setLink(node, "B", !cut);
  }

  /** Deletes every namespace of this lab (their veths and bridges go with them); safe to call twice. */
  async destroy(): Promise<void> {
    const existing = new Set(await ourNamespaces());
    for (const ns of [...this.nodes.map((n) => n.ns), this.bridgeNs])
      if (existing.has(ns)) await ip("netns", "del", ns).catch(() => undefined);
  }

  /** Fails if a namespace of this lab, or one of its veths in the root namespace, is still there. */
  async assertGone(): Promise<void> {
    assert.deepEqual(
      (await ourNamespaces()).filter((ns) => ns.startsWith(this.base)),
      [],
      "namespaces left behind",
    );
    const veths = await ip("-o", "link", "show", "type", "veth");
    assert.ok(!/\bv[AB]\d+@|\beth[AB]@/.test(veths), `veths left in the root namespace: ${veths}`);
  }
}

/**
 * A fixture script run as a child process, optionally inside a namespace: one
 * JSON argument in, JSON lines out (each with `kind` and `node`), commands as
 * lines on stdin.
 */
export class JsonLinesProcess {
  readonly node: string;
  readonly lines: Line[] = [];
  readonly exited: Promise<number | null>;
  readonly #child: ChildProcess;
  readonly #waiters: { match: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  #stderr = "";
  #exitCode: number | null | undefined;

  constructor(script: string, node: string, args: unknown, netns?: string) {
    this.node = node;
    const command = [process.execPath, script, JSON.stringify(args)];
    // `ip netns exec` execs the command itself, so the child's pid is node's: kill -9 hits the node.
    const [file, ...rest] = netns === undefined ? command : ["ip", "netns", "exec", netns, ...command];
    this.#child = spawn(file as string, rest, { stdio: ["pipe", "pipe", "pipe"] });
    this.exited = new Promise((resolve) =>
      this.#child.once("exit", (code) => {
        this.#exitCode = code;
        resolve(code);
      }),
    );
    let partial = "";
    this.#child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const part of parts) if (part !== "") this.#line(JSON.parse(part) as Line);
    });
    this.#child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4_000);
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get stderr(): string {
    return this.#stderr;
  }

  command(line: string): void {
    this.#child.stdin?.write(`${line}\n`);
  }

  until(match: (l: Line) => boolean, timeoutMs: number, what: string): Promise<Line> {
    const found = this.lines.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.node}: no ${what} within ${timeoutMs} ms; stderr: ${this.#stderr}`)),
        timeoutMs,
      );
      this.#waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  /** SIGKILL, by this child's pid only; resolves once it has exited. */
  async kill9(): Promise<void> {
    if (this.#exitCode === undefined) this.#child.kill("SIGKILL");
    await this.exited;
  }

  #line(line: Line): void {
    this.lines.push(line);
    for (const w of this.#waiters.splice(0)) {
      if (w.match(line)) w.resolve(line);
      else this.#waiters.push(w);
    }
  }
}

/** A heartbeat fixture process (test/netns/heartbeat-node.ts), optionally inside a namespace. */
export class HeartbeatProcess extends JsonLinesProcess {
  constructor(
    args: { self: string; members: { id: string; addresses: [string, string] }[]; outGraceMs?: number },
    netns?: string,
  ) {
    super(FIXTURE, args.self, args, netns);
  }

  /** The answer to a stdin command ("cpu", "view"). */
  async ask(kind: "cpu" | "view", timeoutMs = 2_000): Promise<Line> {
    const seen = this.lines.length;
    this.command(kind);
    return this.until((l) => l.kind === kind && this.lines.indexOf(l) >= seen, timeoutMs, `${kind} answer`);
  }
}

/**
 * A lab of `n` namespaces with one heartbeat process in each (ids n0…), all
 * ready; `extra` goes to every process. destroy() kills them, deletes the
 * namespaces and checks nothing was left in the root namespace.
 */
export class HeartbeatLab {
  readonly lab: NetnsLab;
  readonly procs: HeartbeatProcess[];

  private constructor(lab: NetnsLab, procs: HeartbeatProcess[]) {
    this.lab = lab;
    this.procs = procs;
  }

  static async start(n: number, port: number, extra: { outGraceMs?: number } = {}): Promise<HeartbeatLab> {
    await removeLeftovers();
    const lab = await NetnsLab.create(n);
    const members = lab.nodes.map((node, i) => ({
      id: `n${i}`,
      addresses: [`${node.hosts[0]}:${port}`, `${node.hosts[1]}:${port}`] as [string, string],
    }));
    const procs = lab.nodes.map(
      (node, i) => new HeartbeatProcess({ self: `n${i}`, members, ...extra }, node.ns),
    );
    const started = new HeartbeatLab(lab, procs);
    try {
      await Promise.all(procs.map((p) => p.until((l) => l.kind === "ready", 10_000, "ready")));
    } catch (error) {
      await started.destroy();
      throw error;
    }
    return started;
  }

  proc(i: number): HeartbeatProcess {
    return this.procs[i] as HeartbeatProcess;
  }

  /**
   * Waits until every process sees every peer it watches up on both channels,
   * traffic on A: a process that started late looked silent to the others at
   * first. Returns each process's line count then: what came after is the test's.
   */
  async settled(timeoutMs = 10_000): Promise<number[]> {
    const healthy = JSON.stringify({ channels: { A: "up", B: "up" }, state: "up", active: "A" });
    const deadline = Date.now() + timeoutMs;
    for (let polls = 0; polls < timeoutMs / 50; polls++) {
      const views = await Promise.all(this.procs.map((p) => p.ask("view")));
      const peers = views.flatMap((v) => Object.values(v.views as Record<string, unknown>));
      if (peers.every((view) => JSON.stringify(view) === healthy))
        return this.procs.map((p) => p.lines.length);
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`heartbeat processes not all up on both channels within ${timeoutMs} ms`);
  }

  async destroy(): Promise<void> {
    for (const p of this.procs) await p.kill9();
    await this.lab.destroy();
    await this.lab.assertGone();
  }
}

/**
 * A suite's HeartbeatLab: started before its tests, destroyed after them.
 * `skip` says why namespaces cannot be used here (then nothing starts).
 */
export function heartbeatLabForSuite(
  n: number,
  port: number,
  extra: { outGraceMs?: number } = {},
): { skip?: string; heartbeats?: HeartbeatLab } {
  const suite: { skip?: string; heartbeats?: HeartbeatLab } = {};
  before(async () => {
    suite.skip = await netnsUnavailable();
    if (suite.skip === undefined) suite.heartbeats = await HeartbeatLab.start(n, port, extra);
  });
  after(async () => {
    await suite.heartbeats?.destroy();
  });
  return suite;
}
