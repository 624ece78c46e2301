// The same-node path as applications use it: agent processes started by
// the local cluster, an IpcClient on one node's request FIFO.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LocalCluster } from "../../src/cli/local-cluster.ts";
import { type LocalPlan, planLocalCluster } from "../../src/cli/local-plan.ts";
import { isMosaicError } from "../../src/errors.ts";
import { IpcClient } from "../../src/ipc/ipc-client.ts";
import { patternBytes } from "../helpers/in-process-cluster.ts";

let dir: string;
let plan: LocalPlan;
let cluster: LocalCluster;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mosaic-agent-ipc-"));
  plan = planLocalCluster({
    nodes: 3,
    dir,
    basePort: 20_000 + 2 * Math.floor(Math.random() * 10_000),
    capacityBytes: 2 ** 32,
  });
  cluster = await LocalCluster.start(plan, () => {});
  await cluster.waitReady(20_000);
});

after(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function sha256(source: AsyncIterable<Buffer>): Promise<string> {
  const hash = createHash("sha256");
  for await (const part of source) hash.update(part);
  return hash.digest("hex");
}

test("an application on a node puts and gets through its agent's FIFO and shared memory", async () => {
  const client = await IpcClient.connect({ dir: plan.agents[1]?.ipcDir as string });
  try {
    const size = 5 * 1024 * 1024 + 7;
    const manifest = await client.put("media", "ipc/clip.bin", patternBytes(size, 5), size);
    assert.equal(manifest.sizeBytes, size);
    const reply = await client.get("media", "ipc/clip.bin");
    assert.equal(await sha256(reply.body), await sha256(patternBytes(size, 5)));
    await assert.rejects(client.get("media", "ipc/missing.bin"), (e) =>
      isMosaicError(e, "MOSAIC_ERR_NO_SUCH_FILE"),
    );
  } finally {
    await client.close();
  }
});
