// The kind cluster of `npm run e2e:kind`, built step by step with the real
// tools: three Docker networks, `kind create cluster`, every worker joined to
// channel A's and B's networks (two extra NICs, renamed to what the NADs
// name), the macvlan CNI plugin on every node, Multus (thick plugin) and
// whereabouts from their upstream manifests, the images built and loaded,
// and `helm install` of the chart. delete() removes the cluster and the
// networks, whatever step failed.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "yaml";
import { MOSAIC_NAMESPACE } from "../harness/chart.ts";
import type { KubectlResult } from "../scenarios/chaos-cluster.ts";
import { dockerExec, nicAddresses, renameNics } from "./commands.ts";
import { type ChannelNetwork, type KindPlan, kindConfig } from "./plan.ts";
import { runTool, type ToolOptions } from "./run-tool.ts";

const REPO = join(import.meta.dirname, "..", "..");
export const CHART = join(REPO, "helm", "mosaic");
export const RELEASE = "mosaic";

/** Multus, thick plugin (a daemon per node that runs the delegates): its upstream manifest, pinned. */
export const MULTUS_VERSION = "v4.1.4";
export const MULTUS_MANIFEST = `https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/${MULTUS_VERSION}/deployments/multus-daemonset-thick.yml`;
/** whereabouts, the IPAM the chart's NADs name: cluster-wide ranges, so two pods never share an address. */
export const WHEREABOUTS_VERSION = "v0.8.0";
const WHEREABOUTS = `https://raw.githubusercontent.com/k8snetworkplumbingwg/whereabouts/${WHEREABOUTS_VERSION}/doc/crds`;
export const WHEREABOUTS_MANIFESTS = [
  `${WHEREABOUTS}/whereabouts.cni.cncf.io_ippools.yaml`,
  `${WHEREABOUTS}/whereabouts.cni.cncf.io_overlappingrangeipreservations.yaml`,
  `${WHEREABOUTS}/daemonset-install.yaml`,
];
/** kind's node image carries ptp, host-local, loopback and portmap only: macvlan and ipvlan come from here. */
export const CNI_PLUGINS_VERSION = "v1.6.2";

export function cniPluginsUrl(arch: string): string {
  const goArch = arch === "x64" ? "amd64" : arch;
  return `https://github.com/containernetworking/plugins/releases/download/${CNI_PLUGINS_VERSION}/cni-plugins-linux-${goArch}-${CNI_PLUGINS_VERSION}.tgz`;
}

/** Every Docker network of a plan is labelled so, with the cluster's name: found and removed by it. */
export const NETWORK_LABEL = "dev.mosaic.e2e-kind";

export class KindCluster {
  readonly plan: KindPlan;
  readonly dir: string;
  readonly kubeconfig: string;
  readonly #log: (line: string) => void;

  constructor(plan: KindPlan, dir: string, log: (line: string) => void) {
    this.plan = plan;
    this.dir = dir;
    this.kubeconfig = join(dir, "kubeconfig");
    this.#log = log;
  }

  docker(args: readonly string[], o?: ToolOptions): Promise<KubectlResult> {
    return runTool("docker", args, o);
  }

  /** `docker exec <node> argv...` */
  exec(node: string, argv: readonly string[], o?: ToolOptions): Promise<KubectlResult> {
    return this.docker(dockerExec(node, argv), o);
  }

  kubectl(args: readonly string[], o?: ToolOptions): Promise<KubectlResult> {
    return runTool("kubectl", [`--kubeconfig=${this.kubeconfig}`, ...args], o);
  }

  helm(args: readonly string[]): Promise<KubectlResult> {
    return runTool("helm", [...args, `--kubeconfig=${this.kubeconfig}`]);
  }

  /** Every step up to the chart installed (not yet Ready); `values` are the chart's `--set`s. */
  async create(values: readonly string[]): Promise<void> {
    await this.#step("docker networks", () => this.#networks());
    await this.#step("kind create cluster", () => this.#kind());
    await this.#step("workers on channel A and B", () => this.#attach());
    await this.#step(`macvlan CNI plugin ${CNI_PLUGINS_VERSION}`, () => this.#cniPlugins());
    await this.#step(`Multus ${MULTUS_VERSION} and whereabouts ${WHEREABOUTS_VERSION}`, () => this.#multus());
    await this.#step("images built and loaded", () => this.#images());
    await this.#step("helm install", () => this.install(values));
  }

  /** Deletes the cluster and the networks; each step tried, whatever failed before. */
  async delete(): Promise<void> {
    await runTool("kind", ["delete", "cluster", "--name", this.plan.name], { allowFailure: true });
    const networks = [this.plan.nodeNetwork.docker, this.plan.channelA.docker, this.plan.channelB.docker];
    for (const network of networks) await this.docker(["network", "rm", network], { allowFailure: true });
    this.#log(`kind cluster ${this.plan.name} and networks ${networks.join(", ")} deleted`);
  }

