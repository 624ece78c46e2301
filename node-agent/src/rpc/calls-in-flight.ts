// Calls in flight to peers, per (node, channel), so that a channel the
// heartbeats declare down can have its calls cut at once. A dead NIC drops
// packets silently: without this, a call on it waits for gRPC keepalive or
// its deadline (15–30 s) before anything notices.
import { MosaicError } from "../errors.ts";

export type ChannelIndex = 0 | 1;

export const CHANNEL_NAMES = ["A", "B"] as const;

/** Why a call was cut: its channel was lost. Retried on the other channel, never shown to a client. */
export class ChannelLost extends MosaicError {
  constructor(peer: string, channel: ChannelIndex) {
    super(
      "MOSAIC_ERR_PEER_UNAVAILABLE",
      `${peer}: channel ${CHANNEL_NAMES[channel]} lost (heartbeats); the call moves to the other channel`,
    );
  }
}

/**
 * Why a call was cut: the agreed map has its node down (both channels silent
 * past the node budget, or cut off). Not retried on the other channel: the
 * caller reads or writes around the node instead of waiting out keepalive.
 */
export class NodeLost extends MosaicError {
  constructor(peer: string) {
    super("MOSAIC_ERR_PEER_UNAVAILABLE", `${peer}: down in the agreed map; its calls in flight end`);
  }
}

export interface CallTicket {
  /** Aborts (with a ChannelLost reason) when the call's channel is lost. */
  signal: AbortSignal;
  /** The call ended, however: forget it. */
  done(): void;
}

export class CallsInFlight {
  readonly #calls = new Map<string, Set<AbortController>>();

  /** Registers a call on (node, channel). */
  start(node: string, channel: ChannelIndex): CallTicket {
    const key = keyOf(node, channel);
    let set = this.#calls.get(key);
    if (set === undefined) {
      set = new Set();
      this.#calls.set(key, set);
    }
    const controller = new AbortController();
    set.add(controller);
    const calls = set;
    return {
      signal: controller.signal,
      done: () => {
        calls.delete(controller);
        if (calls.size === 0 && this.#calls.get(key) === calls) this.#calls.delete(key);
      },
    };
  }

  /** Aborts every call on (node, channel) with `reason`; returns how many there were. */
  abort(node: string, channel: ChannelIndex, reason: Error): number {
    const key = keyOf(node, channel);
    const set = this.#calls.get(key);
    this.#calls.delete(key);
    if (set === undefined) return 0;
    for (const controller of set) controller.abort(reason);
    return set.size;
  }

  /** Calls registered now, on one (node, channel) or in all. */
  count(node?: string, channel?: ChannelIndex): number {
    if (node !== undefined && channel !== undefined) return this.#calls.get(keyOf(node, channel))?.size ?? 0;
    let n = 0;
    for (const set of this.#calls.values()) n += set.size;
    return n;
  }
}

function keyOf(node: string, channel: ChannelIndex): string {
  return `${node}#${channel}`;
}

/**
 * `work`, unless `signal` aborts first: then its reason. A late outcome of
 * `work` is swallowed (the caller has moved on); `work` must itself stop on
 * the abort (cancel its gRPC call), so nothing is left running.
 */
export function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const aborted = () => {
      work.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", aborted, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", aborted);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", aborted);
        reject(error);
      },
    );
  });
}
