import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { isMosaicError } from "../../src/errors.ts";
import { type InProcessCluster, patternBytes, startInProcessCluster } from "../helpers/in-process-cluster.ts";

const KiB = 1024;

describe("capacity", () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await startInProcessCluster(3, {
      volumes: [
        {
          name: "small",
          chunkSizeBytes: 64 * KiB,
          redundancy: { erasure: { data: 2, parity: 1 } },
          capacityBytes: 1024 * KiB,
        },
      ],
      capacityBytes: 2048 * KiB,
    });
  });
  after(async () => {
    await cluster.stop();
  });

  test("a volume refuses writes past its capacity, counting an overwrite once", async () => {
    await cluster.client().put("small", "a", patternBytes(600 * KiB), 600 * KiB);
    await assert.rejects(
      cluster.client().put("small", "b", patternBytes(600 * KiB), 600 * KiB),
      (e) => isMosaicError(e, "MOSAIC_ERR_VOLUME_FULL") && /600 KiB of 1 MiB used/.test(e.message),
    );
    // Streamed without a size: refused once it grows past the room left.
    await assert.rejects(cluster.client().put("small", "c", patternBytes(600 * KiB)), (e) =>
      isMosaicError(e, "MOSAIC_ERR_VOLUME_FULL"),
    );
    await cluster.client().put("small", "a", patternBytes(900 * KiB), 900 * KiB);
    assert.deepEqual(
      (await cluster.client().list("small")).map((f) => f.name),
      ["a"],
    );
  });

  test("a node refuses pieces past its store's capacity, and the write leaves nothing behind", async () => {
    await cluster.client().delete("small", "a");
    const usedBefore = cluster.agents.map((a) => a.store.usage().usedBytes);
    const big = {
      name: "big",
      chunkSizeBytes: 64 * KiB,
      redundancy: { replicas: 3 },
      capacityBytes: 2 ** 40,
    };
    for (const agent of cluster.agents) agent.update({ ...agent.map, epoch: agent.map.epoch + 1 }, [big]);
    await assert.rejects(
      cluster.client().put("big", "huge", patternBytes(3000 * KiB), 3000 * KiB),
      (e) => isMosaicError(e, "MOSAIC_ERR_STORE_FULL") && /store full/.test(e.message),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(
      cluster.agents.map(
        (a) => a.store.usage().usedBytes <= (usedBefore[cluster.agents.indexOf(a)] as number) + 1024,
      ),
      [true, true, true],
    );
  });
});
