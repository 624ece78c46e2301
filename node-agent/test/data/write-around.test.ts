// The degraded-write rule over real agents: a write that finds a holder down
// places that slot as if the node were out (on a node not already in the
// stripe) and names it in the manifest, so it is acknowledged at full
// redundancy: it survives the loss of any one further node. When the node
// returns, the rebuild takes its pieces home and the manifest stops naming
// it. With fewer nodes reachable than a stripe is wide, a write is refused
// and leaves nothing behind.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { placeFileStripe } from "../../src/core/file-placement.ts";
import { fileIdOf } from "../../src/core/names.ts";
import { fileOwner } from "../../src/core/ownership.ts";
import { MANIFEST_STRIPE } from "../../src/core/placement.ts";
import { isMosaicError } from "../../src/errors.ts";
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

describe("writes around a down node", { timeout: 300_000 }, () => {
  let cluster: FailoverCluster;
  const files: Written[] = [];
  const DOWN = 1;

  before(async () => {
    cluster = await FailoverCluster.start(5);
  });
  after(async () => {
    await cluster?.stop();
  });

  test("one of five stopped: every write succeeds, each at full redundancy, none on the down node", async () => {
    const down = cluster.ids[DOWN] as string;
    await cluster.stopNode(DOWN);
    // Right away (the writer finds out by trying) and on through the heartbeats noticing (it skips it at once).
    let errors = 0;
    for (let n = 0; n < 16; n++) {
      const volume = n % 4 === 3 ? "thumbs" : "media";
      const size = [3 * MiB + 7, 700_001, 1, 2 * MiB][n % 4] as number;
      const via = [0, 2, 3, 4][n % 4] as number;
      try {
        const manifest = await cluster
          .client(via)
          .put(volume, `around/${n}.bin`, patternBytes(size, n), size);
        files.push({ volume, name: `around/${n}.bin`, size, seed: n, manifest });
      } catch (error) {
        errors++;
        assert.fail(`write ${n} via node-${via}: ${(error as Error).message}`);
      }
    }
    assert.equal(errors, 0);
    const normal = cluster.map;
    const around = files.filter((f) => f.manifest.writtenAround !== undefined);
    assert.ok(
      files.every((f) => {
        const wouldUse = placedPieces(normal, { ...f.manifest, writtenAround: [] }).some(
          (p) => p.node === down,
        );
        return !wouldUse || f.manifest.writtenAround?.includes(down);
      }),
      "every file that placement would put on the down node names it",
    );
    assert.ok(around.length >= 8, `most files were written around ${down} (${around.length})`);
    for (const file of files) {
      assert.deepEqual(file.manifest.writtenAround ?? [down], [down]);
      const placed = placedPieces(normal, file.manifest);
      assert.ok(!placed.some((p) => p.node === down), `${file.name}: nothing on ${down}`);
      for (let stripe = MANIFEST_STRIPE; stripe < file.manifest.stripes; stripe++) {
        const nodes = placeFileStripe(normal, file.manifest, stripe);
        assert.equal(new Set(nodes).size, nodes.length, `${file.name} stripe ${stripe}: distinct nodes`);
      }
      assert.deepEqual(
        await missingPieces(cluster, normal, file.manifest),
        [],
        `${file.name}: every piece stored`,
      );
    }
  });

  test("the files survive the loss of any one further node", async () => {
    for (const other of [0, 2, 3, 4]) {
      await cluster.stopNode(other);
      const via = other === 0 ? 2 : 0;
      for (const file of files) await expectWhole(cluster, via, file);
      await cluster.startNode(other);
      await reachableAgain(other);
    }
  });

  /** Waits until every running agent reaches node i again (grpc retries a refused peer after a backoff of ≤ 2 s). */
  async function reachableAgain(i: number): Promise<void> {
    const id = cluster.ids[i] as string;
    const file = files.find((f) =>
      placedPieces(cluster.map, f.manifest).some((p) => p.node === id),
    ) as Written;
    for (const [j, agent] of cluster.agents.entries()) {
      if (agent === undefined || j === i) continue;
      await waitFor(
        async () => {
          const { pieces } = await cluster.client(j).stat(file.volume, file.name);
          return pieces.every((p) => p.state === "ok");
        },
        10_000,
        () => `node-${j} reaches ${id}`,
      );
    }
  }

  test("the node returns: the rebuild takes its pieces home and the manifests stop naming it", async (t) => {
    const down = cluster.ids[DOWN] as string;
    const started = performance.now();
    await cluster.startNode(DOWN);
    const normal = cluster.map;
    let last = "";
    await waitFor(
      async () => {
        for (const file of files) {
          const now = await cluster.client(0).head(file.volume, file.name);
          const missing = await missingPieces(cluster, normal, { ...now, writtenAround: [] });
          const stray = await strayPieces(cluster, normal, { ...now, writtenAround: [] });
          if (now.writtenAround !== undefined || missing.length > 0 || stray.length > 0) {
            last = `${file.name}: writtenAround ${now.writtenAround}, missing ${missing}, stray ${stray}`;
            return false;
          }
        }
        return true;
      },
      120_000,
      () => last,
    );
    t.diagnostic(
      `pieces home and manifests revised ${Math.round(performance.now() - started)} ms after the restart`,
    );
    assert.ok(
      files.some((f) =>
        placedPieces(normal, { ...f.manifest, writtenAround: [] }).some((p) => p.node === down),
      ),
      `${down} holds pieces again`,
    );
    for (const file of files) {
      const now = await cluster.client(0).head(file.volume, file.name);
      assert.equal(now.version, file.manifest.version);
      assert.ok((now.revision ?? 0) >= 1 || file.manifest.writtenAround === undefined);
      file.manifest = now;
    }
    for (const via of [DOWN, 3]) for (const file of files) await expectWhole(cluster, via, file);
  });
});

