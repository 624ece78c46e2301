// The Helm chart, with the real helm: it lints, its schema refuses bad values,
// its RBAC names every resource and verb, and it installs on a real
// kube-apiserver with CRDs, operator Deployment, RBAC and both networks.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseAllDocuments } from "yaml";
import {
  type ControlPlane,
  controlPlaneBinaries,
  startControlPlane,
} from "../../e2e/control-plane/control-plane.ts";
import { CHART, helm } from "../../operator/test/helpers/helm.ts";

const NAMESPACE = "mosaic-system";

const BAD_VALUES: { why: string; set: string; says: RegExp }[] = [
  { why: "zero operator replicas", set: "operator.replicas=0", says: /replicas.*minimum/ },
  { why: "an unknown CNI type", set: "networks.channelA.type=bridge", says: /channelA\/type/ },
  { why: "a range that is not a CIDR", set: "networks.channelB.range=everywhere", says: /channelB\/range/ },
  { why: "heartbeat timing out of range", set: "heartbeat.channelDownMs=5", says: /channelDownMs.*minimum/ },
  { why: "a relative host path", set: "agent.hostPaths.data=var/lib/mosaic", says: /hostPaths\/data/ },
  { why: "a port out of range", set: "agent.port=70000", says: /port.*maximum/ },
  { why: "a rebuild rate that is not a size", set: "agent.rebuildRate=fast", says: /rebuildRate/ },
  { why: "a misspelt value", set: "heartbeat.intervalMS=10", says: /additional properties 'intervalMS'/ },
  {
    why: "a certificate lifetime without a unit",
    set: "tls.certificateLifetime=168",
    says: /certificateLifetime/,
  },
  { why: "TLS switched on by a word", set: "tls.enabled=yes", says: /tls\/enabled/ },
];

