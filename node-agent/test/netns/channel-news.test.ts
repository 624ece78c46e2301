// Channel news between real processes, each in its own network namespace
// with two veth NICs (198.18.0.0/15): five heartbeat fixtures. Each node is
// watched by only two (k = 1), yet after `ip link set ethA down` on one node
// every other node, watcher or not, must send its traffic on channel B within
// 500 ms (the watchers' detection, then one datagram of news); while the
// link stays down the refreshes keep it so; when it comes back every node
// returns to A after the hold-down, not before. The cluster map never changes,
// and a healthy cluster sends no news at all.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defaultDetectorConfig, newsLeaseMs } from "../../src/membership/config.ts";
import type { Line } from "../helpers/netns.ts";
import { type HeartbeatLab, type HeartbeatProcess, heartbeatLabForSuite } from "../helpers/netns.ts";

const PORT = 7_948;
const NODES = 5;
const CUT = 1;
const CUT_ID = `n${CUT}`;
const config = defaultDetectorConfig(1);
/** Issue 4's end-to-end figure for every node: the channel budget plus the news and scheduling. */
const EVERYWHERE_MS = 500;
// Between `ip` returning and the link really changing, and between processes' clocks.
const SLACK_MS = 50;

type View = Line & {
  views: Record<string, { active: string | null }>;
  routes: Record<string, "A" | "B" | null>;
  news: { peer: string; unusable: string }[];
};
type Stats = Line & { stats: { newsSent: number; mapsSent: number } };

/** Whether a line says this node's traffic to `peer` now takes `channel` (null: nothing known, which is A first). */
const movedTo =
  (channel: "A" | "B" | null, peer = CUT_ID) =>
  (l: Line) =>
    l.peer === peer &&
    ((l.kind === "active" && l.to === (channel ?? "A")) || (l.kind === "route" && l.to === channel));

