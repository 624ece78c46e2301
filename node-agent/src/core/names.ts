// File names as users give them, and the ids they are stored under. Names
// never reach the filesystem: a chunk's path is built from the id, a hash, so
// "../../etc/passwd" is refused here and could not escape anyway.
import { createHash } from "node:crypto";
import { MosaicError } from "../errors.ts";

export const NAME_MAX_BYTES = 1024;

export function validateFileName(name: unknown): string {
  const bad = (why: string) =>
    new MosaicError("MOSAIC_ERR_BAD_NAME", `file name ${JSON.stringify(name)}: ${why}`);
  if (typeof name !== "string" || name.length === 0) throw bad("must be a non-empty string");
  if (Buffer.byteLength(name, "utf8") > NAME_MAX_BYTES) throw bad(`longer than ${NAME_MAX_BYTES} bytes`);
  if (!name.isWellFormed()) throw bad("is not valid Unicode");
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f\\]/.test(name)) throw bad("contains a control character or a backslash");
  if (name.startsWith("/") || name.endsWith("/")) throw bad("must not start or end with '/'");
  for (const segment of name.split("/")) {
    if (segment === "") throw bad("has an empty path segment ('//')");
    if (segment === "." || segment === "..") throw bad("has a '.' or '..' path segment");
  }
  return name;
}

/** 128-bit id of a file name, as 32 hex characters. */
export function fileIdOf(volume: string, name: string): string {
  return createHash("sha256").update(volume).update("\u0000").update(name).digest("hex").slice(0, 32);
}

const FILE_ID = /^[0-9a-f]{32}$/;

export function validateFileId(fileId: unknown): string {
  if (typeof fileId !== "string" || !FILE_ID.test(fileId)) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `file id ${JSON.stringify(fileId)} must be 32 hex characters`,
    );
  }
  return fileId;
}
