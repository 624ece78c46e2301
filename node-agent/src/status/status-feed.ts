// The latest status snapshot and who wants to hear of the next one. A
// source publishes as often as it likes; listeners hear only changes
// (sameCluster ignores when a snapshot was taken), so a quiet cluster sends
// nothing down the page's event stream.
import { type StatusSnapshot, sameCluster } from "./view-model.ts";

export type SnapshotListener = (snapshot: StatusSnapshot) => void;

export class StatusFeed {
  #latest: StatusSnapshot | undefined;
  readonly #listeners = new Set<SnapshotListener>();

  get latest(): StatusSnapshot | undefined {
    return this.#latest;
  }

  /** Keeps `snapshot`; tells the listeners when the cluster changed. True when it did. */
  publish(snapshot: StatusSnapshot): boolean {
    const changed = this.#latest === undefined || !sameCluster(this.#latest, snapshot);
    this.#latest = snapshot;
    if (changed) for (const listener of this.#listeners) listener(snapshot);
    return changed;
  }

  /** Returns the unsubscribe. */
  subscribe(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get listeners(): number {
    return this.#listeners.size;
  }
}
