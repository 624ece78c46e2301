// Agents' certificates on a real kube-apiserver, with the chart's RBAC for
// both sides: the operator (its ServiceAccount's token) makes the CA Secret
// and its public bundle, and signs the CSR an agent's own requester code
// submits with a token bound to its pod; it denies a CSR for a node the
// requesting pod is not on, and one from another user; an agent renews at
// two thirds of its certificate's life, and after a CA rotation, while the
// bundle keeps the old CA for the overlap.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { parse, stringify } from "yaml";
import type { ControlPlane } from "../../e2e/control-plane/control-plane.ts";
import { AgentCertificate } from "../../node-agent/src/kube/agent-certificate.ts";
import { silentLogger } from "../../node-agent/src/log.ts";
import { certificateFacts, signedBy } from "../../node-agent/src/tls/certificates.ts";
import { materialProblem, readTlsFiles } from "../../node-agent/src/tls/tls-files.ts";
import { runMosaic } from "../../node-agent/test/cli/cli-helpers.ts";
import { ROTATE_CA_ANNOTATION } from "../src/agent-ca.ts";
import { AgentCertificates } from "../src/agent-certificates.ts";
import { AGENT_CA_BUNDLE, AGENT_CA_SECRET, AGENT_SIGNER } from "../src/api/agent-tls.ts";
import { AGENT_LABELS } from "../src/api/agents.ts";
import { KubeRest } from "../src/framework/kube-rest.ts";
import { Operator } from "../src/framework/operator.ts";
import { eventually } from "./helpers/eventually.ts";
import { controlPlaneForAgents } from "./helpers/kube-agents.ts";

const NS = "mosaic-system";
const LIFETIME_MS = 2 * 3_600_000;
const WAIT_MS = 30_000;

