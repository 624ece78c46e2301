// The real helm binary (built with the control plane), with its cache and
// config kept under /tmp so tests never touch the user's own helm setup.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export const CHART = join(import.meta.dirname, "../../../helm/mosaic");

export async function helm(bin: string, args: string[], kubeconfig?: string) {
  const env = {
    ...process.env,
    HELM_CACHE_HOME: "/tmp/mosaic-helm/cache",
    HELM_CONFIG_HOME: "/tmp/mosaic-helm/config",
    HELM_DATA_HOME: "/tmp/mosaic-helm/data",
  };
  const withConfig = kubeconfig === undefined ? args : [...args, `--kubeconfig=${kubeconfig}`];
  return run(join(bin, "helm"), withConfig, { env, maxBuffer: 16 * 1024 * 1024 });
}
