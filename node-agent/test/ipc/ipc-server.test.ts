// The IPC server on a real FileHandler (agent 0 of an in-process cluster of
// three) with applications in child processes: put and get of several MiB
// verified byte for byte, errors as clear MosaicErrors, a malformed packet
// from a known client answered, and a client killed with SIGKILL mid-read
// noticed within a bounded time, its rings freed, the others still served.
// Resources are counted before and after: the rings the server made (named in
// its log) must be gone from /dev/shm, and the FIFOs in the IPC directory and
// this process's ring mappings and FIFO descriptors back to where they were.
// (Other test files run alongside and make segments of their own, so a plain
// count of /dev/shm would not be this file's.)
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, test } from "node:test";
import { pino } from "pino";
import type { Agent } from "../../src/agent.ts";
import type { MosaicError } from "../../src/errors.ts";
import { IpcClient } from "../../src/ipc/ipc-client.ts";
import { IpcServer } from "../../src/ipc/ipc-server.ts";
import { encodePacket, PACKET_HEADER_BYTES, PacketType } from "../../src/ipc/packet.ts";
import { openFifoWriter, writePacket } from "../../src/ipc/request-fifo.ts";
import { type InProcessCluster, MiB, startInProcessCluster } from "../helpers/in-process-cluster.ts";
import { ipcHeld, killPeers, mosaicSegments, Peer, until } from "./children.ts";

const CLIENT = new URL("./ipc-client-peer.ts", import.meta.url).pathname;
let cluster: InProcessCluster;
let server: IpcServer;
let root: string;
let dir: string;
let baseline: Resources;

interface Resources {
  fifos: number;
  mappings: number;
  fds: number;
}

const ringNames = new Set<string>();
const log = pino(
  { level: "info" },
  {
    write(line: string) {
      const entry = JSON.parse(line) as { rings?: string[] };
      for (const name of entry.rings ?? []) ringNames.add(name.slice(1));
    },
  },
);

/** Rings the server made that still have a name in /dev/shm. */
function namedRings(): string[] {
  return [...mosaicSegments()].filter((name) => ringNames.has(name));
}

/** What IPC holds now: FIFOs in the IPC dir, and this process's ring mappings and FIFO fds. */
function resources(): Resources {
  return { fifos: readdirSync(dir).length, ...ipcHeld("self", dir) };
}

function assertReclaimed(): void {
  assert.deepEqual(resources(), baseline);
  assert.deepEqual(namedRings(), [], "rings left in /dev/shm");
}

before(async () => {
  cluster = await startInProcessCluster(3);
  root = mkdtempSync(join(tmpdir(), "mosaic-ipc-server-"));
  dir = join(root, "ipc");
  server = IpcServer.start({
    dir,
    files: (cluster.agents[0] as Agent).files,
    log,
    slots: 8,
    slotSizeBytes: 256 * 1024,
    pollMs: 100,
    sweepMs: 250,
  });
  baseline = resources();
});

afterEach(async () => {
  await killPeers();
});

after(async () => {
  await server?.close();
  await cluster?.stop();
  rmSync(root, { recursive: true, force: true });
});

test("a client process puts 6 MiB and gets it back byte for byte; stat and list agree; nothing left after", async (t) => {
  const sizeBytes = 6 * MiB + 12_345;
  const peer = new Peer(["put-get", dir, String(sizeBytes), "six", "ipc/six.bin"], CLIENT);
  const got = await peer.message(30_000);
  assert.equal(got.bytes, sizeBytes);
  assert.equal(got.statSize, sizeBytes);
  assert.equal(got.listed, true);
  await until(() => server.clientCount === 0, 2_000, "the client to unregister");
  t.diagnostic(
    `put ${(sizeBytes / 1e6 / ((got.putMs as number) / 1000)).toFixed(0)} MB/s, get ${(sizeBytes / 1e6 / ((got.getMs as number) / 1000)).toFixed(0)} MB/s ` +
      `(${got.slots} slots of ≤ 256 KiB; erasure 2+1 over 3 in-process agents)`,
  );
  assertReclaimed();
});

