// A caller from outside the cluster (the chaos workload) with mutual TLS on:
// the test process reads the agents' CA from its Secret with the admin
// kubeconfig and issues itself a tool certificate, `<name>.client.mosaic.dev`
// (certificates.ts), which agents take and can never pass for an agent. The
// bundle is the operator's published one, so a rotation's overlap holds.

import { toolCaOf, writeToolTlsDir } from "../../node-agent/src/tls/tool-certificate.ts";
import { AGENT_CA_BUNDLE, AGENT_CA_SECRET } from "../../operator/src/api/agent-tls.ts";
import type { Kubectl } from "../scenarios/chaos-cluster.ts";

/** Writes a TLS directory at `dir` for a tool called `name`; false when the release runs without TLS (no CA Secret). */
export async function writeClientTlsDir(
  kubectl: Kubectl,
  namespace: string,
  name: string,
  dir: string,
): Promise<boolean> {
  const secret = await kubectl(["get", "secret", "-n", namespace, AGENT_CA_SECRET, "-o", "json"], {
    allowFailure: true,
  });
  if (secret.code !== 0) return false;
  const data = (JSON.parse(secret.stdout) as { data?: Record<string, string> }).data;
  const bundle = JSON.parse(
    (await kubectl(["get", "configmap", "-n", namespace, AGENT_CA_BUNDLE, "-o", "json"])).stdout,
  ) as { data?: Record<string, string> };
  await writeToolTlsDir(toolCaOf(data, bundle.data, namespace), name, dir);
  return true;
}
