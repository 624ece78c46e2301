// The local cluster end to end: the real control plane with its controllers,
// three nodes from the harness (each a network namespace with a pod network
// NIC and two NICs for Multus' attachments), the harness's kubelet, and
// `helm install` of the real chart. The operator's Deployment runs as pods
// (as its securityContext's user) and one replica leads; the DaemonSet it
// creates gets one agent pod per node, which the harness runs inside that
// node's namespace with the pod's downward API, service account, hostPaths
// and Multus' net1 and net2; the agents find each other over those and report
// ClusterNodes, and are Ready through their gRPC readiness probe;
// `kubectl delete pod` ends one and the DaemonSet's replacement runs. A probe
// pod shows readiness is the probes' (HTTP, exec, TCP), restarts follow
// restartPolicy and SIGKILL follows an ignored SIGTERM after the grace.
// Everything is removed afterwards, pass or fail.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import { join } from "node:path";
import { after, before, describe, type TestContext, test } from "node:test";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { AGENT_SELECTOR } from "../../operator/src/api/agents.ts";
import {
  CLUSTER_MAP_CONFIGMAP,
  CLUSTER_MAP_KEY,
  decodeClusterMap,
} from "../../operator/src/api/cluster-map.ts";
import type { ClusterNode } from "../../operator/src/api/types.ts";
import { podOfIdentity } from "../../operator/src/framework/leader-election.ts";
import { eventually } from "../../operator/test/helpers/eventually.ts";
import { installChart, MOSAIC_NAMESPACE } from "../harness/chart.ts";
import { harnessUnavailable, ipJson } from "../harness/ip.ts";
import { HARNESS_IMAGES, LocalCluster } from "../harness/local-cluster.ts";
import { NETWORK_STATUS_ANNOTATION, type NetworkStatusEntry } from "../harness/multus.ts";

const NS = MOSAIC_NAMESPACE;
const AGENT_PORT = 7400;
/** The probe pod's server: clear of the agent's ports (7400, gateway 8080, metrics 9400), since pods share their node's namespace here. */
const PROBE_PORT = 8180;
const OPERATOR_SELECTOR = "app.kubernetes.io/name=mosaic-operator";
/** From helm install to pods running: the operator starts, leads, applies the DaemonSet; pods are scheduled and run. */
const WAIT_MS = 180_000;

