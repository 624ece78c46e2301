// The agent's side of same-node IPC (seed 000 §3.2–3.4): requests arrive on
// the well-known FIFO, data flows through two slot rings per client.
//
// Registration: the client makes a private reply FIFO and a life-line FIFO
// in the IPC directory and sends REGISTER {pid, replyFifo, lifeFifo}. The
// agent opens the life line for reading, creates the client's two rings
// (agent→client for replies and read data, client→agent for written data),
// answers REGISTERED {clientId, toClient, toAgent} on the reply FIFO, keeps
// its write end of it, and removes both FIFOs' names. The client maps both
// rings, unlinks their names and sends ATTACHED; the agent unlinks them too
// (whoever is first). From then on no name exists: a kill -9 on either side
// leaves nothing in /dev/shm or the IPC directory to reclaim, only mappings
// and descriptors that die with the process. A kill -9 of the agent between
// REGISTERED and ATTACHED can leave two ring names: they carry this IPC
// directory's prefix, and the next agent on the directory removes them at
// start (as it removes stale FIFOs).
//
// Why a response ring rather than a per-client response FIFO: replies are
// mostly bulk data, which must go through shared memory anyway, and putting
// the reply header, END and errors in the same ring's slot headers keeps them
// in order with the data for free; a second channel would need its own
// ordering and its own liveness checks. The reply FIFO lives only for the one
// packet of registration, before the rings exist.
//
// One request at a time per client (the rings carry one stream each way);
// an application that wants parallel transfers registers several clients.
//
// A client that dies is noticed at once by its life line (life-line.ts: end
// of file on a FIFO whose only writer was the client; works across pid
// namespaces), and as second checks, all bounded: a ring wait asks /proc
// about its peer every `pollMs` and a sweep every `sweepMs` asks about idle
// clients (both only when client and agent share a pid namespace); a
// registration not ATTACHED within `attachTimeoutMs` is dropped; a live
// client that stalls a transfer is dropped after `stallTimeoutMs`.
import { randomInt } from "node:crypto";
import { lstatSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isMosaicError, MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { FileHandler, FileReply } from "../rpc/file-handler.ts";
import { type FileRequest, validateFileRequest } from "../rpc/messages.ts";
import { canReadRanges, clampToFile, validateByteRange } from "./byte-range.ts";
import { closeQuietly, LIFE_FIFO_PATTERN, type LifeWatch, openReadEnd, watchReadEnd } from "./life-line.ts";
import { encodePacket, type Malformed, type Packet, PacketType } from "./packet.ts";
import { failRequest, writeReplyHeader } from "./reply.ts";
import { CLIENT_FIFO_PATTERN, openFifoWriter, RequestFifo, writePacket } from "./request-fifo.ts";
import { segmentPrefixFor, sweepSegments } from "./shared-memory.ts";
import { type RingConsumer, RingError, type RingProducer, SlotRing } from "./slot-ring.ts";

export interface IpcServerOptions {
  /** Directory of the request FIFO and clients' reply FIFOs (/run/mosaic in Kubernetes). */
  dir: string;
  files: FileHandler;
  log: Logger;
  /**
   * Ring geometry per direction; default 4 slots of 1 MiB, so a client
   * reserves 8 MiB of /dev/shm (posix_fallocate'd) and maxClients bound the total.
   */
  slots?: number;
  slotSizeBytes?: number;
  maxClients?: number;
  /** Longest wait on a live but stalled client before giving up on it. */
  stallTimeoutMs?: number;
  pollMs?: number;
  sweepMs?: number;
  attachTimeoutMs?: number;
}

/** One registered client, as the server holds it. */
export interface IpcSession {
  id: number;
  pid: number;
  toClient: SlotRing;
  toAgent: SlotRing;
  producer: RingProducer;
  consumer: RingConsumer;
  attached: boolean;
  attachTimer: NodeJS.Timeout | undefined;
  /** The client's life line: its end of file drops the session. */
  life: LifeWatch | undefined;
  /** The agent's write end of the client's reply FIFO, held so the client sees the agent go. */
  replyFd: number | undefined;
  /** Requests run one after another on this chain. */
  queue: Promise<void>;
  queued: number;
  closing: Promise<void> | undefined;
  /** Aborted when the session is dropped: a forward of its request is not resumed for nobody. */
  gone: AbortController;
}

const MAX_QUEUED = 8;
const noInput: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: async function* () {} };

