// The agent's well-known request FIFO (seed 000 §3.2, §3.4) and the one-write
// send that clients use on it.
//
// Reader: the FIFO is opened O_RDWR | O_NONBLOCK and wrapped in a net.Socket
// (DESIGN §6). O_RDWR keeps a writer open on our side, so the FIFO never
// reports end-of-file when the last client goes away, and the open never
// blocks waiting for a writer; libuv then reads it without a thread and
// without polling. (createReadStream would park a pool thread in a blocking
// read forever.)
//
// No semaphore around the FIFO: every packet is one write(2) of at most
// PIPE_BUF bytes, which the kernel places in the pipe as a whole, so packets
// from concurrent clients never interleave. request-fifo.test.ts is the proof:
// 8 processes each write thousands of packets up to 4096 bytes, and every
// packet arrives whole, checksummed and in per-sender order.
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  writeSync,
} from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { LIFE_FIFO_PATTERN } from "./life-line.ts";
import { type Malformed, type Packet, PacketReader, PIPE_BUF_BYTES } from "./packet.ts";

export const REQUEST_FIFO_NAME = "requests.fifo";
/** Clients' reply FIFOs in the IPC directory: "client-<128 random bits>.fifo". */
export const CLIENT_FIFO_PATTERN = /^client-[0-9a-f]{32}\.fifo$/;
/** A partial packet left this long with no more bytes was cut short by its sender. */
const QUIET_MS = 200;
const SEND_TIMEOUT_MS = 5_000;

/** Creates (or checks) the IPC directory: ours, a real directory, mode 0700. */
export function prepareIpcDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) {
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `IPC directory ${dir} is not a directory`);
  }
  if (typeof process.getuid === "function" && stat.uid !== process.getuid()) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `IPC directory ${dir} belongs to uid ${stat.uid}, not us`,
    );
  }
  if ((stat.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
}

/** mkfifo(1) with mode 0600 (the coreutils tool: Node has no mkfifo, and this runs once per FIFO). */
export function makeFifo(path: string): void {
  try {
    execFileSync("mkfifo", ["-m", "600", "--", path], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? "").trim();
    throw new MosaicError(
      "MOSAIC_ERR_INTERNAL",
      `mkfifo ${path} failed: ${stderr || (error as Error).message}`,
    );
  }
}

export function isFifo(path: string): boolean {
  try {
    return lstatSync(path).isFIFO();
  } catch {
    return false;
  }
}

/** True if some process has `path` open for reading (an O_WRONLY|O_NONBLOCK open fails with ENXIO otherwise). */
function hasReader(path: string): boolean {
  try {
    closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW));
    return true;
  } catch {
    return false;
  }
}

export interface RequestFifoOptions {
  /** Each whole, well-formed packet, in arrival order. */
  onPacket: (packet: Packet) => void;
  /** Each malformed packet or run of garbage (already counted and logged). */
  onMalformed?: (malformed: Malformed) => void;
  log: Logger;
}

