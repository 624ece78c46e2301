// The few filesystem steps that make a chunk whole or absent after a crash:
// data synced before the rename, and every directory entry on the way synced
// after it (a renamed file in a directory whose own entry was lost is lost too).
import { type FileHandle, mkdir, open, rm } from "node:fs/promises";
import { dirname } from "node:path";

export const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

/** Writes the parts to a new file (refusing to overwrite one) and syncs it to disk. */
export async function writeSynced(path: string, parts: Buffer[]): Promise<void> {
  const fh = await open(path, "wx", FILE_MODE);
  try {
    await writeAll(fh, parts);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeAll(fh: FileHandle, parts: Buffer[]): Promise<void> {
  let pending = parts.filter((part) => part.length > 0);
  while (pending.length > 0) {
    const { bytesWritten } = await fh.writev(pending);
    if (bytesWritten === 0) throw new Error("writev wrote nothing");
    pending = dropBytes(pending, bytesWritten);
  }
}

// libuv already retries short writes; this only guards against one that did not.
function dropBytes(parts: Buffer[], count: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = count;
  for (const part of parts) {
    if (skip >= part.length) {
      skip -= part.length;
      continue;
    }
    rest.push(skip > 0 ? part.subarray(skip) : part);
    skip = 0;
  }
  return rest;
}

/**
 * Creates `dir` and any missing parents. Returns the directories, from
 * dirname(dir) up to `top`, to sync once something is placed in `dir`: all of
 * them if anything was created (a concurrent creator of a shared parent may not
 * have synced it yet), none if `dir` already existed.
 */
export async function ensureDir(dir: string, top: string): Promise<string[]> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return [];
  const dirs: string[] = [];
  for (let d = dirname(dir); d.startsWith(top); d = dirname(d)) {
    dirs.push(d);
    if (d === top) break;
  }
  return dirs;
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function removeQuietly(path: string): Promise<void> {
  await rm(path, { force: true, recursive: true }).catch(() => undefined);
}

export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