test("errors come back as MosaicErrors on the ring, and the client keeps working", async () => {
  const client = await IpcClient.connect({ dir, pollMs: 100 });
  try {
    assert.equal(ringNames.size, 2 * server.stats.registered);
    assert.deepEqual(namedRings(), [], "ring names are unlinked once both sides attached");
    await assert.rejects(
      client.get("media", "no/such/file"),
      (e: MosaicError) => e.code === "MOSAIC_ERR_NO_SUCH_FILE",
    );
    await assert.rejects(
      client.stat("nope", "x"),
      (e: MosaicError) => e.code === "MOSAIC_ERR_UNKNOWN_VOLUME",
    );
    await assert.rejects(client.head("media", "../x"), (e: MosaicError) => e.code === "MOSAIC_ERR_BAD_NAME");
    // A put refused before its data is read: the agent drains it, then answers.
    const data = (async function* () {
      yield Buffer.alloc(700_000, 1);
    })();
    await assert.rejects(
      client.put("nope", "x", data),
      (e: MosaicError) => e.code === "MOSAIC_ERR_UNKNOWN_VOLUME",
    );
    // A request the validator refuses, from a known client.
    const id = await client.sendRequest({ op: "format-disk" } as never);
    await assert.rejects(client.receiveResponse(id), (e: MosaicError) => {
      assert.equal(e.code, "MOSAIC_ERR_BAD_REQUEST");
      assert.match(e.message, /unknown op "format-disk"/);
      return true;
    });
    // A malformed frame (sound checksum, body not JSON) naming this client is answered too.
    const bytes = Buffer.from(
      encodePacket({ type: PacketType.REQUEST, clientId: client.clientId, requestId: 77, body: "ab" }),
    );
    bytes.write("{", PACKET_HEADER_BYTES);
    const { crc32c } = await import("@node-rs/crc32");
    bytes.writeUInt32LE(crc32c(bytes.subarray(PACKET_HEADER_BYTES), crc32c(bytes.subarray(0, 16))), 16);
    const fd = openFifoWriter(server.fifoPath);
    await writePacket(fd, bytes);
    const { closeSync } = await import("node:fs");
    closeSync(fd);
    await assert.rejects(client.receiveResponse(77), (e: MosaicError) => {
      assert.equal(e.code, "MOSAIC_ERR_BAD_REQUEST");
      assert.match(e.message, /^bad IPC packet: body is not JSON$/);
      return true;
    });
    // Garbage naming this client but a request it never sent: its error is skipped as stale.
    const malformedBefore = server.stats.malformed;
    bytes.writeUInt32LE(4242, 12);
    bytes.writeUInt32LE(crc32c(bytes.subarray(PACKET_HEADER_BYTES), crc32c(bytes.subarray(0, 16))), 16);
    const fd2 = openFifoWriter(server.fifoPath);
    await writePacket(fd2, bytes);
    closeSync(fd2);
    await until(() => server.stats.malformed > malformedBefore, 2_000, "the server to see it");
    // And after all that, a normal call.
    const listed = { files: await client.list("media") };
    assert.ok(Array.isArray(listed.files));
    assert.ok(server.stats.malformed >= 1);
  } finally {
    await client.close();
  }
  await until(() => server.clientCount === 0, 2_000, "the client to unregister");
  assertReclaimed();
});

test("a client killed with SIGKILL mid-read: noticed within a bounded time, rings freed, others served", async (t) => {
  const sizeBytes = 8 * MiB;
  const writer = new Peer(["put-get", dir, String(sizeBytes), "big", "ipc/big.bin"], CLIENT);
  await writer.message(30_000);
  await until(() => server.clientCount === 0, 2_000, "the writer to unregister");

  const reader = new Peer(["stall-read", dir, "ipc/big.bin"], CLIENT);
  await reader.message(10_000); // two slots read, then it stops: the agent now waits on Empty
  assert.equal(server.clientCount, 1);
  const during = resources();
  assert.deepEqual(namedRings(), [], "no names to reclaim while attached");
  assert.equal(during.mappings, baseline.mappings + 2, "the server maps the client's two rings");
  const droppedBefore = server.stats.dropped;
  reader.kill("SIGKILL");
  const noticedMs = await until(() => server.clientCount === 0, 5_000, "the server to drop the dead client");
  assert.equal(server.stats.dropped, droppedBefore + 1);
  t.diagnostic(
    `dead client dropped ${noticedMs.toFixed(0)} ms after SIGKILL (ring waits check every 100 ms)`,
  );

  const other = new Peer(["put-get", dir, String(2 * MiB), "after", "ipc/after.bin"], CLIENT);
  const got = await other.message(30_000);
  assert.equal(got.bytes, 2 * MiB);
  await until(() => server.clientCount === 0, 2_000, "the last client to unregister");
  assertReclaimed();
});

test("an idle client killed with SIGKILL is reclaimed by the sweep", async () => {
  const idle = new Peer(["idle", dir], CLIENT);
  await idle.message(10_000);
  assert.equal(server.clientCount, 1);
  idle.kill("SIGKILL");
  await until(() => server.clientCount === 0, 5_000, "the sweep to drop it");
  assertReclaimed();
});
