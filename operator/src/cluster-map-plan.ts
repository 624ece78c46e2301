// The cluster map the operator should publish, from what Kubernetes knows
// (each agent's Lease and ClusterNode) and what the agents hold (each reports
// its map in ClusterNode status.observedMap). Pure.
//
// The operator owns membership; the agents own up and down:
//   - a node joins the map once its agent reports both addresses with a live
//     Lease; new addresses are published;
//   - a node whose Lease has been expired past the grace is Lost: out, and
//     the agents' rebuild places its pieces elsewhere;
//   - a node out of the map whose Lease is live again returns: up;
//   - down and up are the agents' (heartbeats, in under a second). A map the
//     operator publishes for any of the reasons above keeps every down the
//     agents agreed on, and marks down the nodes whose Lease expired, so it
//     never brings back a node they know is gone; it never publishes for a
//     down alone, so it cannot fight them over one.
// Epochs never go back: a new map is one above both the last published and
// the newest any agent reports. Agents that agreed on a map of the same epoch
// before ours reached them kept theirs (newest epoch wins, and ours was not
// newer): their report then names a base older than our map, and we publish
// again above theirs.
import type { ClusterMap, NodeEntry, NodeState } from "../../node-agent/src/core/cluster-map.ts";
import type { ObservedMap } from "./api/crds.generated.ts";
import type { Liveness } from "./lease-clock.ts";

export interface NodeReport {
  id: string;
  /** Channel A and B as its agent reported them; undefined until it has reported both. */
  addresses: [string, string] | undefined;
  liveness: Liveness;
  /** The map its agent holds (ClusterNode status.observedMap). */
  observed: ObservedMap | undefined;
}

export type ChangeKind = "joined" | "lost" | "returned" | "moved";

export interface MembershipChange {
  node: string;
  kind: ChangeKind;
}

export interface MapPlan {
  /** The map to publish now; undefined when the agents already hold the membership Kubernetes wants. */
  publish: ClusterMap | undefined;
  changes: MembershipChange[];
  /** The agents settled on a map not grown from our last one: republished above it. */
  superseded: boolean;
}

interface Held {
  state: NodeState;
  outEpoch?: number;
}

/** What the agents hold, as best their reports tell: the freshest live agent's view of our last map. */
export function heldStates(published: ClusterMap | undefined, reports: readonly NodeReport[]) {
  const held = new Map<string, Held>(
    (published?.nodes ?? []).map((n) => [
      n.id,
      n.outEpoch === undefined ? { state: n.state } : { state: n.state, outEpoch: n.outEpoch },
    ]),
  );
  const publishedEpoch = published?.epoch ?? 0;
  let view: ObservedMap | undefined;
  for (const r of reports) {
    if (r.liveness !== "live" || r.observed?.epoch === undefined) continue;
    if (view === undefined || r.observed.epoch > (view.epoch ?? 0)) view = r.observed;
  }
  const viewEpoch = view?.epoch ?? 0;
  const superseded =
    published !== undefined && viewEpoch >= publishedEpoch && (view?.baseEpoch ?? 0) < publishedEpoch;
  if (view !== undefined && published !== undefined && viewEpoch >= publishedEpoch && !superseded) {
    const down = new Set(view.down ?? []);
    const out = new Map((view.out ?? []).map((o) => [o.node, o.outEpoch]));
    for (const [id] of held) {
      const outEpoch = out.get(id);
      held.set(
        id,
        outEpoch !== undefined ? { state: "out", outEpoch } : { state: down.has(id) ? "down" : "up" },
      );
    }
  }
  return { held, superseded };
}

export function planClusterMap(published: ClusterMap | undefined, reports: readonly NodeReport[]): MapPlan {
  const { held, superseded } = heldStates(published, reports);
  const byId = new Map(reports.map((r) => [r.id, r]));
  const before = new Map((published?.nodes ?? []).map((n) => [n.id, n]));
  const epoch = Math.max(published?.epoch ?? 0, ...reports.map((r) => r.observed?.epoch ?? 0)) + 1;
  const ids = new Set([
    ...before.keys(),
    ...reports.filter((r) => r.addresses !== undefined).map((r) => r.id),
  ]);
  const nodes: NodeEntry[] = [];
  const changes: MembershipChange[] = [];
  for (const id of [...ids].sort()) {
    const report = byId.get(id);
    const prior = before.get(id);
    const addresses = report?.addresses ?? prior?.addresses;
    // No ClusterNode any more: nothing says its agent lives.
    const liveness = report?.liveness ?? "lost";
    const h = held.get(id);
    if (addresses === undefined) continue;
    if (prior === undefined && liveness !== "live") continue; // never a member, and not alive now
    let entry: NodeEntry;
    if (liveness === "lost" || (liveness === "down" && h?.state === "out")) {
      entry = { id, addresses, state: "out", outEpoch: h?.state === "out" ? (h.outEpoch ?? epoch) : epoch };
      if (h?.state !== "out") changes.push({ node: id, kind: "lost" });
    } else {
      entry = { id, addresses, state: liveness === "down" || h?.state === "down" ? "down" : "up" };
      if (prior === undefined) changes.push({ node: id, kind: "joined" });
      else if (h?.state === "out") changes.push({ node: id, kind: "returned" });
    }
    if (prior !== undefined && (prior.addresses[0] !== addresses[0] || prior.addresses[1] !== addresses[1]))
      changes.push({ node: id, kind: "moved" });
    nodes.push(entry);
  }
  const first = published === undefined && nodes.some((n) => n.state === "up");
  const publish = changes.length > 0 || superseded || first;
  return { publish: publish ? { epoch, nodes } : undefined, changes, superseded };
}
