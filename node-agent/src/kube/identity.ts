// Who an agent is inside Kubernetes, from the environment the DaemonSet gives
// it (operator/src/agent-daemonset.ts): node, pod and namespace from the
// downward API, and its two channel addresses from Multus' network-status
// annotation (also through the downward API) plus the agent port. Pure: the
// environment in, an identity or one error naming every problem out.
import { isIP } from "node:net";
import { MosaicError } from "../errors.ts";

/** Multus attaches channel A as net1 and channel B as net2 (the DaemonSet's k8s.v1.cni.cncf.io/networks). */
export const CHANNEL_INTERFACES = ["net1", "net2"] as const;

export interface ChannelAttachment {
  /** net1 or net2. */
  interface: string;
  ip: string;
  /** host:port the agent serves this channel on ([v6]:port for IPv6). */
  address: string;
}

export interface AgentIdentity {
  /** The Kubernetes Node: the agent's node id in the cluster map and its ClusterNode's name. */
  nodeName: string;
  podName: string;
  namespace: string;
  port: number;
  /** Channel A and channel B. */
  channels: [ChannelAttachment, ChannelAttachment];
  /**
   * The pod network's address (downward API status.podIP): where kubelet's
   * readiness probe dials; undefined when the environment does not give it.
   */
  podIP: string | undefined;
}

/** One entry of k8s.v1.cni.cncf.io/network-status, as Multus writes it (only what we read). */
interface NetworkStatusEntry {
  name?: unknown;
  interface?: unknown;
  ips?: unknown;
}

const STATUS = "MOSAIC_NETWORK_STATUS (the pod's k8s.v1.cni.cncf.io/network-status annotation)";

function badConfig(problems: string[]): MosaicError {
  return new MosaicError("MOSAIC_ERR_BAD_REQUEST", `agent in Kubernetes: ${problems.join("; ")}`);
}

/**
 * Channel A and B from the network-status annotation: the entries whose
 * interface is net1 and net2, their first IP, on `port`.
 */
export function channelsFromNetworkStatus(
  text: string,
  port: number,
): [ChannelAttachment, ChannelAttachment] {
  if (text.trim() === "") {
    throw badConfig([
      `${STATUS} is empty: Multus has not attached the pod's networks (is Multus installed, and do the NetworkAttachmentDefinitions named in k8s.v1.cni.cncf.io/networks exist?)`,
    ]);
  }
  let entries: unknown;
  try {
    entries = JSON.parse(text);
  } catch (error) {
    throw badConfig([`${STATUS} is not JSON: ${(error as Error).message}`]);
  }
  if (!Array.isArray(entries)) throw badConfig([`${STATUS} must be a JSON list of attachments`]);
  const found = entries as NetworkStatusEntry[];
  const channel = (name: string, label: string): ChannelAttachment => {
    const entry = found.find((e) => e !== null && typeof e === "object" && e.interface === name);
    if (entry === undefined) {
      const seen = found.map((e) => String(e?.interface ?? "?")).join(", ") || "none";
      throw badConfig([`${STATUS} has no interface ${name} (${label}); interfaces attached: ${seen}`]);
    }
    const ips = Array.isArray(entry.ips) ? (entry.ips as unknown[]) : [];
    const ip = ips.find((a): a is string => typeof a === "string" && isIP(a) !== 0);
    if (ip === undefined) {
      throw badConfig([
        `${STATUS}: interface ${name} (${label}, network ${String(entry.name ?? "?")}) has no IP address (ips: ${JSON.stringify(entry.ips ?? null)}); give its NetworkAttachmentDefinition an ipam section`,
      ]);
    }
    return { interface: name, ip, address: isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}` };
  };
  const a = channel(CHANNEL_INTERFACES[0], "channel A");
  const b = channel(CHANNEL_INTERFACES[1], "channel B");
  if (a.ip === b.ip)
    throw badConfig([`${STATUS}: net1 and net2 have the same address ${a.ip}; the two channels must differ`]);
  return [a, b];
}

/** The agent's identity from its environment; every missing variable is named in one error. */
export function identityFromEnv(env: Record<string, string | undefined>): AgentIdentity {
  const problems: string[] = [];
  const text = (name: string, what: string): string => {
    const value = env[name]?.trim() ?? "";
    if (value === "") problems.push(`${name} (${what}) is not set`);
    return value;
  };
  const nodeName = text("MOSAIC_NODE_NAME", "downward API spec.nodeName");
  const podName = text("MOSAIC_POD_NAME", "downward API metadata.name");
  const namespace = text("MOSAIC_POD_NAMESPACE", "downward API metadata.namespace");
  const rawPort = text("MOSAIC_PORT", "the agents' gRPC and heartbeat port");
  const port = Number(rawPort);
  if (rawPort !== "" && (!/^\d+$/.test(rawPort) || port < 1 || port > 65_535))
    problems.push(`MOSAIC_PORT=${rawPort} must be a port number from 1 to 65535`);
  const podIP = env.MOSAIC_POD_IP?.trim() || undefined;
  if (podIP !== undefined && isIP(podIP) === 0)
    problems.push(`MOSAIC_POD_IP=${podIP} (downward API status.podIP) is not an IP address`);
  if (problems.length > 0) throw badConfig(problems);
  const channels = channelsFromNetworkStatus(env.MOSAIC_NETWORK_STATUS ?? "", port);
  return { nodeName, podName, namespace, port, channels, podIP };
}
