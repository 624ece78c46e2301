import assert from "node:assert/strict";
import { test } from "node:test";
import { DirSyncer } from "../../src/storage/dir-sync.ts";

/** A sync function whose calls finish only when the test says so. */
function controlledSync() {
  const calls: { dir: string; finish: () => void }[] = [];
  const sync = (dir: string) =>
    new Promise<void>((resolve) => {
      calls.push({ dir, finish: resolve });
    });
  return { calls, sync };
}

const settled = () => new Promise((resolve) => setImmediate(resolve));

test("callers that arrive during a sync share the next one, which starts after theirs", async () => {
  const { calls, sync } = controlledSync();
  const syncer = new DirSyncer(sync);
  const done: string[] = [];
  syncer.sync("/d").then(() => done.push("first"));
  await settled();
  assert.equal(calls.length, 1);
  for (const name of ["second", "third", "fourth"]) syncer.sync("/d").then(() => done.push(name));
  await settled();
  assert.equal(calls.length, 1, "no second fsync while the first runs");

  calls[0]?.finish();
  await settled();
  assert.deepEqual(done, ["first"], "later callers are not covered by a sync that began before them");
  assert.equal(calls.length, 2, "one more fsync for all three");

  calls[1]?.finish();
  await settled();
  assert.deepEqual(done, ["first", "second", "third", "fourth"]);
  syncer.sync("/d");
  await settled();
  assert.equal(calls.length, 3, "an idle directory starts a fresh sync at once");
  calls[2]?.finish();
});

test("directories are synced independently", async () => {
  const { calls, sync } = controlledSync();
  const syncer = new DirSyncer(sync);
  const a = syncer.sync("/a");
  const b = syncer.sync("/b");
  await settled();
  assert.deepEqual(
    calls.map((c) => c.dir),
    ["/a", "/b"],
  );
  for (const c of calls) c.finish();
  await Promise.all([a, b]);
});

test("a failed sync fails its callers, and the next caller gets a new attempt", async () => {
  let attempts = 0;
  const syncer = new DirSyncer(async () => {
    attempts++;
    if (attempts === 1) throw new Error("EIO");
  });
  await assert.rejects(syncer.sync("/d"), /EIO/);
  await syncer.sync("/d");
  assert.equal(attempts, 2);
});
