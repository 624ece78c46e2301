// An agent's certificate in Kubernetes: the agent makes its key (it never
// leaves the node), asks the API for a certificate with a
// CertificateSigningRequest of signer mosaic.dev/agent named after its node
// and a hash, waits for the operator to approve and sign it
// (operator/src/agent-certificates.ts), and writes its TLS directory
// (tls-files.ts) with the CA bundle the operator publishes in the ConfigMap
// mosaic-agent-ca-bundle. Checked every minute: a new certificate at two
// thirds of its life, or as soon as the bundle's first (current) CA is not
// its issuer (the CA was rotated); a changed bundle is written at once. The
// gRPC provider re-reads the directory, so new connections take it up.
import { setTimeout as sleep } from "node:timers/promises";
import {
  AGENT_CA_BUNDLE,
  AGENT_SIGNER,
  AGENT_USAGES,
  agentCsrName,
  CA_BUNDLE_KEY,
  CERTIFICATE_SIGNING_REQUESTS,
  type CertificateSigningRequest,
  CSR_NODE_LABEL,
  refusalOf,
} from "@mosaic/operator/api/agent-tls.ts";
import { isNotFound, type KubeRest } from "@mosaic/operator/framework/kube-rest.ts";
import { collectionPath, objectPath } from "@mosaic/operator/framework/resources.ts";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import {
  agentDnsName,
  certificateFacts,
  createAgentCsr,
  needsRotation,
  signedBy,
} from "../tls/certificates.ts";
import { materialProblem, readTlsFiles, type TlsMaterial, writeTlsFiles } from "../tls/tls-files.ts";

export interface AgentCertificateOptions {
  rest: KubeRest;
  /** The agents' (and operator's) namespace, where the CA bundle is. */
  namespace: string;
  node: string;
  /** The TLS directory to keep filled (the DaemonSet's emptyDir). */
  dir: string;
  log: Logger;
  /** How long to wait for the CA bundle and for a signature (default 5 min). */
  waitMs?: number;
  /** How often to look at the CSR and the bundle while waiting (default 1 s). */
  pollMs?: number;
  /** How often to check for renewal (default 60 s). */
  checkMs?: number;
  /** The clock renewal is judged by. */
  now?: () => Date;
}

/** What the directory needs: nothing, the new bundle beside the same certificate, or a new certificate. */
export async function certificateNeed(
  existing: TlsMaterial | undefined,
  bundle: string,
  node: string,
  now: Date,
): Promise<"keep" | "bundle" | "renew"> {
  if (existing === undefined) return "renew";
  if (materialProblem({ ...existing, ca: bundle }) !== undefined) return "renew";
  const facts = certificateFacts(existing.certificate);
  if (!facts.dnsNames.includes(agentDnsName(node)) || needsRotation(facts, now)) return "renew";
  const current = firstCertificate(bundle);
  if (!(await signedBy(existing.certificate, current).catch(() => false))) return "renew";
  return existing.ca === bundle ? "keep" : "bundle";
}

export class AgentCertificate {
  readonly #o: AgentCertificateOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;
  /** Certificates obtained by this process (tests, logs). */
  obtained = 0;

