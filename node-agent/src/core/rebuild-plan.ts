// What the rebuild compares a node's pieces against: for every slot of a
// file's current version (its manifest copies first), where readers look for
// it now, where it belongs, and where the previous map had it. Pure.
import type { ClusterMap } from "./cluster-map.ts";
import { placeFileStripe } from "./file-placement.ts";
import type { FileManifest } from "./manifest.ts";
import { MANIFEST_STRIPE } from "./placement.ts";

export interface SlotPlacement {
  /** MANIFEST_STRIPE (-1) for a manifest copy. */
  stripe: number;
  slot: number;
  /** Where readers look for it: the file's placement as its manifest stands (around the nodes it names). */
  read: string;
  /**
   * Where it belongs: `read`, except that a node the write went around and
   * that is back takes its slots home again. The file's owner rewrites the
   * manifest without that node once every such slot is home; readers follow.
   */
  target: string;
  /** Where the previous map placed it, when that differs: a node that may still hold it whole. */
  previous: string | undefined;
}

/** The nodes in the manifest's writtenAround that are not back: the file's placement once the others are home. */
export function aroundStill(manifest: FileManifest, back: (node: string) => boolean): string[] {
  return (manifest.writtenAround ?? []).filter((node) => !back(node));
}

export function* slotPlacements(
  manifest: FileManifest,
  map: ClusterMap,
  options: { back: (node: string) => boolean; previous?: ClusterMap | undefined },
): Generator<SlotPlacement> {
  const around = aroundStill(manifest, options.back);
  const home = { ...manifest, writtenAround: around };
  const moves = around.length !== (manifest.writtenAround ?? []).length;
  const stripes = manifest.deleted ? 0 : manifest.stripes;
  for (let stripe = MANIFEST_STRIPE; stripe < stripes; stripe++) {
    const read = placeFileStripe(map, manifest, stripe);
    const target = moves ? placeFileStripe(map, home, stripe) : read;
    const previous =
      options.previous === undefined || options.previous.epoch === map.epoch
        ? undefined
        : placeFileStripe(options.previous, manifest, stripe);
    for (let slot = 0; slot < read.length; slot++) {
      const was = previous?.[slot];
      yield {
        stripe,
        slot,
        read: read[slot] as string,
        target: target[slot] as string,
        previous: was === read[slot] ? undefined : was,
      };
    }
  }
}
