// Clients in another pid namespace, as application pods are next to the agent
// in Kubernetes (they share /dev/shm and the IPC directory, not pids): the
// agent cannot ask /proc about them, so only their life lines tell it they
// died. The server here waits up to 60 s on a stalled client (its default),
// so a reclaim within a few seconds of a kill -9 can only come from the life
// line. Counted before and after: FIFOs in the IPC directory, this process's
// ring mappings and descriptors under the directory, the server's rings
// still named in /dev/shm.
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, test } from "node:test";
import { pino } from "pino";
import type { IpcServer } from "../../src/ipc/ipc-server.ts";
import { MiB } from "../helpers/in-process-cluster.ts";
import { ipcHeld, killPeers, mosaicSegments, Peer, type PeerMessage, until } from "./children.ts";
import { type ServerFixture, startServerFixture } from "./server-fixture.ts";

const APP = new URL("./agent-app-peer.ts", import.meta.url).pathname;
const AGENT = new URL("./ipc-agent-peer.ts", import.meta.url).pathname;
const CLIENT = new URL("./ipc-client-peer.ts", import.meta.url).pathname;
let fixture: ServerFixture;
let server: IpcServer;
let root: string;
let dir: string;

const ringNames = new Set<string>();
const drops: { clientId?: number; why?: string }[] = [];
const log = pino(
  { level: "info" },
  {
    write(line: string) {
      const entry = JSON.parse(line) as { rings?: string[]; msg?: string; clientId?: number; why?: string };
      for (const name of entry.rings ?? []) ringNames.add(name.slice(1));
      if (entry.msg === "IPC client dropped") drops.push(entry);
    },
  },
);

function resources(): { fifos: number; mappings: number; fds: number; namedRings: number } {
  const namedRings = [...mosaicSegments()].filter((name) => ringNames.has(name)).length;
  return { fifos: readdirSync(dir).length, ...ipcHeld("self", dir), namedRings };
}

before(async () => {
  fixture = await startServerFixture("pidns", {
    log,
    slots: 4,
    slotSizeBytes: 256 * 1024,
    stallTimeoutMs: 60_000,
    pollMs: 100,
    sweepMs: 250,
  });
  ({ server, root, dir } = fixture);
});

afterEach(async () => {
  await killPeers();
});

after(async () => {
  await fixture?.stop();
});

/** An application process, in a pid namespace of its own or not; resolves once it has registered. */
async function app(pidNamespace: boolean) {
  const peer = new Peer([dir], APP, { pidNamespace });
  const hello = await peer.message(20_000);
  const call = async (command: object): Promise<PeerMessage> => {
    peer.child.send(command);
    return peer.message(60_000);
  };
  return { peer, hello, call };
}

test("clients in another pid namespace killed with SIGKILL mid-read and mid-write: their life lines reclaim everything at once", async (t) => {
  const baseline = resources();
  const other = await app(false);
  await other.call({ op: "put", name: "pidns/read.bin", bytes: 6 * MiB, seed: "read" });

  const writer = await app(true);
  const reader = await app(true);
  for (const victim of [writer, reader]) {
    assert.equal(victim.hello.pid, 1, "the client is pid 1 of its own namespace");
    const inner = victim.peer.scriptPid();
    assert.notEqual(inner, victim.peer.pid, "unshare forked the client");
    assert.notEqual(
      readlinkSync(`/proc/${inner}/ns/pid`),
      readlinkSync("/proc/self/ns/pid"),
      "the client runs in another pid namespace",
    );
  }
  await Promise.all([
    // The agent waits on Full for the rest of the put, and on Empty for the reader to take more.
    writer.call({
      op: "put-stall",
      name: "pidns/never.bin",
      bytes: 8 * MiB,
      seed: "never",
      afterBytes: 2 * MiB,
    }),
    reader.call({ op: "get-stall", name: "pidns/read.bin" }),
  ]);
  const during = resources();
  assert.equal(during.mappings, baseline.mappings + 6, "three clients, two rings each");
  assert.equal(during.namedRings, 0);

  const victimIds = new Set([writer.hello.clientId, reader.hello.clientId]);
  process.kill(writer.peer.scriptPid(), "SIGKILL");
  process.kill(reader.peer.scriptPid(), "SIGKILL");
  const reclaimedMs = await until(
    () => server.clientCount === 1 && resources().mappings === baseline.mappings + 2,
    5_000,
    "the server to drop both dead clients",
  );
  const whys = drops.filter((d) => victimIds.has(d.clientId)).map((d) => d.why ?? "");
  assert.equal(whys.length, 2);
  for (const why of whys) assert.match(why, /life-line FIFO reached end of file/);
  t.diagnostic(
    `2 clients in another pid namespace reclaimed ${reclaimedMs.toFixed(0)} ms after SIGKILL ` +
      `(stall timeout 60 s; /proc cannot see them): ${whys.join("; ")}`,
  );
  assert.ok(reclaimedMs < 3_000, `reclaimed after ${reclaimedMs.toFixed(0)} ms`);

  // The others are still served, and the killed put left no file.
  const got = await other.call({ op: "get", name: "pidns/read.bin", bytes: 6 * MiB, seeds: ["read"] });
  assert.equal(got.seed, "read");
  const never = await other.call({ op: "get", name: "pidns/never.bin", bytes: 8 * MiB, seeds: ["never"] });
  assert.equal(never.missing, true);
  other.peer.child.send({ op: "exit" });
  await other.peer.exited;
  await until(() => server.clientCount === 0, 5_000, "the last client to leave");
  assert.deepEqual(
    resources(),
    baseline,
    "FIFOs, mappings, descriptors and ring names back to where they were",
  );
});

test("the agent killed with SIGKILL while a client in another pid namespace waits on its ring: a clear error at once", async (t) => {
  const agentDir = join(root, "ipc-killed");
  const agent = new Peer([agentDir], AGENT);
  await agent.message(20_000);
  // The client waits up to 30 s per slot and cannot see the agent's pid: only the reply FIFO's end of file tells it.
  const client = new Peer(["read-until-error", agentDir, "endless"], CLIENT, { pidNamespace: true });
  const reading = await client.message(20_000);
  assert.equal(reading.pid, 1, "the client is pid 1 of its own namespace");
  const killedAtMs = performance.now();
  agent.kill("SIGKILL");
  const failed = await client.message(20_000);
  const noticedMs = performance.now() - killedAtMs;
  assert.equal(failed.code, "MOSAIC_ERR_PEER_UNAVAILABLE", String(failed.message));
  assert.equal(failed.reason, "peer-died", String(failed.message));
  assert.match(String(failed.message), /reply FIFO/);
  t.diagnostic(
    `dead agent noticed by a client in another pid namespace ${noticedMs.toFixed(0)} ms after SIGKILL: ${failed.message}`,
  );
  assert.ok(noticedMs < 3_000, `noticed after ${noticedMs.toFixed(0)} ms`);
});
