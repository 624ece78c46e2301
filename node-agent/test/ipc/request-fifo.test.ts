// The request FIFO between real processes. The first test is the proof that
// seed 000's semaphore around the FIFO is not needed: 8 client processes
// write thousands of packets each, up to PIPE_BUF bytes, with no lock between
// them, and the agent receives every packet whole (checksum intact) and in
// each sender's order. The rest: garbage costs nothing else, permissions,
// leftovers of a previous run, and clear errors with no agent.
import assert from "node:assert/strict";
import { closeSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, test } from "node:test";
import { MosaicError } from "../../src/errors.ts";
import { encodePacket, type Malformed, type Packet, PacketType } from "../../src/ipc/packet.ts";
import {
  makeFifo,
  openFifoWriter,
  REQUEST_FIFO_NAME,
  RequestFifo,
  writePacket,
} from "../../src/ipc/request-fifo.ts";
import { silentLogger } from "../../src/log.ts";
import { killPeers, Peer } from "./children.ts";
import { senderBody } from "./fifo-sender.ts";

const SENDER = new URL("./fifo-sender.ts", import.meta.url).pathname;
const SENDERS = 8;
const PACKETS_PER_SENDER = 3_000;
const dirs: string[] = [];
const fifos: RequestFifo[] = [];

function ipcDir(): string {
  const dir = join(mkdtempSync(join(tmpdir(), "mosaic-ipc-fifo-")), "ipc");
  dirs.push(join(dir, ".."));
  return dir;
}

function open(dir: string, onPacket: (p: Packet) => void, onMalformed?: (m: Malformed) => void): RequestFifo {
  const fifo = RequestFifo.open(dir, { onPacket, onMalformed, log: silentLogger() });
  fifos.push(fifo);
  return fifo;
}

afterEach(async () => {
  await killPeers();
});

