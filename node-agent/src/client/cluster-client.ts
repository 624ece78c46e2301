// A client of a whole cluster: it learns the cluster map from any agent that
// answers, sends each write straight to the file's owner (so no agent has to
// forward it), and reads through one agent. What the CLI and the benchmarks
// use; applications on a node use their local agent instead.

import type { FileManifest } from "../core/manifest.ts";
import { fileIdOf } from "../core/names.ts";
import { fileOwner } from "../core/ownership.ts";
import { MosaicError } from "../errors.ts";
import { AgentClient, type ClusterInfo } from "./agent-client.ts";

export class ClusterClient {
  readonly info: ClusterInfo;
  /** The agent reads and metadata calls go to. */
  readonly agent: AgentClient;
  readonly #agents = new Map<string, AgentClient>();

  private constructor(info: ClusterInfo, agent: AgentClient) {
    this.info = info;
    this.agent = agent;
    this.#agents.set(info.node, agent);
  }

  /** Connects to the first of `addresses` whose agent answers within `timeoutMs`. */
  static async connect(addresses: string[], timeoutMs = 3_000): Promise<ClusterClient> {
    const failures: string[] = [];
    for (const address of addresses) {
      const agent = new AgentClient(address);
      try {
        return new ClusterClient(await agent.cluster(timeoutMs), agent);
      } catch (error) {
        agent.close();
        failures.push(`${address}: ${(error as Error).message}`);
      }
    }
    throw new MosaicError(
      "MOSAIC_ERR_NO_CLUSTER",
      `no Mosaic agent answers at ${addresses.join(", ")} — is the cluster running? (${failures.join("; ")})`,
    );
  }

  /** The agent on `node`, reached on its channel A. */
  agentOf(node: string): AgentClient {
    let agent = this.#agents.get(node);
    if (agent === undefined) {
      const entry = this.info.map.nodes.find((n) => n.id === node);
      if (entry === undefined)
        throw new MosaicError("MOSAIC_ERR_PEER_UNAVAILABLE", `node ${node} is not in the cluster map`);
      agent = new AgentClient(entry.addresses[0]);
      this.#agents.set(node, agent);
    }
    return agent;
  }

  /** Writes through the file's owner; falls back to the connected agent (which forwards) if the volume is unknown here. */
  put(
    volume: string,
    name: string,
    source: AsyncIterable<Buffer>,
    sizeBytes?: number,
  ): Promise<FileManifest> {
    const spec = this.info.volumes.find((v) => v.name === volume);
    const target =
      spec === undefined
        ? this.agent
        : this.agentOf(fileOwner(this.info.map, volume, fileIdOf(volume, name), spec.redundancy));
    return target.put(volume, name, source, sizeBytes);
  }

  get(volume: string, name: string) {
    return this.agent.get(volume, name);
  }

  close(): void {
    for (const agent of this.#agents.values()) agent.close();
    this.#agents.clear();
  }
}
