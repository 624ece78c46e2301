// Channel news: its datagram (round trip, bad input refused and nothing
// else), what a watcher lists, when it sends, and how a receiver turns the
// lists of several watchers into a route.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isMosaicError } from "../../src/errors.ts";
import type { ChannelState } from "../../src/membership/channel-detector.ts";
import type { ChannelLook, News, NewsItem } from "../../src/membership/channel-news.ts";
import { encodeNews, NEWS_BYTES_MAX, NEWS_ITEMS_MAX, newsOf } from "../../src/membership/channel-news.ts";
import type { Channel } from "../../src/membership/heartbeat.ts";
import { DATAGRAM_BYTES_MAX, decodeDatagram } from "../../src/membership/map-message.ts";
import { NewsAnnouncer } from "../../src/membership/news-announcer.ts";
import { NewsBoard, newsRoute } from "../../src/membership/news-board.ts";

const badRequest = (e: unknown) => isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST");
const sample: News = {
  sender: "node-1",
  channel: "B",
  incarnation: 1_700_000_000_000,
  sequence: 3,
  items: [
    { peer: "node-0", unusable: "A" },
    { peer: "node-9", unusable: "B" },
  ],
};
const first = sample.items[0] as NewsItem;
const id = fc
  .string({ unit: "grapheme", minLength: 1, maxLength: 60 })
  .filter((s) => Buffer.byteLength(s) <= 253);

describe("channel news datagram", () => {
  test("round trip, small: one short packet", () => {
    const bytes = encodeNews(sample);
    // header 6 + sender 6 + incarnation 8 + sequence 8 + count 1 + two items of 2 + 6 bytes.
    assert.equal(bytes.length, 6 + 6 + 8 + 8 + 1 + 2 * 8);
    assert.deepEqual(decodeDatagram(bytes), { kind: "news", news: sample });
  });

  test("round trip, any valid news, and never more than one Ethernet packet", () => {
    const news = fc.record({
      sender: id,
      channel: fc.constantFrom<Channel>("A", "B"),
      incarnation: fc.maxSafeNat(),
      sequence: fc.maxSafeNat(),
      items: fc.uniqueArray(fc.record({ peer: id, unusable: fc.constantFrom<Channel>("A", "B") }), {
        maxLength: NEWS_ITEMS_MAX,
        selector: (i) => i.peer,
      }),
    });
    fc.assert(
      fc.property(news, (n) => {
        const bytes = encodeNews(n);
        assert.ok(bytes.length <= NEWS_BYTES_MAX);
        assert.deepEqual(decodeDatagram(bytes), {
          kind: "news",
          news: { ...n, items: n.items.map((i) => ({ ...i })) },
        });
      }),
    );
    assert.ok(NEWS_BYTES_MAX <= 1_472 && NEWS_BYTES_MAX <= DATAGRAM_BYTES_MAX, `${NEWS_BYTES_MAX} bytes`);
  });

  test("garbage is refused with MOSAIC_ERR_BAD_REQUEST and nothing else", () => {
    const good = encodeNews(sample);
    const mutate = (at: number, value: number) => {
      const b = Buffer.from(good);
      b[at] = value;
      return b;
    };
    const countAt = 6 + 6 + 16;
    const cases: [string, Buffer][] = [
      ["empty", Buffer.alloc(0)],
      ["short", good.subarray(0, countAt)],
      ["cut in an item", good.subarray(0, good.length - 2)],
      ["long", Buffer.concat([good, Buffer.alloc(NEWS_BYTES_MAX)])],
      ["channel", mutate(4, 2)],
      ["item count", mutate(countAt, 3)],
      ["too many items", mutate(countAt, NEWS_ITEMS_MAX + 1)],
      ["item channel", mutate(countAt + 1, 2)],
      ["empty item id", mutate(countAt + 2, 0)],
      ["sequence above 2^53", Buffer.from(good).fill(0xff, 20, 28)],
      ["trailing byte", Buffer.concat([good, Buffer.from([0])])],
      ["one peer twice", encodeNewsUnchecked({ ...sample, items: [first, first] })],
      [
        "invalid UTF-8 id",
        Buffer.concat([good.subarray(0, countAt + 2), Buffer.from([6, 0xc3, 0x28, 0x41, 0x41, 0x41, 0x41])]),
      ],
    ];
    for (const [what, bytes] of cases) assert.throws(() => decodeDatagram(bytes), badRequest, what);
  });

  test("random bytes after a news header never throw anything but MOSAIC_ERR_BAD_REQUEST", () => {
    const header = Buffer.from([0x4d, 0x48, 2, 3, 0, 1, 0x6e]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (tail) => {
        try {
          decodeDatagram(Buffer.concat([header, Buffer.from(tail)]));
        } catch (e) {
          assert.ok(badRequest(e), String(e));
        }
      }),
    );
  });

  test("encode refuses what could not be decoded", () => {
    assert.throws(() => encodeNews({ ...sample, sender: "" }), badRequest);
    assert.throws(() => encodeNews({ ...sample, sequence: -1 }), badRequest);
    assert.throws(() => encodeNews({ ...sample, incarnation: 2 ** 53 }), badRequest);
    assert.throws(() => encodeNews({ ...sample, channel: "C" as Channel }), badRequest);
    assert.throws(
      () => encodeNews({ ...sample, items: [{ peer: "x", unusable: "C" as Channel }] }),
      badRequest,
    );
    assert.throws(() => encodeNews({ ...sample, items: [first, first] }), badRequest);
    const five = Array.from({ length: NEWS_ITEMS_MAX + 1 }, (_, i) => ({
      peer: `n${i}`,
      unusable: "A" as const,
    }));
    assert.throws(() => encodeNews({ ...sample, items: five }), badRequest);
  });
});

