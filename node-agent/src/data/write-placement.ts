// Where one write puts its pieces: placement over the cluster map as the
// write began, with the holders it finds unreachable treated as out (the
// degraded-write rule). A write never stores a stripe short of a piece: the
// slot of a node that cannot be reached goes to the node placement would
// choose if that node were out, one not already in the stripe. Nodes the map
// or heartbeats already have down are gone around from the first stripe, at
// no cost; one found down by a failed put costs at most a reconnect backoff
// (file-writer.ts). Fewer reachable nodes than a stripe is wide: refused.
import type { ClusterMap } from "../core/cluster-map.ts";
import { placeFileStripe } from "../core/file-placement.ts";
import { MANIFEST_STRIPE } from "../core/placement.ts";
import { describeRedundancy, layoutOf, type VolumeSpec } from "../core/volume.ts";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";

export class WritePlacer {
  readonly #map: ClusterMap;
  readonly #spec: VolumeSpec;
  readonly #fileId: string;
  readonly #width: number;
  readonly #log: Logger;
  #around: string[] = [];
  /** Per holder, its one reconnect wait in this write (see reconnectWait). */
  readonly #waits = new Map<string, { ready: Promise<boolean>; settled: boolean }>();

  /** `down`: nodes heartbeats already know are down; the write goes around them (and those the map has down) from its first stripe. */
  constructor(
    map: ClusterMap,
    spec: VolumeSpec,
    fileId: string,
    down: (node: string) => boolean,
    log: Logger,
  ) {
    this.#map = map;
    this.#spec = spec;
    this.#fileId = fileId;
    this.#width = layoutOf(spec).width;
    this.#log = log;
    for (const node of map.nodes) {
      if (node.state === "down" || (node.state === "up" && down(node.id))) this.#around.push(node.id);
    }
    this.#refuseBelowRedundancy(this.#around);
    if (this.#around.length > 0) log.debug({ down: this.#around }, "writing around nodes known to be down");
  }

  /** The nodes this write treats as out, in the order it found them unreachable (the manifest's writtenAround). */
  get around(): readonly string[] {
    return this.#around;
  }

  /** Node of each slot of `stripe` (MANIFEST_STRIPE: the manifest copies), as this write places it now. */
  place(stripe: number, around: readonly string[] = this.#around): string[] {
    return placeFileStripe(
      this.#map,
      {
        volume: this.#spec.name,
        fileId: this.#fileId,
        chunkSizeBytes: this.#spec.chunkSizeBytes,
        redundancy: this.#spec.redundancy,
        writtenAround: around,
      },
      stripe,
    );
  }

  /**
   * Forgets the nodes gone around that moved no piece of this file's
   * `stripes` (heartbeats said they were down, but no stripe would have used
   * them): the manifest names only nodes whose return moves something.
   */
  trim(stripes: number): void {
    for (const node of [...this.#around]) {
      const without = this.#around.filter((n) => n !== node);
      let same = true;
      for (let stripe = MANIFEST_STRIPE; same && stripe < stripes; stripe++) {
        const a = this.place(stripe);
        const b = this.place(stripe, without);
        same = a.every((n, slot) => n === b[slot]);
      }
      if (same) this.#around = without;
    }
  }

  /**
   * A put to `node` failed: whether to try it again. A holder gets one
   * reconnect wait per write (a node that just started may still be in its
   * peers' reconnect backoff): `connect` starts it, and every put that failed
   * before it ended shares its answer, since stripes fail together; a failure
   * after it ended means the node is gone around.
   */
  async retryAfterReconnect(node: string, connect: () => Promise<boolean>): Promise<boolean> {
    let wait = this.#waits.get(node);
    if (wait === undefined) {
      const ready = connect().catch(() => false);
      const started = { ready, settled: false };
      void ready.then(() => {
        started.settled = true;
      });
      this.#waits.set(node, started);
      wait = started;
    } else if (wait.settled) {
      return false;
    }
    return wait.ready;
  }

  /** `node` could not be reached: its slots go elsewhere from now on. Throws BELOW_REDUNDANCY when too few remain. */
  goAround(node: string, reason: string): void {
    if (this.#around.includes(node)) return;
    const around = [...this.#around, node];
    // Checked before it counts: stripes placed meanwhile must still find a full set of nodes.
    this.#refuseBelowRedundancy(around, `${reason.startsWith(`${node}: `) ? reason : `${node}: ${reason}`}`);
    this.#around = around;
    this.#log.warn({ holder: node, reason }, "holder unreachable; writing around it");
  }

  #refuseBelowRedundancy(around: readonly string[], why?: string): void {
    const reachable = this.#map.nodes.filter((n) => n.state !== "out" && !around.includes(n.id));
    if (reachable.length >= this.#width) return;
    const out = this.#map.nodes.filter((n) => n.state === "out").map((n) => n.id);
    throw new MosaicError(
      "MOSAIC_ERR_BELOW_REDUNDANCY",
      `volume ${this.#spec.name} needs ${this.#width} nodes for full redundancy ` +
        `(${describeRedundancy(this.#spec.redundancy)}); only ${reachable.length} are reachable ` +
        `(down: ${around.join(", ") || "none"}${out.length > 0 ? `; out: ${out.join(", ")}` : ""}` +
        `${why === undefined ? "" : `; ${why}`}) — nothing was stored`,
    );
  }
}
