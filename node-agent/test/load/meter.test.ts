// The load meter on real parts: its interceptor on a real gRPC server over
// loopback counts the calls being served (not health checks), and a really
// busy event loop, or a late timer, raises the level; idle lowers it again.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { LoadMeter } from "../../src/load/meter.ts";

const id = (b: Buffer) => b;
const method = (path: string) => ({
  path,
  requestStream: false,
  responseStream: false,
  requestSerialize: id,
  requestDeserialize: id,
  responseSerialize: id,
  responseDeserialize: id,
});
const HOLD = method("/test.Hold/Hold");
const HEALTH = method("/grpc.health.v1.Health/Check");

async function until(what: string, ok: () => boolean, limitMs = 5_000): Promise<void> {
  const endMs = Date.now() + limitMs;
  while (!ok()) {
    if (Date.now() > endMs) assert.fail(`not within ${limitMs} ms: ${what}`);
    await sleep(5);
  }
}

/** Spins the event loop busy for `ms` (what a 10 ms request costs its server), then yields. */
function spin(ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {}
  return new Promise((resolve) => setImmediate(resolve));
}

describe("load meter", () => {
  test("its interceptor counts the calls a real gRPC server is serving, until their status or cancellation", async () => {
    const meter = new LoadMeter();
    const server = new grpc.Server({ interceptors: [meter.interceptor] });
    const held: (() => void)[] = [];
    const handler = (_call: unknown, callback: grpc.sendUnaryData<Buffer>) =>
      held.push(() => callback(null, Buffer.alloc(0)));
    server.addService({ hold: HOLD }, { hold: handler });
    server.addService({ check: HEALTH }, { check: handler });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const call = (path: string) => {
        let cancel = () => {};
        const done = new Promise<grpc.ServiceError | null>((resolve) => {
          const c = client.makeUnaryRequest(path, id, id, Buffer.alloc(1), (error) => resolve(error));
          cancel = () => c.cancel();
        });
        return { done, cancel: () => cancel() };
      };
      const calls = [call(HOLD.path), call(HOLD.path), call(HOLD.path), call(HEALTH.path)];
      await until("four calls held by the server", () => held.length === 4);
      assert.equal(meter.inFlight, 3, "health checks are not counted");
      (held.shift() as () => void)();
      await calls[0]?.done;
      assert.equal(meter.inFlight, 2);
      calls[1]?.cancel();
      assert.equal((await calls[1]?.done)?.code, grpc.status.CANCELLED);
      await until("a cancelled call no longer counts", () => meter.inFlight === 1);
      for (const release of held) release();
      await Promise.all(calls.map((c) => c.done));
      assert.equal(meter.inFlight, 0, "answering a cancelled call does not count it twice");
    } finally {
      client.close();
      server.forceShutdown();
    }
  });

  test("a busy event loop turns the level High within a few samples, idle brings it back to Low", async () => {
    const meter = new LoadMeter({ sampleMs: 100 });
    const startMs = performance.now();
    while (meter.level !== "High" && performance.now() - startMs < 2_000) {
      await spin(15);
      meter.update(0);
    }
    const highMs = performance.now() - startMs;
    assert.equal(meter.level, "High", `busy ${Math.round(highMs)} ms`);
    assert.ok(meter.signals.utilization > 0.9, `utilisation ${meter.signals.utilization}`);
    const idleMs = performance.now();
    const level = () => meter.level;
    while (level() !== "Low" && performance.now() - idleMs < 2_000) {
      await sleep(20);
      meter.update(0);
    }
    assert.equal(meter.level, "Low");
    assert.ok(meter.signals.utilization < 0.3, `utilisation ${meter.signals.utilization}`);
    assert.equal(meter.changes, 2, "High, then Low: nothing in between flapped");
  });

  test("calls in flight and a late timer raise the level too, averaged or worst over the sample", async () => {
    // The clock is the test's; event-loop use is real, so the loop idles before each sample.
    let nowMs = 0;
    const meter = new LoadMeter({ sampleMs: 100, clock: () => nowMs });
    // Eight calls for the whole sample: the full in-flight value.
    const ends = Array.from({ length: 8 }, () => meter.begin());
    nowMs = 100;
    await sleep(20);
    assert.equal(meter.update(0), "High");
    assert.equal(meter.signals.inFlight, 8);
    // Two calls for half of the next sample average one: Low again (pressure 1/8).
    for (const end of ends.slice(0, 6)) end();
    nowMs = 150;
    for (const end of ends) end();
    nowMs = 200;
    await sleep(20);
    assert.equal(meter.update(0), "Low");
    assert.equal(meter.signals.inFlight, 1);
    // The worst lateness the driver reported over a sample counts, not the last one.
    nowMs = 250;
    meter.update(40);
    nowMs = 300;
    await sleep(20);
    assert.equal(meter.update(1), "Medium");
    assert.equal(meter.signals.queueDelayMs, 40);
  });
});
