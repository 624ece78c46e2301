// Stream plumbing shared by every gRPC handler and client: split a stream
// into its header and its data, and write data with backpressure.
import type { Writable } from "node:stream";
import { MosaicError } from "../errors.ts";
import { DATA_MESSAGE_BYTES, fromServiceError } from "./wire.ts";

export interface HeadedStream {
  header: Buffer;
  data: AsyncIterable<Buffer>;
}

/** First message as the header, the rest as data. An empty stream is a clear error. */
export async function splitHeader(stream: AsyncIterable<unknown>, what: string): Promise<HeadedStream> {
  const iterator = stream[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `${what}: stream ended before its header`);
  const data: AsyncIterable<Buffer> = {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        const r = await iterator.next();
        if (!r.done && !Buffer.isBuffer(r.value)) {
          throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `${what}: data message is not bytes`);
        }
        return r as IteratorResult<Buffer>;
      },
      // A consumer that stops early (a failed write) must not wait for the
      // gRPC stream to be torn down: the call's status ends it.
      return: async () => ({ done: true, value: undefined }) as IteratorResult<Buffer>,
    }),
  };
  return { header: first.value as Buffer, data };
}

/** Gathers a bounded data stream; refuses more than `maxBytes`. */
export async function collect(
  data: AsyncIterable<Buffer>,
  maxBytes: number,
  what: string,
): Promise<Buffer[]> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const part of data) {
    total += part.length;
    if (total > maxBytes) {
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `${what}: more than the announced ${maxBytes} bytes`);
    }
    parts.push(part);
  }
  return parts;
}

/** Yields `buffers` cut into messages of at most DATA_MESSAGE_BYTES, without copying. */
export function* messages(buffers: Iterable<Buffer>): Generator<Buffer> {
  for (const buffer of buffers) {
    for (let offset = 0; offset < buffer.length; offset += DATA_MESSAGE_BYTES) {
      yield buffer.subarray(offset, offset + DATA_MESSAGE_BYTES);
    }
  }
}

/** Writes every message, waiting for 'drain' whenever the stream says it is full. */
export async function writeAll(
  stream: Writable,
  source: Iterable<Buffer> | AsyncIterable<Buffer>,
): Promise<void> {
  for await (const buffer of source) {
    for (const message of messages([buffer])) {
      if (!stream.write(message)) await drained(stream);
    }
  }
}

function drained(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      stream.off("drain", done);
      stream.off("error", done);
      stream.off("close", closed);
      if (error) reject(error);
      else resolve();
    };
    const closed = () => done(new MosaicError("MOSAIC_ERR_PEER_UNAVAILABLE", "stream closed while writing"));
    stream.once("drain", done);
    stream.once("error", done);
    stream.once("close", closed);
  });
}

/**
 * The data of a call's reply, for a consumer: errors become MosaicErrors
 * naming the peer, and a consumer that stops early cancels the call, so the
 * sender stops and frees what it holds.
 */
export async function* replyBody(
  data: AsyncIterable<Buffer>,
  call: { cancel(): void },
  peer: string,
): AsyncGenerator<Buffer> {
  let finished = false;
  try {
    yield* data;
    finished = true;
  } catch (error) {
    finished = true;
    throw fromServiceError(error, peer);
  } finally {
    if (!finished) call.cancel();
  }
}