after(async () => {
  for (const fifo of fifos) await fifo.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  // Bounded by the deadline.
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test(`${SENDERS} processes × ${PACKETS_PER_SENDER} packets up to 4096 bytes, no lock: all arrive whole, none interleaved`, async (t) => {
  const dir = ipcDir();
  const next = new Array<number>(SENDERS).fill(0);
  const problems: string[] = [];
  let received = 0;
  const fifo = open(
    dir,
    (packet) => {
      received++;
      const body = packet.body as { s: number; n: number; pad: string };
      const expected = senderBody(body.s, next[body.s] ?? -1);
      if (packet.clientId !== body.s + 1 || packet.requestId !== body.n || body.n !== next[body.s]) {
        problems.push(`sender ${body.s}: got #${body.n}, expected #${next[body.s]}`);
      } else if (body.pad !== expected.pad) problems.push(`sender ${body.s} #${body.n}: body differs`);
      next[body.s] = body.n + 1;
    },
    (m) => problems.push(`malformed: ${m.error.message}`),
  );
  const startMs = performance.now();
  const peers = Array.from(
    { length: SENDERS },
    (_, i) => new Peer([fifo.path, String(i), String(PACKETS_PER_SENDER)], SENDER),
  );
  const reports = await Promise.all(peers.map((p) => p.message(40_000)));
  await until(() => received === SENDERS * PACKETS_PER_SENDER || problems.length > 0, 10_000, "every packet");
  const elapsedMs = performance.now() - startMs;
  assert.deepEqual(problems.slice(0, 5), []);
  assert.equal(received, SENDERS * PACKETS_PER_SENDER);
  assert.equal(fifo.stats.malformed, 0);
  assert.deepEqual(next, new Array(SENDERS).fill(PACKETS_PER_SENDER));
  assert.ok(reports.every((r) => r.sent === PACKETS_PER_SENDER));
  t.diagnostic(
    `${received} packets, ${(fifo.stats.bytes / 1e6).toFixed(1)} MB from ${SENDERS} processes in ${elapsedMs.toFixed(0)} ms, ` +
      `0 interleaved, 0 malformed (one write(2) ≤ PIPE_BUF per packet, no semaphore)`,
  );
});

test("garbage, truncated and oversized packets are counted and logged; the packets around them arrive", async () => {
  const dir = ipcDir();
  const got: Packet[] = [];
  const bad: Malformed[] = [];
  const fifo = open(
    dir,
    (p) => got.push(p),
    (m) => bad.push(m),
  );
  const fd = openFifoWriter(fifo.path);
  const packet = (n: number) =>
    encodePacket({ type: PacketType.REQUEST, clientId: 5, requestId: n, body: { n } });
  const oversized = Buffer.from(packet(99));
  oversized.writeUInt16LE(60_000, 6);
  const notJson = Buffer.from(packet(98));
  notJson.write("}", 20);
  await writePacket(fd, packet(1));
  writeSync(fd, Buffer.from("random bytes \u0000\u00ff MSPK not a packet"));
  await writePacket(fd, packet(2));
  writeSync(fd, packet(3).subarray(0, 14)); // truncated: the rest never comes
  await new Promise((resolve) => setTimeout(resolve, 400)); // past the reader's quiet time
  await writePacket(fd, packet(4));
  writeSync(fd, oversized);
  writeSync(fd, notJson); // checksum no longer matches: garbage, not a known sender
  await writePacket(fd, packet(5));
  closeSync(fd);
  await until(() => got.length === 4, 5_000, "the good packets");
  assert.deepEqual(
    got.map((p) => p.requestId),
    [1, 2, 4, 5],
  );
  assert.ok(bad.length >= 3, `${bad.length} malformed reports`);
  assert.ok(bad.every((m) => m.error instanceof MosaicError));
  assert.ok(bad.some((m) => /truncated/.test(m.error.message)));
  assert.equal(fifo.stats.malformed, bad.length);
});

test("the IPC directory is 0700, the FIFO 0600; a second agent on it is refused; leftovers are replaced", async () => {
  const dir = ipcDir();
  const fifo = open(dir, () => {});
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(fifo.path).mode & 0o777, 0o600);
  assert.throws(() => RequestFifo.open(dir, { onPacket: () => {}, log: silentLogger() }), /already serving/);
  await fifo.close();
  assert.equal(existsSync(fifo.path), false, "close removes the FIFO's name");

  // A crashed agent's leftovers: its FIFO (no reader now) and a client's reply FIFO.
  makeFifo(join(dir, REQUEST_FIFO_NAME));
  const staleClient = join(dir, `client-${"ab".repeat(16)}.fifo`);
  makeFifo(staleClient);
  writeFileSync(join(dir, "unrelated.txt"), "kept");
  const got: Packet[] = [];
  const again = open(dir, (p) => got.push(p));
  assert.equal(existsSync(staleClient), false, "a previous run's reply FIFO is reclaimed");
  assert.equal(existsSync(join(dir, "unrelated.txt")), true);
  const fd = openFifoWriter(again.path);
  await writePacket(fd, encodePacket({ type: PacketType.REGISTER, clientId: 0, requestId: 1, body: {} }));
  closeSync(fd);
  await until(() => got.length === 1, 5_000, "a packet on the new FIFO");
});

test("with no agent reading, a client gets a clear error at once, never a hang", async () => {
  const dir = ipcDir();
  const fifo = open(dir, () => {});
  const path = fifo.path;
  await fifo.close();
  makeFifo(path); // the name exists, but nobody reads it
  assert.throws(
    () => openFifoWriter(path),
    (error: MosaicError) => {
      assert.equal(error.code, "MOSAIC_ERR_PEER_UNAVAILABLE");
      assert.match(error.message, /no agent is reading/);
      return true;
    },
  );
  rmSync(path);
  assert.throws(() => openFifoWriter(path), /is the agent running\?/);
  await assert.rejects(writePacket(0, Buffer.alloc(5000)), /exceeds PIPE_BUF/);
});
