// Mutual TLS between real agents on real sockets: good peers are served;
// a caller with no certificate, one from another CA, or an expired one is
// refused at the handshake and the refusing agent's log says so; a server
// whose certificate names another node is refused by the caller, which logs
// it; and certificate files replaced on disk are used by new connections
// without a restart, on the server's side and on the client's.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { Agent } from "../../src/agent.ts";
import { AgentClient } from "../../src/client/agent-client.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import type { VolumeSpec } from "../../src/core/volume.ts";
import { silentLogger } from "../../src/log.ts";
import { PeerClients } from "../../src/rpc/peer-client.ts";
import {
  createCa,
  issueAgentCertificate,
  issueClientCertificate,
  type KeyPairPem,
} from "../../src/tls/certificates.ts";
import { type ChannelSecurity, INSECURE, MutualTls } from "../../src/tls/grpc-tls.ts";
import { writeTlsFiles } from "../../src/tls/tls-files.ts";

const VOLUMES: VolumeSpec[] = [
  { name: "media", chunkSizeBytes: 64 * 1024, redundancy: { replicas: 2 }, capacityBytes: 2 ** 30 },
];
const REFRESH_MS = 200;

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

/** A pino logger whose lines land in `lines`. */
function capturingLogger(lines: LogLine[]) {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return pino({ level: "info" }, sink);
}

let root: string;
let ca: KeyPairPem;
const agents: Agent[] = [];
const logs: LogLine[][] = [[], []];
let clientTls: MutualTls;

async function tlsDir(name: string, material: { ca: string; certificate: string; privateKey: string }) {
  const dir = join(root, "tls", name);
  await writeTlsFiles(dir, material);
  return dir;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), "mosaic-mtls-"));
  ca = await createCa();
  for (const [i, node] of ["node-0", "node-1"].entries()) {
    const dir = await tlsDir(node, { ca: ca.certificate, ...(await issueAgentCertificate(ca, node)) });
    const log = capturingLogger(logs[i] as LogLine[]);
    agents.push(
      await Agent.start({
        nodeId: node,
        listen: ["127.0.0.1:0", "127.0.0.2:0"],
        dataDir: join(root, node),
        capacityBytes: 2 ** 30,
        scrubRateBytesPerSecond: 0,
        map: { epoch: 0, nodes: [] },
        volumes: VOLUMES,
        tls: await MutualTls.open(dir, { refreshMs: REFRESH_MS, log: log.child({ component: "tls" }) }),
        log,
      }),
    );
  }
  const map: ClusterMap = {
    epoch: 1,
    nodes: agents.map((a) => ({ id: a.nodeId, addresses: a.addresses, state: "up" as const })),
  };
  for (const agent of agents) agent.update(map);
  clientTls = await MutualTls.open(
    await tlsDir("client", { ca: ca.certificate, ...(await issueClientCertificate(ca, "test-client")) }),
    { refreshMs: REFRESH_MS },
  );
});

after(async () => {
  await Promise.all(agents.map((a) => a.stop(500)));
  await rm(root, { recursive: true, force: true });
});

const address = (i: number) => (agents[i] as Agent).addresses[0];

