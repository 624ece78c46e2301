// The heartbeat ring (seed 003) with k+1 neighbours (seed 004): over the sorted
// member list each node sends to its k+1 successors and watches its k+1
// predecessors. Messages per node per interval are 2·(k+1) whatever n is.
import { MosaicError } from "../errors.ts";

/** Members in ring order: sorted, without duplicates, so every node computes the same ring. */
export function ringOrder(members: readonly string[]): string[] {
  return [...new Set(members)].sort();
}

function indexIn(ring: readonly string[], self: string): number {
  const i = ring.indexOf(self);
  if (i < 0) throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `ring: ${self} is not a member`);
  return i;
}

function neighbours(ring: readonly string[], self: string, count: number, step: 1 | -1): string[] {
  if (!Number.isSafeInteger(count) || count < 0)
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `ring: bad neighbour count ${count}`);
  const at = indexIn(ring, self);
  const n = ring.length;
  // Fewer than count+1 members: every other member, once.
  const take = Math.min(count, n - 1);
  const out: string[] = [];
  for (let d = 1; d <= take; d++) out.push(ring[(((at + step * d) % n) + n) % n] as string);
  return out;
}

/** The k+1 nodes `self` sends heartbeats to (`ring` from ringOrder). */
export function successors(ring: readonly string[], self: string, toleratedLosses: number): string[] {
  return neighbours(ring, self, toleratedLosses + 1, 1);
}

/** The k+1 nodes `self` watches: exactly those whose successors include `self`. */
export function predecessors(ring: readonly string[], self: string, toleratedLosses: number): string[] {
  return neighbours(ring, self, toleratedLosses + 1, -1);
}
