// The machines' network, standing in for real hosts, NICs and switches:
//   - each node is a network namespace (its "host");
//   - eth0 is the node's NIC on the pod network: a veth whose other end sits
//     in a bridge of the root namespace holding the gateway address, the one
//     address kube-apiserver listens on, so pods reach the API as in a
//     cluster and the kubelet (this process) reaches pods to probe them;
//   - eth1 and eth2 are two more NICs, cabled to two switches (bridges in a
//     "fabric" namespace): the `master`s the NetworkAttachmentDefinitions
//     name, on which Multus' macvlan attachments are made (multus.ts).
// Addresses come from 198.18.0.0/15 only. The root namespace gains one bridge
// (with its address and the subnet's route) and the veths' root ends, all
// named by this run and labelled with its pid, and loses them on destroy();
// nothing else of it changes (no forwarding, no NAT).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { ip, ipJson, tool } from "./ip.ts";

/** Namespaces are named mosaic-h-<pid>-<run>-<node> and mosaic-h-<pid>-<run>-fabric. */
export const NAMESPACE_PREFIX = "mosaic-h-";
/** Root-namespace links carry this alias and the owning pid, so a later run can tell leftovers. */
const ROOT_ALIAS = "mosaic-harness pid=";
/** The node NICs attachments can be made on: a NAD's `master`. */
export const NODE_NICS = ["eth1", "eth2"] as const;
/** Pod networks are /24s picked from here, clear of NetnsLab's and the Service range. */
const POD_NETWORK_SUBNETS = { first: [198, 19, 64], count: 64 } as const;

export interface NodeHost {
  name: string;
  index: number;
  /** Its network namespace. */
  ns: string;
  /** eth0's address on the pod network: the Node's InternalIP, and the IP of pods on it. */
  ip: string;
}

interface LinkInfo {
  ifname: string;
  ifalias?: string;
}

/** The first pod-network /24 (its network address) that no address of the root namespace is in. */
export function freePodSubnet(usedAddresses: readonly string[]): string {
  const used = new Set(usedAddresses.map((a) => a.split(".").slice(0, 3).join(".")));
  const [a, b, c] = POD_NETWORK_SUBNETS.first;
  for (let i = 0; i < POD_NETWORK_SUBNETS.count; i++) {
    const prefix = `${a}.${b}.${c + i}`;
    if (!used.has(prefix)) return `${prefix}.0`;
  }
  throw new Error(`every pod network /24 from ${a}.${b}.${c}.0 on is in use in the root namespace`);
}

export class NodeNetwork {
  /** Prefix of this run's namespace names. */
  readonly base: string;
  /** The root bridge's address: where kube-apiserver listens. */
  readonly gateway: string;
  readonly nodes: readonly NodeHost[];
  readonly fabricNs: string;
  readonly #run: string;
  readonly #bridge: string;

  private constructor(run: string, subnet: string, names: readonly string[]) {
    this.#run = run;
    this.base = `${NAMESPACE_PREFIX}${process.pid}-${run}`;
    this.fabricNs = `${this.base}-fabric`;
    this.#bridge = `mh${run}br`;
    const prefix = subnet.split(".").slice(0, 3).join(".");
    this.gateway = `${prefix}.1`;
    this.nodes = names.map((name, index) => ({
      name,
      index,
      ns: `${this.base}-${name}`,
      ip: `${prefix}.${index + 2}`,
    }));
  }

  /** Builds the namespaces, NICs and bridges for nodes `names`; on failure removes what it made. */
  static async create(names: readonly string[]): Promise<NodeNetwork> {
    if (names.length === 0 || names.length > 200) throw new Error("a node network has 1 to 200 nodes");
    const addresses = await ipJson<{ addr_info?: { local: string }[] }[]>("-4", "addr", "show");
    const subnet = freePodSubnet(addresses.flatMap((l) => (l.addr_info ?? []).map((a) => a.local)));
    const network = new NodeNetwork(randomBytes(2).toString("hex"), subnet, names);
    try {
      await network.#build();
    } catch (error) {
      await network.destroy();
      throw error;
    }
    return network;
  }

