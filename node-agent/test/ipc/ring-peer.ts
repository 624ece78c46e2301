// The other process in the IPC tests, started with child_process.fork. Each
// mode is one side of a transfer; results go back to the test as one IPC
// message ({ ok: true, ... } or { ok: false, error }), then the process exits;
// ring modes first report { attached: true } once their end is mapped.
//   produce <ring> <bytes> <seed>          write the pattern stream, then END
//   consume <ring> <bytes> <seed>          read and verify it, report MB/s
//   produce-forever <ring> <seed>          write slots until killed
//   idle-consume <ring>                    block on an empty ring; answer "ticks?" with the interval count
//   uds-recv <socket> <bytes> <seed>       the Unix-socket baseline, receiving side
//   uds-send <socket> <bytes> <seed>       the Unix-socket baseline, sending side
import { once } from "node:events";
import { createConnection, createServer } from "node:net";
import { SlotRing } from "../../src/ipc/slot-ring.ts";
import { fillFromPattern, mismatchAt, pattern } from "./pattern.ts";

const [mode = "", target = "", sizeArg = "0", seed = "seed"] = process.argv.slice(2);
const totalBytes = Number(sizeArg);

function report(message: Record<string, unknown>): Promise<void> {
  return new Promise((resolve) => process.send?.(message, () => resolve()) ?? resolve());
}

async function produce(forever: boolean): Promise<void> {
  const ring = SlotRing.open(target);
  const producer = ring.producer({ timeoutMs: 20_000, pollMs: 250 });
  await report({ ok: true, attached: true });
  const data = pattern(seed);
  let offset = 0;
  // Bounded by totalBytes, or by the kill that ends produce-forever.
  while (forever || offset < totalBytes) {
    const slot = await producer.acquireSlot();
    const n = forever ? slot.length : Math.min(slot.length, totalBytes - offset);
    fillFromPattern(data, slot.subarray(0, n), offset);
    producer.commit(n);
    offset += n;
    if (forever) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await producer.end();
  await ring.close();
  await report({ ok: true, bytes: offset });
}

async function consume(): Promise<void> {
  const ring = SlotRing.open(target);
  const consumer = ring.consumer({ timeoutMs: 20_000, pollMs: 250 });
  await report({ ok: true, attached: true });
  const data = pattern(seed);
  let offset = 0;
  let startMs = 0;
  for await (const view of consumer) {
    if (offset === 0) startMs = performance.now();
    const bad = mismatchAt(data, view, offset);
    if (bad >= 0) throw new Error(`byte ${offset + bad} differs from the pattern`);
    offset += view.length;
  }
  const elapsedMs = performance.now() - startMs;
  await ring.close();
  if (offset !== totalBytes) throw new Error(`received ${offset} bytes, expected ${totalBytes}`);
  await report({ ok: true, bytes: offset, elapsedMs });
}

async function idleConsume(): Promise<void> {
  const ring = SlotRing.open(target);
  const consumer = ring.consumer({ timeoutMs: 30_000, pollMs: 500 });
  let ticks = 0;
  const interval = setInterval(() => ticks++, 100);
  process.on("message", (message) => {
    if (message === "ticks?") process.send?.({ ok: true, ticks });
  });
  const waiting = consumer.next(); // blocks until the test ends the stream
  await report({ ok: true, waiting: true });
  const end = await waiting;
  clearInterval(interval);
  await ring.close();
  await report({ ok: true, done: end === null, ticks });
  process.disconnect();
}

async function udsRecv(): Promise<void> {
  const data = pattern(seed);
  const server = createServer();
  server.listen(target);
  await once(server, "listening");
  await report({ ok: true, listening: true });
  const [socket] = await once(server, "connection");
  let offset = 0;
  let startMs = 0;
  for await (const chunk of socket as AsyncIterable<Buffer>) {
    if (offset === 0) startMs = performance.now();
    const bad = mismatchAt(data, chunk, offset);
    if (bad >= 0) throw new Error(`byte ${offset + bad} differs from the pattern`);
    offset += chunk.length;
  }
  const elapsedMs = performance.now() - startMs;
  server.close();
  if (offset !== totalBytes) throw new Error(`received ${offset} bytes, expected ${totalBytes}`);
  await report({ ok: true, bytes: offset, elapsedMs });
}

async function udsSend(): Promise<void> {
  const data = pattern(seed);
  const socket = createConnection(target);
  await once(socket, "connect");
  const pieceBytes = 1024 * 1024;
  // Bounded by totalBytes / pieceBytes writes.
  for (let offset = 0; offset < totalBytes; offset += pieceBytes) {
    const piece = Buffer.allocUnsafe(Math.min(pieceBytes, totalBytes - offset));
    fillFromPattern(data, piece, offset);
    if (!socket.write(piece)) await once(socket, "drain");
  }
  socket.end();
  await once(socket, "close");
  await report({ ok: true, bytes: totalBytes });
}

const modes: Record<string, () => Promise<void>> = {
  produce: () => produce(false),
  "produce-forever": () => produce(true),
  consume,
  "idle-consume": idleConsume,
  "uds-recv": udsRecv,
  "uds-send": udsSend,
};

const run = modes[mode];
try {
  if (!run) throw new Error(`unknown mode ${mode}`);
  await run();
} catch (error) {
  const e = error as { message?: string; code?: string; reason?: string };
  await report({ ok: false, error: e.message ?? String(error), code: e.code, reason: e.reason });
  process.exitCode = 1;
}
