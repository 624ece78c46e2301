// Failover of I/O with real agent processes: kill -9 one of five and writes
// carry on with no error, each written around the dead node at full
// redundancy (any one further node may die and every file still reads);
// when it returns, the rebuild takes its pieces home. Then a node killed and
// declared out (a new cluster file, SIGHUP) has its pieces rebuilt on the
// others at their new placement, progress reported through the cluster call.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { ClusterInfo } from "../../src/client/agent-client.ts";
import { writeClusterFile } from "../../src/config.ts";
import { type ClusterMap, withNodeOut } from "../../src/core/cluster-map.ts";
import { placeFileStripe } from "../../src/core/file-placement.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import { expectTestFile, putTestFile, type TestFile, testFile } from "../helpers/cluster-files.ts";
import { MiB, type ProcessCluster, startProcessCluster } from "../helpers/process-cluster.ts";

const FIRST = 1; // killed first, written around
const SURVIVOR = 0; // reads and metadata go through it

/** Polls until `condition` holds; fails after `timeoutMs` saying what was awaited. */
async function until(
  condition: () => Promise<boolean>,
  timeoutMs: number,
  what: () => string,
): Promise<number> {
  const started = performance.now();
  while (!(await condition())) {
    if (performance.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await sleep(100);
  }
  return performance.now() - started;
}

/** Whether every piece of the file is ok where its normal placement (nothing written around) puts it. */
async function atHome(cluster: ProcessCluster, map: ClusterMap, file: TestFile): Promise<string | undefined> {
  const { manifest, pieces } = await cluster.client(SURVIVOR).stat(file.volume, file.name);
  if (manifest.writtenAround !== undefined) return `${file.name}: written around ${manifest.writtenAround}`;
  for (const p of pieces) {
    const home = placeFileStripe(map, manifest, p.stripe)[p.slot];
    if (p.state !== "ok" || p.node !== home) return `${file.name}: ${JSON.stringify(p)}, home ${home}`;
  }
  return undefined;
}

describe("failover of I/O across agent processes", { timeout: 600_000 }, () => {
  let cluster: ProcessCluster;
  const files: TestFile[] = [];

  before(async () => {
    cluster = await startProcessCluster({ nodes: 5 });
  });
  after(async () => {
    await cluster?.stop();
  });

  test("kill -9 one of five: continuous writes all succeed, written around it", async () => {
    const dead = cluster.nodeId(FIRST);
    await cluster.kill9(FIRST);
    const errors: string[] = [];
    // Two writers at once, through every survivor, for as long as 20 writes take.
    await Promise.all(
      [0, 1].map(async (w) => {
        for (let n = w; n < 20; n += 2) {
          const volume = n % 3 === 2 ? "replicated" : "media";
          const file = testFile(volume, `io/${n}.bin`, [3 * MiB + 1, 700_003, 2 * MiB][n % 3] as number);
          const via = [0, 2, 3, 4][n % 4] as number;
          try {
            await putTestFile(cluster.client(via), file);
            files.push(file);
          } catch (error) {
            errors.push(`${file.name} via node-${via}: ${(error as Error).message}`);
          }
        }
      }),
    );
    assert.deepEqual(errors, [], "no write failed");
    const around = files.filter((f) => f.manifest?.writtenAround?.includes(dead)).length;
    assert.ok(around >= 10, `${around} of ${files.length} files written around ${dead}`);
    for (const file of files) {
      const { pieces } = await cluster.client(SURVIVOR).stat(file.volume, file.name);
      assert.deepEqual(
        pieces.filter((p) => p.state !== "ok" || p.node === dead),
        [],
        `${file.name}: every piece stored, none on ${dead}`,
      );
    }
  });

  test("any one further node killed: every file still reads whole", async () => {
    for (const other of [2, 3, 4]) {
      await cluster.kill9(other);
      for (const file of files) await expectTestFile(cluster.client(SURVIVOR), file);
      await cluster.restart(other);
      // Peers retry a refused connection after a backoff (≤ 2 s): wait until node-0 reaches it again.
      const id = cluster.nodeId(other);
      await until(
        async () => {
          for (const file of files) {
            const { pieces } = await cluster.client(SURVIVOR).stat(file.volume, file.name);
            if (pieces.some((p) => p.node === id && p.state !== "ok")) return false;
          }
          return true;
        },
        15_000,
        () => `node-0 reaches ${id} again`,
      );
    }
  });

  test("the dead node returns: the rebuild brings its pieces home and manifests stop naming it", async (t) => {
    const { map } = await cluster.client(SURVIVOR).cluster();
    await cluster.restart(FIRST);
    let last: string | undefined;
    const ms = await until(
      async () => {
        for (const file of files) {
          last = await atHome(cluster, map, file);
          if (last !== undefined) return false;
        }
        return true;
      },
      90_000,
      () => last ?? "",
    );
    t.diagnostic(`every piece home ${Math.round(ms)} ms after ${cluster.nodeId(FIRST)} restarted`);
    for (const reader of [FIRST, 3])
      for (const file of files) await expectTestFile(cluster.client(reader), file);
  });

  test("a node killed and declared out: its pieces are rebuilt at their new placement, progress to zero", async (t) => {
    const big: TestFile[] = [
      testFile("media", "io/big-1.bin", 48 * MiB),
      testFile("media", "io/big-2.bin", 40 * MiB),
    ];
    for (const file of big) await putTestFile(cluster.client(2), file);
    files.push(...big);
    const victim = 4;
    await cluster.kill9(victim);
    const current = await cluster.client(SURVIVOR).cluster();
    const out = withNodeOut(current.map, cluster.nodeId(victim));
    const started = performance.now();
    for (const i of [0, 1, 2, 3]) {
      await writeClusterFile(cluster.clusterFile(i), { ...out, volumes: current.volumes });
      process.kill(cluster.pid(i) as number, "SIGHUP"); // our own child, by pid
    }
    let seen: ClusterInfo["rebuild"][] = [];
    await until(
      async () => {
        seen = await Promise.all([0, 1, 2, 3].map(async (i) => (await cluster.client(i).cluster()).rebuild));
        return seen.every((p) => p?.epoch === out.epoch && p.state === "idle" && p.pending === 0);
      },
      120_000,
      () => JSON.stringify(seen),
    );
    const seconds = (performance.now() - started) / 1000;
    const bytes = seen.reduce((sum, p) => sum + (p?.bytesDone ?? 0), 0);
    t.diagnostic(
      `rebuilt ${bytes} bytes (${seen.map((p) => p?.piecesDone).join("+")} pieces) in ${seconds.toFixed(2)} s ` +
        `from SIGHUP to settled: ${(bytes / 1e6 / seconds).toFixed(0)} MB/s over 4 nodes (limit 64 MiB/s each)`,
    );
    assert.ok(
      bytes > 20 * MiB,
      `the victim's share of ${big.length} large files was rebuilt (${bytes} bytes)`,
    );
    for (const p of seen) assert.equal(p?.bytesLeft, 0);
    const manifests: FileManifest[] = [];
    for (const file of files) {
      const { manifest, pieces } = await cluster.client(SURVIVOR).stat(file.volume, file.name);
      manifests.push(manifest);
      assert.deepEqual(
        pieces.filter((p) => p.state !== "ok" || p.node === cluster.nodeId(victim)),
        [],
        `${file.name}: every piece ok at its new placement`,
      );
    }
    for (const file of files) await expectTestFile(cluster.client(SURVIVOR), file);
    assert.ok(!cluster.alive(victim), "the victim is still gone");
  });
});