/** The bytes of news the encoder would refuse (to test the decoder's own checks). */
function encodeNewsUnchecked(n: News): Buffer {
  const once = encodeNews({ ...n, items: n.items.slice(0, 1) });
  const countAt = 6 + 1 + Buffer.byteLength(n.sender) + 16;
  const item = once.subarray(countAt + 1);
  const head = Buffer.from(once.subarray(0, countAt + 1));
  head[countAt] = n.items.length;
  return Buffer.concat([head, ...n.items.map(() => item)]);
}

describe("what a watcher lists", () => {
  const STEADY_MS = 150;
  const looks = (table: Record<string, [ChannelState, number, ChannelState, number]>) => {
    return (peer: string, channel: Channel): ChannelLook | undefined => {
      const row = table[peer];
      if (row === undefined) return undefined;
      return channel === "A" ? { state: row[0], sinceMs: row[1] } : { state: row[2], sinceMs: row[3] };
    };
  };

  test("one channel down or returning while the other is steadily up: listed; healthy, or both gone: not", () => {
    const look = looks({
      a: ["down", 900, "up", 0],
      b: ["up", 0, "returning", 800],
      healthy: ["up", 0, "suspect", 900],
      crashed: ["down", 900, "down", 910],
      back: ["returning", 900, "returning", 905],
    });
    const { items, recheckMs } = newsOf(["healthy", "b", "a", "crashed", "back"], look, [], 1_000, STEADY_MS);
    assert.deepEqual(items, [
      { peer: "a", unusable: "A" },
      { peer: "b", unusable: "B" },
    ]);
    assert.equal(recheckMs, Number.POSITIVE_INFINITY);
  });

  test("a crash is not news: the first channel to go down finds the other already suspect", () => {
    const look = looks({ p: ["down", 1_000, "suspect", 930] });
    assert.deepEqual(newsOf(["p"], look, [], 1_000, STEADY_MS).items, []);
  });

  test("a return is not news: the first channel trusted again finds the other only just up", () => {
    const look = looks({ p: ["up", 1_990, "returning", 1_000] });
    const { items, recheckMs } = newsOf(["p"], look, [], 2_000, STEADY_MS);
    assert.deepEqual(items, []);
    // Should the other stay out for longer than a heartbeat jitter, it is news after all.
    assert.equal(recheckMs, 1_990 + STEADY_MS);
    assert.deepEqual(newsOf(["p"], look, [], recheckMs, STEADY_MS).items, [{ peer: "p", unusable: "B" }]);
  });

  test("a listed peer stays listed through a blip on its good channel", () => {
    const listed: NewsItem[] = [{ peer: "p", unusable: "A" }];
    for (const [state, sinceMs] of [
      ["suspect", 1_990],
      ["up", 1_995],
    ] as const)
      assert.deepEqual(
        newsOf(["p"], looks({ p: ["down", 0, state, sinceMs] }), listed, 2_000, STEADY_MS).items,
        listed,
      );
  });

  test(`at most ${NEWS_ITEMS_MAX} peers, in peer order`, () => {
    const table = Object.fromEntries(
      Array.from({ length: 6 }, (_, i) => [
        `p${5 - i}`,
        ["down", 900, "up", 0] as [ChannelState, number, ChannelState, number],
      ]),
    );
    const { items } = newsOf(Object.keys(table), looks(table), [], 1_000, STEADY_MS);
    assert.deepEqual(
      items.map((i) => i.peer),
      ["p0", "p1", "p2", "p3"].slice(0, NEWS_ITEMS_MAX),
    );
  });
});

