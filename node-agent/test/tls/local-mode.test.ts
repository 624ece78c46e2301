// `mosaic up`'s cluster runs mutual TLS with a CA of its own: its agent
// processes refuse a plain client (and log it), the tools' certificate under
// the cluster's directory is found through the cluster file, and a plan made
// --insecure runs plain, as before.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LocalCluster } from "../../src/cli/local-cluster.ts";
import { planLocalCluster } from "../../src/cli/local-plan.ts";
import { AgentClient } from "../../src/client/agent-client.ts";
import { readClusterFile, writeClusterFile } from "../../src/config.ts";
import { certificateFacts } from "../../src/tls/certificates.ts";
import { INSECURE } from "../../src/tls/grpc-tls.ts";
import { runMosaic } from "../cli/cli-helpers.ts";

async function withCluster(
  insecure: boolean,
  body: (plan: ReturnType<typeof planLocalCluster>) => Promise<void>,
) {
  const dir = await mkdtemp(join(tmpdir(), "mosaic-tls-local-"));
  const plan = planLocalCluster({
    nodes: 2,
    dir,
    basePort: 20_000 + 4 * Math.floor(Math.random() * 10_000),
    capacityBytes: 2 ** 30,
    insecure,
  });
  const cluster = await LocalCluster.start(plan, () => {});
  try {
    await cluster.waitReady(30_000);
    await body(plan);
  } finally {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function answers(client: AgentClient): Promise<string> {
  try {
    return (await client.cluster(3_000)).node;
  } finally {
    client.close();
  }
}

test("a local cluster's agents take only clients with its CA's certificate", async () => {
  await withCluster(false, async (plan) => {
    const agent = plan.agents[0] as (typeof plan.agents)[number];
    const file = await readClusterFile(plan.clusterFile); // registers the tools' certificate for these addresses
    assert.equal(file.tls?.dir, plan.tlsDir);
    assert.equal(
      await answers(new AgentClient(agent.addresses[1])),
      "node-0",
      "channel B, through the cluster's TLS",
    );
    await assert.rejects(
      answers(new AgentClient(agent.addresses[0], { security: INSECURE })),
      /No connection|unavailable/i,
    );
    const deadline = Date.now() + 10_000;
    let log = "";
    while (!log.includes("TLS handshake refused") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      log = await readFile(agent.logFile, "utf8");
    }
    assert.match(log, /"msg":"TLS handshake refused: the peer does not speak TLS/);
    assert.match(log, /"msg":"gRPC with mutual TLS/);
    const own = certificateFacts(await readFile(join(plan.tlsDir as string, "node-1", "tls.crt"), "utf8"));
    assert.deepEqual(own.dnsNames, ["node-1.agent.mosaic.dev"]);
  });
});

test("a local cluster planned --insecure runs plain gRPC and says so", async () => {
  await withCluster(true, async (plan) => {
    const agent = plan.agents[0] as (typeof plan.agents)[number];
    assert.equal(plan.cluster.tls, undefined);
    assert.equal(await answers(new AgentClient(agent.addresses[0], { security: INSECURE })), "node-0");
    assert.match(await readFile(agent.logFile, "utf8"), /"msg":"INSECURE: --insecure given/);
  });
});

test("mosaic certificate: a tool's own certificate from the cluster's CA is taken; a bad name or a missing CA is one clear line", async () => {
  await withCluster(false, async (plan) => {
    const tlsDir = plan.tlsDir as string;
    const out = join(plan.dir, "backup-job-tls");
    const issued = await runMosaic([
      "certificate",
      "backup-job",
      "--ca",
      join(tlsDir, "ca"),
      "--out",
      out,
      "--days",
      "2",
    ]);
    assert.equal(issued.code, 0, issued.stderr);
    assert.match(issued.stdout, /backup-job\.client\.mosaic\.dev/);
    const facts = certificateFacts(await readFile(join(out, "tls.crt"), "utf8"));
    assert.deepEqual(facts.dnsNames, ["backup-job.client.mosaic.dev"]);
    const days = (facts.notAfter.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 1.9 && days <= 2, `valid for ${days} days`);

    // The tools find their certificate through the cluster file: one naming only the new directory works.
    const own = join(plan.dir, "backup-job.json");
    await writeClusterFile(own, { ...(await readClusterFile(plan.clusterFile)), tls: { client: out } });
    const listed = await runMosaic(["volumes", "--cluster", own]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /media/);

    const badName = await runMosaic(["certificate", "Not_A_Label", "--ca", join(tlsDir, "ca"), "--out", out]);
    assert.equal(badName.code, 2, badName.stderr);
    assert.match(badName.stderr, /^mosaic certificate: .*"Not_A_Label" is not a DNS label/);
    assert.equal(badName.stderr.trim().split("\n").length, 1, badName.stderr);
    const noCa = await runMosaic(["certificate", "ops", "--ca", join(plan.dir, "nowhere"), "--out", out]);
    assert.notEqual(noCa.code, 0);
    assert.match(noCa.stderr, /^mosaic: cannot read the CA's ca\.crt in .*nowhere: ENOENT/);
    // The refused attempts left the issued certificate as it was.
    assert.deepEqual(certificateFacts(await readFile(join(out, "tls.crt"), "utf8")).notAfter, facts.notAfter);
  });
});
