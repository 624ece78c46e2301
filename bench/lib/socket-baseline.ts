// Baselines: raw socket throughput between two local Node processes — TCP
// on loopback, or a Unix-domain socket — one writing 1 MiB buffers as fast
// as the socket takes them, the other counting them; or raw TCP between two
// network namespaces, over the same veths the agents use. Run as a script,
// this file is the receiving process (`tcp`, `tcp:HOST` or a socket path),
// or with `send HOST PORT BYTES` the sending one.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_FLAGS } from "../../node-agent/src/node-flags.ts";

const MESSAGE_BYTES = 1024 * 1024;

export type SocketKind = "tcp" | "unix";

export async function measureSocketMBps(kind: SocketKind, totalBytes: number): Promise<number> {
  const dir = kind === "unix" ? mkdtempSync(join(tmpdir(), "mosaic-uds-")) : undefined;
  const where = dir === undefined ? "tcp" : join(dir, "baseline.sock");
  const receiver = spawn(
    process.execPath,
    [...NODE_FLAGS, fileURLToPath(import.meta.url), where, String(totalBytes)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  try {
    const [line] = (await once(receiver.stdout, "data")) as [Buffer];
    const address = line.toString().trim();
    const socket = kind === "tcp" ? net.connect(Number(address), "127.0.0.1") : net.connect(address);
    return await send(socket, totalBytes);
  } finally {
    receiver.kill();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

export function measureTcpMBps(totalBytes: number): Promise<number> {
  return measureSocketMBps("tcp", totalBytes);
}

/** Raw TCP from namespace `fromNs` to `host` in namespace `toNs`: both ends are processes in their namespaces. */
export async function measureNetnsTcpMBps(
  fromNs: string,
  to: { ns: string; host: string },
  totalBytes: number,
): Promise<number> {
  const script = fileURLToPath(import.meta.url);
  const inNs = (ns: string, args: string[]) =>
    spawn("ip", ["netns", "exec", ns, process.execPath, ...NODE_FLAGS, script, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
  const receiver = inNs(to.ns, [`tcp:${to.host}`, String(totalBytes)]);
  try {
    const [port] = (await once(receiver.stdout, "data")) as [Buffer];
    const sender = inNs(fromNs, ["send", to.host, port.toString().trim(), String(totalBytes)]);
    const [mbps] = (await once(sender.stdout, "data")) as [Buffer];
    return Number(mbps.toString().trim());
  } finally {
    receiver.kill();
  }
}

/** Writes `totalBytes` as fast as the socket takes them; MB/s once the receiver has them all. */
async function send(socket: net.Socket, totalBytes: number): Promise<number> {
  await once(socket, "connect");
  const message = Buffer.alloc(MESSAGE_BYTES, 0xa5);
  const started = performance.now();
  for (let sent = 0; sent < totalBytes; sent += MESSAGE_BYTES) {
    if (!socket.write(message)) await once(socket, "drain");
  }
  const [ack] = (await once(socket, "data")) as [Buffer];
  const seconds = (performance.now() - started) / 1000;
  socket.destroy();
  if (ack.toString() !== "done") throw new Error(`receiver answered ${ack.toString()}`);
  return totalBytes / 1e6 / seconds;
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "send") {
  const [host, port, bytes] = process.argv.slice(3) as [string, string, string];
  const mbps = await send(net.connect(Number(port), host), Number(bytes));
  process.stdout.write(`${mbps}\n`);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [where, expectedText] = process.argv.slice(2) as [string, string];
  const expected = Number(expectedText);
  const server = net.createServer((socket) => {
    let received = 0;
    socket.on("data", (chunk) => {
      received += chunk.length;
      if (received >= expected) socket.end("done");
    });
  });
  const announce = () => {
    const address = server.address();
    process.stdout.write(`${typeof address === "string" ? address : (address as net.AddressInfo).port}\n`);
  };
  if (where === "tcp") server.listen(0, "127.0.0.1", announce);
  else if (where.startsWith("tcp:")) server.listen(0, where.slice(4), announce);
  else server.listen(where, announce);
}
