// A client of a whole cluster: it learns the cluster map from any agent that
// answers, sends each write straight to the file's owner (so no agent has to
// forward it), and reads either through one agent (`get`) or, striped, from
// the pieces' holders itself (`read`: one network hop, as a node's own agent
// reads). Applications on a node use their local agent instead.

import type { FileManifest } from "../core/manifest.ts";
import { fileIdOf } from "../core/names.ts";
import { fileOwner } from "../core/ownership.ts";
import type { ReadContext } from "../data/context.ts";
import { readFile } from "../data/file-reader.ts";
import { MosaicError } from "../errors.ts";
import { type Logger, silentLogger } from "../log.ts";
import { PeerClients } from "../rpc/peer-client.ts";
import { AgentClient, type ClusterInfo } from "./agent-client.ts";

/** Stripes fetched ahead of the one being consumed. */
const STRIPES_AHEAD = 4;

export class ClusterClient {
  readonly info: ClusterInfo;
  /** The agent reads and metadata calls go to. */
  readonly agent: AgentClient;
  readonly #agents = new Map<string, AgentClient>();
  readonly #log: Logger = silentLogger();
  #peers: PeerClients | undefined;

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

  /** Reads the file's pieces from their holders in parallel, rebuilding from parity where one fails. */
  async read(volume: string, name: string): Promise<{ manifest: FileManifest; body: AsyncIterable<Buffer> }> {
    const manifest = await this.agent.head(volume, name);
    this.#peers ??= new PeerClients({ map: () => this.info.map, log: this.#log });
    const peers = this.#peers;
    const ctx: ReadContext = {
      self: "",
      map: () => this.info.map,
      log: this.#log,
      stripesInFlight: STRIPES_AHEAD,
      pieces: { get: async (node, key) => (await peers.getPiece(node, key)).data },
    };
    return { manifest, body: readFile(ctx, manifest) };
  }

  close(): void {
    this.#peers?.close();
    for (const agent of this.#agents.values()) agent.close();
    this.#agents.clear();
  }
}
