// Names the operator and the agents agree on for the agents' certificates:
// the CertificateSigningRequest signer, what a CSR of that signer carries,
// and where the operator publishes the CA bundle (never the CA key).
import { createHash } from "node:crypto";
import type { Resource } from "../framework/resources.ts";

/** The signerName of every agent CSR; kube-controller-manager's own signers leave it alone. */
export const AGENT_SIGNER = "mosaic.dev/agent";
/** The Secret (operator's namespace) holding the CA: tls.crt, tls.key, and previous.crt while a rotation overlaps. */
export const AGENT_CA_SECRET = "mosaic-agent-ca";
/** The ConfigMap (same namespace) agents read: ca.crt, the current CA first, then any previous one. */
export const AGENT_CA_BUNDLE = "mosaic-agent-ca-bundle";
export const CA_BUNDLE_KEY = "ca.crt";
/** Label on an agent's CSR naming the node it asks a certificate for (the CSR's SAN says the same). */
export const CSR_NODE_LABEL = "mosaic.dev/node";
/** The usages an agent CSR must ask for, exactly: it serves and dials peers with one certificate. */
export const AGENT_USAGES = ["digital signature", "key encipherment", "client auth", "server auth"] as const;
/** Keys of a CSR's spec.extra that the API server fills from a pod-bound ServiceAccount token. */
export const EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name";
export const EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name";
export const EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid";

export const CERTIFICATE_SIGNING_REQUESTS: Resource = {
  group: "certificates.k8s.io",
  version: "v1",
  plural: "certificatesigningrequests",
  kind: "CertificateSigningRequest",
  namespaced: false,
};

export interface CsrCondition {
  type: "Approved" | "Denied" | "Failed" | string;
  status: string;
  reason?: string;
  message?: string;
  lastUpdateTime?: string;
}

export interface CertificateSigningRequest {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    generateName?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
  spec: {
    /** Base64 of the PEM CSR. */
    request: string;
    signerName: string;
    usages?: string[];
    expirationSeconds?: number;
    username?: string;
    uid?: string;
    groups?: string[];
    extra?: Record<string, string[]>;
  };
  status?: { conditions?: CsrCondition[]; certificate?: string };
}

/** The CSR's terminal condition (Denied or Failed), if it has one. */
export function refusalOf(csr: CertificateSigningRequest): CsrCondition | undefined {
  return csr.status?.conditions?.find(
    (c) => (c.type === "Denied" || c.type === "Failed") && c.status === "True",
  );
}

export function isApproved(csr: CertificateSigningRequest): boolean {
  return csr.status?.conditions?.some((c) => c.type === "Approved" && c.status === "True") === true;
}

/** A CSR name for `node`'s request: the node and a hash of the request, so each request is its own object. */
export function agentCsrName(node: string, csrPem: string): string {
  return `mosaic-agent-${node}-${createHash("sha256").update(csrPem).digest("hex").slice(0, 10)}`;
}
