// What an agent reports of its volumes for StripedVolume status: pieces and
// bytes per volume counted from a real store, every served volume listed
// (held or not), and its rebuild reported on transitions at once but its
// moving figures at a low rate; and a volume being deleted purged from the
// store.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { freshProgress, type RebuildProgress } from "../../src/data/rebuild.ts";
import { reportedHoldings, scanHoldings } from "../../src/kube/holdings-scan.ts";
import { nodeRebuildOf, rebuildReportDue } from "../../src/kube/node-rebuild.ts";
import { VolumePurger } from "../../src/kube/volume-purge.ts";
import { silentLogger } from "../../src/log.ts";
import { ChunkStore } from "../../src/storage/chunk-store.ts";
import { readCopyKey } from "../../src/storage/piece-key.ts";

const FILE = "0123456789abcdef0123456789abcdef";

describe("holdings counted from the store", () => {
  let root: string | undefined;
  after(() => (root === undefined ? undefined : rm(root, { recursive: true, force: true })));

  test("pieces and bytes per volume, read copies not counted; a served volume with nothing is listed, a gone one only while it holds pieces", async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-holdings-"));
    const store = await ChunkStore.open(root, { capacityBytes: 2 ** 30, log: silentLogger() });
    const put = (volume: string, stripe: number, bytes: number, slot = 0) =>
      store.put({ volume, fileId: FILE, version: 1, stripe, slot }, Buffer.alloc(bytes, 7));
    await put("media", 0, 1_000);
    await put("media", 1, 2_000);
    await put(
      "media",
      1,
      2_000,
      readCopyKey({ volume: "media", fileId: FILE, version: 1, stripe: 1, slot: 0 }).slot,
    );
    await put("old", 0, 500);
    const scanned = await scanHoldings(store);
    const media = scanned.find((h) => h.name === "media");
    assert.equal(media?.pieces, 2);
    // Each chunk file carries a header besides its data.
    assert.ok((media?.bytes ?? 0) > 3_000 && (media?.bytes ?? 0) < 3_400, `media bytes ${media?.bytes}`);
    assert.deepEqual(
      reportedHoldings(scanned, ["media", "thumbs"]).map((h) => `${h.name}:${h.pieces}`),
      ["media:2", "old:1", "thumbs:0"],
    );
    await store.deleteVersions("old", FILE, () => true);
    assert.deepEqual(
      reportedHoldings(await scanHoldings(store), ["media", "thumbs"]).map((h) => h.name),
      ["media", "thumbs"],
    );
  });

  test("a volume being deleted: its pieces go, its uid is reported, pieces that come back go again", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mosaic-purge-"));
    try {
      const store = await ChunkStore.open(dir, { capacityBytes: 2 ** 30, log: silentLogger() });
      const put = (volume: string, stripe: number) =>
        store.put({ volume, fileId: FILE, version: 1, stripe, slot: 0 }, Buffer.alloc(100, 1));
      await put("media", 0);
      await put("clips", 0);
      await put("clips", 1);
      let changes = 0;
      const purger = new VolumePurger({ store, onChange: () => changes++, log: silentLogger() });
      await purger.deleting([{ name: "clips", uid: "u-clips" }]);
      const pieces = async () =>
        Object.fromEntries((await scanHoldings(store)).map((h) => [h.name, h.pieces]));
      assert.deepEqual(await pieces(), { clips: 0, media: 1 });
      assert.deepEqual(purger.purged, ["u-clips"]);
      assert.equal(changes, 1);
      await put("clips", 2); // a write that was in flight
      await purger.held(await scanHoldings(store));
      assert.deepEqual(await pieces(), { clips: 0, media: 1 });
      assert.deepEqual(purger.purged, ["u-clips"]);
      await purger.deleting([]);
      assert.deepEqual(purger.purged, [], "the object is gone: nothing left to report");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the rebuild as reported", () => {
  const progress = (over: Partial<RebuildProgress>): RebuildProgress => ({
    ...freshProgress("idle", 4, null, 1),
    ...over,
  });

  test("settled once a pass ends with nothing pending; remembered while the next one runs", () => {
    assert.equal(nodeRebuildOf(progress({}), 0).settledEpoch, 4);
    assert.equal(nodeRebuildOf(progress({ pending: 2 }), 3).settledEpoch, 3);
    assert.equal(nodeRebuildOf(progress({ passes: 0 }), 0).settledEpoch, 0, "no pass yet");
    const volumes = {
      media: { bytesTotal: 8, bytesLeft: 6 },
      clips: { bytesTotal: 4, bytesLeft: 4 },
      done: { bytesTotal: 3, bytesLeft: 0 },
    };
    const pulling = nodeRebuildOf(
      progress({
        state: "rebuilding",
        epoch: 5,
        bytesLeft: 10,
        rateBytesPerSecond: 5,
        etaSeconds: 2,
        volumes,
      }),
      4,
    );
    assert.deepEqual(pulling, {
      state: "Rebuilding",
      epoch: 5,
      settledEpoch: 4,
      bytesLeft: 10,
      bytesPerSecond: 5,
      etaSeconds: 2,
      // Only the volumes with pieces still to pull, by name.
      volumes: [
        { name: "clips", bytesLeft: 4 },
        { name: "media", bytesLeft: 6 },
      ],
    });
    assert.deepEqual(nodeRebuildOf(progress({ volumes }), 4).volumes, [], "idle: nothing listed");
    assert.equal(nodeRebuildOf(undefined, 0).state, "Off");
  });

  test("transitions are due at once, moving figures at most every few seconds", () => {
    const a = nodeRebuildOf(
      progress({ state: "rebuilding", epoch: 5, bytesLeft: 10, rateBytesPerSecond: 5 }),
      4,
    );
    const b = { ...a, bytesLeft: 5 };
    assert.equal(rebuildReportDue(b, a, 1_000, 5_000), false);
    assert.equal(rebuildReportDue(b, a, 5_000, 5_000), true);
    assert.equal(rebuildReportDue(nodeRebuildOf(progress({ epoch: 5 }), 4), a, 10, 5_000), true);
    const started = { ...a, bytesPerSecond: 0 };
    assert.equal(
      rebuildReportDue(a, started, 1_000, 5_000),
      true,
      "the first measured rate goes out at once",
    );
  });
});
