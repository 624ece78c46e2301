// Placement: which node holds each slot of a stripe. A pure function of the
// stripe's key and the cluster map (rendezvous hashing), so nothing per chunk
// is stored and any agent computes the same answer.
//
// Base assignment: slot by slot, the highest-scoring node not yet chosen,
// over every node in the map including those that are out. Then each slot
// whose base node is out takes the highest-scoring live node not already in
// the stripe, in the order the nodes went out. Because the base never changes
// when a node leaves, only the departed node's pieces move, and never two
// pieces of a stripe land on one node.
//
// With fewer live nodes than the stripe is wide, the slots no live node can
// take stay with their departed node: readers find those pieces missing and
// read degraded from the rest, writers refuse (below redundancy), and the
// slots move as soon as a node joins. Refusing the placement itself would
// make every file unreadable the moment one node too many is out.
import { crc32c } from "@node-rs/crc32";
import { MosaicError } from "../errors.ts";
import type { ClusterMap, NodeEntry } from "./cluster-map.ts";

export interface StripeKey {
  volume: string;
  fileId: string;
  /** Stripe index, or MANIFEST_STRIPE for the file's manifest copies. */
  stripe: number;
}

export const MANIFEST_STRIPE = -1;

/** Node ids, indexed by slot; a slot may name an out node when too few are live (see above). */
export function placeStripe(map: ClusterMap, key: StripeKey, width: number): string[] {
  if (map.nodes.length < width) {
    throw new MosaicError(
      "MOSAIC_ERR_NOT_ENOUGH_NODES",
      `a stripe of ${width} pieces needs ${width} nodes; the cluster map (epoch ${map.epoch}) has ${map.nodes.length}`,
    );
  }
  const live = map.nodes.filter((n) => n.state !== "out");
  const keyHash = crc32c(`${key.volume}\u0000${key.fileId}\u0000${key.stripe}`);
  const nodeHashes = new Map(map.nodes.map((n) => [n.id, crc32c(n.id)]));
  const score = (slot: number, node: NodeEntry) =>
    fmix32(fmix32((keyHash ^ Math.imul(slot + 1, 0x9e3779b1)) >>> 0) ^ (nodeHashes.get(node.id) as number));

  const chosen = new Set<string>();
  const best = (slot: number, candidates: NodeEntry[]): NodeEntry | undefined => {
    let top: NodeEntry | undefined;
    let topScore = -1;
    for (const node of candidates) {
      if (chosen.has(node.id)) continue;
      const s = score(slot, node);
      if (s > topScore || (s === topScore && top !== undefined && node.id < top.id)) {
        top = node;
        topScore = s;
      }
    }
    return top;
  };

  const base: NodeEntry[] = [];
  for (let slot = 0; slot < width; slot++) {
    const node = best(slot, map.nodes) as NodeEntry; // map.nodes has at least `width`
    base.push(node);
    chosen.add(node.id);
  }
  const vacated = base
    .map((node, slot) => ({ node, slot }))
    .filter(({ node }) => node.state === "out")
    .sort((a, b) => (a.node.outEpoch ?? 0) - (b.node.outEpoch ?? 0) || (a.node.id < b.node.id ? -1 : 1));
  for (const { slot } of vacated) {
    const node = best(slot, live);
    if (node === undefined) break; // every live node already holds a slot of this stripe
    base[slot] = node;
    chosen.add(node.id);
  }
  return base.map((n) => n.id);
}

/** murmur3's finaliser: spreads every input bit over the whole word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
