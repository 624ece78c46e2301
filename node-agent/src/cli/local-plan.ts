// The shape of a local cluster, decided before anything starts: node ids,
// the two loopback addresses of each (channel A on 127.0.0.1, channel B on
// 127.0.0.2), their directories and logs, and volumes narrow enough for the
// node count. Pure.
import { join } from "node:path";
import type { ClusterFile } from "../config.ts";
import type { NodeEntry } from "../core/cluster-map.ts";
import { layoutOf, type VolumeSpec } from "../core/volume.ts";
import type { FailoverSettings } from "./failover-options.ts";
import { UsageError } from "./parse.ts";

export const NODES_MAX = 16;
const MiB = 2 ** 20;

export interface LocalAgent {
  id: string;
  addresses: [string, string];
  dataDir: string;
  /** Where this agent's request FIFO lives: applications on "this node" connect there. */
  ipcDir: string;
  /** Its HTTP gateway: 127.0.0.1, after every node's two gRPC ports (base+2n+i). */
  http: string;
  logFile: string;
}

export interface LocalPlan {
  dir: string;
  clusterFile: string;
  stateFile: string;
  logDir: string;
  /** The cluster's own CA and every agent's certificate (tls/local-ca.ts); undefined: the agents run --insecure. */
  tlsDir: string | undefined;
  capacityBytes: number;
  /** Unset: each agent's defaults. */
  failover?: FailoverSettings;
  agents: LocalAgent[];
  cluster: ClusterFile;
}

export interface PlanOptions {
  nodes: number;
  dir: string;
  basePort: number;
  capacityBytes: number;
  failover?: FailoverSettings;
  /** No TLS between the agents and their clients (development, and the insecure baseline of benchmarks). */
  insecure?: boolean;
}

export function planLocalCluster(options: PlanOptions): LocalPlan {
  const { nodes, dir, basePort, capacityBytes } = options;
  const lastPort = basePort + 3 * nodes - 1;
  if (lastPort > 65_535) {
    throw new UsageError(
      `--base-port ${basePort} leaves no room for ${nodes} nodes (ports up to ${lastPort})`,
    );
  }
  const logDir = join(dir, "logs");
  const agents: LocalAgent[] = [];
  for (let i = 0; i < nodes; i++) {
    agents.push({
      id: `node-${i}`,
      addresses: [`127.0.0.1:${basePort + 2 * i}`, `127.0.0.2:${basePort + 2 * i + 1}`],
      dataDir: join(dir, `node-${i}`),
      ipcDir: join(dir, "ipc", `node-${i}`),
      http: `127.0.0.1:${basePort + 2 * nodes + i}`,
      logFile: join(logDir, `node-${i}.log`),
    });
  }
  const entries: NodeEntry[] = agents.map((a) => ({ id: a.id, addresses: a.addresses, state: "up" }));
  const tlsDir = options.insecure === true ? undefined : join(dir, "tls");
  const cluster: ClusterFile = { epoch: 1, nodes: entries, volumes: localVolumes(nodes, capacityBytes) };
  if (tlsDir !== undefined) cluster.tls = { dir: tlsDir };
  return {
    dir,
    clusterFile: join(dir, "cluster.json"),
    stateFile: join(dir, "state.json"),
    logDir,
    tlsDir,
    capacityBytes,
    ...(options.failover === undefined ? {} : { failover: options.failover }),
    agents,
    cluster,
  };
}

/**
 * `media`: erasure 2+1 of 1 MiB chunks; `thumbs`: up to 3 replicas of 256
 * KiB chunks; both narrowed so a stripe never needs more nodes than exist.
 * Capacities split the raw space 80/20 between them, after redundancy.
 */
export function localVolumes(nodes: number, capacityBytesPerNode: number): VolumeSpec[] {
  const erasure = nodes >= 3 ? { data: 2, parity: 1 } : { data: 1, parity: nodes - 1 };
  const replicas = Math.min(3, nodes);
  const rawBytes = nodes * capacityBytesPerNode;
  const media = { chunkSizeBytes: MiB, redundancy: { erasure } };
  const thumbs = { chunkSizeBytes: 256 * 1024, redundancy: { replicas } };
  const share = (spec: typeof media | typeof thumbs, fraction: number) => {
    const layout = layoutOf(spec);
    const usable = (rawBytes * layout.dataPieces) / layout.width;
    return Math.max(MiB, Math.floor((usable * fraction) / MiB) * MiB);
  };
  return [
    { name: "media", ...media, capacityBytes: share(media, 0.8) },
    { name: "thumbs", ...thumbs, capacityBytes: share(thumbs, 0.2) },
  ];
}
