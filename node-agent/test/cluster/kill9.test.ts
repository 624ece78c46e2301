// kill -9 of real agent processes: reads carry on degraded through the
// survivors while the redundancy covers the loss, fail fast and clearly once
// it does not, and are whole again when the dead agents come back.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { isMosaicError } from "../../src/errors.ts";
import { keystream } from "../helpers/byte-streams.ts";
import {
  expectTestFile,
  manifestHolders,
  nameWhere,
  putTestFile,
  readError,
  type TestFile,
  testFile,
} from "../helpers/cluster-files.ts";
import {
  MiB,
  PROCESS_TEST_VOLUMES,
  type ProcessCluster,
  sleep,
  startProcessCluster,
  withTimeout,
} from "../helpers/process-cluster.ts";

const MEDIA = PROCESS_TEST_VOLUMES[0] as (typeof PROCESS_TEST_VOLUMES)[number];
const FIRST = 1; // killed first
const SECOND = 2; // killed second: with erasure 2+1, more than the redundancy covers
const SURVIVOR = 0;

describe("kill -9 of agent processes", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  const files: TestFile[] = [];
  // Erasure files picked by where their manifest lives: one the survivor holds, one only the victims hold.
  let heldBySurvivor: TestFile;
  let heldByVictims: TestFile;

  before(async () => {
    cluster = await startProcessCluster({ nodes: 3 });
    const { map } = await cluster.client(0).cluster();
    const survivor = cluster.nodeId(SURVIVOR);
    heldBySurvivor = testFile(
      "media",
      nameWhere(map, MEDIA, "k9/survivor-", ".bin", (h) => h.includes(survivor)),
      4 * MiB + 99,
    );
    heldByVictims = testFile(
      "media",
      nameWhere(map, MEDIA, "k9/victims-", ".bin", (h) => !h.includes(survivor)),
      3 * MiB + 1,
    );
    files.push(
      testFile("media", "k9/a.bin", 3 * MiB + 5),
      testFile("media", "k9/b.bin", 5 * MiB + 123),
      testFile("media", "k9/c.bin", MiB - 3),
      heldBySurvivor,
      heldByVictims,
      testFile("replicated", "k9/r1.bin", 2 * MiB + 7),
      testFile("replicated", "k9/r2.bin", 4 * MiB),
    );
    for (const [n, file] of files.entries()) await putTestFile(cluster.client(n % 3), file);
  });
  after(async () => {
    await cluster?.stop();
  });

  test(`kill -9 one agent: every file reads back whole through each survivor, degraded`, async () => {
    const victim = cluster.nodeId(FIRST);
    for (const file of files) {
      const { pieces } = await cluster.client(0).stat(file.volume, file.name);
      assert.ok(
        pieces.some((p) => p.node === victim),
        `${victim} holds pieces of ${file.name}`,
      );
    }
    const marks = [0, 1, 2].map((i) => cluster.log(i).length);
    const exit = await cluster.kill9(FIRST);
    assert.equal(exit.signal, "SIGKILL");

    for (const reader of [SURVIVOR, SECOND]) {
      const started = performance.now();
      for (const file of files) await expectTestFile(cluster.client(reader), file);
      assert.ok(performance.now() - started < 20_000, "degraded reads are not slowed by timeouts");
    }
    for (const reader of [SURVIVOR, SECOND]) {
      const from = marks[reader] as number;
      await cluster.waitForLog(reader, (l) => /degraded read/.test(l.msg ?? ""), 5_000, from);
      const warnings = cluster.warnings(reader, from);
      const naming = warnings.filter((l) => /degraded/.test(l.msg ?? "") && l.raw.includes(`"${victim}"`));
      assert.ok(
        naming.length > 0,
        `node-${reader} logged a degraded read naming ${victim}:\n${warnings.map((l) => l.raw).join("\n")}`,
      );
    }
  });

  test("every line an agent logs names that agent in `node` (no field shadows it)", async () => {
    // The root logger binds node=<agent>; a line that also logs a peer as `node` carries the key twice,
    // and JSON parsers keep the last one, so the line seems to come from the peer.
    for (const i of [SURVIVOR, SECOND]) {
      const wrong = cluster.log(i).filter((l) => l.node !== cluster.nodeId(i));
      assert.deepEqual(
        wrong.slice(0, 3).map((l) => l.raw),
        [],
        `node-${i}: ${wrong.length} lines whose node field is not node-${i}`,
      );
    }
  });

  test("stat through a survivor shows the dead agent's pieces as unreachable, the rest ok", async () => {
    const victim = cluster.nodeId(FIRST);
    for (const file of files) {
      const { manifest, pieces } = await cluster.client(SURVIVOR).stat(file.volume, file.name);
      assert.equal(manifest.version, file.manifest?.version);
      const dead = pieces.filter((p) => p.node === victim);
      assert.ok(dead.length > 0, `${file.name}: ${victim} holds pieces`);
      for (const p of pieces) {
        assert.equal(p.state, p.node === victim ? "unreachable" : "ok", `${file.name} ${JSON.stringify(p)}`);
      }
    }
  });

  test("puts while an agent is dead (3 nodes, 3-wide stripes) are refused fast: BELOW_REDUNDANCY, through owner and non-owner, crashing nothing", async () => {
    // 12 MiB is 6 stripes of media: more than the 4 in flight, so a failed stripe surfaces while input still
    // streams in. Owners: each survivor and the dead agent; entry points: each survivor.
    const { map } = await cluster.client(SURVIVOR).cluster();
    const victim = cluster.nodeId(FIRST);
    try {
      for (const owner of [SURVIVOR, SECOND, FIRST]) {
        const name = nameWhere(
          map,
          MEDIA,
          `k9/put-owned-by-${owner}-`,
          ".bin",
          (h) => h[0] === cluster.nodeId(owner),
        );
        for (const via of [SURVIVOR, SECOND]) {
          const started = performance.now();
          const outcome = await withTimeout(
            cluster
              .client(via)
              .put("media", name, keystream(12 * MiB, name), 12 * MiB)
              .then(
                () => "stored",
                (error: unknown) => error as Error,
              ),
            10_000,
          );
          const ms = Math.round(performance.now() - started);
          const what = `put of a file owned by node-${owner} via node-${via}`;
          await sleep(300); // a crash follows the failed reply by a few milliseconds
          for (const i of [SURVIVOR, SECOND]) {
            assert.ok(cluster.alive(i), `${what}: node-${i} died:\n${cluster.logTail(i, 40)}`);
          }
          assert.ok(
            outcome instanceof Error,
            `${what}: ${outcome === undefined ? "no answer in 10 s" : `stored although ${victim} is down`}`,
          );
          // Never stored at reduced redundancy (there is no fourth node to write around the dead one).
          assert.ok(isMosaicError(outcome, "MOSAIC_ERR_BELOW_REDUNDANCY"), `${what}: ${outcome.message}`);
          assert.match(outcome.message, new RegExp(victim), what);
          assert.ok(ms < 5_000, `${what}: failing took ${ms} ms`);
        }
      }
    } finally {
      // A crashed survivor would take every later test down with it: bring it back (not the killed one).
      await sleep(300);
      for (const i of [SURVIVOR, SECOND]) if (!cluster.alive(i)) await cluster.restart(i);
    }
  });

  test("kill -9 a second agent: 3 replicas still read through the last one", async () => {
    await cluster.kill9(SECOND);
    for (const file of files.filter((f) => f.volume === "replicated")) {
      await expectTestFile(cluster.client(SURVIVOR), file);
    }
  });

  for (const which of ["the survivor holds", "only the dead agents hold"]) {
    test(`two down, erasure 2+1, manifest ${which}: the read fails fast with DATA_UNAVAILABLE, saying why`, async () => {
      const file = which === "the survivor holds" ? heldBySurvivor : heldByVictims;
      const client = cluster.client(SURVIVOR);
      const holders = manifestHolders((await client.cluster()).map, MEDIA, file.name);
      assert.equal(holders.includes(cluster.nodeId(SURVIVOR)), file === heldBySurvivor);
      const started = performance.now();
      const error = await readError(client, file.volume, file.name, 15_000);
      const ms = performance.now() - started;
      assert.notEqual(error, "timeout", `${file.name}: the read hung`);
      const message = String((error as Error)?.message ?? error);
      assert.ok(isMosaicError(error, "MOSAIC_ERR_DATA_UNAVAILABLE"), `${file.name}: ${message}`);
      assert.ok(ms < 5_000, `${file.name}: failing took ${Math.round(ms)} ms`);
      assert.match(message, /more nodes are down than erasure 2\+1 covers/, `manifest on ${holders}`);
    });
  }

  test("restart both: reads work again within seconds through the agent that saw them die, and are whole", async (t) => {
    const started = performance.now();
    await Promise.all([cluster.restart(FIRST), cluster.restart(SECOND)]);
    const restartedMs = performance.now() - started;

    // The survivor's connections to both went into reconnect backoff; it must find them again by itself:
    // first reads succeed (perhaps still degraded), then they are whole.
    const client = cluster.client(SURVIVOR);
    const since = performance.now();
    let readableMs: number | undefined;
    let wholeMs: number | undefined;
    while (wholeMs === undefined) {
      const mark = cluster.log(SURVIVOR).length;
      const errors: unknown[] = [];
      for (const file of files) errors.push(await readError(client, file.volume, file.name));
      const elapsed = performance.now() - since;
      if (errors.every((e) => e === undefined)) {
        readableMs ??= elapsed;
        await sleep(150); // pino writes asynchronously
        if (!cluster.warnings(SURVIVOR, mark).some((l) => /degraded/.test(l.msg ?? ""))) wholeMs = elapsed;
      }
      const failed = errors.find((e) => e !== undefined);
      assert.ok(
        elapsed < 10_000,
        `reads through node-0 not whole 10 s after the restart: ${String((failed as Error)?.message ?? "degraded")}`,
      );
      if (wholeMs === undefined) await sleep(100);
    }
    t.diagnostic(
      `restart ${Math.round(restartedMs)} ms; through node-0 reads work after ${Math.round(readableMs ?? 0)} ms, ` +
        `are whole after ${Math.round(wholeMs)} ms`,
    );
    assert.ok((readableMs ?? 0) < 5_000, `reads worked again only after ${Math.round(readableMs ?? 0)} ms`);
    assert.ok(wholeMs < 5_000, `reads were whole again only after ${Math.round(wholeMs)} ms`);

    const marks = [0, 1, 2].map((i) => cluster.log(i).length);
    for (let reader = 0; reader < 3; reader++) {
      for (const file of files) await expectTestFile(cluster.client(reader), file);
    }
    for (const file of files) {
      const { pieces } = await cluster.client(SURVIVOR).stat(file.volume, file.name);
      assert.deepEqual(
        pieces.filter((p) => p.state !== "ok"),
        [],
        `${file.name}: every piece ok after the restart`,
      );
    }
    await sleep(300); // pino writes asynchronously
    for (let i = 0; i < 3; i++) {
      const degraded = cluster.warnings(i, marks[i]).filter((l) => /degraded/.test(l.msg ?? ""));
      assert.deepEqual(
        degraded.map((l) => l.raw),
        [],
        `node-${i} still reads degraded`,
      );
    }
    assert.ok(restartedMs < 15_000, `restarting took ${Math.round(restartedMs)} ms`);
  });
});