describe("when a watcher sends", () => {
  const schedule = { copies: 2, copyIntervalMs: 50, refreshMs: 1_000 };
  /** The send times of `announcer` over [fromMs, toMs], ticking every 10 ms. */
  const sends = (announcer: NewsAnnouncer, fromMs: number, toMs: number) => {
    const at: [number, number, number][] = [];
    for (let t = fromMs; t <= toMs; t += 10) {
      const news = announcer.due(t);
      if (news !== undefined) at.push([t, news("A").sequence, news("B").items.length]);
    }
    return at;
  };

  test("nothing while every watched peer is healthy", () => {
    const announcer = new NewsAnnouncer("w", 1, schedule);
    announcer.set([], 0);
    assert.deepEqual(sends(announcer, 0, 5_000), []);
    assert.equal(announcer.nextDeadlineMs(), Number.POSITIVE_INFINITY);
  });

  test("a new list: k+1 copies one interval apart, refreshes while not empty, k+1 copies of the empty list, then silence", () => {
    const announcer = new NewsAnnouncer("w", 1, schedule);
    announcer.set([{ peer: "p", unusable: "A" }], 1_000);
    assert.equal(announcer.nextDeadlineMs(), 1_000);
    assert.deepEqual(sends(announcer, 1_000, 3_500), [
      [1_000, 1, 1],
      [1_050, 1, 1],
      [2_050, 1, 1],
      [3_050, 1, 1],
    ]);
    announcer.set([{ peer: "p", unusable: "A" }], 3_500);
    assert.equal(announcer.nextDeadlineMs(), 4_050, "the same list again is not news");
    announcer.set([], 3_600);
    assert.deepEqual(sends(announcer, 3_600, 9_000), [
      [3_600, 2, 0],
      [3_650, 2, 0],
    ]);
  });

  test("after a stall, one copy and on from now: never a burst", () => {
    const announcer = new NewsAnnouncer("w", 1, schedule);
    announcer.set([{ peer: "p", unusable: "B" }], 0);
    assert.ok(announcer.due(0) !== undefined);
    assert.ok(announcer.due(700) !== undefined);
    assert.equal(announcer.due(710), undefined);
    assert.equal(announcer.nextDeadlineMs(), 1_700);
  });
});

