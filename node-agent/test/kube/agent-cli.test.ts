// `mosaic agent --kubernetes` with a pod environment that cannot work: it
// stops before touching the API or the disk, with one line saying what to
// fix — not a stack trace, not a half-started agent.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { NODE_FLAGS } from "../../src/node-flags.ts";

const CLI = fileURLToPath(new URL("../../src/cli/mosaic.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "mosaic-kube-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const POD = {
  MOSAIC_NODE_NAME: "worker-1",
  MOSAIC_POD_NAME: "mosaic-agent-abcde",
  MOSAIC_POD_NAMESPACE: "mosaic-system",
  MOSAIC_PORT: "7400",
};

function agent(args: string[], env: Record<string, string>) {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith("MOSAIC_") && k !== "NODE_TEST_CONTEXT") clean[k] = v;
  // An API server that does not exist: nothing may get as far as calling it.
  const kubeconfig = join(dir, "nowhere.kubeconfig");
  const r = spawnSync(process.execPath, [...NODE_FLAGS, CLI, "agent", ...args], {
    env: { ...clean, KUBECONFIG: kubeconfig, ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, stderr: r.stderr.trim() };
}

test("no network-status annotation (Multus did not attach the networks): exit 1, one line naming it", () => {
  const data = join(dir, "data-1");
  const r = agent(["--kubernetes", "--data-dir", data], POD);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^mosaic: agent in Kubernetes: MOSAIC_NETWORK_STATUS .* is empty: .*Multus/);
  assert.equal(existsSync(data), false, "nothing was created on disk");
});

test("a network-status without net2, and a pod environment missing its identity", () => {
  const status = JSON.stringify([{ interface: "net1", ips: ["198.18.0.1"] }]);
  const r = agent(["--kubernetes", "--data-dir", join(dir, "d")], { ...POD, MOSAIC_NETWORK_STATUS: status });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no interface net2 \(channel B\); interfaces attached: net1/);
  const bare = agent(["--kubernetes", "--data-dir", join(dir, "d")], { MOSAIC_PORT: "7400" });
  assert.match(
    bare.stderr,
    /MOSAIC_NODE_NAME .* is not set; MOSAIC_POD_NAME .* is not set; MOSAIC_POD_NAMESPACE/,
  );
});

test("--kubernetes with --cluster, or neither: a usage error (exit 2)", () => {
  const both = agent(["--kubernetes", "--cluster", "c.json", "--data-dir", join(dir, "d")], POD);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--kubernetes takes the cluster and the node from the API/);
  const neither = agent(["--data-dir", join(dir, "d")], POD);
  assert.equal(neither.code, 2);
  assert.match(neither.stderr, /--cluster and --node are required \(or --kubernetes\)/);
});
