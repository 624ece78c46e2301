// Three MemberCores on real UDP sockets over loopback (127.0.0.1 stands for
// channel A, 127.0.0.2 for channel B), in this process. Closing one node's
// channel-A socket is a NIC failure: the others move it to B within the
// budget and keep it a member. Closing both is a node failure.
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { after, describe, test } from "node:test";
import type { Endpoint } from "../../src/io/udp-heartbeats.ts";
import { UdpHeartbeats } from "../../src/io/udp-heartbeats.ts";
import {
  CHANNEL_DOWN_BUDGET_MS,
  defaultDetectorConfig,
  NODE_DOWN_BUDGET_MS,
} from "../../src/membership/config.ts";
import type { Channel } from "../../src/membership/heartbeat.ts";
import type { MembershipEvent } from "../../src/membership/membership-core.ts";
import { HeartbeatProcess } from "../helpers/netns.ts";

const NODES = ["n0", "n1", "n2"];
const config = defaultDetectorConfig(1);

interface Seen {
  node: string;
  event: MembershipEvent;
}

/** Every event of every driver, and waiters for the first one matching. */
class Events {
  readonly all: Seen[] = [];
  readonly #waiters: { match: (s: Seen) => boolean; resolve: (s: Seen) => void }[] = [];

  push(node: string, event: MembershipEvent): void {
    const seen = { node, event };
    this.all.push(seen);
    for (const w of this.#waiters.splice(0)) {
      if (w.match(seen)) w.resolve(seen);
      else this.#waiters.push(w);
    }
  }

  until(match: (s: Seen) => boolean, timeoutMs: number, what: string): Promise<Seen> {
    const found = this.all.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({
        match,
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
      });
    });
  }
}

async function startCluster(events: Events): Promise<Map<string, UdpHeartbeats>> {
  const endpoints = new Map<string, [Endpoint, Endpoint]>();
  const drivers = new Map<string, UdpHeartbeats>();
  for (const [i, self] of NODES.entries()) {
    const driver = await UdpHeartbeats.start({
      self,
      incarnation: Date.now(),
      // Agreement needs a map; the addresses in it are not used (endpointOf finds peers).
      map: {
        epoch: 1,
        nodes: NODES.map((id) => ({ id, addresses: ["127.0.0.1:0", "127.0.0.2:0"], state: "up" as const })),
      },
      config,
      bind: [
        { host: "127.0.0.1", port: 0 },
        { host: "127.0.0.2", port: 0 },
      ],
      endpointOf: (node, channel) => endpoints.get(node)?.[channel === "A" ? 0 : 1],
      onEvent: (e) => events.push(self, e),
    });
    drivers.set(self, driver);
    endpoints.set(self, driver.endpoints());
    assert.notEqual(driver.endpoints()[0].port, 0, `n${i} bound a real port`);
  }
  return drivers;
}

/** Resolves once every driver sees every watched peer up on both channels. */
async function settled(drivers: Map<string, UdpHeartbeats>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let polls = 0; Date.now() < deadline && polls < 1_000; polls++) {
    const all = [...drivers.values()].every((d) =>
      d.core.watched().every((p) => {
        const v = d.view(p);
        return v?.channels.A === "up" && v.channels.B === "up" && v.active === "A";
      }),
    );
    if (all) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`peers not all up on both channels within ${timeoutMs} ms`);
}

async function freeUdpPort(host: string): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, host, () => resolve()));
  const { port } = socket.address();
  socket.close();
  return port;
}

const isChannelDown = (peer: string, channel: Channel) => (s: Seen) =>
  s.event.kind === "channel" && s.event.peer === peer && s.event.channel === channel && s.event.to === "down";

