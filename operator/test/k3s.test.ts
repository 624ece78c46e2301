// The operator's key checks on K3s, a real distribution's cluster started by
// testcontainers (@testcontainers/k3s): `helm install` of the chart, the
// CRDs accepting the examples and refusing bad specs with the API server's
// own words, and two operator processes, run with the chart's settings and
// its ServiceAccount's RBAC, electing one leader that applies the agent
// DaemonSet and gives a StripedVolume its status (Pending: no agent runs),
// the other taking over when the leader is killed with kill -9.
//
// Without Docker or Podman it skips in one line. MOSAIC_TEST_CLUSTER=local
// runs the same checks on the local control plane (e2e/control-plane), which
// is how they are checked on a machine without a container runtime.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { after, before, describe, type TestContext, test } from "node:test";
import { type ControlPlane, startControlPlane } from "../../e2e/control-plane/control-plane.ts";
import { podOfIdentity } from "../src/framework/leader-election.ts";
import { eventually } from "./helpers/eventually.ts";
import { CHART, helm } from "./helpers/helm.ts";
import { K3S_IMAGE, noRuntime, startK3s } from "./helpers/k3s.ts";
import { serviceAccountKubeconfig } from "./helpers/kube-agents.ts";

const NAMESPACE = "mosaic-system";
const ROOT = join(import.meta.dirname, "..", "..");
const MULTUS_CRD = join(ROOT, "e2e", "control-plane", "multus-crd.yaml");
const OPERATOR_MAIN = join(ROOT, "operator", "src", "main.ts");
const target = process.env.MOSAIC_TEST_CLUSTER ?? "k3s";

function volume(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: "mosaic.dev/v1alpha1",
    kind: "StripedVolume",
    metadata: { name },
    spec,
  });
}

