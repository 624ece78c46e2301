// The sender's memory of a forward (Outbox) and the registry of calls in
// flight: the outbox reads its input at most a window ahead of the owner's
// acknowledgements and can replay from any unacknowledged offset; a lost
// channel aborts exactly its own calls, and a finished call leaves nothing.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CallsInFlight, ChannelLost, unlessAborted } from "../../src/rpc/calls-in-flight.ts";
import { Outbox } from "../../src/rpc/forward-sender.ts";

/** An input of `count` parts of `size` bytes, byte i of the stream being i % 251; counts what was read. */
function source(count: number, size: number) {
  const state = { read: 0 };
  async function* parts(): AsyncGenerator<Buffer> {
    for (let p = 0; p < count; p++) {
      const part = Buffer.alloc(size);
      for (let i = 0; i < size; i++) part[i] = (p * size + i) % 251;
      state.read += size;
      yield part;
    }
  }
  return { state, parts: parts() };
}

async function take(from: AsyncGenerator<Buffer>, bytes: number): Promise<Buffer> {
  const got: Buffer[] = [];
  let n = 0;
  while (n < bytes) {
    const r = await from.next();
    if (r.done) break;
    got.push(r.value);
    n += r.value.length;
  }
  return Buffer.concat(got);
}

const expected = (start: number, length: number) =>
  Buffer.from(Array.from({ length }, (_, i) => (start + i) % 251));

describe("Outbox: a bounded window of unacknowledged input", () => {
  test("reads no more than the window (plus one part) past the acknowledged offset, and on as acks come", async () => {
    const { state, parts } = source(100, 1_000);
    const outbox = new Outbox(10_000);
    const filled = outbox.fill(parts);
    await sleep(20);
    assert.equal(outbox.read, 10_000);
    assert.equal(outbox.heldBytes, 10_000);
    assert.ok(state.read <= 11_000, `read ${state.read}`);
    outbox.ack(4_500);
    await sleep(20);
    assert.equal(outbox.acked, 4_500);
    assert.equal(outbox.read, 15_000, "read on until the window is full again: at most one part over it");
    assert.equal(outbox.heldBytes, 10_500);
    outbox.ack(100_000); // beyond what was read: ignored
    assert.equal(outbox.acked, 4_500);
    outbox.close();
    await filled;
  });

  test("replays from any unacknowledged offset, mid-part included, and follows new input to its end", async () => {
    const { parts } = source(20, 1_000);
    const outbox = new Outbox(1_000_000);
    await outbox.fill(parts);
    outbox.ack(2_500);
    assert.ok((await take(outbox.from(2_500), 17_500)).equals(expected(2_500, 17_500)));
    assert.ok((await take(outbox.from(7_321), 12_679)).equals(expected(7_321, 12_679)));
    const rest = outbox.from(19_999);
    assert.ok((await take(rest, 1)).equals(expected(19_999, 1)));
    assert.equal((await rest.next()).done, true, "ends with the input");
    await assert.rejects(take(outbox.from(2_000), 1), /already dropped/);
  });

  test("an input that fails is reported to the stream reading it; a stopped stream ends", async () => {
    const outbox = new Outbox(1_000_000);
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(10);
      throw new Error("client went away");
    }
    await outbox.fill(failing());
    await assert.rejects(take(outbox.from(0), 100), /forwarded input failed: client went away/);
    const waiting = new Outbox(1_000_000);
    const stop = new AbortController();
    const reader = take(waiting.from(0, stop.signal), 10);
    stop.abort();
    assert.equal((await reader).length, 0);
  });
});

describe("CallsInFlight", () => {
  test("a lost channel aborts its own calls with ChannelLost and forgets them; finished calls leave nothing", async () => {
    const calls = new CallsInFlight();
    const a1 = calls.start("n1", 0);
    const a2 = calls.start("n1", 0);
    const b = calls.start("n1", 1);
    const other = calls.start("n2", 0);
    assert.equal(calls.count(), 4);
    a2.done();
    const hung = unlessAborted(new Promise<never>(() => {}), a1.signal);
    assert.equal(calls.abort("n1", 0, new ChannelLost("n1@x", 0)), 1);
    await assert.rejects(hung, (e) => e instanceof ChannelLost && /channel A lost/.test(e.message));
    assert.equal(b.signal.aborted, false);
    assert.equal(other.signal.aborted, false);
    a1.done();
    b.done();
    other.done();
    assert.equal(calls.count(), 0);
    assert.equal(calls.abort("n1", 0, new Error("none")), 0);
  });
});
