// Baseline: raw TCP throughput between two local Node processes, one writing
// 1 MiB buffers as fast as the socket takes them, the other counting them.
// Run as a script, this file is the receiving process.
import { spawn } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { NODE_FLAGS } from "../../node-agent/src/node-flags.ts";

const MESSAGE_BYTES = 1024 * 1024;

export async function measureTcpMBps(totalBytes: number): Promise<number> {
  const receiver = spawn(
    process.execPath,
    [...NODE_FLAGS, fileURLToPath(import.meta.url), String(totalBytes)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  try {
    const [line] = (await once(receiver.stdout, "data")) as [Buffer];
    const port = Number(line.toString().trim());
    const socket = net.connect(port, "127.0.0.1");
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
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const expected = Number(process.argv[2]);
  const server = net.createServer((socket) => {
    let received = 0;
    socket.on("data", (chunk) => {
      received += chunk.length;
      if (received >= expected) socket.end("done");
    });
  });
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`);
  });
}
