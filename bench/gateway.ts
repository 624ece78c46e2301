// npm run bench:gateway — 1 MiB Range GETs at random offsets, the same load
// generator (autocannon, in this process) against two servers of the same
// files: nginx from Debian serving them from a local directory (the
// baseline), then the HTTP gateways of a local 3-agent cluster (erasure 2+1,
// 1 MiB chunks) holding them. Both keep their bytes in /dev/shm, so the
// figures are the software path, not this machine's disk. Medians over
// rounds. Last line:
//   gateway rps=<x> nginx_rps=<y> ratio=<r> p99_ms=<z>
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { join } from "node:path";
import { planLocalCluster } from "../node-agent/src/cli/local-plan.ts";
import { ClusterClient } from "../node-agent/src/client/cluster-client.ts";
import { benchArgs, startBenchCluster } from "./lib/cluster.ts";
import { median, round } from "./lib/stats.ts";

// autocannon ships no types; what is used of it here.
interface CannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
}
interface CannonResult {
  requests: { total: number };
  latency: { p50: number; p99: number };
  throughput: { total: number };
  errors: number;
  non2xx: number;
}
const autocannon = createRequire(import.meta.url)("autocannon") as (options: {
  url: string[];
  connections: number;
  duration: number;
  requests: { method: string; setupRequest: (request: CannonRequest) => CannonRequest }[];
}) => Promise<CannonResult>;

const MiB = 1024 * 1024;
const NGINX = "/usr/sbin/nginx";
const FILES = 4;
const RANGE_BYTES = MiB;
const CONNECTIONS = 12;
const SECONDS = 8;

const { sizeBytes, rounds, basePort } = benchArgs("bench:gateway");
if (!existsSync(NGINX)) {
  console.error(
    `bench:gateway: ${NGINX} is missing: install Debian's nginx (apt-get install -y nginx-light)`,
  );
  process.exit(1);
}
const fileBytes = Math.max(8 * MiB, Math.floor(sizeBytes / FILES / MiB) * MiB);
const names = Array.from({ length: FILES }, (_, i) => `bench/clip-${i}.bin`);

interface Run {
  rps: number;
  p99: number;
  mbps: number;
  /** CPU the server's processes spent per request (user + system), and the load generator's (this process). */
  serverCpuMs: number;
  generatorCpuMs: number;
}

interface Target {
  label: string;
  urls: string[];
  pathOf: (name: string) => string;
  /** The server's processes, whose CPU time is counted. */
  pids: number[];
}

/** One measured autocannon run against `target`, printed. */
async function measure(target: Target, r: number): Promise<Run> {
  const [server, generator] = [cpuSecondsOf(target.pids), process.cpuUsage()];
  const result = await once(target.urls, target.pathOf, SECONDS);
  const generatorUsage = process.cpuUsage(generator);
  const perRequest = (seconds: number) => (seconds * 1000) / result.requests.total;
  const run = {
    rps: result.requests.total / SECONDS,
    p99: result.latency.p99,
    mbps: result.throughput.total / 1e6 / SECONDS,
    serverCpuMs: perRequest(cpuSecondsOf(target.pids) - server),
    generatorCpuMs: perRequest((generatorUsage.user + generatorUsage.system) / 1e6),
  };
  console.log(
    `# round ${r} ${target.label}: ${round(run.rps)} req/s, ${round(run.mbps)} MB/s, ` +
      `latency p50 ${result.latency.p50} ms p99 ${run.p99} ms, errors ${result.errors}, non-2xx ${result.non2xx}; ` +
      `CPU per request: server ${round(run.serverCpuMs, 2)} ms, load generator ${round(run.generatorCpuMs, 2)} ms`,
  );
  if (result.errors > 0 || result.non2xx > 0)
    throw new Error(`${target.label}: ${result.errors} errors, ${result.non2xx} non-2xx answers`);
  return run;
}

function once(urls: string[], pathOf: (name: string) => string, seconds: number): Promise<CannonResult> {
  return autocannon({
    url: urls,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [
      {
        method: "GET",
        setupRequest: (request) => {
          const start = Math.floor(Math.random() * (fileBytes - RANGE_BYTES));
          request.path = pathOf(names[Math.floor(Math.random() * FILES)] as string);
          request.headers = { ...request.headers, range: `bytes=${start}-${start + RANGE_BYTES - 1}` };
          return request;
        },
      },
    ],
  });
}

/** A few ranges read from each of the target's servers, compared with the bytes written: both sides serve the same files. */
async function spotCheck(target: Target, files: Buffer[]): Promise<void> {
  for (const base of target.urls) {
    for (let i = 0; i < 8; i++) {
      const f = i % FILES;
      const start = Math.floor(Math.random() * (fileBytes - RANGE_BYTES));
      const res = await fetch(`${base}${target.pathOf(names[f] as string)}`, {
        headers: { range: `bytes=${start}-${start + RANGE_BYTES - 1}` },
      });
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 206 || !body.equals((files[f] as Buffer).subarray(start, start + RANGE_BYTES))) {
        throw new Error(`${base}: range at ${start} of ${names[f]} answered ${res.status} with other bytes`);
      }
    }
  }
}

