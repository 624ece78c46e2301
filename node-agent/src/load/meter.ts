// Measures this agent's load and keeps its level (level.ts decides). The
// three signals:
// - calls in flight: every gRPC call this agent serves (piece and file
//   reads, writes, forwards; not health checks), counted by a server
//   interceptor from its start to its status or cancellation, averaged over
//   the sample by time, so a burst between two samples is not missed;
// - queue delay: how late the heartbeat timer fired, handed in by its driver
//   (io/udp-heartbeats.ts) at every wake; the worst since the last sample;
// - CPU: event-loop utilisation (perf_hooks), the busy share of the one
//   JavaScript thread that serves every call. process.cpuUsage also counts
//   the thread pool's and the garbage collector's threads, which can be busy
//   while the loop still answers at once, so it would overstate the wait.
// No timer of its own: the heartbeat driver already wakes every heartbeat
// interval and calls update() then, so an idle agent gains no wake-up and a
// new level reaches the heartbeats in the same turn.

import { type EventLoopUtilization, performance } from "node:perf_hooks";
import type * as grpc from "@grpc/grpc-js";
import { ServerInterceptingCall } from "@grpc/grpc-js";
import {
  DEFAULT_LOAD_CONFIG,
  type LoadConfig,
  type LoadLevel,
  type LoadSignals,
  nextLevel,
  pressureOf,
  validateLoadConfig,
} from "./level.ts";

export interface LoadMeterOptions {
  config?: LoadConfig;
  /** Least time between two samples; shorter wakes only add to the running sample. Default 100 ms: two heartbeat intervals. */
  sampleMs?: number;
  /** Monotonic milliseconds. */
  clock?: () => number;
}

/** Calls not worth counting: kubelet's and peers' health probes cost nothing and are not reads. */
const UNCOUNTED = "/grpc.health.";

export class LoadMeter {
  readonly #config: LoadConfig;
  readonly #sampleMs: number;
  readonly #clock: () => number;
  #level: LoadLevel = "Low";
  #signals: LoadSignals = { utilization: 0, inFlight: 0, queueDelayMs: 0 };
  #inFlight = 0;
  /** Integral of calls in flight over time since the sample began (call·ms). */
  #inFlightArea = 0;
  #changedMs: number;
  #sampleStartMs: number;
  #lateMs = 0;
  #elu: EventLoopUtilization = performance.eventLoopUtilization();
  /** Level changes since start: a flapping level shows here. */
  changes = 0;

  constructor(options: LoadMeterOptions = {}) {
    this.#config = validateLoadConfig(options.config ?? DEFAULT_LOAD_CONFIG);
    this.#sampleMs = options.sampleMs ?? 100;
    this.#clock = options.clock ?? (() => performance.now());
    this.#changedMs = this.#clock();
    this.#sampleStartMs = this.#changedMs;
  }

  get level(): LoadLevel {
    return this.#level;
  }

  /** The last sample's signals. */
  get signals(): LoadSignals {
    return { ...this.#signals };
  }

  /** Calls being served now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** One call starts being served; the function returned ends it (once, however often it is called). */
  begin(): () => void {
    this.#step(1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#step(-1);
    };
  }

  /** Counts every call of a gRPC server in flight (add it to the server's interceptors). */
  readonly interceptor: grpc.ServerInterceptor = (method, call) => {
    if (method.path.startsWith(UNCOUNTED)) return new ServerInterceptingCall(call);
    const end = this.begin();
    return new ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: end }),
      sendStatus: (status, next) => {
        end();
        next(status);
      },
    });
  };

  /**
   * A wake of the heartbeat timer `lateMs` after it was due. Once sampleMs
   * has passed since the last sample, samples the signals and moves the
   * level; returns the level.
   */
  update(lateMs: number): LoadLevel {
    if (Number.isFinite(lateMs)) this.#lateMs = Math.max(this.#lateMs, lateMs);
    const nowMs = this.#clock();
    const spanMs = nowMs - this.#sampleStartMs;
    if (spanMs < this.#sampleMs) return this.#level;
    this.#step(0);
    const elu = performance.eventLoopUtilization();
    this.#signals = {
      utilization: performance.eventLoopUtilization(elu, this.#elu).utilization,
      inFlight: this.#inFlightArea / spanMs,
      queueDelayMs: this.#lateMs,
    };
    this.#elu = elu;
    this.#inFlightArea = 0;
    this.#lateMs = 0;
    this.#sampleStartMs = nowMs;
    const level = nextLevel(this.#level, pressureOf(this.#signals, this.#config), this.#config);
    if (level !== this.#level) this.changes++;
    this.#level = level;
    return level;
  }

  /** Adds the time at the old count to the integral, then changes the count by `delta`. */
  #step(delta: number): void {
    const nowMs = this.#clock();
    this.#inFlightArea += this.#inFlight * (nowMs - this.#changedMs);
    this.#changedMs = nowMs;
    this.#inFlight += delta;
  }
}
