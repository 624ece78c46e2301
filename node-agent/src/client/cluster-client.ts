// A client of a whole cluster: it learns the cluster map from any agent that
// answers, sends each write straight to the file's owner (so no agent has to
// forward it), and reads either through one agent (`get`) or, striped, from
// the pieces' holders itself (`read`: one network hop, as a node's own agent
// reads). Applications on a node use their local agent instead.
//
// The map was learned at connect and the owner it names may have died since.
// A write then goes to the next of the file's manifest holders that can be
// reached (it coordinates the write itself, passing over the dead owner as
// every agent does), else to the connected agent, which forwards or
// coordinates. Only while nothing was taken from the source: a stream partly
// sent is never sent again, as the retry would store its tail as the file.

import type { FileManifest } from "../core/manifest.ts";
import { fileIdOf } from "../core/names.ts";
import { manifestHolders } from "../core/ownership.ts";
import type { ReadContext } from "../data/context.ts";
import { readFile } from "../data/file-reader.ts";
import { isMosaicError, MosaicError } from "../errors.ts";
import { type Logger, silentLogger } from "../log.ts";
import { PeerClients } from "../rpc/peer-client.ts";
import { CLUSTER_TRUST } from "../tls/client-trust.ts";
import { AgentClient, type ClusterInfo } from "./agent-client.ts";

/** Stripes fetched ahead of the one being consumed. */
const STRIPES_AHEAD = 4;
/** How long a manifest holder may take to answer, per channel, before a write tries the next. */
export const OWNER_ANSWER_WAIT_MS = 1_000;

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
    this.#agents.set(agent.address, agent);
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

  /** The agent on `node`, reached on its channel A (0) or B (1). */
  agentOf(node: string, channel: 0 | 1 = 0): AgentClient {
    if (node === this.info.node && channel === 0) return this.agent;
    const entry = this.info.map.nodes.find((n) => n.id === node);
    if (entry === undefined)
      throw new MosaicError("MOSAIC_ERR_PEER_UNAVAILABLE", `node ${node} is not in the cluster map`);
    const address = entry.addresses[channel];
    let agent = this.#agents.get(address);
    if (agent === undefined) {
      agent = new AgentClient(address, { node });
      this.#agents.set(address, agent);
    }
    return agent;
  }

  /**
   * Writes through the file's owner, or, if it does not answer within
   * OWNER_ANSWER_WAIT_MS on either channel, the next manifest holder that
   * does, else the connected agent (see the top of this file).
   */
  async put(
    volume: string,
    name: string,
    source: AsyncIterable<Buffer>,
    sizeBytes?: number,
  ): Promise<FileManifest> {
    const input = new WatchedSource(source);
    const passed: string[] = [];
    const targets = this.#writeTargets(volume, name);
    for (const [i, node] of targets.entries()) {
      const last = i === targets.length - 1;
      const agent = last ? this.agentOf(node) : await this.#answeringAgent(node, passed);
      if (agent === undefined) continue;
      try {
        return await agent.put(volume, name, input, sizeBytes);
      } catch (error) {
        if (last || input.touched || !isMosaicError(error, "MOSAIC_ERR_PEER_UNAVAILABLE")) throw error;
        passed.push(error.message);
      }
    }
    // Not reached: the connected agent comes last and its failure is thrown.
    throw new MosaicError("MOSAIC_ERR_PEER_UNAVAILABLE", `no agent took the write: ${passed.join("; ")}`);
  }

  /** The file's manifest holders up in the map, owner first, then the connected agent; only it for an unknown volume. */
  #writeTargets(volume: string, name: string): string[] {
    const spec = this.info.volumes.find((v) => v.name === volume);
    if (spec === undefined) return [this.info.node];
    const { map } = this.info;
    const holders = manifestHolders(map, volume, fileIdOf(volume, name), spec.redundancy).filter(
      (id) => map.nodes.find((n) => n.id === id)?.state === "up",
    );
    return holders.includes(this.info.node) ? holders : [...holders, this.info.node];
  }

  /**
   * The node's agent on channel A, else B, if it answers a `cluster` call
   * within OWNER_ANSWER_WAIT_MS. An open connection is not enough: a hung
   * agent, or a host that lost power, keeps it open and says nothing.
   */
  async #answeringAgent(node: string, failures: string[]): Promise<AgentClient | undefined> {
    for (const channel of [0, 1] as const) {
      const agent = this.agentOf(node, channel);
      try {
        await agent.cluster(OWNER_ANSWER_WAIT_MS);
        return agent;
      } catch (error) {
        failures.push(`${node}: ${(error as Error).message}`);
      }
    }
    return undefined;
  }

  get(volume: string, name: string) {
    return this.agent.get(volume, name);
  }

  /** Reads the file's pieces from their holders in parallel, rebuilding from parity where one fails. */
  async read(volume: string, name: string): Promise<{ manifest: FileManifest; body: AsyncIterable<Buffer> }> {
    const manifest = await this.agent.head(volume, name);
    this.#peers ??= new PeerClients({ map: () => this.info.map, log: this.#log, security: CLUSTER_TRUST });
    const peers = this.#peers;
    const ctx: ReadContext = {
      self: "",
      map: () => this.info.map,
      log: this.#log,
      stripesInFlight: STRIPES_AHEAD,
      pieces: { get: (node, key) => peers.getPiece(node, key) },
    };
    return { manifest, body: readFile(ctx, manifest) };
  }

  close(): void {
    this.#peers?.close();
    for (const agent of this.#agents.values()) agent.close();
    this.#agents.clear();
  }
}

/** A put's source, noting whether anything was taken from it: until then the write may go elsewhere. */
class WatchedSource implements AsyncIterable<Buffer> {
  readonly #source: AsyncIterable<Buffer>;
  touched = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.#source = source;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    // Asking a stream for its iterator already starts it reading.
    this.touched = true;
    return this.#source[Symbol.asyncIterator]();
  }
}
