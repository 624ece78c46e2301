// A K3s cluster in a container, started by testcontainers, shaped as the
// ControlPlane the operator tests take (kubeconfig, the real kubectl and
// helm, installCrds), so helpers written for the local control plane
// (serviceAccountKubeconfig, installChartRbac, helm) run on it unchanged.
// Where no container runtime answers, startK3s says so in one line and the
// caller skips.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { K3sContainer, type StartedK3sContainer } from "@testcontainers/k3s";
import { type ControlPlane, controlPlaneBinaries } from "../../../e2e/control-plane/control-plane.ts";
import { runTool } from "../../../e2e/kind/run-tool.ts";

/** K3s of the Kubernetes minor our control plane runs (build.sh: 1.36); MOSAIC_K3S_IMAGE picks another. */
export const K3S_IMAGE = process.env.MOSAIC_K3S_IMAGE ?? "rancher/k3s:v1.36.3-k3s1";

/** testcontainers' words when neither Docker nor Podman answers. */
const NO_RUNTIME = /container runtime strategy|Could not find a working container runtime/i;

export type K3sCluster = ControlPlane & { container: StartedK3sContainer };

/** The line a test skips with when there is no container runtime; undefined when the error is another. */
export function noRuntime(error: unknown): string | undefined {
  const message = (error as Error).message ?? String(error);
  return NO_RUNTIME.test(message)
    ? `no container runtime: K3s tests need Docker or Podman (testcontainers: ${message.split("\n")[0]})`
    : undefined;
}

/** Starts K3s (about 30 s once its image is pulled); throws, with noRuntime's words, where no runtime answers. */
export async function startK3s(image = K3S_IMAGE): Promise<K3sCluster> {
  const container = await new K3sContainer(image).start();
  const dir = await mkdtemp(join(tmpdir(), "mosaic-k3s-"));
  try {
    const bin = await controlPlaneBinaries();
    const kubeconfig = join(dir, "kubeconfig");
    await writeFile(kubeconfig, container.getKubeConfig(), { mode: 0o600 });
    const kubectl: ControlPlane["kubectl"] = (args, options) =>
      runTool(join(bin, "kubectl"), [`--kubeconfig=${kubeconfig}`, ...args], options);
    return {
      container,
      server: `https://${container.getHost()}:${container.getMappedPort(6443)}`,
      kubeconfig,
      dir,
      bin,
      kubectl,
      installCrds: async (files) => {
        const applied = await kubectl(["apply", "-o", "name", ...files.flatMap((f) => ["-f", f])]);
        const names = applied.stdout.split("\n").filter((line) => line !== "");
        await kubectl(["wait", "--for=condition=Established", "--timeout=60s", ...names]);
      },
      restartApiServer: () => {
        throw new Error("K3s runs its API server inside the k3s process: restart the container instead");
      },
      stop: async () => {
        await container.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await container.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
