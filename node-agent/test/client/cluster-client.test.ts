import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Agent } from "../../src/agent.ts";
import { ClusterClient } from "../../src/client/cluster-client.ts";
import { fileIdOf } from "../../src/core/names.ts";
import { fileOwner } from "../../src/core/ownership.ts";
import {
  gather,
  type InProcessCluster,
  MiB,
  patternBytes,
  startInProcessCluster,
} from "../helpers/in-process-cluster.ts";

describe("ClusterClient", () => {
  let cluster: InProcessCluster;
  let client: ClusterClient;
  before(async () => {
    cluster = await startInProcessCluster(3);
    client = await ClusterClient.connect(["127.0.0.1:1", (cluster.agents[0] as Agent).addresses[0]], 1_000);
  });
  after(async () => {
    client.close();
    await cluster.stop();
  });

  test("connects to the first agent that answers and learns the map and volumes", () => {
    assert.equal(client.info.node, "node-0");
    assert.equal(client.info.map.nodes.length, 3);
    assert.deepEqual(client.info.volumes.map((v) => v.name).sort(), ["media", "thumbs"]);
  });

  test("writes go to the file's owner, which coordinates them", async () => {
    for (const name of ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]) {
      const manifest = await client.put("media", name, patternBytes(MiB, 3), MiB);
      const owner = fileOwner(client.info.map, "media", fileIdOf("media", name), manifest.redundancy);
      assert.equal(manifest.writer, owner, name);
    }
  });

  test("read fetches pieces from their holders, and degrades around a stopped one", async () => {
    const size = 5 * MiB + 123;
    await client.put("media", "striped.bin", patternBytes(size, 9), size);
    const expected = await gather(patternBytes(size, 9));
    const { manifest, body } = await client.read("media", "striped.bin");
    assert.equal(manifest.sizeBytes, size);
    assert.ok((await gather(body)).equals(expected));

    await (cluster.agents[2] as Agent).stop();
    const degraded = await client.read("media", "striped.bin");
    assert.ok((await gather(degraded.body)).equals(expected));
  });
});
