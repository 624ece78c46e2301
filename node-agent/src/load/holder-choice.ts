// Which holder of a piece to ask first, by load (seed 002 §3.3): a Low
// holder gets the reads until it turns Medium; once none is Low they go
// round-robin among the Medium ones; a High holder is asked only when every
// holder is High (round-robin then too). Pure: the levels and the turn come
// from the caller (data/pieces.ts).
//
// It only reorders the holders the caller already ranked as likely to
// answer (a holder down, out, or silent stays last, after all of these), and
// keeps the caller's order among Low holders, so with every holder Low the
// reads go exactly where they went before (the local copy, or a holder that
// rotates with the stripe).
import type { LoadLevel } from "./level.ts";

/**
 * `candidates` (in the caller's order of preference) in the order to ask
 * them: Low ones in the caller's order, then Medium ones and last High ones,
 * each group rotated by `turn` (a counter the caller advances per choice) so
 * that successive choices take them in turn. For an erasure-coded stripe,
 * the first k of the result are the pieces to fetch.
 */
export function rankByLoad<T>(
  candidates: readonly T[],
  levelOf: (candidate: T) => LoadLevel,
  turn: number,
): T[] {
  const groups: Record<LoadLevel, T[]> = { Low: [], Medium: [], High: [] };
  for (const c of candidates) groups[levelOf(c)].push(c);
  return [...groups.Low, ...rotate(groups.Medium, turn), ...rotate(groups.High, turn)];
}

function rotate<T>(items: readonly T[], turn: number): T[] {
  if (items.length < 2) return [...items];
  const at = ((turn % items.length) + items.length) % items.length;
  return [...items.slice(at), ...items.slice(0, at)];
}
