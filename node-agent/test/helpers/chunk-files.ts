// Chunk files on an agent's disk, found by the documented layout
//   <dataDir>/volumes/<volume>/<fileId[0:2]>/<fileId>/v<version>/<stripe>.<slot>.chunk
//   (a manifest copy: manifest.<slot>.chunk)
// and damaged in place the way a bad disk would.
import { access, open } from "node:fs/promises";
import { join } from "node:path";
import type { FileManifest } from "../../src/core/manifest.ts";

/** Fixed bytes of a chunk header besides the volume name (see storage/chunk-format.ts). */
const HEADER_FIXED_BYTES = 50;

export function chunkHeaderBytes(volume: string): number {
  return HEADER_FIXED_BYTES + Buffer.byteLength(volume, "utf8");
}

/** Path of one piece of `manifest`'s version in `dataDir`; stripe "manifest" for a manifest copy. */
export function chunkPath(
  dataDir: string,
  manifest: FileManifest,
  stripe: number | "manifest",
  slot: number,
) {
  const { volume, fileId, version } = manifest;
  return join(
    dataDir,
    "volumes",
    volume,
    fileId.slice(0, 2),
    fileId,
    `v${version}`,
    `${stripe}.${slot}.chunk`,
  );
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Inverts one byte of a file in place (no rename, no size change); returns the old and new values. */
export async function flipByte(path: string, offset: number): Promise<{ before: number; after: number }> {
  const fh = await open(path, "r+");
  try {
    const byte = Buffer.alloc(1);
    const { bytesRead } = await fh.read(byte, 0, 1, offset);
    if (bytesRead !== 1) throw new Error(`${path} has no byte ${offset}`);
    const before = byte[0] as number;
    byte[0] = before ^ 0xff;
    await fh.write(byte, 0, 1, offset);
    await fh.sync();
    return { before, after: byte[0] as number };
  } finally {
    await fh.close();
  }
}
