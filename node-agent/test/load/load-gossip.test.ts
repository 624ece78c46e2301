// How load levels travel: the heartbeat's optional load field and the load
// datagram on the wire, the announcer's schedule, the board's rules, and six
// MembershipCores (the production code) on a clock and a lossless 1 ms
// network of this test's own: every node, watcher or not, knows a node's
// level within one heartbeat interval (plus the hop); an idle cluster sends
// no load datagram; a stale level expires.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import { isMosaicError } from "../../src/errors.ts";
import { LOAD_LEVELS, type LoadLevel } from "../../src/load/level.ts";
import { LoadAnnouncer, LoadBoard } from "../../src/load/load-gossip.ts";
import { encodeLoadNews, isLoadNews, type LoadNews } from "../../src/load/load-news.ts";
import { defaultDetectorConfig, newsLeaseMs } from "../../src/membership/config.ts";
import {
  decodeHeartbeat,
  encodeHeartbeat,
  HEARTBEAT_BYTES_MAX,
  type Heartbeat,
} from "../../src/membership/heartbeat.ts";
import { decodeDatagram } from "../../src/membership/map-message.ts";
import type { Datagram } from "../../src/membership/member-core.ts";
import { MembershipCore } from "../../src/membership/membership-core.ts";

const badRequest = (e: unknown) => isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST");
const config = defaultDetectorConfig(1);
const heartbeat: Heartbeat = {
  sender: "node-1",
  channel: "A",
  incarnation: 7,
  sequence: 12,
  epoch: 3,
  baseEpoch: 2,
  digest: "0123456789abcdef",
  suspects: [{ peer: "node-0", fresh: true }],
};

describe("load on the wire", () => {
  test("a heartbeat carries the level in 9 more bytes; one without it (an older agent's) still decodes, as no level", () => {
    const old = encodeHeartbeat(heartbeat);
    const withLoad = { ...heartbeat, load: { level: "High" as const, sequence: 4 } };
    const bytes = encodeHeartbeat(withLoad);
    assert.equal(bytes.length, old.length + 9);
    assert.ok(bytes.length <= HEARTBEAT_BYTES_MAX && HEARTBEAT_BYTES_MAX <= 1_472);
    assert.deepEqual(decodeHeartbeat(bytes), withLoad);
    assert.deepEqual(decodeHeartbeat(old), heartbeat);
    assert.equal("load" in decodeHeartbeat(old), false);
    assert.deepEqual(decodeDatagram(encodeHeartbeat(withLoad, true)), { kind: "probe", heartbeat: withLoad });
    // A bad level byte, a cut-off tail, a byte too many: refused like any garbage.
    const tail = bytes.length - 9;
    const badLevel = Buffer.from(bytes);
    badLevel[tail] = 3;
    for (const b of [
      badLevel,
      bytes.subarray(0, bytes.length - 1),
      Buffer.concat([bytes, Buffer.from([0])]),
    ]) {
      assert.throws(() => decodeHeartbeat(b), badRequest);
      assert.throws(() => decodeDatagram(b), badRequest);
    }
  });

  test("load news: round trip for any valid one; garbage refused with MOSAIC_ERR_BAD_REQUEST only", () => {
    const news = fc.record({
      sender: fc.string({ minLength: 1, maxLength: 40 }).filter((s) => Buffer.byteLength(s) <= 253),
      channel: fc.constantFrom("A" as const, "B" as const),
      incarnation: fc.maxSafeNat(),
      load: fc.record({ level: fc.constantFrom<LoadLevel>(...LOAD_LEVELS), sequence: fc.maxSafeNat() }),
    });
    fc.assert(
      fc.property(news, (n: LoadNews) => {
        const bytes = encodeLoadNews(n);
        assert.ok(isLoadNews(bytes));
        assert.deepEqual(decodeDatagram(bytes), { kind: "load", load: { ...n, load: { ...n.load } } });
      }),
    );
    const good = encodeLoadNews({
      sender: "n1",
      channel: "B",
      incarnation: 1,
      load: { level: "Medium", sequence: 2 },
    });
    const badLevel = Buffer.from(good);
    badLevel[6 + 2 + 8] = 9;
    for (const b of [good.subarray(0, good.length - 1), Buffer.concat([good, Buffer.from([1])]), badLevel])
      assert.throws(() => decodeDatagram(b), badRequest);
    assert.throws(
      () =>
        encodeLoadNews({
          sender: "n1",
          channel: "A",
          incarnation: 1,
          load: { level: "Busy" as LoadLevel, sequence: 0 },
        }),
      badRequest,
    );
  });
});

