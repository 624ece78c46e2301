// The agent's rebuild as its ClusterNode reports it (status.rebuild), and
// when a new report is due. Pure. The operator reads two things from it:
// whether pieces are moving (and how fast), and the newest map epoch at
// which this node had nothing left to pull — all it needs to call a volume
// Healthy again after a map change.
import { isDeepStrictEqual } from "node:util";
import type { NodeRebuild } from "@mosaic/operator/api/crds.generated.ts";
import type { RebuildProgress } from "../data/rebuild.ts";

/** Every field always present (zero when idle): a merge patch then never leaves a stale figure behind. */
export type NodeRebuildReport = Required<NodeRebuild>;

/** `settledEpoch` is the last report's: a settled epoch is remembered until a newer one settles. */
export function nodeRebuildOf(
  progress: RebuildProgress | undefined,
  settledEpoch: number,
): NodeRebuildReport {
  if (progress === undefined)
    return {
      state: "Off",
      epoch: 0,
      settledEpoch: 0,
      bytesLeft: 0,
      bytesPerSecond: 0,
      etaSeconds: 0,
      volumes: [],
    };
  // A finished pass with nothing pending: everything placement puts here is here, at that epoch.
  const settled = progress.state === "idle" && progress.passes > 0 && progress.pending === 0;
  const pulling = progress.state === "rebuilding" && progress.bytesLeft > 0;
  return {
    state: pulling ? "Rebuilding" : "Idle",
    epoch: progress.epoch,
    settledEpoch: settled ? Math.max(settledEpoch, progress.epoch) : settledEpoch,
    bytesLeft: pulling ? progress.bytesLeft : 0,
    bytesPerSecond: pulling ? progress.rateBytesPerSecond : 0,
    // 0 while no rate is measured: the operator reads an ETA only beside a rate.
    etaSeconds: pulling ? (progress.etaSeconds ?? 0) : 0,
    volumes: pulling
      ? Object.entries(progress.volumes)
          .filter(([, v]) => v.bytesLeft > 0)
          .map(([name, v]) => ({ name, bytesLeft: v.bytesLeft }))
          .sort((a, b) => (a.name < b.name ? -1 : 1))
      : [],
  };
}

/**
 * A transition (state, epoch, settled epoch) is due at once, and so is the
 * first measured rate of a rebuild (it starts at 0: nothing measured yet);
 * moving figures otherwise at most every `everyMs`.
 */
export function isTransition(next: NodeRebuildReport, last: NodeRebuildReport | undefined): boolean {
  return (
    last === undefined ||
    next.state !== last.state ||
    next.epoch !== last.epoch ||
    next.settledEpoch !== last.settledEpoch
  );
}

export function rebuildReportDue(
  next: NodeRebuildReport,
  last: NodeRebuildReport | undefined,
  msSinceLast: number,
  everyMs: number,
): boolean {
  const firstRate = last !== undefined && last.bytesPerSecond === 0 && next.bytesPerSecond > 0;
  return isTransition(next, last) || firstRate || (!isDeepStrictEqual(next, last) && msSinceLast >= everyMs);
}