/** The agent's end: reads and reassembles packets from `<dir>/requests.fifo`. */
export class RequestFifo {
  readonly path: string;
  readonly stats = { packets: 0, malformed: 0, bytes: 0 };
  readonly #socket: Socket;
  readonly #reader = new PacketReader();
  readonly #options: RequestFifoOptions;
  #quiet: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(path: string, fd: number, options: RequestFifoOptions) {
    this.path = path;
    this.#options = options;
    this.#socket = new Socket({ fd, readable: true, writable: false });
    this.#socket.on("data", (chunk: Buffer) => this.#data(chunk));
    this.#socket.on("error", (error) => options.log.error({ err: error, fifo: path }, "request FIFO failed"));
  }

  /**
   * Creates the FIFO afresh in `dir` (a leftover of a previous run is replaced,
   * its clients' reply and life-line FIFOs removed) and starts reading. Refuses if another
   * live agent is reading the same FIFO.
   */
  static open(dir: string, options: RequestFifoOptions): RequestFifo {
    prepareIpcDir(dir);
    const path = join(dir, REQUEST_FIFO_NAME);
    if (isFifo(path) && hasReader(path)) {
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `another agent is already serving ${path}`);
    }
    rmSync(path, { force: true });
    for (const name of readdirSync(dir)) {
      if (CLIENT_FIFO_PATTERN.test(name) || LIFE_FIFO_PATTERN.test(name))
        rmSync(join(dir, name), { force: true });
    }
    makeFifo(path);
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    return new RequestFifo(path, fd, options);
  }

  /** Stops reading and removes the FIFO's name. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#quiet);
    rmSync(this.path, { force: true });
    const closed = new Promise<void>((resolve) => this.#socket.once("close", () => resolve()));
    this.#socket.destroy();
    await closed;
  }

  #data(chunk: Buffer): void {
    this.stats.bytes += chunk.length;
    clearTimeout(this.#quiet);
    this.#deliver(this.#reader.push(chunk));
    if (this.#reader.pendingBytes > 0) {
      this.#quiet = setTimeout(() => this.#deliver(this.#reader.flush()), QUIET_MS);
      this.#quiet.unref();
    }
  }

  #deliver({ packets, malformed }: { packets: Packet[]; malformed: Malformed[] }): void {
    for (const m of malformed) {
      this.stats.malformed++;
      this.#options.log.warn(
        { fifo: this.path, clientId: m.clientId, requestId: m.requestId, err: m.error.message },
        "malformed IPC packet dropped",
      );
      this.#options.onMalformed?.(m);
    }
    for (const packet of packets) {
      this.stats.packets++;
      try {
        this.#options.onPacket(packet);
      } catch (error) {
        // A handler bug costs this packet, never the reader.
        this.#options.log.error(
          { err: error, fifo: this.path, type: packet.type },
          "IPC packet handler failed",
        );
      }
    }
  }
}

/** Opens a FIFO for writing without blocking; a FIFO nobody reads is a clear "agent not running". */
export function openFifoWriter(path: string): number {
  try {
    return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new MosaicError(
      "MOSAIC_ERR_PEER_UNAVAILABLE",
      code === "ENXIO"
        ? `no agent is reading ${path}`
        : `cannot open ${path} (${code ?? (error as Error).message}): is the agent running?`,
      { cause: error },
    );
  }
}

/**
 * Writes one packet with exactly one write(2). At most PIPE_BUF bytes, so it
 * lands whole or not at all; a full pipe (EAGAIN) is retried with a growing
 * pause up to `timeoutMs`, then reported as an agent that does not keep up.
 */
export async function writePacket(fd: number, packet: Buffer, timeoutMs = SEND_TIMEOUT_MS): Promise<void> {
  if (packet.length > PIPE_BUF_BYTES) {
    throw new MosaicError(
      "MOSAIC_ERR_MESSAGE_TOO_LARGE",
      `packet of ${packet.length} bytes exceeds PIPE_BUF`,
    );
  }
  const deadline = performance.now() + timeoutMs;
  // Bounded by the deadline; each pass writes or sleeps ≥ 1 ms.
  for (let attempt = 0; ; attempt++) {
    try {
      const written = writeSync(fd, packet);
      if (written !== packet.length) {
        throw new MosaicError(
          "MOSAIC_ERR_INTERNAL",
          `short write of ${written}/${packet.length} bytes on a FIFO`,
        );
      }
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EPIPE") throw new MosaicError("MOSAIC_ERR_PEER_UNAVAILABLE", "the agent closed its FIFO");
      if (code !== "EAGAIN") throw error;
    }
    if (performance.now() >= deadline) {
      throw new MosaicError(
        "MOSAIC_ERR_PEER_UNAVAILABLE",
        `the agent's FIFO stayed full for ${timeoutMs} ms`,
      );
    }
    await sleep(Math.min(2 ** attempt, 20));
  }
}
