// The agreement rules one at a time, on the pure core with a hand-made
// clock and hand-made heartbeats and maps (the simulator checks them all
// together under faults).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ClusterMap, NodeState } from "../../src/core/cluster-map.ts";
import { mapDigest } from "../../src/core/cluster-map.ts";
import type { MapEvent } from "../../src/membership/agreement.ts";
import { Agreement } from "../../src/membership/agreement.ts";
import { defaultAgreementConfig, defaultDetectorConfig } from "../../src/membership/config.ts";
import type { Heartbeat, Suspicion } from "../../src/membership/heartbeat.ts";
import type { MapMessage } from "../../src/membership/map-message.ts";
import { changesFrom, decodeDatagram } from "../../src/membership/map-message.ts";
import type { PeerState } from "../../src/membership/peer-health.ts";
import { predecessors, ringOrder } from "../../src/membership/ring.ts";

const detector = defaultDetectorConfig(1);
const GRACE_MS = 1_000;

function clusterMap(ids: string[], epoch = 1, states: Record<string, NodeState> = {}): ClusterMap {
  return {
    epoch,
    nodes: ids.map((id) => ({ id, addresses: [`${id}:1`, `${id}:2`], state: states[id] ?? "up" })),
  };
}

/** One node's agreement, with its detector view set by hand. */
class Node {
  readonly self: string;
  readonly a: Agreement;
  readonly view = new Map<string, PeerState>();
  #sequence = 0;

  constructor(self: string, map: ClusterMap) {
    this.self = self;
    this.a = new Agreement({
      self,
      map,
      toleratedLosses: detector.toleratedLosses,
      voiceTtlMs: detector.suspectAfterMs,
      staleMs: detector.nodeDownAfterMs,
      config: defaultAgreementConfig(GRACE_MS),
      nowMs: 0,
    });
  }

  watched(): string[] {
    const ring = ringOrder(this.a.map.nodes.filter((n) => n.state !== "out").map((n) => n.id));
    return predecessors(ring, this.self, detector.toleratedLosses);
  }

  tick(nowMs: number) {
    return this.a.tick(nowMs, (p) => this.view.get(p) ?? "up", this.watched());
  }

  /** A heartbeat from this node, carrying its map and the suspicions given. */
  heartbeat(suspects: Suspicion[] = []): Heartbeat {
    return {
      sender: this.self,
      channel: "A",
      incarnation: 1,
      sequence: ++this.#sequence,
      epoch: this.a.map.epoch,
      baseEpoch: this.a.baseEpoch,
      digest: this.a.digest,
      suspects,
    };
  }
}

const stateOf = (map: ClusterMap, id: string) => map.nodes.find((n) => n.id === id)?.state;
const down = (peer: string): Suspicion => ({ peer, fresh: true });

/** The map datagram a node on `base` sends for `map`, made by `proposer`. */
function mapMessage(map: ClusterMap, proposer: string, base: ClusterMap, sender = "x"): MapMessage {
  return {
    sender,
    channel: "A",
    epoch: map.epoch,
    digest: mapDigest(map),
    proposer,
    baseEpoch: base.epoch,
    baseDigest: mapDigest(base),
    entries: changesFrom(base, map),
  };
}