describe("a holder that dies in the middle of a write", { timeout: 120_000 }, () => {
  let cluster: FailoverCluster;

  before(async () => {
    cluster = await FailoverCluster.start(5);
  });
  after(async () => {
    await cluster?.stop();
  });

  test("stripes already stored on it are re-placed from their other pieces before the write is acknowledged", async () => {
    const name = "around/mid-write.bin";
    const size = 8 * MiB + 3; // 17 stripes of 512 KiB
    const fileId = fileIdOf("media", name);
    const spec = {
      volume: "media",
      fileId,
      chunkSizeBytes: 256 * 1024,
      redundancy: { erasure: { data: 2, parity: 1 } },
    };
    const owner = fileOwner(cluster.map, "media", fileId, spec.redundancy);
    const victimId = placeFileStripe(cluster.map, spec, 0).find(
      (n) => n !== owner && n !== "node-0",
    ) as string;
    const victim = cluster.indexOf(victimId);

    let stoppedAt = 0;
    let heldByVictim = 0;
    async function* source(): AsyncGenerator<Buffer> {
      let sent = 0;
      for await (const part of patternBytes(size, 7)) {
        if (stoppedAt === 0 && sent >= 3 * MiB) {
          // The first stripes are on their holders, the victim among them; then it dies.
          await waitFor(
            async () => (await cluster.agent(victim).store.versions("media", fileId)).length > 0,
            10_000,
            () => `${victimId} holds a piece of the file`,
          );
          stoppedAt = sent;
          const store = cluster.agent(victim).store;
          for (const version of await store.versions("media", fileId)) {
            heldByVictim += (await store.pieces("media", fileId, version)).length;
          }
          await cluster.stopNode(victim);
        }
        sent += part.length;
        yield part;
      }
    }
    const manifest = await cluster.client(0).put("media", name, source(), size);
    assert.ok(stoppedAt > 0);
    assert.deepEqual(manifest.writtenAround, [victimId]);
    assert.deepEqual(
      await missingPieces(cluster, cluster.map, manifest),
      [],
      "every piece where the manifest says",
    );
    assert.ok(heldByVictim > 0, `${victimId} held pieces when it died`);
    // Any one further node may go: the file stays whole.
    const another = [1, 2, 3, 4].find((i) => i !== victim && cluster.ids[i] !== owner) as number;
    await cluster.stopNode(another);
    const { body } = await cluster.client(0).get("media", name);
    assert.ok((await gather(body)).equals(await gather(patternBytes(size, 7))));
  });
});

describe("below redundancy", { timeout: 120_000 }, () => {
  let cluster: FailoverCluster;

  before(async () => {
    cluster = await FailoverCluster.start(4);
  });
  after(async () => {
    await cluster?.stop();
  });

  test("two of four down: a 3-wide write is refused with BELOW_REDUNDANCY and leaves nothing behind", async () => {
    await cluster.stopNode(3);
    const size = 3 * MiB;
    const ok = await cluster.client(0).put("media", "below/ok.bin", patternBytes(size, 1), size);
    assert.deepEqual(ok.writtenAround, [cluster.ids[3]]);

    await cluster.stopNode(2);
    for (const [volume, via] of [
      ["media", 0],
      ["thumbs", 1],
    ] as const) {
      const name = `below/refused-${volume}.bin`;
      const error = await cluster
        .client(via)
        .put(volume, name, patternBytes(size, 2), size)
        .then(
          () => undefined,
          (e: unknown) => e as Error,
        );
      assert.ok(isMosaicError(error, "MOSAIC_ERR_BELOW_REDUNDANCY"), `${volume}: ${error?.message}`);
      assert.match(error.message, /needs 3 nodes for full redundancy .*only 2 are reachable/);
      assert.match(error.message, /node-2/);
      assert.match(error.message, /node-3/);
      const fileId = fileIdOf(volume, name);
      await waitFor(
        async () => {
          for (const agent of cluster.running())
            if ((await agent.store.versions(volume, fileId)).length > 0) return false;
          return true;
        },
        10_000,
        () => `${volume}: no piece of the refused write remains`,
      );
      await assert.rejects(cluster.client(via).head(volume, name), /MOSAIC_ERR_NO_SUCH_FILE|no file/);
    }
    // The one written around node-3 lost only one piece per stripe to node-2: still whole.
    const { body } = await cluster.client(0).get("media", "below/ok.bin");
    assert.ok((await gather(body)).equals(await gather(patternBytes(size, 1))));
  });
});
