// Knowing at once that the process at the other end is gone, in any pid
// namespace. A FIFO's reader sees end of file as soon as the last writer's
// descriptor closes, and the kernel closes a process's descriptors however it
// dies (kill -9 included). So each side holds the write end of a FIFO the
// other side reads, for as long as the session lives:
//
// - agent ← client: the client makes `client-<id>.life`, opens it O_RDWR (a
//   writer that never blocks) and keeps it; the agent opens it for reading.
// - client ← agent: the agent keeps its write end of the client's reply FIFO
//   after answering REGISTER; the client reopens that FIFO read-only through
//   /proc/self/fd and drops its own O_RDWR descriptor, leaving the agent as
//   the only writer.
//
// Pids cannot do this across namespaces (Kubernetes pods share /dev/shm and
// the IPC directory through hostIPC and a hostPath, not their pids), and
// /proc polling only notices at its next poll; end of file needs neither.
// The watch is a net.Socket on the descriptor: libuv's epoll reports the
// hangup, no thread and no timer per client.
import { closeSync, constants, openSync } from "node:fs";
import { Socket } from "node:net";
import { MosaicError } from "../errors.ts";

/** A client's life-line FIFO in the IPC directory: "client-<128 random bits>.life". */
export const LIFE_FIFO_PATTERN = /^client-[0-9a-f]{32}\.life$/;

export interface LifeWatch {
  /** Stops watching and closes the descriptor (no `gone` call follows). */
  close(): void;
}

/**
 * Watches the read end `fd` of a FIFO: `gone` is called once, when every
 * writer has closed (or the descriptor fails). Bytes written to it are
 * ignored. The watch does not keep the process alive.
 */
export function watchReadEnd(fd: number, gone: (why: string) => void): LifeWatch {
  const socket = new Socket({ fd, readable: true, writable: false });
  let done = false;
  const finish = (why: string) => {
    if (done) return;
    done = true;
    socket.destroy();
    gone(why);
  };
  socket.on("data", () => {}); // flowing mode, so the end of file is seen; the bytes mean nothing
  socket.on("end", () => finish("its life-line FIFO reached end of file"));
  socket.on("error", (error) => finish(`its life-line FIFO failed: ${error.message}`));
  socket.unref();
  return {
    close() {
      done = true;
      socket.destroy();
    },
  };
}

/** Opens a FIFO's read end without blocking (a FIFO with no writer left reads as end of file at once). */
export function openReadEnd(path: string): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (error) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `cannot open the life-line FIFO ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      { cause: error },
    );
  }
}

/**
 * A second, read-only descriptor on the FIFO behind `fd` (which may have no
 * name left): opening /proc/self/fd/<fd> opens the same pipe.
 */
export function reopenReadOnly(fd: number): number {
  return openSync(`/proc/self/fd/${fd}`, constants.O_RDONLY | constants.O_NONBLOCK);
}

/** Opens a FIFO as a writer that never blocks and never sees EPIPE (O_RDWR), to hold as a life line. */
export function holdWriteEnd(path: string): number {
  return openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
}

export function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing held either way
  }
}
