// Calls from this agent to its peers. Connections are made lazily on first
// use and re-made by grpc-js when they drop, so an agent starts whether or not
// its peers are up. Each peer is reachable on two channels (two NICs); a
// unary call that cannot reach a peer on one is tried once on the other.
// Heartbeats that moved a peer to channel B (options.channelFor) send its
// calls there at once; otherwise channel A's gRPC connectivity decides.

import * as grpc from "@grpc/grpc-js";
import { crc32c } from "@node-rs/crc32";
import type { ClusterMap } from "../core/cluster-map.ts";
import { nodeById } from "../core/cluster-map.ts";
import { type FileManifest, validateManifest } from "../core/manifest.ts";
import { isMosaicError, MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ChunkHeader, PieceKey } from "../storage/chunk-format.ts";
import {
  type FileRequest,
  type GetPieceHeader,
  type PutPieceHeader,
  type VersionsRequest,
  validateGetPieceHeader,
} from "./messages.ts";
import { collect, replyBody, splitHeader, writeAll } from "./streams.ts";
import { channelOptions, decodeJson, encodeJson, fromServiceError, PEER_SERVICE } from "./wire.ts";

const PeerClient = grpc.makeGenericClientConstructor(PEER_SERVICE, "mosaic.v1.Peer");
type Unary = (
  request: Buffer,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply: Buffer) => void,
) => grpc.ClientUnaryCall;
type UnaryMethod = "statPiece" | "deleteVersions" | "getManifest" | "listManifests" | "usage";

/** The methods makeGenericClientConstructor adds from PEER_SERVICE, typed. */
type RawClient = grpc.Client &
  Record<UnaryMethod, Unary> & {
    putPiece(
      options: grpc.CallOptions,
      callback: (error: grpc.ServiceError | null, reply: Buffer) => void,
    ): grpc.ClientWritableStream<Buffer>;
    getPiece(request: Buffer, options: grpc.CallOptions): grpc.ClientReadableStream<Buffer>;
    forward(): grpc.ClientDuplexStream<Buffer, Buffer>;
  };

export interface PeerClientsOptions {
  map: () => ClusterMap;
  log: Logger;
  /** Deadline of unary calls and of each piece transfer. */
  callTimeoutMs?: number;
  /**
   * The channel heartbeats say `node`'s traffic should take (0 = A, 1 = B);
   * undefined when they do not know (peer not watched here, or neither channel
   * usable): then channel A's connectivity decides. Called once per call, so
   * it must be cheap and must not throw.
   */
  channelFor?: (node: string) => 0 | 1 | undefined;
}

export interface Usage {
  usedBytes: number;
  capacityBytes: number;
  freeBytes: number;
}

const asIs = (v: unknown) => v;

/** How long a call waits for channel A's connection before taking channel B. */
const CONNECT_WAIT_MS = 1_000;
/** Deadline of metadata calls (manifests, stat, usage): short, so one silent peer cannot stall a read. */
const METADATA_TIMEOUT_MS = 5_000;

function settled(state: grpc.connectivityState): boolean {
  return state === grpc.connectivityState.READY || state === grpc.connectivityState.TRANSIENT_FAILURE;
}

export class PeerClients {
  readonly #options: PeerClientsOptions;
  readonly #clients = new Map<string, RawClient>();
  readonly #log: Logger;

  constructor(options: PeerClientsOptions) {
    this.#options = options;
    this.#log = options.log.child({ component: "peers" });
  }

