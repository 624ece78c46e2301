// nextDeadlineMs() lets a driver sleep instead of polling. It is right only if
// ticking at the deadlines alone gives exactly the events that ticking every
// millisecond gives, under any schedule of cut channels.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Track } from "../../src/membership/channel-detector.ts";
import { nextOnSilence, silenceDeadlineMs } from "../../src/membership/channel-detector.ts";
import { defaultDetectorConfig } from "../../src/membership/config.ts";
import type { Channel } from "../../src/membership/heartbeat.ts";
import { MemberCore } from "../../src/membership/member-core.ts";

const config = defaultDetectorConfig(1);
const NODES = ["n0", "n1", "n2"];
const DELAY_MS = 3;
const DURATION_MS = 4_000;

interface Cut {
  node: string;
  channel: Channel;
  fromMs: number;
  toMs: number;
}

interface Packet {
  atMs: number;
  from: string;
  to: string;
  channel: Channel;
  bytes: Buffer;
}

const cutAt = (cuts: Cut[], node: string, channel: Channel, t: number) =>
  cuts.some((c) => c.node === node && c.channel === channel && c.fromMs <= t && t < c.toMs);

/** Runs the cluster; `dense` ticks every core every ms, otherwise only when a core's deadline or a packet is due. */
function run(cuts: Cut[], dense: boolean): string[] {
  const cores = new Map(
    NODES.map((self) => [
      self,
      new MemberCore({ self, incarnation: 1, members: NODES, epoch: 1, config, nowMs: 0 }),
    ]),
  );
  const log: string[] = [];
  let inFlight: Packet[] = [];
  let t = 0;
  for (let steps = 0; steps <= DURATION_MS && t <= DURATION_MS; steps++) {
    const due = inFlight.filter((p) => p.atMs <= t);
    inFlight = inFlight.filter((p) => p.atMs > t);
    for (const p of due) {
      if (cutAt(cuts, p.to, p.channel, t)) continue;
      const events = (cores.get(p.to) as MemberCore).onDatagram(p.bytes, p.channel, t);
      for (const e of events) log.push(`${p.to} ${JSON.stringify(e)}`);
    }
    for (const [node, core] of cores) {
      if (!dense && core.nextDeadlineMs() > t) continue;
      const { datagrams, events } = core.tick(t);
      for (const e of events) log.push(`${node} ${JSON.stringify(e)}`);
      for (const d of datagrams)
        if (!cutAt(cuts, node, d.channel, t))
          inFlight.push({ atMs: t + DELAY_MS, from: node, to: d.to, channel: d.channel, bytes: d.bytes });
    }
    if (dense) t++;
    else {
      const next = Math.min(
        ...[...cores.values()].map((c) => c.nextDeadlineMs()),
        ...inFlight.map((p) => p.atMs),
      );
      assert.ok(next > t, `deadline ${next} not after ${t}: the driver would spin`);
      t = next;
    }
  }
  return log;
}

const cutArb = fc
  .record({
    node: fc.constantFrom(...NODES),
    channel: fc.constantFrom<Channel>("A", "B"),
    fromMs: fc.integer({ min: 0, max: DURATION_MS }),
    lengthMs: fc.integer({ min: 1, max: 2_000 }),
  })
  .map(({ node, channel, fromMs, lengthMs }) => ({ node, channel, fromMs, toMs: fromMs + lengthMs }));

describe("deadlines", () => {
  test("a channel's silence deadline is exactly when nextOnSilence first changes its state", () => {
    const trackArb = fc.record({
      state: fc.constantFrom("up", "suspect", "returning", "down" as const),
      lastHeardMs: fc.integer({ min: 0, max: 5_000 }),
      sinceMs: fc.integer({ min: 0, max: 5_000 }),
    });
    fc.assert(
      fc.property(trackArb, (t: Track) => {
        const dueMs = silenceDeadlineMs(t, config);
        const from = Math.max(t.lastHeardMs, t.sinceMs);
        if (dueMs === Number.POSITIVE_INFINITY) {
          assert.equal(nextOnSilence(t, from + 100_000, config), t.state);
          return;
        }
        if (dueMs - 1 >= from) assert.equal(nextOnSilence(t, dueMs - 1, config), t.state);
        assert.notEqual(nextOnSilence(t, Math.max(dueMs, from), config), t.state);
      }),
    );
  });

  test("ticking only at nextDeadlineMs() gives the same events as ticking every millisecond", () => {
    fc.assert(
      fc.property(fc.array(cutArb, { maxLength: 5 }), (cuts) => {
        const dense = run(cuts, true);
        assert.deepEqual(run(cuts, false), dense);
      }),
      { numRuns: 40 },
    );
  });

  test("one NIC cut and one node silenced produce channel and node events (the comparison is not vacuous)", () => {
    const log = run(
      [
        { node: "n1", channel: "A", fromMs: 500, toMs: 1_000 },
        { node: "n2", channel: "A", fromMs: 2_000, toMs: 9_000 },
        { node: "n2", channel: "B", fromMs: 2_000, toMs: 9_000 },
      ],
      false,
    );
    assert.ok(log.some((l) => l.startsWith("n0") && l.includes('"peer":"n1"') && l.includes('"to":"down"')));
    assert.ok(
      log.some((l) => l.includes('"kind":"peer"') && l.includes('"peer":"n2"') && l.includes('"to":"down"')),
    );
  });
});
