// What this node's store holds of each volume: chunk files and their bytes,
// counted from the directory tree (storage/chunk-layout.ts). The store keeps
// one total only, so this walks the tree; callers run it at a low rate.
// Temporary read copies (load/read-copies.ts) are not counted: they are no
// redundancy, StripedVolume's chunks.healthy sums these counts, and the
// copies have their own report (status.readReplicas).
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { VolumeHolding } from "@mosaic/operator/api/crds.generated.ts";
import { ChunkLayout, parsePieceFileName } from "../storage/chunk-layout.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import { isReadCopy } from "../storage/piece-key.ts";

/** Per volume on disk, its chunk files and their bytes (a file removed meanwhile, or a read copy, is not counted). */
export async function scanHoldings(store: Pick<ChunkStore, "dir" | "volumes">): Promise<VolumeHolding[]> {
  const layout = new ChunkLayout(store.dir);
  const holdings: VolumeHolding[] = [];
  for (const name of await store.volumes()) {
    let pieces = 0;
    let bytes = 0;
    const entries = await readdir(layout.volumeDir(name), { recursive: true, withFileTypes: true }).catch(
      () => [],
    );
    for (const entry of entries) {
      const piece = entry.isFile() ? parsePieceFileName(entry.name) : undefined;
      if (piece === undefined || isReadCopy(piece)) continue;
      const size = await lstat(join(entry.parentPath, entry.name)).then(
        (s) => s.size,
        () => undefined,
      );
      if (size === undefined) continue;
      pieces++;
      bytes += size;
    }
    holdings.push({ name, pieces, bytes });
  }
  return holdings;
}

/**
 * What the agent reports: every volume it serves (held or not: it has taken
 * the spec), and any other it still has pieces of, in name order.
 */
export function reportedHoldings(
  scanned: readonly VolumeHolding[],
  served: readonly string[],
): VolumeHolding[] {
  const byName = new Map(scanned.filter((h) => h.pieces > 0).map((h) => [h.name, h]));
  for (const name of served) if (!byName.has(name)) byName.set(name, { name, pieces: 0, bytes: 0 });
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
