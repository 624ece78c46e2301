// The operator's signer for agents' CertificateSigningRequests (signerName
// mosaic.dev/agent). For each pending CSR of that signer, the leader checks:
//   - the requester is the agents' ServiceAccount (spec.username);
//   - the token it used is bound to a pod (spec.extra, filled by the API
//     server, not the requester) and that pod exists now with that uid, runs
//     on the node the CSR names (its label, and the SAN signAgentCsr checks),
//     and is an agent pod;
//   - it asks for exactly the agents' usages;
//   - the CSR's own signature verifies and its only name is that node's
//     (signAgentCsr);
// then approves (the /approval subresource) and signs (/status) with the CA
// of agent-ca.ts, or denies with the reason in the Denied condition.
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { signAgentCsr } from "../../node-agent/src/tls/certificates.ts";
import { ensureAgentCa } from "./agent-ca.ts";
import {
  AGENT_SIGNER,
  AGENT_USAGES,
  CERTIFICATE_SIGNING_REQUESTS,
  type CertificateSigningRequest,
  CSR_NODE_LABEL,
  EXTRA_NODE_NAME,
  EXTRA_POD_NAME,
  EXTRA_POD_UID,
  isApproved,
  refusalOf,
} from "./api/agent-tls.ts";
import { AGENT_LABELS } from "./api/agents.ts";
import { ResilientInformer } from "./framework/informer.ts";
import { isNotFound, type KubeRest } from "./framework/kube-rest.ts";
import type { OperatorPart } from "./framework/operator.ts";
import { objectPath } from "./framework/resources.ts";
import { type QueueObserver, WorkQueue } from "./framework/work-queue.ts";

export interface AgentCertificatesOptions {
  kc: KubeConfig;
  rest: KubeRest;
  /** The operator's and agents' namespace: the CA Secret, the bundle, the agent pods. */
  namespace: string;
  /** The agents' ServiceAccount. */
  agentServiceAccount: string;
  /** Lifetime of each agent certificate. */
  certificateLifetimeMs: number;
  log: Logger;
  observer?: QueueObserver | undefined;
}

/** What to do with a CSR of our signer, from the CSR alone. */
export type CsrVerdict =
  | { action: "ignore" }
  | { action: "deny"; message: string }
  | { action: "check-pod"; node: string; pod: string; podUid: string | undefined }
  | { action: "sign"; node: string };

/** The CSR's checks that need no lookups (pure). */
export function reviewAgentCsr(
  csr: CertificateSigningRequest,
  expect: { namespace: string; serviceAccount: string },
): CsrVerdict {
  if (csr.spec.signerName !== AGENT_SIGNER || refusalOf(csr) !== undefined) return { action: "ignore" };
  if (csr.status?.certificate !== undefined && csr.status.certificate !== "") return { action: "ignore" };
  const node = csr.metadata.labels?.[CSR_NODE_LABEL];
  if (isApproved(csr)) return node === undefined ? { action: "ignore" } : { action: "sign", node };
  const agent = `system:serviceaccount:${expect.namespace}:${expect.serviceAccount}`;
  if (csr.spec.username !== agent)
    return {
      action: "deny",
      message: `requested by ${csr.spec.username ?? "nobody"}; only ${agent} may ask`,
    };
  if (node === undefined || node === "")
    return { action: "deny", message: `no ${CSR_NODE_LABEL} label: the CSR must name its node` };
  const usages = [...(csr.spec.usages ?? [])].sort();
  if (JSON.stringify(usages) !== JSON.stringify([...AGENT_USAGES].sort()))
    return {
      action: "deny",
      message: `usages ${usages.join(", ") || "none"}; an agent asks for exactly ${AGENT_USAGES.join(", ")}`,
    };
  const extra = csr.spec.extra ?? {};
  const tokenNode = extra[EXTRA_NODE_NAME]?.[0];
  const pod = extra[EXTRA_POD_NAME]?.[0];
  if (pod === undefined)
    return {
      action: "deny",
      message: "the requester's token is not bound to a pod; an agent asks with its pod's token",
    };
  if (tokenNode !== undefined && tokenNode !== node)
    return {
      action: "deny",
      message: `asks for node ${node}, but the requesting pod ${pod} runs on ${tokenNode}`,
    };
  return { action: "check-pod", node, pod, podUid: extra[EXTRA_POD_UID]?.[0] };
}

/** Why the requesting pod may not have a certificate for `node`, or undefined when it may. */
export function podProblem(
  pod:
    | { metadata?: { uid?: string; labels?: Record<string, string> }; spec?: { nodeName?: string } }
    | undefined,
  want: { node: string; pod: string; podUid: string | undefined; namespace: string },
): string | undefined {
  if (pod === undefined) return `the requesting pod ${want.namespace}/${want.pod} does not exist`;
  if (want.podUid !== undefined && pod.metadata?.uid !== want.podUid)
    return `the requesting pod ${want.pod} was replaced (uid ${pod.metadata?.uid}, token's ${want.podUid})`;
  const labels = pod.metadata?.labels ?? {};
  if (Object.entries(AGENT_LABELS).some(([k, v]) => labels[k] !== v))
    return `the requesting pod ${want.pod} is not an agent pod (labels ${JSON.stringify(labels)})`;
  if (pod.spec?.nodeName !== want.node)
    return `asks for node ${want.node}, but the requesting pod ${want.pod} runs on ${pod.spec?.nodeName ?? "no node"}`;
  return undefined;
}

