// The UDP driver of a MembershipCore (failure detection and map agreement).
// Two datagram sockets, one per channel, each bound to this node's address on
// that channel, so a heartbeat (or map) leaves and arrives through that NIC
// only: a dead NIC silences exactly its channel.
// One timer sleeps until the core's next deadline (a heartbeat to send, or a
// state that can time out), never on a fixed poll. Socket callbacks only
// stamp and queue what arrived; the core takes the queue, each datagram at
// its arrival time, when the timer fires and before it ticks. That gives the
// same states as handling each datagram at once (no deadline is judged
// before the arrivals that precede it), and on a VM where every event-loop
// turn costs tens of microseconds it halves an idle agent's CPU. Channel
// news (membership/channel-news.ts) rides the same sockets, and only its
// arrival wakes the timer at once: it moves routes, and it is rare.
// channelFor() reads the routes the core derives from it. Load news
// (load/load-news.ts) wakes it at once too; at every wake the agent's load
// meter hears how late the timer fired and hands back its level.
import type { Socket } from "node:dgram";
import { createSocket } from "node:dgram";
import { isIPv6 } from "node:net";
import { performance } from "node:perf_hooks";
import type { ClusterMap, NodeEntry } from "../core/cluster-map.ts";
import { MosaicError } from "../errors.ts";
import type { LoadLevel } from "../load/level.ts";
import { isLoadNews } from "../load/load-news.ts";
import type { ChannelState } from "../membership/channel-detector.ts";
import { isNews } from "../membership/channel-news.ts";
import type { Channel } from "../membership/heartbeat.ts";
import { CHANNELS } from "../membership/heartbeat.ts";
import { DATAGRAM_BYTES_MAX } from "../membership/map-message.ts";
import type { MembershipCoreOptions, MembershipEvent } from "../membership/membership-core.ts";
import { MembershipCore } from "../membership/membership-core.ts";
import type { PeerView } from "../membership/peer-health.ts";

export interface Endpoint {
  host: string;
  port: number;
}

export interface UdpHeartbeatsOptions extends Omit<MembershipCoreOptions, "nowMs"> {
  /** Where this node listens on channel A and channel B. Port 0 takes a free port (see endpoints()). */
  bind: [Endpoint, Endpoint];
  /** Where `node` listens on `channel`; undefined (not known yet): that heartbeat is skipped and counted. */
  endpointOf: (node: string, channel: Channel) => Endpoint | undefined;
  /**
   * Health transitions and newly agreed maps (kind "map"), called outside
   * socket callbacks; a listener that throws is a bug and crashes.
   */
  onEvent?: (event: MembershipEvent) => void;
  /** Monotonic milliseconds; the core must never see time go backwards, so not Date.now(). */
  clock?: () => number;
  /**
   * This node's load level, asked at every wake with how late the timer
   * fired (LoadMeter.update); unset: heartbeats carry no level.
   */
  load?: (lateMs: number) => LoadLevel;
}

export interface UdpHeartbeatStats {
  /** Datagrams sent: heartbeats and maps. */
  sent: number;
  /** Of those, map datagrams (proposals and repairs); none while all agents hold one map. */
  mapsSent: number;
  /** Of those, channel news; none while every watched peer is healthy. */
  newsSent: number;
  /** Of those, load news; none while this node's load level stays Low. */
  loadSent: number;
  /** sendto failed: typically ENETUNREACH while the channel's NIC is down. */
  sendErrors: number;
  /** Not sent: the peer's endpoint is unknown or our socket for that channel is closed. */
  skipped: number;
  received: number;
  /** Dropped before the core saw them: oversized, or the inbox was full (a flood). */
  dropped: number;
  socketErrors: number;
  /** Times the timer fired: the idle cost, about one per heartbeat interval. */
  wakeups: number;
}

/** Arrivals held between two batches; heartbeats come ~2(k+1) per interval, so more than this is a flood. */
const INBOX_MAX = 4_096;

export const monotonicMs = (): number => performance.now();

const INDEX: Record<Channel, 0 | 1> = { A: 0, B: 1 };

/** Host and port of a "host:port" or "[v6]:port" address. */
export function parseEndpoint(address: string): Endpoint {
  const at = address.lastIndexOf(":");
  const port = Number(address.slice(at + 1));
  let host = address.slice(0, at);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (at <= 0 || host === "" || !Number.isSafeInteger(port) || port < 0 || port > 65_535)
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `heartbeat endpoint: bad address ${address}`);
  return { host, port };
}

