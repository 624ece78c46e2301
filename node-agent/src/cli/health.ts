// What a file's piece states add up to: pieces per node by kind and state,
// and one verdict — healthy, degraded (still readable) or unreadable. Pure:
// the input is the agent's stat reply.
import type { FileManifest } from "../core/manifest.ts";
import { layoutOf } from "../core/volume.ts";
import type { PieceState } from "../data/file-service.ts";

export type PieceKind = "data" | "parity" | "replica";
export type PieceCondition = PieceState["state"];

export interface NodePieces {
  node: string;
  kinds: Record<PieceKind, number>;
  states: Record<PieceCondition, number>;
  total: number;
}

export interface Health {
  verdict: "healthy" | "degraded" | "unreadable";
  pieces: number;
  badPieces: number;
  unreadableStripes: number[];
  line: string;
}

/** Erasure: slots below k carry data, the rest parity. Replicas: every slot is a whole copy. */
export function pieceKind(manifest: FileManifest, slot: number): PieceKind {
  const layout = layoutOf(manifest);
  if (layout.kind === "replicas") return "replica";
  return slot < layout.dataPieces ? "data" : "parity";
}

export function piecesByNode(manifest: FileManifest, pieces: PieceState[]): NodePieces[] {
  const byNode = new Map<string, NodePieces>();
  for (const piece of pieces) {
    let entry = byNode.get(piece.node);
    if (entry === undefined) {
      entry = {
        node: piece.node,
        kinds: { data: 0, parity: 0, replica: 0 },
        states: { ok: 0, missing: 0, unreachable: 0, corrupt: 0 },
        total: 0,
      };
      byNode.set(piece.node, entry);
    }
    entry.kinds[pieceKind(manifest, piece.slot)] += 1;
    entry.states[piece.state] += 1;
    entry.total += 1;
  }
  return [...byNode.values()].sort((a, b) => a.node.localeCompare(b.node, "en", { numeric: true }));
}

/** A stripe reads while it keeps k good pieces (erasure) or one good copy (replicas). */
export function fileHealth(manifest: FileManifest, pieces: PieceState[]): Health {
  const layout = layoutOf(manifest);
  const needed = layout.kind === "replicas" ? 1 : layout.dataPieces;
  const good = new Map<number, number>();
  for (let s = 0; s < manifest.stripes; s++) good.set(s, 0);
  for (const p of pieces) if (p.state === "ok") good.set(p.stripe, (good.get(p.stripe) ?? 0) + 1);
  const unreadableStripes = [...good].filter(([, n]) => n < needed).map(([s]) => s);
  const badPieces = pieces.filter((p) => p.state !== "ok").length;
  const total = pieces.length;
  if (unreadableStripes.length > 0) {
    return {
      verdict: "unreadable",
      pieces: total,
      badPieces,
      unreadableStripes,
      line:
        `unreadable: ${unreadableStripes.length} of ${manifest.stripes} stripes have fewer than ` +
        `${needed} good piece${needed === 1 ? "" : "s"} (${badPieces} of ${total} pieces not ok)`,
    };
  }
  if (badPieces > 0) {
    return {
      verdict: "degraded",
      pieces: total,
      badPieces,
      unreadableStripes,
      line: `degraded: ${badPieces} of ${total} pieces not ok; every stripe still reads`,
    };
  }
  return {
    verdict: "healthy",
    pieces: total,
    badPieces,
    unreadableStripes,
    line: `healthy: all ${total} pieces ok`,
  };
}
