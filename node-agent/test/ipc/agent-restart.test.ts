// A restarted agent reclaims what its killed predecessor left on the IPC
// directory: the rings of a client that registered but had not attached yet
// (the one window in which ring names exist), the FIFOs of clients caught
// mid-registration, and the request FIFO. Counted from /dev/shm and the
// directory before the kill, after it, and after the restart; the new agent
// then serves a client. The agent is an IpcServer process (ipc-agent-peer.ts)
// killed with SIGKILL.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { closeSync, constants, mkdtempSync, openSync, readdirSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, test } from "node:test";
import { IpcClient } from "../../src/ipc/ipc-client.ts";
import { encodePacket, PacketReader, PacketType } from "../../src/ipc/packet.ts";
import { makeFifo, openFifoWriter, REQUEST_FIFO_NAME, writePacket } from "../../src/ipc/request-fifo.ts";
import { segmentPrefixFor } from "../../src/ipc/shared-memory.ts";
import { killPeers, Peer, until } from "./children.ts";

const AGENT = new URL("./ipc-agent-peer.ts", import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), "mosaic-ipc-restart-"));
const dir = join(root, "ipc");
const held: number[] = [];

afterEach(async () => {
  await killPeers();
});

after(() => {
  for (const fd of held.splice(0)) closeSync(fd);
  rmSync(root, { recursive: true, force: true });
});

/** This directory's segments in /dev/shm (the agent names them with the directory's prefix). */
function segments(): string[] {
  const prefix = segmentPrefixFor(dir).slice(1);
  return readdirSync("/dev/shm").filter((name) => name.startsWith(prefix));
}

/** A client's FIFOs made, as at the start of registration; held open as a client holds them. */
function clientFifos(): { base: string; replyFd: number } {
  const base = `client-${randomBytes(16).toString("hex")}`;
  makeFifo(join(dir, `${base}.fifo`));
  makeFifo(join(dir, `${base}.life`));
  const flags = constants.O_RDWR | constants.O_NONBLOCK;
  held.push(openSync(join(dir, `${base}.life`), flags));
  const replyFd = openSync(join(dir, `${base}.fifo`), flags);
  held.push(replyFd);
  return { base, replyFd };
}

/** REGISTER by hand and read REGISTERED, then stop: the client never maps its rings nor says ATTACHED. */
async function registerWithoutAttaching(): Promise<{ toClient: string; toAgent: string }> {
  const { base, replyFd } = clientFifos();
  const fd = openFifoWriter(join(dir, REQUEST_FIFO_NAME));
  try {
    await writePacket(
      fd,
      encodePacket({
        type: PacketType.REGISTER,
        clientId: 0,
        requestId: 7,
        body: { pid: process.pid, replyFifo: `${base}.fifo`, lifeFifo: `${base}.life` },
      }),
    );
  } finally {
    closeSync(fd);
  }
  const reader = new PacketReader();
  const chunk = Buffer.alloc(4096);
  let answer: unknown;
  await until(
    () => {
      try {
        const n = readSync(replyFd, chunk);
        answer = reader.push(chunk.subarray(0, n)).packets[0]?.body ?? answer;
      } catch {
        // EAGAIN: not yet
      }
      return answer !== undefined;
    },
    5_000,
    "the agent's REGISTERED",
  );
  return answer as { toClient: string; toAgent: string };
}

test("an agent killed with SIGKILL mid-registration leaves rings and FIFOs; restarted on the directory, it removes them all and serves", async (t) => {
  const first = new Peer([dir], AGENT);
  await first.message(20_000);
  assert.deepEqual(segments(), []);
  const rings = await registerWithoutAttaching();
  clientFifos(); // a second client caught before the agent answered it
  const before = { segments: segments().sort(), fifos: readdirSync(dir).sort() };
  assert.deepEqual(before.segments, [rings.toClient.slice(1), rings.toAgent.slice(1)].sort());
  assert.equal(before.fifos.length, 3, `request FIFO and the second client's two: ${before.fifos}`);

  first.kill("SIGKILL");
  await first.exited;
  const leftovers = { segments: segments().length, fifos: readdirSync(dir).length };
  assert.deepEqual(leftovers, { segments: 2, fifos: 3 }, "a killed agent leaves its leftovers");

  const second = new Peer([dir], AGENT);
  await second.message(20_000);
  const afterRestart = { segments: segments().length, fifos: readdirSync(dir) };
  assert.deepEqual(afterRestart, { segments: 0, fifos: [REQUEST_FIFO_NAME] });
  t.diagnostic(
    `before the kill: ${before.segments.length} ring names, ${before.fifos.length} FIFOs; after the restart: ` +
      `${afterRestart.segments} ring names, ${afterRestart.fifos.length} FIFO (${afterRestart.fifos})`,
  );

  const client = await IpcClient.connect({ dir, pollMs: 100 });
  try {
    assert.deepEqual(
      await client.head("media", "x"),
      undefined,
      "the agent's stand-in answers head with no manifest",
    );
  } finally {
    await client.close();
  }
  assert.deepEqual(segments(), [], "an attached client leaves no names");
});