async function startNginx(dir: string, root: string, port: number): Promise<ChildProcess> {
  const conf = join(dir, "nginx.conf");
  const temp = (what: string) => `${what}_temp_path ${join(dir, what)};`;
  await writeFile(
    conf,
    `worker_processes auto;
daemon off;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  ${["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map(temp).join("\n  ")}
  server { listen 127.0.0.1:${port}; root ${root}; }
}
`,
  );
  const child = spawn(NGINX, ["-c", conf, "-p", dir], { stdio: ["ignore", "inherit", "inherit"] });
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`nginx did not start on 127.0.0.1:${port}; see ${join(dir, "error.log")}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

async function stopByPid(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  process.kill(child.pid, "SIGTERM");
  const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

async function* oneBuffer(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

/** CPU seconds (user + system) the processes have used so far, from /proc. */
function cpuSecondsOf(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total += (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks of 1/100 s
  }
  return total;
}

/** nginx's master and its workers. */
function processTree(pid: number): number[] {
  const children = readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "latin1");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
  return [pid, ...children];
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

// ---

const dir = await mkdtemp("/dev/shm/mosaic-bench-gateway-");
let nginx: ChildProcess | undefined;
try {
  // Random base64 text, not random binary: autocannon appends every body to a string (`req.body += data`),
  // and decoding random binary as UTF-8 costs the generator more CPU than either server spends; ASCII
  // takes the decoder's fast path. The servers do the same work whatever the bytes.
  const files = names.map(() =>
    Buffer.from(randomBytes(fileBytes).toString("base64").slice(0, fileBytes), "latin1"),
  );
  const www = join(dir, "www");
  for (const [i, name] of names.entries()) {
    await mkdir(join(www, "media", "bench"), { recursive: true });
    await writeFile(join(www, "media", name), files[i] as Buffer);
  }
  // nginx's workers run as nobody when it starts as root: the tree must be readable to them.
  for (const d of [dir, www, join(www, "media"), join(www, "media", "bench")]) await chmod(d, 0o755);
  console.log(
    `# ${FILES} files of ${round(fileBytes / MiB)} MiB; ${CONNECTIONS} connections; ${SECONDS} s per round`,
  );

  const nginxPort = basePort - 1;
  nginx = await startNginx(dir, www, nginxPort);
  const nginxTarget: Target = {
    label: "nginx",
    urls: [`http://127.0.0.1:${nginxPort}`],
    pathOf: (name) => `/media/${name}`,
    pids: processTree(nginx.pid as number),
  };
  await spotCheck(nginxTarget, files);

  const plan = planLocalCluster({
    nodes: 3,
    dir: join(dir, "cluster"),
    basePort,
    capacityBytes: 4 * FILES * fileBytes,
  });
  for (const v of plan.cluster.volumes) v.capacityBytes = 2 * FILES * fileBytes;
  const cluster = await startBenchCluster(plan);
  try {
    const client = await ClusterClient.connect(plan.agents.map((a) => a.addresses[0]));
    for (const [i, name] of names.entries()) {
      await client.put("media", name, oneBuffer(files[i] as Buffer), fileBytes);
    }
    client.close();
    const gatewayTarget: Target = {
      label: "gateway",
      urls: plan.agents.map((a) => `http://${a.http}`),
      pathOf: (name) => `/v1/media/${name}`,
      pids: plan.agents.map((a) => cluster.pid(a.id) as number),
    };
    await spotCheck(gatewayTarget, files);

    // Unmeasured: JIT, connections, page cache. Then the two alternate, round by round, so that
    // whatever else this machine runs meanwhile weighs on both alike.
    for (const target of [nginxTarget, gatewayTarget]) await once(target.urls, target.pathOf, 2);
    const nginxRuns: Run[] = [];
    const gatewayRuns: Run[] = [];
    for (let r = 0; r < rounds; r++) {
      nginxRuns.push(await measure(nginxTarget, r));
      gatewayRuns.push(await measure(gatewayTarget, r));
    }

    const rps = median(gatewayRuns.map((r) => r.rps));
    const nginxRps = median(nginxRuns.map((r) => r.rps));
    const p99 = median(gatewayRuns.map((r) => r.p99));
    const cpu = (runs: Run[]) =>
      `${round(median(runs.map((r) => r.serverCpuMs)), 2)} ms server, ` +
      `${round(median(runs.map((r) => r.generatorCpuMs)), 2)} ms load generator`;
    console.log(
      `# nginx ${NGINX} (worker_processes auto) from ${www}, p99 ${median(nginxRuns.map((r) => r.p99))} ms; ` +
        "gateway: the HTTP gateways of 3 agents, erasure 2+1, 1 MiB chunks",
    );
    console.log(`# CPU per request: gateway ${cpu(gatewayRuns)}; nginx ${cpu(nginxRuns)}`);
    // autocannon runs on one thread of this process: past one core's worth of its CPU per request, it, not the
    // server, sets the rate (nginx's figure comes close to it on this machine).
    const generatorBound = 1000 / median(nginxRuns.map((r) => r.generatorCpuMs));
    console.log(
      `# the load generator alone could ask for at most ~${round(generatorBound)} req/s ` +
        `(one core at its CPU per nginx request); nginx answered ${round(median(nginxRuns.map((r) => r.rps)))}`,
    );
    console.log(
      `gateway rps=${round(rps)} nginx_rps=${round(nginxRps)} ratio=${round(rps / nginxRps, 2)} p99_ms=${round(p99)}`,
    );
  } finally {
    await cluster.stop();
  }
} finally {
  if (nginx !== undefined) await stopByPid(nginx);
  await rm(dir, { recursive: true, force: true });
}