describe("the local cluster: harness nodes and kubelet, the real control plane, helm install of the chart", () => {
  let cluster: LocalCluster | undefined;
  let skip: string | undefined;
  const seenPids = new Set<number>();
  /** When helm install returned: the figures below count from it. */
  let installed = 0;
  const sinceInstall = () => Math.round(performance.now() - installed);

  const c = (): LocalCluster => cluster as LocalCluster;
  const kubectlJson = async <T>(args: string[]): Promise<T> =>
    JSON.parse((await c().cp.kubectl([...args, "-o", "json"])).stdout) as T;
  const pods = async (selector: string): Promise<V1Pod[]> =>
    (await kubectlJson<{ items: V1Pod[] }>(["get", "pods", "-n", NS, "-l", selector])).items;
  const ready = (pod: V1Pod) =>
    pod.status?.conditions?.some((x) => x.type === "Ready" && x.status === "True") === true;
  const running = (pod: V1Pod) =>
    pod.status?.phase === "Running" && pod.metadata?.deletionTimestamp === undefined;
  /** The tails of the harness's log and of each container's, for a failure's message. */
  const logs = async (): Promise<string> => {
    const tail = async (file: string, lines: number) =>
      `--- ${file}\n${(await readFile(file, "utf8")).trim().split("\n").slice(-lines).join("\n")}`;
    const pods = join(c().dir, "pods");
    const containers = existsSync(pods)
      ? (await readdir(pods, { recursive: true })).filter((f) => f.endsWith(".log")).map((f) => join(pods, f))
      : [];
    return (await Promise.all([tail(c().logFile, 30), ...containers.map((f) => tail(f, 6))])).join("\n");
  };
  /** The pid of the first container of a pod the harness runs now. */
  const pidOf = (pod: V1Pod): number => {
    const pid = c()
      .kubelet.runner(NS, pod.metadata?.name ?? "")
      ?.pids()[0];
    assert.ok(pid !== undefined, `the harness runs no process for ${pod.metadata?.name}`);
    seenPids.add(pid);
    return pid;
  };
  const environOf = async (pid: number): Promise<Record<string, string>> => {
    const text = await readFile(`/proc/${pid}/environ`, "utf8");
    return Object.fromEntries(
      text
        .split("\0")
        .filter((line) => line !== "")
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
    );
  };
  /** eventually(), with the harness's log appended to a timeout's message. */
  const waitFor = async (
    condition: () => Promise<boolean>,
    timeoutMs: number,
    what: string,
  ): Promise<number> => {
    try {
      return await eventually(condition, timeoutMs, what);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await logs()}`);
    }
  };
  const skipped = (t: TestContext): boolean => {
    if (skip !== undefined) t.skip(skip);
    return skip !== undefined;
  };

  before(async () => {
    skip = await harnessUnavailable();
    if (skip !== undefined) return;
    const started = performance.now();
    cluster = await LocalCluster.start({ nodes: 3 });
    const stdout = await installChart(c());
    assert.match(stdout, /STATUS: deployed/);
    installed = performance.now();
    console.log(`# cluster up and chart installed in ${Math.round(installed - started)} ms`);
  });

  after(async () => {
    if (cluster === undefined) return;
    for (const pid of c().kubelet.pids()) seenPids.add(pid);
    const { dir, network } = c();
    await c().stop();
    await network.assertGone();
    assert.equal(existsSync(dir), false, `${dir} left behind`);
    const mounts = await readFile("/proc/self/mountinfo", "utf8");
    assert.ok(!mounts.includes(dir), "a mount of the harness is left in the root mount namespace");
    const alive = [...seenPids].filter((pid) => existsSync(`/proc/${pid}`));
    assert.deepEqual(alive, [], "container processes left running");
  });

  test("three Nodes are Ready with capacity and their pod-network address", async (t) => {
    if (skipped(t)) return;
    const nodes = await kubectlJson<{ items: V1Node[] }>(["get", "nodes"]);
    assert.deepEqual(
      nodes.items.map((n) => n.metadata?.name),
      ["node-0", "node-1", "node-2"],
    );
    for (const [i, node] of nodes.items.entries()) {
      const status = node.status ?? {};
      assert.equal(status.conditions?.find((x) => x.type === "Ready")?.status, "True");
      assert.equal(status.capacity?.pods, "110");
      const host = c().network.nodes[i];
      assert.equal(status.addresses?.find((a) => a.type === "InternalIP")?.address, host?.ip);
    }
  });

  test("the operator's two pods run in the nodes' namespaces as its securityContext says, and one leads", async (t) => {
    if (skipped(t)) return;
    await waitFor(
      async () => {
        const found = await pods(OPERATOR_SELECTOR);
        return found.length === 2 && found.every((p) => running(p) && ready(p));
      },
      WAIT_MS,
      `two operator pods Running and Ready`,
    );
    const operatorsAt = sinceInstall();
    const operators = await pods(OPERATOR_SELECTOR);
    const names = operators.map((p) => p.metadata?.name);
    let holder: string | undefined;
    await waitFor(
      async () => {
        const r = await c().cp.kubectl(["get", "lease", "-n", NS, "mosaic-operator", "-o", "json"], {
          allowFailure: true,
        });
        holder = r.code === 0 ? JSON.parse(r.stdout).spec?.holderIdentity : undefined;
        return names.includes(holder === undefined ? undefined : podOfIdentity(holder));
      },
      60_000,
      `an operator pod holding Lease mosaic-operator (pods ${names.join(", ")})`,
    );
    for (const pod of operators) {
      const pid = pidOf(pod);
      const status = await readFile(`/proc/${pid}/status`, "utf8");
      assert.match(status, /^Uid:\s+65532\s/m, "runAsUser 65532, as the chart's securityContext says");
      const env = await environOf(pid);
      assert.equal(env.MOSAIC_POD_NAME, pod.metadata?.name, "downward API metadata.name");
      assert.equal(env.MOSAIC_NAMESPACE, NS, "downward API metadata.namespace");
      assert.equal(env.KUBECONFIG, undefined, "in-cluster config, not a kubeconfig of this machine");
      const netns = await readFile(`/proc/${pid}/net/dev`, "utf8");
      assert.match(netns, /eth1:/, "it runs in its node's network namespace");
    }
    console.log(
      `# operator pods Running and Ready ${operatorsAt} ms after helm install returned; leader ${holder}`,
    );
  });

  test("one agent pod per node runs in that node's namespace, with Multus' network-status and the pod's environment", async (t) => {
    if (skipped(t)) return;
    await waitFor(
      async () => {
        const agents = (await pods(AGENT_SELECTOR)).filter(running);
        const nodes = new Set(agents.map((p) => p.spec?.nodeName));
        return agents.length === 3 && nodes.size === 3;
      },
      WAIT_MS,
      `three agent pods Running, one per node`,
    );
    console.log(`# agent pods Running, one per node, ${sinceInstall()} ms after helm install returned`);
    for (const pod of (await pods(AGENT_SELECTOR)).filter(running)) {
      const node = c().network.node(pod.spec?.nodeName ?? "");
      const status = JSON.parse(
        pod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION] ?? "[]",
      ) as NetworkStatusEntry[];
      assert.deepEqual(
        status.map((s) => [s.interface, s.name]),
        [
          ["eth0", "harness-pod-network"],
          ["net1", `${NS}/mosaic-a`],
          ["net2", `${NS}/mosaic-b`],
        ],
      );
      assert.deepEqual(
        status[1]?.ips,
        [`198.18.0.${node.index + 1}`],
        "net1 from mosaic-a's range 198.18.0.0/24",
      );
      assert.deepEqual(
        status[2]?.ips,
        [`198.18.1.${node.index + 1}`],
        "net2 from mosaic-b's range 198.18.1.0/24",
      );
      for (const entry of status.slice(1)) {
        const [link] = await ipJson<{ address: string; addr_info: { local: string }[] }[]>(
          "-n",
          node.ns,
          "addr",
          "show",
          "dev",
          entry.interface,
        );
        assert.equal(
          link?.address,
          entry.mac,
          `${entry.interface} exists in ${node.ns} with the MAC reported`,
        );
        assert.equal(link?.addr_info[0]?.local, entry.ips[0]);
      }
      const pid = pidOf(pod);
      const env = await environOf(pid);
      assert.equal(env.MOSAIC_NODE_NAME, node.name, "downward API spec.nodeName");
      assert.equal(env.MOSAIC_POD_NAME, pod.metadata?.name);
      assert.equal(env.MOSAIC_POD_UID, pod.metadata?.uid);
      assert.deepEqual(
        JSON.parse(env.MOSAIC_NETWORK_STATUS ?? "null"),
        status,
        "the annotation, via the downward API",
      );
      const mountinfo = await readFile(`/proc/${pid}/mountinfo`, "utf8");
      for (const path of ["/var/lib/mosaic", "/run/mosaic", "/run/secrets/kubernetes.io/serviceaccount"])
        assert.ok(mountinfo.includes(` ${path} `), `${path} is mounted in the container`);
      // /var/run is a symlink to /run, and /proc/<pid>/root/… would resolve an absolute link in our root.
      assert.ok(
        existsSync(`/proc/${pid}/root/run/secrets/kubernetes.io/serviceaccount/token`),
        "the token, projected",
      );
      assert.equal(
        existsSync("/var/lib/mosaic") || existsSync("/run/mosaic"),
        false,
        "the host's own paths are untouched",
      );
    }
  });

  test("the agents register their ClusterNodes with both channels and the operator maps all three", async (t) => {
    if (skipped(t)) return;
    await waitFor(
      async () => {
        const cns = (await kubectlJson<{ items: ClusterNode[] }>(["get", "cn"])).items;
        return (
          cns.length === 3 &&
          cns.every((cn) => cn.status?.channelA?.state === "Up" && cn.status?.channelB?.state === "Up")
        );
      },
      WAIT_MS,
      `three ClusterNodes with both channels Up`,
    );
    const upAt = sinceInstall();
    for (const cn of (await kubectlJson<{ items: ClusterNode[] }>(["get", "cn"])).items) {
      const index = c().network.node(cn.metadata?.name ?? "").index;
      assert.deepEqual(cn.status?.channelA, {
        address: `198.18.0.${index + 1}:${AGENT_PORT}`,
        interface: "net1",
        state: "Up",
      });
      assert.deepEqual(cn.status?.channelB, {
        address: `198.18.1.${index + 1}:${AGENT_PORT}`,
        interface: "net2",
        state: "Up",
      });
    }
    await waitFor(
      async () => {
        const r = await c().cp.kubectl(["get", "cm", "-n", NS, CLUSTER_MAP_CONFIGMAP, "-o", "json"], {
          allowFailure: true,
        });
        if (r.code !== 0) return false;
        const map = decodeClusterMap(JSON.parse(r.stdout).data[CLUSTER_MAP_KEY] ?? "", "test");
        return map.nodes.length === 3 && map.nodes.every((n) => n.state === "up");
      },
      60_000,
      "the operator's cluster map with the three nodes up",
    );
    const agentLog = await readFile(
      join(c().dir, "pods", (await pods(AGENT_SELECTOR))[0]?.metadata?.uid ?? "", "agent-0.log"),
      "utf8",
    );
    assert.match(
      agentLog,
      new RegExp(`"server":"https://${c().network.gateway.replaceAll(".", "\\.")}:\\d+"`),
      "in-cluster config",
    );
    // The chart's mutual TLS: the agent's certificate came through a CSR the operator approved and signed.
    assert.match(agentLog, /agent certificate obtained through a CertificateSigningRequest/);
    assert.match(agentLog, /gRPC with mutual TLS/);
    const csrs = await kubectlJson<{
      items: { status?: { conditions?: { type: string }[]; certificate?: string } }[];
    }>(["get", "csr", "-l", "mosaic.dev/node"]);
    assert.ok(
      csrs.items.filter((r) => r.status?.conditions?.[0]?.type === "Approved" && r.status.certificate)
        .length >= 3,
      "a signed CSR per node",
    );
    console.log(`# ClusterNodes with channels A and B Up ${upAt} ms after helm install returned`);
  });

  test("each agent pod becomes Ready through its gRPC readiness probe on the pod IP", async (t) => {
    if (skipped(t)) return;
    const agents = (await pods(AGENT_SELECTOR)).filter(running);
    for (const pod of agents) {
      const probe = pod.spec?.containers[0]?.readinessProbe;
      assert.equal(probe?.grpc?.port, AGENT_PORT, "the DaemonSet's probe: gRPC health on the agent port");
      assert.equal(
        pod.status?.podIP,
        c().network.node(pod.spec?.nodeName ?? "").ip,
        "the pod IP is its node's eth0",
      );
    }
    // The agent serves grpc.health.v1 on its pod IP (node-agent/src/kube/probe-server.ts); the harness dials it there.
    await waitFor(
      async () => {
        const now = await pods(AGENT_SELECTOR);
        return agents.every((a) => {
          const p = now.find((x) => x.metadata?.uid === a.metadata?.uid);
          return p !== undefined && ready(p) && p.status?.containerStatuses?.[0]?.ready === true;
        });
      },
      60_000,
      "the three agent pods Ready",
    );
    console.log(`# agent pods Ready ${sinceInstall()} ms after helm install returned`);
  });

  test("a probe pod: Ready only when its HTTP, exec and TCP probes all pass, NotReady and restarted as its server says, SIGKILL after its grace", async (t) => {
    if (skipped(t)) return;
    const image = `${HARNESS_IMAGES.operator.repository}:${HARNESS_IMAGES.operator.tag}`;
    // web: 200 until told /fail, exits 3 when told /exit. gate: ready once /var/scratch/open exists, ignores SIGTERM.
    const web = `
      let healthy = true;
      require("node:http").createServer((q, s) => {
        if (q.url === "/fail") healthy = false;
        if (q.url === "/exit") process.exit(3);
        s.statusCode = healthy ? 200 : 503; s.end(process.env.POD_IP + " " + process.env.GREETING);
      }).listen(${PROBE_PORT}, process.env.POD_IP);`;
    const idle = "setInterval(() => {}, 1000)";
    const gate = `process.on("SIGTERM", () => {}); ${idle}`;
    const mounts = [
      { name: "scratch", mountPath: "/var/scratch" },
      { name: "host", mountPath: "/var/lib/probe-check" },
    ];
    const fast = { periodSeconds: 1, failureThreshold: 2 };
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "probe-check", namespace: NS, annotations: { note: "hello" } },
      spec: {
        nodeName: "node-2",
        terminationGracePeriodSeconds: 2,
        containers: [
          {
            name: "web",
            image,
            command: ["node", "-e", web],
            env: [
              { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
              { name: "NOTE", valueFrom: { fieldRef: { fieldPath: "metadata.annotations['note']" } } },
              { name: "GREETING", value: "$(NOTE) from $(POD_IP)" },
            ],
            ports: [{ name: "web", containerPort: PROBE_PORT }],
            readinessProbe: { httpGet: { path: "/", port: "web" }, ...fast },
            volumeMounts: mounts,
          },
          {
            name: "gate",
            image,
            command: ["node", "-e", gate],
            readinessProbe: {
              exec: {
                command: [
                  "node",
                  "-e",
                  "process.exit(require('node:fs').existsSync('/var/scratch/open') ? 0 : 1)",
                ],
              },
              ...fast,
            },
            volumeMounts: mounts,
          },
          {
            name: "tcp",
            image,
            command: ["node", "-e", idle],
            readinessProbe: { tcpSocket: { port: PROBE_PORT }, ...fast },
          },
        ],
        volumes: [
          { name: "scratch", emptyDir: {} },
          { name: "host", hostPath: { path: "/var/lib/probe-check", type: "DirectoryOrCreate" } },
        ],
      },
    };
    await c().cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(pod) });
    const get = () => kubectlJson<V1Pod>(["get", "pod", "-n", NS, "probe-check"]);
    const containerReady = (p: V1Pod, name: string) =>
      p.status?.containerStatuses?.find((x) => x.name === name)?.ready === true;
    await waitFor(
      async () => {
        const p = await get();
        return containerReady(p, "web") && containerReady(p, "tcp");
      },
      60_000,
      "probe-check's web (HTTP probe) and tcp (TCP probe) containers ready",
    );
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const gated = await get();
    assert.equal(
      containerReady(gated, "gate"),
      false,
      "the exec probe fails while /var/scratch/open is missing",
    );
    assert.equal(ready(gated), false, "the pod is not Ready while one container is not");
    const runner = c().kubelet.runner(NS, "probe-check");
    const pids = runner?.pids() ?? [];
    for (const pid of pids) seenPids.add(pid);
    const [webPid, gatePid] = pids as [number, number];
    // The emptyDir, written from the host as another container of the pod would: the exec probe sees it.
    await writeFile(join(runner?.volumes.get("scratch") ?? "", "open"), "");
    const readyMs = await waitFor(
      async () => ready(await get()),
      30_000,
      "probe-check Ready once the gate opens",
    );
    const ip = c().network.node("node-2").ip;
    assert.equal(
      await httpGet(`http://${ip}:${PROBE_PORT}/`),
      `${ip} hello from ${ip}`,
      "status.podIP and an annotation via the downward API, $(VAR) expanded",
    );
    const mountinfo = await readFile(`/proc/${webPid}/mountinfo`, "utf8");
    assert.ok(mountinfo.includes(" /var/scratch ") && mountinfo.includes(" /var/lib/probe-check "));
    assert.ok(
      existsSync(join(c().kubelet.nodeRoot("node-2"), "var", "lib", "probe-check")),
      "hostPath under node-2's root",
    );
    await httpGet(`http://${ip}:${PROBE_PORT}/fail`);
    const notReadyMs = await waitFor(
      async () => !ready(await get()),
      30_000,
      "probe-check NotReady after /fail",
    );
    await httpGet(`http://${ip}:${PROBE_PORT}/exit`).catch(() => "");
    await waitFor(
      async () => {
        const p = await get();
        const s = p.status?.containerStatuses?.find((x) => x.name === "web");
        return s?.restartCount === 1 && s.lastState?.terminated?.exitCode === 3 && ready(p);
      },
      60_000,
      "probe-check's web restarted once (exit 3 recorded), and the pod Ready again",
    );
    const newWebPid = c().kubelet.runner(NS, "probe-check")?.pids()[0] as number;
    seenPids.add(newWebPid);
    assert.notEqual(newWebPid, webPid, "a new process");
    const deleted = performance.now();
    await c().cp.kubectl(["delete", "pod", "-n", NS, "probe-check", "--timeout=60s"]);
    const deleteMs = performance.now() - deleted;
    assert.ok(
      deleteMs >= 2_000,
      `deleted after ${deleteMs} ms: gate ignores SIGTERM, so only SIGKILL after the 2 s grace ends it`,
    );
    assert.equal(existsSync(`/proc/${gatePid}`), false, "gate was killed");
    console.log(
      `# probe pod Ready ${Math.round(readyMs)} ms after its gate opened; NotReady ${Math.round(notReadyMs)} ms after /fail; restarted after exit 3; deleted in ${Math.round(deleteMs)} ms (SIGKILL after 2 s)`,
    );
  });

  test("kubectl delete pod of an agent: the harness ends it, the DaemonSet makes a new one, and the harness runs that", async (t) => {
    if (skipped(t)) return;
    const old = (await pods(AGENT_SELECTOR)).find(
      (p) => p.spec?.nodeName === "node-1" && running(p),
    ) as V1Pod;
    assert.ok(old !== undefined, "an agent pod on node-1");
    const oldPid = pidOf(old);
    const started = performance.now();
    await c().cp.kubectl(["delete", "pod", "-n", NS, old.metadata?.name ?? "", "--timeout=90s"]);
    const deletedMs = performance.now() - started;
    assert.equal(existsSync(`/proc/${oldPid}`), false, "the old agent process is gone");
    let replacement: V1Pod | undefined;
    await waitFor(
      async () => {
        replacement = (await pods(AGENT_SELECTOR)).find(
          (p) => p.spec?.nodeName === "node-1" && running(p) && p.metadata?.uid !== old.metadata?.uid,
        );
        return (
          replacement !== undefined && c().kubelet.runner(NS, replacement.metadata?.name ?? "") !== undefined
        );
      },
      WAIT_MS,
      `a new agent pod Running on node-1`,
    );
    const runningMs = performance.now() - started;
    assert.ok(replacement?.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]?.includes('"net1"'));
    pidOf(replacement as V1Pod);
    await waitFor(
      async () => {
        const r = await c().cp.kubectl(["get", "lease", "-n", NS, "mosaic-agent-node-1", "-o", "json"]);
        return JSON.parse(r.stdout).spec?.holderIdentity === replacement?.metadata?.name;
      },
      60_000,
      `the new agent holding its Lease`,
    );
    const leaseMs = performance.now() - started;
    await waitFor(
      async () =>
        ready(await kubectlJson<V1Pod>(["get", "pod", "-n", NS, replacement?.metadata?.name ?? ""])),
      60_000,
      "the new agent pod Ready",
    );
    const readyMs = performance.now() - started;
    console.log(
      `# kubectl delete pod returned after ${Math.round(deletedMs)} ms (SIGTERM, interfaces deleted, pod deleted); new pod Running at ${Math.round(runningMs)} ms; its agent holds the Lease at ${Math.round(leaseMs)} ms; Ready at ${Math.round(readyMs)} ms`,
    );
    const wide = await c().cp.kubectl(["get", "pods", "-n", NS, "-o", "wide"]);
    const cns = await c().cp.kubectl(["get", "cn"]);
    console.log(`# kubectl get pods -n ${NS} -o wide\n${wide.stdout}# kubectl get cn\n${cns.stdout}`);
  });
});

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { timeout: 5_000 }, (response) => {
        let body = "";
        response.setEncoding("utf8").on("data", (d: string) => {
          body += d;
        });
        response.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}
