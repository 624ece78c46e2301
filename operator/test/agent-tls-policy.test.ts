// The agents' TLS policy, without a cluster: what the DaemonSet carries with
// TLS on and off, the settings that refuse bad values, the CSR checks that
// need no lookups, and when the CA is kept, replaced, or its predecessor
// dropped from the bundle.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createAgentCsr, createCa } from "../../node-agent/src/tls/certificates.ts";
import { bundleOf, nextCaState } from "../src/agent-ca.ts";
import { reviewAgentCsr } from "../src/agent-certificates.ts";
import { AGENT_TLS_DIR, agentDaemonSet } from "../src/agent-daemonset.ts";
import { AGENT_SIGNER, AGENT_USAGES, type CertificateSigningRequest } from "../src/api/agent-tls.ts";
import { settingsFromEnv } from "../src/settings.ts";

const ENV = {
  MOSAIC_NAMESPACE: "mosaic-system",
  MOSAIC_AGENT_IMAGE: "mosaic/node-agent:1",
  MOSAIC_NETWORK_A: "a",
  MOSAIC_NETWORK_B: "b",
};
const DAY = 24 * 3_600_000;
const AGENT = "system:serviceaccount:mosaic-system:mosaic-agent";

const csr = (
  over: Partial<CertificateSigningRequest["spec"]> = {},
  node = "node-a",
): CertificateSigningRequest => ({
  metadata: { name: "x", labels: { "mosaic.dev/node": node } },
  spec: {
    request: "",
    signerName: AGENT_SIGNER,
    usages: [...AGENT_USAGES],
    username: AGENT,
    extra: {
      "authentication.kubernetes.io/pod-name": ["agent-a"],
      "authentication.kubernetes.io/pod-uid": ["u1"],
      "authentication.kubernetes.io/node-name": ["node-a"],
    },
    ...over,
  },
});
const expect = { namespace: "mosaic-system", serviceAccount: "mosaic-agent" };

describe("agents' TLS policy", () => {
  test("the DaemonSet: with TLS, an in-memory emptyDir passed as --tls-dir; without, nothing", () => {
    const on = settingsFromEnv({ ...ENV, MOSAIC_TLS_ENABLED: "true" });
    assert.equal(on.tls.certificateLifetimeMs, 7 * DAY);
    const spec = agentDaemonSet(on.agent).spec?.template.spec;
    const command = spec?.containers[0]?.command ?? [];
    assert.equal(command[command.indexOf("--tls-dir") + 1], AGENT_TLS_DIR);
    assert.deepEqual(spec?.volumes?.find((v) => v.name === "tls")?.emptyDir, { medium: "Memory" });
    assert.ok(
      spec?.containers[0]?.volumeMounts?.some((m) => m.name === "tls" && m.mountPath === AGENT_TLS_DIR),
    );
    const off = agentDaemonSet(settingsFromEnv(ENV).agent).spec?.template.spec;
    assert.ok(!off?.containers[0]?.command?.includes("--tls-dir"));
    assert.ok(!off?.volumes?.some((v) => v.name === "tls"));
  });

  test("settings refuse a TLS switch or lifetime they cannot read, by name", () => {
    assert.throws(() => settingsFromEnv({ ...ENV, MOSAIC_TLS_ENABLED: "yes" }), /MOSAIC_TLS_ENABLED=yes/);
    assert.throws(() => settingsFromEnv({ ...ENV, MOSAIC_TLS_CERTIFICATE_LIFETIME: "7d" }), /LIFETIME=7d/);
    assert.throws(() => settingsFromEnv({ ...ENV, MOSAIC_TLS_CERTIFICATE_LIFETIME: "30m" }), /from 1h/);
    assert.equal(
      settingsFromEnv({ ...ENV, MOSAIC_TLS_CERTIFICATE_LIFETIME: "90m" }).tls.certificateLifetimeMs,
      5_400_000,
    );
  });

  test("CSR review: other signers ignored; wrong usages, unbound tokens, another node or requester denied", async () => {
    assert.deepEqual(reviewAgentCsr(csr({ signerName: "kubernetes.io/kubelet-serving" }), expect), {
      action: "ignore",
    });
    assert.deepEqual(reviewAgentCsr(csr(), expect), {
      action: "check-pod",
      node: "node-a",
      pod: "agent-a",
      podUid: "u1",
    });
    const denied = (c: CertificateSigningRequest) => {
      const verdict = reviewAgentCsr(c, expect);
      return verdict.action === "deny" ? verdict.message : `not denied: ${verdict.action}`;
    };
    assert.match(denied(csr({ username: "alice" })), /requested by alice; only system:serviceaccount/);
    assert.match(denied(csr({ usages: ["client auth"] })), /usages client auth; an agent asks for exactly/);
    assert.match(denied(csr({ extra: {} })), /not bound to a pod/);
    assert.match(
      denied(csr({}, "node-b")),
      /asks for node node-b, but the requesting pod agent-a runs on node-a/,
    );
    const done = { ...csr(), status: { conditions: [{ type: "Denied", status: "True" }] } };
    assert.deepEqual(reviewAgentCsr(done, expect), { action: "ignore" });
    assert.ok((await createAgentCsr("node-a")).csr.includes("CERTIFICATE REQUEST"));
  });

  test("the CA: kept while valid, replaced on request with the old kept until two lifetimes on, then dropped", async () => {
    const now = new Date("2026-01-01T00:00:00Z");
    const made = await nextCaState(undefined, now, 7 * DAY);
    assert.equal(made.changed, true);
    const kept = await nextCaState(made.state, new Date(now.getTime() + 365 * DAY), 7 * DAY);
    assert.equal(kept.changed, false);
    assert.equal(kept.state.ca.certificate, made.state.ca.certificate);
    const rotated = await nextCaState({ ...made.state, rotateRequested: true }, now, 7 * DAY);
    assert.notEqual(rotated.state.ca.certificate, made.state.ca.certificate);
    assert.equal(rotated.state.previous?.certificate, made.state.ca.certificate);
    assert.equal(rotated.state.previous?.until.getTime(), now.getTime() + 14 * DAY);
    assert.equal((bundleOf(rotated.state).match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
    assert.ok(bundleOf(rotated.state).startsWith(rotated.state.ca.certificate.trim()));
    const settled = await nextCaState(rotated.state, new Date(now.getTime() + 15 * DAY), 7 * DAY);
    assert.equal(settled.changed, true);
    assert.equal(settled.state.previous, undefined);
    // Past two thirds of its own life, a CA is replaced without being asked.
    const old = { ca: await createCa({ now, validityMs: 30 * DAY }), rotateRequested: false };
    const aged = await nextCaState(old, new Date(now.getTime() + 21 * DAY), 7 * DAY);
    assert.notEqual(aged.state.ca.certificate, old.ca.certificate);
  });
});
