// Byte ranges of a get over IPC: [start, end) of the file, as the HTTP
// gateway's Range. The FileHandler interface has no range, so the server
// serves one only through a handler that can read a range itself (the
// agent's FileService: `manifest` and `read(manifest, range)`, which fetch
// only the stripes and pieces that hold those bytes).
import type { FileManifest } from "../core/manifest.ts";
import { MosaicError } from "../errors.ts";
import type { FileHandler } from "../rpc/file-handler.ts";

export interface ByteRange {
  start: number;
  /** Exclusive; past the file's end means "to the end". */
  end: number;
}

/** What a handler needs to serve a range. */
export interface RangeReader {
  manifest(volume: string, name: string): Promise<FileManifest>;
  read(manifest: FileManifest, range?: ByteRange): AsyncIterable<Buffer>;
}

export function canReadRanges(files: FileHandler): files is FileHandler & RangeReader {
  const f = files as Partial<RangeReader>;
  return typeof f.manifest === "function" && typeof f.read === "function";
}

/** A range as the client sent it, checked: integers, 0 ≤ start ≤ end. */
export function validateByteRange(value: unknown): ByteRange {
  const o = value as { start?: unknown; end?: unknown } | null;
  const start = o?.start;
  const end = o?.end;
  if (
    typeof o !== "object" ||
    !Number.isSafeInteger(start) ||
    !Number.isSafeInteger(end) ||
    (start as number) < 0 ||
    (end as number) < (start as number)
  ) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `byte range must be { start, end } with integers 0 ≤ start ≤ end, got ${JSON.stringify(value)}`,
    );
  }
  return { start: start as number, end: end as number };
}

/** The range cut to the file: end past the size means the end; a start past the size is refused. */
export function clampToFile(range: ByteRange, sizeBytes: number): ByteRange {
  if (range.start > sizeBytes) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `byte range starts at ${range.start}, past the end of a ${sizeBytes}-byte file`,
    );
  }
  return { start: range.start, end: Math.min(range.end, sizeBytes) };
}
