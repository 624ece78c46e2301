// Whether each agent is alive, from its Lease, judged on the operator's own
// clock the way client-go's leader election judges a leader: a Lease is
// expired once it has gone unchanged for its whole duration since this
// operator saw it change. Comparing renewTime with our clock instead would
// make a node Down (or never Down) whenever two machines' clocks disagree.
// Pure: observations and "now" come in, liveness goes out.
//
// A new leader has seen nothing change yet, so it gives every agent one full
// duration (and the grace after it) from when it started looking: a failover
// makes Lost later, never wrongly sooner. Followers observe too, so a replica
// that takes over knows what it saw while following.
export type Liveness = "live" | "down" | "lost";

export interface LeaseRecord {
  /** What changes on every renewal (renewTime, holder); compared, never parsed. */
  record: string;
  durationMs: number;
}

interface Seen {
  record: string;
  changedAtMs: number;
  durationMs: number;
}

export interface LivenessAt {
  liveness: Liveness;
  /** When this node's liveness changes next if nothing is observed meanwhile; Infinity when lost. */
  nextChangeMs: number;
}

export class LeaseClock {
  readonly #startedMs: number;
  /** Duration assumed for an agent whose Lease was never seen (it may be starting). */
  readonly #defaultDurationMs: number;
  readonly #seen = new Map<string, Seen>();
  readonly #firstAskedMs = new Map<string, number>();

  constructor(startedMs: number, defaultDurationMs: number) {
    this.#startedMs = startedMs;
    this.#defaultDurationMs = defaultDurationMs;
  }

  /** A Lease as the watch delivered it (added, changed, or relisted unchanged). */
  observe(node: string, lease: LeaseRecord, nowMs: number): void {
    const seen = this.#seen.get(node);
    if (seen?.record === lease.record && seen.durationMs === lease.durationMs) return;
    this.#seen.set(node, { record: lease.record, changedAtMs: nowMs, durationMs: lease.durationMs });
  }

  /** The Lease was deleted: nothing renews it any more, so it counts as expired now. */
  deleted(node: string, nowMs: number): void {
    this.#seen.set(node, { record: "", changedAtMs: nowMs, durationMs: 0 });
  }

  /** When `node`'s lease runs out (or ran out) by our clock. */
  expiresAtMs(node: string, nowMs: number): number {
    const seen = this.#seen.get(node);
    if (seen !== undefined) return seen.changedAtMs + seen.durationMs;
    // Never seen: one default duration from when we first wondered about it.
    let since = this.#firstAskedMs.get(node);
    if (since === undefined) {
      since = Math.max(this.#startedMs, nowMs);
      this.#firstAskedMs.set(node, since);
    }
    return since + this.#defaultDurationMs;
  }

  liveness(node: string, nowMs: number, graceMs: number): LivenessAt {
    const expiresMs = this.expiresAtMs(node, nowMs);
    if (nowMs < expiresMs) return { liveness: "live", nextChangeMs: expiresMs };
    if (nowMs < expiresMs + graceMs) return { liveness: "down", nextChangeMs: expiresMs + graceMs };
    return { liveness: "lost", nextChangeMs: Number.POSITIVE_INFINITY };
  }

  /** How long ago `node`'s lease ran out by our clock (0 while live). */
  expiredForMs(node: string, nowMs: number): number {
    return Math.max(0, nowMs - this.expiresAtMs(node, nowMs));
  }
}
