// Progress of a transfer: a live bar on a terminal, a few plain lines when
// the output is a file or a pipe (so logs of `npm start` stay readable), or
// nothing at all for scripts.
import type { Writable } from "node:stream";
import { SingleBar } from "cli-progress";
import { formatBytes, formatRate } from "./format.ts";

export type ProgressMode = "bar" | "lines" | "none";

export interface Progress {
  /** Adds bytes just transferred. */
  add(bytes: number): void;
  stop(): void;
}

/** A bar when `stream` is a terminal, else `otherwise`. */
export function progressMode(stream: Writable & { isTTY?: boolean }, otherwise: ProgressMode): ProgressMode {
  return stream.isTTY === true ? "bar" : otherwise;
}

export function startProgress(
  label: string,
  totalBytes: number | undefined,
  stream: Writable,
  mode: ProgressMode,
): Progress {
  if (mode === "bar") return barProgress(label, totalBytes, stream);
  if (mode === "lines") return lineProgress(label, totalBytes, stream);
  return { add: () => {}, stop: () => {} };
}

function barProgress(label: string, totalBytes: number | undefined, stream: Writable): Progress {
  const known = totalBytes !== undefined && totalBytes > 0;
  const bar = new SingleBar({
    stream,
    format: known
      ? `${label} [{bar}] {percentage}% | {done} of {size} | {rate} | eta {eta_formatted}`
      : `${label} {done} | {rate}`,
    barsize: 30,
    hideCursor: true,
    fps: 10,
    etaBuffer: 50,
  });
  const started = performance.now();
  let done = 0;
  const payload = () => ({
    done: formatBytes(done),
    size: formatBytes(totalBytes ?? 0),
    rate: formatRate(done, performance.now() - started),
  });
  bar.start(known ? totalBytes : 1, 0, payload());
  let stopped = false;
  return {
    add: (bytes) => {
      done += bytes;
      if (!stopped) bar.update(known ? done : 0, payload());
    },
    stop: () => {
      if (stopped) return;
      stopped = true;
      bar.update(known ? done : 0, payload());
      bar.stop();
    },
  };
}

/** A line at every quarter of a known size, or every few seconds of an unknown one. */
function lineProgress(label: string, totalBytes: number | undefined, stream: Writable): Progress {
  const started = performance.now();
  let done = 0;
  let nextQuarter = 1;
  let lastLineMs = started;
  const line = () => {
    const of = totalBytes === undefined ? "" : ` of ${formatBytes(totalBytes)}`;
    stream.write(`${label} ${formatBytes(done)}${of}, ${formatRate(done, performance.now() - started)}\n`);
  };
  return {
    add: (bytes) => {
      done += bytes;
      if (totalBytes !== undefined && totalBytes > 0) {
        if (done < totalBytes && done >= (totalBytes * nextQuarter) / 4) {
          while (done >= (totalBytes * nextQuarter) / 4) nextQuarter += 1;
          line();
        }
      } else if (performance.now() - lastLineMs > 5000) {
        lastLineMs = performance.now();
        line();
      }
    },
    stop: () => {},
  };
}

/** Passes a stream through, counting its bytes into `progress`. */
export async function* counted(source: AsyncIterable<Buffer>, progress: Progress): AsyncGenerator<Buffer> {
  for await (const part of source) {
    progress.add(part.length);
    yield part;
  }
}
