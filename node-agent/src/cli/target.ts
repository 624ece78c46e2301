// Finding an agent to talk to: read the cluster file, then ask each node's
// channel A and then B (or only the node given with --node) until one
// answers. Nothing answering is the one clear "is the cluster running?"
// error, raised within seconds.
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentClient, type ClusterInfo } from "../client/agent-client.ts";
import { type ClusterFile, readClusterFile } from "../config.ts";
import type { NodeEntry } from "../core/cluster-map.ts";
import { MosaicError } from "../errors.ts";
import { UsageError } from "./parse.ts";

/** How long one address may take to answer before the next is tried. */
export const PROBE_TIMEOUT_MS = 1_500;

export function defaultLocalDir(): string {
  return join(tmpdir(), "mosaic-local");
}

export function defaultClusterFile(): string {
  return join(defaultLocalDir(), "cluster.json");
}

export interface TargetOptions {
  cluster: string;
  node?: string;
}

export interface Connection {
  client: AgentClient;
  info: ClusterInfo;
  cluster: ClusterFile;
}

export async function connect(options: TargetOptions): Promise<Connection> {
  const cluster = await readClusterFile(options.cluster);
  const nodes = candidates(cluster, options.node);
  const tried: string[] = [];
  for (const node of nodes) {
    for (const address of node.addresses) {
      tried.push(address);
      const answer = await probe(address);
      if (answer.info !== undefined) return { client: answer.client, info: answer.info, cluster };
    }
  }
  const who =
    options.node === undefined ? "no Mosaic agent answers" : `agent ${options.node} does not answer`;
  throw new MosaicError(
    "MOSAIC_ERR_NO_CLUSTER",
    `${who} at ${tried.join(", ")} — is the cluster running? start one with \`npm start\`` +
      ` (cluster file: ${options.cluster})`,
  );
}

/** Asks one address for its cluster view; the client stays open only if it answered. */
export async function probe(
  address: string,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<{ client: AgentClient; info?: ClusterInfo; error?: Error }> {
  const client = new AgentClient(address);
  try {
    return { client, info: await client.cluster(timeoutMs) };
  } catch (error) {
    client.close();
    return { client, error: error as Error };
  }
}

function candidates(cluster: ClusterFile, nodeId: string | undefined): NodeEntry[] {
  const live = cluster.nodes.filter((n) => n.state !== "out");
  if (nodeId === undefined) return live;
  const node = cluster.nodes.find((n) => n.id === nodeId);
  if (node === undefined) {
    throw new UsageError(
      `no node ${JSON.stringify(nodeId)} in the cluster (nodes: ${cluster.nodes.map((n) => n.id).join(", ")})`,
    );
  }
  return [node];
}
