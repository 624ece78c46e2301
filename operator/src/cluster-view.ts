// The cluster as StripedVolume status needs it: every member of the map with
// the state the agents hold it in (up, down, out: the freshest live agent's
// map, as cluster-map-plan.ts reads it), its liveness (its Lease, on the
// operator's clock) and what its agent last reported (ClusterNode status:
// what it holds per volume, its rebuild). Pure.
import type { ClusterMap, NodeState } from "../../node-agent/src/core/cluster-map.ts";
import type { ClusterNode, ClusterNodeStatus } from "./api/types.ts";
import { heldStates, type NodeReport } from "./cluster-map-plan.ts";
import type { Liveness } from "./lease-clock.ts";

export interface MemberView {
  id: string;
  state: NodeState;
  liveness: Liveness;
  /** Its agent's last report; a dead agent's stays as it was. */
  status: ClusterNodeStatus | undefined;
}

export interface ClusterView {
  /** The newest map epoch: the published map's or a live agent's, whichever is newer. */
  epoch: number;
  members: MemberView[];
}

export function clusterView(
  published: ClusterMap | undefined,
  nodes: readonly ClusterNode[],
  livenessOf: (node: string) => Liveness,
): ClusterView {
  const byId = new Map(nodes.map((cn) => [cn.metadata?.name ?? "", cn]));
  const reports: NodeReport[] = nodes.map((cn) => {
    const id = cn.metadata?.name ?? "";
    return { id, addresses: undefined, liveness: livenessOf(id), observed: cn.status?.observedMap };
  });
  const { held } = heldStates(published, reports);
  let epoch = published?.epoch ?? 0;
  for (const r of reports) if (r.liveness === "live") epoch = Math.max(epoch, r.observed?.epoch ?? 0);
  const members = (published?.nodes ?? []).map((n) => {
    const cn = byId.get(n.id);
    return {
      id: n.id,
      state: held.get(n.id)?.state ?? n.state,
      // No ClusterNode any more: nothing says its agent lives.
      liveness: cn === undefined ? ("lost" as const) : livenessOf(n.id),
      status: cn?.status,
    };
  });
  return { epoch, members };
}
