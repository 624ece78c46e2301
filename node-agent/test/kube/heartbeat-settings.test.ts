// The heartbeat settings an operator gives (the chart's heartbeat values,
// handed to every agent by the DaemonSet; `--heartbeat-interval` and
// `--channel-down` on the command line) reach the detector: the rest of
// detection scales with them, a pair that cannot work is refused saying
// which settings and why, and — with real agent processes on real sockets
// and a kill -9 — a shorter channel-down time really detects sooner.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { kubeAgentSettingsFromEnv } from "../../src/kube/settings.ts";
import { defaultDetectorConfig, detectorConfigFor } from "../../src/membership/config.ts";
import { type LogLine, ProcessCluster } from "../helpers/process-cluster.ts";

describe("detector timings from the two settings", () => {
  test("none given: exactly the defaults", () => {
    assert.deepEqual(detectorConfigFor({}), defaultDetectorConfig(1));
  });

  test("the rest scales with channel-down: suspect at 60 %, node down 3×, hold-down 4×", () => {
    const c = detectorConfigFor({ heartbeatIntervalMs: 100, channelDownMs: 1_000 });
    assert.equal(c.heartbeatIntervalMs, 100);
    assert.equal(c.downAfterMs, 1_000);
    assert.equal(c.suspectAfterMs, 600);
    assert.equal(c.nodeDownAfterMs, 3_000);
    assert.equal(c.holdDownMs, 4_000);
    // Suspicion never comes within the silence two lost heartbeats leave (2 × 50 ms + the 10 ms tick).
    assert.equal(detectorConfigFor({ heartbeatIntervalMs: 50, channelDownMs: 120 }).suspectAfterMs, 111);
  });

  test("a pair that cannot work is refused, naming the settings and the least that would", () => {
    assert.throws(
      () => detectorConfigFor({ heartbeatIntervalMs: 100, channelDownMs: 150 }),
      /heartbeat settings: a channel-down time of 150 ms is too short for a 100 ms heartbeat interval: .*no sooner than 212 ms/,
    );
    assert.throws(
      () => detectorConfigFor({ heartbeatIntervalMs: 0 }),
      /heartbeat interval must be 1 to 10000 ms, got 0/,
    );
    assert.throws(
      () => detectorConfigFor({ channelDownMs: 60_001 }),
      /channel-down time must be 1 to 60000 ms/,
    );
    assert.throws(
      () => detectorConfigFor({ channelDownMs: 2.5 }),
      /channel-down time must be 1 to 60000 ms, got 2.5/,
    );
  });
});

describe("the DaemonSet's heartbeat variables", () => {
  test("read from the names the DaemonSet sets; unset ones stay the command line's", () => {
    const s = kubeAgentSettingsFromEnv({
      MOSAIC_HEARTBEAT_INTERVAL_MS: "40",
      MOSAIC_HEARTBEAT_CHANNEL_DOWN_MS: "300",
      MOSAIC_HEARTBEAT_OUT_GRACE_MS: "300000",
    });
    assert.deepEqual(s.heartbeat, { heartbeatIntervalMs: 40, channelDownMs: 300 });
    assert.equal(s.outGraceMs, 300_000);
    assert.deepEqual(kubeAgentSettingsFromEnv({}).heartbeat, {});
  });

  test("bad values are named; a pair that does not fit says so", () => {
    assert.throws(
      () =>
        kubeAgentSettingsFromEnv({
          MOSAIC_HEARTBEAT_INTERVAL_MS: "fast",
          MOSAIC_HEARTBEAT_CHANNEL_DOWN_MS: "0",
        }),
      /MOSAIC_HEARTBEAT_INTERVAL_MS=fast must be a whole number from 1 to 10000; MOSAIC_HEARTBEAT_CHANNEL_DOWN_MS=0 must be/,
    );
    assert.throws(
      () =>
        kubeAgentSettingsFromEnv({
          MOSAIC_HEARTBEAT_INTERVAL_MS: "100",
          MOSAIC_HEARTBEAT_CHANNEL_DOWN_MS: "150",
        }),
      /MOSAIC_HEARTBEAT_INTERVAL_MS and MOSAIC_HEARTBEAT_CHANNEL_DOWN_MS do not fit together: .*150 ms is too short/,
    );
  });
});

/**
 * Starts three agents with `args`, kills one with SIGKILL, and returns how
 * long after the kill a survivor's detector took its channel A down, and the
 * node down (both from the survivor's log timestamps: no polling delay).
 */
async function detectionAfterKill9(args: string[]): Promise<{ channelMs: number; nodeMs: number }> {
  const cluster = await ProcessCluster.start({ nodes: 3, agentArgs: args });
  try {
    const victim = cluster.nodeId(2);
    // Every survivor hears the victim on both channels before the kill.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const killedAt = Date.now();
    await cluster.kill9(2);
    const about = (kind: string) => (l: LogLine) => {
      const e = l.event as { kind?: string; peer?: string; channel?: string; to?: string } | undefined;
      return (
        l.msg === "peer health changed" &&
        e?.kind === kind &&
        e.peer === victim &&
        e.to === "down" &&
        (kind === "peer" || e.channel === "A")
      );
    };
    const channel = await cluster.waitForLogSince(0, killedAt, about("channel"), 15_000);
    const node = await cluster.waitForLogSince(0, killedAt, about("peer"), 15_000);
    return { channelMs: (channel.time as number) - killedAt, nodeMs: (node.time as number) - killedAt };
  } finally {
    await cluster.stop();
  }
}

describe("agent processes with --heartbeat-interval and --channel-down, kill -9", {
  timeout: 180_000,
}, () => {
  const measured: string[] = [];
  after(() => {
    for (const line of measured) console.log(`# ${line}`);
  });

  test("a shorter channel-down time detects a dead peer sooner, each within its setting", async () => {
    const short = await detectionAfterKill9(["--heartbeat-interval", "20ms", "--channel-down", "150ms"]);
    const long = await detectionAfterKill9(["--heartbeat-interval", "50ms", "--channel-down", "1200ms"]);
    measured.push(
      `channel-down 150ms (interval 20ms): channel A down ${short.channelMs} ms, node down ${short.nodeMs} ms after kill -9`,
      `channel-down 1200ms (interval 50ms): channel A down ${long.channelMs} ms, node down ${long.nodeMs} ms after kill -9`,
    );
    // Down comes channel-down after the last heartbeat heard: that may precede the kill by an
    // interval, or two when the one just before was lost.
    const earliest = (downMs: number, intervalMs: number) => downMs - 2 * intervalMs;
    assert.ok(short.channelMs >= earliest(150, 20), `short: channel down at ${short.channelMs} ms`);
    assert.ok(long.channelMs >= earliest(1_200, 50), `long: channel down at ${long.channelMs} ms`);
    assert.ok(short.nodeMs >= earliest(450, 20), `short: node down at ${short.nodeMs} ms`);
    assert.ok(long.nodeMs >= earliest(3_600, 50), `long: node down at ${long.nodeMs} ms`);
    // Sooner than the long setting could ever detect, with slack for a loaded 2-core machine.
    assert.ok(short.channelMs < earliest(1_200, 50), `short: channel down at ${short.channelMs} ms`);
    assert.ok(short.nodeMs < 1_500, `short: node down at ${short.nodeMs} ms`);
  });
});
