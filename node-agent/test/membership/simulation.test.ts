// Seeded fault schedules against the real membership cores: detection, map
// agreement and channel news (every node, watcher or not, routes a peer off
// its dead NIC within the budget, and back once it returns). The seeds differ on every run (a VOPR finds new bugs that
// way); MOSAIC_SIM_SEED=<n> fixes the first one, and a failure names the seed
// that replays it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { reproduceLine, runSeed } from "../../sim/simulator.ts";

const SEEDS = 1_000;
const fromSeed = Number(process.env.MOSAIC_SIM_SEED ?? Math.floor(Math.random() * 0xffff_0000));

const max = (xs: number[]) => xs.reduce((m, x) => Math.max(m, x), 0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

describe("deterministic simulation", () => {
  test(`${SEEDS} seeded fault schedules keep every invariant`, (t) => {
    t.diagnostic(`seeds ${fromSeed}..${fromSeed + SEEDS - 1} (MOSAIC_SIM_SEED=${fromSeed} replays this run)`);
    const totals = {
      faults: 0,
      delivered: 0,
      lost: 0,
      duplicated: 0,
      channelDowns: 0,
      nodeDowns: 0,
      proposals: 0,
      outs: 0,
      heals: 0,
    };
    const downMs: number[] = [];
    const everywhereMs: number[] = [];
    const outAfterGraceMs: number[] = [];
    const convergeMs: number[] = [];
    const newsMoveMs: number[] = [];
    const newsBackMs: number[] = [];
    for (let seed = fromSeed; seed < fromSeed + SEEDS; seed++) {
      const r = runSeed(seed);
      if (r.violations.length > 0) assert.fail(`${r.violations.join("\n")}\n${reproduceLine(seed)}`);
      totals.faults += r.scenario.faults.length / 2;
      totals.delivered += r.network.delivered;
      totals.lost += r.network.lost;
      totals.duplicated += r.network.duplicated;
      totals.channelDowns += r.channelDetectMs.length;
      totals.nodeDowns += r.nodeDetectMs.length;
      totals.proposals += r.proposals;
      totals.heals += r.convergeMs.length;
      for (const c of r.crashes) {
        downMs.push(c.downMs);
        everywhereMs.push(c.everywhereMs);
        if (c.outAfterDownMs !== undefined) {
          totals.outs++;
          outAfterGraceMs.push(c.outAfterDownMs - r.scenario.agreement.outGraceMs);
        }
      }
      convergeMs.push(...r.convergeMs);
      newsMoveMs.push(...r.newsMoveMs);
      newsBackMs.push(...r.newsBackMs);
      assert.equal(r.network.overflowed, 0, reproduceLine(seed));
    }
    t.diagnostic(JSON.stringify(totals));
    t.diagnostic(
      `crash in a settled cluster (${downMs.length}): in a map after median ${median(downMs)} ms, max ${max(downMs)} ms; ` +
        `in every live node's map after max ${max(everywhereMs)} ms; out at grace + max ${max(outAfterGraceMs)} ms ` +
        `(${outAfterGraceMs.length}); maps converged after the last fault healed: median ${median(convergeMs)} ms, max ${max(convergeMs)} ms`,
    );
    t.diagnostic(
      `NIC down → every non-watcher on the other channel (${newsMoveMs.length} judged): median ${median(newsMoveMs)} ms, ` +
        `max ${max(newsMoveMs)} ms; NIC up → none avoiding it: median ${median(newsBackMs)} ms (${newsBackMs.length})`,
    );
    // The schedules must really exercise detection, agreement and news, or passing means nothing.
    assert.ok(newsMoveMs.length > SEEDS / 10 && newsBackMs.length > SEEDS / 10);
    assert.ok(totals.channelDowns > SEEDS && totals.nodeDowns > SEEDS / 10, JSON.stringify(totals));
    assert.ok(totals.proposals > SEEDS / 2 && downMs.length > SEEDS / 10 && totals.outs > SEEDS / 100);
  });

  test("a seed replays exactly", () => {
    for (const seed of [fromSeed, 1, 0xffff_ffff]) {
      const a = runSeed(seed);
      const b = runSeed(seed);
      assert.deepEqual(
        [
          a.network,
          a.channelDetectMs,
          a.nodeDetectMs,
          a.crashes,
          a.convergeMs,
          a.proposals,
          a.newsMoveMs,
          a.violations,
        ],
        [
          b.network,
          b.channelDetectMs,
          b.nodeDetectMs,
          b.crashes,
          b.convergeMs,
          b.proposals,
          b.newsMoveMs,
          b.violations,
        ],
      );
    }
  });
});
