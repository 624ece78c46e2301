// Named POSIX shared-memory segments (/dev/shm/<name>) mapped into a Buffer
// with no copy: koffi.view turns the mmap'd range into an external
// ArrayBuffer, and Buffers over it read and write the shared pages directly.
//
// Safety choices:
// - Names are "<prefix><128 random bits>", created O_EXCL with mode 0600: a
//   client cannot open another's segment by guessing, and a name is never
//   reused. The prefix is "/mosaic-" and, for an agent's rings, a hash of its
//   IPC directory ("/mosaic-<16 hex>-"), so a restarted agent finds and
//   removes its previous run's leftovers and nobody else's (several agents
//   share one /dev/shm in a local cluster).
// - The whole size is reserved with posix_fallocate before mapping. tmpfs is
//   sparse, so without it a full /dev/shm shows up later as SIGBUS on a plain
//   store into the Buffer, killing the process; with it, as ENOSPC here.
// - close() detaches the ArrayBuffer before munmap, so every Buffer view
//   handed out becomes zero-length instead of pointing at unmapped memory (a
//   use after close reads nothing rather than crashing the process).
import { createHash, randomBytes } from "node:crypto";
import { fstatSync, readdirSync } from "node:fs";
import { resolve } from "node:path";
import { MosaicError } from "../errors.ts";
import {
  closeFd,
  mapShared,
  O_CREAT,
  O_EXCL,
  O_RDWR,
  reserve,
  setSize,
  shmOpen,
  shmUnlink,
  unmap,
  viewOf,
} from "./libc.ts";

export const SEGMENT_PREFIX = "/mosaic-";
/** One segment at most this big: far above any sensible ring, well below address-space trouble. */
export const SEGMENT_MAX_BYTES = 2 ** 34; // 16 GiB
const NAME_PATTERN = /^\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}$/;

export interface SharedSegment {
  /** The shm name, "/mosaic-…"; the file is /dev/shm/mosaic-…. */
  readonly name: string;
  readonly sizeBytes: number;
  /** The mapping's address, for libc calls on memory inside it (semaphores). */
  readonly address: number;
  /** The whole segment, zero-copy; zero-length after close(). */
  readonly bytes: Buffer;
  /** Unmaps (idempotent). Views handed out earlier become empty. */
  close(): void;
  /** Removes the name (idempotent); mappings stay valid until closed. */
  unlink(): boolean;
}

/** Checks a segment name as given to openSegment: one slash, then a safe file name. */
export function checkSegmentName(name: unknown): string {
  if (typeof name !== "string" || !NAME_PATTERN.test(name) || name === "/." || name === "/..") {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_NAME",
      `bad shared-memory segment name ${JSON.stringify(name)}: expected "/" then 1-201 of [A-Za-z0-9._-]`,
    );
  }
  return name;
}

function checkSize(sizeBytes: unknown): number {
  if (typeof sizeBytes !== "number" || !Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `segment size must be a positive integer, got ${sizeBytes}`,
    );
  }
  if (sizeBytes > SEGMENT_MAX_BYTES) {
    throw new MosaicError(
      "MOSAIC_ERR_MESSAGE_TOO_LARGE",
      `segment size ${sizeBytes} bytes exceeds the ${SEGMENT_MAX_BYTES}-byte limit`,
    );
  }
  return sizeBytes;
}

/** The name prefix of the segments an agent serving IPC directory `dir` makes: "/mosaic-<16 hex>-". */
export function segmentPrefixFor(dir: string): string {
  return `${SEGMENT_PREFIX}${createHash("sha256").update(resolve(dir)).digest("hex").slice(0, 16)}-`;
}

/**
 * Removes every segment name starting with `prefix` (a previous run's
 * leftovers: rings made for clients that never attached before the agent was
 * killed). Returns the names removed. Mappings others still hold stay valid.
 */
export function sweepSegments(prefix: string, shmDir = "/dev/shm"): string[] {
  checkSegmentName(prefix);
  const removed: string[] = [];
  for (const file of readdirSync(shmDir)) {
    const name = `/${file}`;
    if (name.startsWith(prefix) && shmUnlink(checkSegmentName(name))) removed.push(name);
  }
  return removed;
}

/** Creates a fresh segment with an unguessable name after `prefix`, mode 0600, zero-filled. */
export function createSegment(sizeBytes: number, prefix = SEGMENT_PREFIX): SharedSegment {
  checkSize(sizeBytes);
  const name = `${checkSegmentName(prefix)}${randomBytes(16).toString("hex")}`;
  const fd = shmOpen(name, O_RDWR | O_CREAT | O_EXCL, 0o600);
  try {
    setSize(fd, sizeBytes, name);
    reserve(fd, sizeBytes, name);
    return mapped(name, fd, sizeBytes);
  } catch (error) {
    shmUnlink(name);
    throw error;
  } finally {
    closeFd(fd);
  }
}

/** Opens and maps an existing segment by name, at the size its creator gave it. */
export function openSegment(name: string): SharedSegment {
  checkSegmentName(name);
  const fd = shmOpen(name, O_RDWR, 0);
  try {
    const sizeBytes = fstatSync(fd).size;
    if (sizeBytes <= 0 || sizeBytes > SEGMENT_MAX_BYTES) {
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `segment ${name} has an unusable size of ${sizeBytes} bytes`,
      );
    }
    return mapped(name, fd, sizeBytes);
  } finally {
    closeFd(fd);
  }
}

/** Removes a segment's name if it exists; true if it did. */
export function unlinkSegment(name: string): boolean {
  return shmUnlink(checkSegmentName(name));
}

function mapped(name: string, fd: number, sizeBytes: number): SharedSegment {
  const address = mapShared(fd, sizeBytes, name);
  const arrayBuffer = viewOf(address, sizeBytes);
  let open = true;
  return {
    name,
    sizeBytes,
    address,
    bytes: Buffer.from(arrayBuffer),
    close() {
      if (!open) return;
      open = false;
      arrayBuffer.transfer(0); // detach: every view over it is now empty
      unmap(address, sizeBytes, name);
    },
    unlink() {
      return shmUnlink(name);
    },
  };
}
