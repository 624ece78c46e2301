// Issue 3's acceptance tests against real agent processes (a LocalCluster of
// three, every client on node-0's IPC directory, each application its own
// process): many concurrent clients on different and the same files, a
// client killed mid-write and mid-read, the agent's CPU with idle clients,
// and the agent itself killed mid-transfer (last: it ends node-0).
//
// What the agent holds is read from outside, since its IpcServer is in
// another process: its ring mappings from /proc/<pid>/maps, its FIFO
// descriptors from /proc/<pid>/fd, the rings it made from the names its log
// gives at registration (other test files make segments of their own, so a
// plain count of /dev/shm would not be this agent's), and its packet
// troubles from its log lines.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, test } from "node:test";
import { LocalCluster } from "../../src/cli/local-cluster.ts";
import { type LocalAgent, type LocalPlan, planLocalCluster } from "../../src/cli/local-plan.ts";
import type { MosaicError } from "../../src/errors.ts";
import { IpcClient } from "../../src/ipc/ipc-client.ts";
import { cpuSeconds, ipcHeld, killPeers, mosaicSegments, Peer, type PeerMessage, until } from "./children.ts";
import { fillFromPattern, mismatchAt, pattern } from "./pattern.ts";

const APP = new URL("./agent-app-peer.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;

let root: string;
let plan: LocalPlan;
let cluster: LocalCluster;
let agent: LocalAgent;
let agentPid: number;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "mosaic-agent-ipc-processes-"));
  plan = planLocalCluster({
    nodes: 3,
    dir: root,
    basePort: 20_000 + 2 * Math.floor(Math.random() * 10_000),
    capacityBytes: 2 ** 32,
  });
  cluster = await LocalCluster.start(plan, () => {});
  await cluster.waitReady(20_000);
  agent = plan.agents[0] as LocalAgent;
  agentPid = cluster.pid(agent.id) as number;
});

afterEach(async () => {
  await killPeers();
  // The next test counts what the agent holds from a clean start: let it reclaim the clients just killed.
  if (agentAlive())
    await until(() => !agentAlive() || held().mappings === 0, 20_000, "the agent to reclaim every ring");
});

function agentAlive(): boolean {
  try {
    process.kill(agentPid, 0);
    return true;
  } catch {
    return false;
  }
}

after(async () => {
  await killPeers();
  await cluster?.stop();
  await rm(root, { recursive: true, force: true });
});

interface LogEntry {
  msg?: string;
  clientId?: number;
  pid?: number;
  why?: string;
  rings?: string[];
}

function agentLog(): LogEntry[] {
  return readFileSync(agent.logFile, "utf8")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as LogEntry);
}

/** Log lines that would mean a packet arrived broken, unknown or refused. */
function packetTroubles(): LogEntry[] {
  return agentLog().filter((e) =>
    /malformed IPC packet|IPC packet refused|unknown client|IPC packet handler failed/.test(e.msg ?? ""),
  );
}

/** What the agent holds for IPC now, read from /proc and its directory. */
function held(): { mappings: number; fifoFds: number; fifos: number; namedRings: number } {
  const { mappings, fds } = ipcHeld(agentPid, agent.ipcDir);
  return { mappings, fifoFds: fds, fifos: readdirSync(agent.ipcDir).length, namedRings: namedRings() };
}

/** Rings this agent made (its log names each at registration) that still have a name in /dev/shm. */
function namedRings(): number {
  const made = new Set(agentLog().flatMap((e) => (e.rings ?? []).map((name) => name.slice(1))));
  return [...mosaicSegments()].filter((name) => made.has(name)).length;
}

/** Starts an application process connected to node-0's agent; resolves once it has registered. */
async function app(): Promise<{ peer: Peer; clientId: number; call: (c: object) => Promise<PeerMessage> }> {
  const peer = new Peer([agent.ipcDir], APP);
  const hello = await peer.message(20_000);
  const call = async (command: object) => {
    peer.child.send(command);
    return peer.message(60_000);
  };
  return { peer, clientId: hello.clientId as number, call };
}

