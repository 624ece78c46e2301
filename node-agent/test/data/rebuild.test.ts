// The rebuild over five real agents: a node stopped and marked out has every
// piece of every file rebuilt at its new placement (erasure 2+1 and three
// replicas), with progress reported down to zero bytes left; a node that
// comes back holding stale versions has them dropped and its pieces brought
// up to date, and the replacements' copies go once it holds them; and the
// rate limit holds.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { withNodeOut, withNodeState } from "../../src/core/cluster-map.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import { storedBytes } from "../../src/core/stripes.ts";
import { layoutOf } from "../../src/core/volume.ts";
import type { RebuildProgress } from "../../src/data/rebuild.ts";
import { silentLogger } from "../../src/log.ts";
import { ChunkStore } from "../../src/storage/chunk-store.ts";
import { gather, MiB, patternBytes } from "../helpers/in-process-cluster.ts";
import {
  expectWhole,
  FailoverCluster,
  missingPieces,
  placedPieces,
  strayPieces,
  type Written,
  waitFor,
} from "./failover-cluster.ts";

const FILES: [volume: string, name: string, size: number][] = [
  ["media", "rebuild/a.bin", 3 * MiB + 17],
  ["media", "rebuild/b.bin", 1 * MiB],
  ["media", "rebuild/c.bin", 100_001],
  ["media", "rebuild/empty.bin", 0],
  ["thumbs", "rebuild/r1.bin", 700_000],
  ["thumbs", "rebuild/r2.bin", 2 * MiB + 3],
];

describe("rebuild after a node is marked out, and after it returns", { timeout: 300_000 }, () => {
  let cluster: FailoverCluster;
  const files: Written[] = [];
  const VICTIM = 2;

  before(async () => {
    cluster = await FailoverCluster.start(5);
    for (const [n, [volume, name, size]] of FILES.entries()) {
      const manifest = await cluster.client(n % 5).put(volume, name, patternBytes(size, n + 1), size);
      files.push({ volume, name, size, seed: n + 1, manifest });
    }
  });
  after(async () => {
    await cluster?.stop();
  });

  test("stop a node and mark it out: every piece is rebuilt at its new placement; reads are whole", async (t) => {
    const victim = cluster.ids[VICTIM] as string;
    const held = files.filter((f) => placedPieces(cluster.map, f.manifest).some((p) => p.node === victim));
    assert.ok(held.length >= 4, `${victim} holds pieces of most files (${held.length})`);

    const lost = files.flatMap((f) => placedPieces(cluster.map, f.manifest)).filter((p) => p.node === victim);
    await cluster.stopNode(VICTIM);
    const started = performance.now();
    cluster.update(withNodeOut(cluster.map, victim));
    const progress = await cluster.rebuildSettled(120_000);
    const seconds = (performance.now() - started) / 1000;

    const rebuiltBytes = progress.reduce((sum, p) => sum + p.bytesDone, 0);
    const rebuiltPieces = progress.reduce((sum, p) => sum + p.piecesDone, 0);
    t.diagnostic(
      `rebuilt ${rebuiltPieces} pieces, ${rebuiltBytes} bytes in ${seconds.toFixed(2)} s ` +
        `(${(rebuiltBytes / 1e6 / seconds).toFixed(1)} MB/s, all nodes, default limit 64 MiB/s each)`,
    );
    assert.equal(rebuiltPieces, lost.length, "each of the victim's pieces rebuilt once, on one node");
    for (const p of progress) {
      assert.equal(p.bytesLeft, 0, JSON.stringify(p));
      assert.equal(p.piecesFailed, 0, JSON.stringify(p));
    }

    for (const file of files) {
      const placed = placedPieces(cluster.map, file.manifest);
      assert.ok(!placed.some((p) => p.node === victim), `${file.name}: nothing placed on ${victim}`);
      assert.deepEqual(
        await missingPieces(cluster, cluster.map, file.manifest),
        [],
        `${file.name}: all placed`,
      );
    }
    for (const via of [0, 1, 3, 4]) for (const file of files) await expectWhole(cluster, via, file);
    assert.equal(cluster.agents[VICTIM], undefined, `${victim} is still gone`);
    const { rebuild } = await cluster.client(0).cluster();
    assert.equal(rebuild?.bytesLeft, 0, "progress is reported through the cluster call");
    assert.equal(rebuild?.epoch, cluster.map.epoch);
  });

  test("the node comes back after missing an overwrite: stale pieces dropped, current ones pulled, copies moved home", async () => {
    const victim = cluster.ids[VICTIM] as string;
    // Written while the victim is out: an overwrite (its copy goes stale) and a new file.
    const over = files[0] as Written;
    const stale = over.manifest;
    over.seed = 101;
    over.manifest = await cluster
      .client(1)
      .put(over.volume, over.name, patternBytes(over.size, over.seed), over.size);
    const fresh: Written = {
      volume: "media",
      name: "rebuild/while-out.bin",
      size: 2 * MiB + 5,
      seed: 102,
    } as Written;
    fresh.manifest = await cluster
      .client(3)
      .put(fresh.volume, fresh.name, patternBytes(fresh.size, 102), fresh.size);
    files.push(fresh);
    assert.ok(over.manifest.version > stale.version);

    const disk = await ChunkStore.open(cluster.dataDir(VICTIM), {
      capacityBytes: 2 ** 40,
      log: silentLogger(),
    });
    assert.deepEqual(
      await disk.versions(stale.volume, stale.fileId),
      [stale.version],
      `${victim} holds the stale version`,
    );

    const back = withNodeState(cluster.map, victim, "up");
    cluster.update(back);
    const agent = await cluster.startNode(VICTIM);
    await cluster.rebuildSettled(120_000);

    assert.deepEqual(await agent.store.versions(stale.volume, stale.fileId), [over.manifest.version]);
    for (const file of files) {
      assert.deepEqual(await missingPieces(cluster, back, file.manifest), [], `${file.name}: all placed`);
      assert.deepEqual(
        await strayPieces(cluster, back, file.manifest),
        [],
        `${file.name}: no copy left behind`,
      );
    }
    assert.ok(
      files.some((f) => placedPieces(back, f.manifest).some((p) => p.node === victim)),
      `${victim} holds pieces again`,
    );
    for (const via of [0, VICTIM, 4]) for (const file of files) await expectWhole(cluster, via, file);
  });
});

