// Where one file's pieces live: placement (placement.ts) over the cluster map
// as the file's write saw it. A write that found nodes unreachable placed
// their slots as if they were out (the manifest lists them in writtenAround);
// readers, the scrubber and the rebuild place the file the same way, so every
// piece is found where it was written, at full redundancy. Pure.
import type { ClusterMap } from "./cluster-map.ts";
import type { FileManifest } from "./manifest.ts";
import { MANIFEST_STRIPE, placeStripe } from "./placement.ts";
import { layoutOf } from "./volume.ts";

/** What placing a file's pieces needs from its manifest. */
export type PlacedFile = Pick<FileManifest, "volume" | "fileId" | "chunkSizeBytes" | "redundancy"> & {
  writtenAround?: readonly string[] | undefined;
};

/**
 * `map` with the nodes in `around` out as well. They take their replacements
 * before any node the map has out (negative outEpochs, in the order given),
 * whatever the map later says about them: the writer placed them so, and a
 * node that leaves the map after the write comes after them, as it did for
 * every other file. So the same manifest places the same way under every
 * later map, except where a later departure forces a move.
 */
export function mapAround(map: ClusterMap, around: readonly string[] | undefined): ClusterMap {
  if (around === undefined || around.length === 0) return map;
  const rank = new Map(around.map((id, i) => [id, i - around.length]));
  return {
    epoch: map.epoch,
    nodes: map.nodes.map((n) => {
      const outEpoch = rank.get(n.id);
      return outEpoch === undefined ? n : { ...n, state: "out" as const, outEpoch };
    }),
  };
}

/** Node ids of a stripe's slots (MANIFEST_STRIPE: the manifest copies), as this file is placed. */
export function placeFileStripe(map: ClusterMap, file: PlacedFile, stripe: number): string[] {
  const layout = layoutOf(file);
  const width = stripe === MANIFEST_STRIPE ? layout.redundantPieces + 1 : layout.width;
  return placeStripe(
    mapAround(map, file.writtenAround),
    { volume: file.volume, fileId: file.fileId, stripe },
    width,
  );
}