  async putPiece(node: string, header: PutPieceHeader, data: Buffer[]): Promise<ChunkHeader> {
    return this.#onChannels(
      node,
      (client, peer) =>
        new Promise<ChunkHeader>((resolve, reject) => {
          const call = client.putPiece(this.#deadline(), (error, reply) =>
            error
              ? reject(fromServiceError(error, peer))
              : resolve(decodeJson(reply, "PutPiece reply", asIs) as ChunkHeader),
          );
          call.write(encodeJson(header));
          writeAll(call, data).then(
            () => call.end(),
            (error) => {
              call.cancel();
              reject(fromServiceError(error, peer));
            },
          );
        }),
    );
  }

  async getPiece(node: string, key: PieceKey): Promise<{ header: GetPieceHeader; data: Buffer[] }> {
    return this.#onChannels(node, async (client, peer) => {
      const call = client.getPiece(encodeJson({ key }), this.#deadline());
      try {
        const stream = await splitHeader(call, `GetPiece from ${peer}`);
        const header = decodeJson(stream.header, "GetPiece header", validateGetPieceHeader);
        const data = await collect(stream.data, header.dataLengthBytes, `GetPiece from ${peer}`);
        verifyReceived(data, header, key, peer);
        return { header, data };
      } catch (error) {
        call.cancel();
        throw fromServiceError(error, peer);
      }
    });
  }

  statPiece(node: string, key: PieceKey): Promise<ChunkHeader | undefined> {
    return this.#unary<{ header?: ChunkHeader }>(node, "statPiece", { key }).then((r) => r.header);
  }

  deleteVersions(node: string, request: VersionsRequest): Promise<{ freedBytes: number }> {
    return this.#unary(node, "deleteVersions", request);
  }

  async getManifest(
    node: string,
    ref: { volume: string; fileId: string },
  ): Promise<FileManifest | undefined> {
    const reply = await this.#unary<{ manifest?: unknown }>(node, "getManifest", ref);
    return reply.manifest === undefined ? undefined : validateManifest(reply.manifest);
  }

  async listManifests(node: string, volume: string): Promise<FileManifest[]> {
    const reply = await this.#unary<{ manifests: unknown[] }>(node, "listManifests", { volume });
    return reply.manifests.map(validateManifest);
  }

  usage(node: string): Promise<Usage> {
    return this.#unary(node, "usage", {});
  }

  /**
   * Seed 000's forward_request: hand a client's request, and its data, to the
   * agent that owns it. Resolves with that agent's reply header; its data
   * follows in `body` (forward_response).
   */
  async forwardRequest(
    node: string,
    request: FileRequest,
    input: AsyncIterable<Buffer>,
  ): Promise<{ header: Buffer; body: AsyncIterable<Buffer> }> {
    const { client, peer } = this.#client(node, await this.#channelFor(node));
    const call = client.forward();
    call.write(encodeJson(request));
    writeAll(call, input).then(
      () => call.end(),
      (error) => {
        this.#log.warn({ peer, op: request.op, err: error }, "forwarded request input failed");
        call.cancel();
      },
    );
    try {
      const reply = await splitHeader(call, `Forward to ${peer}`);
      return { header: reply.header, body: replyBody(reply.data, call, peer) };
    } catch (error) {
      throw fromServiceError(error, peer);
    }
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  #unary<T>(node: string, method: UnaryMethod, request: unknown): Promise<T> {
    return this.#onChannels(
      node,
      (client, peer) =>
        new Promise<T>((resolve, reject) => {
          client[method](
            encodeJson(request),
            { deadline: Date.now() + METADATA_TIMEOUT_MS },
            (error, reply) => {
              if (error) reject(fromServiceError(error, peer));
              else resolve(decodeJson(reply, `${method} reply from ${peer}`, (v) => v as T));
            },
          );
        }),
    );
  }

  /**
   * The channel to use for `node`. Heartbeats that moved the peer to B are
   * believed at once: that is how a dead NIC costs milliseconds. Otherwise A
   * once its gRPC connection is ready, B if A fails or does not become ready
   * within CONNECT_WAIT_MS (a dead NIC may swallow packets rather than refuse
   * them) — heartbeats heard on A show the peer can reach us there, not that
   * we can connect to the address we hold for it. The common case, a ready
   * A, costs one synchronous check.
   */
  async #channelFor(node: string): Promise<0 | 1> {
    if (this.#options.channelFor?.(node) === 1) return 1;
    return (await this.#ready(node, 0)) ? 0 : 1;
  }

  /**
   * Whether `node` can be reached on either channel: a connection that is
   * ready, or becomes ready within CONNECT_WAIT_MS. A ready channel A costs
   * one synchronous check. Writes ask it before choosing a coordinator.
   *
   * With `patienceMs`, a channel that failed is given until then to connect
   * again: a peer that refused us while starting is retried only after a
   * backoff (≤ grpc.max_reconnect_backoff_ms), and a write must not give up on
   * a node that is merely new.
   */
  async reachable(node: string, patienceMs = 0): Promise<boolean> {
    if (nodeById(this.#options.map(), node) === undefined) return false;
    if (patienceMs <= 0) return (await this.#ready(node, 0)) || (await this.#ready(node, 1));
    const a = this.#readyWithin(node, 0, patienceMs);
    const b = this.#readyWithin(node, 1, patienceMs);
    return (await a) || (await b);
  }

  async #readyWithin(node: string, which: 0 | 1, ms: number): Promise<boolean> {
    const channel = this.#client(node, which).client.getChannel();
    const deadline = Date.now() + ms;
    let state = channel.getConnectivityState(true);
    while (state !== grpc.connectivityState.READY && Date.now() < deadline) {
      await new Promise<void>((resolve) => channel.watchConnectivityState(state, deadline, () => resolve()));
      state = channel.getConnectivityState(true);
    }
    return state === grpc.connectivityState.READY;
  }

  async #ready(node: string, which: 0 | 1): Promise<boolean> {
    const channel = this.#client(node, which).client.getChannel();
    let state = channel.getConnectivityState(true);
    const deadline = Date.now() + CONNECT_WAIT_MS;
    for (let waits = 0; waits < 8 && !settled(state) && Date.now() < deadline; waits++) {
      await new Promise<void>((resolve) => channel.watchConnectivityState(state, deadline, () => resolve()));
      state = channel.getConnectivityState(false);
    }
    return state === grpc.connectivityState.READY;
  }

  /** Runs `call` on the channel #channelFor picks, and once more on the other if that cannot reach the peer. */
  async #onChannels<T>(node: string, call: (client: RawClient, peer: string) => Promise<T>): Promise<T> {
    const preferred = await this.#channelFor(node);
    const first = this.#client(node, preferred);
    try {
      return await call(first.client, first.peer);
    } catch (error) {
      if (!isMosaicError(error, "MOSAIC_ERR_PEER_UNAVAILABLE")) throw error;
      const second = this.#client(node, preferred === 0 ? 1 : 0);
      this.#log.info(
        { peer: node, from: first.peer, to: second.peer, err: error.message },
        "retrying on the other channel",
      );
      try {
        return await call(second.client, second.peer);
      } catch (again) {
        if (!isMosaicError(again, "MOSAIC_ERR_PEER_UNAVAILABLE")) throw again;
        const [a, b] = preferred === 0 ? [error, again] : [again, error];
        throw new MosaicError(
          "MOSAIC_ERR_PEER_UNAVAILABLE",
          `${node}: unreachable on channel A (${a.message}) and channel B (${b.message})`,
          { cause: again },
        );
      }
    }
  }

  #client(node: string, channel: 0 | 1): { client: RawClient; peer: string } {
    const entry = nodeById(this.#options.map(), node);
    const address = entry?.addresses[channel];
    if (address === undefined) {
      throw new MosaicError("MOSAIC_ERR_PEER_UNAVAILABLE", `node ${node} is not in the cluster map`);
    }
    const peer = `${node}@${address}`;
    let client = this.#clients.get(peer);
    if (client === undefined) {
      client = new PeerClient(
        address,
        grpc.credentials.createInsecure(),
        channelOptions(),
      ) as unknown as RawClient;
      this.#clients.set(peer, client);
    }
    return { client, peer };
  }

  #deadline(): grpc.CallOptions {
    return { deadline: Date.now() + (this.#options.callTimeoutMs ?? 30_000) };
  }
}

function verifyReceived(data: Buffer[], header: GetPieceHeader, key: PieceKey, peer: string): void {
  let length = 0;
  let crc = 0;
  for (const part of data) {
    length += part.length;
    crc = crc32c(part, crc);
  }
  if (length !== header.dataLengthBytes || crc !== header.crc32c) {
    throw new MosaicError(
      "MOSAIC_ERR_CHUNK_CORRUPT",
      `piece ${key.volume}/${key.fileId} v${key.version} stripe ${key.stripe} slot ${key.slot} from ${peer}: ` +
        `received ${length} bytes crc 0x${crc.toString(16)}, announced ${header.dataLengthBytes} crc 0x${header.crc32c.toString(16)}`,
    );
  }
}
