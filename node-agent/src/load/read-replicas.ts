// Temporary read replicas of a hot piece (seed 002 §3.2–3.3: a back end is
// added when every one is High, and one is drained and removed when all are
// Low, after it finished the requests it had). Pure: the next step for one
// piece of a hot file (a replicated stripe, or one data slot of an
// erasure-coded stripe: pieceCopyTargets) from its holders' levels;
// storing, announcing and deleting the copies is the caller's.
//
// - Add: when every holder that takes reads (the placed ones and the
//   temporary copies serving) is High, one copy on the best node that holds
//   none and is not High (Low before Medium, then the caller's order: its
//   placement rank; the caller's fallback nodes only when no candidate
//   will do), up to `max` copies. One at a time: the next is added
//   only once the new copy turned High as well.
// - Drain: when every holder that takes reads is Low, the newest serving
//   copy stops taking new reads; the reads it has in flight finish.
// - Remove: a draining copy with no read in flight is deleted, or one whose
//   drain outlasted the caller's bound (`overdue`: a read stuck on a dead
//   connection must not keep a copy forever). A copy draining while its
//   stripe turns hot again serves again instead of a new one being made.
// - Copies are added only to a stripe being read (`read`): holders High
//   from other work are no reason to copy a file nobody reads.
// Between the two (some holder not High, some not Low) nothing changes: the
// gap between all-High and all-Low is this policy's hysteresis.
import type { ClusterMap } from "../core/cluster-map.ts";
import { placeStripe, type StripeKey } from "../core/placement.ts";
import type { StripeLayout } from "../core/volume.ts";
import type { LoadLevel } from "./level.ts";

export interface TempReplica {
  node: string;
  phase: "serving" | "draining";
  /** Reads of it in flight. */
  inFlight: number;
  /** Draining for longer than the caller waits for its reads: removed whatever is in flight. */
  overdue?: boolean;
}

export interface ReplicaState {
  /** Nodes the placement gives the stripe (its permanent holders), those likely to answer. */
  holders: readonly string[];
  /** Temporary copies, oldest first. */
  temps: readonly TempReplica[];
  /** Up nodes that hold no copy of it, best first (e.g. in placement order). */
  candidates: readonly string[];
  /** Up nodes to take only when no candidate is free and not High, best first (default none). */
  fallback?: readonly string[];
  levelOf: (node: string) => LoadLevel;
  /** Most temporary copies of one stripe. */
  max: number;
  /** Whether the stripe is being read now (default true): no copy is added to one that is not. */
  read?: boolean;
}

export type ReplicaStep =
  | { kind: "add"; node: string }
  | { kind: "serve"; node: string }
  | { kind: "drain"; node: string }
  | { kind: "remove"; node: string }
  | { kind: "none" };

export function nextReplicaStep(s: ReplicaState): ReplicaStep {
  const gone = s.temps.find((t) => t.phase === "draining" && (t.inFlight === 0 || t.overdue === true));
  if (gone !== undefined) return { kind: "remove", node: gone.node };
  const serving = [...s.holders, ...s.temps.filter((t) => t.phase === "serving").map((t) => t.node)];
  if (serving.length > 0 && serving.every((n) => s.levelOf(n) === "High")) {
    const again = s.temps.find((t) => t.phase === "draining" && s.levelOf(t.node) !== "High");
    if (again !== undefined) return { kind: "serve", node: again.node };
    if (s.temps.length >= s.max || s.read === false) return { kind: "none" };
    const taken = new Set([...s.holders, ...s.temps.map((t) => t.node)]);
    const pick = (nodes: readonly string[]) => {
      const free = nodes.filter((n) => !taken.has(n) && s.levelOf(n) !== "High");
      return free.find((n) => s.levelOf(n) === "Low") ?? free[0];
    };
    const best = pick(s.candidates) ?? pick(s.fallback ?? []);
    return best === undefined ? { kind: "none" } : { kind: "add", node: best };
  }
  const newest = s.temps.findLast((t) => t.phase === "serving");
  if (newest !== undefined && serving.every((n) => s.levelOf(n) === "Low"))
    return { kind: "drain", node: newest.node };
  return { kind: "none" };
}

/**
 * Where copies of a stripe may go, best first: the stripe's placement
 * extended over the whole map (rendezvous order, so every agent ranks alike
 * and a file's copies land where its pieces would move next), less its
 * placed holders and the nodes `usable` rejects (down, out, unheard).
 */
export function copyCandidates(
  map: ClusterMap,
  stripe: StripeKey,
  placed: readonly string[],
  usable: (node: string) => boolean,
): string[] {
  const ranked = placeStripe(map, stripe, map.nodes.length);
  return ranked.filter((node) => !placed.includes(node) && usable(node));
}

/** What one booked piece's step is decided from: the holders that take its reads, where a copy may go. */
export interface PieceTargets {
  holders: string[];
  candidates: string[];
  fallback: string[];
}

/**
 * The holders and copy targets of one piece of a stripe placed on `placed`.
 * Replicas (slot 0 stands for the stripe): every placed holder takes its
 * reads, and copies go to copyCandidates. Erasure: data slot `slot` has its
 * one placed holder; copies go to copyCandidates less the nodes holding a
 * copy of another slot of the stripe (`otherCopies`), and only when none of
 * those will do to a node holding another piece of the stripe: its parity
 * holders first, then the nodes with other slots' copies, then the other
 * data holders; never to the slot's own holder. A copy is never
 * redundancy, so this is about load alone: a reader fetches a stripe's
 * data pieces in parallel, so a copy beside another data piece (or its
 * copy) puts two of one read's fetches on one node, whose load rises with
 * the same reads that made the slot hot; a parity holder sees them only
 * when a piece fails.
 */
export function pieceCopyTargets(
  map: ClusterMap,
  layout: Pick<StripeLayout, "kind" | "dataPieces">,
  stripe: StripeKey,
  placed: readonly string[],
  slot: number,
  otherCopies: readonly string[],
  usable: (node: string) => boolean,
): PieceTargets {
  const candidates = copyCandidates(map, stripe, placed, usable);
  if (layout.kind === "replicas") return { holders: [...placed], candidates, fallback: [] };
  const own = placed[slot] as string;
  const fallback = [
    ...placed.slice(layout.dataPieces),
    ...otherCopies,
    ...placed.slice(0, layout.dataPieces),
  ].filter((n, i, all) => n !== own && usable(n) && all.indexOf(n) === i);
  return {
    holders: [own],
    candidates: candidates.filter((n) => !otherCopies.includes(n)),
    fallback,
  };
}

/** Whether `slot` names a piece that gets read copies: replicas: 0 (the stripe); erasure: a data slot. */
export function copiedSlot(layout: Pick<StripeLayout, "kind" | "dataPieces">, slot: number): boolean {
  return (
    Number.isSafeInteger(slot) && slot >= 0 && slot < (layout.kind === "replicas" ? 1 : layout.dataPieces)
  );
}

/** The holders a read may go to: the placed ones and the serving copies, never a draining one. */
export function readableHolders(holders: readonly string[], temps: readonly TempReplica[]): string[] {
  return [...holders, ...temps.filter((t) => t.phase === "serving").map((t) => t.node)];
}
