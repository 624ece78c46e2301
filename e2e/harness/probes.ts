// The kubelet's prober: a container's readiness probe run as the kubelet runs
// it (gRPC health, HTTP GET, TCP connect or exec in the container), from this
// process in the root namespace to the pod's IP over the pod network, as a
// kubelet probes from its host. ProbeTracker is the pure part: the probe's
// timing and its success and failure thresholds.
import { execFile } from "node:child_process";
import http from "node:http";
import https from "node:https";
import { connect } from "node:net";
import { Client, credentials } from "@grpc/grpc-js";
import type { V1ContainerPort, V1Probe } from "@kubernetes/client-node";
import { tool } from "./ip.ts";
import type { RunAs } from "./pod-spec.ts";

export interface ProbeResult {
  ok: boolean;
  /** What was found, for the container's status and the log. */
  detail: string;
}

/** Readiness from a probe's results: ready after successThreshold successes in a row, not after failureThreshold failures. */
export class ProbeTracker {
  readonly initialDelayMs: number;
  readonly periodMs: number;
  readonly timeoutMs: number;
  readonly #successThreshold: number;
  readonly #failureThreshold: number;
  #ready = false;
  #successes = 0;
  #failures = 0;

  constructor(probe: V1Probe) {
    this.initialDelayMs = (probe.initialDelaySeconds ?? 0) * 1_000;
    this.periodMs = (probe.periodSeconds ?? 10) * 1_000;
    this.timeoutMs = (probe.timeoutSeconds ?? 1) * 1_000;
    this.#successThreshold = probe.successThreshold ?? 1;
    this.#failureThreshold = probe.failureThreshold ?? 3;
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Takes one result; returns readiness after it. */
  record(ok: boolean): boolean {
    if (ok) {
      this.#failures = 0;
      this.#successes++;
      if (this.#successes >= this.#successThreshold) this.#ready = true;
    } else {
      this.#successes = 0;
      this.#failures++;
      if (this.#failures >= this.#failureThreshold) this.#ready = false;
    }
    return this.#ready;
  }
}

export interface ProbeTarget {
  podIp: string;
  /** The container's process, for exec probes (its namespaces). */
  pid: number;
  env: Record<string, string>;
  user: RunAs | undefined;
  ports: readonly V1ContainerPort[];
}

/** Runs the probe once, within its timeout. */
export async function probeOnce(
  probe: V1Probe,
  target: ProbeTarget,
  timeoutMs: number,
): Promise<ProbeResult> {
  try {
    if (probe.grpc !== undefined)
      return await grpcHealth(target.podIp, probe.grpc.port, probe.grpc.service ?? "", timeoutMs);
    if (probe.httpGet !== undefined) {
      const g = probe.httpGet;
      return await httpGet(
        (g.scheme ?? "HTTP").toUpperCase() === "HTTPS",
        g.host ?? target.podIp,
        portOf(g.port, target.ports),
        g.path ?? "/",
        Object.fromEntries((g.httpHeaders ?? []).map((h) => [h.name, h.value])),
        timeoutMs,
      );
    }
    if (probe.tcpSocket !== undefined)
      return await tcpConnect(
        probe.tcpSocket.host ?? target.podIp,
        portOf(probe.tcpSocket.port, target.ports),
        timeoutMs,
      );
    if (probe.exec !== undefined) return await execIn(target, probe.exec.command ?? [], timeoutMs);
    return { ok: false, detail: "the probe names no handler (grpc, httpGet, tcpSocket or exec)" };
  } catch (error) {
    return { ok: false, detail: (error as Error).message };
  }
}

function portOf(port: number | string, ports: readonly V1ContainerPort[]): number {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = ports.find((p) => p.name === port);
  if (named === undefined) throw new Error(`no container port named ${port}`);
  return named.containerPort;
}

/** grpc.health.v1.Health/Check; healthy only when the answer is SERVING, as the kubelet's gRPC probe. */
function grpcHealth(host: string, port: number, service: string, timeoutMs: number): Promise<ProbeResult> {
  const name = Buffer.from(service, "utf8");
  // HealthCheckRequest { string service = 1; }: field 1, length-delimited (names are short: one length byte).
  const request =
    name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, name.length]), name]);
  const client = new Client(`${host}:${port}`, credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      { deadline: Date.now() + timeoutMs },
      (error, answer) => {
        client.close();
        if (error) {
          resolve({ ok: false, detail: `gRPC health check of ${host}:${port}: ${error.message}` });
          return;
        }
        // HealthCheckResponse { ServingStatus status = 1; }: tag 0x08 then the enum; SERVING = 1.
        const status = answer !== undefined && answer[0] === 0x08 ? answer[1] : 0;
        resolve({
          ok: status === 1,
          detail: `gRPC health of ${host}:${port}: status ${status === 1 ? "SERVING" : status}`,
        });
      },
    );
  });
}

function httpGet(
  secure: boolean,
  host: string,
  port: number,
  path: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const request = (secure ? https : http).get(
      { host, port, path, headers, timeout: timeoutMs, rejectUnauthorized: false },
      (response) => {
        response.resume();
        const code = response.statusCode ?? 0;
        resolve({ ok: code >= 200 && code < 400, detail: `HTTP GET ${host}:${port}${path}: ${code}` });
      },
    );
    request.on("timeout", () => request.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    request.on("error", (error) =>
      resolve({ ok: false, detail: `HTTP GET ${host}:${port}${path}: ${error.message}` }),
    );
  });
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    socket.once("connect", () => {
      socket.destroy();
      resolve({ ok: true, detail: `TCP ${host}:${port}: connected` });
    });
    socket.once("timeout", () => socket.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    socket.once("error", (error) => resolve({ ok: false, detail: `TCP ${host}:${port}: ${error.message}` }));
  });
}

/** The command in the container's namespaces, as its user, with its environment; exit 0 is success. */
function execIn(target: ProbeTarget, command: readonly string[], timeoutMs: number): Promise<ProbeResult> {
  const user =
    target.user === undefined ? [] : [`--setuid=${target.user.uid}`, `--setgid=${target.user.gid}`];
  const args = [
    "--target",
    String(target.pid),
    "--mount",
    "--uts",
    "--net",
    "--wd",
    ...user,
    "--",
    ...command,
  ];
  return new Promise((resolve) => {
    execFile(tool("nsenter"), args, { env: target.env, timeout: timeoutMs }, (error, _stdout, stderr) => {
      const what = `exec ${command.join(" ")}`;
      if (error === null) resolve({ ok: true, detail: `${what}: exit 0` });
      else resolve({ ok: false, detail: `${what}: ${stderr.trim().slice(0, 200) || error.message}` });
    });
  });
}
