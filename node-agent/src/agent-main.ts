// Runs one agent as a process until SIGTERM or SIGINT: the body of
// `mosaic agent`. SIGHUP re-reads the cluster file (members and volumes).
// Every wait on a shared-memory ring parks a libuv pool thread for a slice
// (ipc/slot-ring.ts), and chunk files go through the same pool: with
// libuv's default of 4 threads a few idle clients would stall the store.
// Read once, when the pool first starts, so it is set while modules load.
process.env.UV_THREADPOOL_SIZE ??= "64";

import { Agent } from "./agent.ts";
import { readClusterFile } from "./config.ts";
import { createRootLogger } from "./log.ts";
import type { HeartbeatTimings } from "./membership/config.ts";
import { agentTls, type TlsFlags } from "./tls/agent-tls-choice.ts";
import { localAgentTlsDir } from "./tls/local-ca.ts";

export interface AgentProcessOptions extends TlsFlags {
  clusterFile: string;
  nodeId: string;
  dataDir: string;
  capacityBytes: number;
  /** Directory of the request FIFO for applications on this node; none: no same-node IPC. */
  ipcDir?: string;
  /** Scrub rate in bytes per second; 0 turns the scrubber off. */
  scrubRateBytesPerSecond?: number;
  /** How long a node stays down in the agreed map before it is out (AgentConfig.outGraceMs). */
  outGraceMs?: number;
  /** Rebuild rate in bytes per second; 0 turns the rebuild off (AgentConfig.rebuildRateBytesPerSecond). */
  rebuildRateBytesPerSecond?: number;
  /** Heartbeat interval and channel-down time (AgentConfig.heartbeat). */
  heartbeat?: Partial<HeartbeatTimings>;
  /** host:port of the HTTP gateway (AgentConfig.http); none: no HTTP. */
  http?: string;
  /** host:port of a listener serving only GET /metrics (AgentConfig.metrics). */
  metrics?: string;
}

export async function runAgentProcess(options: AgentProcessOptions): Promise<void> {
  const log = createRootLogger({ node: options.nodeId });
  const cluster = await readClusterFile(options.clusterFile);
  const self = cluster.nodes.find((n) => n.id === options.nodeId);
  if (self === undefined) {
    throw new Error(
      `node ${options.nodeId} is not in ${options.clusterFile} (nodes: ${cluster.nodes.map((n) => n.id).join(", ")})`,
    );
  }
  // Without --tls-dir or --insecure, a cluster file with a local CA names this node's directory.
  const tlsDir =
    options.tlsDir ??
    (options.insecure !== true && cluster.tls?.dir !== undefined
      ? localAgentTlsDir(cluster.tls.dir, options.nodeId)
      : undefined);
  const tls = await agentTls({ ...options, ...(tlsDir === undefined ? {} : { tlsDir }) }, log);
  const agent = await Agent.start({
    nodeId: options.nodeId,
    ...(tls === undefined ? {} : { tls }),
    listen: self.addresses,
    dataDir: options.dataDir,
    capacityBytes: options.capacityBytes,
    ...(options.ipcDir === undefined ? {} : { ipcDir: options.ipcDir }),
    ...(options.scrubRateBytesPerSecond === undefined
      ? {}
      : { scrubRateBytesPerSecond: options.scrubRateBytesPerSecond }),
    ...(options.outGraceMs === undefined ? {} : { outGraceMs: options.outGraceMs }),
    ...(options.rebuildRateBytesPerSecond === undefined
      ? {}
      : { rebuildRateBytesPerSecond: options.rebuildRateBytesPerSecond }),
    ...(options.heartbeat === undefined ? {} : { heartbeat: options.heartbeat }),
    ...(options.http === undefined ? {} : { http: options.http }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    map: { epoch: cluster.epoch, nodes: cluster.nodes },
    volumes: cluster.volumes,
    log,
  });

  process.on("SIGHUP", () => {
    readClusterFile(options.clusterFile).then(
      (next) => agent.update({ epoch: next.epoch, nodes: next.nodes }, next.volumes),
      (error) => log.error({ err: error }, "cluster file not reloaded"),
    );
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "stopping");
      resolve();
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  await agent.stop();
  log.flush();
  // Idle keep-alive timers of gRPC clients must not hold the process open.
  process.exit(0);
}
