// Every Prometheus metric of one agent, defined here and nowhere else, on a
// registry of the agent's own (not prom-client's global one), so that several
// agents in one process (the in-process tests) never share or collide. The
// layers that report are handed small hooks, not the registry:
// - peer gRPC traffic: a client interceptor per channel (bytes of every
//   message sent and received, call latency by method) and a server
//   interceptor (latency of every call served, Files' calls being the file
//   requests of clients, by op);
// - the file layer: DataMetrics, through the DataContext (degraded reads,
//   pieces rebuilt, scrub repairs);
// - the heartbeats: their events (channel transitions, failovers);
// - the gateway: one observation per HTTP request.
// What is a state rather than an event (load level, channel states, rebuild
// bytes left, map epoch) is read from the agent when scraped, so it costs
// nothing between scrapes.
import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import { ServerInterceptingCall } from "@grpc/grpc-js";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { LoadLevel } from "../load/level.ts";
import type { ChannelState } from "../membership/channel-detector.ts";
import type { MembershipEvent } from "../membership/membership-core.ts";

export const METRIC_PREFIX = "mosaic_";

/** What the file layer reports (DataContext.metrics). */
export interface DataMetrics {
  /** A stripe read around a missing, corrupt or unreachable piece: decoded from parity, or from another replica. */
  degradedRead(how: "parity" | "replica"): void;
  /** A piece the rebuild wrote here (`bytes` long), or one it could not rebuild this pass. */
  rebuildPiece(outcome: "rebuilt" | "failed", bytes: number): void;
  /** A bad piece the scrubber found, repaired from its stripe or not. */
  scrubFinding(outcome: "repaired" | "unrepairable"): void;
}

/** The agent's state, read at each scrape. */
export interface AgentReadings {
  loadLevel(): LoadLevel;
  mapEpoch(): number;
  /** Bytes the rebuild still has to write here; undefined when the rebuild is off. */
  rebuildBytesLeft(): number | undefined;
  /** Each watched peer's channels as the heartbeats see them, and the channel its traffic takes. */
  peers(): PeerChannels[];
  /** Temporary read copies held on this node, per volume and phase (load/read-copies.ts). */
  readCopies(): { volume: string; phase: "serving" | "draining"; count: number }[];
}

export interface PeerChannels {
  peer: string;
  channels: Record<"A" | "B", ChannelState>;
  active: "A" | "B" | null;
}

