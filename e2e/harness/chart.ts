// `helm install` of the real chart on the local cluster: Multus' CRD first
// (the chart creates NetworkAttachmentDefinitions), the images named as the
// harness runs them, and any further values.
import { join } from "node:path";
import { CHART, helm } from "../../operator/test/helpers/helm.ts";
import { HARNESS_IMAGES, type LocalCluster } from "./local-cluster.ts";

export const MOSAIC_NAMESPACE = "mosaic-system";
const MULTUS_CRD = join(import.meta.dirname, "..", "control-plane", "multus-crd.yaml");

/** `helm upgrade --reuse-values` of the release with further values. */
export async function upgradeChart(cluster: LocalCluster, values: readonly string[]): Promise<string> {
  const sets = values.flatMap((v) => ["--set", v]);
  const { stdout } = await helm(
    cluster.cp.bin,
    ["upgrade", "mosaic", CHART, "-n", MOSAIC_NAMESPACE, "--reuse-values", "--wait=false", ...sets],
    cluster.cp.kubeconfig,
  );
  return stdout;
}

/** Installs the chart as release `mosaic` in MOSAIC_NAMESPACE, not waiting for it; returns helm's output. */
export async function installChart(cluster: LocalCluster, values: readonly string[] = []): Promise<string> {
  await cluster.cp.installCrds([MULTUS_CRD]);
  const { agent, operator } = HARNESS_IMAGES;
  const sets = [
    `image.agent.repository=${agent.repository},image.agent.tag=${agent.tag}`,
    `image.operator.repository=${operator.repository},image.operator.tag=${operator.tag}`,
    ...values,
  ];
  const { stdout } = await helm(
    cluster.cp.bin,
    [
      "install",
      "mosaic",
      CHART,
      "-n",
      MOSAIC_NAMESPACE,
      "--create-namespace",
      "--wait=false",
      ...sets.flatMap((v) => ["--set", v]),
    ],
    cluster.cp.kubeconfig,
  );
  return stdout;
}