/** One cluster() call with `security`, its client closed after. */
async function clusterCall(security: ChannelSecurity, node: string, at = address(0)) {
  const client = new AgentClient(at, { security, node });
  try {
    return await client.cluster(3_000);
  } finally {
    client.close();
  }
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const refusedLines = (i: number) =>
  (logs[i] as LogLine[]).filter((l) => l.msg.startsWith("TLS handshake refused"));

/** A ChannelSecurity from literal PEM: what a foreign or broken peer would present. */
function staticTls(
  material: { ca: string; certificate?: string; privateKey?: string },
  name: string,
): ChannelSecurity {
  const credentials =
    material.certificate === undefined
      ? grpc.credentials.createSsl(Buffer.from(material.ca))
      : grpc.credentials.createSsl(
          Buffer.from(material.ca),
          Buffer.from(material.privateKey as string),
          Buffer.from(material.certificate),
        );
  return { channel: () => ({ credentials, options: { "grpc.ssl_target_name_override": name } }) };
}

test("agents with certificates of the cluster's CA store and read through each other", async () => {
  const client = new AgentClient(address(0), { security: clientTls, node: "node-0" });
  try {
    const body = Buffer.alloc(300_000, 7);
    const manifest = await client.put(
      "media",
      "a.bin",
      (async function* () {
        yield body;
      })(),
    );
    assert.equal(manifest.sizeBytes, body.length);
    // Replicas 2 of 2 nodes: node-1 holds a copy, written over node-0's TLS connection to it.
    const viaOther = new AgentClient(address(1), { security: clientTls, node: "node-1" });
    try {
      const parts: Buffer[] = [];
      for await (const part of (await viaOther.get("media", "a.bin")).body) parts.push(part);
      assert.ok(Buffer.concat(parts).equals(body));
    } finally {
      viaOther.close();
    }
  } finally {
    client.close();
  }
  assert.deepEqual(refusedLines(0), []);
  assert.deepEqual(refusedLines(1), []);
});

test("a peer without a valid certificate is refused, the agent logs why, and keeps serving good peers", async () => {
  const other = await createCa({ commonName: "another CA" });
  const cases: { name: string; security: ChannelSecurity; logged: RegExp }[] = [
    { name: "plain HTTP/2, no TLS at all", security: INSECURE, logged: /does not speak TLS/ },
    {
      name: "TLS without a client certificate",
      security: staticTls({ ca: ca.certificate }, "node-0.agent.mosaic.dev"),
      logged: /presented no certificate/,
    },
    {
      name: "a certificate from another CA",
      security: staticTls(
        { ca: ca.certificate, ...(await issueAgentCertificate(other, "node-5")) },
        "node-0.agent.mosaic.dev",
      ),
      logged: /not signed by this cluster's CA/,
    },
    {
      name: "an expired certificate of this CA",
      security: staticTls(
        {
          ca: ca.certificate,
          ...(await issueAgentCertificate(ca, "node-5", {
            now: new Date(Date.now() - 3 * 86_400_000),
            validityMs: 86_400_000,
          })),
        },
        "node-0.agent.mosaic.dev",
      ),
      logged: /certificate has expired/,
    },
  ];
  for (const c of cases) {
    const before = refusedLines(0).length;
    await assert.rejects(
      clusterCall(c.security, "node-0"),
      /UNAVAILABLE|DEADLINE|unavailable|No connection|not answer/i,
      c.name,
    );
    await until(`node-0 to log the refused handshake (${c.name})`, () => refusedLines(0).length > before);
    // The refusal, with its reason (a retried connection may add more lines).
    const fresh = refusedLines(0).slice(before);
    assert.ok(
      fresh.some((l) => c.logged.test(l.msg)),
      `${c.name}: ${fresh.map((l) => l.msg).join(" | ")}`,
    );
    for (const l of fresh) assert.match(String(l.peer), /^127\.0\.0\.1:\d+$/);
    // The agent still serves a good peer, between each refusal.
    assert.equal((await clusterCall(clientTls, "node-0")).node, "node-0", c.name);
  }
});

test("a server whose certificate names another node is refused by the caller, which logs it", async () => {
  // node-0's PeerClients believe node-1 is at node-0's address: the certificate there says node-0.
  const lines: LogLine[] = [];
  const log = capturingLogger(lines);
  const tls = await MutualTls.open(join(root, "tls", "client"), { log });
  const wrongMap: ClusterMap = {
    epoch: 1,
    nodes: [{ id: "node-1", addresses: [address(0), (agents[0] as Agent).addresses[1]], state: "up" }],
  };
  const peers = new PeerClients({
    map: () => wrongMap,
    log: silentLogger(),
    security: tls,
    callTimeoutMs: 3_000,
  });
  try {
    await assert.rejects(peers.usage("node-1"), (error: Error) => {
      assert.match(error.message, /node-1|unavailable/i);
      return true;
    });
  } finally {
    peers.close();
  }
  const refused = lines.find((l) => l.msg.startsWith("peer refused: its certificate names another node"));
  assert.ok(refused, `no refusal logged: ${JSON.stringify(lines)}`);
  assert.equal(refused.expected, "node-1.agent.mosaic.dev");
  assert.match(String(refused.presented), /DNS:node-0\.agent\.mosaic\.dev/);
  // The same credentials reach the real node-1.
  assert.equal((await clusterCall(tls, "node-1", address(1))).node, "node-1");
});

/** The certificate a TLS server at `at` presents to a new connection (with our client certificate). */
async function presentedSerial(at: string): Promise<string> {
  const [host, port] = [at.slice(0, at.lastIndexOf(":")), Number(at.slice(at.lastIndexOf(":") + 1))];
  const material = clientTls.provider.material as { ca: string; certificate: string; privateKey: string };
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      {
        host,
        port,
        ca: material.ca,
        cert: material.certificate,
        key: material.privateKey,
        servername: "node-0.agent.mosaic.dev",
        ALPNProtocols: ["h2"],
      },
      () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.destroy();
        resolve(serial);
      },
    );
    socket.once("error", reject);
  });
}

