// Streams a file's bytes into an HTTP response at the pace the client takes
// them: a write the socket cannot take yet waits for 'drain', so at most a
// few stripes are ever held for one response. A client that goes away
// (players cancel requests whenever they seek) ends the read: the reader is
// returned, its fetches in flight settle, and nothing is left behind.
import type { ServerResponse } from "node:http";

export interface Sent {
  bytes: number;
  /** The client closed the connection before the whole body reached it. */
  aborted: boolean;
}

/**
 * Writes `first` (already read, so errors before any byte could still be
 * answered with a status) and then the rest of `body`, and ends the
 * response. A failure of the body mid-way is thrown after the response is
 * destroyed: the client sees a cut connection, never a short body taken as
 * whole.
 */
export async function streamBody(
  res: ServerResponse,
  first: IteratorResult<Buffer>,
  body: AsyncGenerator<Buffer>,
): Promise<Sent> {
  let closed = res.destroyed;
  let wake: (() => void) | undefined;
  const onClose = () => {
    closed = true;
    wake?.();
  };
  const onDrain = () => wake?.();
  res.on("close", onClose);
  res.on("drain", onDrain);
  let bytes = 0;
  try {
    for (let part = first; !part.done; part = await body.next()) {
      if (closed) return { bytes, aborted: true };
      bytes += part.value.length;
      if (!res.write(part.value)) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        if (closed) return { bytes, aborted: true };
      }
    }
    if (closed) return { bytes, aborted: true };
    const done = new Promise<void>((resolve) => {
      wake = resolve;
      res.once("finish", resolve);
    });
    res.end();
    await done;
    return { bytes, aborted: !res.writableFinished };
  } catch (error) {
    res.destroy();
    throw error;
  } finally {
    res.off("close", onClose);
    res.off("drain", onDrain);
    // Settles the reader's stripes in flight when we stopped early; a no-op when it ran to its end.
    await body.return(undefined);
  }
}