describe("the Helm chart", () => {
  let bin: string;

  before(async () => {
    bin = await controlPlaneBinaries();
  });

  test("lints clean", async () => {
    const { stdout } = await helm(bin, ["lint", CHART]);
    assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  test(`values.schema.json refuses ${BAD_VALUES.length} bad values, each by name`, async () => {
    const failures: string[] = [];
    for (const { why, set, says } of BAD_VALUES) {
      try {
        await helm(bin, ["template", "t", CHART, "--kube-version=1.36.3", "--set", set]);
        failures.push(`${why}: accepted`);
      } catch (error) {
        const stderr = String((error as { stderr?: string }).stderr);
        if (!says.test(stderr)) failures.push(`${why}: refused, but said ${stderr.trim()}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  test("RBAC names every group, resource and verb: no wildcards", async () => {
    const { stdout } = await helm(bin, ["template", "t", CHART, "--kube-version=1.36.3", "-n", NAMESPACE]);
    const roles = parseAllDocuments(stdout)
      .map((d) => d.toJSON() as { kind?: string; rules?: Record<string, string[]>[] } | null)
      .filter((o) => o?.kind === "Role" || o?.kind === "ClusterRole");
    assert.ok(roles.length >= 4);
    for (const role of roles) {
      for (const rule of role?.rules ?? []) {
        for (const field of ["apiGroups", "resources", "verbs"]) {
          assert.ok(!rule[field]?.includes("*"), `${JSON.stringify(rule)} has a wildcard in ${field}`);
        }
      }
    }
  });

  describe("installed on a real kube-apiserver", () => {
    let cp: ControlPlane;

    before(async () => {
      cp = await startControlPlane();
      await cp.installCrds([join(import.meta.dirname, "../../e2e/control-plane/multus-crd.yaml")]);
    });

    after(async () => {
      await cp?.stop();
    });

    test("helm install creates the CRDs, the operator, its RBAC and both networks", async () => {
      const { stdout } = await helm(
        bin,
        ["install", "mosaic", CHART, "-n", NAMESPACE, "--create-namespace", "--wait=false"],
        cp.kubeconfig,
      );
      assert.match(stdout, /STATUS: deployed/);
      assert.match(stdout, /kubectl get cn/, "NOTES.txt says what to do next");
      await cp.kubectl([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/stripedvolumes.mosaic.dev",
        "crd/clusternodes.mosaic.dev",
      ]);

      const deployment = JSON.parse(
        (await cp.kubectl(["get", "deploy", "-n", NAMESPACE, "mosaic-operator", "-o", "json"])).stdout,
      );
      assert.equal(deployment.spec.replicas, 2);
      const env = Object.fromEntries(
        deployment.spec.template.spec.containers[0].env.map((e: { name: string; value?: string }) => [
          e.name,
          e.value,
        ]),
      );
      assert.equal(env.MOSAIC_NETWORK_A, `${NAMESPACE}/mosaic-a`);
      assert.equal(env.MOSAIC_CHANNEL_DOWN_MS, "300");
      assert.equal(env.MOSAIC_AGENT_REBUILD_RATE, "64MiB");

      const nads = JSON.parse(
        (await cp.kubectl(["get", "net-attach-def", "-n", NAMESPACE, "-o", "json"])).stdout,
      );
      const configs = Object.fromEntries(
        nads.items.map((n: { metadata: { name: string }; spec: { config: string } }) => [
          n.metadata.name,
          JSON.parse(n.spec.config),
        ]),
      );
      assert.equal(configs["mosaic-a"].type, "macvlan");
      assert.equal(configs["mosaic-a"].master, "eth1");
      assert.equal(configs["mosaic-b"].ipam.range, "198.18.1.0/24");

      const as = `--as=system:serviceaccount:${NAMESPACE}:mosaic-operator`;
      const can = async (...args: string[]) =>
        (await cp.kubectl(["auth", "can-i", as, ...args], { allowFailure: true })).stdout.trim();
      assert.equal(await can("patch", "stripedvolumes.mosaic.dev", "--subresource=status"), "yes");
      assert.equal(await can("create", "daemonsets.apps", "-n", NAMESPACE), "yes");
      assert.equal(await can("create", "daemonsets.apps", "-n", "default"), "no");
      assert.equal(await can("delete", "nodes"), "no");
      assert.equal(await can("get", "secrets", "-n", NAMESPACE), "no");
      // The cluster map: the operator writes its one ConfigMap, and no other.
      assert.equal(await can("create", "configmaps", "-n", NAMESPACE), "yes");
      assert.equal(await can("update", "configmaps/mosaic-cluster-map", "-n", NAMESPACE), "yes");
      assert.equal(await can("update", "configmaps/someone-elses", "-n", NAMESPACE), "no");
      assert.equal(await can("watch", "leases.coordination.k8s.io", "-n", NAMESPACE), "yes");
      assert.equal(await can("create", "events", "-n", "default"), "yes");
      const agent = `--as=system:serviceaccount:${NAMESPACE}:mosaic-agent`;
      const agentCan = async (...args: string[]) =>
        (await cp.kubectl(["auth", "can-i", agent, ...args], { allowFailure: true })).stdout.trim();
      assert.equal(await agentCan("delete", "stripedvolumes.mosaic.dev"), "no");
      assert.equal(await agentCan("watch", "stripedvolumes.mosaic.dev"), "yes");
      // Agents read the map's ConfigMap by name, and nothing else of the namespace.
      assert.equal(await agentCan("watch", "configmaps/mosaic-cluster-map", "-n", NAMESPACE), "yes");
      assert.equal(await agentCan("get", "configmaps/someone-elses", "-n", NAMESPACE), "no");
      assert.equal(await agentCan("update", "configmaps/mosaic-cluster-map", "-n", NAMESPACE), "no");
      // Their own ClusterNode and Lease: create, and write the status; never the spec of another.
      assert.equal(await agentCan("create", "clusternodes.mosaic.dev"), "yes");
      assert.equal(await agentCan("patch", "clusternodes.mosaic.dev", "--subresource=status"), "yes");
      assert.equal(await agentCan("patch", "clusternodes.mosaic.dev"), "no");
      assert.equal(await agentCan("update", "leases.coordination.k8s.io", "-n", NAMESPACE), "yes");
      assert.equal(await agentCan("delete", "leases.coordination.k8s.io", "-n", NAMESPACE), "no");
      // Agents' certificates: the operator keeps its CA's one Secret and signs for its own signer only.
      assert.equal(await can("get", "secrets/mosaic-agent-ca", "-n", NAMESPACE), "yes");
      assert.equal(await can("get", "secrets/someone-elses", "-n", NAMESPACE), "no");
      assert.equal(await can("update", "secrets/mosaic-agent-ca", "-n", "default"), "no");
      assert.equal(
        await can("update", "certificatesigningrequests.certificates.k8s.io", "--subresource=approval"),
        "yes",
      );
      // Approving and signing for mosaic.dev/agent only (a signer name holds a slash, which
      // `kubectl auth can-i` cannot take): operator/test/agent-certificates-kubernetes.test.ts
      // signs and denies with exactly this RBAC.
      assert.equal(await can("update", "configmaps/mosaic-agent-ca-bundle", "-n", NAMESPACE), "yes");
      // The agents ask, read the bundle, and never see the CA key nor approve.
      assert.equal(await agentCan("create", "certificatesigningrequests.certificates.k8s.io"), "yes");
      assert.equal(
        await agentCan("update", "certificatesigningrequests.certificates.k8s.io", "--subresource=approval"),
        "no",
      );
      assert.equal(await agentCan("get", "configmaps/mosaic-agent-ca-bundle", "-n", NAMESPACE), "yes");
      assert.equal(await agentCan("get", "secrets/mosaic-agent-ca", "-n", NAMESPACE), "no");
      assert.equal(env.MOSAIC_TLS_CERTIFICATE_LIFETIME, "168h");
    });
  });
});
