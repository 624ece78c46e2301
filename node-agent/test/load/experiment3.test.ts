// Seed 002's experiment 3 on Mosaic: requests that each cost 10 ms of CPU
// on the server that takes them, at rising rates. Here a request is a read
// of one hot piece (64 KiB, three replicas on three real agent processes
// that each spend 10 ms of their event loop per piece read: cpu-holder.ts),
// issued open-loop (on schedule, whether or not earlier ones finished, as
// httperf does) by an agent in this process. Two ways of choosing the
// holder, interleaved rate by rate:
// - single: the reader's rule without load (a hot piece's stripe always
//   starts at the same holder), so one node serves every read, like the
//   seed's lone Master;
// - adaptive: PieceIO.rankByLoad over the levels the holders' heartbeats
//   and load news carry.
// The response time is measured from each request's scheduled time, so a
// backlog shows. On 2 shared cores the figures are noisy: medians are
// compared, with slack, and printed; a top-rate pair spoiled by another
// test's burst is measured again (twice at most).
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Agent } from "../../src/agent.ts";
import { AgentClient } from "../../src/client/agent-client.ts";
import { placeFileStripe } from "../../src/core/file-placement.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import { PieceIO } from "../../src/data/pieces.ts";
import { silentLogger } from "../../src/log.ts";
import { PeerClients } from "../../src/rpc/peer-client.ts";
import type { PieceKey } from "../../src/storage/chunk-format.ts";
import { sleep } from "../helpers/process-cluster.ts";
import { hotVolume, loopbackMap, startCpuHolder, startReader, stopChildren } from "./helpers/cpu-holders.ts";

const COST_MS = 10;
const RATES = [20, 50, 80, 100];
const STEP_MS = 2_500;
const KiB = 1024;
const VOLUME = hotVolume(3);
const HOLDERS = ["h0", "h1", "h2"];

interface Step {
  mode: "single" | "adaptive";
  rate: number;
  medianMs: number;
  p90Ms: number;
  served: Record<string, number>;
  errors: number;
}

const median = (xs: number[], q = 0.5) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};

