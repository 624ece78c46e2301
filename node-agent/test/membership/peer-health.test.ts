import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ChannelState } from "../../src/membership/channel-detector.ts";
import { defaultDetectorConfig } from "../../src/membership/config.ts";
import type { Channel } from "../../src/membership/heartbeat.ts";
import { encodeHeartbeat, NO_DIGEST } from "../../src/membership/heartbeat.ts";
import { MemberCore } from "../../src/membership/member-core.ts";
import type { HealthEvent } from "../../src/membership/peer-health.ts";
import { activeChannel, PeerHealth } from "../../src/membership/peer-health.ts";

const config = defaultDetectorConfig(1);
/** The map fields of a heartbeat, which peer health ignores. */
const map = { epoch: 1, baseEpoch: 1, digest: NO_DIGEST, suspects: [] };
const STATES: ChannelState[] = ["up", "suspect", "returning", "down"];

/** Drives a PeerHealth watching `peers`; `silent(peer, channel, t)` drops chosen heartbeats. */
function drive(peers: string[], untilMs: number, silent: (peer: string, c: Channel, t: number) => boolean) {
  const health = new PeerHealth(config);
  health.watch(peers, 0);
  const events: HealthEvent[] = [];
  let sequence = 0;
  for (let t = 0; t <= untilMs; t += config.tickMs) {
    if (t % config.heartbeatIntervalMs === 0) {
      sequence++;
      for (const sender of peers)
        for (const channel of ["A", "B"] as const)
          if (!silent(sender, channel, t))
            events.push(...health.onHeartbeat({ sender, channel, incarnation: 1, sequence, ...map }, t));
    }
    events.push(...health.tick(t));
  }
  return { health, events };
}

const notChannel = (events: HealthEvent[]) =>
  events.filter((e) => e.kind !== "channel").map((e) => `${e.atMs} ${e.peer} ${e.kind} ${e.from}→${e.to}`);

describe("peer health", () => {
  test("active channel: never a down channel while the other is not down; preferred on a tie", () => {
    for (const a of STATES)
      for (const b of STATES) {
        const active = activeChannel(a, b);
        if (a === "down" && b === "down") assert.equal(active, null);
        else if (a === "down") assert.equal(active, "B");
        else if (b === "down") assert.equal(active, "A");
        else if (a === "returning" && b !== "returning") assert.equal(active, "B");
        else if (b !== "returning" || a === "returning") assert.equal(active, "A");
      }
    assert.equal(activeChannel("up", "up", "B"), "B");
  });

  test("a NIC failure moves only that peer to B, and back after the hold-down; it stays a member", () => {
    const { health, events } = drive(
      ["p", "q"],
      3_000,
      (peer, c, t) => peer === "p" && c === "A" && t > 300 && t < 1_000,
    );
    assert.deepEqual(notChannel(events), ["550 p active A→B", "2000 p active B→A"]);
    assert.deepEqual(health.view("q"), { channels: { A: "up", B: "up" }, state: "up", active: "A" });
  });

  test("both channels silent: node suspect when both are down, down at nodeDownAfterMs", () => {
    const { health, events } = drive(["p", "q"], 2_000, (peer, _c, t) => peer === "p" && t > 300);
    assert.deepEqual(notChannel(events), [
      "550 p active A→null",
      "550 p peer up→suspect",
      "1050 p peer suspect→down",
    ]);
    assert.equal(health.view("p")?.state, "down");
    assert.equal(health.view("q")?.state, "up");
  });

  test("duplicates and reordered heartbeats are ignored; a restart (new incarnation) is not", () => {
    const health = new PeerHealth(config);
    health.watch(["p"], 0);
    const hb = (incarnation: number, sequence: number) => ({
      sender: "p",
      channel: "A" as const,
      incarnation,
      sequence,
      ...map,
    });
    health.onHeartbeat(hb(2, 10), 0);
    health.tick(300); // A down (B too): silent since 0
    assert.equal(health.view("p")?.channels.A, "down");
    assert.deepEqual(health.onHeartbeat(hb(2, 10), 310), [], "duplicate");
    assert.deepEqual(health.onHeartbeat(hb(2, 9), 310), [], "older");
    assert.deepEqual(health.onHeartbeat(hb(1, 99), 310), [], "older incarnation");
    const events = health.onHeartbeat(hb(3, 1), 320);
    assert.deepEqual(
      events.map((e) => `${e.kind} ${e.to}`),
      ["channel returning", "active A", "peer up"],
    );
  });
});

describe("member core", () => {
  const members = ["a", "b", "c", "d", "e"];
  const core = (self: string) =>
    new MemberCore({ self, incarnation: 1, members, epoch: 4, config, nowMs: 0 });

  test("sends 2·(k+1) heartbeats per interval, on its cadence, to its successors", () => {
    const a = core("a");
    assert.deepEqual(a.sendsTo(), ["b", "c"]);
    assert.deepEqual(a.watched(), ["e", "d"]);
    let sent = 0;
    for (let t = 0; t < 1_000; t += config.tickMs) sent += a.tick(t).datagrams.length;
    assert.equal(sent, (1_000 / config.heartbeatIntervalMs) * 2 * 2);
    // A stalled driver sends once, not a burst.
    assert.equal(a.tick(5_000).datagrams.length, 4);
    assert.equal(a.tick(5_010).datagrams.length, 0);
  });

  test("a heartbeat from a predecessor counts; garbage, crossed channels and self are counted and dropped", () => {
    const b = core("b");
    const e = core("e");
    const fromE = e.tick(0).datagrams.filter((d) => d.to === "a");
    assert.equal(fromE.length, 2);
    const a = core("a");
    for (const d of fromE) assert.deepEqual(a.onDatagram(d.bytes, d.channel, 0), []);
    assert.equal(a.rejected, 0);
    a.onDatagram(Buffer.from("garbage"), "A", 10);
    a.onDatagram((fromE[0] as { bytes: Buffer }).bytes, "B", 10); // sent on A, arrived on B
    a.onDatagram(
      encodeHeartbeat({ sender: "a", channel: "A", incarnation: 1, sequence: 9, ...map, epoch: 4 }),
      "A",
      10,
    );
    assert.equal(a.rejected, 3);
    assert.equal(b.rejected, 0);
  });
});