const CA_KEY = "\u0000ca";
/** The CA is re-checked this often (rotation at two thirds of its life, a rotate-ca annotation). */
const CA_CHECK_MS = 60_000;

export class AgentCertificates implements OperatorPart {
  readonly #o: AgentCertificatesOptions;
  readonly #log: Logger;
  readonly #csrs: ResilientInformer<CertificateSigningRequest>;
  readonly #queue: WorkQueue;
  #caTimer: NodeJS.Timeout | undefined;
  #active = false;
  /** CSRs signed and denied by this replica (tests, logs). */
  signed = 0;
  denied = 0;

  constructor(options: AgentCertificatesOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: "agent-certificates" });
    this.#queue = new WorkQueue({
      handler: (key) => (key === CA_KEY ? this.#ensureCa().then(() => undefined) : this.#handle(key)),
      backoff: { baseMs: 500, maxMs: 30_000 },
      onError: (key, error, retryInMs) =>
        this.#log.warn(
          { csr: key, err: (error as Error).message, retryInMs },
          "agent CSR not handled; will retry",
        ),
      ...(options.observer === undefined ? {} : { observer: options.observer }),
    });
    this.#csrs = new ResilientInformer<CertificateSigningRequest>({
      kc: options.kc,
      rest: options.rest,
      resource: CERTIFICATE_SIGNING_REQUESTS,
      fieldSelector: `spec.signerName=${AGENT_SIGNER}`,
      onKey: (key) => {
        if (this.#active) this.#queue.add(key);
      },
      log: this.#log,
    });
  }

  async start(): Promise<void> {
    await this.#csrs.start();
    this.#caTimer = setInterval(() => {
      if (this.#active) this.#queue.add(CA_KEY);
    }, CA_CHECK_MS);
    this.#caTimer.unref();
  }

  setActive(active: boolean): void {
    this.#active = active;
    if (!active) return;
    this.#queue.add(CA_KEY);
    for (const csr of this.#csrs.list()) this.#queue.add(csr.metadata.name ?? "");
  }

  drained(): Promise<void> {
    return this.#queue.drained();
  }

  async stop(): Promise<void> {
    this.#active = false;
    clearInterval(this.#caTimer);
    await this.#queue.stop();
    await this.#csrs.stop();
  }

  #ensureCa() {
    return ensureAgentCa(this.#o.rest, this.#o.namespace, { agentLifetimeMs: this.#o.certificateLifetimeMs });
  }

  async #handle(name: string): Promise<void> {
    if (!this.#active) return;
    const csr = this.#csrs.get(name);
    if (csr === undefined) return;
    const expect = { namespace: this.#o.namespace, serviceAccount: this.#o.agentServiceAccount };
    let verdict = reviewAgentCsr(csr, expect);
    if (verdict.action === "ignore") return;
    if (verdict.action === "check-pod") {
      const pod = await this.#o.rest
        .get<Parameters<typeof podProblem>[0]>(`/api/v1/namespaces/${this.#o.namespace}/pods/${verdict.pod}`)
        .catch((error: unknown) => {
          if (isNotFound(error)) return undefined;
          throw error;
        });
      const problem = podProblem(pod, { ...verdict, namespace: this.#o.namespace });
      verdict =
        problem === undefined ? { action: "sign", node: verdict.node } : { action: "deny", message: problem };
    }
    if (verdict.action === "deny") return this.#deny(csr, verdict.message);
    if (verdict.action !== "sign") return;
    const { ca } = await this.#ensureCa();
    let certificate: string;
    try {
      const pem = Buffer.from(csr.spec.request, "base64").toString("utf8");
      certificate = await signAgentCsr(ca, pem, verdict.node, { validityMs: this.#o.certificateLifetimeMs });
    } catch (error) {
      return this.#deny(csr, (error as Error).message);
    }
    const approved = isApproved(csr)
      ? csr
      : await this.#condition(csr, "Approved", "MosaicAgentNode", `agent of node ${verdict.node}`);
    await this.#o.rest.replace(`${objectPath(CERTIFICATE_SIGNING_REQUESTS, name)}/status`, {
      ...approved,
      status: { ...approved.status, certificate: Buffer.from(certificate, "utf8").toString("base64") },
    });
    this.signed++;
    this.#log.info({ csr: name, node: verdict.node }, "agent certificate signed");
  }

  async #deny(csr: CertificateSigningRequest, message: string): Promise<void> {
    await this.#condition(csr, "Denied", "MosaicAgentCsrRefused", message);
    this.denied++;
    this.#log.warn(
      { csr: csr.metadata.name, requester: csr.spec.username, reason: message },
      "agent CSR denied",
    );
  }

  /** Adds an Approved or Denied condition through the /approval subresource; returns the updated CSR. */
  #condition(
    csr: CertificateSigningRequest,
    type: "Approved" | "Denied",
    reason: string,
    message: string,
  ): Promise<CertificateSigningRequest> {
    const conditions = [
      ...(csr.status?.conditions ?? []),
      { type, status: "True", reason, message, lastUpdateTime: new Date().toISOString() },
    ];
    return this.#o.rest.replace<CertificateSigningRequest>(
      `${objectPath(CERTIFICATE_SIGNING_REQUESTS, csr.metadata.name ?? "")}/approval`,
      { ...csr, status: { ...csr.status, conditions } },
    );
  }
}
