// An application process for the client library tests (MosaicFiles): one
// task per process, results back to the test as IPC messages ({ ok, ... }).
//   pipes <dir> <name> <src> <dst> <rangeDst> <start> <end>
//       write <src> through createWriteStream (fs stream piped in), read it back
//       with createReadStream piped to <dst>, and bytes start..end (inclusive) to <rangeDst>
//   read-paced <dir> <name> <msPerChunk> <paced|eager>
//       read through createReadStream into a consumer that takes msPerChunk per
//       chunk, honouring backpressure (paced) or keeping every chunk as it comes
//       (eager, the control); reports the peak growth of arrayBuffers memory, sampled
//       after a full GC at every chunk and every 50 ms (garbage is not memory held)
//   write-file <dir> <name> <src>
//       MosaicFiles.write of an fs read stream; reports the agent's manifest
//   errors <dir>
//       a missing file and an unknown volume, as stream errors
import { createReadStream, createWriteStream } from "node:fs";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { MosaicFiles } from "../../src/ipc/mosaic-files.ts";

const [mode = "", dir = "", ...rest] = process.argv.slice(2);

function report(message: Record<string, unknown>): Promise<void> {
  return new Promise((resolve) => process.send?.(message, () => resolve()) ?? resolve());
}

async function pipes(name: string, src: string, dst: string, rangeDst: string, start: number, end: number) {
  const files = await MosaicFiles.connect({ dir, pollMs: 100 });
  const out = files.createWriteStream("media", name);
  await pipeline(createReadStream(src, { highWaterMark: 256 * 1024 }), out);
  const manifest = await out.manifest;
  await pipeline(files.createReadStream("media", name), createWriteStream(dst));
  await pipeline(files.createReadStream("media", name, { start, end }), createWriteStream(rangeDst));
  const opened = await files.open("media", name);
  let iterated = 0;
  for await (const view of opened.read({ start: 10, end: 19 })) iterated += view.length;
  await files.close();
  await report({ ok: true, sizeBytes: manifest.sizeBytes, openedSize: opened.manifest.sizeBytes, iterated });
}

async function readPaced(name: string, msPerChunk: number, eager: boolean) {
  const files = await MosaicFiles.connect({ dir, pollMs: 100, timeoutMs: 60_000 });
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  const base = process.memoryUsage().arrayBuffers;
  let peak = 0;
  let bytes = 0;
  const kept: Buffer[] = [];
  const measure = () => {
    gc();
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
  };
  const sample = setInterval(measure, 50);
  const startMs = performance.now();
  const source = files.createReadStream("media", name, { highWaterMark: 64 * 1024 });
  if (eager) {
    // The control: a consumer that keeps whatever arrives, as fast as it arrives.
    source.on("data", (chunk: Buffer) => {
      kept.push(chunk);
      bytes += chunk.length;
      measure();
    });
    await new Promise<void>((resolve, reject) => source.on("end", resolve).on("error", reject));
  } else {
    await pipeline(
      source,
      new Writable({
        highWaterMark: 1,
        write(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          measure();
          setTimeout(callback, msPerChunk);
        },
      }),
    );
  }
  clearInterval(sample);
  measure();
  await files.close();
  await report({ ok: true, bytes, peakBytes: peak, ms: performance.now() - startMs, kept: kept.length });
}

async function errors() {
  const files = await MosaicFiles.connect({ dir, pollMs: 100 });
  const codeOf = async (run: () => Promise<unknown>) => {
    try {
      await run();
      return "none";
    } catch (error) {
      return (error as { code?: string }).code ?? String(error);
    }
  };
  const missing = await codeOf(() =>
    pipeline(files.createReadStream("media", "no/such.bin"), new Writable({ write: (_c, _e, cb) => cb() })),
  );
  const unknownVolume = await codeOf(async () => {
    const out = files.createWriteStream("nope", "x.bin");
    await pipeline(
      (async function* () {
        yield Buffer.alloc(300_000, 7);
      })(),
      out,
    );
  });
  const afterwards = (await files.stat("media", "errors/after.bin").catch((e) => e)) as { code?: string };
  await files.close();
  await report({ ok: true, missing, unknownVolume, afterwards: afterwards.code });
}

try {
  if (mode === "pipes") {
    const [name = "", src = "", dst = "", rangeDst = "", start = "0", end = "0"] = rest;
    await pipes(name, src, dst, rangeDst, Number(start), Number(end));
  } else if (mode === "read-paced") {
    await readPaced(rest[0] ?? "", Number(rest[1]), rest[2] === "eager");
  } else if (mode === "write-file") {
    const files = await MosaicFiles.connect({ dir, pollMs: 100 });
    const manifest = await files.write("media", rest[0] ?? "", createReadStream(rest[1] ?? ""));
    await files.close();
    await report({ ok: true, manifest });
  } else if (mode === "errors") await errors();
  else throw new Error(`unknown mode ${mode}`);
} catch (error) {
  const e = error as { message?: string; code?: string };
  await report({ ok: false, error: e.message ?? String(error), code: e.code });
  process.exitCode = 1;
}
