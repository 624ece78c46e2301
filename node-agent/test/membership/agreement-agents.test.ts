// Four real agents in this process, on loopback (127.0.0.1 is channel A,
// 127.0.0.2 channel B): membership agreement end to end. One agent stops →
// every other agent's map marks it down (two watchers confirm) within about
// a second, at one epoch, then out after the grace, again at one epoch. An
// operator map with a higher epoch wins over the agreed one.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Agent } from "../../src/agent.ts";
import type { ClusterMap, NodeState } from "../../src/core/cluster-map.ts";
import { mapDigest, nodeById } from "../../src/core/cluster-map.ts";
import { silentLogger } from "../../src/log.ts";
import { NODE_DOWN_BUDGET_MS } from "../../src/membership/config.ts";

const N = 4;
const OUT_GRACE_MS = 1_500;
const POLL_MS = 10;

const stateOf = (map: ClusterMap, id: string): NodeState | undefined => nodeById(map, id)?.state;

/**
 * Polls until every agent's map satisfies `ok`; bounded in time and count.
 * Returns when (performance.now()) each agent's map first did.
 */
async function untilMaps(
  agents: Agent[],
  ok: (map: ClusterMap) => boolean,
  timeoutMs: number,
  what: string,
): Promise<number[]> {
  const started = performance.now();
  const at: (number | undefined)[] = agents.map(() => undefined);
  for (let polls = 0; polls < timeoutMs / POLL_MS + 100; polls++) {
    const now = performance.now();
    for (const [i, a] of agents.entries()) if (at[i] === undefined && ok(a.map)) at[i] = now;
    if (at.every((t) => t !== undefined)) return at as number[];
    if (now - started > timeoutMs) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const maps = agents.map((a) => `${a.nodeId}@${a.map.epoch}`).join(" ");
  assert.fail(`not every agent's map has ${what} within ${timeoutMs} ms: ${maps}`);
}

describe("membership agreement between agents on loopback", { timeout: 60_000 }, () => {
  let root = "";
  const agents: Agent[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-agree-"));
    for (let i = 0; i < N; i++)
      agents.push(
        await Agent.start({
          nodeId: `node-${i}`,
          listen: ["127.0.0.1:0", "127.0.0.2:0"],
          dataDir: join(root, `node-${i}`),
          capacityBytes: 2 ** 30,
          scrubRateBytesPerSecond: 0,
          map: { epoch: 0, nodes: [] },
          volumes: [],
          outGraceMs: OUT_GRACE_MS,
          log: silentLogger(),
        }),
      );
    const map: ClusterMap = {
      epoch: 1,
      nodes: agents.map((a) => ({ id: a.nodeId, addresses: a.addresses, state: "up" as const })),
    };
    for (const a of agents) a.update(map);
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await rm(root, { recursive: true, force: true });
  });

  test("a stopped agent is down in every map within the budget, then out after the grace, at one epoch", async (t) => {
    // Let the heartbeats settle: nobody may be marked down while all run.
    await new Promise((r) => setTimeout(r, 1_000));
    for (const a of agents) assert.equal(a.map.epoch, 1, `${a.nodeId} changed the map with every agent up`);

    const gone = agents[2] as Agent;
    const rest = agents.filter((a) => a !== gone);
    const stoppedAt = performance.now();
    await gone.stop();
    const stopMs = performance.now() - stoppedAt;
    const downAt = await untilMaps(
      rest,
      (m) => stateOf(m, gone.nodeId) === "down",
      NODE_DOWN_BUDGET_MS + 3_000,
      `${gone.nodeId} down`,
    );
    // The agreed map is one map: same epoch, same content, everywhere.
    const downMaps = rest.map((a) => a.map);
    for (const m of downMaps) assert.equal(mapDigest(m), mapDigest(downMaps[0] as ClusterMap));
    const stoppedMs = stoppedAt + stopMs;
    const sinceStop = downAt.map((at) => Math.round(at - stoppedMs));
    t.diagnostic(
      `${gone.nodeId} stopped (stop() took ${stopMs.toFixed(0)} ms, heartbeats end last): down in every ` +
        `other map ${sinceStop.join(", ")} ms after stop() returned, epoch ${downMaps[0]?.epoch}`,
    );
    // Detection (≤ 1 s after the last heartbeat) plus confirmation and spread, with slack for a loaded machine.
    for (const ms of sinceStop) assert.ok(ms <= NODE_DOWN_BUDGET_MS + 1_000, `${ms} ms`);

    const outAt = await untilMaps(
      rest,
      (m) => stateOf(m, gone.nodeId) === "out",
      OUT_GRACE_MS + 3_000,
      `${gone.nodeId} out`,
    );
    const outMaps = rest.map((a) => a.map);
    for (const m of outMaps) assert.equal(mapDigest(m), mapDigest(outMaps[0] as ClusterMap));
    const out = nodeById(outMaps[0] as ClusterMap, gone.nodeId);
    assert.equal(out?.outEpoch, outMaps[0]?.epoch);
    const afterDown = outAt.map((ms, i) => Math.round(ms - (downAt[i] as number)));
    t.diagnostic(`out in every other map ${afterDown.join(", ")} ms after down (grace ${OUT_GRACE_MS} ms)`);
    for (const ms of afterDown) assert.ok(ms >= OUT_GRACE_MS - 200, `out after only ${ms} ms`);
    for (const a of rest)
      assert.ok(
        rest.every((b) => stateOf(a.map, b.nodeId) === "up"),
        `${a.nodeId}: the others stay up`,
      );
  });

  test("an operator map with a higher epoch wins over the agreed one, everywhere", async () => {
    const rest = agents.filter((a) => stateOf((agents[0] as Agent).map, a.nodeId) === "up");
    const current = (rest[0] as Agent).map;
    // The operator readmits nothing here: it only publishes above the agents' epoch, and every agent takes it.
    const operator: ClusterMap = { ...current, epoch: current.epoch + 10 };
    (rest[0] as Agent).update(operator);
    // The other agents get it through the heartbeats' map repair, not from the operator.
    await untilMaps(rest, (m) => m.epoch === operator.epoch, 3_000, `epoch ${operator.epoch}`);
    for (const a of rest) assert.equal(mapDigest(a.map), mapDigest(operator));
  });
});
