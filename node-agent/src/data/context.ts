// What the file layer needs from its agent, in one place.
import type { ClusterMap } from "../core/cluster-map.ts";
import type { VolumeSpec } from "../core/volume.ts";
import type { ReadCopyPieceIO } from "../load/read-copy-pieces.ts";
import type { Logger } from "../log.ts";
import type { DataMetrics } from "../metrics/agent-metrics.ts";
import type { PieceIO } from "./pieces.ts";

export interface DataContext {
  self: string;
  map: () => ClusterMap;
  volume: (name: string) => VolumeSpec | undefined;
  volumes: () => VolumeSpec[];
  pieces: PieceIO;
  log: Logger;
  /** Stripes encoded and sent (written) or fetched (read) concurrently per file. */
  stripesInFlight: number;
  /** Whether heartbeats say `node` is down (both channels silent): writes go around it without trying. */
  nodeDown?: (node: string) => boolean;
  /** Where degraded reads, rebuilt pieces and scrub repairs are counted (the agent's metrics); unset: nowhere. */
  metrics?: DataMetrics;
}

/** Up in the map and not known down by the heartbeats: a node worth asking now. */
export function reachableNode(ctx: Pick<DataContext, "nodeDown">, map: ClusterMap, node: string): boolean {
  return map.nodes.find((n) => n.id === node)?.state === "up" && ctx.nodeDown?.(node) !== true;
}

/** What reading a file needs: any party that can fetch pieces can read (an agent, or a client fetching from holders itself). */
export type ReadContext = Pick<
  DataContext,
  "self" | "map" | "log" | "stripesInFlight" | "nodeDown" | "metrics"
> & {
  /**
   * rankByLoad: the agent's holder choice by load; a client without levels keeps the reader's order.
   * readHolders: a replicated stripe's placed holders, or an erasure-coded data slot's one, then their
   *   serving read copies (load/read-copies.ts); without it, the placed holders alone.
   * getRange: a byte range of a piece (checked by its own crc32c); without it, whole pieces are fetched.
   */
  pieces: Pick<PieceIO, "get"> &
    Partial<Pick<PieceIO, "rankByLoad" | "getRange">> &
    Partial<Pick<ReadCopyPieceIO, "readHolders">>;
};