async function* patternStream(seed: string, totalBytes: number): AsyncGenerator<Buffer> {
  const data = pattern(seed);
  for (let offset = 0; offset < totalBytes; offset += 500_009) {
    const part = Buffer.allocUnsafe(Math.min(500_009, totalBytes - offset));
    fillFromPattern(data, part, offset);
    yield part;
  }
}

/** The file's bytes against `seed`'s pattern: the first differing offset, or -1 (also -1 only if the size matches). */
async function differsFrom(
  client: IpcClient,
  name: string,
  seed: string,
  sizeBytes: number,
): Promise<number> {
  const data = pattern(seed);
  const reply = await client.get("media", name);
  let offset = 0;
  let bad = -1;
  for await (const view of reply.body) {
    const at = bad < 0 ? mismatchAt(data, view, offset) : -1;
    if (at >= 0) bad = offset + at;
    offset += view.length;
  }
  return bad >= 0 ? bad : offset === sizeBytes ? -1 : offset;
}

test("10 client processes on one agent, on different files and the same file: every byte verified, no packet broken", async (t) => {
  const sharedBytes = 3 * MiB + 4097;
  const shared = "ipc/shared.bin";
  const seeds = ["v0", "w1", "w2", "w3"];
  const first = await IpcClient.connect({ dir: agent.ipcDir });
  try {
    await first.put("media", shared, patternStream("v0", sharedBytes), sharedBytes);
  } finally {
    await first.close();
  }
  const registeredBefore = agentLog().filter((e) => e.msg === "IPC client registered").length;
  const startMs = performance.now();
  const apps = await Promise.all(Array.from({ length: 10 }, () => app()));
  const writers = apps.slice(0, 3);
  const readers = apps.slice(3, 5);
  const others = apps.slice(5);
  const readSeeds: string[] = [];
  let changed = 0;
  await Promise.all([
    // Each writer puts its whole pattern twice, racing the others on one name.
    ...writers.map(async (w, i) => {
      for (let round = 0; round < 2; round++) {
        await w.call({ op: "put", name: shared, bytes: sharedBytes, seed: `w${i + 1}` });
      }
    }),
    // Readers of the same file meanwhile: each read is one writer's whole content.
    ...readers.map(async (r) => {
      for (let round = 0; round < 3; round++) {
        const got = await r.call({ op: "get", name: shared, bytes: sharedBytes, seeds });
        assert.notEqual(got.missing, true, "the shared file vanished while being overwritten");
        readSeeds.push(got.seed as string);
        changed += got.changed as number;
      }
    }),
    // And files of their own, written then read back.
    ...others.map(async (o, i) => {
      const bytes = 4 * MiB + 1001 * i;
      const name = `ipc/own-${i}.bin`;
      await o.call({ op: "put", name, bytes, seed: `own-${i}` });
      const got = await o.call({ op: "get", name, bytes, seeds: [`own-${i}`] });
      assert.equal(got.seed, `own-${i}`);
      assert.equal(got.bytes, bytes);
    }),
  ]);
  const elapsedMs = performance.now() - startMs;
  await Promise.all(apps.map((a) => a.call({ op: "exit" }).catch(() => undefined)));
  await Promise.all(apps.map((a) => a.peer.exited));

  const last = await IpcClient.connect({ dir: agent.ipcDir });
  try {
    const finals = [];
    for (const seed of ["w1", "w2", "w3"]) finals.push(await differsFrom(last, shared, seed, sharedBytes));
    assert.equal(
      finals.filter((at) => at === -1).length,
      1,
      `the shared file is no one writer's whole content`,
    );
  } finally {
    await last.close();
  }
  const registered = agentLog().filter((e) => e.msg === "IPC client registered").length;
  assert.equal(registered - registeredBefore, 11, "every client registered once");
  assert.deepEqual(packetTroubles(), [], "the agent saw a malformed, unknown or refused packet");
  t.diagnostic(
    `10 processes: 6 puts of the shared ${sharedBytes} B file, ${readSeeds.length} reads of it (seeds ${readSeeds.join(",")}; ` +
      `${changed} re-read after an overwrite), 5 × put+get of ~4 MiB files, in ${(elapsedMs / 1000).toFixed(1)} s`,
  );
});

