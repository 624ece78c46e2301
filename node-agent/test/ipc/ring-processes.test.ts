// The slot ring between real processes: a verified bulk transfer against a
// Unix-socket baseline measured in the same test, a blocked consumer that
// uses no CPU while its event loop keeps turning, a producer killed with
// SIGKILL mid-stream, and no segment left behind in /dev/shm.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, test } from "node:test";
import { unlinkSegment } from "../../src/ipc/shared-memory.ts";
import { SlotRing } from "../../src/ipc/slot-ring.ts";
import { cpuSeconds, killPeers, mosaicSegments, Peer } from "./children.ts";

const MiB = 1024 * 1024;
const TRANSFER_BYTES = 256 * MiB;
const created: string[] = [];

function ring(slots: number, slotSizeBytes: number): SlotRing {
  const r = SlotRing.create({ slots, slotSizeBytes });
  created.push(r.name);
  return r;
}

const mbps = (bytes: number, ms: number): number => Math.round(bytes / 1e6 / (ms / 1000));

before(() => {});

afterEach(async () => {
  await killPeers();
});

after(() => {
  for (const name of created) unlinkSegment(name);
  // Every segment this file made is gone, whoever unlinked it, pass or fail.
  const left = [...mosaicSegments()].filter((name) => created.includes(`/${name}`));
  assert.deepEqual(left, [], "segments left in /dev/shm");
});

test("two processes stream 256 MiB through 8 × 1 MiB slots, every byte verified; Unix-socket baseline", async (t) => {
  const r = ring(8, MiB);
  const consumer = new Peer(["consume", r.name, String(TRANSFER_BYTES), "bulk"]);
  const producer = new Peer(["produce", r.name, String(TRANSFER_BYTES), "bulk"]);
  await Promise.all([consumer.message(), producer.message()]); // both attached
  // Both sides have it mapped: unlink now, and nothing is left behind if either dies.
  assert.equal(r.unlink(), true);
  assert.ok(!mosaicSegments().has(r.name.slice(1)));
  const shmStartMs = performance.now();
  const [got] = await Promise.all([consumer.message(), producer.message()]);
  const shmWallMs = performance.now() - shmStartMs;
  await r.close();
  assert.equal(got.bytes, TRANSFER_BYTES);
  const shm = mbps(TRANSFER_BYTES, got.elapsedMs as number);

  const socketPath = join(tmpdir(), `mosaic-ipc-test-${process.pid}.sock`);
  rmSync(socketPath, { force: true });
  t.after(() => rmSync(socketPath, { force: true }));
  const receiver = new Peer(["uds-recv", socketPath, String(TRANSFER_BYTES), "bulk"]);
  await receiver.message(); // listening
  const udsStartMs = performance.now();
  const sender = new Peer(["uds-send", socketPath, String(TRANSFER_BYTES), "bulk"]);
  const [baseline] = await Promise.all([receiver.message(), sender.message()]);
  const udsWallMs = performance.now() - udsStartMs;
  const uds = mbps(TRANSFER_BYTES, baseline.elapsedMs as number);
  // Receiver-side rate (first byte to end, verification included); the wall
  // figures also hold a process start (UDS sender) and message latency.
  t.diagnostic(
    `ipc shm_MBps=${shm} uds_MBps=${uds} shm/uds=${(shm / uds).toFixed(2)} (256 MiB, 8 x 1 MiB slots)`,
  );
  t.diagnostic(
    `wall, parent side: shm ${mbps(TRANSFER_BYTES, shmWallMs)} MB/s, uds ${mbps(TRANSFER_BYTES, udsWallMs)} MB/s incl. sender start`,
  );
});

test("a consumer blocked on an empty ring for 3 s uses < 1% of a core and its event loop keeps turning", async (t) => {
  const r = ring(4, 64 * 1024);
  const producer = r.producer({ timeoutMs: 5_000 });
  const idle = new Peer(["idle-consume", r.name]);
  await idle.message(); // its next() is now waiting on Full
  r.unlink();
  const cpuStart = cpuSeconds(idle.pid);
  const startMs = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const cpuUsed = cpuSeconds(idle.pid) - cpuStart;
  const wallSeconds = (performance.now() - startMs) / 1000;
  idle.child.send("ticks?");
  const { ticks } = await idle.message();
  await producer.end();
  const done = await idle.message();
  await r.close();
  t.diagnostic(
    `idle consumer: ${(cpuUsed * 1000).toFixed(0)} ms CPU in ${wallSeconds.toFixed(1)} s, ${ticks} interval ticks`,
  );
  assert.ok(
    cpuUsed / wallSeconds < 0.01,
    `idle consumer used ${((100 * cpuUsed) / wallSeconds).toFixed(2)}% of a core`,
  );
  assert.ok((ticks as number) >= 20, `the event loop ran only ${ticks} 100 ms intervals in 3 s`);
  assert.equal(done.done, true, "the END slot woke the waiting consumer");
});

test("a producer killed with SIGKILL mid-stream: the consumer gets a dead-peer error promptly, no hang", async (t) => {
  const r = ring(4, 64 * 1024);
  const consumer = r.consumer({ timeoutMs: 10_000, pollMs: 250 });
  const producer = new Peer(["produce-forever", r.name, "0", "killed"]);
  await producer.message(); // attached
  let slots = 0;
  let killedAtMs = 0;
  // Bounded: the producer is killed after 20 slots, and next() then fails within pollMs.
  const reading = (async () => {
    for await (const _view of consumer) {
      if (++slots === 20) {
        producer.kill("SIGKILL");
        killedAtMs = performance.now();
      }
    }
  })();
  await assert.rejects(reading, (error: Error & { reason?: string; code?: string }) => {
    assert.equal(error.reason, "peer-died", error.message);
    assert.equal(error.code, "MOSAIC_ERR_PEER_UNAVAILABLE");
    assert.match(error.message, new RegExp(`producer \\(pid ${producer.pid}\\) died`));
    return true;
  });
  const noticedMs = performance.now() - killedAtMs;
  t.diagnostic(`dead producer noticed ${noticedMs.toFixed(0)} ms after SIGKILL (wait slices of 250 ms)`);
  assert.ok(slots >= 20, `read ${slots} slots before the kill`);
  assert.ok(noticedMs < 5_000, `noticed the dead producer after ${noticedMs.toFixed(0)} ms`);
  assert.equal(await producer.exited, null);
  await r.close();
  r.unlink();
});
