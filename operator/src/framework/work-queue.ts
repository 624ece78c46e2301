// A per-key work queue in the manner of client-go's: a key waits at most once
// however often it is added, is never handled by two workers at once (added
// while being handled, it runs again afterwards), and a failed key comes back
// after an exponential backoff that a success resets. Keys, not objects: the
// handler reads the object fresh from the informer's cache, so it always acts
// on the newest state (level-triggered).
import { setTimeout as sleep } from "node:timers/promises";

export interface BackoffOptions {
  /** First retry delay (default 200 ms). */
  baseMs?: number;
  /** Ceiling of the retry delay (default 60 s). */
  maxMs?: number;
}

export type Handler = (key: string) => Promise<void>;

/** Told of every handler run, and handed the queue's depth to read when it likes (the operator's metrics). */
export interface QueueObserver {
  depth(read: () => number): void;
  handled(outcome: "success" | "error", seconds: number): void;
}

export class WorkQueue {
  readonly #handler: Handler;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #concurrency: number;
  /** Keys waiting to be handled, in arrival order. */
  readonly #waiting = new Set<string>();
  readonly #active = new Set<string>();
  /** Added while active: run once more when the current run ends. */
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #retryTimers = new Map<string, NodeJS.Timeout>();
  readonly #onError: (key: string, error: unknown, retryInMs: number) => void;
  readonly #observer: QueueObserver | undefined;
  #running = 0;
  #stopped = false;
  #idle: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(options: {
    handler: Handler;
    concurrency?: number;
    backoff?: BackoffOptions;
    onError: (key: string, error: unknown, retryInMs: number) => void;
    observer?: QueueObserver;
  }) {
    this.#handler = options.handler;
    this.#concurrency = options.concurrency ?? 2;
    this.#baseMs = options.backoff?.baseMs ?? 200;
    this.#maxMs = options.backoff?.maxMs ?? 60_000;
    this.#onError = options.onError;
    this.#observer = options.observer;
    this.#observer?.depth(() => this.#waiting.size);
  }

  add(key: string): void {
    if (this.#stopped) return;
    if (this.#active.has(key)) {
      this.#dirty.add(key);
      return;
    }
    this.#waiting.add(key);
    this.#pump();
  }

  /** Adds the key after `ms` (a timer handler asking to be called again). */
  addAfter(key: string, ms: number): void {
    if (this.#stopped || this.#retryTimers.has(key)) return;
    const timer = setTimeout(() => {
      this.#retryTimers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.#retryTimers.set(key, timer);
  }

  /** Consecutive failures of the key (0 after a success). */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  get length(): number {
    return this.#waiting.size;
  }

  /** Resolves when nothing waits and nothing runs (timers may still add later). */
  drained(): Promise<void> {
    if (this.#running === 0 && this.#waiting.size === 0) return Promise.resolve();
    if (this.#idle === undefined) {
      let resolve = () => {};
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#idle = { promise, resolve };
    }
    return this.#idle.promise;
  }

  /** Stops taking work and waits for running handlers (bounded by `graceMs`). */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopped = true;
    this.#waiting.clear();
    for (const timer of this.#retryTimers.values()) clearTimeout(timer);
    this.#retryTimers.clear();
    await Promise.race([this.drained(), sleep(graceMs, undefined, { ref: false })]);
  }

  #pump(): void {
    while (!this.#stopped && this.#running < this.#concurrency) {
      const key = this.#waiting.values().next().value;
      if (key === undefined) break;
      this.#waiting.delete(key);
      this.#active.add(key);
      this.#running++;
      void this.#run(key);
    }
  }

  async #run(key: string): Promise<void> {
    const started = performance.now();
    try {
      await this.#handler(key);
      this.#failures.delete(key);
      this.#observer?.handled("success", (performance.now() - started) / 1000);
    } catch (error) {
      this.#observer?.handled("error", (performance.now() - started) / 1000);
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      const delay = Math.min(this.#maxMs, this.#baseMs * 2 ** (failures - 1));
      this.#onError(key, error, delay);
      this.addAfter(key, delay);
    } finally {
      this.#active.delete(key);
      this.#running--;
      if (this.#dirty.delete(key)) this.add(key);
      this.#pump();
      if (this.#running === 0 && this.#waiting.size === 0 && this.#idle !== undefined) {
        const idle = this.#idle;
        this.#idle = undefined;
        idle.resolve();
      }
    }
  }
}