test("clients killed with SIGKILL mid-write and mid-read: the agent reclaims everything, keeps serving, no partial file", async (t) => {
  const prevBytes = 2 * MiB + 333;
  const others = await Promise.all([app(), app()]);
  await others[0]?.call({ op: "put", name: "ipc/victim-prev.bin", bytes: prevBytes, seed: "prev" });
  // Larger than the agent's ring (4 × 1 MiB): the stalled reader leaves the agent waiting for a free slot.
  await others[1]?.call({ op: "put", name: "ipc/victim-read.bin", bytes: 12 * MiB, seed: "read" });
  const baseline = held();
  assert.equal(baseline.mappings, 4, "two clients, two rings each");
  assert.equal(baseline.namedRings, 0, "attached rings have no name left");

  const writer = await app();
  const fresh = await app();
  const reader = await app();
  await Promise.all([
    writer.call({
      op: "put-stall",
      name: "ipc/victim-prev.bin",
      bytes: 16 * MiB,
      seed: "new",
      afterBytes: 5 * MiB,
    }),
    fresh.call({
      op: "put-stall",
      name: "ipc/victim-fresh.bin",
      bytes: 16 * MiB,
      seed: "fresh",
      afterBytes: 3 * MiB,
    }),
    reader.call({ op: "get-stall", name: "ipc/victim-read.bin" }),
  ]);
  assert.equal(held().mappings, baseline.mappings + 6);
  const victims = [writer, fresh, reader];
  const killedAtMs = performance.now();
  for (const v of victims) v.peer.kill("SIGKILL");
  const dropped = () => {
    const ids = new Set(
      agentLog()
        .filter((e) => e.msg === "IPC client dropped")
        .map((e) => e.clientId),
    );
    return victims.every((v) => ids.has(v.clientId));
  };
  await until(
    () => dropped() && held().mappings === baseline.mappings,
    5_000,
    "the agent to drop the dead clients",
  );
  const reclaimedMs = performance.now() - killedAtMs;
  assert.deepEqual(held(), baseline, "the agent holds what it held before the victims came");
  const whys = agentLog()
    .filter((e) => e.msg === "IPC client dropped" && victims.some((v) => v.clientId === e.clientId))
    .map((e) => e.why);

  const prev = await others[0]?.call({
    op: "get",
    name: "ipc/victim-prev.bin",
    bytes: prevBytes,
    seeds: ["prev", "new"],
  });
  assert.equal(prev?.seed, "prev", "the killed overwrite left the previous version whole");
  const gone = await others[1]?.call({
    op: "get",
    name: "ipc/victim-fresh.bin",
    bytes: 16 * MiB,
    seeds: ["fresh"],
  });
  assert.equal(gone?.missing, true, "the killed first write left no file");
  await others[1]?.call({ op: "put", name: "ipc/after-kill.bin", bytes: 3 * MiB, seed: "after" });
  const after = await others[1]?.call({
    op: "get",
    name: "ipc/after-kill.bin",
    bytes: 3 * MiB,
    seeds: ["after"],
  });
  assert.equal(after?.seed, "after");

  await Promise.all(others.map((o) => o.call({ op: "exit" }).catch(() => undefined)));
  await until(() => held().mappings === 0, 5_000, "the agent to unmap the last clients' rings");
  // Each client also held two of the agent's FIFO descriptors: its life line and its reply FIFO.
  assert.deepEqual(held(), { ...baseline, mappings: 0, fifoFds: baseline.fifoFds - 2 * others.length });
  assert.deepEqual(packetTroubles(), []);
  t.diagnostic(
    `3 killed clients (2 mid-write, 1 mid-read) reclaimed ${reclaimedMs.toFixed(0)} ms after SIGKILL: ${whys.join("; ")}`,
  );
});

