import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { WorkQueue } from "../../src/framework/work-queue.ts";

function gate() {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

test("a key added many times while waiting runs once", async () => {
  const runs: string[] = [];
  const hold = gate();
  const q = new WorkQueue({
    concurrency: 1,
    handler: async (k) => {
      runs.push(k);
      if (k === "busy") await hold.opened;
    },
    onError: () => {},
  });
  q.add("busy");
  for (let i = 0; i < 5; i++) q.add("a");
  q.add("b");
  for (let i = 0; i < 5; i++) q.add("a");
  assert.equal(q.length, 2);
  hold.open();
  await q.drained();
  assert.deepEqual(runs, ["busy", "a", "b"]);
});

test("a key is never handled twice at once; added while running, it runs again after", async () => {
  let inside = 0;
  let most = 0;
  let runs = 0;
  const hold = gate();
  const q = new WorkQueue({
    concurrency: 4,
    handler: async () => {
      inside++;
      most = Math.max(most, inside);
      runs++;
      if (runs === 1) await hold.opened;
      inside--;
    },
    onError: () => {},
  });
  q.add("k");
  await sleep(5);
  q.add("k");
  q.add("k");
  await sleep(5);
  assert.equal(runs, 1, "the second add waits for the first run");
  hold.open();
  await q.drained();
  assert.equal(most, 1);
  assert.equal(runs, 2, "the adds during the run fold into one more run");
});

test("failures back off exponentially and a success resets the count", async () => {
  const at: number[] = [];
  const delays: number[] = [];
  let fail = 3;
  const q = new WorkQueue({
    backoff: { baseMs: 20, maxMs: 1000 },
    handler: async () => {
      at.push(performance.now());
      if (fail-- > 0) throw new Error("not yet");
    },
    onError: (_key, _error, retryInMs) => delays.push(retryInMs),
  });
  q.add("k");
  const deadline = Date.now() + 5_000;
  while (at.length < 4 && Date.now() < deadline) await sleep(10);
  await q.drained();
  assert.deepEqual(delays, [20, 40, 80]);
  assert.equal(q.failures("k"), 0);
  const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
  gaps.forEach((gap, i) => {
    assert.ok(gap >= (delays[i] as number) - 2, `retry ${i} waited ${gap} ms, at least ${delays[i]}`);
  });
});

test("stop() drops waiting keys and pending retries", async () => {
  let runs = 0;
  const q = new WorkQueue({
    backoff: { baseMs: 50 },
    handler: async () => {
      runs++;
      throw new Error("always");
    },
    onError: () => {},
  });
  q.add("k");
  await q.drained();
  await q.stop();
  await sleep(120);
  assert.equal(runs, 1);
  q.add("k");
  await sleep(10);
  assert.equal(runs, 1, "a stopped queue takes no work");
});