describe(`the operator on ${target === "local" ? "the local control plane" : `K3s (${K3S_IMAGE})`}`, () => {
  let cluster: ControlPlane | undefined;
  let skip: string | undefined;
  const operators = new Map<string, ChildProcess>();

  before(async () => {
    if (target === "local") {
      cluster = await startControlPlane();
      return;
    }
    try {
      cluster = await startK3s();
    } catch (error) {
      skip = noRuntime(error);
      if (skip === undefined) throw error;
    }
  });

  after(async () => {
    for (const child of operators.values()) if (child.exitCode === null) child.kill("SIGKILL");
    await cluster?.stop();
  });

  /** The cluster, or undefined once the test is marked skipped. */
  const on = (t: TestContext): ControlPlane | undefined => {
    if (skip !== undefined) t.skip(skip);
    return cluster;
  };

  test("helm install of the chart: CRDs, the operator's Deployment, both NetworkAttachmentDefinitions", async (t) => {
    const c = on(t);
    if (c === undefined) return;
    await c.installCrds([MULTUS_CRD]);
    const { stdout } = await helm(
      c.bin,
      ["install", "mosaic", CHART, "-n", NAMESPACE, "--create-namespace", "--wait=false"],
      c.kubeconfig,
    );
    assert.match(stdout, /STATUS: deployed/);
    await c.kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/stripedvolumes.mosaic.dev",
      "crd/clusternodes.mosaic.dev",
    ]);
    const deployment = JSON.parse(
      (await c.kubectl(["get", "deploy", "-n", NAMESPACE, "mosaic-operator", "-o", "json"])).stdout,
    );
    assert.equal(deployment.spec.replicas, 2);
    const nads = (await c.kubectl(["get", "net-attach-def", "-n", NAMESPACE, "-o", "name"])).stdout;
    assert.match(nads, /mosaic-a/);
    assert.match(nads, /mosaic-b/);
  });

  test("the CRDs take the examples and refuse bad specs, saying why", async (t) => {
    const c = on(t);
    if (c === undefined) return;
    const examples = join(ROOT, "crds", "examples");
    await c.kubectl(["apply", "--dry-run=server", "-f", examples]);
    const good = { chunkSize: "1Mi", redundancy: { erasure: { data: 2, parity: 1 } }, capacity: "1Ti" };
    for (const [spec, says] of [
      [{ ...good, chunkSize: "3Mi" }, /power of two/],
      [
        { ...good, redundancy: { replicas: 3, erasure: { data: 2, parity: 1 } } },
        /exactly one of replicas or erasure/,
      ],
      [{ ...good, redundancy: { replicas: 0 } }, /replicas.*greater than or equal to 1/],
    ] as const) {
      const r = await c.kubectl(["create", "-f", "-"], { input: volume("bad", spec), allowFailure: true });
      assert.notEqual(r.code, 0, `${JSON.stringify(spec)} was accepted`);
      assert.match(r.stderr, says);
    }
  });

  test("two operators with the chart's settings and RBAC: one leads, reconciles, and the other takes over after kill -9", async (t) => {
    const c = on(t);
    if (c === undefined) return;
    const deployment = JSON.parse(
      (await c.kubectl(["get", "deploy", "-n", NAMESPACE, "mosaic-operator", "-o", "json"])).stdout,
    );
    // The Deployment's environment as the chart renders it; what a pod would get from the downward API set here.
    const chartEnv = Object.fromEntries(
      (deployment.spec.template.spec.containers[0].env as { name: string; value?: string }[])
        .filter((e) => e.value !== undefined)
        .map((e) => [e.name, e.value as string]),
    );
    const kubeconfig = await serviceAccountKubeconfig(c, NAMESPACE, "mosaic-operator");
    for (const pod of ["mosaic-operator-k3s-0", "mosaic-operator-k3s-1"]) {
      const log = createWriteStream(join(c.dir, `${pod}.log`));
      const child = spawn(process.execPath, [OPERATOR_MAIN], {
        env: {
          ...process.env,
          ...chartEnv,
          KUBECONFIG: kubeconfig,
          MOSAIC_POD_NAME: pod,
          MOSAIC_NAMESPACE: NAMESPACE,
          MOSAIC_METRICS_PORT: "0",
          MOSAIC_STATUS_PORT: "0",
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
      operators.set(pod, child);
    }
    const leader = async () => {
      const r = await c.kubectl(["get", "lease", "-n", NAMESPACE, "mosaic-operator", "-o", "json"], {
        allowFailure: true,
      });
      const identity = r.code === 0 ? JSON.parse(r.stdout).spec?.holderIdentity : undefined;
      return typeof identity === "string" && identity !== "" ? podOfIdentity(identity) : undefined;
    };
    await eventually(async () => (await leader()) !== undefined, 60_000, "an operator leading");
    const first = (await leader()) as string;
    assert.ok(operators.has(first), `the leader ${first} is one of ours`);

    await eventually(
      async () =>
        (await c.kubectl(["get", "ds", "-n", NAMESPACE, "mosaic-agent"], { allowFailure: true })).code === 0,
      60_000,
      "the agent DaemonSet applied",
    );
    await c.kubectl(["apply", "-f", "-"], {
      input: volume("clips", { chunkSize: "1Mi", redundancy: { replicas: 2 }, capacity: "1Ti" }),
    });
    let phase: string | undefined;
    await eventually(
      async () => {
        const sv = JSON.parse((await c.kubectl(["get", "sv", "clips", "-o", "json"])).stdout);
        phase = sv.status?.phase;
        return sv.status?.observedGeneration === 1 && phase !== undefined;
      },
      60_000,
      "the volume's status",
    );
    assert.equal(phase, "Pending", "no agent runs, so none has taken the volume");

    const killed = operators.get(first) as ChildProcess;
    killed.kill("SIGKILL");
    const tookOver = await eventually(
      async () => {
        const now = await leader();
        return now !== undefined && now !== first;
      },
      90_000,
      "the other operator leading",
    );
    t.diagnostic(`the other operator led ${Math.round(tookOver)} ms after kill -9 of the leader`);
    // The new leader keeps reconciling: a deleted DaemonSet comes back.
    await c.kubectl(["delete", "ds", "-n", NAMESPACE, "mosaic-agent", "--wait=true"]);
    await eventually(
      async () =>
        (await c.kubectl(["get", "ds", "-n", NAMESPACE, "mosaic-agent"], { allowFailure: true })).code === 0,
      60_000,
      "the agent DaemonSet back under the new leader",
    );
  });
});