describe("the rebuild's rate limit", { timeout: 300_000 }, () => {
  let cluster: FailoverCluster;
  const RATE = 192 * 1024;
  const lines: { msg?: string; node?: string; [field: string]: unknown }[] = [];

  before(async () => {
    cluster = await FailoverCluster.start(5, {
      rebuildRateBytesPerSecond: RATE,
      log: (i) =>
        pino(
          { level: "info", base: { node: `node-${i}` } },
          { write: (line: string) => void lines.push(JSON.parse(line)) },
        ),
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  test("no node rebuilds faster than its limit; progress shows rate and ETA meanwhile", async (t) => {
    const size = 5 * MiB;
    const manifests: FileManifest[] = [];
    for (let n = 0; n < 2; n++) {
      manifests.push(await cluster.client(0).put("media", `rate/${n}.bin`, patternBytes(size, n), size));
    }
    const victim = cluster.ids[4] as string;
    await cluster.stopNode(4);
    const started = performance.now();
    cluster.update(withNodeOut(cluster.map, victim));

    // Sampled while it runs: what `mosaic nodes` or the operator would see.
    let seen: RebuildProgress | undefined;
    await waitFor(
      () => {
        seen = cluster
          .running()
          .map((a) => a.rebuild?.progress())
          .find((p) => p?.state === "rebuilding" && p.bytesDone > 0 && p.bytesLeft > 0);
        return seen !== undefined;
      },
      60_000,
      () => "a rebuild in progress",
    );
    assert.ok(seen && seen.rateBytesPerSecond > 0 && seen.etaSeconds !== null, JSON.stringify(seen));
    assert.equal(seen.limitBytesPerSecond, RATE);

    const progress = await cluster.rebuildSettled(120_000);
    const seconds = (performance.now() - started) / 1000;
    const most = Math.max(...progress.map((p) => p.bytesDone));
    const total = manifests.reduce((sum, m) => sum + storedBytes(m.sizeBytes, layoutOf(m)), 0);
    t.diagnostic(
      `busiest node rebuilt ${most} bytes in ${seconds.toFixed(2)} s at a limit of ${RATE} B/s ` +
        `(${(most / RATE).toFixed(2)} s at the limit); ${total} bytes stored in all`,
    );
    assert.ok(most / RATE >= 2, `enough to measure: ${most} bytes`);
    assert.ok(
      seconds >= (most / RATE) * 0.95,
      `${most} bytes took ${seconds.toFixed(2)} s: faster than the limit`,
    );
    for (const m of manifests) assert.deepEqual(await missingPieces(cluster, cluster.map, m), []);

    // Logged as it goes (every 5 s) and at the end of the pass, by each node that rebuilt something.
    const logged = lines.filter((l) => l.msg === "rebuild progress");
    assert.ok(logged.length > 0, "progress logged while the rebuild ran");
    for (const l of logged) {
      assert.ok(
        typeof l.bytesLeft === "number" && typeof l.MBps === "number" && "etaSeconds" in l,
        JSON.stringify(l),
      );
    }
    const done = lines.filter((l) => l.msg === "rebuild pass done" && (l.bytes as number) > 0);
    assert.ok(done.length >= 3, `passes that rebuilt something: ${done.map((l) => l.node)}`);
  });
});

describe("pieces being read are rebuilt first", { timeout: 300_000 }, () => {
  let cluster: FailoverCluster;
  const RATE = 128 * 1024;

  before(async () => {
    cluster = await FailoverCluster.start(5, { rebuildRateBytesPerSecond: RATE });
  });
  after(async () => {
    await cluster?.stop();
  });

  test("a read that misses a piece on its new holder moves that file to the front of the holder's rebuild", async () => {
    const manifests: FileManifest[] = [];
    for (let n = 0; n < 6; n++) {
      manifests.push(await cluster.client(0).put("media", `first/${n}.bin`, patternBytes(MiB, n), MiB));
    }
    const victim = cluster.ids[4] as string;
    const out = withNodeOut(cluster.map, victim);
    // Where the victim's data pieces go: the node inheriting the most, and its last file in fileId order.
    const moved = new Map<string, { file: FileManifest; slot: number }[]>();
    for (const m of manifests) {
      const was = placedPieces(cluster.map, m);
      for (const [i, p] of placedPieces(out, m).entries()) {
        if (was[i]?.node !== victim || p.key.stripe < 0 || p.key.slot >= 2) continue;
        moved.set(p.node, [...(moved.get(p.node) ?? []), { file: m, slot: p.key.slot }]);
      }
    }
    const [heir, pieces] = [...moved.entries()].sort((a, b) => b[1].length - a[1].length)[0] as [
      string,
      { file: FileManifest }[],
    ];
    assert.ok(pieces.length >= 3, `${heir} inherits ${pieces.length} data pieces`);
    const last = pieces
      .map((p) => p.file)
      .sort((a, b) => (a.fileId < b.fileId ? -1 : 1))
      .at(-1) as FileManifest;
    const agent = cluster.agent(cluster.indexOf(heir));

    await cluster.stopNode(4);
    cluster.update(out);
    await waitFor(
      () => agent.rebuild?.progress().state === "rebuilding",
      30_000,
      () => `${heir} rebuilding`,
    );
    const reader = [0, 1, 2, 3].find((i) => cluster.ids[i] !== heir) as number;
    const { body } = await cluster.client(reader).get(last.volume, last.name);
    assert.ok(
      (await gather(body)).equals(await gather(patternBytes(MiB, manifests.indexOf(last)))),
      "degraded read",
    );
    let left = -1;
    await waitFor(
      async () => {
        if ((await missingPieces(cluster, out, last)).length > 0) return false;
        const p = agent.rebuild?.progress();
        left = p?.bytesLeft ?? -1;
        // The pass's bytes by volume add up to its whole (what each StripedVolume shows of it).
        const volumes = Object.values(p?.volumes ?? {});
        assert.equal(
          volumes.reduce((t, v) => t + v.bytesLeft, 0),
          left,
        );
        assert.ok((p?.volumes[last.volume]?.bytesTotal ?? 0) > 0, `${last.volume} is listed`);
        return true;
      },
      60_000,
      () => `${last.name} rebuilt on ${heir}`,
    );
    assert.ok(left > 0, `${last.name} was rebuilt on ${heir} before the rest (${left} bytes still left)`);
    await cluster.rebuildSettled(120_000);
  });
});
