// Real `mosaic agent --kubernetes` processes on this host, for tests against
// the real control plane: each gets what its DaemonSet pod would (the
// downward API's node, pod and namespace; Multus' network-status naming two
// loopback addresses as net1 and net2; the agent port) and a kubeconfig of
// the mosaic-agent ServiceAccount, so it runs with exactly the chart's RBAC.
// Only processes this helper spawned are signalled, by PID.
import { type ChildProcess, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { type ControlPlane, startControlPlane } from "../../../e2e/control-plane/control-plane.ts";
import { AgentClient } from "../../../node-agent/src/client/agent-client.ts";
import { NODE_FLAGS } from "../../../node-agent/src/node-flags.ts";
import { CHART, helm } from "./helm.ts";

const CLI = join(import.meta.dirname, "../../../node-agent/src/cli/mosaic.ts");

const CRDS = join(import.meta.dirname, "..", "..", "..", "crds");

/**
 * A control plane ready for agents and an operator: both CRDs served, the
 * release namespace, the chart's ServiceAccounts and RBAC, and a kubeconfig
 * for each ServiceAccount (so both run with exactly the chart's rights).
 */
export async function controlPlaneForAgents(
  namespace: string,
): Promise<{ cp: ControlPlane; operatorKubeconfig: string; agentKubeconfig: string }> {
  const cp = await startControlPlane();
  try {
    await cp.installCrds([join(CRDS, "stripedvolumes.yaml"), join(CRDS, "clusternodes.yaml")]);
    await cp.kubectl(["create", "namespace", namespace]);
    await installChartRbac(cp, namespace);
    return {
      cp,
      operatorKubeconfig: await serviceAccountKubeconfig(cp, namespace, "mosaic-operator"),
      agentKubeconfig: await serviceAccountKubeconfig(cp, namespace, "mosaic-agent"),
    };
  } catch (error) {
    await cp.stop();
    throw error;
  }
}

/** Events on a cluster-scoped object (they go to "default", as a Node's do). */
export async function eventsOn(
  cp: ControlPlane,
  kind: string,
  name: string,
): Promise<{ reason: string; type: string; message: string }[]> {
  const selector = `involvedObject.kind=${kind},involvedObject.name=${name}`;
  const r = await cp.kubectl(["get", "events", "-n", "default", "--field-selector", selector, "-o", "json"]);
  return JSON.parse(r.stdout).items;
}

/** Installs the chart's ServiceAccounts and RBAC (only those) with the real helm and kubectl. */
export async function installChartRbac(cp: ControlPlane, namespace: string): Promise<void> {
  const { stdout } = await helm(cp.bin, [
    "template",
    "mosaic",
    CHART,
    "-n",
    namespace,
    "--kube-version=1.36.3",
    "--show-only",
    "templates/serviceaccounts.yaml",
    "--show-only",
    "templates/rbac.yaml",
  ]);
  await cp.kubectl(["apply", "-n", namespace, "-f", "-"], { input: stdout });
}

/** A kubeconfig file acting as the ServiceAccount (a token from the TokenRequest API). */
export async function serviceAccountKubeconfig(
  cp: ControlPlane,
  namespace: string,
  serviceAccount: string,
): Promise<string> {
  const token = (
    await cp.kubectl(["create", "token", serviceAccount, "-n", namespace, "--duration=2h"])
  ).stdout.trim();
  const config = parse(await readFile(cp.kubeconfig, "utf8")) as {
    users: { name: string; user: { token: string } }[];
  };
  for (const u of config.users) u.user = { token };
  const path = join(cp.dir, `kubeconfig-${serviceAccount}`);
  await writeFile(path, stringify(config), { mode: 0o600 });
  return path;
}

export interface KubeAgentsOptions {
  count: number;
  kubeconfig: string;
  namespace: string;
  /** MOSAIC_LEASE_SECONDS. */
  leaseSeconds: number;
  /** The agents' own down → out grace (MOSAIC_HEARTBEAT_OUT_GRACE_MS). */
  outGraceMs: number;
  /** Extra `mosaic agent` arguments (e.g. ["--rebuild-rate", "2MiB"]). */
  agentArgs?: string[];
}

interface Running {
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  done: boolean;
}

export class KubeAgents {
  readonly root: string;
  readonly port: number;
  readonly #o: KubeAgentsOptions;
  readonly #running: (Running | undefined)[] = [];
  readonly #clients = new Map<string, AgentClient>();
  readonly #onExit = () => {
    for (const r of this.#running) if (r !== undefined && !r.done) process.kill(r.pid, "SIGKILL");
  };

  private constructor(root: string, port: number, options: KubeAgentsOptions) {
    this.root = root;
    this.port = port;
    this.#o = options;
    process.on("exit", this.#onExit);
  }

  static async start(options: KubeAgentsOptions): Promise<KubeAgents> {
    const root = await mkdtemp(join(tmpdir(), "mosaic-kube-agents-"));
    const ips = Array.from({ length: options.count }, (_, i) => [ipOf(i, 0), ipOf(i, 1), podIpOf(i)]).flat();
    const agents = new KubeAgents(root, await portFreeOnAll(ips), options);
    for (let i = 0; i < options.count; i++) agents.spawn(i);
    return agents;
  }

  nodeName(i: number): string {
    return `node-${i}`;
  }

  podName(i: number): string {
    return `mosaic-agent-test-${i}`;
  }

  address(i: number, channel: 0 | 1 = 0): string {
    return `${ipOf(i, channel)}:${this.port}`;
  }

  /** Agent i's pod IP (the downward API's status.podIP), where kubelet's readiness probe dials. */
  podIP(i: number): string {
    return podIpOf(i);
  }

  /** What Multus would write for agent i: the pod network, then net1 and net2. */
  networkStatus(i: number): string {
    return JSON.stringify([
      { name: "cbr0", interface: "eth0", ips: [podIpOf(i)], default: true, dns: {} },
      { name: `${this.#o.namespace}/mosaic-a`, interface: "net1", ips: [ipOf(i, 0)], dns: {} },
      { name: `${this.#o.namespace}/mosaic-b`, interface: "net2", ips: [ipOf(i, 1)], dns: {} },
    ]);
  }

  client(i: number): AgentClient {
    const address = this.address(i);
    let client = this.#clients.get(address);
    if (client === undefined) {
      client = new AgentClient(address);
      this.#clients.set(address, client);
    }
    return client;
  }

  logPath(i: number): string {
    return join(this.root, `${this.nodeName(i)}.log`);
  }

  logTail(i: number, lines = 15): string {
    const path = this.logPath(i);
    return existsSync(path) ? readFileSync(path, "utf8").trim().split("\n").slice(-lines).join("\n") : "";
  }

  alive(i: number): boolean {
    const r = this.#running[i];
    return r !== undefined && !r.done;
  }

  spawn(i: number): void {
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (!key.startsWith("MOSAIC_") && key !== "NODE_TEST_CONTEXT" && key !== "NODE_OPTIONS")
        env[key] = value;
    }
    Object.assign(env, {
      KUBECONFIG: this.#o.kubeconfig,
      MOSAIC_NODE_NAME: this.nodeName(i),
      MOSAIC_POD_NAME: this.podName(i),
      MOSAIC_POD_NAMESPACE: this.#o.namespace,
      MOSAIC_PORT: String(this.port),
      MOSAIC_NETWORK_STATUS: this.networkStatus(i),
      MOSAIC_POD_IP: podIpOf(i),
      MOSAIC_LEASE_SECONDS: String(this.#o.leaseSeconds),
      MOSAIC_HEARTBEAT_OUT_GRACE_MS: String(this.#o.outGraceMs),
      MOSAIC_LOG_PRETTY: "0",
      MOSAIC_LOG_LEVEL: "info",
    });
    const fd = openSync(this.logPath(i), "a");
    let child: ChildProcess;
    try {
      child = spawn(
        process.execPath,
        [
          ...NODE_FLAGS,
          CLI,
          "agent",
          "--kubernetes",
          "--data-dir",
          join(this.root, this.nodeName(i)),
          "--capacity",
          "8GiB",
          "--scrub-rate",
          "0",
          ...(this.#o.agentArgs ?? []),
        ],
        { stdio: ["ignore", fd, fd], env },
      );
    } finally {
      closeSync(fd);
    }
    if (child.pid === undefined) throw new Error(`could not start ${this.nodeName(i)}`);
    const running: Running = {
      child,
      pid: child.pid,
      done: false,
      exited: new Promise((resolve) =>
        child.once("exit", () => {
          running.done = true;
          resolve();
        }),
      ),
    };
    child.on("error", () => {});
    this.#running[i] = running;
  }

  /** SIGKILL, and wait until it is gone. */
  async kill9(i: number): Promise<void> {
    const r = this.#running[i];
    if (r === undefined || r.done) throw new Error(`${this.nodeName(i)} is not running`);
    process.kill(r.pid, "SIGKILL");
    await r.exited;
  }

  /** SIGTERM every agent still running (SIGKILL after 10 s), close clients, remove the directory. */
  async stop(): Promise<void> {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
    await Promise.all(
      this.#running.map(async (r) => {
        if (r === undefined || r.done) return;
        process.kill(r.pid, "SIGTERM");
        const timer = setTimeout(() => {
          if (!r.done) process.kill(r.pid, "SIGKILL");
        }, 10_000);
        await r.exited;
        clearTimeout(timer);
      }),
    );
    process.off("exit", this.#onExit);
    if (process.env.MOSAIC_KEEP_TEST_DIRS === "1") process.stderr.write(`kept ${this.root}\n`);
    else await rm(this.root, { recursive: true, force: true });
  }
}

/** Agent i's channel A (0) or B (1) address: 127.0.0.1x and 127.0.0.2x, all loopback. */
function ipOf(i: number, channel: 0 | 1): string {
  return `127.0.0.${(channel === 0 ? 11 : 21) + i}`;
}

/** Agent i's pod network address, loopback too: 127.0.0.3x. */
function podIpOf(i: number): string {
  return `127.0.0.${31 + i}`;
}

/** A port free for TCP and UDP on every one of `hosts` (every agent listens on one port, as in a DaemonSet). */
async function portFreeOnAll(hosts: string[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    const ok = await Promise.all(hosts.flatMap((h) => [tcpFree(h, port), udpFree(h, port)]));
    if (ok.every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(", ")} after 50 tries`);
}

function tcpFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

function udpFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    socket.once("error", () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, host, () => socket.close(() => resolve(true)));
  });
}