  constructor(options: AgentCertificateOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: "agent-certificate" });
  }

  /** Makes sure the directory holds a good certificate for now, asking for one if not. */
  ensure(): Promise<void> {
    this.#checking ??= this.#ensure().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  /** Checks again every checkMs; a failed check is logged and tried at the next. */
  start(): void {
    this.#timer = setInterval(() => {
      this.ensure().catch((error: unknown) =>
        this.#log.error({ err: (error as Error).message }, "agent certificate not renewed; trying again"),
      );
    }, this.#o.checkMs ?? 60_000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async #ensure(): Promise<void> {
    const bundle = await this.#bundle();
    const existing = await readTlsFiles(this.#o.dir).catch(() => undefined);
    const need = await certificateNeed(existing, bundle, this.#o.node, this.#now());
    if (need === "keep") return;
    if (need === "bundle" && existing !== undefined) {
      await writeTlsFiles(this.#o.dir, { ...existing, ca: bundle });
      this.#log.info("CA bundle changed; written beside the same certificate");
      return;
    }
    const { csr, privateKey } = await createAgentCsr(this.#o.node);
    const certificate = await this.#request(csr);
    // The bundle again: a CA rotated while we waited signed this certificate.
    const latest = await this.#bundle();
    await writeTlsFiles(this.#o.dir, { ca: latest, certificate, privateKey });
    this.obtained++;
    const facts = certificateFacts(certificate);
    this.#log.info(
      { notAfter: facts.notAfter.toISOString(), issuer: facts.issuer },
      "agent certificate obtained through a CertificateSigningRequest",
    );
  }

  /** The CA bundle the operator publishes; waits for it a while (a new operator makes it first). */
  async #bundle(): Promise<string> {
    const path = `/api/v1/namespaces/${this.#o.namespace}/configmaps/${AGENT_CA_BUNDLE}`;
    const deadline = Date.now() + (this.#o.waitMs ?? 300_000);
    for (;;) {
      const cm = await this.#o.rest.get<{ data?: Record<string, string> }>(path).catch((error: unknown) => {
        if (isNotFound(error)) return undefined;
        throw error;
      });
      const bundle = cm?.data?.[CA_BUNDLE_KEY];
      if (bundle !== undefined && bundle !== "") return bundle;
      if (Date.now() >= deadline)
        throw new Error(
          `no CA bundle: ConfigMap ${this.#o.namespace}/${AGENT_CA_BUNDLE} has no ${CA_BUNDLE_KEY} (is the operator running?)`,
        );
      await sleep(this.#o.pollMs ?? 1_000);
    }
  }

  /** Submits the CSR and waits for its certificate; a Denied or Failed CSR is an error with the operator's reason. */
  async #request(csrPem: string): Promise<string> {
    const name = agentCsrName(this.#o.node, csrPem);
    const body: CertificateSigningRequest = {
      apiVersion: "certificates.k8s.io/v1",
      kind: "CertificateSigningRequest",
      metadata: { name, labels: { [CSR_NODE_LABEL]: this.#o.node } },
      spec: {
        request: Buffer.from(csrPem, "utf8").toString("base64"),
        signerName: AGENT_SIGNER,
        usages: [...AGENT_USAGES],
      },
    };
    await this.#o.rest.create(collectionPath(CERTIFICATE_SIGNING_REQUESTS), body);
    this.#log.info({ csr: name }, "certificate requested; waiting for the operator to sign it");
    const deadline = Date.now() + (this.#o.waitMs ?? 300_000);
    for (;;) {
      const csr = await this.#o.rest.get<CertificateSigningRequest>(
        objectPath(CERTIFICATE_SIGNING_REQUESTS, name),
      );
      const refusal = refusalOf(csr);
      if (refusal !== undefined)
        throw new MosaicError(
          "MOSAIC_ERR_BAD_REQUEST",
          `CertificateSigningRequest ${name} ${refusal.type}: ${refusal.message ?? refusal.reason ?? "no reason given"}`,
        );
      const certificate = csr.status?.certificate;
      if (certificate !== undefined && certificate !== "")
        return Buffer.from(certificate, "base64").toString("utf8");
      if (Date.now() >= deadline)
        throw new Error(
          `CertificateSigningRequest ${name} not signed within ${Math.round((this.#o.waitMs ?? 300_000) / 1000)} s (is the operator running?)`,
        );
      await sleep(this.#o.pollMs ?? 1_000);
    }
  }

  #now(): Date {
    return this.#o.now?.() ?? new Date();
  }
}

function firstCertificate(bundle: string): string {
  const end = "-----END CERTIFICATE-----";
  const at = bundle.indexOf(end);
  return at < 0 ? bundle : bundle.slice(0, at + end.length);
}
