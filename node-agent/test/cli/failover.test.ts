// Failover as an operator of a local cluster sees it, with real agent
// processes started by `mosaic up --out-grace 2s --rebuild-rate 256KiB`: a node
// that stops answering is out after the grace it was given (not the default
// 30 s), `mosaic nodes` shows the others rebuilding its pieces (bytes left,
// rate, ETA) at the rate given, an out node whose agent answers again stays
// out until `mosaic nodes in` takes it back, and the file reads back whole.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { NodeStatus } from "../../src/cli/node-status.ts";
import {
  type BackgroundUp,
  freeBasePort,
  isAlive,
  killAll,
  runMosaic,
  startUp,
  statePids,
  waitFor,
  within,
} from "./cli-helpers.ts";

const MiB = 2 ** 20;
const OUT_GRACE_MS = 2_000;
/** Slow enough that the rebuild of a stopped node's share (about 5 MiB per node) lasts about 20 s. */
const REBUILD_RATE = 256 * 1024;
/** The node stopped, declared out, and taken back in. */
const VICTIM = "node-3";

describe("failover in a local cluster: out grace, rebuild progress, nodes in", { timeout: 300_000 }, () => {
  let root: string;
  let work: string;
  let up: BackgroundUp;
  let clusterFile: string;
  let stateFile: string;
  const started: number[] = [];
  const original = randomBytes(48 * MiB);
  let victimPid: number;

  const mosaic = (args: string[], timeoutMs = 30_000) =>
    runMosaic([...args, "--cluster", clusterFile], { cwd: work, timeoutMs });
  const nodesJson = async (): Promise<NodeStatus[]> => {
    const run = await mosaic(["nodes", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    return JSON.parse(run.stdout) as NodeStatus[];
  };
  /** Polls `probe` (each call a `mosaic` process) until it returns a value, within timeoutMs. */
  async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      assert.ok(Date.now() < deadline, `timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-failover-cli-"));
    const dir = join(root, "cluster");
    work = join(root, "work");
    await mkdir(work);
    clusterFile = join(dir, "cluster.json");
    stateFile = join(dir, "state.json");
    await writeFile(join(work, "film.bin"), original);
    const base = await freeBasePort(4);
    up = await startUp([
      "--no-check",
      "--nodes",
      "4",
      "--dir",
      dir,
      "--base-port",
      String(base),
      "--out-grace",
      `${OUT_GRACE_MS / 1000}s`,
      "--rebuild-rate",
      "256KiB",
    ]);
    started.push(...statePids(stateFile));
    victimPid = started[4] as number;
  });

  after(async () => {
    if (victimPid !== undefined && isAlive(victimPid)) process.kill(victimPid, "SIGCONT");
    killAll([...started, ...statePids(stateFile)]);
    await rm(root, { recursive: true, force: true });
  });

  test("up hands --out-grace and --rebuild-rate to every agent and says so", async () => {
    assert.match(
      up.output(),
      /^failover: a node down for 2\.00 s is out and its pieces are rebuilt on the others at up to 256 KiB\/s per agent$/m,
    );
    assert.equal(started.length, 5, up.output());
    for (const pid of started.slice(1)) {
      const args = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
      assert.equal(args[args.indexOf("--out-grace") + 1], "2000ms");
      assert.equal(args[args.indexOf("--rebuild-rate") + 1], String(REBUILD_RATE));
    }
  });

  test("a healthy cluster: `nodes` has no rebuild column, and every agent holds the first map", async () => {
    const put = await mosaic(["put", "film.bin", "media/film.bin"], 60_000);
    assert.equal(put.code, 0, put.stderr);
    const run = await mosaic(["nodes"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^node\s+state\s+load\s+channel A\s+channel B$/m);
    assert.match(run.stdout, /^node-0\s+up\s+(Low|Medium|High)\s/m, "each agent says its load level");
    assert.doesNotMatch(run.stdout, /rebuild/);
    assert.match(run.stdout, /^4 of 4 nodes answer; map epoch 1 \(cluster file: /m);
  });

  test("a node that stops answering is out after --out-grace; `nodes` shows the rebuild: bytes left, rate, ETA", async (t) => {
    // Stopped, not killed: it comes back in the next test. Our own grandchild, by the pid `up` recorded.
    process.kill(victimPid, "SIGSTOP");
    const stopped = performance.now();
    await until(
      async () => ((await nodesJson()).find((n) => n.id === VICTIM)?.state === "out" ? true : undefined),
      15_000,
      `${VICTIM} out`,
    );
    const outMs = performance.now() - stopped;
    t.diagnostic(`${VICTIM} out ${Math.round(outMs)} ms after SIGSTOP (out grace ${OUT_GRACE_MS} ms)`);
    assert.ok(outMs >= OUT_GRACE_MS, `out only after the grace (${outMs} ms)`);

    const line = await until(
      async () =>
        (await mosaic(["nodes"])).stdout
          .split("\n")
          .find((l) => /^node-[0-2]\s+up\s.*\sleft of\s.*, ETA /.test(l)),
      30_000,
      "a rebuild row with a measured rate in `mosaic nodes`",
    );
    t.diagnostic(line);
    assert.match(
      line,
      /\s\d+(\.\d+)? (B|KiB|MiB) left of \d+(\.\d+)? MiB at \d+(\.\d+)? KiB\/s, ETA (\d+(\.\d+)? s|\d+ min \d+ s)$/,
    );
    const rebuilding = await until(
      async () => {
        const nodes = await nodesJson();
        const busy = nodes.filter(
          (n) => n.rebuild?.state === "rebuilding" && n.rebuild.rateBytesPerSecond > 0,
        );
        return busy.length > 0 ? busy : undefined;
      },
      30_000,
      "a measured rebuild rate in `nodes --json`",
    );
    t.diagnostic(`rebuilding: ${rebuilding.map((n) => `${n.id} ${JSON.stringify(n.rebuild)}`).join("; ")}`);
    for (const node of rebuilding) {
      const p = node.rebuild as NonNullable<NodeStatus["rebuild"]>;
      assert.equal(p.limitBytesPerSecond, REBUILD_RATE, "--rebuild-rate reached the agent");
      assert.ok(p.bytesLeft > 0 && p.bytesLeft <= p.bytesTotal, JSON.stringify(p));
      // Paced by a token bucket with no burst: never much above the limit.
      assert.ok(
        p.rateBytesPerSecond <= 1.5 * REBUILD_RATE,
        `rate ${p.rateBytesPerSecond} B/s near the limit`,
      );
    }
  });

  test("an out node that answers again stays out until `nodes in` takes it back", async () => {
    process.kill(victimPid, "SIGCONT");
    const listing = await until(
      async () => {
        const run = await mosaic(["nodes"]);
        return run.stdout.includes(`${VICTIM} is out but its agent answers`) ? run.stdout : undefined;
      },
      20_000,
      `${VICTIM} answering while out`,
    );
    assert.match(listing, new RegExp(`\`mosaic nodes in ${VICTIM}\` takes it back in`));
    // The agents never take an out node back themselves.
    await new Promise((resolve) => setTimeout(resolve, 2 * OUT_GRACE_MS));
    assert.equal((await nodesJson()).find((n) => n.id === VICTIM)?.state, "out");

    const readmit = await mosaic(["nodes", "in", VICTIM]);
    assert.equal(readmit.code, 0, readmit.stderr);
    assert.match(
      readmit.stdout,
      new RegExp(`^${VICTIM} is in again: up at map epoch (\\d+), held by 4 of 4 agents answering;`),
    );
    const nodes = await nodesJson();
    assert.deepEqual(
      nodes.map((n) => n.state),
      ["up", "up", "up", "up"],
    );
    assert.equal(new Set(nodes.map((n) => n.epoch)).size, 1, `one map: ${nodes.map((n) => n.epoch)}`);
    const cluster = JSON.parse(await readFile(clusterFile, "utf8"));
    assert.equal(cluster.epoch, nodes[0]?.epoch, "the cluster file holds the map the agents took");

    const again = await mosaic(["nodes", "in", VICTIM]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`^${VICTIM} is in: up \\(map epoch \\d+\\)$`, "m"));

    const get = await mosaic(["get", "media/film.bin", "-"], 60_000);
    assert.equal(get.code, 0, get.stderr);
    assert.ok(get.stdoutBytes.equals(original), "the file reads back whole");
  });

  test("nodes in: a node that is not in the cluster, or that is out and does not answer, is refused", async () => {
    const unknown = await mosaic(["nodes", "in", "node-9"]);
    assert.equal(unknown.code, 2);
    assert.equal(
      unknown.stderr,
      'mosaic: no node "node-9" in the cluster (nodes: node-0, node-1, node-2, node-3)\n',
    );
    process.kill(victimPid, "SIGKILL");
    await until(
      async () => ((await nodesJson()).find((n) => n.id === VICTIM)?.state === "out" ? true : undefined),
      15_000,
      `${VICTIM} out again`,
    );
    const before = await readFile(clusterFile, "utf8");
    const dead = await mosaic(["nodes", "in", VICTIM]);
    assert.equal(dead.code, 1);
    assert.match(
      dead.stderr,
      new RegExp(
        `^mosaic: ${VICTIM} does not answer at 127\\.0\\.0\\.1:\\d+ or 127\\.0\\.0\\.2:\\d+: start its agent first`,
      ),
    );
    assert.equal(dead.stderr.split("\n").length, 2, "one line");
    assert.equal(await readFile(clusterFile, "utf8"), before, "the cluster file is left as it was");
  });

  test("SIGTERM stops `up` and every agent", async () => {
    up.child.kill("SIGTERM");
    assert.deepEqual(await within(up.exited, 15_000), { code: 0, signal: null }, up.output());
    assert.ok(await waitFor(() => started.every((pid) => !isAlive(pid)), 3_000));
  });
});
