// Baselines: raw socket throughput between two local Node processes — TCP
// on loopback, or a Unix-domain socket — one writing 1 MiB buffers as fast
// as the socket takes them, the other counting them. Run as a script, this
// file is the receiving process.
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
  } finally {
    receiver.kill();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

export function measureTcpMBps(totalBytes: number): Promise<number> {
  return measureSocketMBps("tcp", totalBytes);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
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
  else server.listen(where, announce);
}