describe("load announcer and board", () => {
  test("a change goes out at once and k more times an interval apart; above Low it is refreshed, Low is not", () => {
    const a = new LoadAnnouncer({ copies: 2, copyIntervalMs: 50, refreshMs: 1_000 });
    assert.equal(a.nextDeadlineMs(), Number.POSITIVE_INFINITY, "Low from the start: nothing to say");
    a.set("Low", 0);
    assert.equal(a.nextDeadlineMs(), Number.POSITIVE_INFINITY);
    a.set("High", 100);
    const sends = (fromMs: number, toMs: number) => {
      const at: number[] = [];
      for (let t = fromMs; t <= toMs; t++) if (a.due(t)) at.push(t);
      return at;
    };
    assert.deepEqual(sends(100, 3_200), [100, 150, 1_150, 2_150, 3_150]);
    assert.deepEqual(a.stamp, { level: "High", sequence: 1 });
    a.set("Low", 3_300);
    assert.deepEqual(sends(3_300, 9_000), [3_300, 3_350]);
    assert.deepEqual(a.stamp, { level: "Low", sequence: 2 });
    assert.equal(a.announced, 2);
  });

  test("the newest (incarnation, sequence) stands; a level not heard within the lease counts as Low", () => {
    const b = new LoadBoard(1_000);
    assert.equal(b.levelOf("n1", 0), "Low", "never heard: Low");
    assert.equal(b.accept("n1", 5, { level: "High", sequence: 3 }, 0), true);
    assert.equal(b.accept("n1", 5, { level: "Low", sequence: 2 }, 10), false, "a late copy changes nothing");
    assert.equal(b.accept("n1", 4, { level: "Low", sequence: 9 }, 10), false, "an older incarnation neither");
    assert.equal(b.levelOf("n1", 10), "High");
    assert.equal(b.accept("n1", 5, { level: "High", sequence: 3 }, 900), false, "a copy renews the lease");
    assert.equal(b.levelOf("n1", 1_899), "High");
    assert.equal(b.levelOf("n1", 1_900), "Low", "lease over");
    assert.deepEqual([...b.loaded(1_000)], [["n1", "High"]]);
    assert.equal(b.accept("n1", 6, { level: "Medium", sequence: 1 }, 2_000), true, "a restart starts afresh");
    assert.equal(b.levelOf("n1", 2_000), "Medium");
    b.forget((id) => id !== "n1");
    assert.equal(b.levelOf("n1", 2_000), "Low");
  });
});

const IDS = ["n0", "n1", "n2", "n3", "n4", "n5"];
const HOP_MS = 1;

/** Six cores; levels set by the test; every datagram delivered after one hop unless dropped. */
class Cluster {
  nowMs = 0;
  readonly cores = new Map<string, MembershipCore>();
  readonly sent: Record<Datagram["kind"], number> = { heartbeat: 0, probe: 0, map: 0, news: 0, load: 0 };
  /** Receivers that hear no load datagram (heartbeats still pass). */
  readonly deafToLoad = new Set<string>();
  #inFlight: { atMs: number; d: Datagram }[] = [];

  constructor() {
    const map: ClusterMap = {
      epoch: 1,
      nodes: IDS.map((id) => ({ id, addresses: [`${id}:1`, `${id}:2`], state: "up" as const })),
    };
    for (const self of IDS) {
      const core = new MembershipCore({ self, incarnation: 1, map, config, nowMs: 0 });
      core.setLoad("Low", 0);
      this.cores.set(self, core);
    }
  }

  run(untilMs: number): void {
    for (; this.nowMs <= untilMs; this.nowMs++) {
      const due = this.#inFlight.filter((p) => p.atMs <= this.nowMs);
      this.#inFlight = this.#inFlight.filter((p) => p.atMs > this.nowMs);
      for (const { d } of due) {
        // A node taken out of the test (its core deleted) is silent and deaf.
        if (!this.cores.has(d.to) || (d.kind === "load" && this.deafToLoad.has(d.to))) continue;
        this.core(d.to).onDatagram(d.bytes, d.channel, this.nowMs);
      }
      for (const core of this.cores.values()) {
        if (core.nextDeadlineMs() > this.nowMs) continue;
        for (const d of core.tick(this.nowMs).datagrams) {
          this.sent[d.kind]++;
          this.#inFlight.push({ atMs: this.nowMs + HOP_MS, d });
        }
      }
    }
  }

