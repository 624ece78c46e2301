// Multus, with the macvlan CNI plugin and whereabouts-style IPAM, for pods on
// the harness's nodes. Before a pod's containers start: read the attachments
// its `k8s.v1.cni.cncf.io/networks` annotation asks for, look up each
// NetworkAttachmentDefinition, make the interface it describes (a macvlan on
// the node NIC its `master` names, under the name the annotation asks for,
// with an address from its range) and write `k8s.v1.cni.cncf.io/network-status`
// on the pod as Multus does. When the pod is gone, delete the interfaces (CNI DEL).
//
// Pods share their node's network namespace here (as if hostNetwork), so an
// attachment belongs to one pod of a node at a time: a pod whose interface
// name is still held by another waits for it (AttachmentBusy). Each node gets
// the same address in a range every time (the node's index + 1), so a
// replacement pod keeps its node's addresses; whereabouts would usually, not
// always, hand back the same one.
import type { V1Pod } from "@kubernetes/client-node";
import type { KubeRest } from "../../operator/src/framework/kube-rest.ts";
import { ip, ipJson } from "./ip.ts";
import { NODE_NICS, type NodeHost } from "./network.ts";

export const NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";
export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";
/** The default network's name in network-status (a real cluster's is its CNI's, e.g. cbr0). */
export const POD_NETWORK_NAME = "harness-pod-network";
/** The only addresses the harness may give an interface. */
const ALLOWED = { network: ipv4ToInt("198.18.0.0"), prefixLength: 15 };

export interface AttachmentRequest {
  namespace: string;
  name: string;
  /** The interface name in the pod (net1, net2, … unless the annotation names one). */
  interface: string;
}

export interface AttachmentConfig {
  type: "macvlan";
  master: string;
  mode: string;
  /** CIDR the addresses come from. */
  range: string;
}

export interface NetworkStatusEntry {
  name: string;
  interface: string;
  ips: string[];
  mac: string;
  default?: boolean;
  dns: Record<string, never>;
}

/** A pod's interface name is held by another pod of its node; try again once that one is gone. */
export class AttachmentBusy extends Error {
  override readonly name = "AttachmentBusy";
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const INTERFACE = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * The attachments the annotation asks for, in order, as Multus reads it:
 * "name", "namespace/name" or "namespace/name@interface", comma-separated, or
 * a JSON list of {name, namespace?, interface?}.
 */
export function requestedAttachments(
  annotation: string | undefined,
  podNamespace: string,
): AttachmentRequest[] {
  const text = annotation?.trim() ?? "";
  if (text === "") return [];
  const raw: { name?: unknown; namespace?: unknown; interface?: unknown }[] = [];
  if (text.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new Error(`${NETWORKS_ANNOTATION} is not valid JSON: ${(error as Error).message}`);
    }
    if (!Array.isArray(parsed)) throw new Error(`${NETWORKS_ANNOTATION} must be a JSON list`);
    raw.push(...parsed);
  } else {
    for (const item of text.split(",")) {
      const [ref = "", iface] = item.trim().split("@");
      const slash = ref.indexOf("/");
      raw.push(
        slash < 0
          ? { name: ref, interface: iface }
          : { namespace: ref.slice(0, slash), name: ref.slice(slash + 1), interface: iface },
      );
    }
  }
  const requests = raw.map((r, i): AttachmentRequest => {
    const name = typeof r.name === "string" ? r.name : "";
    const namespace = typeof r.namespace === "string" && r.namespace !== "" ? r.namespace : podNamespace;
    const iface = typeof r.interface === "string" && r.interface !== "" ? r.interface : `net${i + 1}`;
    if (!DNS_LABEL.test(name) || !DNS_LABEL.test(namespace))
      throw new Error(
        `${NETWORKS_ANNOTATION}: attachment ${i + 1} names no valid network ("${namespace}/${name}")`,
      );
    if (!INTERFACE.test(iface) || iface === "eth0" || iface === "lo")
      throw new Error(`${NETWORKS_ANNOTATION}: "${iface}" cannot be an attachment's interface name`);
    return { namespace, name, interface: iface };
  });
  const names = requests.map((r) => r.interface);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new Error(`${NETWORKS_ANNOTATION} names interface ${twice} twice`);
  return requests;
}

/** A NetworkAttachmentDefinition's CNI config, as far as the harness can make it: macvlan on a node NIC. */
export function attachmentConfig(nad: string, configText: string): AttachmentConfig {
  let config: {
    type?: unknown;
    master?: unknown;
    mode?: unknown;
    ipam?: { range?: unknown; subnet?: unknown };
  };
  try {
    config = JSON.parse(configText);
  } catch (error) {
    throw new Error(
      `NetworkAttachmentDefinition ${nad}: spec.config is not JSON: ${(error as Error).message}`,
    );
  }
  if (config.type !== "macvlan") {
    throw new Error(
      `NetworkAttachmentDefinition ${nad}: CNI type ${JSON.stringify(config.type)}; the harness makes macvlan attachments only (this kernel has no ipvlan)`,
    );
  }
  const master = String(config.master ?? "");
  if (!(NODE_NICS as readonly string[]).includes(master))
    throw new Error(
      `NetworkAttachmentDefinition ${nad}: master "${master}" is not a node NIC (${NODE_NICS.join(", ")})`,
    );
  const range = config.ipam?.range ?? config.ipam?.subnet;
  if (typeof range !== "string")
    throw new Error(
      `NetworkAttachmentDefinition ${nad}: ipam has no range (whereabouts) or subnet (host-local)`,
    );
  parseRange(range, nad);
  return { type: "macvlan", master, mode: typeof config.mode === "string" ? config.mode : "bridge", range };
}

