// Waiting out gRPC's reconnect backoff. A peer that refused a connection
// (it was still starting, or restarting) is retried by grpc-js only after a
// backoff, and until then calls on that channel fail at once. A call that
// fails so is given the channel's next connect attempt (bounded) before it
// fails for good, but only when that is worth it: never on a channel the
// heartbeats have down or a node the map has down, and once per failure
// episode (a peer that stays dead costs one wait, not one per call).
import * as grpc from "@grpc/grpc-js";
import type { NodeState } from "../core/cluster-map.ts";
import type { ChannelState } from "../membership/channel-detector.ts";
import { MAX_RECONNECT_BACKOFF_MS } from "./wire.ts";

/** A wait covers the longest backoff plus a connect on a loaded machine. */
export const RECONNECT_WAIT_MS = MAX_RECONNECT_BACKOFF_MS + 500;

/** A client's channel, as Client.getChannel() gives it. */
export type GrpcChannel = ReturnType<grpc.Client["getChannel"]>;

export interface ChannelFacts {
  /** The channel's gRPC connectivity after the call failed. */
  connectivity: grpc.connectivityState;
  /** The heartbeats' view of the channel; undefined: the peer is not watched here. */
  heartbeat: ChannelState | undefined;
  /** The node's state in the cluster map; undefined: not in it. */
  node: NodeState | undefined;
  /** A wait in this episode already ended without a connection. */
  gaveUp: boolean;
}

/** A connection attempt has ended: connected, or failed (and now in backoff). */
export function settled(state: grpc.connectivityState): boolean {
  return state === grpc.connectivityState.READY || state === grpc.connectivityState.TRANSIENT_FAILURE;
}

/** Whether a call that failed on this channel should wait for its next connect attempt. */
export function worthWaiting(f: ChannelFacts): boolean {
  if (f.connectivity === grpc.connectivityState.READY || f.connectivity === grpc.connectivityState.SHUTDOWN)
    return false; // connected (the failure was not about connecting), or closed by us
  return f.node === "up" && f.heartbeat !== "down" && !f.gaveUp;
}

/**
 * Waits until `channel`'s state satisfies `done`, at most `ms` or until
 * `signal` aborts, asking gRPC to connect; returns the state then. Each round
 * waits for a state change or the deadline: bounded, never a spin.
 */
export async function awaitState(
  channel: GrpcChannel,
  ms: number,
  done: (state: grpc.connectivityState) => boolean,
  signal?: AbortSignal,
): Promise<grpc.connectivityState> {
  const deadline = Date.now() + ms;
  let state = channel.getConnectivityState(true);
  while (
    !done(state) &&
    state !== grpc.connectivityState.SHUTDOWN &&
    Date.now() < deadline &&
    signal?.aborted !== true
  ) {
    const seen = state;
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      signal?.addEventListener("abort", stop, { once: true });
      try {
        channel.watchConnectivityState(seen, deadline, () => {
          signal?.removeEventListener("abort", stop);
          resolve();
        });
      } catch {
        resolve(); // shut down meanwhile
      }
    });
    state = channel.getConnectivityState(true);
  }
  return state;
}

/** Resolves true once `channel` is READY, false at `ms` or when `signal` aborts. */
export async function readyWithin(channel: GrpcChannel, ms: number, signal?: AbortSignal): Promise<boolean> {
  const state = await awaitState(channel, ms, (s) => s === grpc.connectivityState.READY, signal);
  return state === grpc.connectivityState.READY && signal?.aborted !== true;
}

/**
 * Per channel (a key), one wait at a time shared by every call that failed
 * on it, and the memory of a wait that ended without a connection: the
 * episode's "gave up", which lasts until the channel is seen READY, its
 * heartbeats come back, or the map changes.
 */
export class ReconnectWaits {
  readonly #waits = new Map<string, { ready: Promise<boolean>; abort: AbortController }>();
  /** key → map epoch at which the wait gave up. */
  readonly #gaveUp = new Map<string, number>();

  gaveUp(key: string, epoch: number): boolean {
    const at = this.#gaveUp.get(key);
    if (at === undefined) return false;
    if (at === epoch) return true;
    this.#gaveUp.delete(key);
    return false;
  }

  /** The shared wait for `channel` to connect within `ms`. */
  wait(key: string, channel: GrpcChannel, ms: number, epoch: number): Promise<boolean> {
    const running = this.#waits.get(key);
    if (running !== undefined) return running.ready;
    const abort = new AbortController();
    const ready = readyWithin(channel, ms, abort.signal).then((connected) => {
      if (this.#waits.get(key)?.abort === abort) this.#waits.delete(key);
      if (connected) this.#gaveUp.delete(key);
      else this.#gaveUp.set(key, epoch);
      return connected;
    });
    this.#waits.set(key, { ready, abort });
    return ready;
  }

  /** The channel is good again (seen READY, or heard again): the next failure may wait. */
  forget(key: string): void {
    this.#gaveUp.delete(key);
  }

  /** The channel is lost: a wait on it ends now, unanswered. */
  abort(key: string): void {
    this.#waits.get(key)?.abort.abort();
  }

  /** Waits running now (tests: none left behind). */
  get running(): number {
    return this.#waits.size;
  }
}
