// How the operator publishes the cluster map and how agents read it: the
// ConfigMap `mosaic-cluster-map` in the operator's namespace, with the map as
// JSON under `map.json`, in the shape of node-agent/src/core/cluster-map.ts
// ({epoch, nodes: [{id, addresses: [a, b], state, outEpoch?}]}).
//
// Why a ConfigMap (DESIGN.md §4 leaves the choice to us):
// - One object, changed only when membership changes (a node joins, is Lost,
//   returns, moves address): every agent watches exactly it, by name, so an
//   idle cluster sends agents no watch events at all. Agents computing the map
//   themselves from every ClusterNode and Lease would each watch every Lease
//   renewal: N agents × N leases renewed every few seconds (100 nodes, 5 s:
//   2,000 watch events a second across the cluster, for nothing).
// - RBAC can grant agents `get, list, watch` on that one name (resourceNames)
//   and nothing else of the namespace.
// - 1,000 nodes with 40-character names encode to 117 KB (measured), well
//   inside a ConfigMap's 1 MiB; `kubectl get cm mosaic-cluster-map -o yaml`
//   reads it.
// - A custom kind would add a CRD, types and RBAC for one object with no spec.
import type { ClusterMap, NodeEntry } from "../../../node-agent/src/core/cluster-map.ts";
import type { Resource } from "../framework/resources.ts";

export const CLUSTER_MAP_CONFIGMAP = "mosaic-cluster-map";
export const CLUSTER_MAP_KEY = "map.json";
/** Watch exactly the map's ConfigMap (RBAC grants agents only that name). */
export const CLUSTER_MAP_SELECTOR = `metadata.name=${CLUSTER_MAP_CONFIGMAP}`;

export const CONFIG_MAPS: Resource = {
  group: "",
  version: "v1",
  plural: "configmaps",
  kind: "ConfigMap",
  namespaced: true,
};

/** The ConfigMap's text: one node per line, so `kubectl get -o yaml` and diffs stay readable. */
export function encodeClusterMap(map: ClusterMap): string {
  const nodes = map.nodes.map((n) => `    ${JSON.stringify(n)}`).join(",\n");
  return `{\n  "epoch": ${map.epoch},\n  "nodes": [\n${nodes}\n  ]\n}\n`;
}

/** Parses and checks a published map; throws an Error naming `where` and the first thing wrong. */
export function decodeClusterMap(text: string, where: string): ClusterMap {
  const bad = (why: string) => new Error(`cluster map in ${where}: ${why}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw bad(`not JSON (${(error as Error).message})`);
  }
  const m = value as Partial<ClusterMap> | null;
  if (typeof m !== "object" || m === null) throw bad("not an object");
  if (!Number.isSafeInteger(m.epoch) || (m.epoch as number) < 0) throw bad("epoch must be an integer ≥ 0");
  if (!Array.isArray(m.nodes)) throw bad("nodes must be a list");
  const seen = new Set<string>();
  for (const n of m.nodes as Partial<NodeEntry>[]) {
    if (typeof n?.id !== "string" || n.id === "") throw bad("every node needs an id");
    if (seen.has(n.id)) throw bad(`node ${n.id} listed twice`);
    seen.add(n.id);
    const a = n.addresses;
    if (!Array.isArray(a) || a.length !== 2 || !a.every((x) => typeof x === "string" && /^\S+:\d+$/.test(x)))
      throw bad(`node ${n.id} needs two host:port addresses (channel A and B)`);
    if (n.state !== "up" && n.state !== "down" && n.state !== "out")
      throw bad(`node ${n.id}: state must be up, down or out`);
    const outEpochOk =
      n.state === "out"
        ? Number.isSafeInteger(n.outEpoch) && (n.outEpoch as number) >= 1
        : n.outEpoch === undefined;
    if (!outEpochOk) throw bad(`node ${n.id}: outEpoch (an integer ≥ 1) is set exactly when it is out`);
  }
  return m as ClusterMap;
}
