// Calls in flight survive a dead NIC (issue 4), with real `mosaic agent`
// processes, each in its own network namespace with two veth NICs, and the
// `mosaic` CLI as the client, run inside a node's namespace. `ip link set
// ethA down` drops packets silently: a call on that channel would otherwise
// hang until gRPC keepalive or its deadline (15–30 s).
//   1. A 256 MiB read through node-0 while node-1, a holder of its pieces,
//      loses ethA: every byte arrives, no error, no degraded stripe, and it
//      takes less than 3 s more than the same read without the fault; node-0
//      logs the calls it moved to channel B.
//   2. A put that node-0 forwards to the file's owner, node-2, when node-2
//      loses ethA half-way: acknowledged, resumed where node-2 got to, and
//      read back whole.
// Calls that wait out gRPC's reconnect backoff (a peer that starts after its
// callers) are proven in test/rpc/reconnect.test.ts: from outside the
// namespaces, a call cannot be timed to land inside a backoff reliably.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { VolumeSpec } from "../../src/core/volume.ts";
import { NODE_FLAGS } from "../../src/node-flags.ts";
import { expectKeystream, keystream } from "../helpers/byte-streams.ts";
import { nameWhere } from "../helpers/cluster-files.ts";
import { netnsUnavailable } from "../helpers/netns.ts";
import {
  type LogLine,
  MiB,
  type ProcessCluster,
  sleep,
  startProcessCluster,
} from "../helpers/process-cluster.ts";

const skip = await netnsUnavailable();
const CLI = fileURLToPath(new URL("../../src/cli/mosaic.ts", import.meta.url));
const VOLUME: VolumeSpec = {
  name: "big",
  chunkSizeBytes: 4 * MiB,
  redundancy: { erasure: { data: 2, parity: 1 } },
  capacityBytes: 2 ** 40,
};
const READ_BYTES = 256 * MiB;
const PUT_BYTES = 256 * MiB;
/** Every CLI run must end within this; a hang is a failure, not a stuck suite. */
const CLI_TIMEOUT_MS = 60_000;

/** One run of the `mosaic` CLI inside node i's namespace, talking to agent i. */
interface CliRun {
  child: ChildProcess;
  stdout: AsyncIterable<Buffer>;
  exited: Promise<{ code: number | null; stderr: string }>;
}

