// The sender's side of a resumable forward (seed 000's forward_request): a
// client's put or delete handed, with its streaming input, to the file's
// owner. The input is read at most FORWARD_WINDOW_BYTES ahead of what the
// owner has acknowledged, and kept until it is acknowledged; when the stream
// breaks (a channel lost, a connection cut) the forward resumes on the other
// channel under the same session, from the offset the owner reports
// (forward-sessions.ts). The client sees an error only if the owner itself
// fails the request, or cannot be reached on either channel within its grace.
//
// A forward outlives a broken stream, not its client. Once the client is
// gone it sees no reply either way, and a put started again from its start
// (the owner lost the session) would be a new version, newer than any write
// acknowledged to someone else meanwhile: a dead application's old data
// would come back over the newer file. So no stream is opened for it again.
import { randomUUID } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { isMosaicError, MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { CHANNEL_NAMES, type ChannelIndex, ChannelLost, unlessAborted } from "./calls-in-flight.ts";
import { type FileRequest, type ForwardHeader, validateForwardControl } from "./messages.ts";
import { writeAll } from "./streams.ts";
import { decodeJson, encodeJson, fromServiceError, isTransportFailure } from "./wire.ts";

/** Input read ahead of the owner's acknowledgements, at most: the memory a forward may hold. */
export const FORWARD_WINDOW_BYTES = 32 * 1024 * 1024;
/** Streams one forward may open: the first, and resumes after breaks (two per channel loss is plenty). */
const ATTEMPTS_MAX = 8;

export interface ForwardStream {
  call: grpc.ClientDuplexStream<Buffer, Buffer>;
  peer: string;
  channel: ChannelIndex;
  /** Aborts when the stream's channel is lost. */
  signal: AbortSignal;
  /** The stream ended: it no longer counts as in flight. */
  done(): void;
}

/** How a forward reaches the owner: PeerClients' channel choice, calls in flight and reconnect waits. */
export interface ForwardRoute {
  /** The channel for the first stream. */
  first(): Promise<ChannelIndex>;
  /** The channel to resume on after a stream on `broken` failed. */
  next(broken: ChannelIndex): ChannelIndex;
  /** Waits for either channel to connect again (once per failure episode); undefined: neither will. */
  reconnected(): Promise<ChannelIndex | undefined>;
  open(channel: ChannelIndex): ForwardStream;
}

/** Forwards `request` and its input to the owner; resolves with the owner's reply header. */
export async function forwardResumably(
  route: ForwardRoute,
  request: FileRequest,
  input: AsyncIterable<Buffer>,
  log: Logger,
  options: { windowBytes?: number; clientGone?: AbortSignal } = {},
): Promise<Buffer> {
  const { windowBytes = FORWARD_WINDOW_BYTES, clientGone } = options;
  const session = randomUUID();
  const outbox = new Outbox(windowBytes);
  void outbox.fill(input);
  const broken: string[] = [];
  let resume = false;
  let idle = 0; // streams in a row that never reached the owner
  try {
    let channel = await route.first();
    for (let attempt = 1; ; attempt++) {
      const stream = route.open(channel);
      const progress = { reached: false };
      try {
        // A put whose input is all still held can start over if the owner lost the session.
        const fromStart = resume && request.op === "put" && outbox.acked === 0;
        const header = fromStart ? { session, request, resume, fromStart } : { session, request, resume };
        return await sendOn(stream, header, outbox, progress, log);
      } catch (error) {
        const failure = fromServiceError(error, stream.peer);
        if (!resumable(error) || attempt >= ATTEMPTS_MAX) throw withHistory(failure, broken);
        if (clientGone?.aborted) throw withHistory(notResumed(failure), broken);
        broken.push(failure.message);
        resume ||= progress.reached;
        idle = progress.reached ? 0 : idle + 1;
        // Neither channel took a stream: give them their next connect attempt, once.
        const next = idle >= 2 ? await route.reconnected() : route.next(channel);
        if (next === undefined) throw withHistory(failure, broken.slice(0, -1));
        if (clientGone?.aborted) throw withHistory(notResumed(failure), broken.slice(0, -1));
        log.info(
          {
            session,
            peer: stream.peer,
            from: CHANNEL_NAMES[channel],
            to: CHANNEL_NAMES[next],
            ackedBytes: outbox.acked,
            readBytes: outbox.read,
            err: failure.message,
          },
          "forward moved to the other channel",
        );
        channel = next;
      }
    }
  } finally {
    outbox.close();
  }
}

/** A stream broken under the forward (transport), as opposed to the owner's verdict: worth resuming. */
function resumable(error: unknown): boolean {
  return error instanceof ChannelLost || isTransportFailure(error);
}

function notResumed(failure: MosaicError): MosaicError {
  return new MosaicError(failure.code, `${failure.message}; not resumed: the client that sent it is gone`, {
    cause: failure,
  });
}

function withHistory(failure: MosaicError, broken: string[]): MosaicError {
  if (broken.length === 0) return failure;
  return new MosaicError(
    failure.code,
    `${failure.message} (after ${broken.length} broken stream${broken.length === 1 ? "" : "s"}: ${broken.join("; ")})`,
    { cause: failure },
  );
}

const never = () => new Promise<never>(() => {});

/**
 * One stream of the forward: the header, the input from where the owner
 * says, the end marker; resolves with the reply. Rejects with the raw gRPC
 * error (so a broken stream can be told from the owner's verdict), the
 * ChannelLost that aborted it, or the input's failure.
 */
async function sendOn(
  stream: ForwardStream,
  header: ForwardHeader,
  outbox: Outbox,
  progress: { reached: boolean },
  log: Logger,
): Promise<Buffer> {
  const { call, peer, signal } = stream;
  const over = new AbortController();
  const cancel = () => call.cancel();
  signal.addEventListener("abort", cancel, { once: true });
  call.on("error", () => {}); // errors surface through the reply iterator
  const replies = call[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const control = async () => {
    const r = await replies.next();
    if (r.done)
      throw new MosaicError("MOSAIC_ERR_INTERNAL", `Forward to ${peer}: stream ended without a reply`);
    return decodeJson(r.value, `Forward reply from ${peer}`, validateForwardControl);
  };
  const exchange = async (): Promise<Buffer> => {
    call.write(encodeJson(header));
    const first = await control();
    if (!("from" in first) || first.from < outbox.acked || first.from > outbox.read) {
      throw new MosaicError(
        "MOSAIC_ERR_INTERNAL",
        `Forward to ${peer}: the owner resumes at ${JSON.stringify(first)}, ` +
          `but bytes ${outbox.acked}–${outbox.read} are what is held here`,
      );
    }
    progress.reached = true;
    if (header.resume || first.from > 0) {
      log.info({ session: header.session, peer, resumedAtByte: first.from }, "forward resumed");
    }
    outbox.ack(first.from);
    const sent = writeAll(call, outbox.from(first.from, over.signal)).then(() => {
      if (over.signal.aborted) return;
      call.write(Buffer.alloc(0));
      call.end();
    });
    // The client's input failing ends the forward; a broken stream shows in the replies instead.
    const inputFailed = sent.then(never, () => {
      if (outbox.failure === undefined) return never();
      throw outbox.failure;
    });
    const replied = (async () => {
      for (;;) {
        const message = await control();
        if ("ack" in message) outbox.ack(message.ack);
        else if ("reply" in message) return encodeJson(message.reply);
      }
    })();
    return Promise.race([replied, inputFailed]);
  };
  try {
    return await unlessAborted(exchange(), signal);
  } catch (error) {
    call.cancel();
    throw error;
  } finally {
    over.abort();
    signal.removeEventListener("abort", cancel);
    stream.done();
  }
}

/**
 * The forward's input as read from the client: kept from the owner's last
 * acknowledgement on, read at most `window` bytes (and one part) ahead of it.
 */
export class Outbox {
  readonly #window: number;
  readonly #parts: Buffer[] = [];
  /** Input offset of #parts[0]: everything before it is acknowledged and dropped. */
  #base = 0;
  #read = 0;
  #ended = false;
  #closed = false;
  #failure: unknown;
  #wake: (() => void)[] = [];

  constructor(windowBytes: number) {
    this.#window = windowBytes;
  }

  /** Bytes acknowledged by the owner (and dropped here). */
  get acked(): number {
    return this.#base;
  }

  /** Bytes read from the input. */
  get read(): number {
    return this.#read;
  }

  /** Bytes held: read and not yet acknowledged. */
  get heldBytes(): number {
    return this.#read - this.#base;
  }

  get failure(): unknown {
    return this.#failure;
  }

  /** Reads the input into the outbox, pausing while the window is full; stops at close(). */
  async fill(input: AsyncIterable<Buffer>): Promise<void> {
    try {
      for await (const part of input) {
        if (part.length === 0) continue;
        while (this.#read - this.#base >= this.#window && !this.#closed) await this.#changed();
        if (this.#closed) return;
        this.#parts.push(part);
        this.#read += part.length;
        this.#notify();
      }
      this.#ended = true;
    } catch (error) {
      this.#failure = new MosaicError(
        isMosaicError(error) ? error.code : "MOSAIC_ERR_INTERNAL",
        `forwarded input failed: ${(error as Error).message}`,
        { cause: error },
      );
    } finally {
      this.#notify();
    }
  }

  /** The owner has everything before `offset`: drop it, and let the input read on. */
  ack(offset: number): void {
    if (offset <= this.#base || offset > this.#read) return;
    while (this.#parts.length > 0) {
      const part = this.#parts[0] as Buffer;
      const end = this.#base + part.length;
      if (end <= offset) {
        this.#parts.shift();
        this.#base = end;
      } else {
        this.#parts[0] = part.subarray(offset - this.#base);
        this.#base = offset;
        break;
      }
    }
    this.#notify();
  }

  /** The input from `offset` (≥ acked) on, as it arrives, until it ends or `stop` aborts; throws if it failed. */
  async *from(offset: number, stop?: AbortSignal): AsyncGenerator<Buffer> {
    let at = offset;
    for (;;) {
      if (this.#closed || stop?.aborted === true) return;
      if (at < this.#base)
        throw new MosaicError("MOSAIC_ERR_INTERNAL", `forward: byte ${at} already dropped`);
      if (at < this.#read) {
        const pending: Buffer[] = [];
        let start = this.#base;
        for (const part of this.#parts) {
          const end = start + part.length;
          if (end > at) pending.push(at > start ? part.subarray(at - start) : part);
          start = end;
        }
        at = this.#read;
        yield* pending;
        continue;
      }
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#ended) return;
      await this.#changed(stop);
    }
  }

  /** The forward is over: stop reading, wake everyone. */
  close(): void {
    this.#closed = true;
    this.#parts.length = 0;
    this.#notify();
  }

  #changed(stop?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (stop === undefined) {
        this.#wake.push(resolve);
        return;
      }
      const wake = () => {
        stop.removeEventListener("abort", wake);
        resolve();
      };
      stop.addEventListener("abort", wake, { once: true });
      this.#wake.push(wake);
    });
  }

  #notify(): void {
    for (const wake of this.#wake.splice(0)) wake();
  }
}
