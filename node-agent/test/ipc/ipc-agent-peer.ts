// An agent process for the IPC client tests: an IpcServer whose file handler
// serves "get" as an endless, paced stream, so a test can kill -9 this
// process in the middle of a transfer.
//   ipc-agent-peer.ts <dir>

import { IpcServer } from "../../src/ipc/ipc-server.ts";
import { silentLogger } from "../../src/log.ts";
import type { FileHandler } from "../../src/rpc/file-handler.ts";

const [dir = ""] = process.argv.slice(2);

async function* endless(): AsyncGenerator<Buffer> {
  // Bounded by the kill this process is started for (or the test's cleanup).
  for (let i = 0; ; i++) {
    yield Buffer.alloc(64 * 1024, i & 0xff);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const files: FileHandler = {
  handle: async (request) => ({
    header: { op: request.op },
    body: request.op === "get" ? endless() : undefined,
  }),
  localManifest: async () => undefined,
  localManifests: async () => [],
};

const server = IpcServer.start({
  dir,
  files,
  log: silentLogger(),
  slots: 4,
  slotSizeBytes: 64 * 1024,
  pollMs: 100,
});
process.send?.({ ok: true, fifo: server.fifoPath });
setInterval(() => {}, 1_000); // serves until killed
