// `npm run e2e:kind`'s plan, without Docker: the kind config it writes, the
// Docker networks and ranges (inside 198.18.0.0/15, clear of each other and
// of the local harness's), the chart values pointing the NADs at the two
// extra NICs, the application pod, and bad options refused by name.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseAllDocuments } from "yaml";
import { CHART, helm } from "../../operator/test/helpers/helm.ts";
import { controlPlaneBinaries } from "../control-plane/control-plane.ts";
import { applicationPod, applicationPodName, relayCommands, WORKLOAD_PATH } from "../kind/application.ts";
import { cniPluginsUrl, MULTUS_MANIFEST, WHEREABOUTS_MANIFESTS } from "../kind/cluster.ts";
import {
  chartValues,
  cidrBounds,
  cidrsOverlap,
  cidrWithin,
  kindConfig,
  kindPlan,
  LOCAL_HARNESS_RANGES,
  planRanges,
} from "../kind/plan.ts";
import { SCENARIO_NAMES, selectionOf } from "../run.ts";

const TEST_RANGE = "198.18.0.0/15";

describe("kind plan", () => {
  const plan = kindPlan({ name: "mosaic-e2e", workers: 3 });

  test("kind config: one control plane and N workers, IPv4 pod and Service ranges, 20 s node grace", () => {
    for (const workers of [2, 3, 5]) {
      const config = kindConfig(kindPlan({ name: "c", workers })) as {
        nodes: { role: string; image?: string }[];
        networking: Record<string, string>;
        kubeadmConfigPatches: string[];
      };
      assert.deepEqual(
        config.nodes.map((n) => n.role),
        ["control-plane", ...Array(workers).fill("worker")],
      );
      assert.equal(config.networking.ipFamily, "ipv4");
      assert.match(config.kubeadmConfigPatches[0] ?? "", /node-monitor-grace-period: "20s"/);
    }
    const pinned = kindConfig(kindPlan({ name: "c", workers: 2, nodeImage: "kindest/node:v1.36.0" })) as {
      nodes: { image?: string }[];
    };
    assert.ok(pinned.nodes.every((n) => n.image === "kindest/node:v1.36.0"));
    assert.equal((kindConfig(plan) as { name: string }).name, "mosaic-e2e");
  });

  test("node names are kind's: <name>-control-plane, <name>-worker, <name>-worker2, ...", () => {
    assert.equal(plan.controlPlane, "mosaic-e2e-control-plane");
    assert.deepEqual(plan.workers, ["mosaic-e2e-worker", "mosaic-e2e-worker2", "mosaic-e2e-worker3"]);
    assert.deepEqual(
      [plan.nodeNetwork.docker, plan.channelA.docker, plan.channelB.docker],
      ["mosaic-e2e-nodes", "mosaic-e2e-a", "mosaic-e2e-b"],
    );
  });

  test("every range is inside 198.18.0.0/15, none overlaps another or the local harness's", () => {
    const ranges = planRanges(plan);
    for (const r of ranges) assert.ok(cidrWithin(r, TEST_RANGE), `${r} outside ${TEST_RANGE}`);
    for (const [i, a] of ranges.entries()) {
      for (const b of ranges.slice(i + 1)) assert.ok(!cidrsOverlap(a, b), `${a} overlaps ${b}`);
      for (const local of LOCAL_HARNESS_RANGES) assert.ok(!cidrsOverlap(a, local), `${a} overlaps ${local}`);
    }
    for (const c of [plan.channelA, plan.channelB]) {
      assert.ok(cidrWithin(c.nodeRange, c.subnet) && cidrWithin(c.podRange, c.subnet));
      assert.ok(
        !cidrsOverlap(c.nodeRange, c.podRange),
        "Docker's node addresses and whereabouts' pod addresses apart",
      );
      assert.ok(c.nic.length <= 15, `${c.nic}: Linux names a NIC in at most 15 bytes`);
    }
  });

  test("cidr helpers: bounds, overlap, containment; not a CIDR refused", () => {
    assert.deepEqual(cidrBounds("198.18.128.128/25"), [3323101312, 3323101439]);
    assert.ok(cidrsOverlap("198.18.0.0/15", "198.19.255.0/24"));
    assert.ok(!cidrsOverlap("198.18.128.0/24", "198.18.129.0/24"));
    assert.ok(!cidrWithin("198.18.0.0/15", "198.18.0.0/16"));
    assert.throws(() => cidrBounds("198.18.0.0"), /not an IPv4 CIDR/);
    assert.throws(() => cidrBounds("198.18.0.300/24"), /not an IPv4 CIDR/);
  });

  test("chart values put channel A and B's NADs on the renamed NICs, with whereabouts' pod ranges", () => {
    const values = chartValues(plan, { outGraceMs: 8000, rebuildRate: "8MiB" });
    assert.ok(values.includes("networks.channelA.master=mosaic-a"));
    assert.ok(values.includes("networks.channelB.master=mosaic-b"));
    assert.ok(values.includes("networks.channelA.range=198.18.128.128/25"));
    assert.ok(values.includes("networks.channelB.range=198.18.129.128/25"));
    assert.ok(values.includes("heartbeat.outGraceMs=8000"));
  });

  test("helm template takes those values (values.schema.json) and renders the NADs on them", async () => {
    const values = chartValues(plan, { outGraceMs: 8000, rebuildRate: "8MiB" });
    const { stdout } = await helm(await controlPlaneBinaries(), [
      "template",
      "mosaic",
      CHART,
      "-n",
      "mosaic-system",
      "--kube-version=1.36.3",
      ...values.flatMap((v) => ["--set", v]),
    ]);
    const nads = parseAllDocuments(stdout)
      .map(
        (d) => d.toJSON() as { kind?: string; metadata: { name: string }; spec: { config: string } } | null,
      )
      .filter((o) => o?.kind === "NetworkAttachmentDefinition")
      .map(
        (o) =>
          JSON.parse(o?.spec.config ?? "{}") as {
            name: string;
            type: string;
            master: string;
            ipam: { type: string; range: string };
          },
      );
    assert.deepEqual(
      nads.map((n) => [n.name, n.type, n.master, n.ipam.type, n.ipam.range]),
      [
        ["mosaic-a", "macvlan", "mosaic-a", "whereabouts", "198.18.128.128/25"],
        ["mosaic-b", "macvlan", "mosaic-b", "whereabouts", "198.18.129.128/25"],
      ],
    );
  });

  test("bad options are refused by name", () => {
    assert.throws(() => kindPlan({ name: "mosaic-e2e", workers: 1 }), /--workers 1: from 2/);
    assert.throws(() => kindPlan({ name: "mosaic-e2e", workers: 9 }), /--workers 9: from 2 to 8/);
    assert.throws(() => kindPlan({ name: "mosaic-e2e", workers: 2.5 }), /--workers 2.5/);
    assert.throws(() => kindPlan({ name: "Mosaic_E2E", workers: 3 }), /cluster name "Mosaic_E2E"/);
  });

  test("upstream manifests and the CNI plugins are pinned to one version each", () => {
    assert.match(MULTUS_MANIFEST, /multus-cni\/v\d+\.\d+\.\d+\/deployments\/multus-daemonset-thick\.yml$/);
    for (const m of WHEREABOUTS_MANIFESTS) assert.match(m, /whereabouts\/v\d+\.\d+\.\d+\/doc\/crds\//);
    assert.match(cniPluginsUrl("x64"), /cni-plugins-linux-amd64-v\d+\.\d+\.\d+\.tgz$/);
    assert.match(cniPluginsUrl("arm64"), /cni-plugins-linux-arm64-/);
  });
});

describe("kind application pod", () => {
  const pod = applicationPod({
    namespace: "mosaic-system",
    node: "mosaic-e2e-worker",
    image: "mosaic/node-agent:0.1.0",
    networkA: "mosaic-a",
    tls: true,
  }) as {
    metadata: { name: string; annotations: Record<string, string> };
    spec: {
      nodeName: string;
      containers: { command: string[]; volumeMounts: { mountPath: string; subPath?: string }[] }[];
      volumes: { secret?: unknown }[];
    };
  };

  test("pinned to its node, on channel A through Multus, the workload mounted as a plain file", () => {
    assert.equal(pod.metadata.name, "e2e-app-mosaic-e2e-worker");
    assert.equal(pod.spec.nodeName, "mosaic-e2e-worker");
    assert.equal(pod.metadata.annotations["k8s.v1.cni.cncf.io/networks"], "mosaic-a");
    const mounts = pod.spec.containers[0]?.volumeMounts ?? [];
    assert.deepEqual(
      mounts.find((m) => m.mountPath === WORKLOAD_PATH),
      { name: "workload", mountPath: WORKLOAD_PATH, subPath: "workload.ts" },
    );
    assert.equal(mounts.length, 2, "and the client certificate");
    assert.equal(applicationPodName("x".repeat(80)).length, 63, "a pod name fits 63 characters");
  });

  test("the relay's kubectl lines: apply, wait Ready, exec -i of the workload with its JSON", () => {
    const c = relayCommands({
      kubeconfig: "/tmp/k",
      pod,
      workload: {
        node: "n",
        agent: "198.18.128.130:7400",
        volume: "clips",
        files: 1,
        sizeBytes: 1,
        readers: 1,
        writers: 1,
      },
    });
    assert.deepEqual(c.apply, ["--kubeconfig=/tmp/k", "-n", "mosaic-system", "apply", "-f", "-"]);
    assert.ok(c.ready.includes("pod/e2e-app-mosaic-e2e-worker") && c.ready.includes("--for=condition=Ready"));
    const dashDash = c.exec.indexOf("--");
    assert.deepEqual(c.exec.slice(3, dashDash), [
      "exec",
      "-i",
      "e2e-app-mosaic-e2e-worker",
      "-c",
      "application",
    ]);
    assert.equal(c.exec[dashDash + 2], WORKLOAD_PATH);
    assert.equal(JSON.parse(c.exec[dashDash + 3] ?? "").agent, "198.18.128.130:7400");
  });
});

describe("scenario selection, shared by npm run e2e and e2e:kind", () => {
  test("defaults, --only, and bad values named", () => {
    const all = selectionOf({});
    assert.ok(!("error" in all) && all.rounds === 3 && all.only.length === SCENARIO_NAMES.length);
    assert.deepEqual(selectionOf({ only: "nic-down, soak", seed: "7" }), {
      rounds: 3,
      seed: 7,
      only: ["nic-down", "soak"],
    });
    assert.deepEqual(selectionOf({ "soak-rounds": "-1" }), {
      error: "--soak-rounds and --seed take whole numbers",
    });
    assert.match(
      (selectionOf({ only: "nope" }) as { error: string }).error,
      /no scenario nope; there are: pod-delete/,
    );
  });
});
