// Temporary read copies on real agents (load/read-copies.ts): three agent
// processes that each spend 10 ms of CPU per piece read (cpu-holder.ts, as
// in experiment 3) and one agent in this process that reads. A file's one
// stripe sits on two of the processes; reads at a steady rate make both
// High, and the file's owner adds a copy on the third, which then takes the
// reads; when the reads stop and every holder is Low the copy drains (a
// read of it begun before finishes whole) and leaves the disk. Also: the
// rebuild and the scrubber leave a registered copy alone and collect an
// orphan, and an overwrite or a delete takes a file's copies with it.
//
// The holders' load thresholds are a quarter of production's (High from 25 %
// of one core busy), so 60 reads a second make two holders High without
// taking the 2 shared cores from everything else.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { access, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Agent } from "../../src/agent.ts";
import { clusterStatus, describeReadCopies, type NodeStatus } from "../../src/cli/node-status.ts";
import { AgentClient } from "../../src/client/agent-client.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import { fileIdOf } from "../../src/core/names.ts";
import { fileOwner } from "../../src/core/ownership.ts";
import { placeStripe } from "../../src/core/placement.ts";
import type { ReadCopyEvent } from "../../src/load/read-copies.ts";
import type { ReadCopyStatus } from "../../src/load/read-copy-messages.ts";
import { silentLogger } from "../../src/log.ts";
import { PeerClients } from "../../src/rpc/peer-client.ts";
import { encodeJson } from "../../src/rpc/wire.ts";
import { ChunkLayout } from "../../src/storage/chunk-layout.ts";
import { type PieceKey, readCopyKey } from "../../src/storage/piece-key.ts";
import { sleep } from "../helpers/process-cluster.ts";
import {
  COPIES,
  copyStatus,
  readCopiesGauge,
  piecesServed as servedBy,
  startCopyHolders,
  waitFor,
} from "./helpers/copy-probes.ts";
import { hotVolume, loopbackMap, startReader, stopChildren } from "./helpers/cpu-holders.ts";

const KiB = 1024;
const VOLUME = hotVolume(2);
const PROCESSES = ["n1", "n2", "n3"];
const RATE = 60;

