// Node streams over the IPC client's async iterables, with backpressure end
// to end: a Readable pulls the next slot only when its reader wants more (so
// a slow reader leaves the ring full and the agent waiting on Empty, and
// memory stays at one slot's copy plus the stream's buffer), and a Writable
// calls back for a chunk only once the put has copied it into the ring.
import { Readable, Writable } from "node:stream";
import { MosaicError } from "../errors.ts";

/**
 * A Readable of the views `open()` yields. Each view is copied as it is
 * pushed: a Readable buffers chunks and a pipe may hold them longer, while a
 * view is valid only until its slot is released at the next pull. (The
 * iterator itself is the zero-copy way to read.) Errors arrive as the
 * stream's 'error', with the agent's MosaicError.
 */
export function readableOf(open: () => Promise<AsyncIterable<Buffer>>, highWaterMark: number): Readable {
  let iterator: AsyncIterator<Buffer> | undefined;
  return new Readable({
    highWaterMark,
    read() {
      (async () => {
        iterator ??= (await open())[Symbol.asyncIterator]();
        const next = await iterator.next();
        this.push(next.done ? null : Buffer.from(next.value));
      })().catch((error) => this.destroy(error));
    },
    destroy(error, callback) {
      // Stopping early: the client reads the rest to its END, so the ring is in step for the next call.
      const done = iterator?.return?.();
      Promise.resolve(done).then(
        () => callback(error),
        (stopError) => callback(error ?? stopError),
      );
    },
  });
}

/**
 * A Writable whose chunks become the async iterable `write` consumes (a put),
 * one chunk at a time: write's callback fires when `write` asks for the next
 * chunk, i.e. after it copied this one into the ring. `write` starts at once;
 * its result is `done`. A stream destroyed with an error ends the iterable
 * with that error, which the put sends to the agent as an ERROR slot (no
 * file is written).
 */
export function writableInto<T>(
  write: (data: AsyncIterable<Uint8Array>) => Promise<T>,
  highWaterMark: number,
): { stream: Writable; done: Promise<T> } {
  let offered: { chunk: Uint8Array; taken: (error?: Error) => void } | undefined;
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const signal = () => {
    wake?.();
    wake = undefined;
  };
  async function* chunks(): AsyncGenerator<Uint8Array> {
    // Bounded by the stream's end or destruction.
    for (;;) {
      while (offered === undefined && !ended && failure === undefined) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      if (failure) throw failure;
      if (offered === undefined) return; // ended
      const { chunk, taken } = offered;
      offered = undefined;
      yield chunk;
      taken(); // asked for the next: this one is in the ring
    }
  }
  const done = write(chunks());
  const stream = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      offered = { chunk, taken: callback };
      signal();
    },
    final(callback) {
      ended = true;
      signal();
      done.then(
        () => callback(),
        (error) => callback(error),
      );
    },
    destroy(error, callback) {
      if (!ended || error) {
        failure = asError(error);
        signal();
      }
      done.then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
  // A put that fails before the end (the ring broke, the agent went away) fails the stream.
  done.catch((error) => {
    offered?.taken(error);
    offered = undefined;
    if (!stream.destroyed && !stream.writableFinished) stream.destroy(error);
  });
  return { stream, done };
}

function asError(error: Error | null): Error {
  return error ?? new MosaicError("MOSAIC_ERR_BAD_REQUEST", "the write stream was destroyed before its end");
}
