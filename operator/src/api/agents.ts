// Names the operator and the agents must agree on: the agents' labels (their
// pods, and their Leases, so the operator watches exactly those) and the
// name of each agent's Lease.
export const AGENT_LABELS = {
  "app.kubernetes.io/name": "mosaic-agent",
  "app.kubernetes.io/part-of": "mosaic",
};
export const AGENT_SELECTOR = "app.kubernetes.io/name=mosaic-agent";

export const AGENT_LEASE_PREFIX = "mosaic-agent-";

/** The Lease of the agent on `node`, in the agents' namespace. */
export function agentLeaseName(node: string): string {
  return `${AGENT_LEASE_PREFIX}${node}`;
}

/** The node whose agent holds a Lease of that name; undefined for any other Lease. */
export function nodeOfAgentLease(leaseName: string): string | undefined {
  return leaseName.startsWith(AGENT_LEASE_PREFIX) ? leaseName.slice(AGENT_LEASE_PREFIX.length) : undefined;
}
