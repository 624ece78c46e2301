// The client's side when the agent goes away: an agent process killed with
// SIGKILL mid-transfer gives the application a clear error within a bounded
// time, never a hang; and with no agent at all, connect fails at once.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, test } from "node:test";
import type { MosaicError } from "../../src/errors.ts";
import { IpcClient } from "../../src/ipc/ipc-client.ts";
import { killPeers, mosaicSegments, Peer } from "./children.ts";

const AGENT = new URL("./ipc-agent-peer.ts", import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), "mosaic-ipc-client-"));
const segmentsBefore = mosaicSegments().size;

afterEach(async () => {
  await killPeers();
});

after(() => {
  rmSync(root, { recursive: true, force: true });
  assert.ok(mosaicSegments().size <= segmentsBefore, "segments left in /dev/shm");
});

test("the agent killed with SIGKILL mid-read: the client gets PEER_UNAVAILABLE within a bounded time", async (t) => {
  const dir = join(root, "killed");
  const agent = new Peer([dir], AGENT);
  await agent.message(10_000);
  const client = await IpcClient.connect({ dir, pollMs: 100, timeoutMs: 10_000 });
  const reply = await client.get("media", "endless");
  let slots = 0;
  let killedAtMs = 0;
  const reading = (async () => {
    for await (const _view of reply.body) {
      if (++slots === 10) {
        agent.kill("SIGKILL");
        killedAtMs = performance.now();
      }
    }
  })();
  await assert.rejects(reading, (error: MosaicError & { reason?: string }) => {
    assert.equal(error.code, "MOSAIC_ERR_PEER_UNAVAILABLE");
    assert.equal(error.reason, "peer-died", error.message);
    assert.match(error.message, new RegExp(`pid ${agent.pid}\\) died`));
    return true;
  });
  const noticedMs = performance.now() - killedAtMs;
  t.diagnostic(`dead agent noticed ${noticedMs.toFixed(0)} ms after SIGKILL (client checks every 100 ms)`);
  assert.ok(noticedMs < 2_000, `noticed after ${noticedMs.toFixed(0)} ms`);
  await assert.rejects(client.stat("media", "x"), /the IPC channel failed/);
  const closeStartMs = performance.now();
  await client.close(); // the FIFO has no reader now: close must not hang either
  assert.ok(performance.now() - closeStartMs < 1_500);
});

test("no agent on the directory: connect fails at once with a clear error", async () => {
  const dir = join(root, "empty");
  await assert.rejects(IpcClient.connect({ dir }), (error: MosaicError) => {
    assert.equal(error.code, "MOSAIC_ERR_PEER_UNAVAILABLE");
    assert.match(error.message, /is the agent running\?/);
    return true;
  });
});
