// Turns anything a command throws into the one line the user sees and the
// exit code: 2 when the command line itself is wrong, 1 otherwise. A
// MosaicError's message says what happened; the hint says what to do when
// the message alone does not (docs/errors.md, "what to do").

import { type ErrorCode, isMosaicError } from "../errors.ts";
import { tidyTransportDetails } from "../rpc/wire.ts";
import { UsageError } from "./parse.ts";

export interface Failure {
  line: string;
  exitCode: 1 | 2;
}

const HINTS: Partial<Record<ErrorCode, string>> = {
  MOSAIC_ERR_NO_SUCH_FILE: "list files with `mosaic ls <volume>`",
  MOSAIC_ERR_UNKNOWN_VOLUME: "list volumes with `mosaic volumes`",
  MOSAIC_ERR_BAD_NAME: "use a plain relative name like films/2026/clip.mp4",
  MOSAIC_ERR_STORE_FULL: "a node is out of room: delete files, or start the agents with more --capacity",
  MOSAIC_ERR_VOLUME_FULL: "delete files, or raise the volume's capacity in the cluster file",
  MOSAIC_ERR_NOT_ENOUGH_NODES:
    "fewer nodes are up than a stripe of this volume is wide: bring nodes back (`mosaic nodes`), or use a narrower volume",
  MOSAIC_ERR_DATA_UNAVAILABLE:
    "too many nodes are down for this file: bring them back (`mosaic nodes`); nothing is lost while their disks survive",
  MOSAIC_ERR_PEER_UNAVAILABLE:
    "an agent could not be reached on either channel: check which nodes answer with `mosaic nodes`",
  MOSAIC_ERR_FILE_CHANGED: "the file was overwritten while being read: read it again",
  MOSAIC_ERR_INTERNAL: "this is a bug: please report it with the agents' logs",
};

/** Node's system errors on local files, in words. */
const SYSTEM_ERRORS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EISDIR: "is a directory",
  ENOTDIR: "a parent is not a directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ENOSPC: "no space left on the local disk",
  EEXIST: "already exists",
  EROFS: "read-only file system",
};

export function describeFailure(error: unknown): Failure {
  if (error instanceof UsageError) return { line: oneLine(error.message), exitCode: 2 };
  if (isMosaicError(error)) {
    const hint = HINTS[error.code];
    const message = oneLine(error.message);
    return {
      line: hint === undefined || message.includes(hint) ? message : `${message} (${hint})`,
      exitCode: error.code === "MOSAIC_ERR_BAD_NAME" ? 2 : 1,
    };
  }
  const system = error as NodeJS.ErrnoException;
  if (typeof system?.code === "string" && system.code in SYSTEM_ERRORS) {
    const where = system.path === undefined ? "" : `${system.path}: `;
    return { line: `${where}${SYSTEM_ERRORS[system.code]}`, exitCode: 1 };
  }
  return { line: oneLine((error as Error)?.message ?? String(error)), exitCode: 1 };
}

/** Messages from agents may span lines; the user gets one, without grpc-js's connection boilerplate. */
export function oneLine(text: string): string {
  return tidyTransportDetails(text.replace(/\s*\n\s*/g, " ")).replace(/\s+/g, " ");
}