export class IpcServer {
  readonly stats = { registered: 0, dropped: 0, requests: 0, malformed: 0, refused: 0 };
  readonly #options: Required<Omit<IpcServerOptions, "files" | "log" | "dir">>;
  readonly #files: FileHandler;
  readonly #log: Logger;
  readonly #dir: string;
  readonly #sessions = new Map<number, IpcSession>();
  readonly #fifo: RequestFifo;
  readonly #sweep: NodeJS.Timeout;
  readonly #segmentPrefix: string;
  #closed = false;

  private constructor(options: IpcServerOptions) {
    this.#dir = options.dir;
    this.#files = options.files;
    this.#log = options.log.child({ component: "ipc-server" });
    this.#options = {
      slots: options.slots ?? 4,
      slotSizeBytes: options.slotSizeBytes ?? 1024 * 1024,
      maxClients: options.maxClients ?? 64,
      stallTimeoutMs: options.stallTimeoutMs ?? 60_000,
      pollMs: options.pollMs ?? 250,
      sweepMs: options.sweepMs ?? 1_000,
      attachTimeoutMs: options.attachTimeoutMs ?? 5_000,
    };
    if (this.#options.slotSizeBytes < 4096) {
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", "IPC ring slots must be at least 4096 bytes");
    }
    // RequestFifo.open refuses a directory another live agent serves, and
    // removes the stale FIFOs of a dead one; only then are its segments ours to sweep.
    this.#fifo = RequestFifo.open(options.dir, {
      onPacket: (packet) => this.receiveMessage(packet),
      onMalformed: (malformed) => this.#malformed(malformed),
      log: this.#log,
    });
    this.#segmentPrefix = segmentPrefixFor(options.dir);
    const leftovers = sweepSegments(this.#segmentPrefix);
    if (leftovers.length > 0) {
      this.#log.info({ segments: leftovers }, "IPC segments of a previous run removed");
    }
    this.#sweep = setInterval(() => this.#sweepDead(), this.#options.sweepMs);
    this.#sweep.unref();
  }

  /**
   * Creates the IPC directory and request FIFO and starts serving; a previous
   * run's FIFOs and ring segments on this directory are removed first.
   */
  static start(options: IpcServerOptions): IpcServer {
    return new IpcServer(options);
  }

  get fifoPath(): string {
    return this.#fifo.path;
  }

  get fifoStats(): Readonly<RequestFifo["stats"]> {
    return this.#fifo.stats;
  }

  get clientCount(): number {
    return this.#sessions.size;
  }

  /** Seed 000's receive_message: one whole packet from the FIFO, dispatched by type. */
  receiveMessage(packet: Packet): void {
    if (this.#closed) return;
    switch (packet.type) {
      case PacketType.REGISTER:
        this.#register(packet);
        return;
      case PacketType.ATTACHED:
        this.#known(packet, (s) => this.#attached(s));
        return;
      case PacketType.REQUEST:
        this.#known(packet, (s) => this.#enqueue(s, packet));
        return;
      case PacketType.UNREGISTER:
        this.#known(packet, (s) => void this.#drop(s, "unregistered"));
        return;
      default:
        this.#refuse(packet.clientId, packet.requestId, `packet type ${packet.type} is not for the agent`);
    }
  }

  /**
   * Seed 000's forward_request (§4, table 2), agent side: a client's request
   * handed to the file layer, which serves it here or, for a write whose
   * file another agent owns, forwards it to that agent over gRPC
   * (PeerClients.forwardRequest, rpc/forward-sender.ts), `input` streamed
   * along as it comes out of the client's ring.
   */
  forwardRequest(
    request: FileRequest,
    input: AsyncIterable<Buffer>,
    clientGone?: AbortSignal,
  ): Promise<FileReply> {
    return this.#files.handle(request, input, { forwarded: false, clientGone });
  }

  /**
   * Seed 000's send_response: the reply header, then the body streamed slot
   * by slot as it arrives (never a whole file in memory), then END.
   */
  async sendResponse(session: IpcSession, requestId: number, reply: FileReply): Promise<void> {
    await writeReplyHeader(session.producer, requestId, reply.header);
    if (reply.body) await this.forwardResponse(session, reply.body);
    await session.producer.end();
  }

  /**
   * Seed 000's forward_response, as Mosaic has it: a reply body that comes
   * from other agents (a file's pieces fetched over gRPC) or from this one's
   * store, moved into the client's ring part by part as it arrives, each
   * part waiting for free slots: never buffered whole.
   */
  async forwardResponse(session: IpcSession, body: AsyncIterable<Buffer>): Promise<void> {
    for await (const part of body) await session.producer.write(part);
  }

  /** Stops serving: drops every client (their waits end with "peer closed"), removes the FIFO. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    await this.#fifo.close();
    await Promise.all([...this.#sessions.values()].map((s) => this.#drop(s, "agent stopping")));
  }

  #known(packet: Packet, then: (session: IpcSession) => void): void {
    const session = this.#sessions.get(packet.clientId);
    if (!session) {
      this.stats.refused++;
      this.#log.warn(
        { clientId: packet.clientId, type: packet.type },
        "IPC packet from an unknown client dropped",
      );
      return;
    }
    then(session);
  }

  #refuse(clientId: number, requestId: number, why: string): void {
    this.stats.refused++;
    const session = this.#sessions.get(clientId);
    this.#log.warn({ clientId, why }, "IPC packet refused");
    if (session?.attached)
      this.#enqueueError(session, requestId, new MosaicError("MOSAIC_ERR_BAD_REQUEST", why));
  }

  #malformed(malformed: Malformed): void {
    this.stats.malformed++;
    // Only a frame whose checksum held names its sender reliably.
    if (malformed.clientId !== undefined) {
      this.#refuse(malformed.clientId, malformed.requestId ?? 0, malformed.error.message);
    }
  }

  #register(packet: Packet): void {
    const body = packet.body as { pid?: unknown; replyFifo?: unknown; lifeFifo?: unknown } | null;
    const replyFifo = typeof body?.replyFifo === "string" ? body.replyFifo : "";
    const lifeFifo = typeof body?.lifeFifo === "string" ? body.lifeFifo : "";
    const pid = body?.pid;
    const replyPath = join(this.#dir, replyFifo);
    if (!CLIENT_FIFO_PATTERN.test(replyFifo) || !ownFifo(replyPath)) {
      this.stats.refused++;
      this.#log.warn({ replyFifo }, "IPC registration without a usable reply FIFO dropped");
      return;
    }
    const answer = (reply: unknown, keep = false) => this.#answer(replyPath, packet.requestId, reply, keep);
    const lifePath = join(this.#dir, lifeFifo);
    if (!LIFE_FIFO_PATTERN.test(lifeFifo) || !ownFifo(lifePath)) {
      void answer({
        error: {
          code: "MOSAIC_ERR_BAD_REQUEST",
          message: "REGISTER: lifeFifo must name the client's client-<32 hex>.life FIFO in the IPC directory",
        },
      }).catch(() => undefined);
      return;
    }
    if (!Number.isSafeInteger(pid) || (pid as number) <= 0) {
      void answer({
        error: { code: "MOSAIC_ERR_BAD_REQUEST", message: "REGISTER: pid must be a positive integer" },
      }).catch(() => undefined);
      return;
    }
    if (this.#sessions.size >= this.#options.maxClients) {
      void answer({
        error: {
          code: "MOSAIC_ERR_STORE_FULL",
          message: `the agent serves its maximum of ${this.#options.maxClients} IPC clients`,
        },
      }).catch(() => undefined);
      return;
    }
    let session: IpcSession;
    let lifeFd: number | undefined;
    try {
      lifeFd = openReadEnd(lifePath);
      session = this.#newIpcSession(pid as number);
    } catch (error) {
      closeQuietly(lifeFd);
      const e = isMosaicError(error) ? error : new MosaicError("MOSAIC_ERR_INTERNAL", String(error));
      this.#log.error({ err: e }, "IPC rings not created");
      void answer({ error: { code: e.code, message: e.message } }).catch(() => undefined);
      return;
    } finally {
      rmSync(lifePath, { force: true }); // opened by both sides (or refused): the name can go
    }
    session.life = watchReadEnd(lifeFd, (why) => void this.#drop(session, `client process gone: ${why}`));
    answer(
      { clientId: session.id, toClient: session.toClient.name, toAgent: session.toAgent.name },
      true,
    ).then(
      (replyFd) => {
        if (session.closing) {
          closeQuietly(replyFd); // dropped meanwhile (the client died): nothing to hold
          return;
        }
        session.replyFd = replyFd;
        this.stats.registered++;
        this.#log.info(
          { clientId: session.id, pid, rings: [session.toClient.name, session.toAgent.name] },
          "IPC client registered",
        );
      },
      () => void this.#drop(session, "reply FIFO unwritable"),
    );
  }

  #newIpcSession(pid: number): IpcSession {
    const geometry = {
      slots: this.#options.slots,
      slotSizeBytes: this.#options.slotSizeBytes,
      namePrefix: this.#segmentPrefix,
    };
    const waits = { timeoutMs: this.#options.stallTimeoutMs, pollMs: this.#options.pollMs };
    const toClient = SlotRing.create(geometry);
    let toAgent: SlotRing | undefined;
    try {
      toAgent = SlotRing.create(geometry);
      let id = 0;
      // Bounded: at most maxClients ids are taken out of 2^32 - 1.
      while (id === 0 || this.#sessions.has(id)) id = randomInt(1, 2 ** 32 - 1);
      const session: IpcSession = {
        id,
        pid,
        toClient,
        toAgent,
        producer: toClient.producer(waits),
        consumer: toAgent.consumer(waits),
        attached: false,
        attachTimer: undefined,
        life: undefined,
        replyFd: undefined,
        queue: Promise.resolve(),
        queued: 0,
        closing: undefined,
        gone: new AbortController(),
      };
      session.attachTimer = setTimeout(() => {
        if (!session.attached) void this.#drop(session, "not attached in time");
      }, this.#options.attachTimeoutMs);
      session.attachTimer.unref();
      this.#sessions.set(id, session);
      return session;
    } catch (error) {
      unlinkQuietly(toClient);
      void toClient.close();
      if (toAgent) {
        unlinkQuietly(toAgent);
        void toAgent.close();
      }
      throw error;
    }
  }

  /** Writes the REGISTERED packet; with `keep`, resolves with the write end still open (the client's life line to us). */
  async #answer(
    replyPath: string,
    requestId: number,
    reply: unknown,
    keep = false,
  ): Promise<number | undefined> {
    let fd: number | undefined;
    try {
      fd = openFifoWriter(replyPath);
      await writePacket(
        fd,
        encodePacket({ type: PacketType.REGISTERED, clientId: 0, requestId, body: reply }),
        1_000,
      );
      if (!keep) return undefined;
      const kept = fd;
      fd = undefined;
      return kept;
    } catch (error) {
      this.#log.warn({ err: error, replyPath }, "IPC registration reply not delivered");
      throw error;
    } finally {
      closeQuietly(fd);
      // The client has it open (it is waiting for this reply): the name can go now.
      rmSync(replyPath, { force: true });
    }
  }

  #attached(session: IpcSession): void {
    if (session.attached) return;
    session.attached = true;
    clearTimeout(session.attachTimer);
    unlinkQuietly(session.toClient);
    unlinkQuietly(session.toAgent);
  }

  #enqueue(session: IpcSession, packet: Packet): void {
    if (!session.attached || session.closing) {
      this.#refuse(session.id, packet.requestId, "REQUEST before ATTACHED");
      return;
    }
    if (session.queued >= MAX_QUEUED) {
      this.#refuse(
        session.id,
        packet.requestId,
        `more than ${MAX_QUEUED} requests queued: one at a time per client`,
      );
      return;
    }
    this.stats.requests++;
    this.#chain(session, () => this.#serve(session, packet));
  }

  #enqueueError(session: IpcSession, requestId: number, error: MosaicError): void {
    if (session.queued >= MAX_QUEUED || session.closing) return;
    this.#chain(session, () => failRequest(session.producer, requestId, error));
  }

  #chain(session: IpcSession, job: () => Promise<void>): void {
    session.queued++;
    session.queue = session.queue
      .then(job)
      .catch((error) => {
        // A ring that failed (client died, closed, stalled) ends the session; nothing else does.
        if (error instanceof RingError) return this.#drop(session, error.message);
        this.#log.error({ err: error, clientId: session.id }, "IPC request failed unexpectedly");
        return this.#drop(session, "internal error");
      })
      .finally(() => {
        session.queued--;
      });
  }

  async #serve(session: IpcSession, packet: Packet): Promise<void> {
    const body = packet.body as { request?: unknown; range?: unknown } | null;
    const raw = body?.request;
    const sendsData = (raw as { op?: unknown } | undefined)?.op === "put";
    const input = sendsData ? this.#input(session) : undefined;
    let reply: FileReply;
    try {
      const request: FileRequest = validateFileRequest(raw);
      reply =
        body?.range === undefined
          ? await this.forwardRequest(request, input?.iterable ?? noInput, session.gone.signal)
          : await this.#rangedGet(request, body.range);
    } catch (error) {
      if (error instanceof RingError) throw error;
      await input?.drain(); // keep the ring in step: the client sends its data whatever we think of it
      await failRequest(session.producer, packet.requestId, asMosaicError(error));
      return;
    }
    await input?.drain();
    try {
      await this.sendResponse(session, packet.requestId, reply);
    } catch (error) {
      if (error instanceof RingError) throw error;
      await failRequest(session.producer, packet.requestId, asMosaicError(error)); // e.g. unreadable mid-file
    }
  }

  /** A get of bytes [start, end) only, through a handler that reads ranges itself (byte-range.ts). */
  async #rangedGet(request: FileRequest, rawRange: unknown): Promise<FileReply> {
    if (request.op !== "get") {
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `a byte range goes with get, not ${request.op}`);
    }
    const files = this.#files;
    if (!canReadRanges(files)) {
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", "this agent's file handler cannot read byte ranges");
    }
    const wanted = validateByteRange(rawRange);
    const manifest = await files.manifest(request.volume, request.name);
    const range = clampToFile(wanted, manifest.sizeBytes);
    return {
      header: { manifest, range },
      body: range.start === range.end ? undefined : files.read(manifest, range),
    };
  }

  /**
   * A put's data as the handler's `input`, until the client's END. Each slot
   * is copied out, since a handler may keep a Buffer past the next one and a
   * slot is reused once released; a handler that declares
   * `consumesInputInPlace` (it is done with each Buffer before it asks for
   * the next) gets the ring's views themselves, each slot released only when
   * the next is asked for.
   */
  #input(session: IpcSession): { iterable: AsyncGenerator<Buffer>; drain: () => Promise<void> } {
    const consumer = session.consumer;
    const inPlace = (this.#files as { consumesInputInPlace?: unknown }).consumesInputInPlace === true;
    let ended = false;
    async function* iterable(): AsyncGenerator<Buffer> {
      // Bounded by the client's END (or a ring error).
      for (;;) {
        const view = await consumer.next();
        if (view === null) {
          ended = true;
          consumer.restart();
          return;
        }
        // consumer.next() releases this view's slot, so a view is never reused while the handler has it.
        yield inPlace ? view : Buffer.from(view);
      }
    }
    const generator = iterable();
    return {
      iterable: generator,
      drain: async () => {
        if (consumer.closed) throw new RingError("closed", `ring ${session.toAgent.name}: the session ended`);
        // return() waits for a next() the handler may still have pending, so the ring has one reader.
        await generator.return(undefined).catch((error) => {
          if (error instanceof RingError) throw error;
        });
        consumer.release();
        // Bounded by the client's END (or a ring error).
        while (!ended) {
          try {
            if ((await consumer.next()) === null) ended = true;
          } catch (error) {
            if (error instanceof RingError) throw error;
            ended = true; // the client sent an ERROR slot: its stream ends there
          }
        }
        consumer.restart();
      },
    };
  }

  /** The /proc second check (same pid namespace only); before ATTACHED the life line and attach timeout suffice. */
  #sweepDead(): void {
    for (const session of this.#sessions.values()) {
      if (!session.attached) continue;
      const alive = session.toClient.attachedAlive("consumer") && session.toAgent.attachedAlive("producer");
      if (!alive) void this.#drop(session, "client process gone");
    }
  }

  /** Ends a session: wakes any wait on its rings, unmaps them, forgets it. */
  #drop(session: IpcSession, why: string): Promise<void> {
    session.closing ??= (async () => {
      session.gone.abort();
      clearTimeout(session.attachTimer);
      session.life?.close();
      closeQuietly(session.replyFd); // the client's watch on us ends: it stops waiting at once
      session.replyFd = undefined;
      this.#sessions.delete(session.id);
      this.stats.dropped++;
      this.#log.info({ clientId: session.id, pid: session.pid, why }, "IPC client dropped");
      unlinkQuietly(session.toClient);
      unlinkQuietly(session.toAgent);
      await Promise.all([session.toClient.close(), session.toAgent.close()]);
    })();
    return session.closing;
  }
}

function asMosaicError(error: unknown): MosaicError {
  return isMosaicError(error) ? error : new MosaicError("MOSAIC_ERR_INTERNAL", String(error));
}

function ownFifo(path: string): boolean {
  try {
    const stat = lstatSync(path);
    return stat.isFIFO() && (typeof process.getuid !== "function" || stat.uid === process.getuid());
  } catch {
    return false;
  }
}

function unlinkQuietly(ring: SlotRing): void {
  try {
    ring.unlink();
  } catch {
    // already gone, or never ours to remove: nothing is left either way
  }
}
