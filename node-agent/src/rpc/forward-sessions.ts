// The owner's side of a resumable forward (Peer/Forward). A write forwarded
// here runs as a session that outlives its stream: if the stream breaks (a
// NIC died under it), the write keeps waiting for its input for a grace
// period, and the sender resumes it on its other channel at the offset this
// side reports. The input is acknowledged as the write consumes it, so the
// sender keeps only what is not yet acknowledged (bounded), whatever the
// file's size. A session nobody resumes fails its write at the end of the
// grace: the writer removes its pieces and writes no manifest, so nothing
// half-written is ever visible, and nothing was acknowledged to the client.
//
// Stream protocol (messages.ts): the sender sends a ForwardHeader, then the
// input as raw messages, then one empty message (the end of the input; a
// stream that ends without it broke). This side answers `from` at once, `ack`
// every ackEveryBytes consumed, and `reply` with the write's outcome, or an
// error status.
import type * as grpc from "@grpc/grpc-js";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { FileReply } from "./file-handler.ts";
import type { FileRequest, ForwardHeader } from "./messages.ts";
import { encodeJson, toServiceError } from "./wire.ts";

/** How long a session whose stream broke waits for the sender to resume it. */
export const FORWARD_RESUME_GRACE_MS = 10_000;
/**
 * How long a finished session keeps its reply for a sender that did not get
 * it. Longer than the grace: a reply written into a connection that then
 * stalls is missed only when keepalive ends it (10 s + 5 s), and the write
 * it reports must not be redone or reported lost for want of it.
 */
export const FORWARD_REPLY_LINGER_MS = 60_000;
/** The owner acknowledges the input this often: the sender's unacknowledged bytes stay near its window. */
export const FORWARD_ACK_BYTES = 4 * 1024 * 1024;

export type ForwardCall = grpc.ServerDuplexStream<Buffer, Buffer>;

export interface ForwardSessionsOptions {
  /** Serves the forwarded request (FileService.handle with origin forwarded). */
  handle(request: FileRequest, input: AsyncIterable<Buffer>): Promise<FileReply>;
  log: Logger;
  graceMs?: number;
  ackEveryBytes?: number;
}

/** Every forward in progress here, by session id. */
export class ForwardSessions {
  readonly #sessions = new Map<string, Session>();
  readonly #options: Required<ForwardSessionsOptions>;

  constructor(options: ForwardSessionsOptions) {
    this.#options = {
      graceMs: FORWARD_RESUME_GRACE_MS,
      ackEveryBytes: FORWARD_ACK_BYTES,
      ...options,
      log: options.log.child({ component: "forward" }),
    };
  }

  /**
   * A Forward stream arrived (its header read, `data` the rest): starts its
   * session, or hands the stream to the session it resumes. Throws (before
   * anything else happens) for a resume of a session that is gone or a
   * request that is not the session's.
   */
  serve(header: ForwardHeader, call: ForwardCall, data: AsyncIterable<Buffer>): void {
    const { session: id, request } = header;
    if (request.op !== "put" && request.op !== "delete") {
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `Forward: only put and delete are forwarded, not ${JSON.stringify(request.op)}`,
      );
    }
    let session = this.#sessions.get(id);
    if (session === undefined) {
      if (header.resume && header.fromStart === true && request.op === "put") {
        this.#options.log.warn(
          { session: id, volume: request.volume, name: request.name },
          "forward resumed after its session was gone; the sender holds the whole input, so the put starts again",
        );
      } else if (header.resume) {
        throw new MosaicError(
          "MOSAIC_ERR_PEER_UNAVAILABLE",
          `forward session ${id} is not here (it was not resumed within ${this.#options.graceMs} ms, ` +
            `or this agent restarted); nothing of it was stored`,
        );
      }
      session = new Session(id, request, this.#options, () => this.#sessions.delete(id));
      this.#sessions.set(id, session);
      session.attach(call, data);
      session.start();
      return;
    }
    // A sender that never saw `from` opens again with resume false: the same session.
    if (JSON.stringify(request) !== JSON.stringify(session.request)) {
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `forward session ${id} belongs to another request`);
    }
    session.attach(call, data);
  }

  /** Sessions held now (tests: none left behind). */
  get size(): number {
    return this.#sessions.size;
  }
}

const BROKEN = Symbol("broken");

/** One stream of a session. Broken once cancelled, failed, ended without the end marker, or superseded. */
class Link {
  readonly call: ForwardCall;
  readonly data: AsyncIterator<Buffer>;
  readonly broken: Promise<typeof BROKEN>;
  isBroken = false;
  #break!: () => void;

  constructor(call: ForwardCall, data: AsyncIterable<Buffer>) {
    this.call = call;
    this.data = data[Symbol.asyncIterator]();
    this.broken = new Promise((resolve) => {
      this.#break = () => resolve(BROKEN);
    });
    const brk = () => this.break();
    call.once("cancelled", brk);
    call.once("close", brk);
  }

  break(): void {
    this.isBroken = true;
    this.#break();
  }
}

type Outcome = { ok: true; header: unknown } | { ok: false; error: unknown };

