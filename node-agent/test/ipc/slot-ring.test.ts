// The slot ring and its segments in one process: bad arguments and bad names
// get clear errors, errors and end of stream travel in slot headers, waits
// time out, and closing makes old views empty instead of dangling.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { MosaicError } from "../../src/errors.ts";
import { createSegment, openSegment, unlinkSegment } from "../../src/ipc/shared-memory.ts";
import { RING_MAX_SLOTS, SLOT_MAX_BYTES, SlotRing } from "../../src/ipc/slot-ring.ts";
import { mosaicSegments } from "./children.ts";

const before = mosaicSegments();
const created: string[] = [];

function ring(slots: number, slotSizeBytes: number): SlotRing {
  const r = SlotRing.create({ slots, slotSizeBytes });
  created.push(r.name);
  return r;
}

after(() => {
  for (const name of created) unlinkSegment(name);
  // Only this file's own segments: another test run may be using /dev/shm meanwhile.
  assert.deepEqual(
    [...mosaicSegments()].filter((name) => !before.has(name) && created.includes(`/${name}`)),
    [],
    "segments left in /dev/shm",
  );
});

function rejects(code: MosaicError["code"], message: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof MosaicError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  };
}

test("bad ring geometry is refused before anything is created", () => {
  const cases: Array<[number, number, MosaicError["code"], RegExp]> = [
    [8, 0, "MOSAIC_ERR_BAD_REQUEST", /slot size must be a positive integer, got 0/],
    [8, -1, "MOSAIC_ERR_BAD_REQUEST", /slot size/],
    [8, 1.5, "MOSAIC_ERR_BAD_REQUEST", /slot size/],
    [8, Number.NaN, "MOSAIC_ERR_BAD_REQUEST", /slot size/],
    [0, 1024, "MOSAIC_ERR_BAD_REQUEST", /slots must be an integer 1-1024, got 0/],
    [RING_MAX_SLOTS + 1, 1024, "MOSAIC_ERR_BAD_REQUEST", /slots/],
    [8, SLOT_MAX_BYTES + 1, "MOSAIC_ERR_MESSAGE_TOO_LARGE", /exceeds the 268435456-byte limit/],
    [1024, SLOT_MAX_BYTES, "MOSAIC_ERR_MESSAGE_TOO_LARGE", /over the .*-byte limit/],
  ];
  const segments = mosaicSegments().size;
  for (const [slots, slotSizeBytes, code, message] of cases) {
    assert.throws(() => SlotRing.create({ slots, slotSizeBytes }), rejects(code, message));
  }
  assert.throws(() => createSegment(0), rejects("MOSAIC_ERR_BAD_REQUEST", /positive integer/));
  assert.throws(() => createSegment(2 ** 40), rejects("MOSAIC_ERR_MESSAGE_TOO_LARGE", /limit/));
  assert.equal(mosaicSegments().size, segments);
});

test("bad and unknown segment names get clear errors", () => {
  for (const name of ["", "mosaic-x", "/", "/..", "/a/b", "/../etc/passwd", `/${"x".repeat(300)}`, "/a b"]) {
    assert.throws(
      () => SlotRing.open(name),
      rejects("MOSAIC_ERR_BAD_NAME", /bad shared-memory segment name/),
    );
  }
  assert.throws(() => openSegment(42 as unknown as string), rejects("MOSAIC_ERR_BAD_NAME", /42/));
  assert.throws(
    () => SlotRing.open("/mosaic-00000000000000000000000000000000"),
    rejects("MOSAIC_ERR_BAD_REQUEST", /shm_open\(\/mosaic-0+\) failed: ENOENT/),
  );
  const raw = createSegment(8192);
  created.push(raw.name);
  assert.throws(
    () => SlotRing.open(raw.name),
    rejects("MOSAIC_ERR_BAD_REQUEST", /is not a Mosaic slot ring/),
  );
  raw.close();
});