  async install(values: readonly string[]): Promise<void> {
    const sets = values.flatMap((v) => ["--set", v]);
    await this.helm([
      "install",
      RELEASE,
      CHART,
      "-n",
      MOSAIC_NAMESPACE,
      "--create-namespace",
      "--wait=false",
      ...sets,
    ]);
  }

  async upgrade(values: readonly string[]): Promise<void> {
    const sets = values.flatMap((v) => ["--set", v]);
    await this.helm([
      "upgrade",
      RELEASE,
      CHART,
      "-n",
      MOSAIC_NAMESPACE,
      "--reuse-values",
      "--wait=false",
      ...sets,
    ]);
  }

  async #step(what: string, body: () => Promise<void>): Promise<void> {
    const started = performance.now();
    await body();
    this.#log(`${what}: ${Math.round(performance.now() - started)} ms`);
  }

  async #networks(): Promise<void> {
    const { nodeNetwork, channelA, channelB } = this.plan;
    const create = (name: string, subnet: string, ipRange?: string) =>
      this.docker([
        "network",
        "create",
        "--driver=bridge",
        `--subnet=${subnet}`,
        `--gateway=${subnet.replace(/\.0\/\d+$/, ".1")}`,
        ...(ipRange === undefined ? [] : [`--ip-range=${ipRange}`]),
        `--label=${NETWORK_LABEL}=${this.plan.name}`,
        name,
      ]);
    await create(nodeNetwork.docker, nodeNetwork.subnet);
    await create(channelA.docker, channelA.subnet, channelA.nodeRange);
    await create(channelB.docker, channelB.subnet, channelB.nodeRange);
  }

  async #kind(): Promise<void> {
    const config = join(this.dir, "kind.yaml");
    // JSON is YAML: kind reads it as its config.
    await writeFile(config, JSON.stringify(kindConfig(this.plan), null, 2));
    await runTool(
      "kind",
      [
        "create",
        "cluster",
        "--name",
        this.plan.name,
        "--config",
        config,
        "--kubeconfig",
        this.kubeconfig,
        "--wait",
        "300s",
      ],
      {
        env: { ...process.env, KIND_EXPERIMENTAL_DOCKER_NETWORK: this.plan.nodeNetwork.docker },
        timeoutMs: 900_000,
      },
    );
  }

  async #attach(): Promise<void> {
    for (const worker of this.plan.workers) {
      for (const channel of [this.plan.channelA, this.plan.channelB])
        await this.docker(["network", "connect", channel.docker, worker]);
      await this.nameNics(worker);
    }
  }

  /** Names the worker's channel NICs as the NADs' masters, found by the addresses Docker gave them. */
  async nameNics(worker: string): Promise<void> {
    const inspect = JSON.parse((await this.docker(["inspect", worker])).stdout) as {
      NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
    }[];
    const networks = inspect[0]?.NetworkSettings.Networks ?? {};
    const wanted = [this.plan.channelA, this.plan.channelB].map((c: ChannelNetwork) => ({
      address: networks[c.docker]?.IPAddress ?? "",
      nic: c.nic,
    }));
    const current = nicAddresses((await this.exec(worker, ["ip", "-o", "-4", "addr", "show"])).stdout);
    const rename = renameNics(current, wanted);
    if (rename.length > 0) await this.exec(worker, rename);
  }

  async #cniPlugins(): Promise<void> {
    const url = cniPluginsUrl(process.arch);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    const tgz = join(this.dir, "cni-plugins.tgz");
    await writeFile(tgz, Buffer.from(await response.arrayBuffer()));
    for (const node of [this.plan.controlPlane, ...this.plan.workers]) {
      await this.docker(["cp", tgz, `${node}:/tmp/cni-plugins.tgz`]);
      await this.exec(node, [
        "tar",
        "-xzf",
        "/tmp/cni-plugins.tgz",
        "-C",
        "/opt/cni/bin",
        "./macvlan",
        "./ipvlan",
      ]);
    }
  }

  async #multus(): Promise<void> {
    await this.kubectl(["apply", "-f", MULTUS_MANIFEST]);
    for (const manifest of WHEREABOUTS_MANIFESTS) await this.kubectl(["apply", "-f", manifest]);
    for (const ds of ["kube-multus-ds", "whereabouts"])
      await this.kubectl(["rollout", "status", "-n", "kube-system", `ds/${ds}`, "--timeout=300s"]);
  }

  async #images(): Promise<void> {
    const images = await chartImages();
    const tags = new Set(images.map((i) => i.split(":")[1]));
    for (const tag of tags)
      await runTool("bash", [join(REPO, "images", "build.sh"), tag as string], { timeoutMs: 1_800_000 });
    await runTool("kind", ["load", "docker-image", "--name", this.plan.name, ...images], {
      timeoutMs: 900_000,
    });
  }
}

/** The images the chart's values name (repository:tag), which images/build.sh builds. */
export async function chartImages(): Promise<string[]> {
  const values = parse(await readFile(join(CHART, "values.yaml"), "utf8")) as {
    image: Record<string, { repository: string; tag: string }>;
  };
  return Object.values(values.image).map((i) => `${i.repository}:${i.tag}`);
}