  /** Deletes namespaces and root links that runs no longer alive left behind; returns their names. */
  static async removeLeftovers(): Promise<string[]> {
    const removed: string[] = [];
    for (const ns of await namespaces()) {
      const pid = Number(ns.slice(NAMESPACE_PREFIX.length).split("-")[0]);
      if (alive(pid)) continue;
      await ip("netns", "del", ns).catch(() => undefined);
      removed.push(ns);
    }
    for (const link of await ipJson<LinkInfo[]>("link", "show")) {
      if (!link.ifalias?.startsWith(ROOT_ALIAS)) continue;
      if (alive(Number(link.ifalias.slice(ROOT_ALIAS.length)))) continue;
      await ip("link", "del", link.ifname).catch(() => undefined);
      removed.push(link.ifname);
    }
    return removed;
  }

  node(name: string): NodeHost {
    const host = this.nodes.find((n) => n.name === name);
    if (host === undefined) throw new Error(`no node ${name} in this harness`);
    return host;
  }

  async #build(): Promise<void> {
    const alias = `${ROOT_ALIAS}${process.pid}`;
    await ip("link", "add", this.#bridge, "type", "bridge");
    await ip("link", "set", this.#bridge, "alias", alias);
    await ip("addr", "add", `${this.gateway}/24`, "dev", this.#bridge);
    await ip("link", "set", this.#bridge, "up");
    await ip("netns", "add", this.fabricNs);
    for (const k of NODE_NICS.keys()) {
      await ip("-n", this.fabricNs, "link", "add", `sw${k + 1}`, "type", "bridge");
      await ip("-n", this.fabricNs, "link", "set", `sw${k + 1}`, "up");
    }
    for (const node of this.nodes) {
      await ip("netns", "add", node.ns);
      await ip("-n", node.ns, "link", "set", "lo", "up");
      // Pods share their node's namespace here, so net1 sits beside its master eth1. With Linux's
      // defaults eth1 would answer ARP for net1's address too, and peers that learnt eth1's MAC
      // would still reach the node with net1 down. In a cluster net1 is in the pod's own namespace.
      await ip("netns", "exec", node.ns, tool("sysctl"), "-q", "-w", "net.ipv4.conf.all.arp_ignore=1");
      await ip("netns", "exec", node.ns, tool("sysctl"), "-q", "-w", "net.ipv4.conf.all.arp_announce=2");
      const rootEnd = `mh${this.#run}n${node.index}`;
      await ip("link", "add", rootEnd, "type", "veth", "peer", "name", "eth0", "netns", node.ns);
      await ip("link", "set", rootEnd, "alias", alias);
      await ip("link", "set", rootEnd, "master", this.#bridge, "up");
      await ip("-n", node.ns, "addr", "add", `${node.ip}/24`, "dev", "eth0");
      await ip("-n", node.ns, "link", "set", "eth0", "up");
      for (const [k, nic] of NODE_NICS.entries()) {
        const switchEnd = `n${node.index}e${k + 1}`;
        await ip(
          "-n",
          this.fabricNs,
          "link",
          "add",
          switchEnd,
          "type",
          "veth",
          "peer",
          "name",
          nic,
          "netns",
          node.ns,
        );
        await ip("-n", this.fabricNs, "link", "set", switchEnd, "master", `sw${k + 1}`, "up");
        await ip("-n", node.ns, "link", "set", nic, "up");
      }
    }
  }

  /** Deletes this run's namespaces (their veths go with them) and root bridge; safe to call twice. */
  async destroy(): Promise<void> {
    const existing = new Set(await namespaces());
    for (const ns of [...this.nodes.map((n) => n.ns), this.fabricNs])
      if (existing.has(ns)) await ip("netns", "del", ns).catch(() => undefined);
    for (const link of await this.#rootLinks()) await ip("link", "del", link).catch(() => undefined);
  }

  /** Fails if a namespace or root-namespace link of this run is still there. */
  async assertGone(): Promise<void> {
    assert.deepEqual(
      (await namespaces()).filter((ns) => ns.startsWith(this.base)),
      [],
      "namespaces left behind",
    );
    assert.deepEqual(await this.#rootLinks(), [], "links left in the root namespace");
  }

  async #rootLinks(): Promise<string[]> {
    const links = await ipJson<LinkInfo[]>("link", "show");
    return links.map((l) => l.ifname).filter((name) => name.startsWith(`mh${this.#run}`));
  }
}

async function namespaces(): Promise<string[]> {
  const list = await ipJson<{ name: string }[]>("netns", "list");
  return list.map((n) => n.name).filter((n) => n.startsWith(NAMESPACE_PREFIX));
}

function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