describe("membership agreement", () => {
  const ids = ["a", "b", "c", "d", "e"];
  // Ring a b c d e, k = 1: c is watched by d and e; e hears d's heartbeats.

  test("one watcher's suspicion never changes the map; two do, at the next epoch, sent to every member", () => {
    const base = clusterMap(ids);
    const e = new Node("e", base);
    const d = new Node("d", base);
    e.view.set("c", "down");
    assert.equal(e.tick(1_000).event, undefined, "e alone");
    e.a.onHeartbeat(d.heartbeat([]), 1_010);
    assert.equal(e.tick(1_010).event, undefined, "d hears c");
    e.a.onHeartbeat(d.heartbeat([down("c")]), 1_020);
    const { event, datagrams } = e.tick(1_020);
    assert.equal(event?.how, "proposed");
    assert.equal(event?.map.epoch, 2);
    assert.equal(stateOf(e.a.map, "c"), "down");
    assert.deepEqual(event?.changed, [{ id: "c", from: "up", to: "down" }]);
    // To a, b, c, d on both channels: c too, in case it is alive and can learn it.
    assert.equal(datagrams.length, 8);
    assert.ok(datagrams.every((x) => x.kind === "map" && decodeDatagram(x.bytes).kind === "map"));
  });

  test("a suspicion from a watcher holding another map does not count; an expired one neither", () => {
    const base = clusterMap(ids);
    const e = new Node("e", base);
    const d = new Node("d", clusterMap(ids, 7));
    e.view.set("c", "down");
    e.a.onHeartbeat(d.heartbeat([down("c")]), 1_000);
    assert.equal(e.tick(1_000).event, undefined, "other map");
    const d1 = new Node("d", base);
    e.a.onHeartbeat(d1.heartbeat([down("c")]), 1_000);
    assert.equal(e.tick(1_000 + detector.suspectAfterMs + 1).event, undefined, "expired");
  });

  test("small clusters: 3 nodes need both watchers; with one node down, the two left never mark each other", () => {
    const three = ["a", "b", "c"];
    const c = new Node("c", clusterMap(three));
    const a = new Node("a", clusterMap(three));
    c.view.set("b", "down");
    assert.equal(c.tick(1_000).event, undefined);
    c.a.onHeartbeat(a.heartbeat([down("b")]), 1_000);
    assert.equal(stateOf((c.tick(1_000).event as MapEvent).map, "b"), "down");
    // Now a and c: c's only other watcher (b) is down, but marking a would leave 1 of 3 up.
    c.view.set("a", "down");
    assert.equal(c.tick(2_000).event, undefined, "a minority never changes the map");
    // Two nodes: nobody to confirm, and one of two is no majority.
    const two = new Node("x", clusterMap(["x", "y"]));
    two.view.set("y", "down");
    assert.equal(two.tick(1_000).event, undefined);
  });

  test("a node already down does not vote: its watchee is confirmed by the one watcher left", () => {
    // c's watchers are d and e; d is down in the map, so e alone confirms c (4 of 5 stay up... then 3).
    const e = new Node("e", clusterMap(ids, 3, { d: "down" }));
    e.view.set("c", "down");
    const event = e.tick(1_000).event;
    assert.equal(stateOf((event as MapEvent).map, "c"), "down");
  });

  test("a node heard again before the grace is up at once; one not heard is out after it", () => {
    // e starts from a map in which c is down (since now, 0), and then hears c.
    const e = new Node("e", clusterMap(ids, 2, { c: "down" }));
    const c = new Node("c", clusterMap(ids, 2, { c: "down" }));
    e.a.onHeartbeat(c.heartbeat(), 400);
    const up = e.tick(400).event as MapEvent;
    assert.deepEqual(up.changed, [{ id: "c", from: "down", to: "up" }]);

    // Once more, and this time c stays silent: out after the grace, not before.
    const base = clusterMap(ids);
    const f = new Node("e", base);
    f.view.set("c", "down");
    f.a.onHeartbeat(new Node("d", base).heartbeat([down("c")]), 0);
    assert.equal(stateOf((f.tick(0).event as MapEvent).map, "c"), "down");
    const d = new Node("d", f.a.map);
    for (let t = 100; t < GRACE_MS; t += 100) {
      f.a.onHeartbeat(d.heartbeat([down("c")]), t);
      assert.equal(f.tick(t).event, undefined, `not out at ${t}`);
    }
    assert.equal(f.a.nextDeadlineMs(), GRACE_MS, "a driver wakes when the grace ends");
    f.a.onHeartbeat(d.heartbeat([down("c")]), GRACE_MS);
    const out = f.tick(GRACE_MS).event as MapEvent;
    assert.deepEqual(out.changed, [{ id: "c", from: "down", to: "out" }]);
    assert.equal(out.map.nodes.find((n) => n.id === "c")?.outEpoch, out.map.epoch);
  });

  test("silence older than the map's last 'up' is stale: it confirms but cannot decide, so no flapping", () => {
    const base = clusterMap(ids);
    const e = new Node("e", base);
    e.view.set("c", "down");
    // d marked c down at 2; then a, which still hears c, marked it up at 3. d and e still cannot hear it.
    e.a.onMap(mapMessage(clusterMap(ids, 2, { c: "down" }), "d", base), 0);
    e.a.onMap(mapMessage(clusterMap(ids, 3), "a", base), 10);
    assert.equal(e.a.map.epoch, 3);
    assert.equal(e.a.fresh("c"), false);
    const d = new Node("d", e.a.map);
    e.a.onHeartbeat(d.heartbeat([{ peer: "c", fresh: false }]), 20);
    assert.equal(e.tick(20).event, undefined, "both suspicions stale");
    // A new silence (e's detector saw c come back and go again) is fresh evidence.
    e.a.onHealth([{ kind: "peer", peer: "c", from: "up", to: "down", atMs: 30 }]);
    e.a.onHeartbeat(d.heartbeat([{ peer: "c", fresh: false }]), 30);
    assert.equal(stateOf((e.tick(30).event as MapEvent).map, "c"), "down");
  });

  test("stale silence lapses after a node-down period, twice as long at each repeat: an 'up' that was no news ends", () => {
    const STALE_MS = detector.nodeDownAfterMs;
    const base = clusterMap(ids);
    const e = new Node("e", base);
    e.view.set("c", "down");
    // e's map had c down; a map that never had it down (the winner of a race) shows it up. Nobody hears c.
    e.a.onMap(mapMessage(clusterMap(ids, 2, { c: "down" }), "d", base), 0);
    e.a.onMap(mapMessage(clusterMap(ids, 3), "a", base), 100);
    // d, the other watcher, holds e's map throughout and cannot hear c either.
    const d = new Node("d", base);
    const voice = (t: number) =>
      e.a.onHeartbeat(
        { ...d.heartbeat([{ peer: "c", fresh: false }]), epoch: e.a.map.epoch, digest: e.a.digest },
        t,
      );
    voice(100 + STALE_MS - 10);
    assert.equal(e.tick(100 + STALE_MS - 10).event, undefined, "still stale");
    assert.equal(e.a.nextDeadlineMs(), 100 + STALE_MS, "a driver wakes when the mark lapses");
    voice(100 + STALE_MS);
    const downAgain = e.tick(100 + STALE_MS).event as MapEvent;
    assert.equal(e.a.fresh("c"), true);
    assert.equal(stateOf(downAgain.map, "c"), "down", "a node-down period of silence since the 'up' decides");

    // Up again (someone hears c, the watchers still do not): stale twice as long this time.
    const upAt = 2_000;
    e.a.onMap(mapMessage(clusterMap(ids, downAgain.map.epoch + 1), "a", base), upAt);
    assert.equal(e.a.fresh("c"), false);
    voice(upAt + 2 * STALE_MS - 10);
    assert.equal(e.tick(upAt + 2 * STALE_MS - 10).event, undefined, "the second mark lasts two periods");
    voice(upAt + 2 * STALE_MS);
    assert.equal(stateOf((e.tick(upAt + 2 * STALE_MS).event as MapEvent).map, "c"), "down");

    // Once e's detector moves (it heard c, or lost it afresh), the count starts over.
    e.a.onHealth([{ kind: "peer", peer: "c", from: "down", to: "up", atMs: 4_000 }]);
    e.a.onMap(mapMessage(clusterMap(ids, e.a.map.epoch + 1), "a", base), 4_000);
    assert.equal(e.a.nextDeadlineMs(), Number.NEGATIVE_INFINITY, "a new map is work now");
    e.tick(4_000);
    assert.equal(e.a.nextDeadlineMs(), 4_000 + STALE_MS);
  });

  test("two proposals at one epoch: the higher proposer's content wins, one epoch up, everywhere", () => {
    const base = clusterMap(ids);
    const a = new Node("a", base);
    const fromD = mapMessage(clusterMap(ids, 2, { c: "down" }), "d", base, "d");
    const fromE = mapMessage(clusterMap(ids, 2, { b: "down" }), "e", base, "e");
    assert.equal(a.a.onMap(fromD, 0)?.how, "adopted");
    const derived = a.a.onMap(fromE, 1) as MapEvent;
    assert.equal(derived.how, "derived");
    assert.equal(derived.map.epoch, 3);
    assert.equal(stateOf(derived.map, "b"), "down");
    assert.equal(stateOf(derived.map, "c"), "up");
    // The other order ends the same: the agents agree on epoch and content.
    const b = new Node("b", base);
    b.a.onMap(fromE, 0);
    assert.equal(b.a.onMap(fromD, 1), undefined, "the lower proposer loses");
    assert.equal(b.tick(1).datagrams.length, 1, "and is told");
    b.a.onMap({ ...fromE, epoch: 3, digest: derived.digest }, 2);
    assert.equal(b.a.digest, a.a.digest);
  });

  test("a heartbeat from another map brings that peer ours (once per push interval); other bases get the base too", () => {
    const base = clusterMap(ids);
    const e = new Node("e", clusterMap(ids, 4));
    const d = new Node("d", base);
    e.a.onHeartbeat(d.heartbeat(), 0);
    e.a.onHeartbeat(d.heartbeat(), 10);
    const sent = e.tick(10).datagrams;
    assert.equal(sent.length, 1, "rate-limited");
    const m = decodeDatagram(sent[0]?.bytes as Buffer);
    assert.ok(m.kind === "map" && m.map.base !== undefined, "d is on another base: the base goes along");
    assert.equal(d.a.onMap(m.map, 20)?.how, "adopted");
    assert.equal(d.a.map.epoch, 4);
    assert.equal(d.a.baseEpoch, 4);
    // A map that does not match its digest is refused and counted.
    const bad = { ...m.map, epoch: 5, entries: [{ id: "a", state: "down" as const, outEpoch: 0 }] };
    assert.equal(d.a.onMap(bad, 30), undefined);
    assert.equal(d.a.stats.refused, 1);
  });

  test("an operator map wins by a higher epoch; a lower one is ignored", () => {
    const n = new Node("a", clusterMap(ids, 5));
    assert.equal(n.a.adoptOutside(clusterMap(ids, 4), 0), undefined);
    assert.equal(n.a.adoptOutside(clusterMap(ids, 5), 0), undefined, "the same map");
    const event = n.a.adoptOutside(clusterMap(ids, 9, { b: "out" }), 0) as MapEvent;
    assert.equal(event.how, "outside");
    assert.equal(n.a.baseEpoch, 9);
  });
});
