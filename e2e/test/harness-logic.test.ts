// The harness's pure parts, without a cluster: what Multus reads from a pod
// and a NetworkAttachmentDefinition, what a kubelet makes of a pod spec
// (environment, argv, user, the container's mount script), the pod status it
// reports, its restart backoff, and a probe's thresholds. Bad specs are
// refused with a message naming what is wrong.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, test } from "node:test";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { attachmentConfig, nodeAddress, requestedAttachments } from "../harness/multus.ts";
import { freePodSubnet } from "../harness/network.ts";
import { nodeObject } from "../harness/nodes.ts";
import {
  containerArgv,
  containerEnv,
  containerScript,
  expandReferences,
  fieldRefValue,
  type Image,
  outermost,
  runAs,
  shellQuote,
} from "../harness/pod-spec.ts";
import {
  type ContainerRecord,
  podPhase,
  podStatus,
  restartDelayMs,
  terminatedState,
} from "../harness/pod-status.ts";
import { ProbeTracker } from "../harness/probes.ts";

const POD: V1Pod = {
  metadata: {
    name: "mosaic-agent-x7k2p",
    namespace: "mosaic-system",
    uid: "1234-abcd",
    labels: { app: "agent" },
    annotations: { "k8s.v1.cni.cncf.io/network-status": "[]" },
  },
  spec: { nodeName: "node-1", serviceAccountName: "mosaic-agent", containers: [] },
  status: { podIP: "198.19.64.3", hostIP: "198.19.64.3" },
};

const IMAGE: Image = {
  workingDir: "/repo",
  env: { PATH: "/node/bin:/usr/bin" },
  executables: { mosaic: ["/node/bin/node", "/repo/mosaic.ts"], node: ["/node/bin/node"] },
  entrypoint: ["node"],
  cmd: ["server.js"],
};

