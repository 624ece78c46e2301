// The agents' CA, kept by the operator (leader only) in the Secret
// mosaic-agent-ca of its namespace, and its public half published in the
// ConfigMap mosaic-agent-ca-bundle, which is all the agents may read.
//   - missing: made (ECDSA P-256, ten years: certificates.ts);
//   - valid: never overwritten;
//   - past two thirds of its life, or annotated mosaic.dev/rotate-ca: a new
//     CA is made and the old certificate kept as previous.crt until
//     mosaic.dev/previous-until (two agent lifetimes on): the bundle lists
//     both, so agents still on the old CA and agents on the new one trust
//     each other while each renews (an agent renews as soon as the bundle's
//     first CA is not its issuer: agent-certificate.ts).
import {
  certificateFacts,
  createCa,
  type KeyPairPem,
  needsRotation,
} from "../../node-agent/src/tls/certificates.ts";
import { AGENT_CA_BUNDLE, AGENT_CA_SECRET, CA_BUNDLE_KEY } from "./api/agent-tls.ts";
import { isConflict, isNotFound, type KubeRest } from "./framework/kube-rest.ts";

export const ROTATE_CA_ANNOTATION = "mosaic.dev/rotate-ca";
const PREVIOUS_UNTIL_ANNOTATION = "mosaic.dev/previous-until";
const PREVIOUS_KEY = "previous.crt";

interface Secret {
  apiVersion?: string;
  kind?: string;
  type?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  data?: Record<string, string>;
}

interface ConfigMap {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

/** What the Secret holds, decoded. */
export interface AgentCaState {
  ca: KeyPairPem;
  previous?: { certificate: string; until: Date };
  rotateRequested: boolean;
}

export interface AgentCa {
  ca: KeyPairPem;
  /** PEM of the CAs agents trust: the current first. */
  bundle: string;
}

/** The CA to sign with now, and whether the Secret must change: pure, so the policy is testable without a cluster. */
export async function nextCaState(
  current: AgentCaState | undefined,
  now: Date,
  agentLifetimeMs: number,
): Promise<{ state: AgentCaState; changed: boolean }> {
  if (current !== undefined && !current.rotateRequested && !caUnusable(current.ca, now)) {
    const previous = current.previous;
    if (previous !== undefined && previous.until <= now) {
      return { state: { ca: current.ca, rotateRequested: false }, changed: true };
    }
    return { state: current, changed: false };
  }
  const ca = await createCa({ now });
  if (current === undefined) return { state: { ca, rotateRequested: false }, changed: true };
  return {
    state: {
      ca,
      // Agents still carrying the old CA's certificates keep being trusted while they renew.
      previous: { certificate: current.ca.certificate, until: new Date(now.getTime() + 2 * agentLifetimeMs) },
      rotateRequested: false,
    },
    changed: true,
  };
}

export function bundleOf(state: AgentCaState): string {
  return [state.ca.certificate, state.previous?.certificate]
    .filter((pem): pem is string => pem !== undefined)
    .map((pem) => (pem.endsWith("\n") ? pem : `${pem}\n`))
    .join("");
}

/** Makes, keeps or rotates the CA Secret and publishes the bundle; returns the CA to sign with. */
export async function ensureAgentCa(
  rest: KubeRest,
  namespace: string,
  options: { agentLifetimeMs: number; now?: Date },
): Promise<AgentCa> {
  const now = options.now ?? new Date();
  const path = `/api/v1/namespaces/${namespace}/secrets`;
  const existing = await rest.get<Secret>(`${path}/${AGENT_CA_SECRET}`).catch((error: unknown) => {
    if (isNotFound(error)) return undefined;
    throw error;
  });
  const { state, changed } = await nextCaState(
    existing === undefined ? undefined : stateOf(existing),
    now,
    options.agentLifetimeMs,
  );
  if (changed) {
    const secret = secretOf(namespace, state, existing?.metadata.resourceVersion);
    try {
      if (existing === undefined) await rest.create(path, secret);
      else await rest.replace(`${path}/${AGENT_CA_SECRET}`, secret);
    } catch (error) {
      // Another writer (a leader's predecessor) got there first: its CA stands; the retry reads it.
      if (isConflict(error))
        throw new Error(`${AGENT_CA_SECRET} changed while being written; reading it again`);
      throw error;
    }
  }
  const bundle = bundleOf(state);
  await publishBundle(rest, namespace, bundle);
  return { ca: state.ca, bundle };
}

function caUnusable(ca: KeyPairPem, now: Date): boolean {
  try {
    return needsRotation(certificateFacts(ca.certificate), now);
  } catch {
    return true;
  }
}

function stateOf(secret: Secret): AgentCaState {
  const data = secret.data ?? {};
  const decode = (key: string) =>
    data[key] === undefined ? undefined : Buffer.from(data[key], "base64").toString("utf8");
  const certificate = decode("tls.crt") ?? "";
  const privateKey = decode("tls.key") ?? "";
  const previous = decode(PREVIOUS_KEY);
  const until = new Date(secret.metadata.annotations?.[PREVIOUS_UNTIL_ANNOTATION] ?? Number.NaN);
  return {
    ca: { certificate, privateKey },
    ...(previous === undefined || Number.isNaN(until.getTime())
      ? {}
      : { previous: { certificate: previous, until } }),
    rotateRequested: secret.metadata.annotations?.[ROTATE_CA_ANNOTATION] !== undefined,
  };
}

function secretOf(namespace: string, state: AgentCaState, resourceVersion: string | undefined): Secret {
  const encode = (text: string) => Buffer.from(text, "utf8").toString("base64");
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: {
      name: AGENT_CA_SECRET,
      namespace,
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
      ...(state.previous === undefined
        ? {}
        : { annotations: { [PREVIOUS_UNTIL_ANNOTATION]: state.previous.until.toISOString() } }),
    },
    data: {
      "tls.crt": encode(state.ca.certificate),
      "tls.key": encode(state.ca.privateKey),
      ...(state.previous === undefined ? {} : { [PREVIOUS_KEY]: encode(state.previous.certificate) }),
    },
  };
}

async function publishBundle(rest: KubeRest, namespace: string, bundle: string): Promise<void> {
  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  const existing = await rest.get<ConfigMap>(`${path}/${AGENT_CA_BUNDLE}`).catch((error: unknown) => {
    if (isNotFound(error)) return undefined;
    throw error;
  });
  if (existing?.data?.[CA_BUNDLE_KEY] === bundle) return;
  const body: ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: AGENT_CA_BUNDLE,
      namespace,
      ...(existing?.metadata.resourceVersion === undefined
        ? {}
        : { resourceVersion: existing.metadata.resourceVersion }),
    },
    data: { [CA_BUNDLE_KEY]: bundle },
  };
  if (existing === undefined) await rest.create(path, body);
  else await rest.replace(`${path}/${AGENT_CA_BUNDLE}`, body);
}
