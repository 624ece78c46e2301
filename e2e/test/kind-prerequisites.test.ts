// e2e:kind where it cannot run: the prerequisite check run for real with a
// PATH that lacks the tools (and with the machine's own docker CLI, whose
// engine does not answer here), and `npm run e2e:kind` itself skipping with
// one line, exit 0 (3 with --require-runtime), bad flags refused with 2.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import {
  atLeast,
  firstLine,
  kindVersion,
  MIN_KIND,
  missingPrerequisite,
  NEEDS,
} from "../kind/prerequisites.ts";

const run = promisify(execFile);
const MAIN = join(import.meta.dirname, "..", "kind", "main.ts");

/** Runs e2e:kind's entry with this PATH; its exit code and output. */
async function e2eKind(path: string, args: string[] = []) {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], {
      env: { ...process.env, PATH: path },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("e2e:kind prerequisites", () => {
  let empty: string;
  before(async () => {
    empty = await mkdtemp(join(tmpdir(), "mosaic-kind-path-"));
  });
  after(async () => {
    await rm(empty, { recursive: true, force: true });
  });

  test("kind's version read and compared", () => {
    assert.deepEqual(kindVersion("kind v0.27.0 go1.23.6 linux/amd64"), [0, 27, 0]);
    assert.equal(kindVersion("kind (devel)"), undefined);
    assert.ok(
      atLeast([0, 27, 0], MIN_KIND) && atLeast([1, 0, 0], MIN_KIND) && atLeast([...MIN_KIND], MIN_KIND),
    );
    assert.ok(!atLeast([0, 19, 9], MIN_KIND));
    assert.equal(firstLine({ code: "ENOENT" }), "not found on PATH");
    assert.equal(firstLine({ code: 1, stderr: "\n  first\nsecond" }), "first");
  });

  test("a PATH without any of the tools: each named, one line, with what is needed and where to read", async () => {
    const why = await missingPrerequisite({ ...process.env, PATH: empty });
    assert.ok(why !== undefined);
    assert.doesNotMatch(why, /\n/);
    assert.match(why, /^no container runtime answers \(docker info failed: not found on PATH\)/);
    for (const tool of ["kind", "kubectl", "helm"])
      assert.match(why, new RegExp(`${tool} failed \\(not found on PATH\\)`));
    assert.ok(why.endsWith(NEEDS));
    assert.match(why, /README "Running on kind"/);
  });

  test("the machine's docker CLI without an engine: the runtime is what is missing, as docker says it", async (t) => {
    const docker = await run("sh", ["-c", "command -v docker"]).catch(() => undefined);
    if (docker === undefined) return t.skip("no docker CLI on this machine");
    const engine = await run("docker", ["info", "--format", "{{.ServerVersion}}"]).catch(() => undefined);
    if (engine !== undefined && engine.stdout.trim() !== "")
      return t.skip("a docker engine answers here: nothing is missing to check");
    const path = await mkdtemp(join(tmpdir(), "mosaic-kind-path-"));
    try {
      await symlink(docker.stdout.trim(), join(path, "docker"));
      const why = await missingPrerequisite({ ...process.env, PATH: path });
      assert.match(why ?? "", /^no container runtime answers \(docker info failed: (?!not found)\S/);
      assert.match(why ?? "", /kind failed \(not found on PATH\)/);
    } finally {
      await rm(path, { recursive: true, force: true });
    }
  });

  test("npm run e2e:kind without them: one skip line, exit 0; --require-runtime: exit 3", async () => {
    // node itself is run by path; only the tools e2e:kind looks for are missing.
    const skipped = await e2eKind(empty);
    assert.equal(skipped.code, 0, skipped.stderr);
    const lines = skipped.stdout.trim().split("\n");
    assert.equal(lines.length, 1, skipped.stdout);
    assert.match(lines[0] ?? "", /^e2e:kind skipped: no container runtime answers .*needs docker/);
    const required = await e2eKind(empty, ["--require-runtime"]);
    assert.equal(required.code, 3);
    assert.match(required.stdout, /^e2e:kind skipped: /);
  });

  test("bad flags are refused with 2 before anything is checked or created", async () => {
    for (const [args, says] of [
      [["--workers", "1"], /--workers 1: from 2/],
      [["--name", "Bad_Name"], /cluster name "Bad_Name"/],
      [["--only", "nope"], /no scenario nope/],
      [["--seed", "x"], /whole numbers/],
    ] as const) {
      const r = await e2eKind(dirname(process.execPath), [...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, says);
      assert.match(r.stderr, /Usage: npm run e2e:kind/);
    }
    const help = await e2eKind(empty, ["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--keep .*\n.*kind delete cluster --name NAME/);
  });
});
