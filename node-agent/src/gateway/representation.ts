// The headers that describe a stored file to HTTP, from its manifest alone:
// a strong ETag from the version and the whole-file crc32c (a new write is a
// new version, so the tag changes exactly when the bytes may have), the
// write's time as Last-Modified, and a Content-Type from the extension.
import { contentType } from "mime-types";
import type { FileManifest } from "../core/manifest.ts";

export interface Representation {
  sizeBytes: number;
  etag: string;
  /** Milliseconds, truncated to the second as HTTP dates are. */
  lastModifiedMs: number;
  contentType: string;
}

export function representationOf(manifest: FileManifest): Representation {
  return {
    sizeBytes: manifest.sizeBytes,
    etag: `"${manifest.version.toString(36)}-${manifest.crc32c.toString(16).padStart(8, "0")}"`,
    lastModifiedMs: Math.floor(Date.parse(manifest.createdAt) / 1000) * 1000,
    contentType: contentTypeOf(manifest.name),
  };
}

export function contentTypeOf(name: string): string {
  const slash = name.lastIndexOf("/");
  return contentType(name.slice(slash + 1)) || "application/octet-stream";
}

/** Validators and type, sent with every answer about the file (200, 206, 304, 416). */
export function representationHeaders(r: Representation): Record<string, string> {
  return {
    etag: r.etag,
    "last-modified": new Date(r.lastModifiedMs).toUTCString(),
    "accept-ranges": "bytes",
  };
}
