// An application process for the IPC server tests: one IpcClient, one task,
// results back to the test as IPC messages ({ ok, ... }).
//   put-get <dir> <bytes> <seed> <name>   put the pattern stream, get it back verifying every byte
//   idle <dir>                            connect, report, then wait (to be killed)
//   stall-read <dir> <name>               start a get, read two slots, report, then stop reading (to be killed)
//   read-until-error <dir> <name>         start a get, report after the first slot, read on until it fails,
//                                         report the error ({ ok: true, code, reason, message })
import { IpcClient } from "../../src/ipc/ipc-client.ts";
import { fillFromPattern, mismatchAt, pattern } from "./pattern.ts";

const [mode = "", dir = "", ...rest] = process.argv.slice(2);

function report(message: Record<string, unknown>): Promise<void> {
  return new Promise((resolve) => process.send?.(message, () => resolve()) ?? resolve());
}

async function* patternStream(data: Buffer, totalBytes: number): AsyncGenerator<Buffer> {
  const partBytes = 300_007; // odd: never lines up with slots
  for (let offset = 0; offset < totalBytes; offset += partBytes) {
    const part = Buffer.allocUnsafe(Math.min(partBytes, totalBytes - offset));
    fillFromPattern(data, part, offset);
    yield part;
  }
}

async function putGet(totalBytes: number, seed: string, name: string): Promise<void> {
  const client = await IpcClient.connect({ dir, pollMs: 100 });
  const data = pattern(seed);
  let startMs = performance.now();
  await client.put("media", name, patternStream(data, totalBytes), totalBytes);
  const putMs = performance.now() - startMs;
  startMs = performance.now();
  const reply = await client.get("media", name);
  let offset = 0;
  let slots = 0;
  for await (const view of reply.body) {
    const bad = mismatchAt(data, view, offset);
    if (bad >= 0) throw new Error(`byte ${offset + bad} differs from what was put`);
    offset += view.length;
    slots++;
  }
  const getMs = performance.now() - startMs;
  if (offset !== totalBytes) throw new Error(`got ${offset} bytes back, put ${totalBytes}`);
  const stat = await client.stat("media", name);
  const list = { files: await client.list("media") };
  await client.close();
  await report({
    ok: true,
    bytes: offset,
    slots,
    putMs,
    getMs,
    statSize: stat.manifest.sizeBytes,
    listed: list.files.some((f) => f.name === name),
  });
}

async function stallRead(name: string): Promise<void> {
  const client = await IpcClient.connect({ dir, pollMs: 100 });
  const reply = await client.get("media", name);
  const iterator = reply.body[Symbol.asyncIterator]();
  await iterator.next();
  await iterator.next();
  await report({ ok: true, reading: true, clientId: client.clientId });
  setInterval(() => {}, 1_000); // stays alive, reading nothing, until killed
}

async function readUntilError(name: string): Promise<void> {
  const client = await IpcClient.connect({ dir, pollMs: 100, timeoutMs: 30_000 });
  let reported = false;
  try {
    for await (const _ of (await client.get("media", name)).body) {
      if (!reported) await report({ ok: true, reading: true, pid: process.pid });
      reported = true;
    }
    throw new Error("the read ended without an error");
  } catch (error) {
    const e = error as { message?: string; code?: string; reason?: string };
    await report({ ok: true, code: e.code, reason: e.reason, message: e.message });
  }
}

try {
  if (mode === "put-get") await putGet(Number(rest[0]), rest[1] ?? "seed", rest[2] ?? "file");
  else if (mode === "idle") {
    const client = await IpcClient.connect({ dir });
    await report({ ok: true, clientId: client.clientId });
    setInterval(() => {}, 1_000); // until killed
  } else if (mode === "stall-read") await stallRead(rest[0] ?? "file");
  else if (mode === "read-until-error") await readUntilError(rest[0] ?? "file");
  else throw new Error(`unknown mode ${mode}`);
} catch (error) {
  const e = error as { message?: string; code?: string };
  await report({ ok: false, error: e.message ?? String(error), code: e.code });
  process.exitCode = 1;
}
