// The local cluster: the node network, the real control plane (with its
// controllers) listening on the pod network's gateway, Node objects and
// their Leases, and the kubelet running their pods, from one call; stop()
// removes all of it, pass or fail: processes by pid, namespaces and links,
// directories. Mounts live only in the containers' own mount namespaces and
// go with their processes.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { type Logger, pino } from "pino";
import { NODE_FLAGS } from "../../node-agent/src/node-flags.ts";
import { KubeRest } from "../../operator/src/framework/kube-rest.ts";
import { type ControlPlane, startControlPlane } from "../control-plane/control-plane.ts";
import { ip } from "./ip.ts";
import { Kubelet } from "./kubelet.ts";
import { NODE_NICS, NodeNetwork } from "./network.ts";
import { type NodeCapacity, NodeRegistrar } from "./nodes.ts";
import type { Image, Images } from "./pod-spec.ts";

const REPO = join(import.meta.dirname, "..", "..");
/** Node 24, as the images carry it. */
export const NODE_24 = join(REPO, "node_modules", "node", "bin", "node");

/** The image names the chart is installed with here, and what each runs. */
export const HARNESS_IMAGES = {
  agent: { repository: "harness.local/mosaic/node-agent", tag: "dev" },
  operator: { repository: "harness.local/mosaic/operator", tag: "dev" },
} as const;

/** What the node-agent and operator images hold, as commands of this checkout. */
export function repositoryImages(): Images {
  const base: Omit<Image, "executables"> = {
    workingDir: REPO,
    env: {
      PATH: `${dirname(NODE_24)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      // No home: this machine's ~/.kube/config must not stand in for the pod's service account.
      HOME: "/nonexistent",
    },
  };
  const { agent, operator } = HARNESS_IMAGES;
  return {
    [`${agent.repository}:${agent.tag}`]: {
      ...base,
      executables: {
        mosaic: [NODE_24, ...NODE_FLAGS, join(REPO, "node-agent", "src", "cli", "mosaic.ts")],
        node: [NODE_24],
      },
    },
    [`${operator.repository}:${operator.tag}`]: { ...base, executables: { node: [NODE_24] } },
  };
}

export interface LocalClusterOptions {
  /** 3 to 5 nodes, named node-0…; 3 by default. */
  nodes?: number;
  images?: Images;
  capacity?: NodeCapacity;
  /** CrashLoopBackOff timing; the kubelet's by default. */
  backoff?: { baseMs: number; maxMs: number };
}

export class LocalCluster {
  readonly dir: string;
  readonly network: NodeNetwork;
  readonly cp: ControlPlane;
  readonly kubelet: Kubelet;
  readonly rest: KubeRest;
  readonly log: Logger;
  readonly #registrar: NodeRegistrar;

  private constructor(parts: {
    dir: string;
    network: NodeNetwork;
    cp: ControlPlane;
    kubelet: Kubelet;
    rest: KubeRest;
    log: Logger;
    registrar: NodeRegistrar;
  }) {
    this.dir = parts.dir;
    this.network = parts.network;
    this.cp = parts.cp;
    this.kubelet = parts.kubelet;
    this.rest = parts.rest;
    this.log = parts.log;
    this.#registrar = parts.registrar;
  }

  get logFile(): string {
    return join(this.dir, "harness.log");
  }

  static async start(options: LocalClusterOptions = {}): Promise<LocalCluster> {
    const count = options.nodes ?? 3;
    if (!Number.isInteger(count) || count < 3 || count > 5)
      throw new Error(`a local cluster has 3 to 5 nodes, not ${count}`);
    await NodeNetwork.removeLeftovers();
    const dir = await mkdtemp(join(tmpdir(), "mosaic-harness-"));
    const log = pino({ level: "debug" }, pino.destination({ dest: join(dir, "harness.log"), sync: true }));
    let network: NodeNetwork | undefined;
    let cp: ControlPlane | undefined;
    let registrar: NodeRegistrar | undefined;
    try {
      network = await NodeNetwork.create(Array.from({ length: count }, (_, i) => `node-${i}`));
      cp = await startControlPlane({
        controllers: true,
        address: network.gateway,
        dir: join(dir, "control-plane"),
      });
      const kc = new KubeConfig();
      kc.loadFromFile(cp.kubeconfig);
      const rest = new KubeRest(kc);
      registrar = new NodeRegistrar({
        rest,
        hosts: network.nodes,
        ...(options.capacity === undefined ? {} : { capacity: options.capacity }),
        log,
      });
      await registrar.start();
      const kubelet = new Kubelet({
        kc,
        rest,
        network,
        dir,
        images: options.images ?? repositoryImages(),
        log,
        ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      });
      const cluster = new LocalCluster({ dir, network, cp, kubelet, rest, log, registrar });
      await kubelet.start();
      return cluster;
    } catch (error) {
      registrar?.stop();
      await cp?.stop();
      await network?.destroy();
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Sets a link of `node`'s namespace (eth0…eth2, or an attachment such as net1) up or down. */
  async setLink(node: string, link: string, up: boolean): Promise<void> {
    await ip("-n", this.network.node(node).ns, "link", "set", link, up ? "up" : "down");
  }

  /**
   * Cuts `node` off (false) from the pod network and both switches, as a
   * pulled node would be: its NICs go down and its kubelet stops renewing
   * its Lease, so the node lifecycle controller marks it NotReady. True
   * plugs it back in.
   */
  async setConnected(node: string, connected: boolean): Promise<void> {
    if (!connected) await this.#registrar.setReachable(node, false);
    for (const nic of ["eth0", ...NODE_NICS]) await this.setLink(node, nic, connected);
    if (connected) await this.#registrar.setReachable(node, true);
  }

  /** kill -9 of the first container process of a pod this kubelet runs; returns its pid. */
  killContainer(namespace: string, pod: string): number {
    const pid = this.kubelet.runner(namespace, pod)?.pids()[0];
    if (pid === undefined) throw new Error(`the harness runs no process for ${namespace}/${pod}`);
    process.kill(pid, "SIGKILL");
    return pid;
  }

  /**
   * Ends every container (SIGTERM, then SIGKILL), the control plane, the network and the directory;
   * each step runs even if one before it failed, and the failures are thrown together at the end.
   */
  async stop(): Promise<void> {
    const failures: unknown[] = [];
    const step = async (work: () => Promise<void>) => {
      try {
        await work();
      } catch (error) {
        failures.push(error);
      }
    };
    this.#registrar.stop();
    await step(() => this.kubelet.stop());
    await step(() => this.cp.stop());
    await step(() => this.network.destroy());
    if (process.env.MOSAIC_KEEP_TEST_DIRS === "1") process.stderr.write(`kept ${this.dir}\n`);
    else await step(() => rm(this.dir, { recursive: true, force: true }));
    if (failures.length > 0) throw new AggregateError(failures, "the local cluster did not stop cleanly");
  }
}
