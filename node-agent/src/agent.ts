// One Mosaic agent: its chunk store, its gRPC server on both channels, its
// clients to peers, and the file service on top. Wiring only; the logic
// lives in the modules it wires.
import * as grpc from "@grpc/grpc-js";
import { type ClusterMap, nodeById } from "./core/cluster-map.ts";
import { type VolumeSpec, validateVolumeSpec } from "./core/volume.ts";
import type { DataContext } from "./data/context.ts";
import { FileService } from "./data/file-service.ts";
import { PieceIO } from "./data/pieces.ts";
import { Scrubber } from "./data/scrubber.ts";
import { MosaicError } from "./errors.ts";
import { heartbeatEndpoints, UdpHeartbeats } from "./io/udp-heartbeats.ts";
import { IpcServer } from "./ipc/ipc-server.ts";
import type { Logger } from "./log.ts";
import { defaultDetectorConfig } from "./membership/config.ts";
import { filesServiceHandlers } from "./rpc/files-server.ts";
import { PeerClients } from "./rpc/peer-client.ts";
import { peerServiceHandlers } from "./rpc/peer-server.ts";
import { FILES_SERVICE, PEER_SERVICE, raiseServerReceiveWindow, serverOptions } from "./rpc/wire.ts";
import { ChunkStore } from "./storage/chunk-store.ts";

export interface AgentConfig {
  nodeId: string;
  /** host:port to listen on for channel A and channel B. */
  listen: [string, string];
  dataDir: string;
  capacityBytes: number;
  map: ClusterMap;
  volumes: VolumeSpec[];
  /** Stripes in flight per file read or write (default 4). */
  stripesInFlight?: number;
  /** UDP port of the heartbeats on both channels; default: each channel's gRPC port number. */
  heartbeatPort?: number;
  /** Directory of the request FIFO applications on this node write to (/run/mosaic in Kubernetes); none: no IPC. */
  ipcDir?: string;
  /** Bytes per second the scrubber reads to verify (and repair) this node's pieces; 0 turns it off. Default 16 MiB/s. */
  scrubRateBytesPerSecond?: number;
  /** Pause between scrub cycles (default 60 s). */
  scrubPauseMs?: number;
  log: Logger;
}

/** What the agent knows of the cluster; replaced whole when a newer map arrives. */
interface AgentState {
  map: ClusterMap;
  volumes: Map<string, VolumeSpec>;
}

export class Agent {
  readonly nodeId: string;
  readonly addresses: [string, string];
  readonly files: FileService;
  readonly store: ChunkStore;
  /** Verifies every piece here at a bounded rate and rebuilds bad ones from their stripes; undefined when off. */
  readonly scrubber: Scrubber | undefined;
  readonly #server: grpc.Server;
  readonly #peers: PeerClients;
  readonly #log: Logger;
  readonly #state: AgentState;
  readonly #heartbeatPort: number | undefined;
  readonly #ipc: IpcServer | undefined;
  /** Heartbeats run while this node is in the map; their view picks each peer's channel. */
  #heartbeats: UdpHeartbeats | undefined;
  #heartbeatsChanging: Promise<void> = Promise.resolve();

  private constructor(parts: {
    nodeId: string;
    addresses: [string, string];
    server: grpc.Server;
    store: ChunkStore;
    peers: PeerClients;
    files: FileService;
    state: AgentState;
    log: Logger;
    heartbeatPort: number | undefined;
    ipc: IpcServer | undefined;
    scrubber: Scrubber | undefined;
  }) {
    this.nodeId = parts.nodeId;
    this.addresses = parts.addresses;
    this.#server = parts.server;
    this.store = parts.store;
    this.#peers = parts.peers;
    this.files = parts.files;
    this.#state = parts.state;
    this.#log = parts.log;
    this.#heartbeatPort = parts.heartbeatPort;
    this.#ipc = parts.ipc;
    this.scrubber = parts.scrubber;
  }

