import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isMosaicError } from "../../src/errors.ts";
import type { ChannelEvent } from "../../src/membership/channel-detector.ts";
import { ChannelDetector } from "../../src/membership/channel-detector.ts";
import type { DetectorConfig } from "../../src/membership/config.ts";
import {
  CHANNEL_DOWN_BUDGET_MS,
  defaultDetectorConfig,
  NODE_DOWN_BUDGET_MS,
  validateDetectorConfig,
} from "../../src/membership/config.ts";

const config = defaultDetectorConfig(1); // interval 50, suspect 150, down 250, hold-down 1000, tick 10

/**
 * Drives one detector watching peer "p" from 0 to untilMs in ticks of config.tickMs.
 * Channel A hears a heartbeat every interval unless `dropA(t)`; B always does.
 */
function drive(untilMs: number, dropA: (t: number) => boolean): ChannelEvent[] {
  const d = new ChannelDetector(config);
  d.watch(["p"], 0);
  const events: ChannelEvent[] = [];
  for (let t = 0; t <= untilMs; t += config.tickMs) {
    if (t % config.heartbeatIntervalMs === 0) {
      if (!dropA(t)) events.push(...d.onHeartbeat("p", "A", t));
      events.push(...d.onHeartbeat("p", "B", t));
    }
    events.push(...d.tick(t));
  }
  return events;
}

const brief = (events: ChannelEvent[]) => events.map((e) => `${e.atMs} ${e.channel} ${e.from}→${e.to}`);

describe("channel detector", () => {
  test("defaults meet the budget: channel ≤ 300 ms, node ≤ 1 s after the last heartbeat", () => {
    for (const k of [0, 1, 2, 3]) {
      const c = defaultDetectorConfig(k);
      assert.ok(c.downAfterMs + c.tickMs <= CHANNEL_DOWN_BUDGET_MS);
      assert.ok(c.nodeDownAfterMs + c.tickMs <= NODE_DOWN_BUDGET_MS);
    }
  });

  test("k lost heartbeats in a row raise no suspicion", () => {
    assert.deepEqual(
      drive(2_000, (t) => t % 100 === 50),
      [],
    );
  });

  test("silence: suspect at +150 ms, down at +250 ms after the last heartbeat; B untouched", () => {
    const events = drive(1_000, (t) => t > 300);
    assert.deepEqual(brief(events), ["450 A up→suspect", "550 A suspect→down"]);
  });

  test("suspicion clears on the next heartbeat", () => {
    const events = drive(1_000, (t) => t > 300 && t < 500);
    assert.deepEqual(brief(events), ["450 A up→suspect", "500 A suspect→up"]);
  });

  test("a returning channel is used again only after holdDownMs of steady heartbeats", () => {
    const events = drive(3_000, (t) => t > 300 && t < 1_000);
    assert.deepEqual(brief(events), [
      "450 A up→suspect",
      "550 A suspect→down",
      "1000 A down→returning",
      "2000 A returning→up",
    ]);
  });

  test("a flap during the hold-down sends it back to down and starts the hold-down over", () => {
    const lost = (t: number) => (t > 300 && t < 1_000) || (t > 1_400 && t < 1_600);
    const events = drive(3_500, lost);
    assert.deepEqual(brief(events), [
      "450 A up→suspect",
      "550 A suspect→down",
      "1000 A down→returning",
      "1550 A returning→down",
      "1600 A down→returning",
      "2600 A returning→up",
    ]);
  });

  test("a late tick crosses both deadlines at once; a new peer gets a full downAfterMs", () => {
    const d = new ChannelDetector(config);
    d.watch(["p"], 100);
    assert.deepEqual(d.tick(249), []);
    assert.deepEqual(
      d.tick(350).map((e) => `${e.channel} ${e.to}`),
      ["A suspect", "A down", "B suspect", "B down"],
    );
    d.watch(["p", "q"], 400);
    assert.equal(d.state("q", "A"), "up");
    assert.equal(d.state("p", "A"), "down", "a kept peer keeps its state");
    d.watch(["q"], 400);
    assert.deepEqual(d.peers(), ["q"]);
    assert.deepEqual(d.onHeartbeat("p", "A", 400), [], "an unwatched peer is ignored");
  });

  test("the clock must not go backwards", () => {
    const d = new ChannelDetector(config);
    d.tick(100);
    assert.throws(() => d.tick(99), /backwards/);
  });

  test("inconsistent timings are refused", () => {
    const bad = (change: Partial<DetectorConfig>) => () => validateDetectorConfig({ ...config, ...change });
    const badRequest = (e: unknown) => isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST");
    assert.throws(bad({ suspectAfterMs: 100 }), badRequest, "k losses would raise suspicion");
    assert.throws(bad({ downAfterMs: 150 }), badRequest);
    assert.throws(bad({ nodeDownAfterMs: 200 }), badRequest);
    assert.throws(bad({ heartbeatIntervalMs: 0 }), badRequest);
    assert.throws(bad({ holdDownMs: 1.5 }), badRequest);
    assert.throws(bad({ newsRefreshMs: 0 }), badRequest);
    assert.throws(
      bad({ newsRefreshMs: config.heartbeatIntervalMs - 1 }),
      badRequest,
      "refreshed more often than heartbeats go",
    );
  });
});
