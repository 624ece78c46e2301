// Calls in flight on a channel that dies move to the other channel, over real
// agents and real sockets. Node-0's channel A is reached through a proxy the
// test freezes (every byte dropped, no reset: a dead NIC as its peers see
// it), and the test plays the heartbeats: it tells PeerClients the channel
// is lost, as the agent does on a heartbeat "down" event. Pieces, unary calls
// and a forwarded put must complete on channel B with every byte intact,
// nothing left registered; a forward nobody resumes must leave nothing.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { crc32c } from "@node-rs/crc32";
import { pino } from "pino";
import { Agent } from "../../src/agent.ts";
import { AgentClient } from "../../src/client/agent-client.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import { fileIdOf } from "../../src/core/names.ts";
import type { VolumeSpec } from "../../src/core/volume.ts";
import { isMosaicError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import type { ChannelState } from "../../src/membership/channel-detector.ts";
import { PeerClients } from "../../src/rpc/peer-client.ts";
import { channelOptions, encodeJson, PEER_SERVICE } from "../../src/rpc/wire.ts";
import { gather, MiB, patternBytes } from "../helpers/in-process-cluster.ts";
import { FreezableProxy } from "./freezable-proxy.ts";

const VOLUME: VolumeSpec = {
  name: "big",
  chunkSizeBytes: 16 * MiB,
  redundancy: { erasure: { data: 2, parity: 1 } },
  capacityBytes: 2 ** 40,
};
const GRACE_MS = 1_500;
const OWNER = "node-0";

type LogLine = Record<string, unknown> & { msg: string };

/** The heartbeats, as the test plays them: channel states of node-0 as seen by the sender. */
class FakeHeartbeats {
  states: [ChannelState, ChannelState] = ["up", "up"];
  channelFor = (): 0 | 1 => (this.states[0] === "down" ? 1 : 0);
  channelState = (_node: string, channel: 0 | 1): ChannelState => this.states[channel];
}

describe("PeerClients: calls in flight on a channel that dies move to the other one", {
  timeout: 120_000,
}, () => {
  let root: string;
  let agents: Agent[] = [];
  let map: ClusterMap;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-peer-failover-"));
    for (let i = 0; i < 3; i++) {
      agents.push(
        await Agent.start({
          nodeId: `node-${i}`,
          listen: ["127.0.0.1:0", "127.0.0.2:0"],
          dataDir: join(root, `node-${i}`),
          capacityBytes: 2 ** 40,
          scrubRateBytesPerSecond: 0,
          rebuildRateBytesPerSecond: 0,
          forwardResumeGraceMs: GRACE_MS,
          map: { epoch: 0, nodes: [] },
          volumes: [VOLUME],
          log: silentLogger(),
        }),
      );
    }
    map = { epoch: 1, nodes: agents.map((a) => ({ id: a.nodeId, addresses: a.addresses, state: "up" })) };
    for (const agent of agents) agent.update(map);
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.stop(200)));
    agents = [];
    await rm(root, { recursive: true, force: true });
  });

  const senders: { close: () => Promise<void> }[] = [];
  afterEach(async () => {
    for (const s of senders.splice(0)) await s.close();
  });

  /** A sender whose map reaches node-0's channel A through a fresh proxy; its log lines are kept. Closed after each test. */
  async function sender() {
    const proxy = await FreezableProxy.start((agents[0] as Agent).addresses[0]);
    const senderMap: ClusterMap = {
      epoch: map.epoch,
      nodes: map.nodes.map((n) =>
        n.id === OWNER ? { ...n, addresses: [proxy.address, n.addresses[1]] as [string, string] } : n,
      ),
    };
    const lines: LogLine[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const heartbeats = new FakeHeartbeats();
    const peers = new PeerClients({
      map: () => senderMap,
      log,
      channelFor: heartbeats.channelFor,
      channelState: heartbeats.channelState,
    });
    // Channel A connected before it dies, as it is when a NIC fails under traffic.
    await peers.usage(OWNER);
    // As the agent does on every health event naming the peer: a channel now down is lost, once.
    const lose = () => {
      heartbeats.states[0] = "down";
      peers.healthChanged(OWNER);
      peers.healthChanged(OWNER);
    };
    const close = async () => {
      peers.close();
      await proxy.close();
    };
    senders.push({ close });
    return { proxy, peers, lines, heartbeats, lose, close };
  }

  /** Settles `promise` into a tagged outcome, and reports whether it is still pending after `ms`. */
  async function pendingAfter<T>(promise: Promise<T>, ms: number): Promise<boolean> {
    let settled = false;
    promise.then(
      () => (settled = true),
      () => (settled = true),
    );
    await sleep(ms);
    return !settled;
  }

  const keyOf = (stripe: number) => ({
    volume: VOLUME.name,
    fileId: "ab".repeat(16),
    version: 7,
    stripe,
    slot: 0,
  });

  test("getPiece, putPiece and a unary call hung on a dead channel A complete on B once it is lost", async () => {
    const s = await sender();
    const data = [await gather(patternBytes(12 * MiB, 3))];
    const header = (key: ReturnType<typeof keyOf>) => ({
      key,
      dataLengthBytes: data[0]?.length as number,
      crc32c: crc32c(data[0] as Buffer),
    });
    await s.peers.putPiece(OWNER, header(keyOf(0)), data); // stored over A, before the fault

    s.proxy.freeze();
    const started = performance.now();
    const get = s.peers.getPiece(OWNER, keyOf(0));
    const put = s.peers.putPiece(OWNER, header(keyOf(1)), data);
    const stat = s.peers.statPiece(OWNER, keyOf(0));
    assert.ok(await pendingAfter(Promise.all([get, put, stat]), 400), "the calls hang on the dead channel");
    assert.equal(s.peers.callsInFlight, 3);
    const lostAt = performance.now();
    s.lose();
    const [got, stored, stated] = await Promise.all([get, put, stat]);
    const movedMs = Math.round(performance.now() - lostAt);

    assert.ok(Buffer.concat(got.data).equals(data[0] as Buffer), "getPiece: every byte, via B");
    assert.equal(stored.dataLengthBytes, data[0]?.length);
    assert.equal(stated?.crc32c, crc32c(data[0] as Buffer));
    assert.equal((await s.peers.statPiece(OWNER, keyOf(1)))?.crc32c, crc32c(data[0] as Buffer));
    assert.ok(movedMs < 3_000, `done ${movedMs} ms after the loss`);
    assert.equal(s.peers.callsInFlight, 0, "no call left registered");
    const lost = s.lines.filter(
      (l) => l.msg === "channel lost: its calls in flight move to the other channel",
    );
    assert.equal(lost.length, 1, "one loss, however many events announce it");
    assert.equal(lost[0]?.callsMoved, 3, JSON.stringify(lost));
    const retried = s.lines.filter((l) => l.msg === "retrying on the other channel");
    assert.equal(retried.length, 3);
    for (const l of retried) assert.deepEqual([l.from, l.to], ["A", "B"]);
    console.log(`calls hung ${Math.round(lostAt - started)} ms on A; done on B ${movedMs} ms after the loss`);
  });

  test("a new call after the loss goes straight to B", async () => {
    const s = await sender();
    s.proxy.freeze();
    s.lose();
    const started = performance.now();
    assert.ok((await s.peers.usage(OWNER)).capacityBytes > 0);
    assert.ok(performance.now() - started < 1_000);
  });

  test("both channels down (a node failure, or a peer too busy to send heartbeats): calls are left alone", async () => {
    const s = await sender();
    s.proxy.freeze();
    const call = s.peers.statPiece(OWNER, keyOf(0));
    assert.ok(await pendingAfter(call, 300));
    s.heartbeats.states = ["down", "down"];
    s.peers.healthChanged(OWNER);
    assert.ok(await pendingAfter(call, 300), "not cut: a slow peer may still answer");
    assert.equal(s.peers.callsInFlight, 1);
    // B is heard again, A is not: now it is a NIC failure, and the call moves.
    s.heartbeats.states = ["down", "up"];
    s.peers.healthChanged(OWNER);
    await call;
    assert.equal(s.peers.callsInFlight, 0);
    const lost = s.lines.filter(
      (l) => l.msg === "channel lost: its calls in flight move to the other channel",
    );
    assert.deepEqual(
      lost.map((l) => [l.channel, l.callsMoved]),
      [["A", 1]],
    );
  });

  test("a forwarded put in flight when the owner's channel A dies: acknowledged, whole, resumed mid-stream", async () => {
    const s = await sender();
    const size = 64 * MiB + 12_345;
    const name = "failover/forwarded.bin";
    let produced = 0;
    let lostAt = 0;
    async function* input(): AsyncGenerator<Buffer> {
      for await (const part of patternBytes(size, 11, MiB)) {
        produced += part.length;
        // Past the sender's 32 MiB window: the owner has acknowledged at least 8 MiB by now.
        if (produced >= 40 * MiB && !s.proxy.frozen) {
          s.proxy.freeze();
          // The heartbeats notice a few hundred ms later.
          setTimeout(() => {
            lostAt = performance.now();
            s.lose();
          }, 300);
        }
        yield part;
      }
    }
    const reply = await s.peers.forwardRequest(
      OWNER,
      { op: "put", volume: VOLUME.name, name, sizeBytes: size },
      input(),
    );
    const doneMs = Math.round(performance.now() - lostAt);
    const { manifest } = JSON.parse(reply.header.toString()) as { manifest: { sizeBytes: number } };
    assert.equal(manifest.sizeBytes, size);
    const moved = s.lines.find((l) => l.msg === "forward moved to the other channel");
    assert.ok(moved, "the forward moved");
    assert.deepEqual([moved.from, moved.to], ["A", "B"]);
    const resumed = s.lines.find((l) => l.msg === "forward resumed");
    assert.ok(
      (resumed?.resumedAtByte as number) > 0,
      `resumed where the owner got to: ${JSON.stringify(resumed)}`,
    );
    assert.ok(
      (moved.readBytes as number) - (moved.ackedBytes as number) <= 32 * MiB,
      "the sender held at most its window",
    );
    assert.equal(s.peers.callsInFlight, 0);
    const client = new AgentClient((agents[1] as Agent).addresses[0]);
    try {
      const { body } = await client.get(VOLUME.name, name);
      const read = await gather(body);
      assert.ok(read.equals(await gather(patternBytes(size, 11, MiB))), "read back whole");
    } finally {
      client.close();
    }
    console.log(
      `forward resumed on B at byte ${resumed?.resumedAtByte} (${moved.readBytes} read, ${moved.ackedBytes} acknowledged); ` +
        `acknowledged ${doneMs} ms after the loss`,
    );
  });

  test("a forward nobody resumes is dropped after the grace: no manifest, no pieces, its file writable again; a sender holding the whole input starts it again", async () => {
    const name = "failover/abandoned.bin";
    const session = randomUUID();
    const request = { op: "put", volume: VOLUME.name, name };
    const raw = rawPeer((agents[0] as Agent).addresses[0]);
    try {
      const call = raw.forward();
      call.on("error", () => {});
      call.write(encodeJson({ session, request, resume: false }));
      const replies = call[Symbol.asyncIterator]();
      assert.deepEqual(JSON.parse(String((await replies.next()).value)), { from: 0 });
      for await (const part of patternBytes(40 * MiB, 5, MiB)) call.write(part);
      await sleep(500); // the owner stores stripes meanwhile
      call.cancel();
      const cutAt = performance.now();

      const resumedLate = await new Promise<string>((resolve) => {
        setTimeout(() => {
          const again = raw.forward();
          again.on("error", (e: grpc.ServiceError) => resolve(e.details));
          again.on("data", () => {});
          again.write(encodeJson({ session, request, resume: true }));
        }, GRACE_MS + 1_000);
      });
      assert.match(resumedLate, /forward session .* is not here .*nothing of it was stored/);

      const fileId = fileIdOf(VOLUME.name, name);
      for (const agent of agents) {
        assert.deepEqual(
          await agent.store.versions(VOLUME.name, fileId),
          [],
          `${agent.nodeId}: no pieces left`,
        );
      }
      const client = new AgentClient((agents[0] as Agent).addresses[0]);
      try {
        await assert.rejects(client.head(VOLUME.name, name), (e) =>
          isMosaicError(e, "MOSAIC_ERR_NO_SUCH_FILE"),
        );
        const started = performance.now();
        await client.put(VOLUME.name, name, patternBytes(MiB, 6), MiB);
        assert.ok(performance.now() - started < 5_000, "the file's write lock was released");

        // A sender that still holds the whole input says so: the gone session's put starts again.
        const whole = await gather(patternBytes(3 * MiB + 5, 7, MiB));
        const again = raw.forward();
        again.write(encodeJson({ session, request, resume: true, fromStart: true }));
        const replies = again[Symbol.asyncIterator]();
        assert.deepEqual(JSON.parse(String((await replies.next()).value)), { from: 0 });
        for (let at = 0; at < whole.length; at += MiB) again.write(whole.subarray(at, at + MiB));
        again.write(Buffer.alloc(0));
        again.end();
        let reply: { reply?: { manifest: { sizeBytes: number; crc32c: number } } } = {};
        for (let r = await replies.next(); !r.done; r = await replies.next())
          reply = JSON.parse(String(r.value));
        assert.equal(reply.reply?.manifest.sizeBytes, whole.length);
        const { body } = await client.get(VOLUME.name, name);
        assert.ok((await gather(body)).equals(whole), "the restarted put is read back whole");
      } finally {
        client.close();
      }
      console.log(
        `abandoned forward cleaned up; checked ${Math.round(performance.now() - cutAt)} ms after the cut`,
      );
    } finally {
      raw.close();
    }
  });

  test("a forward whose client is gone is not resumed when its stream breaks: the owner's grace drops it, nothing is written", async () => {
    const s = await sender();
    const name = "failover/client-gone.bin";
    const size = 2 * MiB; // under the owner's ack interval: the whole input is held, so a put could start again
    const clientGone = new AbortController();
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    async function* input(): AsyncGenerator<Buffer> {
      let first = true;
      for await (const part of patternBytes(size, 13, MiB)) {
        if (!first) await released; // the rest only once channel A died and the client went
        first = false;
        yield part;
      }
    }
    const forward = s.peers.forwardRequest(
      OWNER,
      { op: "put", volume: VOLUME.name, name, sizeBytes: size },
      input(),
      clientGone.signal,
    );
    forward.catch(() => {});
    await sleep(300); // the owner has the session and the first MiB
    s.proxy.freeze();
    clientGone.abort(); // the application was killed
    s.lose();
    release();
    await assert.rejects(forward, /not resumed: the client that sent it is gone/);
    assert.equal(
      s.lines.filter((l) => l.msg === "forward moved to the other channel").length,
      0,
      "no stream was opened again",
    );
    assert.equal(s.peers.callsInFlight, 0);

    await sleep(GRACE_MS + 1_000); // the owner's session lapses
    const fileId = fileIdOf(VOLUME.name, name);
    for (const agent of agents) {
      assert.deepEqual(
        await agent.store.versions(VOLUME.name, fileId),
        [],
        `${agent.nodeId}: no pieces left`,
      );
    }
    const client = new AgentClient((agents[1] as Agent).addresses[0]);
    try {
      await assert.rejects(client.head(VOLUME.name, name), (e) =>
        isMosaicError(e, "MOSAIC_ERR_NO_SUCH_FILE"),
      );
    } finally {
      client.close();
    }
  });

  test("a forward whose sender falls silent and never resumes: the owner's keepalive ends it, the grace drops it", {
    timeout: 60_000,
  }, async () => {
    const name = "failover/silent-sender.bin";
    const proxy = await FreezableProxy.start((agents[0] as Agent).addresses[0]);
    const raw = rawPeer(proxy.address);
    try {
      const call = raw.forward();
      call.on("error", () => {});
      call.write(
        encodeJson({
          session: randomUUID(),
          request: { op: "put", volume: VOLUME.name, name },
          resume: false,
        }),
      );
      for await (const part of patternBytes(80 * MiB, 8, MiB)) call.write(part);
      await sleep(500);
      proxy.freeze(); // nothing more arrives, nothing says so: only the owner's pings can tell
      const frozenAt = performance.now();
      const fileId = fileIdOf(VOLUME.name, name);
      const stored = async () =>
        (await Promise.all(agents.map((a) => a.store.versions(VOLUME.name, fileId)))).flat();
      assert.ok((await stored()).length > 0, "stripes were stored before the sender fell silent");
      let goneMs: number | undefined;
      for (let i = 0; i < 400 && goneMs === undefined; i++) {
        await sleep(100);
        if ((await stored()).length === 0) goneMs = performance.now() - frozenAt;
      }
      assert.ok(goneMs !== undefined, "the abandoned write's pieces were removed");
      // Keepalive (10 s + 5 s) plus the grace, never the TCP timeout.
      assert.ok(
        goneMs < 15_000 + GRACE_MS + 5_000,
        `gone ${Math.round(goneMs)} ms after the sender fell silent`,
      );
      const client = new AgentClient((agents[1] as Agent).addresses[0]);
      try {
        await assert.rejects(client.head(VOLUME.name, name), (e) =>
          isMosaicError(e, "MOSAIC_ERR_NO_SUCH_FILE"),
        );
      } finally {
        client.close();
      }
      console.log(`silent sender: its partial write removed ${Math.round(goneMs)} ms after it fell silent`);
      call.cancel();
    } finally {
      raw.close();
      await proxy.close();
    }
  });

  test("a forward stream cut and resumed by hand continues at the owner's offset", async () => {
    const name = "failover/by-hand.bin";
    const size = 24 * MiB + 7;
    const bytes = await gather(patternBytes(size, 9, MiB));
    const session = randomUUID();
    const request = { op: "put", volume: VOLUME.name, name, sizeBytes: size };
    const raw = rawPeer((agents[0] as Agent).addresses[1]);
    try {
      const first = raw.forward();
      first.on("error", () => {});
      first.write(encodeJson({ session, request, resume: false }));
      for (let at = 0; at < 10 * MiB; at += MiB) first.write(bytes.subarray(at, at + MiB));
      await sleep(500);
      first.cancel();
      await sleep(200);
      const second = raw.forward();
      second.write(encodeJson({ session, request, resume: true }));
      const replies = second[Symbol.asyncIterator]();
      const { from } = JSON.parse(String((await replies.next()).value)) as { from: number };
      assert.ok(from > 0 && from <= 10 * MiB, `resumes at ${from}`);
      for (let at = from; at < size; at += MiB) second.write(bytes.subarray(at, Math.min(at + MiB, size)));
      second.write(Buffer.alloc(0));
      second.end();
      let reply: { reply?: { manifest: { sizeBytes: number; crc32c: number } } } = {};
      for (let r = await replies.next(); !r.done; r = await replies.next())
        reply = JSON.parse(String(r.value));
      assert.equal(reply.reply?.manifest.sizeBytes, size);
      assert.equal(reply.reply?.manifest.crc32c, crc32c(bytes));
    } finally {
      raw.close();
    }
  });

  test("a resume for a different request, or a Forward of a read, is refused clearly", async () => {
    const raw = rawPeer((agents[0] as Agent).addresses[0]);
    try {
      const session = randomUUID();
      const open = raw.forward();
      open.on("error", () => {});
      open.write(
        encodeJson({ session, request: { op: "delete", volume: VOLUME.name, name: "x/y" }, resume: false }),
      );
      const refused = async (header: unknown) =>
        new Promise<string>((resolve) => {
          const call = raw.forward();
          call.on("error", (e: grpc.ServiceError) => resolve(e.details));
          call.on("data", () => {});
          call.write(encodeJson(header));
        });
      await sleep(100);
      assert.match(
        await refused({ session, request: { op: "delete", volume: VOLUME.name, name: "x/z" }, resume: true }),
        /belongs to another request/,
      );
      assert.match(
        await refused({
          session: randomUUID(),
          request: { op: "get", volume: VOLUME.name, name: "x/y" },
          resume: false,
        }),
        /only put and delete are forwarded/,
      );
      assert.match(
        await refused({
          session: "nope",
          request: { op: "delete", volume: VOLUME.name, name: "x/y" },
          resume: false,
        }),
        /session must be a lowercase UUID/,
      );
      open.cancel();
    } finally {
      raw.close();
    }
  });
});

type RawPeer = grpc.Client & { forward(): grpc.ClientDuplexStream<Buffer, Buffer> };

function rawPeer(address: string): RawPeer {
  const Peer = grpc.makeGenericClientConstructor(PEER_SERVICE, "mosaic.v1.Peer");
  return new Peer(address, grpc.credentials.createInsecure(), channelOptions()) as unknown as RawPeer;
}