  static async start(config: AgentConfig): Promise<Agent> {
    const log = config.log;
    const state: AgentState = { map: config.map, volumes: volumeMap(config.volumes) };
    const store = await ChunkStore.open(config.dataDir, { capacityBytes: config.capacityBytes, log });
    const health: { channelFor: (node: string) => 0 | 1 | undefined } = { channelFor: () => undefined };
    const peers = new PeerClients({
      map: () => state.map,
      log,
      channelFor: (node) => health.channelFor(node),
    });
    const ctx: DataContext = {
      self: config.nodeId,
      map: () => state.map,
      volume: (name) => state.volumes.get(name),
      volumes: () => [...state.volumes.values()],
      pieces: new PieceIO(config.nodeId, store, peers, log),
      log,
      stripesInFlight: config.stripesInFlight ?? 4,
    };
    const files = new FileService(ctx, store, peers);
    const server = new grpc.Server(serverOptions());
    server.addService(PEER_SERVICE, peerServiceHandlers({ store, volume: ctx.volume, files, log }));
    server.addService(FILES_SERVICE, filesServiceHandlers(files, log));
    const addresses = (await Promise.all(config.listen.map((a) => bind(server, a)))) as [string, string];
    if (!raiseServerReceiveWindow(server)) {
      log.warn("could not raise the gRPC server's receive window; puts will be slower");
    }
    const volumes = [...state.volumes.keys()];
    log.info({ addresses, dataDir: config.dataDir, volumes, epoch: config.map.epoch }, "agent started");
    const agent = new Agent({
      nodeId: config.nodeId,
      addresses,
      server,
      store,
      peers,
      files,
      state,
      log,
      heartbeatPort: config.heartbeatPort,
      ipc: config.ipcDir === undefined ? undefined : IpcServer.start({ dir: config.ipcDir, files, log }),
      scrubber: scrubberOf(config, ctx, store),
    });
    health.channelFor = (node) => agent.#heartbeats?.channelFor(node);
    await agent.#syncHeartbeats();
    agent.scrubber?.start();
    return agent;
  }

  /** Starts, re-targets or stops the heartbeats to match the current map; one change at a time. */
  #syncHeartbeats(): Promise<void> {
    this.#heartbeatsChanging = this.#heartbeatsChanging.then(() =>
      this.#applyHeartbeats().catch((error) =>
        this.#log.error(
          { err: (error as Error).message },
          "heartbeats not started; channels chosen per call",
        ),
      ),
    );
    return this.#heartbeatsChanging;
  }

  async #applyHeartbeats(): Promise<void> {
    const { map } = this.#state;
    const members = map.nodes.filter((n) => n.state !== "out").map((n) => n.id);
    if (!members.includes(this.nodeId)) {
      this.#heartbeats?.close();
      this.#heartbeats = undefined;
      return;
    }
    if (this.#heartbeats !== undefined) {
      this.#heartbeats.setMembers(members, map.epoch);
      return;
    }
    const port = this.#heartbeatPort;
    const self = { id: this.nodeId, addresses: this.addresses, state: "up" as const };
    this.#heartbeats = await UdpHeartbeats.start({
      self: this.nodeId,
      incarnation: Date.now(),
      members,
      epoch: map.epoch,
      config: defaultDetectorConfig(1),
      bind: heartbeatEndpoints(self, port),
      endpointOf: (node, channel) => {
        const entry = nodeById(this.#state.map, node);
        return entry && heartbeatEndpoints(entry, port)[channel === "A" ? 0 : 1];
      },
      onEvent: (event) => this.#log.info({ event }, "peer health changed"),
    });
  }

  get map(): ClusterMap {
    return this.#state.map;
  }

  /** Adopts a newer cluster map (and volume set); an older or equal epoch is ignored. */
  update(map: ClusterMap, volumes: VolumeSpec[] = [...this.#state.volumes.values()]): boolean {
    if (map.epoch <= this.#state.map.epoch) return false;
    this.#state.volumes = volumeMap(volumes);
    this.#state.map = map;
    this.#log.info({ epoch: map.epoch, nodes: map.nodes.length }, "cluster map updated");
    void this.#syncHeartbeats();
    return true;
  }

  /** Lets calls in flight finish for up to `graceMs`, then cuts the rest. */
  async stop(graceMs = 2_000): Promise<void> {
    await this.scrubber?.stop();
    await this.#ipc?.close();
    const graceful = new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    const timer = setTimeout(() => this.#server.forceShutdown(), graceMs);
    await graceful;
    clearTimeout(timer);
    await this.#heartbeatsChanging;
    this.#heartbeats?.close();
    this.#heartbeats = undefined;
    this.#peers.close();
    this.#log.info("agent stopped");
  }
}

const SCRUB_RATE_DEFAULT_BYTES_PER_SECOND = 16 * 1024 * 1024;

function scrubberOf(config: AgentConfig, ctx: DataContext, store: ChunkStore): Scrubber | undefined {
  const rate = config.scrubRateBytesPerSecond ?? SCRUB_RATE_DEFAULT_BYTES_PER_SECOND;
  if (rate <= 0) return undefined;
  const pause = config.scrubPauseMs === undefined ? {} : { pauseMs: config.scrubPauseMs };
  return new Scrubber(ctx, store, { rateBytesPerSecond: rate, ...pause });
}

function volumeMap(volumes: VolumeSpec[]): Map<string, VolumeSpec> {
  return new Map(volumes.map((v) => [v.name, validateVolumeSpec(v)]));
}

function bind(server: grpc.Server, address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => {
      if (error) {
        reject(
          new MosaicError("MOSAIC_ERR_INTERNAL", `cannot listen on ${address}: ${error.message}`, {
            cause: error,
          }),
        );
      } else {
        resolve(`${address.slice(0, address.lastIndexOf(":"))}:${port}`);
      }
    });
  });
}
