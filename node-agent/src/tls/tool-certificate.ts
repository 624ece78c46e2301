// A certificate for a tool that calls the agents (the `mosaic` CLI, a
// script, a test's workload) when mutual TLS is on: `<name>.client.mosaic.dev`,
// signed by the agents' CA, so agents take its calls and it can never pass
// for an agent. The CA comes from a directory (a local cluster's
// `<dir>/tls/ca`, or any ca.crt + ca.key) or from the operator's Secret in
// Kubernetes, which only a cluster administrator can read.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { AGENT_CA_BUNDLE, AGENT_CA_SECRET, CA_BUNDLE_KEY } from "@mosaic/operator/api/agent-tls.ts";
import { isNotFound, type KubeRest } from "@mosaic/operator/framework/kube-rest.ts";
import { MosaicError } from "../errors.ts";
import {
  type CertificateFacts,
  certificateFacts,
  issueClientCertificate,
  type KeyPairPem,
} from "./certificates.ts";
import { writeTlsFiles } from "./tls-files.ts";

/** The CA that signs, and what the tool should trust (the CA, or the operator's bundle during a rotation). */
export interface ToolCa {
  ca: KeyPairPem;
  trusted: string;
}

/** Issues the tool's certificate and writes `dir` as a TLS directory (ca.crt, tls.crt, tls.key). */
export async function writeToolTlsDir(
  from: ToolCa,
  name: string,
  dir: string,
  options: { validityMs?: number } = {},
): Promise<CertificateFacts> {
  const pair = await issueClientCertificate(from.ca, name, options);
  await writeTlsFiles(dir, { ca: from.trusted, ...pair });
  return certificateFacts(pair.certificate);
}

/** ca.crt and ca.key in `dir`, as `mosaic up` keeps them. */
export async function caFromDirectory(dir: string): Promise<ToolCa> {
  const read = (file: string) =>
    readFile(join(dir, file), "utf8").catch((error: NodeJS.ErrnoException) => {
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `cannot read the CA's ${file} in ${dir}: ${error.code ?? error.message}` +
          " (a local cluster keeps its CA in <dir>/tls/ca; start one with `npm start`)",
      );
    });
  const certificate = await read("ca.crt");
  const privateKey = await read("ca.key");
  return { ca: { certificate, privateKey }, trusted: certificate };
}

/** The operator's CA Secret and bundle in `namespace` (reading the Secret takes an administrator's rights). */
export async function caFromKubernetes(rest: KubeRest, namespace: string): Promise<ToolCa> {
  const get = <T>(kind: string, name: string) =>
    rest.get<T>(`/api/v1/namespaces/${namespace}/${kind}/${name}`).catch((error: unknown) => {
      const why = isNotFound(error)
        ? "not found (is the chart installed with tls.enabled, and its operator running?)"
        : (error as Error).message;
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `${kind} ${namespace}/${name}: ${why}`);
    });
  const secret = await get<{ data?: Record<string, string> }>("secrets", AGENT_CA_SECRET);
  const bundle = await get<{ data?: Record<string, string> }>("configmaps", AGENT_CA_BUNDLE);
  return toolCaOf(secret.data, bundle.data, namespace);
}

/** The CA Secret's data (base64, as the API gives it) and the bundle ConfigMap's data, as a ToolCa. */
export function toolCaOf(
  secretData: Record<string, string> | undefined,
  bundleData: Record<string, string> | undefined,
  namespace: string,
): ToolCa {
  const decoded = (key: string) => {
    const value = secretData?.[key];
    if (value === undefined)
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `Secret ${namespace}/${AGENT_CA_SECRET} has no ${key}`);
    return Buffer.from(value, "base64").toString("utf8");
  };
  const ca = { certificate: decoded("tls.crt"), privateKey: decoded("tls.key") };
  return { ca, trusted: bundleData?.[CA_BUNDLE_KEY] || ca.certificate };
}
