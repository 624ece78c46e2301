// `mosaic certificate <name> --out <dir>`: a tool's own certificate for a
// cluster whose agents require mutual TLS, so a script, a second CLI user or
// a monitoring job calls them under a name of its own (and can be told apart
// in the agents' logs) instead of sharing `mosaic up`'s. From a local
// cluster's CA, or any ca.crt + ca.key, or the operator's Secret.
import { KubeConfig } from "@kubernetes/client-node";
import { KubeRest } from "@mosaic/operator/framework/kube-rest.ts";
import { caFromDirectory, caFromKubernetes, writeToolTlsDir } from "../../tls/tool-certificate.ts";
import { printLine } from "../session.ts";

export interface CertificateOptions {
  out: string;
  /** A directory with ca.crt and ca.key; ignored with `kubernetes`. */
  caDir: string;
  /** The namespace of the chart's release, to read its CA Secret with the current kubeconfig. */
  kubernetes?: { namespace: string };
  days: number;
}

export async function certificate(name: string, o: CertificateOptions): Promise<void> {
  const from =
    o.kubernetes === undefined
      ? await caFromDirectory(o.caDir)
      : await caFromKubernetes(kubeRest(), o.kubernetes.namespace);
  const facts = await writeToolTlsDir(from, name, o.out, { validityMs: o.days * 24 * 3600 * 1000 });
  printLine(`wrote ${o.out}: ca.crt, tls.crt, tls.key for ${facts.dnsNames.join(", ")}`);
  printLine(`valid until ${facts.notAfter.toISOString()}; issue a new one before then`);
  printLine(`use it: "tls": {"client": "${o.out}"} in the cluster file the tools read (--cluster)`);
}

function kubeRest(): KubeRest {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return new KubeRest(kc);
}
