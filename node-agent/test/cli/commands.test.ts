// The mosaic CLI against a real local cluster running in the background
// (`mosaic up --no-check`): round trips, listings, JSON output, the errors a
// user meets, nodes going down, and a clean stop on SIGTERM.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
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

describe("mosaic CLI against a running local cluster", () => {
  let root: string;
  let dir: string;
  let work: string;
  let up: BackgroundUp;
  let clusterFile: string;
  let stateFile: string;
  const started: number[] = [];
  const original = randomBytes(1_500_000);
  /** `mosaic <args> --cluster <this cluster>` run from the work directory. */
  const mosaic = (args: string[], input?: Buffer) =>
    runMosaic(
      [...args, "--cluster", clusterFile],
      input === undefined ? { cwd: work } : { cwd: work, input },
    );

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-cli-test-"));
    dir = join(root, "cluster");
    work = join(root, "work");
    await mkdir(work);
    clusterFile = join(dir, "cluster.json");
    stateFile = join(dir, "state.json");
    await writeFile(join(work, "clip.bin"), original);
    const base = await freeBasePort(3);
    up = await startUp(["--no-check", "--nodes", "3", "--dir", dir, "--base-port", String(base)]);
    started.push(...statePids(stateFile));
  });

  after(async () => {
    killAll([...started, ...statePids(stateFile)]);
    await rm(root, { recursive: true, force: true });
  });

  test("up prints how to use the cluster and records its pids", async () => {
    // The usage lines follow "ready:" in later writes.
    assert.ok(await waitFor(() => /Stop with Ctrl-C/.test(up.output()), 10_000), up.output());
    assert.match(up.output(), /npm run mosaic -- put \.\/movie\.mp4 media\/films\/movie\.mp4/);
    assert.match(up.output(), new RegExp(`export MOSAIC_CLUSTER=${clusterFile}`));
    assert.equal(started.length, 4);
    assert.ok(started.every(isAlive));
  });

  test("put then get round-trips a file byte for byte, to a path, a directory and stdout", async () => {
    const put = await mosaic(["put", "clip.bin", "media/films/clip.bin"]);
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout, /^put media\/films\/clip\.bin: 1\.43 MiB in .* MB\/s\), version \d+\n$/);

    const get = await mosaic(["get", "media/films/clip.bin", "copy.bin"]);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(await readFile(join(work, "copy.bin")), original);

    await mkdir(join(work, "into"));
    assert.equal((await mosaic(["get", "media/films/clip.bin", "into"])).code, 0);
    assert.deepEqual(await readFile(join(work, "into", "clip.bin")), original);

    const toStdout = await mosaic(["get", "media/films/clip.bin", "-"]);
    assert.equal(toStdout.code, 0, toStdout.stderr);
    assert.deepEqual(toStdout.stdoutBytes, original);
  });

  test("put from stdin stores exactly the bytes piped in", async () => {
    const piped = randomBytes(300_000);
    const put = await mosaic(["put", "-", "thumbs/piped.bin"], piped);
    assert.equal(put.code, 0, put.stderr);
    assert.deepEqual((await mosaic(["get", "thumbs/piped.bin", "-"])).stdoutBytes, piped);
  });

  test("ls, stat, volumes and nodes, as text and as JSON", async () => {
    const ls = await mosaic(["ls", "media"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^films\/clip\.bin\s+1\.43 MiB\s+\d+\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m);
    const files = JSON.parse((await mosaic(["ls", "media", "films/", "--json"])).stdout);
    assert.deepEqual(
      files.map((f: { name: string; sizeBytes: number }) => [f.name, f.sizeBytes]),
      [["films/clip.bin", 1_500_000]],
    );

    const stat = await mosaic(["stat", "media/films/clip.bin"]);
    assert.equal(stat.code, 0, stat.stderr);
    assert.match(stat.stdout, /^health {4}healthy: all 3 pieces ok$/m);
    assert.match(stat.stdout, /^layout {4}erasure 2\+1, chunk 1 MiB, 1 stripe$/m);
    const statJson = JSON.parse((await mosaic(["stat", "media/films/clip.bin", "--json"])).stdout);
    assert.equal(statJson.health.verdict, "healthy");
    assert.equal(statJson.manifest.sizeBytes, 1_500_000);
    assert.deepEqual(new Set(statJson.pieces.map((p: { node: string }) => p.node)).size, 3);

    const volumes = JSON.parse((await mosaic(["volumes", "--json"])).stdout);
    assert.deepEqual(
      volumes.map((v: { name: string; redundancy: unknown }) => [v.name, v.redundancy]),
      [
        ["media", { erasure: { data: 2, parity: 1 } }],
        ["thumbs", { replicas: 3 }],
      ],
    );
    const nodes = JSON.parse((await mosaic(["nodes", "--json"])).stdout);
    assert.equal(nodes.length, 3);
    assert.ok(nodes.every((n: { channels: { answers: boolean }[] }) => n.channels.every((c) => c.answers)));
  });

  test("--node picks the agent; global options may come before the command", async () => {
    const viaNode = await runMosaic(["--cluster", clusterFile, "--node", "node-2", "ls", "media"]);
    assert.equal(viaNode.code, 0, viaNode.stderr);
    assert.match(viaNode.stdout, /films\/clip\.bin/);
    const unknown = await mosaic(["ls", "media", "--node", "node-9"]);
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /^mosaic: no node "node-9" in the cluster \(nodes: node-0, node-1, node-2\)\n$/,
    );
  });

  test("errors are one clear line: missing file, unknown volume, bad name, missing local file", async () => {
    const before = await readdir(work);
    const missing = await mosaic(["get", "media/no/such.bin"]);
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      'mosaic: no file "no/such.bin" in volume media (list files with `mosaic ls <volume>`)\n',
    );
    assert.deepEqual(await readdir(work), before, "a failed get leaves no file behind");

    const volume = await mosaic(["put", "clip.bin", "nosuch/clip.bin"]);
    assert.equal(volume.code, 1);
    assert.match(
      volume.stderr,
      /^mosaic: no volume named "nosuch" \(volumes: media, thumbs\).*mosaic volumes/,
    );
    assert.equal((await mosaic(["ls", "nosuch"])).code, 1);

    const badName = await mosaic(["put", "clip.bin", "media/../x"]);
    assert.equal(badName.code, 2);
    assert.match(badName.stderr, /^mosaic: file name "\.\.\/x": has a '\.' or '\.\.' path segment/);

    const noLocal = await mosaic(["put", "nope.bin", "media/nope.bin"]);
    assert.equal(noLocal.code, 1);
    assert.equal(noLocal.stderr, "mosaic: nope.bin: no such file or directory\n");

    for (const result of [missing, volume, badName, noLocal]) {
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      assert.doesNotMatch(result.stderr, /\bat .*\.ts:\d+/, "no stack trace");
    }
  });

  test("rm deletes a file: it leaves ls, and get then fails", async () => {
    await mosaic(["put", "clip.bin", "media/tmp/gone.bin"]);
    const removed = await mosaic(["rm", "media/tmp/gone.bin"]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /^removed media\/tmp\/gone\.bin \(version \d+\)\n$/);
    assert.doesNotMatch((await mosaic(["ls", "media"])).stdout, /gone\.bin/);
    assert.equal((await mosaic(["get", "media/tmp/gone.bin", "-"])).code, 1);
    assert.equal((await mosaic(["rm", "media/tmp/gone.bin"])).code, 1);
  });

  test("a second `up` on the same directory is refused", async () => {
    const second = await runMosaic([
      "up",
      "--once",
      "--dir",
      dir,
      "--base-port",
      String(await freeBasePort(3)),
    ]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /^mosaic: a local cluster already runs from .* \(pids \d+/);
  });

  test("one node down: stat says degraded, reads still return every byte", async () => {
    const [, victim] = statePids(stateFile);
    process.kill(victim as number, "SIGKILL");
    assert.ok(
      await waitFor(() => /node-0 \(pid \d+\) exited unexpectedly on SIGKILL/.test(up.output()), 5_000),
    );
    const stat = await mosaic(["stat", "media/films/clip.bin"]);
    assert.equal(stat.code, 0, stat.stderr);
    assert.match(stat.stdout, /^health {4}degraded: 1 of 3 pieces not ok; every stripe still reads$/m);
    assert.match(
      stat.stdout,
      /node-0\s+unreachable\s+node-0: unreachable on channel A \(node-0@127\.0\.0\.1:\d+: connection refused\) and channel B/,
    );
    assert.deepEqual((await mosaic(["get", "media/films/clip.bin", "-"])).stdoutBytes, original);
    const nodes = JSON.parse((await mosaic(["nodes", "--json"])).stdout);
    assert.deepEqual(
      nodes.map((n: { channels: { answers: boolean }[] }) => n.channels.map((c) => c.answers)),
      [
        [false, false],
        [true, true],
        [true, true],
      ],
    );
  });

  test("two nodes down: a get says more nodes are down than the redundancy covers", async () => {
    const [, , second] = statePids(stateFile);
    process.kill(second as number, "SIGKILL");
    assert.ok(await waitFor(() => /node-1 \(pid \d+\) exited unexpectedly/.test(up.output()), 5_000));
    const get = await mosaic(["get", "media/films/clip.bin", "lost.bin"]);
    assert.equal(get.code, 1);
    assert.match(get.stderr, /^mosaic: .*\(too many nodes are down for this file: bring them back/);
    assert.equal(existsSync(join(work, "lost.bin")), false);
    assert.deepEqual(
      (await readdir(work)).filter((f) => f.includes("mosaic")),
      [],
      "no temp file left",
    );
  });

  test("SIGTERM stops `up`: every agent gone, state.json removed, exit code 0", async () => {
    const pids = statePids(stateFile);
    up.child.kill("SIGTERM");
    const exit = await within(up.exited, 10_000);
    assert.deepEqual(exit, { code: 0, signal: null }, up.output());
    assert.match(up.output(), /stopped; state\.json removed/);
    assert.equal(existsSync(stateFile), false);
    assert.ok(
      pids.every((pid) => !isAlive(pid)),
      `still running: ${pids.filter(isAlive)}`,
    );
  });

  test("with every agent stopped: `no Mosaic agent answers`, within a few seconds", async () => {
    const run = await mosaic(["ls", "media"]);
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /^mosaic: no Mosaic agent answers at 127\.0\.0\.1:\d+, 127\.0\.0\.2:\d+, .* — is the cluster running\? start one with `npm start`/,
    );
    assert.ok(run.elapsedMs < 5_000, `took ${run.elapsedMs} ms`);
  });
});

