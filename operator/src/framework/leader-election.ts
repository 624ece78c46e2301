// Leader election on a coordination.k8s.io Lease, as client-go's
// leaderelection does it: the holder renews the lease every `retryMs`; a
// candidate takes it over only after it has watched the same renewal stay
// unchanged for a whole `leaseDurationMs` on its own clock (so clocks need
// not agree); every write carries the resourceVersion it read, so of two
// candidates at most one wins. A leader that cannot renew within
// `renewDeadlineMs` stops leading before its lease can expire elsewhere.
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { isConflict, isNotFound, type KubeRest } from "./kube-rest.ts";
import { collectionPath, LEASES, objectPath } from "./resources.ts";

export interface LeaderElectionOptions {
  rest: KubeRest;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  log: Logger;
}

export interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export class LeaderElector {
  readonly #o: Required<Omit<LeaderElectionOptions, "log">> & { log: Logger };
  #leading = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  /** The last lease record seen from another holder, and when (our clock) it last changed. */
  #observed: { record: string; atMs: number } | undefined;
  #lastRenewMs = 0;

  constructor(options: LeaderElectionOptions) {
    this.#o = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryMs: 2_000,
      ...options,
      log: options.log.child({ component: "leader-election", lease: `${options.namespace}/${options.name}` }),
    };
    if (this.#o.renewDeadlineMs >= this.#o.leaseDurationMs) {
      throw new RangeError("renewDeadlineMs must be shorter than leaseDurationMs");
    }
  }

  get leading(): boolean {
    return this.#leading;
  }

  start(): void {
    this.#stopped = false;
    void this.#round();
  }

  /** Stops; a leader gives the lease up at once so another replica need not wait out the duration. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#leading) {
      this.#setLeading(false);
      await this.#release().catch((error: unknown) =>
        this.#o.log.warn({ err: (error as Error).message }, "could not release the lease"),
      );
    }
  }

  async #round(): Promise<void> {
    try {
      const acquired = await this.#tryAcquireOrRenew();
      if (acquired) this.#lastRenewMs = performance.now();
      if (!acquired && this.#leading) this.#setLeading(false);
      if (acquired && !this.#leading) this.#setLeading(true);
    } catch (error) {
      this.#o.log.warn({ err: (error as Error).message }, "lease round failed");
    }
    if (this.#leading && performance.now() - this.#lastRenewMs > this.#o.renewDeadlineMs) {
      this.#o.log.error("could not renew the lease within the renew deadline; stepping down");
      this.#setLeading(false);
    }
    if (!this.#stopped) this.#timer = setTimeout(() => void this.#round(), this.#o.retryMs);
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { rest, namespace, name, identity } = this.#o;
    const now = microTime(new Date());
    const mine: Lease["spec"] = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.#o.leaseDurationMs / 1000),
      renewTime: now,
    };
    let lease: Lease;
    try {
      lease = await rest.get<Lease>(objectPath(LEASES, name, namespace));
    } catch (error) {
      if (!isNotFound(error)) throw error;
      return this.#write(() =>
        rest.create(collectionPath(LEASES, namespace), {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name, namespace },
          spec: { ...mine, acquireTime: now, leaseTransitions: 0 },
        }),
      );
    }
    const holder = lease.spec.holderIdentity;
    if (holder !== identity && holder !== undefined && holder !== "") {
      const record = JSON.stringify(lease.spec);
      const nowMs = performance.now();
      if (this.#observed?.record !== record) this.#observed = { record, atMs: nowMs };
      if (nowMs - this.#observed.atMs < this.#o.leaseDurationMs) return false;
    }
    const taking = holder !== identity;
    const spec: Lease["spec"] = {
      ...lease.spec,
      ...mine,
      ...(taking ? { acquireTime: now, leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 } : {}),
    };
    return this.#write(() => rest.replace(objectPath(LEASES, name, namespace), { ...lease, spec }));
  }

  async #write(write: () => Promise<unknown>): Promise<boolean> {
    try {
      await write();
      return true;
    } catch (error) {
      // Another candidate wrote first: it holds the lease; try again next round.
      if (isConflict(error) || (error as { status?: number }).status === 409) return false;
      throw error;
    }
  }

  async #release(): Promise<void> {
    const { rest, namespace, name, identity } = this.#o;
    const lease = await rest.get<Lease>(objectPath(LEASES, name, namespace));
    if (lease.spec.holderIdentity !== identity) return;
    await rest.replace(objectPath(LEASES, name, namespace), {
      ...lease,
      spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1 },
    });
  }

  #setLeading(leading: boolean): void {
    this.#leading = leading;
    this.#o.log.info({ identity: this.#o.identity }, leading ? "leading" : "not leading");
    if (leading) this.#o.onStartedLeading();
    else this.#o.onStoppedLeading();
  }
}

/** Lease times are MicroTime: RFC 3339 with exactly six fractional digits. */
/** A candidate's identity: its pod (or host) name and a suffix of this process, as client-go's hostname_uuid. */
export function leaderIdentity(podName: string): string {
  return `${podName}_${randomUUID().slice(0, 8)}`;
}

/** The pod (or host) name in a leaderIdentity(). Pod names have no "_". */
export function podOfIdentity(identity: string): string {
  const cut = identity.lastIndexOf("_");
  return cut < 0 ? identity : identity.slice(0, cut);
}

export function microTime(date: Date): string {
  return date.toISOString().replace("Z", "000Z");
}
