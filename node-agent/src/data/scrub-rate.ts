// Pacing of the scrubber's reads: a token bucket on an injected clock, so a
// test can run hours of scrubbing in simulated time and a real agent sleeps
// (never spins) between pieces.
import { setTimeout as sleepMs } from "node:timers/promises";

export interface ScrubClock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Resolves after `ms`, or at once (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: ScrubClock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    sleepMs(ms, undefined, { signal }).catch((error: unknown) => {
      if ((error as Error).name !== "AbortError") throw error;
    }),
};

/**
 * Bytes may be taken at `rateBytesPerSecond`. Idle time earns at most
 * `burstBytes` of credit (default none), so over any interval the bytes taken
 * stay within rate × interval + burst. A take larger than the credit goes into
 * debt and sleeps it off before returning, so the caller reads only bytes
 * already paid for. Infinity means unlimited.
 */
export class TokenBucket {
  readonly rateBytesPerSecond: number;
  readonly #burstBytes: number;
  readonly #clock: ScrubClock;
  #tokens: number;
  #lastMs: number;

  constructor(options: { rateBytesPerSecond: number; burstBytes?: number; clock: ScrubClock }) {
    const { rateBytesPerSecond, burstBytes = 0 } = options;
    if (!(rateBytesPerSecond > 0)) {
      throw new RangeError(`scrub rate ${rateBytesPerSecond} bytes/s must be positive (Infinity: unlimited)`);
    }
    if (!(burstBytes >= 0) || !Number.isFinite(burstBytes)) {
      throw new RangeError(`scrub burst ${burstBytes} bytes must be a non-negative number`);
    }
    this.rateBytesPerSecond = rateBytesPerSecond;
    this.#burstBytes = burstBytes;
    this.#clock = options.clock;
    this.#tokens = 0;
    this.#lastMs = options.clock.now();
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const rate = this.rateBytesPerSecond;
    if (!Number.isFinite(rate)) return;
    const nowMs = this.#clock.now();
    this.#tokens = Math.min(this.#burstBytes, this.#tokens + ((nowMs - this.#lastMs) * rate) / 1000);
    this.#lastMs = nowMs;
    this.#tokens -= bytes;
    if (this.#tokens < 0) await this.#clock.sleep((-this.#tokens * 1000) / rate, signal);
  }
}