const CHANNELS = ["A", "B"] as const;
const CHANNEL_STATES: readonly ChannelState[] = ["up", "suspect", "returning", "down"];
const LOAD_VALUE: Record<LoadLevel, number> = { Low: 0, Medium: 1, High: 2 };
/** Health checks (a kubelet's probes, readiness watches that last as long as a connection) are not requests. */
const UNTIMED = "/grpc.health.v1.Health/";
/** Latency buckets from a metadata call on loopback (~0.2 ms) to a piece across a busy node (seconds). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class AgentMetrics implements DataMetrics {
  readonly registry = new Registry();
  readonly #sentBytes: Counter<"channel">;
  readonly #receivedBytes: Counter<"channel">;
  readonly #peerCalls: Histogram<"method" | "channel" | "code">;
  readonly #served: Histogram<"service" | "method" | "code">;
  readonly #http: Histogram<"method" | "status">;
  readonly #httpBytes: Counter<"method">;
  readonly #failovers: Counter<"peer" | "from" | "to">;
  readonly #transitions: Counter<"peer" | "channel" | "to">;
  readonly #degraded: Counter<"how">;
  readonly #rebuildBytes: Counter;
  readonly #rebuildPieces: Counter<"outcome">;
  readonly #scrub: Counter<"outcome">;

  constructor(readings: AgentReadings) {
    const registers = [this.registry];
    this.#sentBytes = new Counter({
      name: "mosaic_peer_sent_bytes_total",
      help: "Bytes of gRPC messages this agent sent to its peers (pieces, forwarded writes, metadata), by channel",
      labelNames: ["channel"],
      registers,
    });
    this.#receivedBytes = new Counter({
      name: "mosaic_peer_received_bytes_total",
      help: "Bytes of gRPC messages this agent received from its peers in answer to its calls, by channel",
      labelNames: ["channel"],
      registers,
    });
    // Children made once: the interceptors count every message and must not build label keys each time.
    for (const channel of CHANNELS) {
      this.#sentBytes.labels(channel);
      this.#receivedBytes.labels(channel);
    }
    this.#peerCalls = new Histogram({
      name: "mosaic_peer_call_duration_seconds",
      help: "Time of this agent's calls to its peers, from start to status, by method, channel and gRPC status",
      labelNames: ["method", "channel", "code"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#served = new Histogram({
      name: "mosaic_grpc_server_call_duration_seconds",
      help: "Time of the gRPC calls this agent served, by service (mosaic.v1.Files: clients' file requests; mosaic.v1.Peer: other agents'), method and gRPC status",
      labelNames: ["service", "method", "code"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#http = new Histogram({
      name: "mosaic_http_request_duration_seconds",
      help: "Time of the HTTP gateway's requests, from arrival to the last byte of the answer, by method and status",
      labelNames: ["method", "status"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#httpBytes = new Counter({
      name: "mosaic_http_sent_bytes_total",
      help: "Bytes of response bodies the HTTP gateway sent, by method",
      labelNames: ["method"],
      registers,
    });
    this.#failovers = new Counter({
      name: "mosaic_channel_failovers_total",
      help: "Times the heartbeats (or watchers' channel news) moved a peer's traffic from one channel to the other",
      labelNames: ["peer", "from", "to"],
      registers,
    });
    this.#transitions = new Counter({
      name: "mosaic_peer_channel_transitions_total",
      help: "Changes of a watched peer's channel state (up, suspect, returning, down) seen by the heartbeats",
      labelNames: ["peer", "channel", "to"],
      registers,
    });
    this.#degraded = new Counter({
      name: "mosaic_degraded_reads_total",
      help: "Stripes read around a missing, corrupt or unreachable piece: rebuilt from parity, or read from another replica",
      labelNames: ["how"],
      registers,
    });
    this.#rebuildBytes = new Counter({
      name: "mosaic_rebuild_bytes_total",
      help: "Bytes of pieces the rebuild wrote to this node",
      registers,
    });
    this.#rebuildPieces = new Counter({
      name: "mosaic_rebuild_pieces_total",
      help: "Pieces the rebuild wrote to this node (rebuilt) or could not rebuild in a pass (failed)",
      labelNames: ["outcome"],
      registers,
    });
    this.#scrub = new Counter({
      name: "mosaic_scrub_bad_pieces_total",
      help: "Bad pieces (corrupt, unreadable) the scrubber found here: repaired from their stripe, or unrepairable",
      labelNames: ["outcome"],
      registers,
    });
    this.#readings(readings, registers);
  }

  /** Counts the bytes and times the calls of a peer client on `channel` (add it to the client's interceptors). */
  peerInterceptor(channel: 0 | 1): grpc.Interceptor {
    const name = CHANNELS[channel];
    const sent = this.#sentBytes.labels(name);
    const received = this.#receivedBytes.labels(name);
    return (options, nextCall) => {
      const started = performance.now();
      const method = methodName(options.method_definition.path);
      return new grpc.InterceptingCall(nextCall(options), {
        start: (metadata, _listener, next) =>
          next(metadata, {
            onReceiveMessage: (message: Buffer | null, pass) => {
              received.inc(message?.length ?? 0);
              pass(message);
            },
            onReceiveStatus: (status, pass) => {
              const code = grpc.status[status.code] ?? String(status.code);
              this.#peerCalls.observe({ method, channel: name, code }, (performance.now() - started) / 1000);
              pass(status);
            },
          }),
        sendMessage: (message: Buffer | null, next) => {
          sent.inc(message?.length ?? 0);
          next(message);
        },
      });
    };
  }

  /** Times every call this agent's gRPC server serves but health checks (add it to the server's interceptors). */
  readonly serverInterceptor: grpc.ServerInterceptor = (descriptor, call) => {
    if (descriptor.path.startsWith(UNTIMED)) return new ServerInterceptingCall(call);
    const started = performance.now();
    const [service = "", method = ""] = descriptor.path.slice(1).split("/");
    let timed = false;
    const observe = (code: string) => {
      if (timed) return;
      timed = true;
      this.#served.observe({ service, method, code }, (performance.now() - started) / 1000);
    };
    return new ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: () => observe("CANCELLED") }),
      sendStatus: (status, next) => {
        observe(grpc.status[status.code] ?? String(status.code));
        next(status);
      },
    });
  };

  /** One request the HTTP gateway answered (or that broke off). */
  httpRequest(method: string, status: number, seconds: number, bytes: number): void {
    const m = HTTP_METHODS.has(method) ? method : "other";
    this.#http.observe({ method: m, status: String(status) }, seconds);
    if (bytes > 0) this.#httpBytes.inc({ method: m }, bytes);
  }

  /** A heartbeat event: channel transitions, and moves of a peer's traffic between channels. */
  membershipEvent(event: MembershipEvent): void {
    if (event.kind === "channel") {
      this.#transitions.inc({ peer: event.peer, channel: event.channel, to: event.to });
      return;
    }
    if (event.kind !== "active" && event.kind !== "route") return;
    // A watched peer's "active" null is neither channel usable: no move. A route's null is "no news":
    // connectivity decides, which takes A while A connects, so null → B is a failover and B → null a return.
    const from = event.kind === "route" ? (event.from ?? "A") : event.from;
    const to = event.kind === "route" ? (event.to ?? "A") : event.to;
    if (from !== null && to !== null && from !== to) this.#failovers.inc({ peer: event.peer, from, to });
  }

  degradedRead(how: "parity" | "replica"): void {
    this.#degraded.inc({ how });
  }

  rebuildPiece(outcome: "rebuilt" | "failed", bytes: number): void {
    this.#rebuildPieces.inc({ outcome });
    if (outcome === "rebuilt") this.#rebuildBytes.inc(bytes);
  }

  scrubFinding(outcome: "repaired" | "unrepairable"): void {
    this.#scrub.inc({ outcome });
  }

  /** Gauges read from the agent at each scrape. */
  #readings(readings: AgentReadings, registers: Registry[]): void {
    new Gauge({
      name: "mosaic_load_level",
      help: "This agent's load level: 0 Low, 1 Medium, 2 High (seed 002's levels, with hysteresis)",
      registers,
      collect() {
        this.set(LOAD_VALUE[readings.loadLevel()]);
      },
    });
    new Gauge({
      name: "mosaic_cluster_map_epoch",
      help: "Epoch of the cluster map this agent holds",
      registers,
      collect() {
        this.set(readings.mapEpoch());
      },
    });
    new Gauge({
      name: "mosaic_rebuild_left_bytes",
      help: "Bytes of pieces the rebuild still has to write to this node (0 when caught up or off)",
      registers,
      collect() {
        this.set(readings.rebuildBytesLeft() ?? 0);
      },
    });
    new Gauge({
      name: "mosaic_read_copies",
      help: "Temporary read copies of hot stripes held on this node, by volume and phase (serving, draining)",
      labelNames: ["volume", "phase"],
      registers,
      collect() {
        // A volume whose copies are all gone must read 0, not linger.
        this.reset();
        for (const { volume, phase, count } of readings.readCopies()) this.set({ volume, phase }, count);
      },
    });
    new Gauge({
      name: "mosaic_peer_channel_state",
      help: "State of each watched peer's channels as the heartbeats see them: 1 for the current state, 0 for the others",
      labelNames: ["peer", "channel", "state"],
      registers,
      collect() {
        // Peers that left the map must not linger as stale series.
        this.reset();
        for (const view of readings.peers())
          for (const channel of CHANNELS)
            for (const state of CHANNEL_STATES)
              this.set({ peer: view.peer, channel, state }, view.channels[channel] === state ? 1 : 0);
      },
    });
    new Gauge({
      name: "mosaic_peer_active_channel",
      help: "The channel each watched peer's traffic takes: 1 for it, 0 for the other (both 0: neither is usable)",
      labelNames: ["peer", "channel"],
      registers,
      collect() {
        this.reset();
        for (const view of readings.peers())
          for (const channel of CHANNELS)
            this.set({ peer: view.peer, channel }, view.active === channel ? 1 : 0);
      },
    });
  }
}

const HTTP_METHODS = new Set(["GET", "HEAD", "PUT", "DELETE", "POST", "OPTIONS"]);

/** "/mosaic.v1.Peer/GetPiece" → "GetPiece". */
function methodName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