describe("seed 002, experiment 3: 10 ms of CPU per request at rising rates", () => {
  let root: string;
  let reader: Agent;
  let peers: PeerClients;
  const holders: ChildProcess[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-exp3-"));
    const map = await loopbackMap(["reader", ...HOLDERS]);
    for (const id of HOLDERS)
      holders.push((await startCpuHolder(map, id, root, VOLUME, { costMs: COST_MS })).child);
    reader = await startReader(map, join(root, "reader"), VOLUME);
    peers = new PeerClients({ map: () => reader.map, log: silentLogger() });
  });

  after(async () => {
    peers?.close();
    await reader?.stop(500);
    // Only the processes this test started, by PID.
    await stopChildren(holders);
    await rm(root, { recursive: true, force: true });
  });

  test("with load-adaptive reads the response time stays flat where a single holder's climbs", {
    timeout: 120_000,
  }, async () => {
    const startedMs = performance.now();
    const client = new AgentClient(reader.addresses[0]);
    let manifest: FileManifest;
    try {
      const bytes = Buffer.alloc(16 * 64 * KiB, 7);
      manifest = await client.put(
        VOLUME.name,
        "clip.mp4",
        (async function* () {
          yield bytes;
        })(),
        bytes.length,
      );
    } finally {
      client.close();
    }
    // A stripe the reader holds no copy of: every read crosses to a holder process.
    const stripe = Array.from({ length: manifest.stripes }, (_, s) => s).find(
      (s) => !placeFileStripe(reader.map, manifest, s).includes("reader"),
    );
    assert.ok(stripe !== undefined, "some stripe lies on the three holders only");
    const nodes = placeFileStripe(reader.map, manifest, stripe);
    const key = (slot: number): PieceKey => ({
      volume: manifest.volume,
      fileId: manifest.fileId,
      version: manifest.version,
      stripe,
      slot,
    });
    const pieces = new PieceIO("reader", reader.store, peers, silentLogger(), undefined, (n) =>
      reader.loadOf(n),
    );
    const width = nodes.length;
    // The reader's order for this stripe without load: it starts at stripe % width, every time.
    const rotated = Array.from({ length: width }, (_, i) => (stripe + i) % width);

    const run = async (mode: Step["mode"], rate: number): Promise<Step> => {
      const served: Record<string, number> = Object.fromEntries(nodes.map((n) => [n, 0]));
      const latencies: number[] = [];
      let errors = 0;
      const request = async (dueMs: number) => {
        const order = mode === "single" ? rotated : pieces.rankByLoad(nodes, rotated);
        for (const slot of order) {
          const node = nodes[slot] as string;
          try {
            await pieces.get(node, key(slot));
            served[node] = (served[node] ?? 0) + 1;
            latencies.push(performance.now() - dueMs);
            return;
          } catch {}
        }
        errors++;
      };
      const count = Math.round((rate * STEP_MS) / 1_000);
      const t0 = performance.now();
      const inFlight: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        const dueMs = t0 + (i * 1_000) / rate;
        const waitMs = dueMs - performance.now();
        if (waitMs > 0) await sleep(waitMs);
        inFlight.push(request(dueMs));
      }
      await Promise.all(inFlight);
      return { mode, rate, medianMs: median(latencies), p90Ms: median(latencies, 0.9), served, errors };
    };
    const cool = async () => {
      // Let a backlog's level fall back to Low before the next step, so each starts alike.
      const endMs = performance.now() + 5_000;
      while (performance.now() < endMs && HOLDERS.some((h) => reader.loadOf(h) !== "Low")) await sleep(50);
      await sleep(300);
    };

    const steps: Step[] = [];
    const measure = async (rate: number): Promise<void> => {
      for (const mode of ["single", "adaptive"] as const) {
        await cool();
        const step = await run(mode, rate);
        steps.push(step);
        const share = Object.entries(step.served)
          .map(([n, c]) => `${n}:${c}`)
          .join(" ");
        console.log(
          `rate ${String(rate).padStart(3)}/s ${mode.padEnd(8)} median ${step.medianMs.toFixed(1)} ms, ` +
            `p90 ${step.p90Ms.toFixed(1)} ms, served ${share}, errors ${step.errors}`,
        );
      }
    };
    for (const rate of RATES) await measure(rate);
    // The newest measurement of a mode at a rate.
    const at = (mode: Step["mode"], rate: number) =>
      steps.findLast((s) => s.mode === mode && s.rate === rate) as Step;
    const top = RATES[RATES.length - 1] as number;
    const low = RATES[0] as number;
    const ratio = () => at("single", top).medianMs / at("adaptive", top).medianMs;
    const climb = (mode: Step["mode"]) => at(mode, top).medianMs / at(mode, low).medianMs;
    // Spreading the reads helps only while the machine has more than one core free: three holders
    // then use two, one holder never more than one. Another test taking a core for a few seconds
    // voids a pair, so the top pair is measured again, at most twice.
    const holds = () => ratio() >= 2 && climb("adaptive") <= climb("single") / 2;
    for (let again = 0; again < 2 && !holds(); again++) {
      console.log(
        `measuring ${top}/s again (the machine was busy: load average ${loadavg()[0]?.toFixed(1)})`,
      );
      await measure(top);
    }
    console.log(
      `at ${top}/s: single/adaptive median ${ratio().toFixed(1)}×; from ${low}/s to ${top}/s the median grew ` +
        `${climb("single").toFixed(1)}× single, ${climb("adaptive").toFixed(1)}× adaptive; ` +
        `${((performance.now() - startedMs) / 1_000).toFixed(1)} s`,
    );
    for (const s of steps) assert.equal(s.errors, 0, `${s.mode} at ${s.rate}/s`);
    // Past one holder's capacity (100/s of 10 ms) its queue grows for the whole step; three share it.
    assert.ok(ratio() >= 2, `single/adaptive median at ${top}/s is ${ratio().toFixed(2)}, expected ≥ 2`);
    // Flat is relative to the same machine at the same moment (2 cores shared with other tests):
    // the adaptive median must climb at most half as much as the single holder's.
    assert.ok(
      climb("adaptive") <= climb("single") / 2,
      `adaptive climbed ${climb("adaptive").toFixed(2)}×, single ${climb("single").toFixed(2)}×`,
    );
    // The adaptive reads used every holder at the top rate; the single ones only one.
    assert.ok(Object.values(at("adaptive", top).served).every((c) => c > 0));
    assert.equal(Object.values(at("single", top).served).filter((c) => c > 0).length, 1);
  });
});
