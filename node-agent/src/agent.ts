// One Mosaic agent: its chunk store, its gRPC server on both channels, its
// clients to peers, and the file service on top. Wiring only; the logic
// lives in the modules it wires.
import * as grpc from "@grpc/grpc-js";
import { type ClusterMap, nodeById } from "./core/cluster-map.ts";
import { type VolumeSpec, validateVolumeSpec } from "./core/volume.ts";
import { type DataContext, reachableNode } from "./data/context.ts";
import { FileService } from "./data/file-service.ts";
import { REBUILD_RATE_DEFAULT_BYTES_PER_SECOND, Rebuilder } from "./data/rebuild.ts";
import { Scrubber } from "./data/scrubber.ts";
import { MosaicError } from "./errors.ts";
import { Gateway } from "./gateway/gateway.ts";
import { heartbeatEndpoints, UdpHeartbeats } from "./io/udp-heartbeats.ts";
import { IpcServer } from "./ipc/ipc-server.ts";
import type { LoadConfig, LoadLevel } from "./load/level.ts";
import { LoadMeter } from "./load/meter.ts";
import { ReadCopies, type ReadCopyConfig, type ReadCopyEvent } from "./load/read-copies.ts";
import { ReadCopyPieceIO } from "./load/read-copy-pieces.ts";
import type { Logger } from "./log.ts";
import type { ChannelState } from "./membership/channel-detector.ts";
import {
  type DetectorConfig,
  defaultAgreementConfig,
  detectorConfigFor,
  type HeartbeatTimings,
} from "./membership/config.ts";
import type { MembershipEvent } from "./membership/membership-core.ts";
import { AgentMetrics, type PeerChannels } from "./metrics/agent-metrics.ts";
import { gatewayMetrics, MetricsServer } from "./metrics/metrics-http.ts";
import { filesServiceHandlers } from "./rpc/files-server.ts";
import { AgentHealth, readinessOf } from "./rpc/health.ts";
import { PeerClients } from "./rpc/peer-client.ts";
import { peerServiceHandlers } from "./rpc/peer-server.ts";
import { FILES_SERVICE, PEER_SERVICE, raiseServerReceiveWindow, serverOptions } from "./rpc/wire.ts";
import { ChunkStore } from "./storage/chunk-store.ts";
import { INSECURE, logRefusedHandshakes, type MutualTls } from "./tls/grpc-tls.ts";

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
  /** How long a node stays down in the agreed map before it is out and its pieces are rebuilt elsewhere (default 30 s). */
  outGraceMs?: number;
  /** Heartbeat interval and channel-down time (the rest of detection scales with them); unset: the defaults. */
  heartbeat?: Partial<HeartbeatTimings>;
  /** Directory of the request FIFO applications on this node write to (/run/mosaic in Kubernetes); none: no IPC. */
  ipcDir?: string;
  /** host:port of the HTTP gateway (Range GETs, HEAD, PUT, DELETE, listing: gateway/); none: no HTTP. */
  http?: string;
  /** host:port of a listener serving only GET /metrics (for agents without the gateway, which serves it too); none: no such listener. */
  metrics?: string;
  /** Bytes per second the scrubber reads to verify (and repair) this node's pieces; 0 turns it off. Default 16 MiB/s. */
  scrubRateBytesPerSecond?: number;
  /** Pause between scrub cycles (default 60 s). */
  scrubPauseMs?: number;
  /**
   * Bytes per second of pieces the rebuild writes here (pieces placement moved
   * to this node); Infinity: unpaced. 0 turns the rebuild off: pieces of a
   * departed node then stay missing (reads degraded) until it returns — for
   * tests and emergencies only. Default 64 MiB/s.
   */
  rebuildRateBytesPerSecond?: number;
  /** Pause between rebuild passes when nothing is left to do (default 60 s); map changes start one at once. */
  rebuildIntervalMs?: number;
  /** How long a forwarded write whose stream broke waits for its sender to resume it (default 10 s). */
  forwardResumeGraceMs?: number;
  /** Thresholds of this agent's load level (load/level.ts); default DEFAULT_LOAD_CONFIG. */
  load?: LoadConfig;
  /** More gRPC server interceptors, after the load meter's (tests add a cost per call with one). */
  serverInterceptors?: grpc.ServerInterceptor[];
  /**
   * Mutual TLS on both channels, to and from peers (tls/grpc-tls.ts); the
   * certificate files may be replaced while the agent runs. Undefined:
   * plain HTTP/2 (in-process tests; agent-main says so loudly).
   */
  tls?: MutualTls;
  /** Temporary read copies of hot stripes (load/read-copies.ts): timings and bounds; unset: the defaults. */
  readCopies?: Partial<ReadCopyConfig>;
  /** Each read copy this agent, as a file's owner, added or removed (the Kubernetes agent reports them as Events). */
  onReadCopyEvent?: (event: ReadCopyEvent) => void;
  /** Every health transition and agreed map of the heartbeats (the Kubernetes agent reports them in its ClusterNode). */
  onMembershipEvent?: (event: MembershipEvent) => void;
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
  /** Makes this node's pieces match the current placement (rebuilds, drops moved ones); undefined when off. */
  readonly rebuild: Rebuilder | undefined;
  /** Readiness (grpc.health.v1.Health) on both channels; add it to another server to serve it there too. */
  readonly health: AgentHealth;
  /** This agent's load: calls in flight, queue delay, event-loop use, and the level they make. */
  readonly load: LoadMeter;
  /** This agent's Prometheus metrics (metrics/agent-metrics.ts), on a registry of its own. */
  readonly metrics: AgentMetrics;
  /** Temporary read copies: those this node holds, and those it placed as the owner of hot files. */
  readonly readCopies: ReadCopies;
  #gateway: Gateway | undefined;
  #metricsServer: MetricsServer | undefined;
  readonly #detector: DetectorConfig;
  #stopping = false;
  readonly #server: grpc.Server;
  readonly #peers: PeerClients;
  readonly #log: Logger;
  readonly #state: AgentState;
  readonly #heartbeatPort: number | undefined;
  readonly #outGraceMs: number | undefined;
  readonly #onMembershipEvent: ((event: MembershipEvent) => void) | undefined;
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
    outGraceMs: number | undefined;
    onMembershipEvent: ((event: MembershipEvent) => void) | undefined;
    ipc: IpcServer | undefined;
    scrubber: Scrubber | undefined;
    rebuild: Rebuilder | undefined;
    health: AgentHealth;
    load: LoadMeter;
    metrics: AgentMetrics;
    readCopies: ReadCopies;
    detector: DetectorConfig;
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
    this.#outGraceMs = parts.outGraceMs;
    this.#onMembershipEvent = parts.onMembershipEvent;
    this.#ipc = parts.ipc;
    this.scrubber = parts.scrubber;
    this.rebuild = parts.rebuild;
    this.health = parts.health;
    this.load = parts.load;
    this.metrics = parts.metrics;
    this.readCopies = parts.readCopies;
    this.#detector = parts.detector;
  }

  static async start(config: AgentConfig): Promise<Agent> {
    const log = config.log;
    // Checked before anything opens: bad settings cost nothing.
    const detector = detectorConfigFor(config.heartbeat ?? {});
    const state: AgentState = { map: config.map, volumes: volumeMap(config.volumes) };
    const store = await ChunkStore.open(config.dataDir, { capacityBytes: config.capacityBytes, log });
    const health: {
      channelFor: (node: string) => 0 | 1 | undefined;
      channelState: (node: string, channel: 0 | 1) => ChannelState | undefined;
      nodeDown: (node: string) => boolean;
      loadOf: (node: string) => LoadLevel;
      peers: () => PeerChannels[];
    } = {
      channelFor: () => undefined,
      channelState: () => undefined,
      nodeDown: () => false,
      loadOf: () => "Low",
      peers: () => [],
    };
    const load = new LoadMeter(config.load === undefined ? {} : { config: config.load });
    const metrics = new AgentMetrics({
      loadLevel: () => load.level,
      mapEpoch: () => state.map.epoch,
      rebuildBytesLeft: () => rebuild?.progress().bytesLeft,
      peers: () => health.peers(),
      readCopies: () => readCopies.heldCounts(),
    });
    const peers = new PeerClients({
      map: () => state.map,
      log,
      channelFor: (node) => health.channelFor(node),
      channelState: (node, channel) => health.channelState(node, channel),
      interceptors: (channel) => [metrics.peerInterceptor(channel)],
      security: config.tls ?? INSECURE,
    });
    const levelOf = (node: string) => (node === config.nodeId ? load.level : health.loadOf(node));
    const pieces = new ReadCopyPieceIO(
      config.nodeId,
      store,
      peers,
      log,
      (key) => rebuild?.want(key),
      levelOf,
    );
    const readCopies = new ReadCopies({
      self: config.nodeId,
      map: () => state.map,
      volume: (name) => state.volumes.get(name),
      levelOf,
      usable: (node) => reachableNode({ nodeDown: (n) => health.nodeDown(n) }, state.map, node),
      pieces: () => pieces,
      peers,
      store,
      log,
      ...(config.readCopies === undefined ? {} : { config: config.readCopies }),
      ...(config.onReadCopyEvent === undefined ? {} : { onEvent: config.onReadCopyEvent }),
    });
    pieces.attach(readCopies);
    const ctx: DataContext = {
      self: config.nodeId,
      map: () => state.map,
      volume: (name) => state.volumes.get(name),
      volumes: () => [...state.volumes.values()],
      pieces,
      log,
      stripesInFlight: config.stripesInFlight ?? 4,
      nodeDown: (node) => health.nodeDown(node),
      metrics,
    };
    const files = new FileService(ctx, store, peers, {
      rebuildProgress: () => rebuild?.progress(),
      loadLevel: () => load.level,
      readCopies: () => readCopies.heldCounts(),
    });
    const rebuild = rebuilderOf(config, ctx, store, files, readCopies);
    // First of the listeners: a taken port stops the start before anything else is open.
    const gateway =
      config.http === undefined
        ? undefined
        : await Gateway.start({
            listen: config.http,
            files,
            volumes: ctx.volumes,
            log: log.child({ component: "gateway" }),
            metrics: gatewayMetrics(metrics.registry, (...request) => metrics.httpRequest(...request)),
          });
    const metricsServer =
      config.metrics === undefined
        ? undefined
        : await MetricsServer.start(
            config.metrics,
            metrics.registry,
            log.child({ component: "metrics" }),
          ).catch(async (error: unknown) => {
            await gateway?.close(0);
            throw error;
          });
    const server = new grpc.Server({
      ...serverOptions(),
      interceptors: [load.interceptor, metrics.serverInterceptor, ...(config.serverInterceptors ?? [])],
    });
    server.addService(
      PEER_SERVICE,
      peerServiceHandlers({
        store,
        volume: ctx.volume,
        files,
        log,
        onMissingPiece: (key) => rebuild?.want(key),
        readCopies,
        ...(config.forwardResumeGraceMs === undefined
          ? {}
          : { forwardResumeGraceMs: config.forwardResumeGraceMs }),
      }),
    );
    server.addService(FILES_SERVICE, filesServiceHandlers(files, log));
    const readiness = new AgentHealth();
    readiness.addTo(server);
    const credentials = config.tls?.serverCredentials() ?? grpc.ServerCredentials.createInsecure();
    const addresses = (await Promise.all(config.listen.map((a) => bind(server, a, credentials)))) as [
      string,
      string,
    ];
    if (config.tls !== undefined && !logRefusedHandshakes(server, log.child({ component: "tls" }))) {
      log.warn(
        "cannot hear of refused TLS handshakes: peers without a valid certificate leave no trace here",
      );
    }
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
      outGraceMs: config.outGraceMs,
      onMembershipEvent: config.onMembershipEvent,
      ipc: config.ipcDir === undefined ? undefined : IpcServer.start({ dir: config.ipcDir, files, log }),
      scrubber: scrubberOf(config, ctx, store),
      rebuild,
      health: readiness,
      load,
      metrics,
      readCopies,
      detector,
    });
    agent.#gateway = gateway;
    agent.#metricsServer = metricsServer;
    health.channelFor = (node) => agent.#heartbeats?.channelFor(node);
    health.channelState = (node, channel) => agent.#heartbeats?.channelState(node, channel === 0 ? "A" : "B");
    health.nodeDown = (node) => agent.#heartbeats?.view(node)?.state === "down";
    health.loadOf = (node) => agent.#heartbeats?.loadOf(node) ?? "Low";
    health.peers = () => agent.#peerChannels();
    await agent.#syncHeartbeats();
    agent.#refreshReadiness();
    agent.scrubber?.start();
    agent.rebuild?.start();
    readCopies.start();
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
    // Listed even as out: our heartbeats carry our map, so a proposers' race that ends with us back reaches us.
    if (nodeById(map, this.nodeId) === undefined) {
      this.#heartbeats?.close();
      this.#heartbeats = undefined;
      return;
    }
    if (this.#heartbeats !== undefined) {
      // An operator map joins the agreement (the newest epoch wins); one the agreement made is already there.
      this.#heartbeats.adopt(map);
      return;
    }
    const port = this.#heartbeatPort;
    const self = { id: this.nodeId, addresses: this.addresses, state: "up" as const };
    this.#heartbeats = await UdpHeartbeats.start({
      self: this.nodeId,
      incarnation: Date.now(),
      map,
      config: this.#detector,
      agreement: defaultAgreementConfig(this.#outGraceMs),
      bind: heartbeatEndpoints(self, port),
      load: (lateMs) => this.load.update(lateMs),
      endpointOf: (node, channel) => {
        const entry = nodeById(this.#state.map, node);
        return entry && heartbeatEndpoints(entry, port)[channel === "A" ? 0 : 1];
      },
      onEvent: (event) => {
        this.#onMembershipEvent?.(event);
        this.metrics.membershipEvent(event);
        // A peer's channel found down has its calls in flight moved to the other channel.
        if ("peer" in event) this.#peers.healthChanged(event.peer);
        if (event.kind !== "map") return this.#log.info({ event }, "peer health changed");
        // An operator map came from update() itself; only maps the agents agreed on are news here.
        if (event.how === "outside") return;
        const { how, proposer, changed } = event;
        this.#log.info({ epoch: event.map.epoch, how, proposer, changed }, "membership agreed on a map");
        this.update(event.map);
      },
    });
  }

  /** Each watched peer's channels and active channel, as the heartbeats see them (for the metrics). */
  #peerChannels(): PeerChannels[] {
    const views: PeerChannels[] = [];
    for (const node of this.#state.map.nodes) {
      const view = node.id === this.nodeId ? undefined : this.#heartbeats?.view(node.id);
      if (view !== undefined) views.push({ peer: node.id, channels: view.channels, active: view.active });
    }
    return views;
  }

  /** host:port of the listener serving only /metrics; undefined without AgentConfig.metrics. */
  get metricsAddress(): string | undefined {
    return this.#metricsServer?.address;
  }

  /** The HTTP gateway; undefined without AgentConfig.http. */
  get gateway(): Gateway | undefined {
    return this.#gateway;
  }

  get map(): ClusterMap {
    return this.#state.map;
  }

  /** `node`'s load level: this agent's own, or a peer's as its heartbeats and load news say (Low when unknown). */
  loadOf(node: string): LoadLevel {
    return node === this.nodeId ? this.load.level : (this.#heartbeats?.loadOf(node) ?? "Low");
  }

  /** The heartbeats and their view of the watched peers; undefined while this node is not in the map. */
  get heartbeats(): UdpHeartbeats | undefined {
    return this.#heartbeats;
  }

  /** Replaces the volume set without a map change (in Kubernetes, StripedVolumes come and go on their own). */
  setVolumes(volumes: VolumeSpec[]): void {
    this.#state.volumes = volumeMap(volumes);
    this.rebuild?.nudge("volumes changed");
  }

  /** Adopts a newer cluster map (and volume set); an older or equal epoch is ignored. */
  update(map: ClusterMap, volumes: VolumeSpec[] = [...this.#state.volumes.values()]): boolean {
    if (map.epoch <= this.#state.map.epoch) return false;
    const before = this.#state.map;
    this.#state.volumes = volumeMap(volumes);
    this.#state.map = map;
    this.#log.info({ epoch: map.epoch, nodes: map.nodes.length }, "cluster map updated");
    this.#refreshReadiness();
    // Calls to a node the map now has down would wait for keepalive (a partition drops packets silently).
    for (const node of map.nodes)
      if (node.state !== "up" && nodeById(before, node.id)?.state === "up") this.#peers.nodeLost(node.id);
    void this.#syncHeartbeats();
    this.rebuild?.nudge(`map epoch ${map.epoch}`);
    return true;
  }

  #refreshReadiness(): void {
    const readiness = readinessOf({ self: this.nodeId, map: this.#state.map, stopping: this.#stopping });
    if (this.health.set(readiness))
      this.#log.info({ ready: readiness.serving, why: readiness.reason }, "readiness");
  }

  /** Lets calls in flight finish for up to `graceMs`, then cuts the rest. */
  async stop(graceMs = 2_000): Promise<void> {
    this.#stopping = true;
    this.#refreshReadiness();
    await this.scrubber?.stop();
    await this.rebuild?.stop();
    await this.readCopies.stop();
    await this.#ipc?.close();
    await this.#gateway?.close(graceMs);
    await this.#metricsServer?.close();
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

function rebuilderOf(
  config: AgentConfig,
  ctx: DataContext,
  store: ChunkStore,
  files: FileService,
  readCopies: ReadCopies,
): Rebuilder | undefined {
  const rate = config.rebuildRateBytesPerSecond ?? REBUILD_RATE_DEFAULT_BYTES_PER_SECOND;
  if (rate <= 0) return undefined;
  const interval = config.rebuildIntervalMs === undefined ? {} : { intervalMs: config.rebuildIntervalMs };
  return new Rebuilder(ctx, store, files, {
    rateBytesPerSecond: rate,
    ...interval,
    readCopyHeld: (key) => readCopies.isHeld(key),
  });
}

function volumeMap(volumes: VolumeSpec[]): Map<string, VolumeSpec> {
  return new Map(volumes.map((v) => [v.name, validateVolumeSpec(v)]));
}

function bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<string> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (error, port) => {
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