class Session {
  readonly id: string;
  readonly request: FileRequest;
  readonly #options: Required<ForwardSessionsOptions>;
  readonly #remove: () => void;
  readonly #log: Logger;
  /** Input bytes handed to the write so far: where a resumed stream continues. */
  #received = 0;
  #acked = 0;
  #link: Link | undefined;
  #waiting: { resolve: (link: Link) => void; reject: (error: Error) => void } | undefined;
  #abandoned: MosaicError | undefined;
  #outcome: Outcome | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    id: string,
    request: FileRequest,
    options: Required<ForwardSessionsOptions>,
    remove: () => void,
  ) {
    this.id = id;
    this.request = request;
    this.#options = options;
    this.#remove = remove;
    this.#log = options.log.child({ session: id, op: request.op });
  }

  start(): void {
    this.#options.handle(this.request, this.#input()).then(
      (reply) => this.#settle({ ok: true, header: reply.header }),
      (error) => this.#settle({ ok: false, error }),
    );
  }

  /** Takes `call` as the session's stream: says where its input continues, and replies at once if the write is done. */
  attach(call: ForwardCall, data: AsyncIterable<Buffer>): void {
    const link = new Link(call, data);
    const old = this.#link;
    this.#link = link;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (old !== undefined && !old.isBroken) {
      // Most likely stuck behind a dead NIC: end it, so it holds nothing once its connection goes.
      old.break();
      old.call.emit(
        "error",
        toServiceError(new MosaicError("MOSAIC_ERR_PEER_UNAVAILABLE", "forward resumed on another stream")),
      );
    }
    if (old !== undefined || this.#received > 0) {
      this.#log.info({ receivedBytes: this.#received, peer: call.getPeer() }, "forward resumed");
    }
    link.broken.then(() => this.#detach(link));
    call.write(encodeJson({ from: this.#received }));
    this.#acked = this.#received;
    this.#waiting?.resolve(link);
    this.#waiting = undefined;
    if (this.#outcome !== undefined) {
      this.#deliver(link, this.#outcome);
      this.#removeAfter(FORWARD_REPLY_LINGER_MS);
    }
  }

  /** The write's input: the current stream's data, across resumes, until the end marker. */
  async *#input(): AsyncGenerator<Buffer> {
    for (;;) {
      const link = await this.#linked();
      const next = link.data.next();
      const r = await Promise.race([next.catch((): typeof BROKEN => BROKEN), link.broken]);
      // A stream replaced meanwhile: what it delivered is not counted, and is sent again from `from`.
      if (r === BROKEN || link.isBroken || link !== this.#link) {
        next.catch(() => {});
        link.break();
        continue;
      }
      if (r.done) {
        link.break(); // ended without the end marker: the sender stopped (or its stream was cut)
        continue;
      }
      if (r.value.length === 0) return;
      this.#received += r.value.length;
      if (this.#received - this.#acked >= this.#options.ackEveryBytes) {
        this.#acked = this.#received;
        link.call.write(encodeJson({ ack: this.#received }));
      }
      yield r.value;
    }
  }

  /** The stream to read from: the current one, or the next one attached within the grace. */
  #linked(): Promise<Link> {
    if (this.#abandoned !== undefined) return Promise.reject(this.#abandoned);
    const link = this.#link;
    if (link !== undefined && !link.isBroken) return Promise.resolve(link);
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  #detach(link: Link): void {
    if (this.#link !== link) return;
    this.#link = undefined;
    if (this.#outcome !== undefined) return; // the reply waits for a resume until the linger timer ends
    this.#log.info(
      { receivedBytes: this.#received, graceMs: this.#options.graceMs },
      "forward stream broke; waiting for the sender to resume it",
    );
    this.#timer = setTimeout(() => this.#abandon(), this.#options.graceMs);
    this.#timer.unref();
  }

  #removeAfter(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#remove(), ms);
    this.#timer.unref();
  }

  #abandon(): void {
    const r = this.request as Extract<FileRequest, { op: "put" | "delete" }>;
    this.#abandoned = new MosaicError(
      "MOSAIC_ERR_PEER_UNAVAILABLE",
      `forwarded ${r.op} of ${r.volume}/${r.name}: the stream broke off after ${this.#received} bytes and ` +
        `was not resumed within ${this.#options.graceMs} ms`,
    );
    this.#log.warn({ receivedBytes: this.#received }, "forward not resumed; abandoning its write");
    this.#waiting?.reject(this.#abandoned);
    this.#waiting = undefined;
    this.#remove();
  }

  #settle(outcome: Outcome): void {
    this.#outcome = outcome;
    clearTimeout(this.#timer);
    if (this.#abandoned !== undefined) return; // nobody to tell; already removed
    if (this.#link !== undefined) this.#deliver(this.#link, outcome);
    // Kept a while: a sender whose stream broke before the reply arrived fetches it by resuming.
    this.#removeAfter(Math.max(FORWARD_REPLY_LINGER_MS, this.#options.graceMs));
  }

  #deliver(link: Link, outcome: Outcome): void {
    if (outcome.ok) {
      link.call.write(encodeJson({ reply: outcome.header }));
      link.call.end();
    } else {
      link.call.emit("error", toServiceError(outcome.error));
    }
  }
}
