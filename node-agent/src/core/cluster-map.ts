// The cluster map: every node Mosaic knows, its two channel addresses and its
// state, under an epoch that grows with every change. Placement reads only
// this, so any agent (or client) holding the same map computes the same
// locations.
import { createHash } from "node:crypto";

/** up: serving. down: unreachable for now, keeps its pieces. out: gone; its pieces are placed elsewhere. */
export type NodeState = "up" | "down" | "out";

export interface NodeEntry {
  id: string;
  /** host:port of channel A and channel B (two NICs in a cluster, two loopback addresses locally). */
  addresses: [string, string];
  state: NodeState;
  /** Epoch at which the node went out: replacements are chosen in this order, so earlier choices stay put. */
  outEpoch?: number;
}

export interface ClusterMap {
  epoch: number;
  nodes: NodeEntry[];
}

export function nodeById(map: ClusterMap, id: string): NodeEntry | undefined {
  return map.nodes.find((n) => n.id === id);
}

/** A new map in which `id` is out, at the next epoch. */
export function withNodeOut(map: ClusterMap, id: string): ClusterMap {
  const epoch = map.epoch + 1;
  return {
    epoch,
    nodes: map.nodes.map((n) => (n.id === id ? { ...n, state: "out", outEpoch: epoch } : n)),
  };
}

export function withNodeState(map: ClusterMap, id: string, state: Exclude<NodeState, "out">): ClusterMap {
  return {
    epoch: map.epoch + 1,
    nodes: map.nodes.map((n) => {
      if (n.id !== id) return n;
      const { outEpoch: _gone, ...rest } = n;
      return { ...rest, state };
    }),
  };
}

/**
 * 16 hex digits naming a map's content (epoch, and every node's id, addresses,
 * state and outEpoch, in id order): agents compare digests, not whole maps.
 */
export function mapDigest(map: ClusterMap): string {
  const nodes = [...map.nodes]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((n) => [n.id, n.addresses, n.state, n.outEpoch ?? 0]);
  return createHash("sha256")
    .update(JSON.stringify([map.epoch, nodes]))
    .digest("hex")
    .slice(0, 16);
}
