// Temporary read copies of an erasure-coded file's hot data piece, on real
// agents (load/read-copies.ts): four agent processes that each spend 10 ms
// of CPU per piece read (cpu-holder.ts, as in experiment 3) and one agent
// in this process that reads, as a player would: mostly Range reads of the
// file's first 64 KiB (data slot 0 of its one 2+1 stripe), a few whole
// reads. Slot 0's holder turns High, slot 1's and the parity holder stay
// Low; the file's owner adds a copy of slot 0 alone on the one process that
// holds no piece of the stripe, and Range reads are then served from it.
// When the heavy reads stop, the copy drains (a Range read of it begun
// before finishes whole) and leaves the disk, while a trickle of reads goes
// on without one error. Every read's bytes are checked.
//
// The holders' load thresholds are a quarter of production's (High from 25 %
// of one core busy), so 60 reads a second make slot 0's holder High without
// taking the 2 shared cores from everything else.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Agent } from "../../src/agent.ts";
import { AgentClient } from "../../src/client/agent-client.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import { fileIdOf } from "../../src/core/names.ts";
import { fileOwner } from "../../src/core/ownership.ts";
import { placeStripe } from "../../src/core/placement.ts";
import type { VolumeSpec } from "../../src/core/volume.ts";
import type { ReadCopyEvent } from "../../src/load/read-copies.ts";
import { silentLogger } from "../../src/log.ts";
import { PeerClients } from "../../src/rpc/peer-client.ts";
import { readCopyKey } from "../../src/storage/piece-key.ts";
import { sleep } from "../helpers/process-cluster.ts";
import {
  COPIES,
  copyStatus,
  readCopiesGauge,
  piecesServed as servedBy,
  startCopyHolders,
  waitFor,
} from "./helpers/copy-probes.ts";
import { loopbackMap, startReader, stopChildren } from "./helpers/cpu-holders.ts";

const KiB = 1024;
const CHUNK = 64 * KiB;
const VOLUME: VolumeSpec = {
  name: "hot",
  chunkSizeBytes: CHUNK,
  redundancy: { erasure: { data: 2, parity: 1 } },
  capacityBytes: 2 ** 40,
};
const PROCESSES = ["n1", "n2", "n3", "n4", "n5"];
/** Range reads of slot 0 a second while the piece is hot; one read in WHOLE_EVERY reads the whole file. */
const RATE = 60;
const WHOLE_EVERY = 20;

