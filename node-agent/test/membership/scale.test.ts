// The scale run: 10, 100 and 1,000 simulated nodes. Heartbeats per node per
// second must not grow with n (the ring), detection must stay in budget, the
// crashed node must reach every node's map down, then out after the grace,
// and the NIC failure every node's route (channel news) within the budget:
// news costs each node a few datagrams per failure, whatever n.
import assert from "node:assert/strict";
import { test } from "node:test";
import { reproduceLine, runScenario, scaleScenario } from "../../sim/simulator.ts";
import { CHANNEL_DOWN_BUDGET_MS, NODE_DOWN_BUDGET_MS } from "../../src/membership/config.ts";

test("scale run: 10, 100, 1000 nodes", (t) => {
  const rates: number[] = [];
  const newsRates: number[] = [];
  for (const n of [10, 100, 1_000]) {
    const started = performance.now();
    const scenario = scaleScenario(n, 42);
    const r = runScenario(scenario);
    assert.deepEqual(r.violations, [], reproduceLine(42));
    const channelMs = Math.max(...r.channelDetectMs);
    const nodeMs = Math.max(...r.nodeDetectMs);
    const [crash] = r.crashes;
    assert.ok(crash !== undefined && crash.outAfterDownMs !== undefined, "the crash went down and out");
    t.diagnostic(
      `n=${n} heartbeats/node/s=${r.heartbeatsPerNodePerSecond.toFixed(1)} ` +
        `maps/node/s=${r.mapsPerNodePerSecond.toFixed(2)} news/node/s=${r.newsPerNodePerSecond.toFixed(2)} ` +
        `nic_everywhere_ms=${r.newsMoveMs.join(",")} nic_back_everywhere_ms=${r.newsBackMs.join(",")} ` +
        `nic_detect_ms(max)=${channelMs} node_detect_ms(max)=${nodeMs} ` +
        `map_down_ms=${crash.downMs} everywhere_ms=${crash.everywhereMs} ` +
        `out_after_down_ms=${crash.outAfterDownMs} (grace ${scenario.agreement.outGraceMs}) ` +
        `proposals=${r.proposals} observers=${r.channelDetectMs.length}/${r.nodeDetectMs.length} ` +
        `wall_ms=${Math.round(performance.now() - started)}`,
    );
    // k = 1: two observers of the crashed node, and the NIC loss is seen from both sides.
    assert.equal(r.nodeDetectMs.length, 2);
    assert.ok(r.channelDetectMs.length >= 4);
    assert.ok(channelMs <= CHANNEL_DOWN_BUDGET_MS && nodeMs <= NODE_DOWN_BUDGET_MS);
    // One proposal marks it down, one marks it out: the NIC failure never changes the map.
    assert.equal(r.proposals, 2);
    // Every node but the watchers (their detectors: checked above) routes the NIC's node on B, and back.
    assert.equal(r.newsMoveMs.length, 1);
    assert.ok((r.newsMoveMs[0] as number) <= CHANNEL_DOWN_BUDGET_MS, `${r.newsMoveMs[0]} ms`);
    assert.equal(r.newsBackMs.length, 1);
    rates.push(r.heartbeatsPerNodePerSecond);
    newsRates.push(r.newsPerNodePerSecond);
  }
  const [first] = rates as [number];
  for (const rate of rates)
    assert.ok(Math.abs(rate - first) / first < 0.02, `rates not flat: ${rates.join(", ")}`);
  // News goes to every node, but only on a transition (and its refreshes): per node it does not grow with n.
  // (Which nodes watch the NIC's node and the crashed one differs with n: a few percent either way.)
  const [firstNews] = newsRates as [number];
  for (const rate of newsRates)
    assert.ok(
      rate > 0 && Math.abs(rate - firstNews) / firstNews < 0.25,
      `news not flat: ${newsRates.join(", ")}`,
    );
});
