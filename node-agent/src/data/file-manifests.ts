// Where a file's manifest lives and how the cluster agrees on it: copies on
// `redundantPieces + 1` nodes (so it survives exactly what the data
// survives), written to all of them, read from all that answer, newest wins.
import { encodeManifest, type FileManifest, newestManifest } from "../core/manifest.ts";
import { fileIdOf } from "../core/names.ts";
import { manifestHolders } from "../core/ownership.ts";
import { MANIFEST_STRIPE } from "../core/placement.ts";
import { describeRedundancy, type Redundancy } from "../core/volume.ts";
import { MosaicError } from "../errors.ts";
import type { DataContext } from "./context.ts";
import type { PieceIO } from "./pieces.ts";
import { settleAll } from "./settle.ts";

export async function writeManifest(ctx: DataContext, manifest: FileManifest): Promise<void> {
  const holders = manifestHolders(ctx.map(), manifest.volume, manifest.fileId, manifest.redundancy);
  const bytes = encodeManifest(manifest);
  await settleAll(
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
  const holders = manifestHolders(ctx.map(), volume, fileId, redundancy);
  const results = await Promise.allSettled(holders.map((node) => ctx.pieces.manifest(node, volume, fileId)));
  const answered = results.filter((r) => r.status === "fulfilled").map((r) => r.value);
  if (answered.length === 0) {
    const reasons = results.map((r, i) => `${holders[i]}: ${(r as PromiseRejectedResult).reason?.message}`);
    throw new MosaicError(
      "MOSAIC_ERR_DATA_UNAVAILABLE",
      `${label}: no holder of its manifest answered — more nodes are down than ` +
        `${describeRedundancy(redundancy)} covers (${reasons.join("; ")})`,
    );
  }
  return newestManifest(answered);
}
