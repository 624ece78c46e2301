// Manifests as this node's store holds them: a manifest is a piece with
// stripe MANIFEST_STRIPE, one copy per manifest holder.
import { decodeManifest, type FileManifest } from "../core/manifest.ts";
import { MANIFEST_STRIPE } from "../core/placement.ts";
import type { Logger } from "../log.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";

/** The newest manifest of a file this node holds, if any. */
export async function readLocalManifest(
  store: ChunkStore,
  volume: string,
  fileId: string,
): Promise<FileManifest | undefined> {
  const versions = await store.versions(volume, fileId);
  for (let i = versions.length - 1; i >= 0; i--) {
    const version = versions[i] as number;
    const pieces = await store.pieces(volume, fileId, version);
    const copy = pieces.find((p) => p.stripe === MANIFEST_STRIPE);
    if (copy !== undefined) return decodeManifest((await store.get(copy)).data);
  }
  return undefined;
}

/** Every file's newest manifest here; a copy that cannot be read is logged and skipped, never hides the rest. */
export async function readLocalManifests(
  store: ChunkStore,
  volume: string,
  log: Logger,
): Promise<FileManifest[]> {
  const manifests: FileManifest[] = [];
  for (const fileId of await store.files(volume)) {
    try {
      const manifest = await readLocalManifest(store, volume, fileId);
      if (manifest !== undefined) manifests.push(manifest);
    } catch (error) {
      log.warn(
        { volume, fileId, err: (error as Error).message },
        "manifest copy unreadable; left out of the listing",
      );
    }
  }
  return manifests;
}