describe("what a receiver makes of it", () => {
  const LEASE_MS = 2_150;
  const news = (sender: string, sequence: number, items: NewsItem[], incarnation = 1): News => ({
    sender,
    channel: "A",
    incarnation,
    sequence,
    items,
  });
  const lostA = (peer: string): NewsItem => ({ peer, unusable: "A" });
  const lostB = (peer: string): NewsItem => ({ peer, unusable: "B" });
  const route = (board: NewsBoard, peer: string, self = "me") =>
    newsRoute(board.unusable(peer), board.unusable(self));

  test("the route is the one channel left; nothing known or both ruled out: undefined", () => {
    const none = new Set<Channel>();
    const a = new Set<Channel>(["A"]);
    const b = new Set<Channel>(["B"]);
    const both = new Set<Channel>(["A", "B"]);
    assert.equal(newsRoute(none, none), undefined);
    assert.equal(newsRoute(a, none), "B");
    assert.equal(newsRoute(b, none), "A");
    assert.equal(newsRoute(both, none), undefined);
    // This node's own NIC counts for every route.
    assert.equal(newsRoute(none, a), "B");
    assert.equal(newsRoute(a, a), "B");
    assert.equal(newsRoute(b, a), undefined);
  });

  test("each sender's newest list stands; late, duplicate and older lists change nothing", () => {
    const board = new NewsBoard(LEASE_MS);
    assert.deepEqual(board.accept(news("w1", 2, [lostA("p")]), 0), ["p"]);
    assert.equal(route(board, "p"), "B");
    assert.deepEqual(board.accept(news("w1", 1, []), 10), [], "an older list");
    assert.deepEqual(board.accept(news("w1", 2, [lostA("p")]), 20), [], "a copy");
    assert.equal(route(board, "p"), "B");
    assert.deepEqual(board.accept(news("w1", 3, []), 30), ["p"], "taken back");
    assert.equal(route(board, "p"), undefined);
    assert.deepEqual(board.accept(news("w1", 2, [lostA("p")]), 40), [], "a late copy cannot bring it back");
    assert.equal(route(board, "p"), undefined);
    // A restarted sender starts its sequence again: its incarnation is higher.
    board.accept(news("w1", 1, [lostB("p")], 2), 50);
    assert.equal(route(board, "p"), "A");
  });

  test("disagreeing watchers: the standby until every one that ruled the channel out takes it back", () => {
    const board = new NewsBoard(LEASE_MS);
    board.accept(news("w1", 1, [lostA("p")]), 0);
    board.accept(news("w2", 1, [lostA("p"), lostA("q")]), 0);
    board.accept(news("w1", 2, []), 100);
    assert.equal(route(board, "p"), "B", "w2 still rules A out");
    assert.deepEqual(board.accept(news("w2", 2, []), 200).sort(), ["p", "q"]);
    assert.equal(route(board, "p"), undefined);
    // One says A is unusable, another says B: neither can be trusted, connectivity decides.
    board.accept(news("w1", 3, [lostA("p")]), 300);
    board.accept(news("w2", 3, [lostB("p")]), 300);
    assert.equal(route(board, "p"), undefined);
  });

  test("news about this node itself rules its dead channel out for every peer", () => {
    const board = new NewsBoard(LEASE_MS);
    board.accept(news("w1", 1, [lostA("me")]), 0);
    assert.equal(route(board, "p"), "B");
    assert.equal(route(board, "q"), "B");
  });

  test("a list not renewed for a lease expires; a copy or refresh renews it", () => {
    const board = new NewsBoard(LEASE_MS);
    board.accept(news("w1", 1, [lostA("p")]), 0);
    assert.equal(board.nextDeadlineMs(), LEASE_MS);
    board.accept(news("w1", 1, [lostA("p")]), 1_000);
    assert.equal(board.nextDeadlineMs(), 1_000 + LEASE_MS);
    assert.deepEqual(board.expire(1_000 + LEASE_MS - 1), []);
    assert.deepEqual(board.expire(1_000 + LEASE_MS), ["p"]);
    assert.equal(route(board, "p"), undefined);
    assert.equal(board.nextDeadlineMs(), Number.POSITIVE_INFINITY);
    // A receiver that lost it (expired, or restarted) takes the sender's next refresh.
    board.accept(news("w1", 1, [lostA("p")]), 4_000);
    assert.equal(route(board, "p"), "B");
  });

  test("senders gone from the map are forgotten", () => {
    const board = new NewsBoard(LEASE_MS);
    board.accept(news("w1", 1, [lostA("p")]), 0);
    board.accept(news("w2", 1, [lostB("q")]), 0);
    assert.deepEqual(
      board.forget((s) => s !== "w1"),
      ["p"],
    );
    assert.deepEqual(board.senders(), ["w2"]);
    assert.equal(route(board, "p"), undefined);
    assert.equal(route(board, "q"), "A");
  });
});
