// A put's data reaches a handler that declares `consumesInputInPlace` as
// views on the client→agent ring itself (no copy), each valid until the
// handler asks for the next; other handlers get copies. The handler here
// hashes what it is given as it is given it (it is done with each Buffer
// before the next), the client is a separate process, and the bytes are
// compared by hash: a slot released or reused too early would show.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, test } from "node:test";
import { IpcServer } from "../../src/ipc/ipc-server.ts";
import { silentLogger } from "../../src/log.ts";
import type { FileHandler } from "../../src/rpc/file-handler.ts";
import { killPeers, Peer } from "./children.ts";

const APP = new URL("./files-app-peer.ts", import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), "mosaic-ipc-zero-copy-"));

afterEach(async () => {
  await killPeers();
});

after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** Hashes a put's input as it arrives, counting the Buffers that are views on a larger (ring) memory. */
function hashingHandler(inPlace: boolean): FileHandler & { consumesInputInPlace: boolean } {
  return {
    consumesInputInPlace: inPlace,
    async handle(request, input) {
      if (request.op !== "put") return { header: {} };
      const hash = createHash("sha256");
      let sizeBytes = 0;
      let views = 0;
      for await (const part of input) {
        // A slot inside the mapped ring (4 × 256 KiB and its header); a copy has a small store of its own or a pool's.
        if (part.buffer.byteLength >= 4 * 256 * 1024) views++;
        hash.update(part);
        sizeBytes += part.length;
      }
      return { header: { manifest: { sizeBytes, sha256: hash.digest("hex"), views } } };
    },
    localManifest: async () => undefined,
    localManifests: async () => [],
  };
}

for (const inPlace of [true, false]) {
  test(`a put into a handler ${inPlace ? "that consumes in place gets ring views" : "that may keep Buffers gets copies"}, every byte intact`, async (t) => {
    const dir = join(root, `ipc-${inPlace}`);
    const server = IpcServer.start({
      dir,
      files: hashingHandler(inPlace),
      log: silentLogger(),
      slots: 4,
      slotSizeBytes: 256 * 1024,
    });
    try {
      const data = randomBytes(9 * 1024 * 1024 + 4321);
      const src = join(root, `src-${inPlace}.bin`);
      writeFileSync(src, data);
      const got = await new Peer(["write-file", dir, "zero/copy.bin", src], APP).message(60_000);
      const manifest = got.manifest as { sizeBytes: number; sha256: string; views: number };
      assert.equal(manifest.sizeBytes, data.length);
      assert.equal(manifest.sha256, createHash("sha256").update(data).digest("hex"));
      const slots = Math.ceil(data.length / (256 * 1024));
      if (inPlace) assert.equal(manifest.views, slots, "every slot handed over as a view");
      else assert.equal(manifest.views, 0, "copies only");
      t.diagnostic(`${slots} slots, ${manifest.views} handed to the handler as ring views`);
    } finally {
      await server.close();
    }
  });
}