describe("temporary read copies of an erasure-coded file's hot data piece, on real agents", () => {
  let root: string;
  let reader: Agent;
  let peers: PeerClients;
  const children = new Map<string, ChildProcess>();
  const metrics = new Map<string, string>();
  const events: ReadCopyEvent[] = [];
  /** What a test started that must end even when it fails: run first in after(). */
  const cleanups: (() => unknown)[] = [];
  /**
   * The file's name: its stripe on three processes (data slots 0 and 1,
   * parity), the other two next in line for a copy (`spares`: two, so that
   * one briefly Medium on this shared machine still leaves a process), the
   * reader last, and owned by a process, so that every call crosses the wire.
   */
  let name: string;
  let placed: string[];
  let spares: string[];
  let owner: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-read-copies-ec-"));
    const map = await loopbackMap(["reader", ...PROCESSES]);
    await startCopyHolders(map, PROCESSES, root, VOLUME, { children, metrics, events });
    reader = await startReader(map, join(root, "reader"), VOLUME, { readCopies: COPIES });
    peers = new PeerClients({ map: () => reader.map, log: silentLogger() });
    // Deterministic: placement is a pure function of the map and the name.
    for (let i = 0; i < 1_000 && name === undefined; i++) {
      const candidate = `film-${i}.mp4`;
      const fileId = fileIdOf(VOLUME.name, candidate);
      const ranked = placeStripe(map, { volume: VOLUME.name, fileId, stripe: 0 }, 6);
      const ownedBy = fileOwner(map, VOLUME.name, fileId, VOLUME.redundancy);
      if (ranked[5] !== "reader" || ownedBy === "reader") continue;
      name = candidate;
      placed = ranked.slice(0, 3);
      spares = ranked.slice(3, 5);
      owner = ownedBy;
    }
    assert.ok(name !== undefined, "some name places its stripe on three processes and the other two next");
  });

  after(async () => {
    for (const cleanup of cleanups) await cleanup();
    peers?.close();
    await reader?.stop(500);
    // Only the processes this test started, by PID.
    await stopChildren(children.values());
    await rm(root, { recursive: true, force: true });
  });

  const statusOf = (node: string) => copyStatus(reader, peers, node);
  const piecesServed = (node: string) => servedBy(metrics.get(node) as string);
  const gauge = (node: string, phase: string) => readCopiesGauge(metrics.get(node) as string, phase);

  /**
   * Reads at `rate()` a second by the reader agent exactly as its gateway
   * would: Range reads of [0, 64 KiB) (data slot 0 alone), every
   * WHOLE_EVERY-th the whole file; each one's bytes compared with `bytes`.
   * Until stop(); at most 120 s.
   */
  function readLoad(
    manifest: FileManifest,
    bytes: Buffer,
    rate: () => number,
  ): { stop: () => Promise<{ reads: number; errors: string[] }> } {
    // stop() may be called twice (the test's end, its finally): the second gets the first's answer.
    let stopped = false;
    let reads = 0;
    const errors: string[] = [];
    const inFlight = new Set<Promise<void>>();
    const t0 = performance.now();
    const loop = (async () => {
      for (let i = 0; !stopped && performance.now() - t0 < 120_000; i++) {
        await sleep(1_000 / rate());
        const range = i % WHOLE_EVERY === 0 ? undefined : { start: 0, end: CHUNK };
        const read = (async () => {
          try {
            const parts: Buffer[] = [];
            for await (const part of reader.files.read(manifest, range)) parts.push(part);
            const expected = range === undefined ? bytes : bytes.subarray(range.start, range.end);
            assert.ok(Buffer.concat(parts).equals(expected), "the bytes written");
            reads++;
          } catch (error) {
            errors.push((error as Error).message);
          }
        })();
        inFlight.add(read);
        void read.finally(() => inFlight.delete(read));
      }
    })();
    let ended: Promise<{ reads: number; errors: string[] }> | undefined;
    return {
      stop: () => {
        stopped = true;
        ended ??= (async () => {
          await loop;
          await Promise.all(inFlight);
          return { reads, errors };
        })();
        return ended;
      },
    };
  }

  test("slot 0's holder High: a copy of slot 0 alone, on a node with no piece of the stripe, takes the Range reads, drains with a Range read in flight and is removed", {
    timeout: 240_000,
  }, async () => {
    // One whole stripe: data slots 0 and 1 hold 64 KiB each.
    const bytes = Buffer.alloc(2 * CHUNK);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + (i >> 9)) & 0xff;
    const client = new AgentClient(reader.addresses[0]);
    const manifest = await client
      .putRetrying(
        VOLUME.name,
        name,
        async function* () {
          yield bytes;
        },
        { sizeBytes: bytes.length, attempts: 4 },
      )
      .finally(() => client.close());
    assert.equal(manifest.stripes, 1);
    const copyKey = readCopyKey({
      volume: VOLUME.name,
      fileId: manifest.fileId,
      version: manifest.version,
      stripe: 0,
      slot: 0,
    });
    const [hot, cold, parity] = placed as [string, string, string];
    // Starting five agents on two cores makes some briefly High: the reads begin once all are Low.
    await waitFor("every process Low", 30_000, async () =>
      PROCESSES.every((n) => reader.loadOf(n) === "Low") ? true : undefined,
    );
    // Which holders the reader saw High, and when: a slot may gain a copy only if its holder was.
    const seenHigh = new Set<string>();
    const sampler = setInterval(() => {
      for (const n of placed) if (reader.loadOf(n) === "High") seenHigh.add(n);
    }, 20);
    const servedBefore = new Map(
      await Promise.all(spares.map(async (n) => [n, await piecesServed(n)] as const)),
    );
    let rate = RATE;
    const load = readLoad(manifest, bytes, () => rate);
    cleanups.push(
      () => clearInterval(sampler),
      () => load.stop(),
      () => {
        for (const n of spares) children.get(n)?.stdin?.write("slow-copies 0\n");
      },
    );
    const t0 = performance.now();
    const hotMs = await waitFor(`slot 0's holder ${hot} High`, 30_000, async () =>
      reader.loadOf(hot) === "High" ? performance.now() : undefined,
    );
    const copy = await waitFor(`a copy of slot 0 serving on ${spares.join(" or ")}`, 30_000, async () =>
      (await statusOf(owner)).owned.find((c) => c.slot === 0 && c.phase === "serving"),
    );
    const target = copy.node;
    assert.ok(spares.includes(target), `the copy is on ${target}, which has no piece of the stripe`);
    const servingMs = performance.now();
    assert.equal(copy.slot, 0, "the hot data slot's copy");
    assert.equal(await gauge(target, "serving"), 1, "the holder's gauge counts its copy");
    // Range reads go to the copy: its holder, which has no piece of the stripe, serves piece reads.
    const served = await waitFor(`Range reads of the copy on ${target}`, 15_000, async () => {
      const n = (await piecesServed(target)) - (servedBefore.get(target) as number);
      return n >= 20 ? n : undefined;
    });
    await sleep(2_000);
    const owned = (await statusOf(owner)).owned;
    assert.deepEqual(
      owned.filter((c) => c.slot === 0).map((c) => c.node),
      [target],
      "one copy of slot 0, on the node with no piece of the stripe",
    );
    // The load goes; a trickle of reads goes on through the drain and the removal.
    rate = 4;
    const heavyStoppedMs = performance.now();

    // A Range read of the copy that begins before the drain, held back inside its holder until
    // the drain is seen (at most 60 s).
    children.get(target)?.stdin?.write("slow-copies 60000\n");
    await sleep(100);
    let readDoneMs = 0;
    const range = { offset: 1_000, length: 5_000 };
    const slowRead = peers.getPiece(target, copyKey, range).then((r) => {
      readDoneMs = performance.now();
      return r;
    });
    await waitFor("the copy draining with the read in flight", 30_000, async () => {
      const c = (await statusOf(owner)).owned.find((o) => o.node === target && o.phase === "draining");
      return c !== undefined && c.inFlight >= 1 ? c : undefined;
    });
    const drainingMs = performance.now();
    assert.equal(readDoneMs, 0, "the drain began while the read was in flight");
    await assert.rejects(peers.getPiece(target, copyKey), /draining/, "no new read of a draining copy");
    assert.ok(
      (await statusOf(target)).held.some((h) => h.phase === "draining"),
      "the copy is still on its holder while its read runs",
    );
    children.get(target)?.stdin?.write("slow-copies 0\n"); // the held read's answer goes now
    const got = await slowRead;
    assert.ok(
      Buffer.concat(got.data).equals(bytes.subarray(range.offset, range.offset + range.length)),
      "the Range read begun before the drain returned its bytes whole",
    );
    const removedMs = await waitFor("the copy removed", 20_000, async () =>
      (await statusOf(owner)).owned.every((c) => c.node !== target) &&
      (await statusOf(target)).held.length === 0
        ? performance.now()
        : undefined,
    );
    assert.ok(removedMs >= readDoneMs, "removed only after its read ended");
    assert.equal(await peers.statPiece(target, copyKey), undefined, "gone from the holder's disk");
    assert.equal(await gauge(target, "serving"), 0);
    await sleep(1_000); // reads after the removal, from a reader whose record may still name the copy
    const { reads, errors } = await load.stop();
    clearInterval(sampler);
    assert.deepEqual(errors, [], "every read returned its bytes, before, during and after the copy");
    // Told as they happened by the owner (a Kubernetes agent turns these into Events). On this
    // shared machine slot 0 may turn hot again in the trickle: then its later copies drain too.
    const slot0 = events.filter((e) => e.slot === 0).map((e) => [e.kind, e.node, e.reason.split(";")[0]]);
    const told = `all events: ${JSON.stringify(events.map((e) => [e.kind, e.node, e.slot, e.reason]))}; seen High: ${[...seenHigh]}`;
    assert.deepEqual(
      slot0.slice(0, 2),
      [
        ["added", target, "every holder of data slot 0 High"],
        ["removed", target, "drained"],
      ],
      told,
    );
    assert.ok(
      events.every((e) => e.node !== placed[e.slot]),
      `never on the slot's own holder: ${told}`,
    );
    // Slot 1 is read by the few whole reads only: a copy of it only if the machine's load made its
    // holder High anyway; parity is never read, so never copied.
    const others = events.filter((e) => e.slot !== 0);
    assert.ok(
      others.every((e) => e.slot === 1 && seenHigh.has(cold)),
      `other slots copied: ${JSON.stringify(others)}; seen High: ${[...seenHigh].join(", ")} (parity on ${parity})`,
    );
    await waitFor("every copy gone once the reads stop", 20_000, async () =>
      (await Promise.all(["reader", ...PROCESSES].map(statusOf))).every(
        (s) => s.held.length === 0 && s.owned.length === 0,
      )
        ? true
        : undefined,
    );
    console.log(
      `stripe on ${placed.join(", ")} (slot 0, slot 1, parity), copy on ${target}, owner ${owner}: ` +
        `slot 0's holder High ${((hotMs - t0) / 1e3).toFixed(1)} s after reads began; copy serving ` +
        `${((servingMs - hotMs) / 1e3).toFixed(2)} s after; ${served} piece reads served by it; ` +
        `draining ${((drainingMs - heavyStoppedMs) / 1e3).toFixed(2)} s after the heavy reads stopped; removed ` +
        `${((removedMs - readDoneMs) / 1e3).toFixed(2)} s after the read in flight ended; ${reads} reads, none failed; ` +
        `slot 1's holder ${seenHigh.has(cold) ? "was" : "never"} High, ${others.length} events of other slots`,
    );
  });
});