  core(id: string): MembershipCore {
    return this.cores.get(id) as MembershipCore;
  }

  /** How every other node sees `peer`'s level now. */
  seen(peer: string): LoadLevel[] {
    return IDS.filter((id) => id !== peer).map((id) => this.core(id).loadOf(peer, this.nowMs));
  }

  /** Runs until every other node sees `peer` at `level`; returns how long that took (at most `limitMs`). */
  until(peer: string, level: LoadLevel, limitMs: number): number {
    const fromMs = this.nowMs;
    while (this.nowMs - fromMs < limitMs && !this.seen(peer).every((l) => l === level)) this.run(this.nowMs);
    return this.nowMs - fromMs;
  }
}

describe("load levels between membership cores", () => {
  test("every node, watcher or not, learns a level within one heartbeat interval; an even cluster sends no load news", () => {
    const c = new Cluster();
    c.run(2_000);
    assert.equal(c.sent.load, 0, "every node Low: no load datagram at all");
    assert.deepEqual(c.seen("n2"), ["Low", "Low", "Low", "Low", "Low"]);
    const watchers = IDS.filter((id) => c.core(id).watched().includes("n2"));
    assert.equal(watchers.length, 2, "only two hear n2's heartbeats");

    for (const level of ["Medium", "High", "Low"] as const) {
      c.core("n2").setLoad(level, c.nowMs);
      const tookMs = c.until("n2", level, 1_000);
      assert.ok(tookMs <= config.heartbeatIntervalMs, `${level} known everywhere after ${tookMs} ms`);
      c.run(c.nowMs + 3_000);
      assert.deepEqual(new Set(c.seen("n2")), new Set([level]), `${level} still known 3 s later`);
    }
    // Two changes above Low and one back: (k+1) copies each to 5 nodes on 2 channels, plus refreshes above Low.
    const perSend = 5 * 2;
    assert.ok(c.sent.load >= 3 * 2 * perSend, `${c.sent.load} load datagrams`);
    assert.ok(c.sent.load <= (3 * 2 + 8) * perSend, `${c.sent.load} load datagrams`);
  });

  test("non-watchers that missed every copy learn from the refresh, and a silent sender's level expires", () => {
    const c = new Cluster();
    c.run(500);
    const nonWatchers = IDS.filter((id) => id !== "n2" && !c.core(id).watched().includes("n2"));
    for (const id of nonWatchers) c.deafToLoad.add(id);
    c.core("n2").setLoad("High", c.nowMs);
    c.run(c.nowMs + 200);
    for (const id of nonWatchers) assert.equal(c.core(id).loadOf("n2", c.nowMs), "Low", `${id} missed it`);
    for (const id of nonWatchers) c.deafToLoad.delete(id);
    const tookMs = c.until("n2", "High", 2_000);
    assert.ok(tookMs <= config.newsRefreshMs, `learnt from the refresh after ${tookMs} ms`);
    // n2 falls silent (a crash): everyone takes it as Low once the lease runs out.
    const silentAt = c.nowMs;
    c.cores.delete("n2");
    const live = IDS.filter((id) => id !== "n2");
    const lease = newsLeaseMs(config);
    while (c.nowMs - silentAt < lease + 100 && live.some((id) => c.core(id).loadOf("n2", c.nowMs) !== "Low"))
      c.run(c.nowMs);
    const expiredMs = c.nowMs - silentAt;
    assert.ok(expiredMs <= lease + HOP_MS, `expired after ${expiredMs} ms (lease ${lease} ms)`);
    assert.ok(expiredMs >= lease - config.newsRefreshMs, `not before the lease: ${expiredMs} ms`);
  });

  test("load news from itself, from a node outside the map or on the wrong channel is refused and counted", () => {
    const c = new Cluster();
    const core = c.core("n0");
    const before = core.rejected;
    const news = (sender: string, channel: "A" | "B") =>
      encodeLoadNews({ sender, channel, incarnation: 1, load: { level: "High", sequence: 1 } });
    core.onDatagram(news("n0", "A"), "A", 0);
    core.onDatagram(news("stranger", "A"), "A", 0);
    core.onDatagram(news("n1", "B"), "A", 0);
    assert.equal(core.rejected, before + 3);
    assert.equal(core.loadOf("n1", 0), "Low");
    assert.equal(core.loadOf("stranger", 0), "Low");
  });
});
