// The application's side of same-node IPC: seed 000's send_request and
// receive_response, and get/put/stat/list/delete on top of them. The protocol
// is described in ipc-server.ts; in short: REGISTER over the request FIFO,
// the answer on a private reply FIFO, then requests as FIFO packets and all
// data, reply headers, END and errors through two slot rings.
//
// Reads are zero-copy: `get` yields Buffer views on the ring's slots, each
// valid until the next iteration (copy what you keep). One request at a time
// per client; calls queue behind each other. An agent that dies is noticed at
// once through the life lines (life-line.ts: this client holds a FIFO's write
// end the agent reads, and watches the reply FIFO whose only writer left is
// the agent), in any pid namespace; the ring waits' /proc check every
// `pollMs` and their timeout are second lines. Never a hang.
import { randomBytes, randomInt } from "node:crypto";
import { closeSync, constants, openSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import type { FileManifest } from "../core/manifest.ts";
import type { PieceState } from "../data/file-service.ts";
import { isErrorCode, MosaicError } from "../errors.ts";
import type { FileRequest } from "../rpc/messages.ts";
import type { ByteRange } from "./byte-range.ts";
import { closeQuietly, holdWriteEnd, type LifeWatch, reopenReadOnly, watchReadEnd } from "./life-line.ts";
import { encodePacket, type Packet, PacketReader, PacketType } from "./packet.ts";
import { readReplyHeader, untagError } from "./reply.ts";
import { makeFifo, openFifoWriter, REQUEST_FIFO_NAME, writePacket } from "./request-fifo.ts";
import { type RingConsumer, RingError, type RingProducer, SlotRing } from "./slot-ring.ts";

export interface IpcClientOptions {
  /** The agent's IPC directory. */
  dir: string;
  /** Longest wait for the agent on one slot (it may be fetching from other nodes). */
  timeoutMs?: number;
  /** How often a waiting client checks that the agent still runs. */
  pollMs?: number;
  registerTimeoutMs?: number;
}

export interface IpcReply {
  header: unknown;
  /** The data that follows (a file for get): zero-copy views, each valid until the next iteration. */
  body: AsyncIterable<Buffer>;
}

interface Registered {
  clientId: number;
  toClient: string;
  toAgent: string;
}

/** What registration leaves open: our life line to the agent, and the agent's to us. */
interface LifeLines {
  /** Our write end of the life-line FIFO the agent reads; held until close. */
  lifeFd: number;
  /** A read-only descriptor on the reply FIFO, whose only writer is now the agent. */
  agentFd: number;
}

export class IpcClient {
  readonly clientId: number;
  readonly #fd: number;
  readonly #toClient: SlotRing;
  readonly #toAgent: SlotRing;
  readonly #consumer: RingConsumer;
  readonly #producer: RingProducer;
  readonly #lifeFd: number;
  readonly #agentWatch: LifeWatch;
  #nextRequestId = 1;
  #lock: Promise<void> = Promise.resolve();
  #broken: Error | undefined;
  #closed = false;

  private constructor(
    fd: number,
    registered: Registered,
    toClient: SlotRing,
    toAgent: SlotRing,
    waits: object,
    lines: LifeLines,
  ) {
    this.#fd = fd;
    this.clientId = registered.clientId;
    this.#toClient = toClient;
    this.#toAgent = toAgent;
    this.#consumer = toClient.consumer(waits);
    this.#producer = toAgent.producer(waits);
    this.#lifeFd = lines.lifeFd;
    this.#agentWatch = watchReadEnd(lines.agentFd, (why) => {
      const detail = `the agent's reply FIFO: ${why.replace("its life-line FIFO ", "")}`;
      toClient.peerGone(detail);
      toAgent.peerGone(detail);
    });
  }

  /** Registers with the agent serving `dir` and maps this client's two rings. */
  static async connect(options: IpcClientOptions): Promise<IpcClient> {
    const waits = { timeoutMs: options.timeoutMs ?? 30_000, pollMs: options.pollMs ?? 250 };
    const fd = openFifoWriter(join(options.dir, REQUEST_FIFO_NAME));
    let toClient: SlotRing | undefined;
    let toAgent: SlotRing | undefined;
    let lines: LifeLines | undefined;
    try {
      const answer = await register(options.dir, fd, options.registerTimeoutMs ?? 5_000);
      const registered = answer.registered;
      lines = answer.lines;
      toClient = SlotRing.open(registered.toClient);
      toAgent = SlotRing.open(registered.toAgent);
      const client = new IpcClient(fd, registered, toClient, toAgent, waits, lines);
      lines = undefined; // the client owns them now
      // Mapped and attached: no name needs to outlive this moment.
      toClient.unlink();
      toAgent.unlink();
      await writePacket(
        fd,
        encodePacket({ type: PacketType.ATTACHED, clientId: client.clientId, requestId: 0, body: null }),
      );
      return client;
    } catch (error) {
      await toClient?.close();
      await toAgent?.close();
      closeQuietly(lines?.lifeFd);
      closeQuietly(lines?.agentFd);
      closeSync(fd);
      throw error;
    }
  }

  /**
   * Seed 000's send_request: one packet on the agent's FIFO; resolves with
   * its request id. A get may carry a byte range [start, end).
   */
  async sendRequest(request: FileRequest, options: { range?: ByteRange } = {}): Promise<number> {
    this.#usable();
    const requestId = this.#nextRequestId++ >>> 0;
    const body = options.range === undefined ? { request } : { request, range: options.range };
    await writePacket(
      this.#fd,
      encodePacket({ type: PacketType.REQUEST, clientId: this.clientId, requestId, body }),
    );
    return requestId;
  }

  /**
   * Seed 000's receive_response: the reply header for `requestId`, and its
   * body as it arrives. Read the body to its end before the next request
   * (`get` and the other calls do this for you).
   */
  async receiveResponse(requestId: number): Promise<IpcReply> {
    this.#usable();
    try {
      const header = await readReplyHeader(this.#consumer, requestId);
      return { header, body: this.#body(requestId) };
    } catch (error) {
      throw this.#failed(error);
    }
  }

  /**
   * A file's manifest and its bytes, streamed from the agent's ring; views
   * valid until the next iteration. With `range`, only bytes [start, end)
   * (an end past the file is its end), and the header names the range served.
   */
  async get(volume: string, name: string, range?: ByteRange): Promise<IpcReply> {
    const release = await this.#acquire();
    try {
      const requestId = await this.sendRequest(
        { op: "get", volume, name },
        range === undefined ? {} : { range },
      );
      const reply = await this.receiveResponse(requestId);
      const body = reply.body;
      return {
        header: reply.header,
        body: (async function* () {
          try {
            yield* body;
          } finally {
            release();
          }
        })(),
      };
    } catch (error) {
      release();
      throw error;
    }
  }

  /** Writes a file: `data` is copied into the ring, slots packed full; resolves with the agent's reply header. */
  async put(
    volume: string,
    name: string,
    data: AsyncIterable<Uint8Array>,
    sizeBytes?: number,
  ): Promise<FileManifest> {
    return this.#exclusive(async () => {
      const request: FileRequest =
        sizeBytes === undefined ? { op: "put", volume, name } : { op: "put", volume, name, sizeBytes };
      const requestId = await this.sendRequest(request);
      try {
        await this.#send(data);
      } catch (error) {
        if (error instanceof RingError) throw this.#failed(error);
        // The application's data failed: end our stream with the error so the agent stays in step.
        await this.#producer.fail(
          error instanceof MosaicError ? error : new MosaicError("MOSAIC_ERR_BAD_REQUEST", String(error)),
        );
      }
      return ((await this.#headerOnly(requestId)) as { manifest: FileManifest }).manifest;
    });
  }

  // Reply shapes are the Files service's (data/file-service.ts), as AgentClient returns them.

  async stat(volume: string, name: string): Promise<{ manifest: FileManifest; pieces: PieceState[] }> {
    return (await this.#call({ op: "stat", volume, name })) as {
      manifest: FileManifest;
      pieces: PieceState[];
    };
  }

  async head(volume: string, name: string): Promise<FileManifest> {
    return ((await this.#call({ op: "head", volume, name })) as { manifest: FileManifest }).manifest;
  }

  async list(volume: string, prefix?: string): Promise<FileManifest[]> {
    const request: FileRequest =
      prefix === undefined ? { op: "list", volume } : { op: "list", volume, prefix };
    return ((await this.#call(request)) as { files: FileManifest[] }).files;
  }

  async delete(volume: string, name: string): Promise<FileManifest> {
    return ((await this.#call({ op: "delete", volume, name })) as { manifest: FileManifest }).manifest;
  }

  /** Tells the agent goodbye (best effort) and unmaps the rings. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#agentWatch.close(); // the agent closing its end after UNREGISTER is expected, not news
    try {
      await writePacket(
        this.#fd,
        encodePacket({ type: PacketType.UNREGISTER, clientId: this.clientId, requestId: 0, body: null }),
        1_000,
      );
    } catch {
      // the agent is gone: nothing to tell
    }
    closeSync(this.#fd);
    closeQuietly(this.#lifeFd);
    await Promise.all([this.#toClient.close(), this.#toAgent.close()]);
  }

  #call(request: FileRequest): Promise<unknown> {
    return this.#exclusive(async () => this.#headerOnly(await this.sendRequest(request)));
  }

  async #headerOnly(requestId: number): Promise<unknown> {
    const reply = await this.receiveResponse(requestId);
    for await (const _ of reply.body); // to its END, so the next reply starts clean
    return reply.header;
  }

  async #send(data: AsyncIterable<Uint8Array>): Promise<void> {
    let slot: Buffer | undefined;
    let used = 0;
    for await (const chunk of data) {
      // Bounded by chunk.length / slot size passes.
      for (let offset = 0; offset < chunk.length; ) {
        slot ??= await this.#producer.acquireSlot();
        const n = Math.min(slot.length - used, chunk.length - offset);
        slot.set(chunk.subarray(offset, offset + n), used);
        used += n;
        offset += n;
        if (used === slot.length) {
          this.#producer.commit(used);
          slot = undefined;
          used = 0;
        }
      }
    }
    if (slot) this.#producer.commit(used);
    await this.#producer.end();
  }

  async *#body(requestId: number): AsyncGenerator<Buffer> {
    let ended = false;
    try {
      // Bounded by the agent's END or ERROR (or a ring error).
      for (;;) {
        const view = await this.#consumer.next();
        if (view === null) break;
        yield view;
      }
      ended = true;
    } catch (error) {
      ended = true;
      const untagged = untagError(error, requestId);
      throw this.#failed(untagged === "stale" ? error : untagged);
    } finally {
      // Stopped early: read on to the END so the ring is in step for the next request.
      while (!ended && !this.#broken) {
        try {
          if ((await this.#consumer.next()) === null) ended = true;
        } catch (error) {
          ended = true;
          this.#failed(error);
        }
      }
      this.#consumer.restart();
    }
  }

  /** A ring error leaves the client unusable; an agent's ERROR slot is just this request's answer. */
  #failed(error: unknown): unknown {
    this.#consumer.restart();
    if (error instanceof RingError) this.#broken ??= error;
    return error;
  }

  #usable(): void {
    if (this.#closed) throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", "the IPC client is closed");
    if (this.#broken) {
      throw new MosaicError("MOSAIC_ERR_PEER_UNAVAILABLE", `the IPC channel failed: ${this.#broken.message}`);
    }
  }

  async #acquire(): Promise<() => void> {
    const previous = this.#lock;
    let release = () => {};
    this.#lock = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    return release;
  }

  async #exclusive<T>(run: () => Promise<T>): Promise<T> {
    const release = await this.#acquire();
    try {
      return await run();
    } finally {
      release();
    }
  }
}

/**
 * REGISTER, and the agent's answer on a private reply FIFO; the life-line
 * FIFO is made and held first. Both names are removed whatever happens.
 */
async function register(
  dir: string,
  fd: number,
  timeoutMs: number,
): Promise<{ registered: Registered; lines: LifeLines }> {
  const base = `client-${randomBytes(16).toString("hex")}`;
  const name = `${base}.fifo`;
  const path = join(dir, name);
  const lifePath = join(dir, `${base}.life`);
  let socket: Socket | undefined;
  let timer: NodeJS.Timeout | undefined;
  let lifeFd: number | undefined;
  let replyFd: number | undefined;
  try {
    makeFifo(path);
    makeFifo(lifePath);
    lifeFd = holdWriteEnd(lifePath);
    replyFd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    socket = new Socket({ fd: replyFd, readable: true, writable: false });
    const nonce = randomInt(1, 2 ** 32 - 1);
    const reader = new PacketReader();
    const reply = new Promise<Packet>((resolve, reject) => {
      socket?.on("data", (chunk: Buffer) => {
        const packet = reader
          .push(chunk)
          .packets.find((p) => p.type === PacketType.REGISTERED && p.requestId === nonce);
        if (packet) resolve(packet);
      });
      socket?.on("error", reject);
      timer = setTimeout(
        () =>
          reject(
            new MosaicError(
              "MOSAIC_ERR_PEER_UNAVAILABLE",
              `the agent did not answer REGISTER within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
    });
    await writePacket(
      fd,
      encodePacket({
        type: PacketType.REGISTER,
        clientId: 0,
        requestId: nonce,
        body: { pid: process.pid, replyFifo: name, lifeFifo: `${base}.life` },
      }),
    );
    const body = (await reply).body as Partial<Registered> & {
      error?: { code?: unknown; message?: unknown };
    };
    if (body?.error) {
      const code = isErrorCode(body.error.code) ? body.error.code : "MOSAIC_ERR_INTERNAL";
      throw new MosaicError(code, `IPC registration refused: ${String(body.error.message)}`);
    }
    if (
      !Number.isSafeInteger(body?.clientId) ||
      typeof body.toClient !== "string" ||
      typeof body.toAgent !== "string"
    ) {
      throw new MosaicError("MOSAIC_ERR_INTERNAL", "malformed REGISTERED answer from the agent");
    }
    // Before our O_RDWR descriptor closes (with the socket): afterwards the agent is the FIFO's only writer.
    const agentFd = reopenReadOnly(replyFd);
    const lines = { lifeFd, agentFd };
    lifeFd = undefined;
    return { registered: body as Registered, lines };
  } finally {
    clearTimeout(timer);
    if (socket) socket.destroy();
    else closeQuietly(replyFd);
    closeQuietly(lifeFd);
    rmSync(path, { force: true });
    rmSync(lifePath, { force: true });
  }
}