describe("Multus: the attachments a pod asks for", () => {
  test("namespace/name@interface lists, with Multus' default names and namespace", () => {
    assert.deepEqual(requestedAttachments("mosaic-system/mosaic-a@net1, mosaic-b", "apps"), [
      { namespace: "mosaic-system", name: "mosaic-a", interface: "net1" },
      { namespace: "apps", name: "mosaic-b", interface: "net2" },
    ]);
    assert.deepEqual(requestedAttachments(undefined, "apps"), []);
    assert.deepEqual(requestedAttachments('[{"name":"fast","interface":"data0"}]', "apps"), [
      { namespace: "apps", name: "fast", interface: "data0" },
    ]);
  });

  test("refuses bad annotations by what is wrong", () => {
    assert.throws(() => requestedAttachments("a@net1, b@net1", "x"), /names interface net1 twice/);
    assert.throws(() => requestedAttachments("[not json", "x"), /not valid JSON/);
    assert.throws(() => requestedAttachments("Bad_Name", "x"), /names no valid network/);
    assert.throws(() => requestedAttachments("a@eth0", "x"), /"eth0" cannot be an attachment's interface/);
  });

  test("reads the chart's NetworkAttachmentDefinition config and gives each node its address in the range", () => {
    const chart =
      '{"cniVersion":"0.3.1","ipam":{"range":"198.18.0.0/24","type":"whereabouts"},"master":"eth1","mode":"bridge","name":"mosaic-a","type":"macvlan"}';
    assert.deepEqual(attachmentConfig("ns/mosaic-a", chart), {
      type: "macvlan",
      master: "eth1",
      mode: "bridge",
      range: "198.18.0.0/24",
    });
    assert.equal(nodeAddress("198.18.0.0/24", 0), "198.18.0.1/24");
    assert.equal(nodeAddress("198.18.1.0/24", 4), "198.18.1.5/24");
    assert.throws(() => nodeAddress("198.18.0.0/30", 2), /has 2 addresses/);
  });

  test("refuses what the harness cannot make, and addresses outside 198.18.0.0/15", () => {
    const config = (o: object) =>
      JSON.stringify({ type: "macvlan", master: "eth1", ipam: { range: "198.18.0.0/24" }, ...o });
    assert.throws(() => attachmentConfig("a", config({ type: "ipvlan" })), /macvlan attachments only/);
    assert.throws(() => attachmentConfig("a", config({ master: "eth7" })), /master "eth7" is not a node NIC/);
    assert.throws(
      () => attachmentConfig("a", config({ ipam: { range: "10.0.0.0/24" } })),
      /outside 198\.18\.0\.0\/15/,
    );
    assert.throws(() => attachmentConfig("a", config({ ipam: { range: "198.17.0.0/16" } })), /outside/);
    assert.throws(() => attachmentConfig("a", config({ ipam: {} })), /no range/);
    assert.throws(() => attachmentConfig("a", "{"), /not JSON/);
  });
});

describe("the node network and Node objects", () => {
  test("the pod network takes the first /24 no root address is in", () => {
    assert.equal(freePodSubnet(["127.0.0.1", "10.0.2.15"]), "198.19.64.0");
    assert.equal(freePodSubnet(["198.19.64.1", "198.19.65.7"]), "198.19.66.0");
  });

  test("a Node is Ready, with its capacity and its pod-network address", () => {
    const node = nodeObject(
      { name: "node-1", index: 1, ns: "ns", ip: "198.19.64.3" },
      { cpu: "4", memory: "8Gi", pods: "110", "ephemeral-storage": "50Gi" },
      new Date(0),
    );
    assert.equal(node.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    assert.deepEqual(node.status?.addresses?.[0], { type: "InternalIP", address: "198.19.64.3" });
    assert.equal(node.status?.allocatable?.memory, "8Gi");
    assert.equal(node.metadata?.labels?.["kubernetes.io/hostname"], "node-1");
  });
});

describe("a pod spec, as the kubelet and the runtime read it", () => {
  test("downward API fieldRefs resolve from the pod; unknown ones are refused", () => {
    assert.equal(fieldRefValue(POD, "spec.nodeName"), "node-1");
    assert.equal(fieldRefValue(POD, "metadata.annotations['k8s.v1.cni.cncf.io/network-status']"), "[]");
    assert.equal(fieldRefValue(POD, "metadata.labels['app']"), "agent");
    assert.equal(fieldRefValue(POD, "metadata.labels['missing']"), "");
    assert.equal(fieldRefValue(POD, "status.podIP"), "198.19.64.3");
    assert.throws(() => fieldRefValue(POD, "toString"), /fieldRef toString is not one/);
    assert.throws(
      () => fieldRefValue(POD, "spec.hostname"),
      /fieldRef spec.hostname is not one the harness resolves/,
    );
  });

  test("$(VAR) expands defined names only, $$ escapes", () => {
    assert.equal(expandReferences("$(A)-$(B)-$$(A)", { A: "x" }), "x-$(B)-$(A)");
  });

  test("the environment: the image's, the kubelet's, then the container's in order", () => {
    const container: V1Container = {
      name: "agent",
      env: [
        { name: "NODE", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
        { name: "WHERE", value: "$(NODE) via $(KUBERNETES_SERVICE_HOST)" },
        { name: "PATH", value: "/extra:$(PATH)" },
      ],
    };
    const env = containerEnv(POD, container, IMAGE, { KUBERNETES_SERVICE_HOST: "198.19.64.1" });
    assert.equal(env.WHERE, "node-1 via 198.19.64.1");
    assert.equal(env.PATH, "/extra:/node/bin:/usr/bin");
    assert.throws(
      () =>
        containerEnv(
          POD,
          { name: "c", env: [{ name: "S", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }] },
          IMAGE,
          {},
        ),
      /env S uses secretKeyRef, which the harness does not resolve/,
    );
    assert.throws(
      () => containerEnv(POD, { name: "c", envFrom: [{ configMapRef: { name: "x" } }] }, IMAGE, {}),
      /envFrom/,
    );
  });

  test("argv: command and args, or the image's entrypoint and cmd, with command[0] from the image", () => {
    const env = { DIR: "/var/lib/mosaic" };
    assert.deepEqual(
      containerArgv({ name: "a", command: ["mosaic", "agent", "--data-dir", "$(DIR)"] }, "img", IMAGE, env),
      ["/node/bin/node", "/repo/mosaic.ts", "agent", "--data-dir", "/var/lib/mosaic"],
    );
    assert.deepEqual(containerArgv({ name: "a" }, "img", IMAGE, env), ["/node/bin/node", "server.js"]);
    assert.deepEqual(containerArgv({ name: "a", args: ["other.js"] }, "img", IMAGE, env), [
      "/node/bin/node",
      "other.js",
    ]);
    assert.throws(
      () => containerArgv({ name: "a", command: ["bash"] }, "img", IMAGE, env),
      /image img has no executable "bash"/,
    );
    assert.throws(
      () => containerArgv({ name: "a", command: ["constructor"] }, "img", IMAGE, env),
      /no executable/,
    );
  });

  test("the user: the container's securityContext over the pod's; runAsNonRoot needs a non-root uid", () => {
    const pod: V1Pod = { ...POD, spec: { containers: [], securityContext: { runAsUser: 1000 } } };
    assert.deepEqual(runAs(pod, { name: "c" }), { uid: 1000, gid: 1000, noNewPrivs: false });
    assert.deepEqual(
      runAs(pod, { name: "c", securityContext: { runAsUser: 65532, allowPrivilegeEscalation: false } }),
      {
        uid: 65532,
        gid: 65532,
        noNewPrivs: true,
      },
    );
    assert.equal(runAs(POD, { name: "c" }), undefined);
    assert.throws(() => runAs(POD, { name: "c", securityContext: { runAsNonRoot: true } }), /runAsNonRoot/);
  });

  test("the container script: overlays, then bind mounts parents first, read-only remounts, exec as the user", () => {
    const script = containerScript({
      overlays: [{ dir: "/run", upper: "/p/o/upper", work: "/p/o/work" }],
      binds: [
        { source: "/p/token", target: "/run/secrets/kubernetes.io/serviceaccount", readOnly: true },
        { source: "/n/ipc", target: "/run/mosaic", readOnly: false },
      ],
      hostname: "mosaic-agent-x7k2p",
      workingDir: "/repo's dir",
      user: { uid: 65532, gid: 65532, noNewPrivs: true },
      tools: { mount: "/bin/mount", mkdir: "/bin/mkdir", hostname: "/bin/hostname", setpriv: "/bin/setpriv" },
    });
    const lines = script.split("\n");
    assert.match(
      lines[1] ?? "",
      /^'\/bin\/mount' -t overlay overlay -o 'lowerdir=\/run,upperdir=\/p\/o\/upper,workdir=\/p\/o\/work' '\/run'$/,
    );
    assert.ok(
      script.indexOf("'/run/mosaic'") < script.indexOf("'/run/secrets/kubernetes.io/serviceaccount'"),
    );
    assert.match(script, /-o remount,bind,ro '\/run\/secrets\/kubernetes.io\/serviceaccount'/);
    assert.match(script, /cd '\/repo'\\''s dir'/);
    assert.match(
      lines.at(-1) ?? "",
      /^exec '\/bin\/setpriv' --reuid=65532 --regid=65532 --clear-groups --no-new-privs -- "\$@"$/,
    );
    execFileSync("sh", ["-n", "-c", script]);
    assert.throws(
      () =>
        containerScript({
          overlays: [{ dir: "/a,b", upper: "/u", work: "/w" }],
          binds: [],
          hostname: "h",
          workingDir: "/",
          user: undefined,
          tools: { mount: "m", mkdir: "m", hostname: "h", setpriv: "s" },
        }),
      /comma or colon/,
    );
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
  });

  test("overlays: only the outermost of nested directories", () => {
    assert.deepEqual(outermost(["/var/lib", "/run", "/var", "/var/lib", "/variable"]), [
      "/run",
      "/var",
      "/variable",
    ]);
  });
});

describe("pod status and restarts, as the kubelet reports them", () => {
  const at = "2026-01-01T00:00:00Z";
  const record = (
    state: ContainerRecord["state"],
    extra: Partial<ContainerRecord> = {},
  ): ContainerRecord => ({
    name: "c",
    image: "img",
    state,
    restartCount: 0,
    ready: false,
    ...extra,
  });
  const running = record({ running: { startedAt: at } }, { ready: true });
  const exited = (code: number) => record(terminatedState({ exitCode: code }, at, at, "harness://1"));
  const backingOff = record(
    { waiting: { reason: "CrashLoopBackOff" } },
    { lastState: exited(1).state, restartCount: 1 },
  );

  test("the phase: Pending until every container ran; then by the restart policy", () => {
    assert.equal(
      podPhase([record({ waiting: { reason: "ContainerCreating" } }), running], "Always"),
      "Pending",
    );
    assert.equal(podPhase([running, exited(1)], "Never"), "Running");
    assert.equal(podPhase([backingOff], "Always"), "Running");
    assert.equal(podPhase([exited(0)], "Always"), "Running");
    assert.equal(podPhase([exited(0), exited(0)], "OnFailure"), "Succeeded");
    assert.equal(podPhase([exited(0), exited(1)], "OnFailure"), "Running");
    assert.equal(podPhase([exited(0), exited(137)], "Never"), "Failed");
  });

  test("conditions: others' kept, transition times kept while unchanged, Ready needs every container and gate", () => {
    const base = {
      restartPolicy: "Always" as const,
      sandboxReady: true,
      podIp: "198.19.64.3",
      hostIp: "198.19.64.3",
      startTime: at,
      readinessGates: [] as string[],
      now: "2026-01-01T00:01:00Z",
    };
    const previous = [
      { type: "PodScheduled", status: "True" as const, lastTransitionTime: at },
      { type: "ContainersReady", status: "False" as const, lastTransitionTime: at },
    ];
    const notReady = podStatus({
      ...base,
      records: [running, record({ running: { startedAt: at } })],
      previous,
    });
    const conditions = notReady.conditions as {
      type: string;
      status: string;
      lastTransitionTime: string;
      message?: string;
    }[];
    assert.deepEqual(
      conditions.map((x) => [x.type, x.status]),
      [
        ["PodScheduled", "True"],
        ["PodReadyToStartContainers", "True"],
        ["Initialized", "True"],
        ["ContainersReady", "False"],
        ["Ready", "False"],
      ],
    );
    assert.equal(
      conditions.find((x) => x.type === "ContainersReady")?.lastTransitionTime,
      at,
      "unchanged: kept",
    );
    assert.equal(conditions.find((x) => x.type === "Ready")?.message, "containers with unready status: [c]");
    assert.equal(notReady.podIP, "198.19.64.3");
    const ready = podStatus({ ...base, records: [running], previous });
    const readyConditions = ready.conditions as {
      type: string;
      status: string;
      lastTransitionTime: string;
    }[];
    assert.equal(readyConditions.find((x) => x.type === "Ready")?.status, "True");
    assert.equal(
      readyConditions.find((x) => x.type === "ContainersReady")?.lastTransitionTime,
      base.now,
      "changed: now",
    );
    const gated = podStatus({ ...base, records: [running], previous, readinessGates: ["example.com/gate"] });
    assert.equal(
      (gated.conditions as { type: string; status: string }[]).find((x) => x.type === "Ready")?.status,
      "False",
    );
    const noNetwork = podStatus({
      ...base,
      sandboxReady: false,
      records: [record({ waiting: { reason: "ContainerCreating" } })],
      previous: [],
    });
    assert.equal(noNetwork.podIP, undefined, "no IP before the pod's network is up");
    assert.equal(noNetwork.phase, "Pending");
  });

  test("restarts: per policy; the first at once, then 10 s doubling to 5 min; a long run resets it", () => {
    assert.equal(restartDelayMs("Never", 1, 0, 1_000), undefined);
    assert.equal(restartDelayMs("OnFailure", 0, 0, 1_000), undefined);
    assert.equal(restartDelayMs("OnFailure", 2, 0, 1_000), 0);
    assert.deepEqual(
      [0, 1, 2, 3, 5, 9].map((n) => restartDelayMs("Always", 0, n, 1_000)),
      [0, 10_000, 20_000, 40_000, 160_000, 300_000],
    );
    assert.equal(restartDelayMs("Always", 1, 6, 11 * 60_000), 0);
    assert.deepEqual(terminatedState({ exitCode: 137, signal: "SIGKILL" }, at, at, "harness://9"), {
      terminated: {
        exitCode: 137,
        reason: "Error",
        message: "killed by SIGKILL",
        startedAt: at,
        finishedAt: at,
        containerID: "harness://9",
      },
    });
  });

  test("a readiness probe: ready after successThreshold successes in a row, not after failureThreshold failures", () => {
    const tracker = new ProbeTracker({ periodSeconds: 2, successThreshold: 2, failureThreshold: 3 });
    assert.equal(tracker.periodMs, 2_000);
    assert.equal(tracker.timeoutMs, 1_000, "the API's default timeout");
    assert.deepEqual(
      [true, false, true, true, false, false, true, false, false, false].map((ok) => tracker.record(ok)),
      [false, false, false, true, true, true, true, true, true, false],
    );
  });
});
