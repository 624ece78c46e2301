// One node too many gone: three agents hold erasure 2+1 and three-replica
// files, and one of them is stopped and marked out. Nothing can be rebuilt
// (no node is left to take its pieces), but every file stays readable,
// degraded, from the two pieces or copies left; a new write is refused with
// a clear error and stores nothing.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { withNodeOut } from "../../src/core/cluster-map.ts";
import { isMosaicError } from "../../src/errors.ts";
import { MiB, patternBytes } from "../helpers/in-process-cluster.ts";
import { expectWhole, FailoverCluster, type Written } from "./failover-cluster.ts";

describe("fewer live nodes than a stripe is wide", { timeout: 120_000 }, () => {
  let cluster: FailoverCluster;
  const files: Written[] = [];

  before(async () => {
    cluster = await FailoverCluster.start(3);
    for (const [n, [volume, size]] of (
      [
        ["media", 3 * MiB + 5],
        ["thumbs", 700_000],
      ] as const
    ).entries()) {
      const name = `few/${n}.bin`;
      const manifest = await cluster.client(0).put(volume, name, patternBytes(size, n + 7), size);
      files.push({ volume, name, size, seed: n + 7, manifest });
    }
  });
  after(async () => {
    await cluster?.stop();
  });

  test("one of three out: every file reads whole, degraded; a write is refused", async () => {
    await cluster.stopNode(2);
    cluster.update(withNodeOut(cluster.map, cluster.ids[2] as string));
    for (const via of [0, 1]) for (const file of files) await expectWhole(cluster, via, file);
    await assert.rejects(
      cluster.client(1).put("media", "few/new.bin", patternBytes(MiB, 3), MiB),
      (e) => isMosaicError(e, "MOSAIC_ERR_BELOW_REDUNDANCY") && /needs 3 nodes/.test(e.message),
    );
    await assert.rejects(cluster.client(0).head("media", "few/new.bin"), (e) =>
      isMosaicError(e, "MOSAIC_ERR_NO_SUCH_FILE"),
    );
  });
});
