// `mosaic up --once` as a user runs it: real agent processes, a real file
// written, read back and compared, and nothing left running afterwards.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  freeBasePort,
  isAlive,
  killAll,
  pidsInOutput,
  runMosaic,
  startUp,
  statePids,
  waitFor,
  within,
} from "./cli-helpers.ts";

describe("mosaic up --once", () => {
  const dirs: string[] = [];
  const pids: number[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "mosaic-up-test-"));
    dirs.push(dir);
    return dir;
  };

  after(async () => {
    for (const dir of dirs) pids.push(...statePids(join(dir, "state.json")));
    killAll(pids);
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  test("writes, reads back and verifies a file on 3 nodes, then stops every agent", async () => {
    const dir = await tempDir();
    const base = await freeBasePort(3);
    const run = await runMosaic(
      ["up", "--once", "--nodes", "3", "--size", "8MiB", "--dir", dir, "--base-port", String(base)],
      { timeoutMs: 45_000 },
    );
    const agents = pidsInOutput(run.stdout);
    pids.push(...agents.values());
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /verified byte for byte: identical/);
    assert.match(run.stdout, /pieces: 12 on 3 nodes \(erasure 2\+1, chunk 1 MiB, 4 stripes\); healthy/);
    assert.match(run.stdout, /^check passed$/m);
    assert.match(run.stdout, /wrote 8 MiB in .*MB\/s/);
    assert.match(run.stdout, /read 8 MiB in .*MB\/s/);
    assert.equal(agents.size, 3, run.stdout);
    // Agents are reaped by `up` before it exits; allow the kernel a moment all the same.
    assert.ok(
      await waitFor(() => [...agents.values()].every((pid) => !isAlive(pid)), 3_000),
      "agents still run",
    );
    assert.equal(existsSync(join(dir, "state.json")), false, "state.json left behind");
    const cluster = JSON.parse(await readFile(join(dir, "cluster.json"), "utf8"));
    assert.deepEqual(cluster.nodes[2].addresses, [`127.0.0.1:${base + 4}`, `127.0.0.2:${base + 5}`]);
    const log = await readFile(join(dir, "logs", "node-0.log"), "utf8");
    assert.match(log.split("\n")[0] as string, /^\{.*"msg":"/, "agent logs are pino JSON lines");
  });

  test("one node: volumes narrow to erasure 1+0 and a single replica, and the check passes", async () => {
    const dir = await tempDir();
    const base = await freeBasePort(1);
    const run = await runMosaic(
      ["up", "--once", "--nodes", "1", "--size", "3MiB", "--dir", dir, "--base-port", String(base)],
      { timeoutMs: 30_000 },
    );
    pids.push(...pidsInOutput(run.stdout).values());
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /media \(erasure 1\+0, .*thumbs \(replicas 1,/);
    assert.match(run.stdout, /pieces: 3 on 1 node /);
  });

  test("Ctrl-C during the check stops every agent and exits 0", async () => {
    const dir = await tempDir();
    const base = await freeBasePort(3);
    const up = await startUp(["--once", "--size", "1GiB", "--dir", dir, "--base-port", String(base)]);
    const agents = statePids(join(dir, "state.json"));
    pids.push(...agents);
    assert.ok(await waitFor(() => /^check: writing/m.test(up.output()), 10_000), up.output());
    await new Promise((resolve) => setTimeout(resolve, 300));
    up.child.kill("SIGINT");
    const exit = await within(up.exited, 15_000);
    assert.deepEqual(exit, { code: 0, signal: null }, up.output());
    assert.match(up.output(), /check interrupted/);
    assert.equal(existsSync(join(dir, "state.json")), false);
    assert.ok(
      agents.every((pid) => !isAlive(pid)),
      up.output(),
    );
  });

  test("an agent that cannot start: a clear error naming it and its log, and the others stopped", async () => {
    const dir = await tempDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "node-1"), "a file where node-1's data directory should be");
    const base = await freeBasePort(3);
    const run = await runMosaic(["up", "--once", "--dir", dir, "--base-port", String(base)]);
    pids.push(...pidsInOutput(run.stdout).values());
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      new RegExp(
        `^mosaic up: node-1 exited during start \\(code 1\\): .*; see its log: ${dir}/logs/node-1\\.log\n$`,
      ),
    );
    assert.equal(existsSync(join(dir, "state.json")), false);
  });

  test("refuses a port already in use, naming it, before starting anything", async () => {
    const dir = await tempDir();
    const base = await freeBasePort(2);
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen({ host: "127.0.0.2", port: base + 3 }, resolve));
    try {
      const run = await runMosaic([
        "up",
        "--once",
        "--nodes",
        "2",
        "--dir",
        dir,
        "--base-port",
        String(base),
      ]);
      assert.equal(run.code, 1);
      assert.equal(
        run.stderr,
        `mosaic: port ${base + 3} on 127.0.0.2 (node-1 channel B) is already in use; pick other ports with --base-port\n`,
      );
      assert.equal(existsSync(join(dir, "state.json")), false);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test("usage errors exit with code 2 and one line", async () => {
    const run = await runMosaic(["up", "--nodes", "17"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^mosaic up: .*"17" must be a whole number from 1 to 16 .*\n$/);
    assert.equal(run.stderr.split("\n").length, 2);
  });
});
