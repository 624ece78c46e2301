// The agent's liveness toward Kubernetes: a coordination.k8s.io Lease per
// agent (mosaic-agent-<node> in the agent's namespace, held by its pod),
// renewed every third of its duration, as kubelet keeps its node Lease. The
// operator reads it; the ClusterNode status never carries a heartbeat
// timestamp. The Lease is ours alone (one agent per node), so a renewal
// takes it whoever held it: a restarted pod need not wait out the old one.
import { AGENT_LABELS, agentLeaseName } from "@mosaic/operator/api/agents.ts";
import { isConflict, isNotFound, type KubeRest } from "@mosaic/operator/framework/kube-rest.ts";
import { type Lease, microTime } from "@mosaic/operator/framework/leader-election.ts";
import { collectionPath, LEASES, objectPath } from "@mosaic/operator/framework/resources.ts";
import type { Logger } from "../log.ts";

/** The default duration: a crashed agent is Down to Kubernetes this long after its last renewal. */
export const AGENT_LEASE_SECONDS = 15;

export interface AgentLeaseOptions {
  rest: KubeRest;
  namespace: string;
  node: string;
  /** The pod's name: the lease's holder. */
  holder: string;
  durationSeconds?: number;
  log: Logger;
}

export class AgentLease {
  readonly name: string;
  readonly #o: AgentLeaseOptions;
  readonly #durationSeconds: number;
  readonly #log: Logger;
  #lease: Lease | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #acquired = false;
  /** Renewals written (for tests and logs). */
  renewals = 0;

  constructor(options: AgentLeaseOptions) {
    this.#o = options;
    this.name = agentLeaseName(options.node);
    this.#durationSeconds = options.durationSeconds ?? AGENT_LEASE_SECONDS;
    this.#log = options.log.child({ component: "lease", lease: `${options.namespace}/${this.name}` });
    if (!Number.isInteger(this.#durationSeconds) || this.#durationSeconds < 1)
      throw new RangeError(`lease duration ${this.#durationSeconds} s must be a whole number of seconds ≥ 1`);
  }

  get renewEveryMs(): number {
    return (this.#durationSeconds * 1000) / 3;
  }

  /** Takes the lease now (throws if the API refuses) and keeps renewing it until stop(). */
  async start(): Promise<void> {
    await this.#renew();
    this.#schedule();
  }

  /** Stops renewing; the lease then runs out, as it would for a crash, and the operator sees it. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#stopped) return;
    // The next renewal counts from the end of this one: a slow API server never gets two at once.
    this.#timer = setTimeout(() => {
      this.#renew()
        .catch((error: unknown) =>
          this.#log.warn({ err: (error as Error).message }, "lease not renewed; retrying"),
        )
        .finally(() => this.#schedule());
    }, this.renewEveryMs);
  }

  async #renew(): Promise<void> {
    const { rest, namespace, holder } = this.#o;
    const now = microTime(new Date());
    const path = objectPath(LEASES, this.name, namespace);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        this.#lease ??= await rest.get<Lease>(path);
      } catch (error) {
        if (!isNotFound(error)) throw error;
        this.#lease = await rest.create<Lease>(collectionPath(LEASES, namespace), {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: this.name, namespace, labels: { ...AGENT_LABELS } },
          spec: {
            holderIdentity: holder,
            leaseDurationSeconds: this.#durationSeconds,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        });
        this.#taken();
        return;
      }
      const lease = this.#lease;
      // A new process takes the lease afresh: the operator can tell a restart from a renewal.
      const taking = !this.#acquired || lease.spec.holderIdentity !== holder;
      const spec: Lease["spec"] = {
        ...lease.spec,
        holderIdentity: holder,
        leaseDurationSeconds: this.#durationSeconds,
        renewTime: now,
        ...(taking ? { acquireTime: now, leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 } : {}),
      };
      try {
        this.#lease = await rest.replace<Lease>(path, { ...lease, spec });
        this.renewals++;
        if (taking) this.#taken();
        return;
      } catch (error) {
        this.#lease = undefined;
        if (!isConflict(error) && !isNotFound(error)) throw error;
      }
    }
    throw new Error(`lease ${namespace}/${this.name}: changed under us three times in a row`);
  }

  #taken(): void {
    this.#acquired = true;
    this.#log.info({ holder: this.#o.holder, durationSeconds: this.#durationSeconds }, "lease taken");
  }
}