test("an agent's certificate replaced on disk is what new connections get, without a restart", async () => {
  const before = await presentedSerial(address(0));
  const renewed = await issueAgentCertificate(ca, "node-0");
  await writeTlsFiles(join(root, "tls", "node-0"), { ca: ca.certificate, ...renewed });
  const want = new (await import("node:crypto")).X509Certificate(renewed.certificate).serialNumber;
  assert.notEqual(before, want);
  const deadline = Date.now() + 10 * REFRESH_MS + 5_000;
  let now = before;
  while (now !== want && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, REFRESH_MS / 2));
    now = await presentedSerial(address(0));
  }
  assert.equal(now, want, "the server presents the renewed certificate");
  assert.ok((logs[0] as LogLine[]).some((l) => l.msg.startsWith("TLS certificate reloaded")));
  // Peers and clients connected before still work, and so do new ones.
  assert.equal((await clusterCall(clientTls, "node-0")).node, "node-0");
});

test("a client's certificate replaced on disk is what its new connections present", async () => {
  const seen: string[] = [];
  const server = createTlsServer(
    {
      ...(await issueAgentCertificate(ca, "node-9").then((p) => ({
        cert: p.certificate,
        key: p.privateKey,
      }))),
      ca: ca.certificate,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ["h2"],
    },
    (socket: TLSSocket) => {
      seen.push(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const at = `127.0.0.1:${(server.address() as { port: number }).port}`;
  const dir = join(root, "tls", "rotating-client");
  const first = await issueClientCertificate(ca, "rotating");
  await writeTlsFiles(dir, { ca: ca.certificate, ...first });
  const tls = await MutualTls.open(dir, { refreshMs: REFRESH_MS });
  const { X509Certificate } = await import("node:crypto");
  try {
    await clusterCall(tls, "node-9", at).catch(() => {});
    await until("the first handshake", () => seen.length > 0);
    assert.equal(seen.at(-1), new X509Certificate(first.certificate).serialNumber);
    const second = await issueClientCertificate(ca, "rotating");
    await writeTlsFiles(dir, { ca: ca.certificate, ...second });
    const want = new X509Certificate(second.certificate).serialNumber;
    const deadline = Date.now() + 10 * REFRESH_MS + 5_000;
    while (seen.at(-1) !== want && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, REFRESH_MS));
      await clusterCall(tls, "node-9", at).catch(() => {});
    }
    assert.equal(seen.at(-1), want, "the client presents the renewed certificate");
  } finally {
    server.close();
  }
});
