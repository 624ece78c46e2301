// Membership agreement between real processes, each in its own network
// namespace with two veth NICs (198.18.0.0/15): four heartbeat fixtures
// (detection and agreement on UDP). `ip link set ethB down` on one node is a
// NIC failure and must never change the cluster map; kill -9 of another is a
// node failure: every survivor's map marks it down (two watchers confirm)
// within about a second, all at one epoch, then out after the grace.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NODE_DOWN_BUDGET_MS } from "../../src/membership/config.ts";
import type { Line } from "../helpers/netns.ts";
import { type HeartbeatLab, type HeartbeatProcess, heartbeatLabForSuite } from "../helpers/netns.ts";

const PORT = 7_947;
const NODES = 4;
const NIC_CUT = 3;
const KILLED = 1;
const OUT_GRACE_MS = 2_000;
// Scheduling slack on this shared 2-core machine between kill -9 and the survivors' clocks.
const SLACK_MS = 500;

const isMap = (l: Line) => l.kind === "map";
const stateIn = (l: Line, id: string) => (l.states as Record<string, string>)[id];

describe("membership agreement in network namespaces", { timeout: 60_000 }, () => {
  const suite = heartbeatLabForSuite(NODES, PORT, { outGraceMs: OUT_GRACE_MS });
  const lab = () => suite.heartbeats?.lab;
  const procs = () => suite.heartbeats?.procs ?? [];

  const proc = (i: number) => procs()[i] as HeartbeatProcess;
  const survivors = () => procs().filter((_, i) => i !== KILLED);
  /** Each process's line count once all were up: a late starter's first silence is not this test's. */
  let settledAt: number[] = [];
  const since = (p: HeartbeatProcess) => p.lines.slice(settledAt[procs().indexOf(p)] ?? 0);
  const fresh = (p: HeartbeatProcess, match: (l: Line) => boolean) => (l: Line) =>
    p.lines.indexOf(l) >= (settledAt[procs().indexOf(p)] ?? 0) && match(l);

  test("a NIC down for longer than node detection takes never changes the map", async (t) => {
    if (suite.skip !== undefined) return t.skip(suite.skip);
    settledAt = await (suite.heartbeats as HeartbeatLab).settled();
    await lab()?.setLink(NIC_CUT, "B", false);
    // Twice the node-down budget: a node failure would have been confirmed by now.
    await new Promise((r) => setTimeout(r, 2 * NODE_DOWN_BUDGET_MS));
    await lab()?.setLink(NIC_CUT, "B", true);
    await new Promise((r) => setTimeout(r, 300));
    for (const p of procs()) {
      assert.ok(!since(p).some(isMap), `${p.node} changed the map during a NIC failure`);
      assert.ok(!since(p).some((l) => l.kind === "peer"), `${p.node} suspected a node during a NIC failure`);
    }
  });

  test("kill -9: every survivor's map has it down within the budget, at one epoch, then out after the grace", async (t) => {
    if (suite.skip !== undefined) return t.skip(suite.skip);
    const gone = `n${KILLED}`;
    await proc(KILLED).kill9();
    const killedAtMs = Date.now();
    const downs: Line[] = [];
    for (const p of survivors())
      downs.push(
        await p.until(
          fresh(p, (l) => isMap(l) && stateIn(l, gone) === "down"),
          NODE_DOWN_BUDGET_MS + 3_000,
          `a map with ${gone} down`,
        ),
      );
    const afterKill = downs.map((l) => Number(l.wallMs) - killedAtMs);
    const proposal = downs.find((l) => l.how === "proposed");
    t.diagnostic(
      `${gone} killed: down in the survivors' maps ${afterKill.join(", ")} ms later ` +
        `(proposed by ${proposal?.node ?? "?"}), epoch ${downs[0]?.epoch}`,
    );
    for (const ms of afterKill) assert.ok(ms <= NODE_DOWN_BUDGET_MS + SLACK_MS, `${ms} ms after the kill`);
    for (const l of downs) assert.deepEqual([l.epoch, l.digest], [downs[0]?.epoch, downs[0]?.digest]);

    const outs: Line[] = [];
    for (const p of survivors())
      outs.push(
        await p.until(
          fresh(p, (l) => isMap(l) && stateIn(l, gone) === "out"),
          OUT_GRACE_MS + 3_000,
          `a map with ${gone} out`,
        ),
      );
    const afterDown = outs.map((l, i) => Number(l.wallMs) - Number(downs[i]?.wallMs));
    t.diagnostic(
      `out ${afterDown.join(", ")} ms after down (grace ${OUT_GRACE_MS} ms), epoch ${outs[0]?.epoch}`,
    );
    for (const ms of afterDown) assert.ok(ms >= OUT_GRACE_MS - SLACK_MS, `out after only ${ms} ms`);
    for (const l of outs) {
      assert.deepEqual([l.epoch, l.digest], [outs[0]?.epoch, outs[0]?.digest]);
      for (const p of survivors()) assert.equal(stateIn(l, p.node), "up", `${l.node}: ${p.node} stays up`);
    }
    // Nothing else happened to any map: exactly down, then out.
    for (const p of survivors()) assert.equal(since(p).filter(isMap).length, 2, `${p.node}'s maps`);
  });
});