describe("UDP heartbeats on loopback", () => {
  const running: UdpHeartbeats[] = [];
  after(() => {
    for (const d of running) d.close();
  });

  test("channel A socket closed: peers move it to B within the budget; both closed: node down within 1 s", async (t) => {
    const events = new Events();
    const drivers = await startCluster(events);
    running.push(...drivers.values());
    await settled(drivers, 2_000);
    const cut = drivers.get("n2") as UdpHeartbeats;
    const observers = ["n0", "n1"];

    cut.closeChannel("A");
    for (const node of observers) {
      const core = (drivers.get(node) as UdpHeartbeats).core;
      const down = await events.until(
        (s) => s.node === node && isChannelDown("n2", "A")(s),
        1_000,
        `${node}: n2 A down`,
      );
      const silentMs = down.event.atMs - (core.lastHeardMs("n2", "A") as number);
      t.diagnostic(`${node} saw n2's channel A down ${silentMs.toFixed(1)} ms after its last heartbeat`);
      assert.ok(silentMs <= CHANNEL_DOWN_BUDGET_MS, `${node}: ${silentMs} ms > ${CHANNEL_DOWN_BUDGET_MS} ms`);
      await events.until(
        (s) => s.node === node && s.event.kind === "active" && s.event.peer === "n2" && s.event.to === "B",
        100,
        `${node}: n2 active B`,
      );
      assert.deepEqual(drivers.get(node)?.view("n2"), {
        channels: { A: "down", B: "up" },
        state: "up",
        active: "B",
      });
      assert.equal(drivers.get(node)?.channelFor("n2"), 1);
    }
    // The cut node is deaf on A too: it sees its peers on B.
    await events.until(
      (s) => s.node === "n2" && s.event.kind === "active" && s.event.peer === "n0" && s.event.to === "B",
      1_000,
      "n2: n0 active B",
    );
    assert.equal(cut.channelFor("n0"), 1);
    assert.ok(
      !events.all.some((s) => s.event.kind === "peer" && s.event.peer === "n2"),
      "a NIC failure must never touch the node's membership state",
    );
    assert.ok(!events.all.some((s) => s.event.kind === "map"), "nor the cluster map");

    cut.close();
    for (const node of observers) {
      const core = (drivers.get(node) as UdpHeartbeats).core;
      const down = await events.until(
        (s) => s.node === node && s.event.kind === "peer" && s.event.peer === "n2" && s.event.to === "down",
        2_000,
        `${node}: n2 down`,
      );
      const lastMs = Math.max(core.lastHeardMs("n2", "A") as number, core.lastHeardMs("n2", "B") as number);
      const silentMs = down.event.atMs - lastMs;
      t.diagnostic(`${node} saw n2 down ${silentMs.toFixed(1)} ms after its last heartbeat`);
      assert.ok(silentMs <= NODE_DOWN_BUDGET_MS, `${node}: ${silentMs} ms > ${NODE_DOWN_BUDGET_MS} ms`);
      assert.equal(drivers.get(node)?.channelFor("n2"), undefined);
    }
    // Both watchers confirm (3 nodes, k = 1: quorum 2), so both hold one map with n2 down.
    for (const node of observers)
      await events.until(
        (s) =>
          s.node === node &&
          s.event.kind === "map" &&
          s.event.map.nodes.some((n) => n.id === "n2" && n.state === "down"),
        1_000,
        `${node}: a map with n2 down`,
      );
    const [m0, m1] = observers.map((node) => (drivers.get(node) as UdpHeartbeats).map());
    assert.deepEqual(m0, m1);
    assert.equal(m0?.epoch, 2);
    for (const node of observers) {
      const d = drivers.get(node) as UdpHeartbeats;
      assert.equal(d.stats.dropped, 0);
      assert.equal(d.core.rejected, 0);
    }
    for (const d of drivers.values()) d.close();
  });

  test("an idle heartbeat process wakes only when due and uses a few % of a core at most", async (t) => {
    // One agent's heartbeats as its own process (as in production), so the figure is one driver's.
    const members: { id: string; addresses: [string, string] }[] = [];
    for (const id of NODES)
      members.push({
        id,
        addresses: [
          `127.0.0.1:${await freeUdpPort("127.0.0.1")}`,
          `127.0.0.2:${await freeUdpPort("127.0.0.2")}`,
        ] as [string, string],
      });
    const procs = members.map((m) => new HeartbeatProcess({ self: m.id, members }));
    try {
      await Promise.all(procs.map((p) => p.until((l) => l.kind === "ready", 10_000, "ready")));
      const probe = procs[0] as HeartbeatProcess;
      await new Promise((r) => setTimeout(r, 1_000));
      const before = await probe.ask("cpu");
      await new Promise((r) => setTimeout(r, 3_000));
      const after = await probe.ask("cpu");
      const cpuUs =
        Number(after.userUs) + Number(after.systemUs) - Number(before.userUs) - Number(before.systemUs);
      const elapsedMs = Number(after.monotonicMs) - Number(before.monotonicMs);
      const percent = (cpuUs / 1_000 / elapsedMs) * 100;
      const stats = (x: Record<string, unknown>) => x.stats as { wakeups: number; sent: number };
      const wakeupsPerSecond = ((stats(after).wakeups - stats(before).wakeups) / elapsedMs) * 1_000;
      const sentPerSecond = ((stats(after).sent - stats(before).sent) / elapsedMs) * 1_000;
      t.diagnostic(
        `idle heartbeat process: ${percent.toFixed(2)} % of a core over ${(elapsedMs / 1_000).toFixed(1)} s, ` +
          `${wakeupsPerSecond.toFixed(1)} timer wakeups/s, ${sentPerSecond.toFixed(0)} datagrams sent/s`,
      );
      // One wakeup per heartbeat interval plus a few deadlines; a 10 ms poll would be 100/s.
      assert.ok(
        wakeupsPerSecond < (1_000 / config.heartbeatIntervalMs) * 1.5,
        `${wakeupsPerSecond} wakeups/s`,
      );
      // 80 datagrams/s through Node's dgram measure 1.7–2.6 % on this nested-virtualisation VM
      // (3.2 % once in a CI run); a 10 ms poll or a spin costs tens of %. The wakeups above are the precise check.
      assert.ok(percent < 5, `idle heartbeat process used ${percent.toFixed(2)} % of a core`);
    } finally {
      for (const p of procs) await p.kill9();
    }
  });

  test("close() releases everything: nothing keeps the process alive", async () => {
    const drivers = await startCluster(new Events());
    for (const d of drivers.values()) d.close();
    for (const d of drivers.values()) d.close();
    const handles = process
      .getActiveResourcesInfo()
      .filter((r) => r === "UDPWRAP" || r === "Timeout" || r === "Immediate");
    assert.deepEqual(
      handles.filter((r) => r === "UDPWRAP"),
      [],
    );
  });
});
