// The operator's side of StripedVolumes: each one's status, written from the
// cluster view (volume-status.ts says what from what). A framework handler
// that runs on every pass over a volume — its own events, resyncs, and every
// membership reconcile (ClusterNodes, Leases, the map: requeueAll), since
// the status follows those, not the volume's spec. It writes only when the
// status would say something new, and records an Event when the phase moves
// and when a node's count of temporary read copies does (ReadReplicaAdded,
// ReadReplicaRemoved).
//
// Deleting a volume deletes its data first: a finalizer holds the object
// while the agents, seeing it being deleted through their watch, remove its
// pieces and report so (ClusterNode status.deletedVolumes, and no pieces of
// it left in status.volumes). The finalizer goes once every live agent has.
// An agent that is silent meanwhile keeps its pieces: the volume does not
// wait for a node that may never come back (see README).
import type { ReadReplicas, StripedVolume } from "./api/types.ts";
import type { ClusterView } from "./cluster-view.ts";
import type { HandlerContext, KindHandlers } from "./framework/controller.ts";
import { STRIPED_VOLUMES } from "./framework/resources.ts";
import { DataStillHeld, piecesStillHeld } from "./volume-deletion.ts";
import {
  readReplicaChanges,
  statusSays,
  type VolumePhase,
  volumeStatus,
  withTransitionTimes,
} from "./volume-status.ts";

const WARNING_PHASES: ReadonlySet<VolumePhase> = new Set(["Degraded", "Failed"]);
export const VOLUME_DATA_FINALIZER = "mosaic.dev/volume-data";

export class StripedVolumeController {
  readonly #view: () => ClusterView;
  /** The phase last written per volume (uid): a cache lagging our own write must not repeat its Event. */
  readonly #phases = new Map<string, VolumePhase>();
  /** The read copies last written per volume (uid), for the same reason. */
  readonly #readReplicas = new Map<string, ReadReplicas | null | undefined>();
  /** Volumes whose deletion has been announced by an Event (once each). */
  readonly #deleting = new Set<string>();

  constructor(view: () => ClusterView) {
    this.#view = view;
  }

  handlers(): KindHandlers<StripedVolume> {
    return {
      resource: STRIPED_VOLUMES,
      finalizer: VOLUME_DATA_FINALIZER,
      reconcile: (sv, ctx) => this.#reconcile(sv, ctx),
      delete: (sv, ctx) => this.#delete(sv, ctx),
      // A deletion waits on the agents: retried soon, and on every membership change (requeueAll).
      backoff: { baseMs: 500, maxMs: 5_000 },
    };
  }

  /** Returns once no live agent holds the volume's data; throws (to be retried) while one does. */
  async #delete(sv: StripedVolume, ctx: HandlerContext): Promise<void> {
    const uid = sv.metadata?.uid ?? "";
    const { waiting, done, silent } = piecesStillHeld(sv, this.#view());
    if (waiting.length > 0) {
      if (!this.#deleting.has(uid)) {
        this.#deleting.add(uid);
        await ctx.event("Normal", "Deleting", `waiting for ${waiting.join(", ")} to remove its pieces`);
      }
      throw new DataStillHeld(waiting);
    }
    const left = silent.length === 0 ? "" : `; ${silent.join(", ")} silent, their pieces left where they are`;
    await ctx.event("Normal", "DataDeleted", `pieces removed from ${done.join(", ") || "no node"}${left}`);
    this.#deleting.delete(uid);
    this.#phases.delete(uid);
    this.#readReplicas.delete(uid);
  }

  async #reconcile(sv: StripedVolume, ctx: HandlerContext): Promise<void> {
    const { status, summary } = volumeStatus(sv, this.#view());
    const uid = sv.metadata?.uid ?? "";
    const before = this.#phases.get(uid) ?? sv.status?.phase;
    const copiesBefore = this.#readReplicas.has(uid) ? this.#readReplicas.get(uid) : sv.status?.readReplicas;
    if (!statusSays(sv.status, status)) {
      const conditions = withTransitionTimes(
        status.conditions,
        sv.status?.conditions,
        new Date().toISOString(),
      );
      await ctx.patchStatus({ ...status, conditions });
    }
    this.#phases.set(uid, status.phase);
    this.#readReplicas.set(uid, status.readReplicas);
    for (const { reason, message } of readReplicaChanges(copiesBefore, status.readReplicas))
      await ctx.event("Normal", reason, message);
    if (before !== status.phase) {
      ctx.log.info({ phase: status.phase, was: before, summary }, "volume phase changed");
      await ctx.event(WARNING_PHASES.has(status.phase) ? "Warning" : "Normal", status.phase, summary);
    }
  }
}
