// The X.509 module on its own: chains Node's own TLS stack accepts, CSRs
// checked before signing, and the dates rotation runs on.
import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { test } from "node:test";
import {
  agentDnsName,
  certificateFacts,
  createAgentCsr,
  createCa,
  issueAgentCertificate,
  issueClientCertificate,
  needsRotation,
  rotationDue,
  signAgentCsr,
  signedBy,
  validityProblem,
} from "../../src/tls/certificates.ts";
import { materialProblem } from "../../src/tls/tls-files.ts";

test("an agent certificate: signed by the CA, its node in a SAN DNS name, for server and client, its key's", async () => {
  const ca = await createCa();
  const agent = await issueAgentCertificate(ca, "node-7");
  const cert = new X509Certificate(agent.certificate);
  const caCert = new X509Certificate(ca.certificate);
  assert.equal(caCert.ca, true);
  assert.equal(cert.ca, false);
  assert.ok(cert.checkIssued(caCert) && cert.verify(caCert.publicKey));
  assert.equal(cert.subjectAltName, "DNS:node-7.agent.mosaic.dev");
  assert.equal(cert.checkHost("node-7.agent.mosaic.dev"), "node-7.agent.mosaic.dev");
  assert.equal(cert.checkHost("node-8.agent.mosaic.dev"), undefined);
  assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]); // serverAuth, clientAuth
  assert.ok(cert.checkPrivateKey(createPrivateKey(agent.privateKey)));
  assert.equal(await signedBy(agent.certificate, ca.certificate), true);
  assert.equal(await signedBy(agent.certificate, (await createCa()).certificate), false);
  assert.equal(materialProblem({ ca: ca.certificate, ...agent }), undefined);
});

test("materialProblem names what is wrong with a TLS directory's set", async () => {
  const ca = await createCa();
  const other = await createCa();
  const a = await issueAgentCertificate(ca, "node-1");
  const b = await issueAgentCertificate(ca, "node-2");
  assert.match(
    materialProblem({ ca: ca.certificate, certificate: a.certificate, privateKey: b.privateKey }) ?? "",
    /tls.key is not the key of tls.crt/,
  );
  assert.match(materialProblem({ ca: other.certificate, ...a }) ?? "", /not signed by ca.crt/);
  assert.match(materialProblem({ ca: "junk", ...a }) ?? "", /ca.crt is not a PEM certificate/);
  assert.match(
    materialProblem({ ca: ca.certificate, certificate: a.certificate, privateKey: "junk" }) ?? "",
    /not a PEM private key/,
  );
});

test("a CSR is signed for its own node only, and only if its signature holds", async () => {
  const ca = await createCa();
  const { csr, privateKey } = await createAgentCsr("node-2");
  const signed = await signAgentCsr(ca, csr, "node-2");
  assert.deepEqual(certificateFacts(signed).dnsNames, ["node-2.agent.mosaic.dev"]);
  assert.ok(new X509Certificate(signed).checkPrivateKey(createPrivateKey(privateKey)));
  await assert.rejects(
    signAgentCsr(ca, csr, "node-3"),
    /names dns:node-2.agent.mosaic.dev; node node-3 may ask for dns:node-3.agent.mosaic.dev only/,
  );
  await assert.rejects(
    signAgentCsr(
      ca,
      "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
      "node-2",
    ),
    /not a PKCS#10/,
  );
  // The subject's name changed after signing (CN=node-2 → CN=node-3): the signature no longer covers it.
  const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ""), "base64");
  const at = der.indexOf("node-2");
  der[at + 5] = "3".charCodeAt(0);
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----`;
  await assert.rejects(
    signAgentCsr(ca, tampered, "node-2"),
    /the certificate request's signature does not verify/,
  );
  // Its key's bytes mangled: refused the same way, not with a crypto library's TypeError.
  const keyAt = der.indexOf(Buffer.from([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07])); // OID P-256
  der[keyAt + 9] = 0x09;
  const mangled = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----`;
  await assert.rejects(signAgentCsr(ca, mangled, "node-2"), /signature does not verify|not a PKCS#10/);
});

test("a tool's certificate is the CA's but never an agent's name", async () => {
  const ca = await createCa();
  const client = await issueClientCertificate(ca, "mosaic-cli");
  assert.deepEqual(certificateFacts(client.certificate).dnsNames, ["mosaic-cli.client.mosaic.dev"]);
});

test("node ids that are no DNS label cannot name a certificate", () => {
  assert.equal(agentDnsName("worker-3"), "worker-3.agent.mosaic.dev");
  for (const bad of ["", "Node-1", "a.b", "-x", "x-", "a".repeat(64), "n*"])
    assert.throws(() => agentDnsName(bad), /cannot name a certificate: it must be a DNS label/, bad);
});

test("rotation is due at two thirds of the life; expiry and not-yet-valid are told apart", async () => {
  const start = new Date("2030-01-01T00:00:00Z");
  const ca = await createCa({ now: start });
  const agent = await issueAgentCertificate(ca, "node-1", { now: start, validityMs: 3 * 3600_000 });
  const facts = certificateFacts(agent.certificate);
  // Backdated five minutes for clock skew: life is 3 h 5 min, rotation 2/3 of it after notBefore.
  assert.equal(facts.notBefore.toISOString(), "2029-12-31T23:55:00.000Z");
  assert.equal(facts.notAfter.toISOString(), "2030-01-01T03:00:00.000Z");
  assert.equal(
    rotationDue(facts).toISOString(),
    new Date(facts.notBefore.getTime() + (185 * 60_000 * 2) / 3).toISOString(),
  );
  assert.equal(needsRotation(facts, new Date("2030-01-01T01:00:00Z")), false);
  assert.equal(needsRotation(facts, new Date("2030-01-01T02:05:00Z")), true);
  assert.equal(validityProblem(facts, new Date("2030-01-01T01:00:00Z")), undefined);
  assert.match(
    validityProblem(facts, new Date("2030-01-01T03:00:00Z")) ?? "",
    /expired at 2030-01-01T03:00:00/,
  );
  assert.match(validityProblem(facts, new Date("2029-12-31T23:00:00Z")) ?? "", /not valid before/);
  assert.throws(() => certificateFacts("not a certificate"), /not a PEM X.509 certificate/);
});