describe("mosaic CLI without a cluster", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-cli-none-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test("--cluster naming a missing file: no cluster file, start one with npm start", async () => {
    const missing = join(root, "nope.json");
    const run = await runMosaic(["ls", "media", "--cluster", missing]);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      `mosaic: no cluster file at ${missing}: start a local cluster with \`npm start\` or give --cluster\n`,
    );
    const viaEnv = await runMosaic(["stat", "media/x"], { env: { MOSAIC_CLUSTER: missing } });
    assert.equal(viaEnv.stderr, run.stderr);
  });

  test("a cluster file whose agents are all stopped: no Mosaic agent answers, within a few seconds", async () => {
    const base = await freeBasePort(2);
    const file = join(root, "stopped.json");
    const node = (i: number) => ({
      id: `node-${i}`,
      addresses: [`127.0.0.1:${base + 2 * i}`, `127.0.0.2:${base + 2 * i + 1}`],
      state: "up",
    });
    await writeFile(file, JSON.stringify({ epoch: 1, nodes: [node(0), node(1)], volumes: [] }));
    const run = await runMosaic(["get", "media/x.bin", "--cluster", file]);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      `mosaic: no Mosaic agent answers at 127.0.0.1:${base}, 127.0.0.2:${base + 1}, 127.0.0.1:${base + 2}, ` +
        `127.0.0.2:${base + 3} — is the cluster running? start one with \`npm start\` (cluster file: ${file})\n`,
    );
    assert.ok(run.elapsedMs < 5_000, `took ${run.elapsedMs} ms`);
    const nodes = await runMosaic(["nodes", "--cluster", file]);
    assert.equal(nodes.code, 0);
    assert.match(nodes.stdout, /0 of 2 nodes answer/);
  });

  test("--help on every command says what it does, with an example", async () => {
    for (const command of ["up", "put", "get", "ls", "stat", "rm", "volumes", "nodes", "agent"]) {
      const help = await runMosaic([command, "--help"]);
      assert.equal(help.code, 0, command);
      assert.match(help.stdout, new RegExp(`^Usage: mosaic ${command} `), command);
      assert.match(help.stdout, /\nExamples?:\n {2}\$ /, command);
    }
  });
});