/** The address node `index` gets in `range` (the range's host index + 1), with the range's prefix length. */
export function nodeAddress(range: string, index: number): string {
  const { network, prefixLength } = parseRange(range, range);
  const hosts = 2 ** (32 - prefixLength) - 2;
  if (index + 1 > hosts) throw new Error(`range ${range} has ${hosts} addresses; node ${index} needs more`);
  return `${intToIpv4(network + index + 1)}/${prefixLength}`;
}

function parseRange(range: string, what: string): { network: number; prefixLength: number } {
  const match = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(range.trim());
  const prefixLength = Number(match?.[2]);
  const address = match === null ? Number.NaN : ipv4ToInt(match[1] as string);
  if (Number.isNaN(address) || prefixLength < 8 || prefixLength > 30)
    throw new Error(`${what}: range "${range}" is not an IPv4 CIDR from /8 to /30`);
  const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  const network = (address & mask) >>> 0;
  const allowedMask = (0xffffffff << (32 - ALLOWED.prefixLength)) >>> 0;
  if (prefixLength < ALLOWED.prefixLength || (network & allowedMask) >>> 0 !== ALLOWED.network)
    throw new Error(`${what}: range ${range} is outside 198.18.0.0/15, the only addresses the harness uses`);
  return { network, prefixLength };
}

function ipv4ToInt(text: string): number {
  const parts = text.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return Number.NaN;
  return parts.reduce((n, p) => n * 256 + p, 0);
}

function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 255).join(".");
}

/**
 * Makes the pod's attachments in its node's namespace and writes network-status; returns the pod as
 * updated and the interfaces made (for detach).
 */
export async function attach(
  rest: KubeRest,
  node: NodeHost,
  pod: V1Pod,
): Promise<{ pod: V1Pod; interfaces: string[] }> {
  const namespace = pod.metadata?.namespace ?? "default";
  const requests = requestedAttachments(pod.metadata?.annotations?.[NETWORKS_ANNOTATION], namespace);
  const present = new Set(
    (await ipJson<{ ifname: string }[]>("-n", node.ns, "link", "show")).map((l) => l.ifname),
  );
  const held = requests.find((r) => present.has(r.interface));
  if (held !== undefined)
    throw new AttachmentBusy(`${held.interface} on ${node.name} is still another pod's`);
  const configs = await Promise.all(
    requests.map(async (r) => {
      const nad = await rest.get<{ spec?: { config?: string } }>(
        `/apis/k8s.cni.cncf.io/v1/namespaces/${r.namespace}/network-attachment-definitions/${r.name}`,
      );
      return attachmentConfig(`${r.namespace}/${r.name}`, nad.spec?.config ?? "");
    }),
  );
  const status: NetworkStatusEntry[] = [
    {
      name: POD_NETWORK_NAME,
      interface: "eth0",
      ips: [node.ip],
      mac: await mac(node, "eth0"),
      default: true,
      dns: {},
    },
  ];
  const made: string[] = [];
  try {
    for (const [i, r] of requests.entries()) {
      const config = configs[i] as AttachmentConfig;
      const address = nodeAddress(config.range, node.index);
      await ip(
        "-n",
        node.ns,
        "link",
        "add",
        r.interface,
        "link",
        config.master,
        "type",
        "macvlan",
        "mode",
        config.mode,
      );
      made.push(r.interface);
      await ip("-n", node.ns, "addr", "add", address, "dev", r.interface);
      await ip("-n", node.ns, "link", "set", r.interface, "up");
      status.push({
        name: `${r.namespace}/${r.name}`,
        interface: r.interface,
        ips: [address.split("/")[0] as string],
        mac: await mac(node, r.interface),
        dns: {},
      });
    }
    const annotated = await rest.patch<V1Pod>(
      `/api/v1/namespaces/${namespace}/pods/${pod.metadata?.name}`,
      "merge",
      {
        metadata: { annotations: { [NETWORK_STATUS_ANNOTATION]: JSON.stringify(status, null, 2) } },
      },
    );
    return { pod: annotated, interfaces: made };
  } catch (error) {
    await detach(node, made);
    throw error;
  }
}

/** The interfaces a pod asked for, by name: deleted from its node (CNI DEL). */
export async function detach(node: NodeHost, interfaces: readonly string[]): Promise<void> {
  for (const name of interfaces) await ip("-n", node.ns, "link", "del", name).catch(() => undefined);
}

async function mac(node: NodeHost, name: string): Promise<string> {
  const [link] = await ipJson<{ address: string }[]>("-n", node.ns, "link", "show", "dev", name);
  return link?.address ?? "";
}