/**
 * A node's heartbeat endpoints: the host of each channel address, on `port`
 * if given, else on the address's own port number (UDP and TCP ports are
 * separate, so heartbeats can share the gRPC port number and need no config).
 */
export function heartbeatEndpoints(entry: NodeEntry, port?: number): [Endpoint, Endpoint] {
  const at = (address: string): Endpoint => {
    const e = parseEndpoint(address);
    return port === undefined ? e : { host: e.host, port };
  };
  return [at(entry.addresses[0]), at(entry.addresses[1])];
}

interface Arrival {
  bytes: Buffer;
  channel: Channel;
  atMs: number;
}

export class UdpHeartbeats {
  readonly core: MembershipCore;
  readonly stats: UdpHeartbeatStats = {
    sent: 0,
    mapsSent: 0,
    newsSent: 0,
    loadSent: 0,
    sendErrors: 0,
    skipped: 0,
    received: 0,
    dropped: 0,
    socketErrors: 0,
    wakeups: 0,
  };
  readonly #sockets: [Socket | undefined, Socket | undefined];
  readonly #endpoints: [Endpoint, Endpoint];
  readonly #endpointOf: UdpHeartbeatsOptions["endpointOf"];
  readonly #onEvent: ((event: MembershipEvent) => void) | undefined;
  readonly #clock: () => number;
  readonly #load: ((lateMs: number) => LoadLevel) | undefined;
  #inbox: Arrival[] = [];
  #timer: NodeJS.Timeout | undefined;
  #timerAtMs = Number.POSITIVE_INFINITY;
  #closed = false;

