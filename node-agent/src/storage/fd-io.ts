// Positional reads on a raw file descriptor, as promises. A piece read is a
// few small system calls on the thread pool; node:fs's callback API costs
// less per call than FileHandle (no handle object, no close bookkeeping),
// which shows when a server reads a piece per request.
import { close, open, read, readv } from "node:fs";

export function openForRead(path: string): Promise<number> {
  return new Promise((resolve, reject) =>
    open(path, "r", (error, fd) => (error ? reject(error) : resolve(fd))),
  );
}

/** Reads into the whole of `buffer` from `position`; resolves with the bytes read (fewer at the file's end). */
export function readAt(fd: number, buffer: Buffer, position: number): Promise<number> {
  if (buffer.length === 0) return Promise.resolve(0);
  return new Promise((resolve, reject) =>
    read(fd, buffer, 0, buffer.length, position, (error, bytesRead) =>
      error ? reject(error) : resolve(bytesRead),
    ),
  );
}

/** Reads into `buffers` back to back from `position`; resolves with the bytes read. */
export function readvAt(fd: number, buffers: Buffer[], position: number): Promise<number> {
  if (buffers.length === 0) return Promise.resolve(0);
  return new Promise((resolve, reject) =>
    readv(fd, buffers, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))),
  );
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => close(fd, (error) => (error ? reject(error) : resolve())));
}
