// A real NIC failure: three heartbeat processes, each in its own network
// namespace with two veth NICs bridged per channel. `ip link set ethA down`
// on one node must cost only its channel A (the others move it to B within
// the budget and never call the node down); bringing it up returns it after
// the hold-down; kill -9 is a node failure within 1 s.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  CHANNEL_DOWN_BUDGET_MS,
  defaultDetectorConfig,
  NODE_DOWN_BUDGET_MS,
} from "../../src/membership/config.ts";
import type { Line } from "../helpers/netns.ts";
import { type HeartbeatLab, type HeartbeatProcess, heartbeatLabForSuite } from "../helpers/netns.ts";

const PORT = 7_946;
const CUT = 2;
const CUT_ID = `n${CUT}`;
const OBSERVERS = [0, 1];
const config = defaultDetectorConfig(1);
// Scheduling slack between `ip` returning and the observer's clock; the budget itself is asserted on silentMs.
const SLACK_MS = 100;

const about = (peer: string) => (l: Line) => l.peer === peer;

describe("NIC failure in network namespaces", { timeout: 40_000 }, () => {
  const suite = heartbeatLabForSuite(3, PORT);
  const lab = () => suite.heartbeats?.lab;
  const procs = () => suite.heartbeats?.procs ?? [];

  const proc = (i: number) => procs()[i] as HeartbeatProcess;
  /** Each process's line count once all were up: a late starter's first silence is not this test's. */
  let settledAt: number[] = [];
  const since = (i: number) => proc(i).lines.slice(settledAt[i] ?? 0);
  const fresh = (i: number, match: (l: Line) => boolean) => (l: Line) =>
    proc(i).lines.indexOf(l) >= (settledAt[i] ?? 0) && match(l);

  test("every node sees its peers up on both channels, traffic on A", async (t) => {
    if (suite.skip !== undefined) return t.skip(suite.skip);
    settledAt = await (suite.heartbeats as HeartbeatLab).settled();
    for (const [i] of procs().entries()) {
      const { views } = (await proc(i).ask("view")) as Line & { views: Record<string, unknown> };
      for (const [peer, view] of Object.entries(views))
        assert.deepEqual(
          view,
          { channels: { A: "up", B: "up" }, state: "up", active: "A" },
          `n${i} → ${peer}`,
        );
    }
  });

  test("ethA down on one node: the others move it to B within the budget and keep it a member", async (t) => {
    if (suite.skip !== undefined) return t.skip(suite.skip);
    await lab()?.setLink(CUT, "A", false);
    const downAtMs = Date.now();
    for (const i of OBSERVERS) {
      const down = await proc(i).until(
        fresh(i, (l) => about(CUT_ID)(l) && l.kind === "channel" && l.channel === "A" && l.to === "down"),
        2_000,
        `${CUT_ID} channel A down`,
      );
      const silentMs = Number(down.silentMs);
      t.diagnostic(
        `n${i}: ${CUT_ID}'s channel A down ${silentMs.toFixed(1)} ms after its last heartbeat, ` +
          `${Number(down.wallMs) - downAtMs} ms after the link went down`,
      );
      assert.ok(silentMs <= CHANNEL_DOWN_BUDGET_MS, `${silentMs} ms`);
      assert.ok(Number(down.wallMs) - downAtMs <= CHANNEL_DOWN_BUDGET_MS + SLACK_MS);
      const activeB = (l: Line) => about(CUT_ID)(l) && l.kind === "active" && l.to === "B";
      await proc(i).until(fresh(i, activeB), 500, "active B");
    }
    // Stay a while: B keeps it a member.
    await new Promise((r) => setTimeout(r, 1_000));
    for (const i of OBSERVERS) {
      const { views } = (await proc(i).ask("view")) as Line & { views: Record<string, unknown> };
      assert.deepEqual(views[CUT_ID], { channels: { A: "down", B: "up" }, state: "up", active: "B" });
    }
  });

  test("ethA up again: channel A carries traffic again after the hold-down, not before", async (t) => {
    if (suite.skip !== undefined) return t.skip(suite.skip);
    await lab()?.setLink(CUT, "A", true);
    const upAtMs = Date.now();
    for (const i of OBSERVERS) {
      const back = await proc(i).until(
        fresh(i, (l) => about(CUT_ID)(l) && l.kind === "active" && l.to === "A"),
        config.holdDownMs + 3_000,
        `${CUT_ID} active A again`,
      );
      const returning = since(i).find(
        (l) => about(CUT_ID)(l) && l.kind === "channel" && l.channel === "A" && l.to === "returning",
      );
      assert.ok(returning !== undefined, "heard again before trusted");
      const heldMs = Number(back.atMs) - Number(returning.atMs);
      t.diagnostic(
        `n${i}: ${CUT_ID}'s channel A back in use ${Number(back.wallMs) - upAtMs} ms after link up (hold-down ${heldMs.toFixed(0)} ms)`,
      );
      assert.ok(heldMs >= config.holdDownMs, `held ${heldMs} ms`);
    }
  });

  test("kill -9: the others mark the node down within 1 s; a NIC failure never did", async (t) => {
    if (suite.skip !== undefined) return t.skip(suite.skip);
    for (const i of OBSERVERS)
      assert.ok(
        !since(i).some((l) => about(CUT_ID)(l) && l.kind === "peer"),
        `n${i} touched ${CUT_ID}'s membership during a NIC failure`,
      );
    await proc(CUT).kill9();
    const killedAtMs = Date.now();
    for (const i of OBSERVERS) {
      const down = await proc(i).until(
        fresh(i, (l) => about(CUT_ID)(l) && l.kind === "peer" && l.to === "down"),
        NODE_DOWN_BUDGET_MS + 2_000,
        `${CUT_ID} down`,
      );
      const silentMs = Number(down.silentMs);
      const afterKillMs = Number(down.wallMs) - killedAtMs;
      t.diagnostic(
        `n${i}: ${CUT_ID} down ${silentMs.toFixed(1)} ms after its last heartbeat, ${afterKillMs} ms after kill -9`,
      );
      assert.ok(silentMs <= NODE_DOWN_BUDGET_MS, `${silentMs} ms`);
      assert.ok(afterKillMs <= NODE_DOWN_BUDGET_MS, `${afterKillMs} ms after the kill`);
    }
  });
});