test("segments are private: mode 0600, unguessable names", async () => {
  const { statSync } = await import("node:fs");
  const a = ring(2, 4096);
  const b = ring(2, 4096);
  assert.match(a.name, /^\/mosaic-[0-9a-f]{32}$/);
  assert.notEqual(a.name, b.name);
  assert.equal(statSync(`/dev/shm${a.name}`).mode & 0o777, 0o600);
  await a.close();
  await b.close();
});

test("data, END and ERROR travel in slots; views are zero-copy and empty after close", async () => {
  const r = ring(3, 10);
  const other = SlotRing.open(r.name);
  const producer = r.producer({ timeoutMs: 2_000 });
  const consumer = other.consumer({ timeoutMs: 2_000 });
  assert.throws(() => r.producer(), rejects("MOSAIC_ERR_BAD_REQUEST", /already has a producer/));
  await producer.write(Buffer.from("hello, shared memory")); // 20 bytes: two slots
  const first = await consumer.next();
  assert.equal(first?.toString(), "hello, sha");
  const second = await consumer.next(); // releases the first
  assert.equal(second?.toString(), "red memory");
  await producer.end();
  assert.equal(await consumer.next(), null);
  assert.equal(await consumer.next(), null, "stays at the end");
  const r2 = ring(2, 64);
  const errorProducer = r2.producer();
  const errorConsumer = r2.consumer();
  const long = `no such file: media/${"é".repeat(100)}`; // longer than the slot: cut, code intact
  await errorProducer.fail(new MosaicError("MOSAIC_ERR_NO_SUCH_FILE", long));
  await assert.rejects(errorConsumer.next(), rejects("MOSAIC_ERR_NO_SUCH_FILE", /^no such file: media\/é+$/));
  await r2.close();
  const slot = await producer.acquireSlot();
  assert.throws(() => producer.commit(11), rejects("MOSAIC_ERR_BAD_REQUEST", /outside 0-10/));
  producer.commit(0);
  await other.close();
  assert.equal(second?.length, 0, "a view handed out before close is empty after it");
  await r.close();
  assert.equal(slot.length, 0);
  await assert.rejects(
    producer.acquireSlot(),
    (error: Error & { reason?: string }) => error.reason === "closed",
  );
});

test("a wait with no peer times out with a clear error; close() wakes a pending wait", async () => {
  const r = ring(2, 16);
  const consumer = r.consumer({ timeoutMs: 300, pollMs: 100 });
  const startMs = performance.now();
  await assert.rejects(consumer.next(), (error: Error & { reason?: string; code?: string }) => {
    assert.equal(error.reason, "timeout");
    assert.equal(error.code, "MOSAIC_ERR_PEER_UNAVAILABLE");
    assert.match(error.message, /no filled slot from the producer within 300 ms/);
    return true;
  });
  const tookMs = performance.now() - startMs;
  assert.ok(tookMs >= 290 && tookMs < 1_500, `timed out after ${tookMs} ms`);

  const producer = r.producer({ timeoutMs: 60_000, pollMs: 30_000 });
  await producer.write(Buffer.alloc(32)); // both slots taken: the next write waits on Empty
  const blocked = producer.write(Buffer.alloc(1));
  const closeStartMs = performance.now();
  await r.close();
  await assert.rejects(blocked, (error: Error & { reason?: string }) => error.reason === "closed");
  assert.ok(performance.now() - closeStartMs < 1_000, "close() did not wait out the 30 s slice");
});

test("a consumer that closes wakes a producer waiting for a free slot", async () => {
  const r = ring(1, 16);
  const other = SlotRing.open(r.name);
  const producer = r.producer({ timeoutMs: 60_000, pollMs: 30_000 });
  const consumer = other.consumer();
  await producer.write(Buffer.alloc(16));
  const blocked = producer.write(Buffer.alloc(16));
  await new Promise((resolve) => setTimeout(resolve, 50));
  await other.close();
  await assert.rejects(blocked, (error: Error & { reason?: string }) => {
    assert.equal(error.reason, "peer-closed", error.message);
    return true;
  });
  assert.equal(consumer.closed, true);
  await r.close();
});
