// Where a file's manifest lives and how the cluster agrees on it: copies on
// `redundantPieces + 1` nodes (so it survives exactly what the data
// survives), written to all of them, read from all that answer, newest wins.
// A write that went around a holder put that copy on its substitute; readers
// ask the substitutes of holders that do not answer.
import type { ClusterMap } from "../core/cluster-map.ts";
import { mapAround, placeFileStripe } from "../core/file-placement.ts";
import { encodeManifest, type FileManifest, newestManifest } from "../core/manifest.ts";
import { fileIdOf } from "../core/names.ts";
import { manifestHolders } from "../core/ownership.ts";
import { MANIFEST_STRIPE } from "../core/placement.ts";
import { describeRedundancy, type Redundancy } from "../core/volume.ts";
import { MosaicError } from "../errors.ts";
import type { DataContext } from "./context.ts";
import type { PieceIO } from "./pieces.ts";

/** Puts the manifest on every holder its placement names; all must take it. */
export async function writeManifest(ctx: DataContext, manifest: FileManifest): Promise<void> {
  const failed = await putManifest(ctx, manifest, placeFileStripe(ctx.map(), manifest, MANIFEST_STRIPE));
  if (failed.length > 0) throw (failed[0] as { error: Error }).error;
}

/** Puts the manifest on each of `holders` (slot by slot), in parallel; returns those that failed and why. */
export async function putManifest(
  ctx: Pick<DataContext, "pieces">,
  manifest: FileManifest,
  holders: readonly string[],
): Promise<{ node: string; error: Error }[]> {
  const bytes = encodeManifest(manifest);
  const results = await Promise.allSettled(
    holders.map((node, slot) =>
      ctx.pieces.put(
        node,
        {
          volume: manifest.volume,
          fileId: manifest.fileId,
          version: manifest.version,
          stripe: MANIFEST_STRIPE,
          slot,
        },
        [bytes],
      ),
    ),
  );
  return results.flatMap((r, slot) =>
    r.status === "rejected" ? [{ node: holders[slot] as string, error: r.reason as Error }] : [],
  );
}

/** What reading a manifest needs: the map and a way to ask holders. */
export type ManifestContext = Pick<DataContext, "map"> & { pieces: Pick<PieceIO, "manifest"> };

/**
 * The newest manifest any holder returns. Holders that cannot answer are
 * skipped; if none answers, that is an error, not "no such file".
 */
export function readManifest(
  ctx: ManifestContext,
  volume: string,
  name: string,
  redundancy: Redundancy,
): Promise<FileManifest | undefined> {
  return readManifestById(ctx, volume, fileIdOf(volume, name), redundancy, `${volume}/${name}`);
}

/** readManifest for a caller that knows only the file id (the scrubber, walking its pieces). */
export async function readManifestById(
  ctx: ManifestContext,
  volume: string,
  fileId: string,
  redundancy: Redundancy,
  label = `${volume}/${fileId}`,
): Promise<FileManifest | undefined> {
  const map = ctx.map();
  const holders = manifestHolders(map, volume, fileId, redundancy);
  const ask = (nodes: string[]) =>
    Promise.allSettled(nodes.map((node) => ctx.pieces.manifest(node, volume, fileId)));
  const results = await ask(holders);
  const placedCount = holders.length;
  if (results.some((r) => r.status === "rejected")) {
    // A write that could not reach a holder put its copy where placement goes around it; so did a
    // write around a holder that answers now but missed it. Ask those substitutes too.
    const missed = holders.filter((_, i) => {
      const r = results[i] as PromiseSettledResult<FileManifest | undefined>;
      return r.status === "rejected" || r.value === undefined;
    });
    const substitutes = substitutesOf(map, missed, volume, fileId, redundancy).filter(
      (node) => !holders.includes(node),
    );
    results.push(...(await ask(substitutes)));
    holders.push(...substitutes);
  }
  const placed = results.slice(0, placedCount);
  const answered = results.filter((r) => r.status === "fulfilled").map((r) => r.value);
  // A substitute's "none" proves nothing while no placed holder could answer: only a manifest found counts then.
  if (!placed.some((r) => r.status === "fulfilled") && answered.every((m) => m === undefined)) {
    const reasons = results.map(
      (r, i) =>
        `${holders[i]}: ${r.status === "rejected" ? (r.reason as Error)?.message : "no manifest (a substitute)"}`,
    );
    throw new MosaicError(
      "MOSAIC_ERR_DATA_UNAVAILABLE",
      `${label}: no holder of its manifest answered — more nodes are down than ` +
        `${describeRedundancy(redundancy)} covers (${reasons.join("; ")})`,
    );
  }
  return newestManifest(answered);
}

function substitutesOf(
  map: ClusterMap,
  missed: string[],
  volume: string,
  fileId: string,
  redundancy: Redundancy,
): string[] {
  try {
    return manifestHolders(mapAround(map, missed), volume, fileId, redundancy);
  } catch {
    return []; // too few nodes left to place around them: nothing more to ask
  }
}