test("idle: 8 connected idle clients add < 1% of a core to the agent's CPU over 30 s", async (t) => {
  const windowMs = 30_000;
  const measure = async (): Promise<number> => {
    const before = cpuSeconds(agentPid);
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    return (cpuSeconds(agentPid) - before) / (windowMs / 1000);
  };
  await until(() => held().mappings === 0, 5_000, "no client left from earlier tests");
  await new Promise((resolve) => setTimeout(resolve, 1_000)); // let the earlier tests' work settle
  const none = await measure();
  const apps = await Promise.all(Array.from({ length: 8 }, () => app()));
  assert.equal(held().mappings, 16);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const clientsBefore = apps.reduce((sum, a) => sum + cpuSeconds(a.peer.pid), 0);
  const eight = await measure();
  const clientsCpu =
    (apps.reduce((sum, a) => sum + cpuSeconds(a.peer.pid), 0) - clientsBefore) / (windowMs / 1000);
  t.diagnostic(
    `agent CPU over ${windowMs / 1000} s: ${(100 * none).toFixed(2)}% of a core with 0 clients, ` +
      `${(100 * eight).toFixed(2)}% with 8 idle clients (difference ${(100 * (eight - none)).toFixed(2)} points); ` +
      `the 8 client processes together: ${(100 * clientsCpu).toFixed(2)}%`,
  );
  assert.ok(eight - none < 0.01, `8 idle clients add ${(100 * (eight - none)).toFixed(2)}% of a core`);
  await Promise.all(apps.map((a) => a.call({ op: "exit" }).catch(() => undefined)));
});

test("the agent killed with SIGKILL mid-read and mid-write: both clients get PEER_UNAVAILABLE within a bounded time", async (t) => {
  const bigBytes = 24 * MiB;
  const seed = "big";
  const setup = await IpcClient.connect({ dir: agent.ipcDir });
  await setup.put("media", "ipc/big.bin", patternStream(seed, bigBytes), bigBytes);
  await setup.close();

  const readerClient = await IpcClient.connect({ dir: agent.ipcDir, pollMs: 100, timeoutMs: 20_000 });
  const writerClient = await IpcClient.connect({ dir: agent.ipcDir, pollMs: 100, timeoutMs: 20_000 });
  let killed!: () => void;
  const agentKilled = new Promise<void>((resolve) => {
    killed = resolve;
  });
  let killedAtMs = 0;
  let readBytes = 0;
  const data = pattern(seed);
  const reading = (async () => {
    const reply = await readerClient.get("media", "ipc/big.bin");
    for await (const view of reply.body) {
      assert.equal(mismatchAt(data, view, readBytes), -1);
      readBytes += view.length;
      if (readBytes >= 2 * MiB && killedAtMs === 0) await agentKilled;
    }
  })();
  let sentBytes = 0;
  const writing = writerClient.put(
    "media",
    "ipc/never.bin",
    (async function* () {
      for await (const part of patternStream("never", 32 * MiB)) {
        yield part;
        sentBytes += part.length;
        if (sentBytes >= 3 * MiB && killedAtMs === 0) await agentKilled;
      }
    })(),
    32 * MiB,
  );
  await until(() => readBytes >= 2 * MiB && sentBytes >= 3 * MiB, 20_000, "both transfers to be under way");
  process.kill(agentPid, "SIGKILL");
  killedAtMs = performance.now();
  killed();
  const clear = (error: MosaicError & { reason?: string }) => {
    assert.equal(error.code, "MOSAIC_ERR_PEER_UNAVAILABLE", error.message);
    assert.equal(error.reason, "peer-died", error.message);
    assert.match(error.message, new RegExp(`pid ${agentPid}\\) died`));
    return true;
  };
  const noticed: number[] = [];
  await Promise.all([
    assert.rejects(reading, clear).then(() => noticed.push(performance.now() - killedAtMs)),
    assert.rejects(writing, clear).then(() => noticed.push(performance.now() - killedAtMs)),
  ]);
  t.diagnostic(
    `dead agent noticed ${noticed.map((ms) => ms.toFixed(0)).join(" / ")} ms after SIGKILL ` +
      `(reader at ${(readBytes / MiB).toFixed(1)} MiB, writer at ${(sentBytes / MiB).toFixed(1)} MiB; clients check every 100 ms)`,
  );
  for (const ms of noticed) assert.ok(ms < 2_000, `noticed after ${ms.toFixed(0)} ms`);
  await assert.rejects(readerClient.stat("media", "ipc/big.bin"), /the IPC channel failed/);
  const closeStartMs = performance.now();
  await Promise.all([readerClient.close(), writerClient.close()]);
  assert.ok(performance.now() - closeStartMs < 2_500, "close must not hang on a dead agent's FIFO");
  assert.equal(namedRings(), 0, "a killed agent leaves no ring name in /dev/shm");
});