describe("channel news in network namespaces", { timeout: 60_000 }, () => {
  const suite = heartbeatLabForSuite(NODES, PORT);
  const lab = () => suite.heartbeats?.lab;
  const procs = () => suite.heartbeats?.procs ?? [];

  const others = () => procs().filter((_, i) => i !== CUT);
  const view = async (p: HeartbeatProcess) => (await p.ask("view")) as View;
  const watches = async (p: HeartbeatProcess) => CUT_ID in (await view(p)).views;
  const newsSent = () =>
    Promise.all(procs().map(async (p) => ((await p.ask("cpu")) as Stats).stats.newsSent));
  /** Each process's lines from the link going down on. */
  let cutAt: number[] = [];
  const since = (p: HeartbeatProcess) => p.lines.slice(cutAt[procs().indexOf(p)] ?? 0);

  test("a healthy cluster: traffic on A everywhere, and not one datagram of news", async (t) => {
    if (suite.skip !== undefined) return t.skip(suite.skip);
    await (suite.heartbeats as HeartbeatLab).settled();
    const sentBefore = await newsSent();
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(await newsSent(), sentBefore, "news sent in a healthy cluster");
    let watchers = 0;
    for (const p of others()) {
      const v = await view(p);
      if (CUT_ID in v.views) watchers++;
      else assert.equal(v.routes[CUT_ID], null, `${p.node} → ${CUT_ID}: nothing known, A first`);
      assert.deepEqual(v.news, []);
    }
    // k = 1: two watchers; the other two learn only from news.
    assert.equal(watchers, 2);
  });

  test("ethA down on one node: every other node, watcher or not, moves it to B within 500 ms", async (t) => {
    if (suite.skip !== undefined) return t.skip(suite.skip);
    cutAt = procs().map((p) => p.lines.length);
    await lab()?.setLink(CUT, "A", false);
    const downAtMs = Date.now();
    const figures: string[] = [];
    for (const p of others()) {
      const watcher = await watches(p);
      const moved = await p.until(movedTo("B"), 2_000, `${CUT_ID} on B`);
      const afterMs = Number(moved.wallMs) - downAtMs;
      figures.push(`${p.node} (${watcher ? "watcher" : "news"}) ${afterMs} ms`);
      assert.ok(afterMs <= EVERYWHERE_MS, `${p.node}: ${afterMs} ms after the link went down`);
    }
    t.diagnostic(`${CUT_ID}'s traffic on B after ethA down: ${figures.join(", ")}`);
    for (const p of others()) assert.equal((await view(p)).routes[CUT_ID], "B", p.node);
    // The cut node: its own detector for the peers it watches, its watchers' news about itself for
    // the others (its own NIC A is dead). B to everyone, within the same time.
    const cut = procs()[CUT] as HeartbeatProcess;
    for (const p of others()) {
      const moved = await cut.until(movedTo("B", p.node), 2_000, `${p.node} on B`);
      assert.ok(Number(moved.wallMs) - downAtMs <= EVERYWHERE_MS, `${CUT_ID} → ${p.node}`);
    }
    assert.deepEqual(Object.values((await view(cut)).routes), ["B", "B", "B", "B"]);
  });

  test("while the link stays down, longer than a news lease, every node stays on B and the map stays", async (t) => {
    if (suite.skip !== undefined) return t.skip(suite.skip);
    const holdMs = newsLeaseMs(config) + 500;
    await new Promise((r) => setTimeout(r, holdMs));
    for (const p of others()) {
      assert.equal((await view(p)).routes[CUT_ID], "B", `${p.node} after ${holdMs} ms`);
      assert.ok(!since(p).some((l) => movedTo(null)(l) || movedTo("A")(l)), `${p.node} went back to A`);
    }
    for (const p of procs()) {
      const membership = since(p).filter((l) => l.kind === "map" || l.kind === "peer");
      assert.deepEqual(membership, [], `${p.node} changed the map or suspected a node during a NIC failure`);
    }
    const sent = await newsSent();
    t.diagnostic(
      `news datagrams sent per node so far (copies, refreshes; NIC down ${holdMs} ms): ${sent.join(", ")}`,
    );
  });

  test("ethA up again: every node returns to A after the hold-down, not before", async (t) => {
    if (suite.skip !== undefined) return t.skip(suite.skip);
    await lab()?.setLink(CUT, "A", true);
    const upAtMs = Date.now();
    const figures: string[] = [];
    for (const p of others()) {
      const watcher = await watches(p);
      const back = await p.until(
        (l) => since(p).includes(l) && movedTo(watcher ? "A" : null)(l),
        2 * config.holdDownMs + 2_000,
        `${CUT_ID} on A`,
      );
      const afterMs = Number(back.wallMs) - upAtMs;
      figures.push(`${p.node} (${watcher ? "watcher" : "news"}) ${afterMs} ms`);
      assert.ok(afterMs >= config.holdDownMs - SLACK_MS, `${p.node}: back ${afterMs} ms after link up`);
      // A process stalled on this loaded machine may flap a returning channel, which starts its hold-down over.
      assert.ok(
        afterMs <= 2 * config.holdDownMs + EVERYWHERE_MS,
        `${p.node}: back only ${afterMs} ms after link up`,
      );
    }
    t.diagnostic(
      `${CUT_ID}'s traffic on A again after ethA up (hold-down ${config.holdDownMs} ms): ${figures.join(", ")}`,
    );
    // Every route, the cut node's own and those its dead NIC misled (it saw its peers' A go silent), back on A.
    const deadline = Date.now() + config.holdDownMs;
    for (let polls = 0; ; polls++) {
      const views = await Promise.all(procs().map(view));
      const stuck = views.flatMap((v) =>
        Object.entries(v.routes).flatMap(([peer, c]) => (c === "B" ? [`${v.node} → ${peer}`] : [])),
      );
      const announcing = views.filter((v) => v.news.length > 0).map((v) => v.node);
      if (stuck.length === 0 && announcing.length === 0) break;
      assert.ok(
        Date.now() < deadline && polls < 100,
        `still on B: ${stuck.join(", ")}; announcing: ${announcing}`,
      );
      await new Promise((r) => setTimeout(r, 20));
    }
  });
});
