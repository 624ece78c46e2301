// Who holds a file's manifest, and who coordinates its writes: pure
// functions of the cluster map, so agents and clients agree without asking.
import type { ClusterMap } from "./cluster-map.ts";
import { MANIFEST_STRIPE, placeStripe } from "./placement.ts";
import { layoutOf, type Redundancy } from "./volume.ts";

/** Manifest copies: one more than the failures the data survives, so the manifest survives them too. */
export function manifestHolders(
  map: ClusterMap,
  volume: string,
  fileId: string,
  redundancy: Redundancy,
): string[] {
  const layout = layoutOf({ chunkSizeBytes: 1, redundancy });
  return placeStripe(map, { volume, fileId, stripe: MANIFEST_STRIPE }, layout.redundantPieces + 1);
}

/** The node that coordinates writes of a file: its first manifest holder that is up. */
export function fileOwner(map: ClusterMap, volume: string, fileId: string, redundancy: Redundancy): string {
  const holders = manifestHolders(map, volume, fileId, redundancy);
  const states = new Map(map.nodes.map((n) => [n.id, n.state]));
  return holders.find((id) => states.get(id) === "up") ?? (holders[0] as string);
}
