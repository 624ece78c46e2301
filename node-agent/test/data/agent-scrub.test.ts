// The scrubber as the agent runs it: on by default, and one cycle finds and
// repairs a byte flipped in a chunk file on disk.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Agent } from "../../src/agent.ts";
import { placeStripe } from "../../src/core/placement.ts";
import { layoutOf } from "../../src/core/volume.ts";
import { chunkHeaderBytes, chunkPath, flipByte } from "../helpers/chunk-files.ts";
import {
  gather,
  type InProcessCluster,
  MiB,
  patternBytes,
  startInProcessCluster,
} from "../helpers/in-process-cluster.ts";

let cluster: InProcessCluster;
before(async () => {
  cluster = await startInProcessCluster(3, { scrubRateBytesPerSecond: 256 * MiB });
});
after(async () => {
  await cluster.stop();
});

test("each agent runs a scrubber; a cycle repairs a flipped byte from the rest of the stripe", async () => {
  const size = 3 * MiB + 5;
  const manifest = await cluster.client().put("media", "scrub/agent.bin", patternBytes(size, 4), size);
  const [holder] = placeStripe(
    cluster.agents[0]?.map as Agent["map"],
    { volume: "media", fileId: manifest.fileId, stripe: 1 },
    layoutOf(manifest).width,
  );
  const agent = cluster.agents.find((a) => a.nodeId === holder) as Agent;
  assert.ok(agent.scrubber, "scrubber on by default");
  const path = chunkPath(agent.store.dir, manifest, 1, 0);
  await flipByte(path, chunkHeaderBytes("media") + 1_000);

  const report = await (agent.scrubber?.runCycle() as ReturnType<NonNullable<Agent["scrubber"]>["runCycle"]>);
  assert.equal(report.repaired.length, 1, JSON.stringify(report));
  assert.deepEqual([report.repaired[0]?.stripe, report.repaired[0]?.slot], [1, 0]);
  const { body } = await cluster.client().get("media", "scrub/agent.bin");
  assert.ok((await gather(body)).equals(await gather(patternBytes(size, 4))));
  assert.equal((await agent.scrubber?.runCycle())?.corrupt.length, 0);
});