describe("agents' certificates through CSRs, on a real kube-apiserver", () => {
  let cp: ControlPlane;
  let operator: Operator;
  let signer: AgentCertificates;
  let dir: string;
  const rests = new Map<string, KubeRest>();
  let agentKubeconfig: string;

  /** A KubeRest acting as the agent pod `pod` (a token bound to it, as its projected volume holds). */
  const asPod = async (pod: string): Promise<KubeRest> => {
    const token = (
      await cp.kubectl([
        "create",
        "token",
        "mosaic-agent",
        "-n",
        NS,
        "--duration=1h",
        "--bound-object-kind=Pod",
        `--bound-object-name=${pod}`,
      ])
    ).stdout.trim();
    const config = parse(await readFile(cp.kubeconfig, "utf8")) as { users: { user: unknown }[] };
    for (const u of config.users) u.user = { token };
    const path = join(dir, `kubeconfig-${pod}`);
    await writeFile(path, stringify(config), { mode: 0o600 });
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return new KubeRest(kc);
  };
  const requester = (pod: string, node: string, now?: () => Date) =>
    new AgentCertificate({
      rest: rests.get(pod) as KubeRest,
      namespace: NS,
      node,
      dir: join(dir, `tls-${pod}-${node}`),
      log: silentLogger(),
      waitMs: WAIT_MS,
      pollMs: 200,
      ...(now === undefined ? {} : { now }),
    });
  const secretCa = async (): Promise<{ certificate: string; annotations: Record<string, string> }> => {
    const s = JSON.parse(
      (await cp.kubectl(["get", "secret", "-n", NS, AGENT_CA_SECRET, "-o", "json"])).stdout,
    );
    return {
      certificate: Buffer.from(s.data["tls.crt"], "base64").toString("utf8"),
      annotations: s.metadata.annotations ?? {},
    };
  };
  const bundle = async (): Promise<string> =>
    JSON.parse((await cp.kubectl(["get", "cm", "-n", NS, AGENT_CA_BUNDLE, "-o", "json"])).stdout).data[
      "ca.crt"
    ];
  const csrsOf = async (node: string) =>
    JSON.parse((await cp.kubectl(["get", "csr", "-l", `mosaic.dev/node=${node}`, "-o", "json"])).stdout)
      .items as {
      metadata: { name: string };
      spec: { username: string };
      status: { conditions?: { type: string; message: string }[] };
    }[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mosaic-agent-csr-"));
    const started = await controlPlaneForAgents(NS);
    cp = started.cp;
    agentKubeconfig = started.agentKubeconfig;
    for (const [node, pod, labels] of [
      ["node-a", "agent-a", AGENT_LABELS],
      ["node-b", "agent-b", AGENT_LABELS],
      ["node-a", "not-an-agent", { app: "other" }],
    ] as const) {
      await cp.kubectl(["apply", "-f", "-"], {
        input: JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: node } }),
      });
      await cp.kubectl(["apply", "-n", NS, "-f", "-"], {
        input: JSON.stringify({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: pod, labels },
          spec: {
            nodeName: node,
            serviceAccountName: "mosaic-agent",
            containers: [{ name: "a", image: "none" }],
          },
        }),
      });
      rests.set(pod, await asPod(pod));
    }
    operator = new Operator({
      kubeconfig: started.operatorKubeconfig,
      identity: "test",
      log: silentLogger(),
    });
    signer = operator.run(
      new AgentCertificates({
        kc: operator.kc,
        rest: operator.rest,
        namespace: NS,
        agentServiceAccount: "mosaic-agent",
        certificateLifetimeMs: LIFETIME_MS,
        log: silentLogger(),
      }),
    );
    await operator.start();
  });

  after(async () => {
    await operator?.stop();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test("the operator makes the CA Secret and publishes only its certificate; agents cannot read the key", async () => {
    await eventually(
      async () => (await bundle().catch(() => "")).includes("BEGIN CERTIFICATE"),
      WAIT_MS,
      "the CA bundle",
    );
    const { certificate } = await secretCa();
    assert.equal(await bundle(), `${certificate.trim()}\n`);
    assert.doesNotMatch(await bundle(), /PRIVATE KEY/);
    const agent = `--as=system:serviceaccount:${NS}:mosaic-agent`;
    const can = async (...args: string[]) =>
      (await cp.kubectl(["auth", "can-i", agent, ...args], { allowFailure: true })).stdout.trim();
    assert.equal(await can("get", `secrets/${AGENT_CA_SECRET}`, "-n", NS), "no");
    assert.equal(await can("get", `configmaps/${AGENT_CA_BUNDLE}`, "-n", NS), "yes");
    assert.equal(await can("approve", `signers.certificates.k8s.io/${AGENT_SIGNER}`), "no");
  });

  test("mosaic certificate --kubernetes: an administrator's tool certificate from the CA Secret; the agents' ServiceAccount cannot", async () => {
    const out = join(dir, "tls-ops");
    const run = (kubeconfig: string) =>
      runMosaic(["certificate", "ops", "--kubernetes", "--namespace", NS, "--out", out], {
        env: { KUBECONFIG: kubeconfig },
      });
    const issued = await run(cp.kubeconfig);
    assert.equal(issued.code, 0, issued.stderr);
    const material = await readTlsFiles(out);
    assert.equal(materialProblem(material), undefined);
    assert.deepEqual(certificateFacts(material.certificate).dnsNames, ["ops.client.mosaic.dev"]);
    assert.ok(await signedBy(material.certificate, (await secretCa()).certificate));
    assert.equal(material.ca, await bundle(), "trusts the operator's bundle");
    const asAgent = await run(agentKubeconfig);
    assert.notEqual(asAgent.code, 0);
    assert.match(asAgent.stderr, /^mosaic: secrets mosaic-system\/mosaic-agent-ca: .*forbidden/i);
  });

  test("an agent's CSR is approved and signed; its TLS directory then serves", async () => {
    const agent = requester("agent-a", "node-a");
    await agent.ensure();
    const material = await readTlsFiles(join(dir, "tls-agent-a-node-a"));
    assert.equal(materialProblem(material), undefined);
    const facts = certificateFacts(material.certificate);
    assert.deepEqual(facts.dnsNames, ["node-a.agent.mosaic.dev"]);
    assert.ok(await signedBy(material.certificate, (await secretCa()).certificate));
    const lifeMs = facts.notAfter.getTime() - Date.now();
    assert.ok(lifeMs > LIFETIME_MS - 60_000 && lifeMs <= LIFETIME_MS, `lifetime ${lifeMs} ms`);
    const [csr] = await csrsOf("node-a");
    assert.equal(csr?.spec.username, `system:serviceaccount:${NS}:mosaic-agent`);
    assert.equal(csr?.status.conditions?.[0]?.type, "Approved");
    // Another check finds it good and asks for nothing.
    await agent.ensure();
    assert.equal(agent.obtained, 1);
  });

  test("a CSR for another node than the requesting pod's is denied, with the reason", async () => {
    await assert.rejects(requester("agent-b", "node-a").ensure(), /Denied: .*runs on node-b/);
    await assert.rejects(requester("not-an-agent", "node-a").ensure(), /Denied: .*not an agent pod/);
    assert.ok(signer.denied >= 2);
  });

  test("a CSR from another requester than the agents' ServiceAccount is denied", async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    rests.set("admin", new KubeRest(kc));
    await assert.rejects(
      requester("admin", "node-b").ensure(),
      /Denied: requested by .*only system:serviceaccount/,
    );
    const denied = (await csrsOf("node-b")).find((c) => c.status.conditions?.[0]?.type === "Denied");
    assert.match(
      denied?.status.conditions?.[0]?.message ?? "",
      /only system:serviceaccount:mosaic-system:mosaic-agent/,
    );
  });

  test("renewal: at two thirds of its life the agent asks again and gets a new certificate", async () => {
    const tlsDir = join(dir, "tls-agent-b-node-b");
    await requester("agent-b", "node-b").ensure();
    const first = (await readTlsFiles(tlsDir)).certificate;
    const facts = certificateFacts(first);
    // The clock moved past the rotation point (a third of the life left, less a minute).
    const later = new Date(facts.notAfter.getTime() - LIFETIME_MS / 3 + 60_000);
    const agent = requester("agent-b", "node-b", () => later);
    await agent.ensure();
    assert.equal(agent.obtained, 1);
    const second = await readTlsFiles(tlsDir);
    assert.notEqual(second.certificate, first);
    assert.equal(materialProblem(second), undefined);
    // X.509 times have whole seconds: a renewal within the same second ends at the same second.
    assert.ok(certificateFacts(second.certificate).notAfter >= facts.notAfter);
  });

  test("CA rotation: a new CA, the old kept in the bundle, agents move to the new one", async () => {
    const oldCa = (await secretCa()).certificate;
    await cp.kubectl(["annotate", "secret", "-n", NS, AGENT_CA_SECRET, `${ROTATE_CA_ANNOTATION}=now`]);
    signer.setActive(true); // the minute's CA check, now
    await eventually(async () => (await secretCa()).certificate !== oldCa, WAIT_MS, "a new CA");
    const rotated = await secretCa();
    assert.equal(rotated.annotations[ROTATE_CA_ANNOTATION], undefined, "the request is consumed");
    assert.ok(rotated.annotations["mosaic.dev/previous-until"]);
    await eventually(
      async () => (await bundle()) === `${rotated.certificate.trim()}\n${oldCa.trim()}\n`,
      WAIT_MS,
      "both CAs in the bundle",
    );
    // An agent still on the old CA is still good against the bundle (peers trust it during the overlap) ...
    const tlsDir = join(dir, "tls-agent-a-node-a");
    const before = await readTlsFiles(tlsDir);
    assert.equal(materialProblem({ ...before, ca: await bundle() }), undefined);
    // ... and moves to the new CA at its next check.
    const agent = requester("agent-a", "node-a");
    await agent.ensure();
    assert.equal(agent.obtained, 1);
    const after = await readTlsFiles(tlsDir);
    assert.ok(await signedBy(after.certificate, rotated.certificate));
    assert.equal(after.ca, await bundle());
  });
});
