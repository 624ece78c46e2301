// Channel news between six MembershipCores (the production code) on a clock
// and a lossless 1 ms network of this test's own: a NIC failure reaches
// every node, watcher or not, within the channel budget and one hop, as a
// route; it never changes the map; bad or foreign news costs nothing.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import { encodeNews } from "../../src/membership/channel-news.ts";
import { CHANNEL_DOWN_BUDGET_MS, defaultDetectorConfig } from "../../src/membership/config.ts";
import type { Channel } from "../../src/membership/heartbeat.ts";
import type { Datagram } from "../../src/membership/member-core.ts";
import type { MembershipEvent, RouteEvent } from "../../src/membership/membership-core.ts";
import { MembershipCore } from "../../src/membership/membership-core.ts";

const config = defaultDetectorConfig(1);
const IDS = ["n0", "n1", "n2", "n3", "n4", "n5"];
const CUT = "n2";
const HOP_MS = 1;

class Cluster {
  nowMs = 0;
  readonly cores = new Map<string, MembershipCore>();
  readonly events: { node: string; event: MembershipEvent }[] = [];
  readonly sent = { news: 0, map: 0 };
  readonly #nicDown = new Set<string>();
  #inFlight: { atMs: number; from: string; d: Datagram }[] = [];

  constructor() {
    const map: ClusterMap = {
      epoch: 1,
      nodes: IDS.map((id) => ({ id, addresses: [`${id}:1`, `${id}:2`], state: "up" as const })),
    };
    for (const self of IDS)
      this.cores.set(self, new MembershipCore({ self, incarnation: 1, map, config, nowMs: 0 }));
  }

  setNic(node: string, channel: Channel, up: boolean): void {
    if (up) this.#nicDown.delete(`${node}/${channel}`);
    else this.#nicDown.add(`${node}/${channel}`);
  }

  /** Runs until `untilMs` in 1 ms steps. */
  run(untilMs: number): void {
    for (; this.nowMs <= untilMs; this.nowMs++) {
      const due = this.#inFlight.filter((p) => p.atMs <= this.nowMs);
      this.#inFlight = this.#inFlight.filter((p) => p.atMs > this.nowMs);
      for (const { from, d } of due) {
        if (this.#nicDown.has(`${from}/${d.channel}`) || this.#nicDown.has(`${d.to}/${d.channel}`)) continue;
        this.#record(d.to, this.core(d.to).onDatagram(d.bytes, d.channel, this.nowMs));
      }
      for (const [node, core] of this.cores) {
        if (core.nextDeadlineMs() > this.nowMs) continue;
        const { datagrams, events } = core.tick(this.nowMs);
        this.#record(node, events);
        for (const d of datagrams) {
          if (d.kind === "news" || d.kind === "map") this.sent[d.kind]++;
          this.#inFlight.push({ atMs: this.nowMs + HOP_MS, from: node, d });
        }
      }
    }
  }

  core(id: string): MembershipCore {
    return this.cores.get(id) as MembershipCore;
  }

  routes(peer: string): Record<string, Channel | undefined> {
    return Object.fromEntries(
      IDS.filter((id) => id !== peer).map((id) => [id, this.core(id).route(peer)] as const),
    );
  }

  #record(node: string, events: MembershipEvent[]): void {
    for (const event of events) this.events.push({ node, event });
  }
}

const routeEvents = (c: Cluster, peer: string) =>
  c.events.filter((e) => e.event.kind === "route" && e.event.peer === peer) as {
    node: string;
    event: RouteEvent;
  }[];

describe("channel news between membership cores", () => {
  test("a NIC failure reaches every node within the budget, and the return after the hold-down", () => {
    const c = new Cluster();
    c.run(2_000);
    assert.equal(c.sent.news, 0, "a healthy cluster sends no news");
    const watchers = IDS.filter((id) => c.core(id).watched().includes(CUT));
    const others = IDS.filter((id) => id !== CUT && !watchers.includes(id));
    assert.equal(watchers.length, 2);
    assert.equal(others.length, 3);
    for (const id of others) assert.equal(c.core(id).route(CUT), undefined, `${id}: nothing known yet`);

    const downMs = c.nowMs;
    c.setNic(CUT, "A", false);
    c.run(downMs + 600);
    assert.deepEqual(
      c.routes(CUT),
      Object.fromEntries(IDS.filter((id) => id !== CUT).map((id) => [id, "B"])),
    );
    // The watchers' detectors, then one hop of news; the budget counts from the last heartbeat.
    const movedMs = routeEvents(c, CUT).map((e) => e.event.atMs - downMs);
    assert.equal(movedMs.length, others.length);
    for (const ms of movedMs) assert.ok(ms <= CHANNEL_DOWN_BUDGET_MS + HOP_MS + 1, `${ms} ms`);
    for (const e of routeEvents(c, CUT)) assert.deepEqual([e.event.from, e.event.to], [null, "B"]);
    // The cut node itself hears its watchers (on B): its own NIC A is dead, so B for every peer.
    for (const id of IDS.filter((p) => p !== CUT)) assert.equal(c.core(CUT).route(id), "B", `${CUT} → ${id}`);
    assert.equal(c.core(others[0] as string).channelState(CUT, "A"), "down");

    const before = c.sent.news;
    c.run(c.nowMs + 3_000);
    assert.ok(c.sent.news > before, "refreshed while the NIC is down");
    assert.equal(c.core(others[0] as string).route(CUT), "B", "the refreshes keep it");

    const upMs = c.nowMs;
    c.setNic(CUT, "A", true);
    c.run(upMs + config.holdDownMs + 300);
    for (const id of others) assert.equal(c.core(id).route(CUT), undefined, `${id}: back to A`);
    const back = routeEvents(c, CUT).filter((e) => e.event.to === null);
    assert.equal(back.length, others.length);
    for (const e of back) assert.ok(e.event.atMs - upMs >= config.holdDownMs, "not before the hold-down");
    assert.ok(
      !c.events.some((e) => e.event.kind === "map" || e.event.kind === "peer"),
      "a NIC failure never touches membership",
    );
    assert.equal(c.sent.map, 0);
    const quiet = c.sent.news;
    c.run(c.nowMs + 3_000);
    assert.equal(c.sent.news, quiet, "silence again once everything is healthy");
  });

  test("news from a stranger, on the wrong channel, or garbage costs a count and nothing else", () => {
    const c = new Cluster();
    c.run(500);
    const core = c.core("n0");
    const item = [{ peer: "n3", unusable: "A" as const }];
    const news = { sender: "n4", channel: "A" as const, incarnation: 1, sequence: 1, items: item };
    const rejected = core.rejected;
    assert.deepEqual(core.onDatagram(encodeNews({ ...news, sender: "stranger" }), "A", c.nowMs), []);
    assert.deepEqual(core.onDatagram(encodeNews(news), "B", c.nowMs), []);
    assert.deepEqual(core.onDatagram(encodeNews({ ...news, sender: "n0" }), "A", c.nowMs), []);
    assert.deepEqual(core.onDatagram(encodeNews(news).subarray(0, 20), "A", c.nowMs), []);
    assert.equal(core.rejected, rejected + 4);
    assert.equal(core.route("n3"), undefined);
    const events = core.onDatagram(encodeNews(news), "A", c.nowMs);
    assert.deepEqual(events, [{ kind: "route", peer: "n3", from: null, to: "B", atMs: c.nowMs }]);
  });
});
