// An application process for the tests against real agent processes: one
// IpcClient, connected at start, then driven by commands from the test
// (process messages), each answered with one { ok, ... } message.
//   agent-app-peer.ts <ipc dir>
// Commands:
//   { op: "put", name, bytes, seed }                  put the seeded pattern
//   { op: "get", name, bytes, seeds }                 get, and verify every byte is the pattern of one seed
//   { op: "put-stall", name, bytes, seed, afterBytes } start a put, stop producing after afterBytes (to be killed)
//   { op: "get-stall", name }                         start a get, read two slots, stop reading (to be killed)
//   { op: "exit" }                                    close the client and exit
import { isMosaicError } from "../../src/errors.ts";
import { IpcClient } from "../../src/ipc/ipc-client.ts";
import { fillFromPattern, mismatchAt, pattern } from "./pattern.ts";

interface Command {
  op: string;
  name?: string;
  bytes?: number;
  seed?: string;
  seeds?: string[];
  afterBytes?: number;
}

const [dir = ""] = process.argv.slice(2);

function report(message: Record<string, unknown>): Promise<void> {
  return new Promise((resolve) => process.send?.(message, () => resolve()) ?? resolve());
}

/** The seeded stream in parts of an odd size (never lined up with slots); `stallAfter` parks it for good. */
async function* patternStream(data: Buffer, totalBytes: number, stallAfter?: number): AsyncGenerator<Buffer> {
  const partBytes = 300_007;
  for (let offset = 0; offset < totalBytes; offset += partBytes) {
    if (stallAfter !== undefined && offset >= stallAfter) {
      await report({ ok: true, stalled: true, sentBytes: offset });
      await new Promise(() => {}); // never resolves: the test kills this process here
    }
    const part = Buffer.allocUnsafe(Math.min(partBytes, totalBytes - offset));
    fillFromPattern(data, part, offset);
    yield part;
  }
}

/**
 * Reads the file, picking the seed whose pattern its first bytes match, then
 * checking every byte against that one seed: a file stitched from two
 * writers fails at the seam. An overwrite racing the read (FILE_CHANGED) is
 * read again.
 */
async function getVerified(client: IpcClient, command: Command): Promise<Record<string, unknown>> {
  const patterns = new Map((command.seeds ?? []).map((seed) => [seed, pattern(seed)] as const));
  let changed = 0;
  // Bounded: at most 10 attempts.
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      const startMs = performance.now();
      const reply = await client.get("media", command.name ?? "");
      let seed: string | undefined;
      let data: Buffer | undefined;
      let offset = 0;
      for await (const view of reply.body) {
        if (data === undefined) {
          for (const [candidate, bytes] of patterns) {
            if (mismatchAt(bytes, view.subarray(0, 4096), 0) < 0) {
              seed = candidate;
              data = bytes;
              break;
            }
          }
          if (data === undefined) throw new Error(`${command.name}: its first bytes match no writer's seed`);
        }
        const bad = mismatchAt(data, view, offset);
        if (bad >= 0) throw new Error(`${command.name}: byte ${offset + bad} is not seed ${seed}'s`);
        offset += view.length;
      }
      if (offset !== command.bytes)
        throw new Error(`${command.name}: got ${offset} bytes, expected ${command.bytes}`);
      return { ok: true, seed, bytes: offset, changed, ms: performance.now() - startMs };
    } catch (error) {
      if (isMosaicError(error, "MOSAIC_ERR_NO_SUCH_FILE")) return { ok: true, missing: true, changed };
      if (!isMosaicError(error, "MOSAIC_ERR_FILE_CHANGED")) throw error;
      changed++;
    }
  }
  throw new Error(`${command.name}: overwritten during each of 10 reads`);
}

async function run(client: IpcClient, command: Command): Promise<void> {
  const name = command.name ?? "";
  const bytes = command.bytes ?? 0;
  switch (command.op) {
    case "put": {
      const startMs = performance.now();
      const manifest = await client.put(
        "media",
        name,
        patternStream(pattern(command.seed ?? ""), bytes),
        bytes,
      );
      await report({ ok: true, version: manifest.version, ms: performance.now() - startMs });
      return;
    }
    case "get":
      await report(await getVerified(client, command));
      return;
    case "put-stall":
      // Reports from inside the stream once afterBytes went into the ring; never returns.
      await client.put(
        "media",
        name,
        patternStream(pattern(command.seed ?? ""), bytes, command.afterBytes),
        bytes,
      );
      throw new Error("put-stall: the put finished, but it was meant to stall");
    case "get-stall": {
      const reply = await client.get("media", name);
      const iterator = reply.body[Symbol.asyncIterator]();
      await iterator.next();
      await iterator.next();
      await report({ ok: true, reading: true });
      await new Promise(() => {}); // reads nothing more: the test kills this process here
      return;
    }
    case "exit":
      await client.close();
      process.exit(0);
      return;
    default:
      throw new Error(`unknown command ${command.op}`);
  }
}

async function fail(error: unknown): Promise<void> {
  const e = error as { message?: string; code?: string; reason?: string };
  await report({ ok: false, error: e.message ?? String(error), code: e.code, reason: e.reason });
}

try {
  const client = await IpcClient.connect({ dir });
  // One command at a time, as the test sends them; the IPC channel keeps this process alive.
  let chain = Promise.resolve();
  process.on("message", (command) => {
    chain = chain.then(() => run(client, command as Command)).catch(fail);
  });
  await report({ ok: true, clientId: client.clientId, pid: process.pid });
} catch (error) {
  await fail(error);
  process.exitCode = 1;
}
