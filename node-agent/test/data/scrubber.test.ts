import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import type { Agent } from "../../src/agent.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import { placeStripe } from "../../src/core/placement.ts";
import { layoutOf } from "../../src/core/volume.ts";
import { PieceIO } from "../../src/data/pieces.ts";
import type { ScrubClock } from "../../src/data/scrub-rate.ts";
import { Scrubber, type ScrubContext, type ScrubStore } from "../../src/data/scrubber.ts";
import { PeerClients } from "../../src/rpc/peer-client.ts";
import type { PieceKey } from "../../src/storage/chunk-format.ts";
import { chunkHeaderBytes, chunkPath, flipByte } from "../helpers/chunk-files.ts";
import {
  gather,
  type InProcessCluster,
  MiB,
  patternBytes,
  startInProcessCluster,
  TEST_VOLUMES,
} from "../helpers/in-process-cluster.ts";

describe("scrubber over three in-process agents", () => {
  let cluster: InProcessCluster;
  const peers: PeerClients[] = [];
  const logLines: Record<string, unknown>[] = [];

  // What agent.ts builds for its file layer, rebuilt from the agent's public parts.
  function contextOf(agent: Agent): ScrubContext {
    const log = pino({ level: "info" }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
    const clients = new PeerClients({ map: () => agent.map, log });
    peers.push(clients);
    return {
      self: agent.nodeId,
      map: () => agent.map,
      volume: (name) => TEST_VOLUMES.find((v) => v.name === name),
      pieces: new PieceIO(agent.nodeId, agent.store, clients, log),
      log,
    };
  }

  function scrubberOf(i: number, options: Partial<ConstructorParameters<typeof Scrubber>[2]> = {}) {
    const agent = cluster.agents[i] as Agent;
    return new Scrubber(contextOf(agent), agent.store, { rateBytesPerSecond: Infinity, ...options });
  }

  /** The node placement puts `slot` of `stripe` on. */
  function holderOf(m: FileManifest, stripe: number, slot: number): number {
    const nodes = placeStripe(cluster.agents[0]?.map as Agent["map"], { ...m, stripe }, layoutOf(m).width);
    return cluster.agents.findIndex((a) => a.nodeId === nodes[slot]);
  }

  function keyOf(m: FileManifest, stripe: number, slot: number): PieceKey {
    return { volume: m.volume, fileId: m.fileId, version: m.version, stripe, slot };
  }

  async function corrupt(i: number, m: FileManifest, stripe: number | "manifest", slot: number) {
    const agent = cluster.agents[i] as Agent;
    await flipByte(chunkPath(agent.store.dir, m, stripe, slot), chunkHeaderBytes(m.volume) + 5);
  }

  const ofFile = (m: FileManifest) => (f: { fileId: string }) => f.fileId === m.fileId;

  before(async () => {
    cluster = await startInProcessCluster(3);
  });
  after(async () => {
    for (const p of peers) p.close();
    await cluster.stop();
  });

  test("erasure 2+1: a flipped data byte and a flipped parity byte are found and repaired in one cycle", async () => {
    const size = 3 * MiB + 17; // 7 stripes of 512 KiB, the last one short
    const m = await cluster.client(0).put("media", "scrub/ec.bin", patternBytes(size, 11), size);
    // node-0's pieces: one data and one parity piece on different stripes.
    const held = [];
    for (let stripe = 0; stripe < m.stripes; stripe++) {
      for (let slot = 0; slot < 3; slot++) if (holderOf(m, stripe, slot) === 0) held.push({ stripe, slot });
    }
    const data = held.find((p) => p.slot < 2);
    const parity = held.find((p) => p.slot === 2 && p.stripe !== data?.stripe);
    assert.ok(data && parity, "node-0 holds a data and a parity piece");
    const store = (cluster.agents[0] as Agent).store;
    const before = await Promise.all(
      [data, parity].map(async (p) => (await store.get(keyOf(m, p.stripe, p.slot))).data),
    );
    await corrupt(0, m, data.stripe, data.slot);
    await corrupt(0, m, parity.stripe, parity.slot);
    await assert.rejects(store.get(keyOf(m, data.stripe, data.slot)), /checksum|corrupt|crc/i);

    logLines.length = 0;
    const report = await scrubberOf(0).runCycle();
    assert.equal(report.complete, true);
    assert.deepEqual(
      report.corrupt.map((f) => [f.stripe, f.slot]),
      [
        [data.stripe, data.slot],
        [parity.stripe, parity.slot],
      ].sort((a, b) => (a[0] as number) - (b[0] as number)),
    );
    assert.equal(report.repaired.length, 2);
    assert.equal(report.unrepairable.length, 0);
    assert.ok(report.repaired.every((f) => f.file === "scrub/ec.bin"));
    assert.ok(report.piecesChecked >= held.length && report.bytesChecked > 0);
    for (const [i, p] of [data, parity].entries()) {
      const { data: now } = await store.get(keyOf(m, p.stripe, p.slot));
      assert.ok(
        now.equals(before[i] as Buffer),
        `stripe ${p.stripe} slot ${p.slot} holds its original bytes`,
      );
    }
    const findings = logLines.filter((l) => l.msg === "scrub: bad piece repaired");
    assert.equal(findings.length, 2);
    assert.deepEqual(
      findings.map((l) => [l.volume, l.file, l.stripe, l.slot, typeof l.reason]).sort(),
      [
        ["media", "scrub/ec.bin", data.stripe, data.slot, "string"],
        ["media", "scrub/ec.bin", parity.stripe, parity.slot, "string"],
      ].sort(),
    );
    assert.equal(logLines.filter((l) => l.msg === "scrub cycle done").length, 1);

    const again = await scrubberOf(0).runCycle();
    assert.equal(again.corrupt.length, 0, "a second cycle finds nothing");
    const { body } = await cluster.client(1).get("media", "scrub/ec.bin");
    assert.ok((await gather(body)).equals(await gather(patternBytes(size, 11))));
  });

  test("erasure 2+1: a short data piece of the last stripe is rebuilt to its own length", async () => {
    const size = 512 * 1024 + 17; // stripe 1 holds 17 bytes: slot 0 has 17, slot 1 none, parity 24
    const m = await cluster.client(0).put("media", "scrub/short.bin", patternBytes(size, 14), size);
    const node = holderOf(m, 1, 0);
    const store = (cluster.agents[node] as Agent).store;
    const original = (await store.get(keyOf(m, 1, 0))).data;
    assert.equal(original.length, 17);
    await corrupt(node, m, 1, 0);
    const report = await scrubberOf(node).runCycle();
    assert.deepEqual(
      report.repaired.filter(ofFile(m)).map((f) => [f.stripe, f.slot]),
      [[1, 0]],
    );
    assert.ok((await store.get(keyOf(m, 1, 0))).data.equals(original));
  });

  test("replicas: a flipped byte is repaired from another replica; a bad manifest copy from its holders", async () => {
    const size = 200_000; // 4 stripes of 64 KiB
    const m = await cluster.client(1).put("thumbs", "scrub/rep.bin", patternBytes(size, 12), size);
    const store = (cluster.agents[1] as Agent).store;
    // Three replicas on three nodes: node-1 holds one slot of every stripe.
    const slot = [0, 1, 2].find((s) => holderOf(m, 1, s) === 1) as number;
    const original = (await store.get(keyOf(m, 1, slot))).data;
    await corrupt(1, m, 1, slot);
    const copy = (await store.pieces(m.volume, m.fileId, m.version)).find((k) => k.stripe === -1);
    if (copy !== undefined) await corrupt(1, m, "manifest", copy.slot);
    const bad = copy === undefined ? 1 : 2;

    const report = await scrubberOf(1).runCycle();
    assert.equal(report.corrupt.filter(ofFile(m)).length, bad);
    assert.equal(report.repaired.filter(ofFile(m)).length, bad);
    assert.ok((await store.get(keyOf(m, 1, slot))).data.equals(original));
    if (copy !== undefined)
      assert.equal(JSON.parse((await store.get(copy)).data.toString()).version, m.version);
    assert.equal((await scrubberOf(1).runCycle()).corrupt.length, 0, "a second cycle finds nothing");
  });

  test("a piece whose stripe has too few healthy pieces is reported unrepairable and kept", async () => {
    const size = MiB;
    const m = await cluster.client(2).put("media", "scrub/lost.bin", patternBytes(size, 13), size);
    // Stripe 0: two of its three pieces bad, so no node can rebuild either.
    const holders = [0, 1, 2].map((slot) => holderOf(m, 0, slot));
    await corrupt(holders[0] as number, m, 0, 0);
    await corrupt(holders[2] as number, m, 0, 2);

    const report = await scrubberOf(holders[0] as number).runCycle();
    assert.deepEqual(
      report.corrupt.filter(ofFile(m)).map((f) => [f.stripe, f.slot]),
      [[0, 0]],
    );
    assert.equal(report.repaired.filter(ofFile(m)).length, 0);
    const [lost] = report.unrepairable.filter(ofFile(m));
    assert.match(lost?.reason ?? "", /1 healthy pieces of the stripe, 2 needed/);
    const store = (cluster.agents[holders[0] as number] as Agent).store;
    assert.ok((await store.stat(keyOf(m, 0, 0))) !== undefined, "the bad piece is kept, not deleted");

    // Leave no bad pieces behind for the tests that follow (deleting collects the version).
    await cluster.client(0).delete("media", "scrub/lost.bin");
  });

  test("the rate limit is honoured: bytes read by simulated time t never exceed rate × t", async () => {
    const rateBytesPerSecond = 256 * 1024;
    let nowMs = 0;
    const clock: ScrubClock = {
      now: () => nowMs,
      sleep: async (ms) => {
        nowMs += ms;
      },
    };
    const agent = cluster.agents[0] as Agent;
    const reads: { atMs: number; bytes: number }[] = [];
    const real = agent.store;
    const store: ScrubStore = {
      volumes: () => real.volumes(),
      files: (volume) => real.files(volume),
      versions: (volume, fileId) => real.versions(volume, fileId),
      pieces: (volume, fileId, version) => real.pieces(volume, fileId, version),
      stat: (key) => real.stat(key),
      put: (key, data) => real.put(key, data),
      get: async (key) => {
        const result = await real.get(key);
        reads.push({ atMs: nowMs, bytes: result.data.length });
        return result;
      },
    };
    const scrubber = new Scrubber(contextOf(agent), store, { rateBytesPerSecond, clock });
    const report = await scrubber.runCycle();
    assert.ok(
      report.bytesChecked > 4 * rateBytesPerSecond,
      `enough bytes to span seconds: ${report.bytesChecked}`,
    );
    let total = 0;
    for (const r of reads) {
      total += r.bytes;
      assert.ok(total <= (rateBytesPerSecond * r.atMs) / 1000 + 1, `${total} bytes read by ${r.atMs} ms`);
    }
    assert.equal(total, report.bytesChecked);
    // Paced, not stalled: the cycle takes what the rate needs, no more.
    assert.ok(Math.abs(report.elapsedMs - (total * 1000) / rateBytesPerSecond) < 1);
  });

  test("stop() during a cycle ends it promptly and leaves nothing running", async () => {
    const scrubber = scrubberOf(0, { rateBytesPerSecond: 1024 }); // a cycle would take hours
    scrubber.start();
    assert.equal(scrubber.running, true);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const t0 = performance.now();
    await scrubber.stop();
    assert.ok(performance.now() - t0 < 500, "stopped within 500 ms");
    assert.equal(scrubber.running, false);
    assert.ok(logLines.some((l) => l.msg === "scrub cycle stopped part way"));
  });
});
