import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { isMosaicError } from "../../src/errors.ts";
import {
  gather,
  type InProcessCluster,
  MiB,
  patternBytes,
  startInProcessCluster,
} from "../helpers/in-process-cluster.ts";

describe("files over three in-process agents", () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await startInProcessCluster(3);
  });
  after(async () => {
    await cluster.stop();
  });

  for (const volume of ["media", "thumbs"]) {
    for (const size of [0, 1, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 3 * MiB + 17]) {
      test(`${volume}: put/get ${size} bytes`, async () => {
        const name = `clips/${volume}-${size}.bin`;
        const manifest = await cluster.client(size % 3).put(volume, name, patternBytes(size, size + 7), size);
        assert.equal(manifest.sizeBytes, size);
        const expected = await gather(patternBytes(size, size + 7));
        for (let i = 0; i < 3; i++) {
          const { body } = await cluster.client(i).get(volume, name);
          assert.ok((await gather(body)).equals(expected), `read via node-${i}`);
        }
      });
    }
  }

  test("unknown volume and bad names are refused clearly", async () => {
    await assert.rejects(cluster.client().put("nope", "a", patternBytes(10)), (e) =>
      isMosaicError(e, "MOSAIC_ERR_UNKNOWN_VOLUME"),
    );
    await assert.rejects(cluster.client().put("media", "../etc/passwd", patternBytes(10)), (e) =>
      isMosaicError(e, "MOSAIC_ERR_BAD_NAME"),
    );
    await assert.rejects(cluster.client().get("media", "missing.mp4"), (e) =>
      isMosaicError(e, "MOSAIC_ERR_NO_SUCH_FILE"),
    );
  });

  test("list, stat, overwrite and delete", async () => {
    await cluster.client(0).put("media", "lib/a.mp4", patternBytes(MiB, 1));
    await cluster.client(1).put("media", "lib/a.mp4", patternBytes(MiB + 5, 2));
    const files = await cluster.client(2).list("media", "lib/");
    assert.deepEqual(
      files.map((f) => [f.name, f.sizeBytes]),
      [["lib/a.mp4", MiB + 5]],
    );
    const { pieces } = await cluster.client(2).stat("media", "lib/a.mp4");
    assert.ok(pieces.length > 0 && pieces.every((p) => p.state === "ok"));
    await cluster.client(2).delete("media", "lib/a.mp4");
    await assert.rejects(cluster.client(0).get("media", "lib/a.mp4"), (e) =>
      isMosaicError(e, "MOSAIC_ERR_NO_SUCH_FILE"),
    );
    assert.deepEqual(await cluster.client(0).list("media", "lib/"), []);
  });
});

describe("a read that races an overwrite", () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await startInProcessCluster(3);
  });
  after(async () => {
    await cluster.stop();
  });

  test("fails with FILE_CHANGED once the old version's pieces are gone, not with DATA_UNAVAILABLE", async () => {
    const size = 40 * 512 * 1024; // 40 stripes of erasure 2+1 with 256 KiB chunks
    await cluster.client(0).put("media", "race.bin", patternBytes(size, 1), size);
    const { body } = await cluster.client(1).get("media", "race.bin");
    const iterator = body[Symbol.asyncIterator]();
    await iterator.next();
    await cluster.client(2).put("media", "race.bin", patternBytes(size, 2), size);
    await new Promise((resolve) => setTimeout(resolve, 300)); // old versions are removed just after the write
    await assert.rejects(
      (async () => {
        for (let r = await iterator.next(); !r.done; r = await iterator.next());
      })(),
      (e) => isMosaicError(e, "MOSAIC_ERR_FILE_CHANGED") && /overwritten while being read/.test(e.message),
    );
    const { body: fresh } = await cluster.client(1).get("media", "race.bin");
    assert.ok((await gather(fresh)).equals(await gather(patternBytes(size, 2))));
  });
});
