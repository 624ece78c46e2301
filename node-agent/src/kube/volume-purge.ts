// Deleting a StripedVolume's data from this node: once the volume is being
// deleted (it has left the agent's volume set, so no new piece of it is
// taken), every version of every file of it goes from the store, and the
// volume's uid is reported in ClusterNode status.deletedVolumes. The
// operator removes its finalizer, and the object goes, once every live agent
// reports it. A purge is done again if pieces of it show up afterwards (a
// write that was in flight), and forgotten once the object is gone.
import type { Logger } from "../log.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import type { DeletingVolume } from "./cluster-source.ts";

/** Removes every piece of `volume` from the store; returns the bytes freed. */
export async function purgeVolume(
  store: Pick<ChunkStore, "files" | "deleteVersions">,
  volume: string,
): Promise<number> {
  let freed = 0;
  for (const fileId of await store.files(volume))
    freed += await store.deleteVersions(volume, fileId, () => true);
  return freed;
}

export class VolumePurger {
  readonly #store: Pick<ChunkStore, "files" | "deleteVersions">;
  readonly #onChange: () => void;
  readonly #log: Logger;
  #deleting: DeletingVolume[] = [];
  readonly #purged = new Set<string>();
  #work: Promise<void> = Promise.resolve();

  constructor(options: {
    store: Pick<ChunkStore, "files" | "deleteVersions">;
    onChange: () => void;
    log: Logger;
  }) {
    this.#store = options.store;
    this.#onChange = options.onChange;
    this.#log = options.log.child({ component: "volume-purge" });
  }

  /** uids of the volumes being deleted that are gone from this node, in order. */
  get purged(): string[] {
    return this.#deleting.filter((v) => this.#purged.has(v.uid)).map((v) => v.uid);
  }

  /** The volumes being deleted now (ClusterSource.deleting()); purges the new ones. */
  deleting(volumes: DeletingVolume[]): Promise<void> {
    this.#deleting = volumes;
    const uids = new Set(volumes.map((v) => v.uid));
    for (const uid of this.#purged) if (!uids.has(uid)) this.#purged.delete(uid);
    return this.#run(volumes.filter((v) => !this.#purged.has(v.uid)));
  }

  /**
   * What a fresh walk of the store found (volume-report.ts): a volume being
   * deleted that still has pieces here (a purge that failed, or a write that
   * was in flight) is purged again.
   */
  held(scanned: readonly { name: string; pieces: number }[]): Promise<void> {
    const again = this.#deleting.filter((v) => scanned.some((h) => h.name === v.name && h.pieces > 0));
    for (const v of again) this.#purged.delete(v.uid);
    return this.#run(again);
  }

  #run(volumes: DeletingVolume[]): Promise<void> {
    if (volumes.length === 0) return this.#work;
    this.#work = this.#work.then(async () => {
      for (const v of volumes) {
        if (!this.#deleting.some((d) => d.uid === v.uid)) continue;
        try {
          const freedBytes = await purgeVolume(this.#store, v.name);
          this.#purged.add(v.uid);
          this.#log.info({ volume: v.name, freedBytes }, "volume being deleted: its pieces removed here");
        } catch (error) {
          this.#log.error({ volume: v.name, err: (error as Error).message }, "volume pieces not removed");
        }
      }
      this.#onChange();
    });
    return this.#work;
  }
}
