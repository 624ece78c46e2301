// Seeded fault schedules against the real detector cores. The seeds differ on
// every run (a VOPR finds new bugs that way); MOSAIC_SIM_SEED=<n> fixes the
// first one, and a failure names the seed that replays it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { reproduceLine, runSeed } from "../../sim/simulator.ts";

const SEEDS = 1_000;
const fromSeed = Number(process.env.MOSAIC_SIM_SEED ?? Math.floor(Math.random() * 0xffff_0000));

describe("deterministic simulation", () => {
  test(`${SEEDS} seeded fault schedules keep every invariant`, (t) => {
    t.diagnostic(`seeds ${fromSeed}..${fromSeed + SEEDS - 1} (MOSAIC_SIM_SEED=${fromSeed} replays this run)`);
    const totals = { faults: 0, delivered: 0, lost: 0, duplicated: 0, channelDowns: 0, nodeDowns: 0 };
    for (let seed = fromSeed; seed < fromSeed + SEEDS; seed++) {
      const r = runSeed(seed);
      if (r.violations.length > 0) assert.fail(`${r.violations.join("\n")}\n${reproduceLine(seed)}`);
      totals.faults += r.scenario.faults.length / 2;
      totals.delivered += r.network.delivered;
      totals.lost += r.network.lost;
      totals.duplicated += r.network.duplicated;
      totals.channelDowns += r.channelDetectMs.length;
      totals.nodeDowns += r.nodeDetectMs.length;
      assert.equal(r.network.overflowed, 0, reproduceLine(seed));
    }
    t.diagnostic(JSON.stringify(totals));
    // The schedules must really exercise the detector, or passing means nothing.
    assert.ok(totals.channelDowns > SEEDS && totals.nodeDowns > SEEDS / 10, JSON.stringify(totals));
  });

  test("a seed replays exactly", () => {
    for (const seed of [fromSeed, 1, 0xffff_ffff]) {
      const a = runSeed(seed);
      const b = runSeed(seed);
      assert.deepEqual(
        [a.network, a.channelDetectMs, a.nodeDetectMs, a.violations],
        [b.network, b.channelDetectMs, b.nodeDetectMs, b.violations],
      );
    }
  });
});