describe("temporary read copies of a hot file, on real agents", () => {
  let root: string;
  let reader: Agent;
  let peers: PeerClients;
  const children = new Map<string, ChildProcess>();
  const metrics = new Map<string, string>();
  const grpcAddress = new Map<string, string>();
  const events: ReadCopyEvent[] = [];
  /**
   * The file's name: placed on two processes, the third first in line for a
   * copy, the reader after it, and owned by a holder, so that every call
   * (hot notes, records, hold, renew, release) crosses the wire.
   */
  let name: string;
  let placed: string[];
  let target: string;
  let owner: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-read-copies-"));
    const map = await loopbackMap(["reader", ...PROCESSES]);
    for (const node of map.nodes) grpcAddress.set(node.id, node.addresses[0]);
    await startCopyHolders(map, PROCESSES, root, VOLUME, { children, metrics, events });
    reader = await startReader(map, join(root, "reader"), VOLUME, {
      // One scrub cycle at start, then the test runs them.
      scrubRateBytesPerSecond: Number.POSITIVE_INFINITY,
      scrubPauseMs: 3_600_000,
      readCopies: COPIES,
    });
    peers = new PeerClients({ map: () => reader.map, log: silentLogger() });
    // Deterministic: placement is a pure function of the map and the name.
    for (let i = 0; i < 500 && name === undefined; i++) {
      const candidate = `clip-${i}.mp4`;
      const ranked = placeStripe(
        map,
        { volume: VOLUME.name, fileId: fileIdOf(VOLUME.name, candidate), stripe: 0 },
        4,
      );
      const ownedBy = fileOwner(map, VOLUME.name, fileIdOf(VOLUME.name, candidate), VOLUME.redundancy);
      if (ranked[3] !== "reader" || !ranked.slice(0, 2).includes(ownedBy)) continue;
      name = candidate;
      placed = ranked.slice(0, 2);
      target = ranked[2] as string;
      owner = ownedBy;
    }
    assert.ok(name !== undefined, "some name places its stripe on two processes and the third next");
  });

  after(async () => {
    peers?.close();
    await reader?.stop(500);
    // Only the processes this test started, by PID.
    await stopChildren(children.values());
    await rm(root, { recursive: true, force: true });
  });

  const statusOf = (node: string) => copyStatus(reader, peers, node);
  const piecesServed = (node: string) => servedBy(metrics.get(node) as string);
  const gauge = (node: string, phase: string) => readCopiesGauge(metrics.get(node) as string, phase);

  /** Retried: a holder busy with the test's load may miss heartbeats and be thought down a moment. */
  async function put(bytes: Buffer): Promise<FileManifest> {
    const client = new AgentClient(reader.addresses[0]);
    try {
      return await client.putRetrying(
        VOLUME.name,
        name,
        async function* () {
          yield bytes;
        },
        { sizeBytes: bytes.length, attempts: 4 },
      );
    } finally {
      client.close();
    }
  }

  /**
   * Reads of the whole file at RATE a second, each checked end to end
   * (readFile checks the whole-file crc32c), by the reader agent exactly as
   * its gateway would, until stop(); at most 90 s.
   */
  function readLoad(manifest: () => FileManifest): {
    stop: () => Promise<{ reads: number; errors: string[] }>;
  } {
    let stopped = false;
    let reads = 0;
    const errors: string[] = [];
    const inFlight = new Set<Promise<void>>();
    const t0 = performance.now();
    const loop = (async () => {
      for (let i = 0; !stopped && i < RATE * 90; i++) {
        const waitMs = t0 + (i * 1_000) / RATE - performance.now();
        if (waitMs > 0) await sleep(waitMs);
        const m = manifest();
        const read = (async () => {
          try {
            let bytes = 0;
            for await (const part of reader.files.read(m)) bytes += part.length;
            assert.equal(bytes, m.sizeBytes);
            reads++;
          } catch (error) {
            errors.push((error as Error).message);
          }
        })();
        inFlight.add(read);
        void read.finally(() => inFlight.delete(read));
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
        await Promise.all(inFlight);
        return { reads, errors };
      },
    };
  }

  const copyOn = (status: ReadCopyStatus, node: string, version: number, phase?: string) =>
    status.owned.find(
      (c) => c.node === node && c.version === version && (phase === undefined || c.phase === phase),
    );

  test("a copy is added while both holders are High, takes the reads, drains with a read in flight and is removed", {
    timeout: 180_000,
  }, async () => {
    const bytes = Buffer.alloc(48 * KiB);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
    const manifest = await put(bytes);
    const copyKey = readCopyKey({
      volume: VOLUME.name,
      fileId: manifest.fileId,
      version: manifest.version,
      stripe: 0,
      slot: 0,
    });
    // Starting four agents on two shared cores can leave one briefly busy: reads begin once all are Low.
    await waitFor("every process Low", 30_000, async () =>
      PROCESSES.every((n) => reader.loadOf(n) === "Low") ? true : undefined,
    );
    const servedBefore = await piecesServed(target);
    const load = readLoad(() => manifest);
    const t0 = performance.now();
    const allHighMs = await waitFor("both holders High", 30_000, async () =>
      placed.every((n) => reader.loadOf(n) === "High") ? performance.now() : undefined,
    );
    await waitFor(`a copy serving on ${target}`, 30_000, async () =>
      copyOn(await statusOf(owner), target, manifest.version, "serving"),
    );
    const servingMs = performance.now();
    assert.equal(await gauge(target as string, "serving"), 1, "the holder's gauge counts its copy");
    // What `mosaic nodes` shows comes from the same call.
    const info = new AgentClient(grpcAddress.get(target) as string);
    const file = { epoch: reader.map.epoch, nodes: reader.map.nodes.filter((n) => n.id === target) };
    const [node] = clusterStatus(file, [[{ address: info.address, info: await info.cluster() }]]).nodes;
    info.close();
    assert.equal(describeReadCopies(node as NodeStatus), "hot: 1 serving");
    // Reads go to the copy: its holder serves piece reads it never served before.
    const served = await waitFor(`reads of the copy on ${target}`, 15_000, async () => {
      const n = (await piecesServed(target)) - servedBefore;
      return n >= 20 ? n : undefined;
    });
    // Let the copy take the load for a moment, then stop it.
    await sleep(2_000);
    const { reads, errors } = await load.stop();
    const stoppedMs = performance.now();
    assert.deepEqual(errors, [], "every read returned the file whole");

    // A read of the copy that begins before the drain, held back inside its holder until the
    // drain is seen (at most 60 s: on a busy machine the levels may take a while to fall).
    children.get(target)?.stdin?.write("slow-copies 60000\n");
    await sleep(100);
    let readDoneMs = 0;
    const slowRead = peers.getPiece(target, copyKey).then((r) => {
      readDoneMs = performance.now();
      return r;
    });
    await waitFor("the copy draining with the read in flight", 30_000, async () => {
      const c = copyOn(await statusOf(owner), target, manifest.version, "draining");
      return c !== undefined && c.inFlight >= 1 ? c : undefined;
    });
    const drainingMs = performance.now();
    assert.equal(readDoneMs, 0, "the drain began while the read was in flight");
    // No new read goes to a draining copy: readers are no longer told of it, its holder refuses it.
    const record = (await peers.readCopies(owner, {
      op: "record",
      volume: VOLUME.name,
      fileId: manifest.fileId,
    })) as { copies: unknown[] };
    assert.deepEqual(record.copies, []);
    await assert.rejects(peers.getPiece(target, copyKey), /draining/);
    assert.ok(
      (await statusOf(target)).held.some((h) => h.phase === "draining"),
      "the copy is still on its holder while its read runs",
    );
    children.get(target)?.stdin?.write("slow-copies 0\n"); // the held read's answer goes now
    const got = await slowRead;
    assert.ok(
      Buffer.concat(got.data).equals(bytes),
      "the read begun before the drain returned the piece whole",
    );
    const removedMs = await waitFor("the copy removed", 15_000, async () =>
      (await statusOf(owner)).owned.length === 0 && (await statusOf(target)).held.length === 0
        ? performance.now()
        : undefined,
    );
    assert.ok(removedMs >= readDoneMs, "removed only after its read ended");
    assert.equal(await peers.statPiece(target, copyKey), undefined, "gone from the holder's disk");
    assert.equal(await gauge(target as string, "serving"), 0);
    // Both told as they happened by the owner (a Kubernetes agent turns these into Events).
    assert.deepEqual(
      events.map((e) => [e.kind, e.node, e.version, e.reason.split(";")[0]]),
      [
        ["added", target, manifest.version, "every holder of the stripe High"],
        ["removed", target, manifest.version, "drained"],
      ],
    );
    console.log(
      `holders ${placed.join(", ")}, copy on ${target}, owner ${owner}: both High ${((allHighMs - t0) / 1e3).toFixed(1)} s ` +
        `after reads began; copy serving ${((servingMs - allHighMs) / 1e3).toFixed(2)} s after all High; ` +
        `${served} piece reads served by it; ${reads} reads, none failed; draining ` +
        `${((drainingMs - stoppedMs) / 1e3).toFixed(2)} s after the reads stopped; removed ` +
        `${((removedMs - readDoneMs) / 1e3).toFixed(2)} s after the read in flight ended ` +
        `(${((removedMs - stoppedMs) / 1e3).toFixed(2)} s after the reads stopped)`,
    );
  });

  test("the rebuild and the scrubber leave a registered copy alone; an orphan and a lapsed copy are collected", {
    timeout: 60_000,
  }, async () => {
    const manifest = await put(Buffer.alloc(48 * KiB, 3));
    const base: PieceKey = {
      volume: VOLUME.name,
      fileId: manifest.fileId,
      version: manifest.version,
      stripe: 0,
      slot: 0,
    };
    const registered = readCopyKey(base);
    const orphan = readCopyKey({ ...base, slot: 1 });
    const data = Buffer.alloc(manifest.sizeBytes, 5);
    await reader.readCopies.handle(encodeJson({ op: "hold", keys: [registered], leaseMs: 60_000 }));
    await reader.store.put(registered, data);
    await reader.store.put(orphan, data);
    // Corrupt the registered copy: a scrubber that looked at it would report and try to repair it.
    const layout = new ChunkLayout(reader.store.dir);
    const fh = await open(layout.chunkPath(registered), "r+");
    await fh.write(Buffer.from([0xff]), 0, 1, (await fh.stat()).size - 1);
    await fh.close();
    const scrub = await reader.scrubber?.runCycle();
    assert.ok(scrub !== undefined);
    assert.deepEqual(scrub.corrupt, [], "copies are not scrubbed");
    const passes = reader.rebuild?.progress().passes ?? 0;
    reader.rebuild?.nudge("test");
    await waitFor("a rebuild pass", 20_000, async () =>
      (reader.rebuild?.progress().passes ?? 0) > passes && reader.rebuild?.progress().state === "idle"
        ? true
        : undefined,
    );
    await access(layout.chunkPath(registered)); // still there
    await assert.rejects(access(layout.chunkPath(orphan)), { code: "ENOENT" }, "the orphan is garbage");
    // Its owner stops renewing (here: a last renewal with a short lease): the holder removes it.
    await reader.readCopies.handle(
      encodeJson({ op: "renew", keys: [registered], phase: "serving", leaseMs: 300 }),
    );
    await waitFor("the lapsed copy removed", 10_000, async () =>
      access(layout.chunkPath(registered)).then(
        () => undefined,
        () => true,
      ),
    );
    assert.deepEqual(reader.readCopies.status().held, []);
  });

  test("an overwrite removes the old version's copies at once, and a delete the file's, while reads go on", {
    timeout: 180_000,
  }, async () => {
    const client = new AgentClient(reader.addresses[0]);
    try {
      let current = await put(Buffer.alloc(48 * KiB, 4));
      const load = readLoad(() => current);
      const first = current;
      await waitFor(`a copy of v${first.version} serving`, 40_000, async () =>
        copyOn(await statusOf(owner), target, first.version, "serving"),
      );
      const oldKey = readCopyKey({
        volume: VOLUME.name,
        fileId: first.fileId,
        version: first.version,
        stripe: 0,
        slot: 0,
      });
      const overwrittenAt = performance.now();
      current = await put(Buffer.alloc(40 * KiB, 9));
      await waitFor(`v${first.version}'s copy removed`, 10_000, async () =>
        (await statusOf(owner)).owned.every((c) => c.version !== first.version) &&
        (await peers.statPiece(target, oldKey)) === undefined
          ? true
          : undefined,
      );
      const overwriteMs = performance.now() - overwrittenAt;
      // Still hot: the new version may gain its own copy; the delete must take it too.
      await sleep(1_500);
      const deletedAt = performance.now();
      await client.delete(VOLUME.name, name);
      await waitFor("every copy of the deleted file removed", 10_000, async () => {
        const statuses = await Promise.all(["reader", ...PROCESSES].map(statusOf));
        return statuses.every((s) => s.owned.length === 0 && s.held.length === 0) ? true : undefined;
      });
      const deleteMs = performance.now() - deletedAt;
      const { errors } = await load.stop();
      // Reads of a version replaced under them may fail (the file changed); none may return wrong bytes.
      for (const e of errors) assert.match(e, /overwritten|deleted|no such file|changed|unavailable/i);
      const removed = events.filter((e) => e.kind === "removed");
      assert.ok(
        removed.some((e) => e.version === first.version && e.reason.includes("overwritten")),
        removed.map((e) => `v${e.version}: ${e.reason}`).join("; "),
      );
      console.log(
        `overwrite: old copies gone ${(overwriteMs / 1e3).toFixed(2)} s after the put returned; ` +
          `delete: all copies gone ${(deleteMs / 1e3).toFixed(2)} s after it returned; ${errors.length} reads failed as the file changed`,
      );
    } finally {
      client.close();
    }
  });
});
