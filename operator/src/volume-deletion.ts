// Whether a StripedVolume being deleted may go: pure. Every live agent (its
// Lease renewed, whatever its state in the map) must report the volume's uid
// in status.deletedVolumes — it saw the deletion and removed its pieces —
// and no piece of it left in status.volumes. Silent agents are not waited
// for: their pieces stay where they are.
import type { StripedVolume } from "./api/types.ts";
import type { ClusterView } from "./cluster-view.ts";

export interface DeletionProgress {
  /** Live agents that have not yet removed the volume's pieces. */
  waiting: string[];
  /** Live agents that have. */
  done: string[];
  /** Agents not heard from (Lease lapsed): not waited for. */
  silent: string[];
}

export function piecesStillHeld(sv: StripedVolume, view: ClusterView): DeletionProgress {
  const name = sv.metadata?.name ?? "";
  const uid = sv.metadata?.uid ?? "";
  const progress: DeletionProgress = { waiting: [], done: [], silent: [] };
  for (const m of view.members) {
    if (m.liveness !== "live") {
      progress.silent.push(m.id);
      continue;
    }
    const acknowledged = (m.status?.deletedVolumes ?? []).includes(uid);
    const holds = (m.status?.volumes ?? []).some((v) => v.name === name && v.pieces > 0);
    (acknowledged && !holds ? progress.done : progress.waiting).push(m.id);
  }
  return progress;
}

/** Thrown by the delete handler while agents still hold data: the work queue retries it. */
export class DataStillHeld extends Error {
  constructor(waiting: string[]) {
    super(`waiting for ${waiting.join(", ")} to remove the volume's pieces`);
  }
}
