// Calls from this agent to its peers. Connections are made lazily on first
// use and re-made by grpc-js when they drop, so an agent starts whether or not
// its peers are up. Each peer is reachable on two channels (two NICs); a call
// that cannot reach a peer on one is tried on the other. Heartbeats that
// moved a peer to channel B (options.channelFor) send its calls there at once;
// otherwise channel A's gRPC connectivity decides.
//
// Calls in flight are tracked per (peer, channel): when the heartbeats find
// one channel of a peer down and the other not (healthChanged), its calls are
// cut and issued again on the other channel (pieces and unary calls afresh, a
// forward resumed where the owner got to: forward-sender.ts), so a dead NIC
// costs a client no error and no TCP timeout. A call that fails because gRPC is holding a channel in its
// reconnect backoff gets that channel's next connect attempt (reconnect.ts)
// before it fails.

import * as grpc from "@grpc/grpc-js";
import type { ClusterMap } from "../core/cluster-map.ts";
import { nodeById } from "../core/cluster-map.ts";
import { type FileManifest, validateManifest } from "../core/manifest.ts";
import { isMosaicError, MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ChannelState } from "../membership/channel-detector.ts";
import type { ChunkHeader, PieceKey } from "../storage/chunk-format.ts";
import { type ChannelSecurity, INSECURE } from "../tls/grpc-tls.ts";
import {
  CallsInFlight,
  CHANNEL_NAMES,
  type ChannelIndex,
  ChannelLost,
  NodeLost,
  unlessAborted,
} from "./calls-in-flight.ts";
import { type ForwardRoute, forwardResumably } from "./forward-sender.ts";
import {
  type FileRequest,
  type GetPieceHeader,
  type GetPieceRequest,
  type PieceRange,
  type PutPieceHeader,
  type VersionsRequest,
  validateGetPieceHeader,
} from "./messages.ts";
import { checkReceivedPiece } from "./piece-range.ts";
import {
  awaitState,
  type GrpcChannel,
  RECONNECT_WAIT_MS,
  ReconnectWaits,
  settled,
  worthWaiting,
} from "./reconnect.ts";
import { collect, splitHeader, writeAll } from "./streams.ts";
import { channelOptions, decodeJson, encodeJson, fromServiceError, PEER_SERVICE } from "./wire.ts";

const PeerClient = grpc.makeGenericClientConstructor(PEER_SERVICE, "mosaic.v1.Peer");
type Unary = (
  request: Buffer,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply: Buffer) => void,
) => grpc.ClientUnaryCall;
type UnaryMethod = "statPiece" | "deleteVersions" | "getManifest" | "listManifests" | "usage" | "readCopies";
/** One attempt of a call on one channel; it must cancel its gRPC call when `signal` aborts. */
type Attempt<T> = (client: RawClient, peer: string, signal: AbortSignal) => Promise<T>;

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
  /**
   * The heartbeats' view of `node`'s channel; undefined when nothing is known
   * of it. A channel they have down gets no reconnect wait; without this
   * option (no heartbeats: the client library) no call waits for a
   * reconnect. Cheap, must not throw.
   */
  channelState?: (node: string, channel: ChannelIndex) => ChannelState | undefined;
  /** Client interceptors of the connection to each peer on `channel` (the agent's metrics count bytes per channel). */
  interceptors?: (channel: ChannelIndex) => grpc.Interceptor[];
  /** Credentials of the connection to each peer (mutual TLS: tls/grpc-tls.ts); default: plain HTTP/2. */
  security?: ChannelSecurity;
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

const other = (channel: ChannelIndex): ChannelIndex => (channel === 0 ? 1 : 0);

export class PeerClients {
  readonly #options: PeerClientsOptions;
  readonly #clients = new Map<string, RawClient>();
  readonly #log: Logger;
  readonly #inFlight = new CallsInFlight();
  readonly #waits = new ReconnectWaits();
  /** Channels healthChanged() last saw down. */
  readonly #down = new Set<string>();

  constructor(options: PeerClientsOptions) {
    this.#options = options;
    this.#log = options.log.child({ component: "peers" });
  }

