// When an agent in Kubernetes needs a new certificate (agent-certificate.ts):
// none yet, another node's, past two thirds of its life, or issued by a CA
// that is no longer the bundle's first; a new bundle beside a good
// certificate is written without asking for one.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { certificateNeed } from "../../src/kube/agent-certificate.ts";
import {
  certificateFacts,
  createCa,
  issueAgentCertificate,
  rotationDue,
} from "../../src/tls/certificates.ts";

describe("an agent's certificate need", () => {
  test("renew, keep, or only the bundle", async () => {
    const now = new Date();
    const ca = await createCa();
    const other = await createCa();
    const pair = await issueAgentCertificate(ca, "node-a");
    const material = { ca: ca.certificate, ...pair };
    assert.equal(await certificateNeed(undefined, ca.certificate, "node-a", now), "renew");
    assert.equal(await certificateNeed(material, ca.certificate, "node-a", now), "keep");
    assert.equal(await certificateNeed(material, ca.certificate, "node-b", now), "renew");
    const due = rotationDue(certificateFacts(pair.certificate));
    assert.equal(
      await certificateNeed(material, ca.certificate, "node-a", new Date(due.getTime() + 1)),
      "renew",
    );
    // Rotated: the new CA first, the old still trusted: renew (to the new CA).
    assert.equal(
      await certificateNeed(material, `${other.certificate}\n${ca.certificate}`, "node-a", now),
      "renew",
    );
    // The old CA still current, a new one added after it: only the bundle changes.
    assert.equal(
      await certificateNeed(material, `${ca.certificate}\n${other.certificate}`, "node-a", now),
      "bundle",
    );
    // A bundle that does not hold the issuer at all.
    assert.equal(await certificateNeed(material, other.certificate, "node-a", now), "renew");
  });
});
