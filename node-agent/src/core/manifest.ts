// A file's manifest: what was written, at which version, with which layout.
// Stored beside the pieces on the manifest holders; the highest version any
// holder returns is the file (a holder that missed a write is never believed).
import { MosaicError } from "../errors.ts";
import { validateFileId, validateFileName } from "./names.ts";
import type { Redundancy } from "./volume.ts";

export interface FileManifest {
  volume: string;
  name: string;
  fileId: string;
  /** Grows by one with every write of this name; pieces carry it too. */
  version: number;
  sizeBytes: number;
  chunkSizeBytes: number;
  redundancy: Redundancy;
  stripes: number;
  /** crc32c of the whole file's bytes, checked end to end by readers that read it all. */
  crc32c: number;
  createdAt: string;
  /** Node that coordinated the write. */
  writer: string;
  /** A tombstone: the file was deleted at this version (so a holder that missed the delete cannot revive it). */
  deleted?: boolean;
  /**
   * Nodes the write found unreachable and placed as if they were out, so every
   * piece still landed at full redundancy. Readers and the rebuild place this
   * file with these nodes out too (core/file-placement.ts).
   */
  writtenAround?: string[];
  /** Grows when the manifest of the same version is rewritten (writtenAround changed); the highest wins. */
  revision?: number;
}

export function encodeManifest(m: FileManifest): Buffer {
  return Buffer.from(JSON.stringify(m), "utf8");
}

export function decodeManifest(bytes: Buffer): FileManifest {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (cause) {
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", "manifest is not valid JSON", { cause });
  }
  return validateManifest(value);
}

export function validateManifest(value: unknown): FileManifest {
  const m = value as Partial<FileManifest> | null;
  const bad = (why: string) => new MosaicError("MOSAIC_ERR_BAD_REQUEST", `manifest: ${why}`);
  if (typeof m !== "object" || m === null) throw bad("not an object");
  if (typeof m.volume !== "string") throw bad("volume missing");
  validateFileName(m.name);
  validateFileId(m.fileId);
  for (const field of ["version", "sizeBytes", "chunkSizeBytes", "stripes", "crc32c"] as const) {
    const v = m[field];
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw bad(`${field} must be a non-negative integer`);
  }
  if (typeof m.redundancy !== "object" || m.redundancy === null) throw bad("redundancy missing");
  if (typeof m.createdAt !== "string" || typeof m.writer !== "string") throw bad("createdAt/writer missing");
  if (m.writtenAround !== undefined) {
    const around = m.writtenAround as unknown;
    if (
      !Array.isArray(around) ||
      !around.every((n) => typeof n === "string" && n !== "") ||
      new Set(around).size !== around.length
    ) {
      throw bad("writtenAround must be a list of distinct node ids");
    }
  }
  if (m.revision !== undefined && (!Number.isSafeInteger(m.revision) || m.revision < 0)) {
    throw bad("revision must be a non-negative integer");
  }
  return m as FileManifest;
}

/** The manifest with the highest version, then revision: the file as readers see it. */
export function newestManifest(
  manifests: Iterable<FileManifest | null | undefined>,
): FileManifest | undefined {
  let newest: FileManifest | undefined;
  for (const m of manifests) {
    if (m && (newest === undefined || isNewer(m, newest))) newest = m;
  }
  return newest;
}

export function isNewer(a: FileManifest, b: FileManifest): boolean {
  return a.version > b.version || (a.version === b.version && (a.revision ?? 0) > (b.revision ?? 0));
}

/** The newest manifest of each file among the lists several holders returned. */
export function newestPerFile(lists: Iterable<readonly FileManifest[]>): FileManifest[] {
  const newest = new Map<string, FileManifest>();
  for (const list of lists) {
    for (const m of list) {
      const seen = newest.get(m.fileId);
      if (seen === undefined || isNewer(m, seen)) newest.set(m.fileId, m);
    }
  }
  return [...newest.values()];
}