  private constructor(options: UdpHeartbeatsOptions, sockets: [Socket, Socket], clock: () => number) {
    this.#clock = clock;
    this.#sockets = sockets;
    this.#endpoints = [endpointOfSocket(sockets[0]), endpointOfSocket(sockets[1])];
    this.#endpointOf = options.endpointOf;
    this.#onEvent = options.onEvent;
    this.#load = options.load;
    this.core = new MembershipCore({ ...options, nowMs: clock() });
    for (const channel of CHANNELS) {
      const socket = sockets[INDEX[channel]];
      socket.on("message", (bytes) => this.#arrived(bytes, channel));
      socket.on("error", () => {
        this.stats.socketErrors++;
      });
    }
  }

  /** Binds both sockets, sends the first heartbeats at once and keeps going until close(). */
  static async start(options: UdpHeartbeatsOptions): Promise<UdpHeartbeats> {
    const clock = options.clock ?? monotonicMs;
    const sockets = await Promise.allSettled(options.bind.map(bindSocket));
    const bound = sockets.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const failed = sockets.find((s) => s.status === "rejected");
    if (failed !== undefined) {
      for (const socket of bound) socket.close();
      throw failed.reason;
    }
    const driver = new UdpHeartbeats(options, bound as [Socket, Socket], clock);
    driver.#onTimer();
    return driver;
  }

  /** The bound endpoints of channel A and B (the real port when bound to port 0). */
  endpoints(): [Endpoint, Endpoint] {
    return [{ ...this.#endpoints[0] }, { ...this.#endpoints[1] }];
  }

  /** The map agreed so far (the operator's, or a newer one the agents agreed on). */
  map(): ClusterMap {
    return this.core.map;
  }

  /**
   * An operator map (Agent.update): adopted above the current epoch (see
   * Agreement.adoptOutside), then detection follows its ring; the timer is
   * re-armed for it.
   */
  adopt(map: ClusterMap): void {
    // Arrivals stamped before now go first: the core's clock must never go back.
    const events = this.#drainInbox();
    events.push(...this.core.adopt(map, this.#clock()));
    this.#arm();
    this.#emit(events);
  }

  view(peer: string): PeerView | undefined {
    return this.core.view(peer);
  }

  /** `node`'s load level as its heartbeats and load news say (Low when unknown). */
  loadOf(node: string): LoadLevel {
    return this.core.loadOf(node, this.#clock());
  }

  /**
   * The channel this node's traffic to `node` should take (0 = A, 1 = B): the
   * detector's choice for a peer watched here, the watchers' channel news for
   * any other (MembershipCore.route); undefined when neither channel is
   * usable or nothing is known (then connectivity decides).
   */
  channelFor(node: string): 0 | 1 | undefined {
    const route = this.core.route(node);
    return route === undefined ? undefined : INDEX[route];
  }

  /** `node`'s `channel` as heartbeats or channel news know it (MembershipCore.channelState). */
  channelState(node: string, channel: Channel): ChannelState | undefined {
    return this.core.channelState(node, channel);
  }

  /** Closes one channel's socket: this node goes silent and deaf on it, as with a dead NIC (tests, drains). */
  closeChannel(channel: Channel): void {
    const socket = this.#sockets[INDEX[channel]];
    this.#sockets[INDEX[channel]] = undefined;
    socket?.close();
  }

  /** Stops the timer and closes both sockets; nothing of this driver keeps the process alive afterwards. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#inbox = [];
    for (const channel of CHANNELS) this.closeChannel(channel);
  }

  #arrived(bytes: Buffer, channel: Channel): void {
    // Only stamp and queue here: the core sees it in #onTimer, in our own turn of the loop.
    this.stats.received++;
    if (bytes.length > DATAGRAM_BYTES_MAX || this.#inbox.length >= INBOX_MAX) {
      this.stats.dropped++;
      return;
    }
    const atMs = this.#clock();
    this.#inbox.push({ bytes, channel, atMs });
    // Not with the next heartbeat, up to an interval later (see the top).
    if (isNews(bytes) || isLoadNews(bytes)) this.#arm(atMs);
  }

  /** Hands queued arrivals to the core in arrival order; stamps are ≥ the core's last call (one thread). */
  #drainInbox(): MembershipEvent[] {
    const batch = this.#inbox;
    this.#inbox = [];
    const events: MembershipEvent[] = [];
    for (const a of batch) events.push(...this.core.onDatagram(a.bytes, a.channel, a.atMs));
    return events;
  }

  #onTimer(): void {
    const dueMs = this.#timerAtMs;
    this.#timer = undefined;
    this.#timerAtMs = Number.POSITIVE_INFINITY;
    if (this.#closed) return;
    this.stats.wakeups++;
    const events = this.#drainInbox();
    const nowMs = this.#clock();
    // The first wake (from start()) was due at no particular time.
    if (this.#load !== undefined) this.core.setLoad(this.#load(Math.max(0, nowMs - dueMs)), nowMs);
    const tick = this.core.tick(nowMs);
    events.push(...tick.events);
    for (const d of tick.datagrams) {
      if (d.kind === "map") this.stats.mapsSent++;
      if (d.kind === "news") this.stats.newsSent++;
      if (d.kind === "load") this.stats.loadSent++;
      this.#send(d.to, d.channel, d.bytes);
    }
    this.#arm();
    this.#emit(events);
  }

  #send(to: string, channel: Channel, bytes: Buffer): void {
    const socket = this.#sockets[INDEX[channel]];
    const endpoint = this.#endpointOf(to, channel);
    if (socket === undefined || endpoint === undefined) {
      this.stats.skipped++;
      return;
    }
    this.stats.sent++;
    socket.send(bytes, endpoint.port, endpoint.host, (error) => {
      if (error) this.stats.sendErrors++;
    });
  }

  /** Sleeps until the core's next deadline (or `dueMs`); an earlier timer already armed is kept. */
  #arm(dueMs = this.core.nextDeadlineMs()): void {
    if (this.#closed) return;
    if (dueMs >= this.#timerAtMs) return;
    clearTimeout(this.#timer);
    // Timers have whole-ms resolution and may fire a fraction early: at least 1 ms, so never a spin.
    const delayMs = Math.max(1, Math.ceil(dueMs - this.#clock()));
    this.#timerAtMs = dueMs;
    this.#timer = setTimeout(() => this.#onTimer(), delayMs);
  }

  #emit(events: MembershipEvent[]): void {
    if (this.#onEvent === undefined) return;
    for (const e of events) this.#onEvent(e);
  }
}

function endpointOfSocket(socket: Socket): Endpoint {
  const a = socket.address();
  return { host: a.address, port: a.port };
}

function bindSocket(endpoint: Endpoint): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: isIPv6(endpoint.host) ? "udp6" : "udp4" });
    const failed = (error: Error) => {
      socket.close();
      reject(
        new MosaicError(
          "MOSAIC_ERR_INTERNAL",
          `heartbeats: cannot bind udp ${endpoint.host}:${endpoint.port}: ${error.message}`,
          { cause: error },
        ),
      );
    };
    socket.once("error", failed);
    socket.bind({ address: endpoint.host, port: endpoint.port, exclusive: true }, () => {
      socket.off("error", failed);
      resolve(socket);
    });
  });
}
