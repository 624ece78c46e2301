// Which security this process's clients use to reach the agent at an
// address. Clients are made from an address alone in many places (the CLI,
// the status page, benchmarks, tests), and whether that agent runs mutual
// TLS is a fact about its cluster, not about the caller: a local cluster
// that runs TLS says so when it starts here (LocalCluster.start) or in its
// cluster file (config.ts), and registers its client identity for its
// agents' addresses. Any other address is called without TLS, as before.
import type { NodeEntry } from "../core/cluster-map.ts";
import { type ChannelSecurity, INSECURE } from "./grpc-tls.ts";

const byAddress = new Map<string, { node: string; security: ChannelSecurity }>();

/** From now on, clients in this process reach `nodes`' addresses with `security`, checking each is its node. */
export function trustCluster(
  nodes: readonly Pick<NodeEntry, "id" | "addresses">[],
  security: ChannelSecurity,
): void {
  for (const node of nodes)
    for (const address of node.addresses) byAddress.set(address, { node: node.id, security });
}

/** The registered security of an address's cluster, else plain HTTP/2. */
export const CLUSTER_TRUST: ChannelSecurity = {
  channel(node, address) {
    const known = byAddress.get(address);
    return known === undefined
      ? INSECURE.channel(node, address)
      : known.security.channel(node ?? known.node, address);
  },
};