describe("calls in flight when a NIC dies move to the other channel (agents in network namespaces)", {
  skip,
  timeout: 600_000,
}, () => {
  let pc: ProcessCluster;
  const runs: CliRun[] = [];

  before(async () => {
    pc = await startProcessCluster({ nodes: 3, volumes: [VOLUME], netns: true });
  });
  after(async () => {
    for (const run of runs) if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await pc?.stop();
  });

  function mosaic(i: number, args: string[]): CliRun {
    const ns = pc.lab?.nodes[i]?.ns as string;
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        ns,
        process.execPath,
        ...NODE_FLAGS,
        CLI,
        "--cluster",
        pc.clusterFile(i),
        "--node",
        pc.nodeId(i),
        ...args,
      ],
      { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, MOSAIC_LOG_PRETTY: "0" } },
    );
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (s: string) => {
      stderr = (stderr + s).slice(-4_000);
    });
    const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), CLI_TIMEOUT_MS);
      child.once("exit", (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
    const run = { child, stdout: child.stdout as AsyncIterable<Buffer>, exited };
    runs.push(run);
    return run;
  }

  /** Streams keystream(size, seed) into a `mosaic put -` via node i; `at(bytes)` runs as the bytes go in. */
  async function put(
    i: number,
    name: string,
    size: number,
    seed: string,
    at?: (bytes: number) => Promise<void>,
  ) {
    const run = mosaic(i, ["put", "-", `${VOLUME.name}/${name}`]);
    const stdin = run.child.stdin as NodeJS.WritableStream;
    let written = 0;
    for await (const part of keystream(size, seed, MiB)) {
      if (!stdin.write(part)) await new Promise((resolve) => stdin.once("drain", resolve));
      written += part.length;
      await at?.(written);
    }
    stdin.end();
    const { code, stderr } = await run.exited;
    assert.equal(code, 0, `put ${name} via node-${i}: ${stderr}`);
  }

  /** `mosaic get` via node i, every byte checked as it arrives; `at(bytes)` sees the progress. Returns ms. */
  async function get(i: number, name: string, size: number, seed: string, at?: (bytes: number) => void) {
    const started = performance.now();
    const run = mosaic(i, ["get", `${VOLUME.name}/${name}`, "-"]);
    const check = await expectKeystream(run.stdout, size, seed, at);
    const { code, stderr } = await run.exited;
    assert.equal(code, 0, `get ${name} via node-${i}: ${stderr}`);
    assert.equal(check.bytes, size);
    return performance.now() - started;
  }

  /** Lines agent i logged from wall-clock `fromMs` on that match. */
  const since = (i: number, fromMs: number, match: (l: LogLine) => boolean) =>
    pc.log(i).filter((l) => (l.time as number) >= fromMs && match(l));

  /** NIC `channel` of node i back up, and node-0 using it again for node i (after the hold-down). */
  async function restore(i: number, watcher: number): Promise<void> {
    const upAt = Date.now();
    await pc.setLink(i, "A", true);
    await pc.waitForLogSince(
      watcher,
      upAt,
      (l) => {
        const e = l.event as { kind?: string; peer?: string; to?: string } | undefined;
        return e?.kind === "active" && e.peer === pc.nodeId(i) && e.to === "A";
      },
      15_000,
    );
  }

  test("a 256 MiB read through node-0 while holder node-1 loses ethA: whole, no error, < 3 s extra", async () => {
    const name = "inflight/read.bin";
    await put(0, name, READ_BYTES, name);
    const baselineMs = await get(0, name, READ_BYTES, name);

    let faultAt = 0;
    let cut: Promise<void> | undefined;
    const faultedMs = await get(0, name, READ_BYTES, name, (bytes) => {
      if (cut === undefined && bytes >= 64 * MiB) {
        faultAt = Date.now();
        cut = pc.setLink(1, "A", false);
      }
    });
    await cut;
    await sleep(300); // pino writes asynchronously
    const lost = since(
      0,
      faultAt,
      (l) => l.msg === "channel lost: its calls in flight move to the other channel",
    );
    const moved = since(
      0,
      faultAt,
      (l) =>
        l.msg === "retrying on the other channel" && l.peer === "node-1" && l.from === "A" && l.to === "B",
    );
    const degraded = since(0, faultAt, (l) => /degraded/.test(String(l.msg)));
    console.log(
      `read ${READ_BYTES / MiB} MiB via node-0: ${Math.round(baselineMs)} ms without the fault, ` +
        `${Math.round(faultedMs)} ms with node-1's ethA down at 64 MiB; ` +
        `node-0 moved ${moved.length} calls to B (${lost.map((l) => `${l.peer} ${l.channel}: ${l.callsMoved}`).join(", ")}), ` +
        `${(lost[0]?.time as number) - faultAt} ms after the link went down`,
    );
    assert.ok(
      lost.some((l) => l.peer === "node-1" && l.channel === "A" && (l.callsMoved as number) >= 1),
      `node-0 cut calls in flight on node-1's channel A: ${JSON.stringify(lost)}`,
    );
    assert.ok(moved.length >= 1, "calls to node-1 retried on channel B");
    assert.deepEqual(
      degraded.map((l) => l.raw),
      [],
      "no stripe read degraded: the calls moved instead",
    );
    assert.ok(faultedMs - baselineMs < 3_000, `the fault cost ${Math.round(faultedMs - baselineMs)} ms`);
    await restore(1, 0);
  });

  test("a put forwarded to the owner (node-2) when its ethA dies half-way: acknowledged, resumed, whole", async () => {
    const map = { epoch: pc.cluster.epoch, nodes: pc.cluster.nodes };
    const name = nameWhere(map, VOLUME, "inflight/forwarded-", ".bin", (holders) => holders[0] === "node-2");
    let faultAt = 0;
    const started = performance.now();
    await put(0, name, PUT_BYTES, name, async (bytes) => {
      if (faultAt === 0 && bytes >= 96 * MiB) {
        faultAt = Date.now();
        await pc.setLink(2, "A", false);
      }
    });
    const putMs = performance.now() - started;
    await sleep(300);
    const movedForward = since(0, faultAt, (l) => l.msg === "forward moved to the other channel");
    const resumed = since(0, faultAt, (l) => l.msg === "forward resumed");
    const ownerResumed = since(2, faultAt, (l) => l.msg === "forward resumed");
    const ownerMoved = since(
      2,
      faultAt,
      (l) => l.msg === "channel lost: its calls in flight move to the other channel",
    );
    console.log(
      `forwarded put of ${PUT_BYTES / MiB} MiB via node-0 to node-2: ${Math.round(putMs)} ms with node-2's ethA down ` +
        `at 96 MiB; node-0 resumed it on B at byte ${resumed[0]?.resumedAtByte} ` +
        `(${(resumed[0]?.time as number) - faultAt} ms after the link went down); node-2 cut ` +
        `${ownerMoved.map((l) => `${l.peer}: ${l.callsMoved}`).join(", ")} calls of its own`,
    );
    assert.ok(
      movedForward.some((l) => l.from === "A" && l.to === "B"),
      `node-0 moved the forward to B: ${JSON.stringify(movedForward)}`,
    );
    assert.ok((resumed[0]?.resumedAtByte as number) > 0, "resumed mid-stream, not from the start");
    assert.ok(ownerResumed.length >= 1, "node-2 took the resumed stream");
    await restore(2, 0);
    await get(1, name, PUT_BYTES, name);
  });
});
