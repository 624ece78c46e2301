// A real Kubernetes control plane on this machine: etcd and kube-apiserver,
// and when asked kube-controller-manager and kube-scheduler, built from their
// Go modules by build.sh. The operator tests and the e2e harness run against
// it exactly as against a cluster's: same API server, same admission, same
// CEL validation, same controllers.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface ControlPlaneOptions {
  /** Also run kube-controller-manager and kube-scheduler (DaemonSets, garbage collection, leases). */
  controllers?: boolean;
  /** Where logs, etcd data and the kubeconfig go; a temp directory (removed on stop) by default. */
  dir?: string;
  /**
   * The IPv4 address kube-apiserver listens on and advertises (the `kubernetes` Service's endpoint and
   * every kubeconfig's server); 127.0.0.1 by default. kube-apiserver takes one bind address, so this
   * replaces loopback: the e2e harness passes its pod network bridge's address, which the root namespace
   * and the nodes' network namespaces both reach.
   */
  address?: string;
}

export interface ControlPlane {
  /** https://<address>:<port> (127.0.0.1 unless `address` says otherwise) */
  server: string;
  /** A kubeconfig file for a cluster administrator (system:masters). */
  kubeconfig: string;
  /** Directory holding the kubeconfig, certificates and each component's log. */
  dir: string;
  bin: string;
  /** Runs the real kubectl against this control plane. */
  kubectl(args: string[], options?: { input?: string; allowFailure?: boolean }): Promise<KubectlResult>;
  /** Applies CRD files with kubectl and waits until the API server serves each kind. */
  installCrds(files: string[]): Promise<void>;
  /** Stops kube-apiserver and starts it again on the same port and etcd: every watch breaks. */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

const BUILD_SCRIPT = join(import.meta.dirname, "build.sh");
const READY_TIMEOUT_MS = 90_000;

/** Builds the binaries unless cached (many minutes the first time) and returns their directory. */
export async function controlPlaneBinaries(): Promise<string> {
  const { stdout } = await run("bash", [BUILD_SCRIPT], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim().split("\n").at(-1) as string;
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const bin = await controlPlaneBinaries();
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "mosaic-control-plane-")));
  const address = options.address ?? "127.0.0.1";
  const processes: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(processes.reverse().map(stopProcess));
    if (ownDir) await rm(dir, { recursive: true, force: true });
  };
  try {
    const files = await writeCredentials(dir);
    const [etcdClient, etcdPeer, apiPort] = await freePorts(3);
    processes.push(
      launch(dir, "etcd", join(bin, "etcd"), [
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
        // A test cluster is thrown away: fsync buys nothing here and costs seconds.
        "--unsafe-no-fsync",
      ]),
    );
    const apiServerArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      `--bind-address=${address}`,
      `--advertise-address=${address}`,
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, "apiserver")}`,
      `--token-auth-file=${files.tokens}`,
      "--authorization-mode=Node,RBAC",
      `--service-account-key-file=${files.serviceAccountPublic}`,
      `--service-account-signing-key-file=${files.serviceAccountPrivate}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      // An allocation range for Service IPs, never routed: kept inside the test range all the same.
      "--service-cluster-ip-range=198.19.128.0/24",
      "--allow-privileged=true",
    ];
    processes.push(launch(dir, "kube-apiserver", join(bin, "kube-apiserver"), apiServerArgs));
    const server = `https://${address}:${apiPort}`;
    await waitReady(server, files.token, processes);
    const ca = await readFile(join(dir, "apiserver", "apiserver.crt"));
    const kubeconfig = join(dir, "kubeconfig");
    await writeFile(kubeconfig, kubeconfigYaml(server, ca, files.token), { mode: 0o600 });
    if (options.controllers) {
      processes.push(
        launch(dir, "kube-controller-manager", join(bin, "kube-controller-manager"), [
          `--kubeconfig=${kubeconfig}`,
          "--leader-elect=false",
          "--secure-port=0",
          `--service-account-private-key-file=${files.serviceAccountPrivate}`,
          `--root-ca-file=${join(dir, "apiserver", "apiserver.crt")}`,
          "--use-service-account-credentials=false",
          // Node lifecycle is the e2e harness's to drive (it plays kubelet); faster eviction for chaos tests.
          "--node-monitor-grace-period=20s",
        ]),
        launch(dir, "kube-scheduler", join(bin, "kube-scheduler"), [
          `--kubeconfig=${kubeconfig}`,
          "--leader-elect=false",
          "--secure-port=0",
        ]),
      );
    }
    const kubectl: ControlPlane["kubectl"] = (args, kubectlOptions = {}) =>
      runKubectl(join(bin, "kubectl"), kubeconfig, args, kubectlOptions);
    const restartApiServer = async () => {
      const index = processes.findIndex((p) => nameOf(p) === "kube-apiserver");
      await stopProcess(processes[index] as ChildProcess);
      processes[index] = launch(dir, "kube-apiserver", join(bin, "kube-apiserver"), apiServerArgs);
      await waitReady(server, files.token, processes);
    };
    const installCrds = async (crdFiles: string[]) => {
      const applied = await kubectl(["apply", "-o", "name", ...crdFiles.flatMap((f) => ["-f", f])]);
      const names = applied.stdout.split("\n").filter((line) => line !== "");
      await kubectl(["wait", "--for=condition=Established", "--timeout=60s", ...names]);
    };
    return { server, kubeconfig, dir, bin, kubectl, installCrds, restartApiServer, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

interface Credentials {
  token: string;
  tokens: string;
  serviceAccountPublic: string;
  serviceAccountPrivate: string;
}

async function writeCredentials(dir: string): Promise<Credentials> {
  await mkdir(join(dir, "apiserver"), { recursive: true, mode: 0o700 });
  const token = randomBytes(24).toString("hex");
  const tokens = join(dir, "tokens.csv");
  await writeFile(tokens, `${token},mosaic-admin,mosaic-admin,"system:masters"\n`, { mode: 0o600 });
  const { publicKey, privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  const serviceAccountPublic = join(dir, "sa.pub");
  const serviceAccountPrivate = join(dir, "sa.key");
  await writeFile(serviceAccountPublic, publicKey);
  await writeFile(serviceAccountPrivate, privateKey, { mode: 0o600 });
  return { token, tokens, serviceAccountPublic, serviceAccountPrivate };
}

function launch(dir: string, name: string, file: string, args: string[]): ChildProcess {
  const log = createWriteStream(join(dir, `${name}.log`));
  const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  child.on("error", (error) => log.write(`spawn failed: ${error.message}\n`));
  // A test runner that dies must not leave an API server behind.
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap);
  child.once("exit", () => process.off("exit", reap));
  names.set(child, name);
  return child;
}

const names = new WeakMap<ChildProcess, string>();

function nameOf(child: ChildProcess): string {
  return names.get(child) ?? "process";
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

async function waitReady(server: string, token: string, processes: ChildProcess[]): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = "no answer";
  while (Date.now() < deadline) {
    const dead = processes.find((p) => p.exitCode !== null || p.signalCode !== null);
    if (dead) {
      throw new Error(
        `${nameOf(dead)} exited (${dead.exitCode ?? dead.signalCode}) before the API server was ready`,
      );
    }
    try {
      const answer = await fetchInsecure(`${server}/readyz`, token);
      if (answer.status === 200) return;
      last = `${answer.status} ${answer.body.slice(0, 200)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`kube-apiserver not ready after ${READY_TIMEOUT_MS} ms: ${last}`);
}

/** Only for /readyz before the serving certificate can be read; everything after verifies it. */
async function fetchInsecure(url: string, token: string): Promise<{ status: number; body: string }> {
  const https = await import("node:https");
  return new Promise((resolve, reject) => {
    const request = https.get(
      url,
      { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false, timeout: 2_000 },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    request.on("timeout", () => request.destroy(new Error("timed out")));
    request.on("error", reject);
  });
}

function kubeconfigYaml(server: string, ca: Buffer, token: string): string {
  return `apiVersion: v1
kind: Config
clusters:
  - name: mosaic-test
    cluster:
      server: ${server}
      certificate-authority-data: ${ca.toString("base64")}
users:
  - name: mosaic-admin
    user:
      token: ${token}
contexts:
  - name: mosaic-test
    context: { cluster: mosaic-test, user: mosaic-admin }
current-context: mosaic-test
`;
}

function runKubectl(
  file: string,
  kubeconfig: string,
  args: string[],
  options: { input?: string; allowFailure?: boolean },
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [`--kubeconfig=${kubeconfig}`, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", reject);
    // A kubectl that exits before reading its input (it failed at once) closes the pipe: its exit code says why.
    child.stdin.on("error", () => {});
    child.on("close", (code) => {
      const result = { code: code ?? -1, stdout, stderr };
      if (code !== 0 && !options.allowFailure) {
        reject(new Error(`kubectl ${args.join(" ")} failed (${code}): ${stderr.trim()}`));
      } else {
        resolve(result);
      }
    });
    child.stdin.end(options.input ?? "");
  });
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}