  async putPiece(node: string, header: PutPieceHeader, data: Buffer[]): Promise<ChunkHeader> {
    return this.#onChannels(
      node,
      (client, peer, signal) =>
        new Promise<ChunkHeader>((resolve, reject) => {
          const call = client.putPiece(this.#deadline(), (error, reply) =>
            error
              ? reject(fromServiceError(error, peer))
              : resolve(decodeJson(reply, "PutPiece reply", asIs) as ChunkHeader),
          );
          signal.addEventListener("abort", () => call.cancel(), { once: true });
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

  /** The piece, or with `range` only those bytes of it (checked by their own crc32c: piece-range.ts). */
  async getPiece(
    node: string,
    key: PieceKey,
    range?: PieceRange,
  ): Promise<{ header: GetPieceHeader; data: Buffer[]; crc32c: number }> {
    const request: GetPieceRequest = range === undefined ? { key } : { key, range };
    return this.#onChannels(node, async (client, peer, signal) => {
      const call = client.getPiece(encodeJson(request), this.#deadline());
      signal.addEventListener("abort", () => call.cancel(), { once: true });
      try {
        const stream = await splitHeader(call, `GetPiece from ${peer}`);
        const header = decodeJson(stream.header, "GetPiece header", validateGetPieceHeader);
        const received = await collect(stream.data, header.dataLengthBytes, `GetPiece from ${peer}`);
        const label = `piece ${key.volume}/${key.fileId} v${key.version} stripe ${key.stripe} slot ${key.slot} from ${peer}`;
        return { header, ...checkReceivedPiece(received, header, range, label) };
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

  /** A request about temporary read copies (load/read-copy-messages.ts); the reply is validated by the caller. */
  readCopies(node: string, request: unknown): Promise<unknown> {
    return this.#unary(node, "readCopies", request);
  }

  /**
   * Seed 000's forward_request: hand a client's put or delete, and its data,
   * to the agent that owns it. Resolves with that agent's reply header
   * (forward_response). A stream broken under it (a channel lost) is resumed
   * on the other channel where the owner got to, so the client sees no error.
   * Once `clientGone` aborts, a broken stream is not resumed (forward-sender.ts).
   */
  async forwardRequest(
    node: string,
    request: FileRequest,
    input: AsyncIterable<Buffer>,
    clientGone?: AbortSignal,
  ): Promise<{ header: Buffer }> {
    const route: ForwardRoute = {
      first: () => this.#channelFor(node),
      next: (broken) =>
        this.#heartbeat(node, other(broken)) === "down" && this.#heartbeat(node, broken) !== "down"
          ? broken
          : other(broken),
      reconnected: () => this.#reconnected(node, [0, 1]),
      open: (channel) => {
        const { client, peer } = this.#client(node, channel);
        const ticket = this.#inFlight.start(node, channel);
        return { call: client.forward(), peer, channel, signal: ticket.signal, done: ticket.done };
      },
    };
    return { header: await forwardResumably(route, request, input, this.#log, { clientGone }) };
  }

  /**
   * The heartbeats found `node`'s `channel` down: every call in flight on it
   * is cut and goes to the other channel, a reconnect wait on it ends, and its
   * connection is dropped, so that when the channel is used again (after the
   * heartbeats' hold-down) it starts on a fresh connection, not one stuck
   * behind TCP retransmissions.
   */
  channelLost(node: string, channel: ChannelIndex): void {
    const address = nodeById(this.#options.map(), node)?.addresses[channel];
    const peer = `${node}@${address ?? "?"}`;
    const moved = this.#inFlight.abort(node, channel, new ChannelLost(peer, channel));
    this.#waits.abort(waitKey(node, channel));
    if (address !== undefined) {
      this.#clients.get(peer)?.close();
      this.#clients.delete(peer);
    }
    this.#log.info(
      { peer: node, channel: CHANNEL_NAMES[channel], callsMoved: moved },
      "channel lost: its calls in flight move to the other channel",
    );
  }

  /**
   * The agreed map has `node` down: every call in flight to it ends now, on
   * both channels, and is not tried again there. Heartbeats alone never do
   * this (see healthChanged): the map needs watchers to agree, so a busy peer
   * is not cut off by one observer's hiccup.
   */
  nodeLost(node: string): void {
    const address = nodeById(this.#options.map(), node)?.addresses[0];
    const error = new NodeLost(`${node}@${address ?? "?"}`);
    const ended = this.#inFlight.abort(node, 0, error) + this.#inFlight.abort(node, 1, error);
    for (const channel of [0, 1] as const) this.#waits.abort(waitKey(node, channel));
    if (ended > 0)
      this.#log.info({ peer: node, callsEnded: ended }, "node down in the map: its calls in flight end");
  }

  /** The heartbeats hear `node` on `channel` again: a call that fails there may wait for a reconnect again. */
  channelBack(node: string, channel: ChannelIndex): void {
    this.#waits.forget(waitKey(node, channel));
    this.#log.info({ peer: node, channel: CHANNEL_NAMES[channel] }, "channel back");
  }

  /**
   * The heartbeats' view of `node` changed (any health event naming it). A
   * channel down while the other is not is a NIC failure: its calls are cut
   * and move to the other channel (channelLost), once per failure, whichever
   * events announce it. Both down is a node failure, or a peer (or this
   * node) too busy to send heartbeats: its calls are left to finish or fail
   * on their own, since cutting them could turn a slow answer into an error
   * and moving them has nowhere to go; only reconnect waits on it end.
   */
  healthChanged(node: string): void {
    const down = [0, 1].map((ch) => this.#heartbeat(node, ch as ChannelIndex) === "down");
    for (const channel of [0, 1] as const) {
      const key = waitKey(node, channel);
      if (!down[channel]) {
        this.#waits.forget(key);
        if (this.#down.delete(key)) this.channelBack(node, channel);
      } else if (down[other(channel)]) {
        this.#waits.abort(key);
      } else if (!this.#down.has(key)) {
        this.#down.add(key);
        this.channelLost(node, channel);
      }
    }
  }

  /** Calls in flight now, to every peer on every channel (a forward counts while its stream is open). */
  get callsInFlight(): number {
    return this.#inFlight.count();
  }

  /** Reconnect waits running now. */
  get reconnectWaits(): number {
    return this.#waits.running;
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  #unary<T>(node: string, method: UnaryMethod, request: unknown): Promise<T> {
    return this.#onChannels(
      node,
      (client, peer, signal) =>
        new Promise<T>((resolve, reject) => {
          const call = client[method](
            encodeJson(request),
            { deadline: Date.now() + METADATA_TIMEOUT_MS },
            (error, reply) => {
              if (error) reject(fromServiceError(error, peer));
              else resolve(decodeJson(reply, `${method} reply from ${peer}`, (v) => v as T));
            },
          );
          signal.addEventListener("abort", () => call.cancel(), { once: true });
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
   * With `patienceMs`, a channel that failed is given its next connect
   * attempt (at most `patienceMs`), where that is worth it (reconnect.ts): a
   * peer that refused us while starting is retried only after a backoff, and
   * a write must not give up on a node that is merely new.
   */
  async reachable(node: string, patienceMs = 0): Promise<boolean> {
    if (nodeById(this.#options.map(), node) === undefined) return false;
    if (patienceMs <= 0) return (await this.#ready(node, 0)) || (await this.#ready(node, 1));
    return (await this.#reconnected(node, [0, 1], patienceMs)) !== undefined;
  }

  async #ready(node: string, which: ChannelIndex): Promise<boolean> {
    const channel = this.#client(node, which).client.getChannel();
    return (await awaitState(channel, CONNECT_WAIT_MS, settled)) === grpc.connectivityState.READY;
  }

  #heartbeat(node: string, channel: ChannelIndex): ChannelState | undefined {
    return this.#options.channelState?.(node, channel);
  }

  /**
   * Runs `call` on the channel #channelFor picks, then on the other if that
   * cannot reach the peer (or was lost under it), then, if neither could,
   * once more on the first of them to connect again within its next connect
   * attempt, where waiting for one is worth it.
   */
  async #onChannels<T>(node: string, call: Attempt<T>): Promise<T> {
    const first = await this.#channelFor(node);
    const second = other(first);
    const failed: (MosaicError | undefined)[] = [undefined, undefined];
    const run = async (channel: ChannelIndex): Promise<T | undefined> => {
      try {
        return await this.#attempt(node, channel, call);
      } catch (error) {
        if (!isMosaicError(error, "MOSAIC_ERR_PEER_UNAVAILABLE") || error instanceof NodeLost) throw error;
        failed[channel] = error;
        return undefined;
      }
    };
    const answer = await run(first);
    if (failed[first] === undefined) return answer as T;
    this.#log.info(
      {
        peer: node,
        from: CHANNEL_NAMES[first],
        to: CHANNEL_NAMES[second],
        err: (failed[first] as Error).message,
      },
      "retrying on the other channel",
    );
    const retried = await run(second);
    if (failed[second] === undefined) return retried as T;
    const candidates = ([first, second] as ChannelIndex[]).filter(
      (ch) => !(failed[ch] instanceof ChannelLost),
    );
    const again = await this.#reconnected(node, candidates);
    if (again !== undefined) {
      this.#log.info({ peer: node, channel: CHANNEL_NAMES[again] }, "peer connected again; retrying");
      failed[again] = undefined;
      const last = await run(again);
      if (failed[again] === undefined) return last as T;
    }
    const [a, b] = failed as [MosaicError, MosaicError];
    throw new MosaicError(
      "MOSAIC_ERR_PEER_UNAVAILABLE",
      `${node}: unreachable on channel A (${a.message}) and channel B (${b.message})`,
      { cause: failed[second] },
    );
  }

  /** One attempt on one channel, registered in flight there: a lost channel aborts it with ChannelLost. */
  async #attempt<T>(node: string, channel: ChannelIndex, call: Attempt<T>): Promise<T> {
    const { client, peer } = this.#client(node, channel);
    const ticket = this.#inFlight.start(node, channel);
    try {
      const result = await unlessAborted(call(client, peer, ticket.signal), ticket.signal);
      this.#waits.forget(waitKey(node, channel));
      return result;
    } finally {
      ticket.done();
    }
  }

  /**
   * The first of `channels` to connect again within its next connect attempt
   * (at most RECONNECT_WAIT_MS or `patienceMs`), among those where waiting
   * is worth it; undefined when none does. Calls that fail together share
   * one wait per channel.
   */
  async #reconnected(
    node: string,
    channels: ChannelIndex[],
    patienceMs = RECONNECT_WAIT_MS,
  ): Promise<ChannelIndex | undefined> {
    const map = this.#options.map();
    const entry = nodeById(map, node);
    if (entry === undefined) return undefined;
    const grpcChannels = channels.map((channel) => this.#client(node, channel).client.getChannel());
    const connected = channels.find(
      (_, i) => grpcChannels[i]?.getConnectivityState(false) === grpc.connectivityState.READY,
    );
    if (connected !== undefined) return connected;
    // Without heartbeats (the client library) a dead peer cannot be told from one starting: no wait.
    if (this.#options.channelState === undefined) return undefined;
    const waits: Promise<ChannelIndex | undefined>[] = [];
    for (const [i, channel] of channels.entries()) {
      const grpcChannel = grpcChannels[i] as GrpcChannel;
      const key = waitKey(node, channel);
      const facts = {
        connectivity: grpcChannel.getConnectivityState(false),
        heartbeat: this.#heartbeat(node, channel),
        node: entry.state,
        gaveUp: this.#waits.gaveUp(key, map.epoch),
      };
      if (!worthWaiting(facts)) continue;
      const ms = Math.min(patienceMs, RECONNECT_WAIT_MS);
      waits.push(this.#waits.wait(key, grpcChannel, ms, map.epoch).then((ok) => (ok ? channel : undefined)));
    }
    if (waits.length === 0) return undefined;
    return new Promise((resolve) => {
      let left = waits.length;
      for (const wait of waits) {
        void wait.then((channel) => {
          if (channel !== undefined) resolve(channel);
          else if (--left === 0) resolve(undefined);
        });
      }
    });
  }

  #client(node: string, channel: ChannelIndex): { client: RawClient; peer: string } {
    const entry = nodeById(this.#options.map(), node);
    const address = entry?.addresses[channel];
    if (address === undefined) {
      throw new MosaicError("MOSAIC_ERR_PEER_UNAVAILABLE", `node ${node} is not in the cluster map`);
    }
    const peer = `${node}@${address}`;
    let client = this.#clients.get(peer);
    if (client === undefined) {
      const security = (this.#options.security ?? INSECURE).channel(node, address);
      client = new PeerClient(address, security.credentials, {
        ...channelOptions(),
        ...security.options,
        interceptors: this.#options.interceptors?.(channel) ?? [],
      }) as unknown as RawClient;
      this.#clients.set(peer, client);
    }
    return { client, peer };
  }

  #deadline(): grpc.CallOptions {
    return { deadline: Date.now() + (this.#options.callTimeoutMs ?? 30_000) };
  }
}

function waitKey(node: string, channel: ChannelIndex): string {
  return `${node}#${channel}`;
}
