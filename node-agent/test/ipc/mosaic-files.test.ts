// The client library (MosaicFiles) in application processes against an
// IpcServer on a real FileHandler (agent 0 of an in-process cluster of
// three): a file piped in from an fs stream and piped back out to a file,
// whole and as a byte range, every byte compared; a reader slower than the
// agent does not grow the application's memory (backpressure reaches the
// ring), where a reader that ignores backpressure does (the control, so the
// measure can fail); errors arrive as stream errors with the MosaicError's code.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, test } from "node:test";
import type { IpcServer } from "../../src/ipc/ipc-server.ts";
import { MosaicFiles } from "../../src/ipc/mosaic-files.ts";
import { silentLogger } from "../../src/log.ts";
import { MiB } from "../helpers/in-process-cluster.ts";
import { killPeers, Peer, until } from "./children.ts";
import { type ServerFixture, startServerFixture } from "./server-fixture.ts";

const APP = new URL("./files-app-peer.ts", import.meta.url).pathname;
let fixture: ServerFixture;
let server: IpcServer;
let root: string;
let dir: string;

before(async () => {
  fixture = await startServerFixture("files", {
    log: silentLogger(),
    slots: 4,
    slotSizeBytes: 256 * 1024,
    pollMs: 100,
  });
  ({ server, root, dir } = fixture);
});

afterEach(async () => {
  await killPeers();
});

after(async () => {
  await fixture?.stop();
});

test("a file piped in from an fs stream and out to files, whole and as a range: every byte the same", async (t) => {
  const sizeBytes = 5 * MiB + 77_777;
  const data = randomBytes(sizeBytes);
  const src = join(root, "src.bin");
  const dst = join(root, "dst.bin");
  const rangeDst = join(root, "range.bin");
  writeFileSync(src, data);
  const [start, end] = [1_234_567, 3 * MiB + 99]; // inclusive, across stripes and slots
  const startMs = performance.now();
  const peer = new Peer(
    ["pipes", dir, "files/piped.bin", src, dst, rangeDst, String(start), String(end)],
    APP,
  );
  const got = await peer.message(60_000);
  assert.equal(got.sizeBytes, sizeBytes);
  assert.equal(got.openedSize, sizeBytes);
  assert.equal(got.iterated, 10, "bytes 10..19 through open().read");
  assert.ok(readFileSync(dst).equals(data), "the file read back differs from what was written");
  const range = readFileSync(rangeDst);
  assert.equal(range.length, end - start + 1);
  assert.ok(range.equals(data.subarray(start, end + 1)), "the range read differs");
  t.diagnostic(
    `${sizeBytes} B in, out, and ${range.length} B of it as a range in ${(performance.now() - startMs).toFixed(0)} ms`,
  );
  await until(() => server.clientCount === 0, 5_000, "the client to leave");
});

test("a slow reader does not grow memory: backpressure reaches the agent's ring (an eager reader, the control, does)", async (t) => {
  const sizeBytes = 12 * MiB;
  const files = await MosaicFiles.connect({ dir, pollMs: 100 });
  try {
    await files.write("media", "files/slow.bin", randomBytes(sizeBytes));
  } finally {
    await files.close();
  }
  const msPerChunk = 25; // a 256 KiB slot per 25 ms: about 10 MB/s, slower than the agent
  const paced = await new Peer(
    ["read-paced", dir, "files/slow.bin", String(msPerChunk), "paced"],
    APP,
  ).message(120_000);
  const eager = await new Peer(
    ["read-paced", dir, "files/slow.bin", String(msPerChunk), "eager"],
    APP,
  ).message(120_000);
  assert.equal(paced.bytes, sizeBytes);
  assert.equal(eager.bytes, sizeBytes);
  const [pacedPeak, eagerPeak] = [paced.peakBytes as number, eager.peakBytes as number];
  t.diagnostic(
    `peak growth of arrayBuffers over a ${sizeBytes / MiB} MiB read: paced reader ${(pacedPeak / MiB).toFixed(2)} MiB ` +
      `(${(paced.ms as number).toFixed(0)} ms), eager reader ${(eagerPeak / MiB).toFixed(2)} MiB`,
  );
  assert.ok(
    (paced.ms as number) >= ((sizeBytes / (256 * 1024)) * msPerChunk) / 2,
    "the paced read went at the consumer's pace",
  );
  assert.ok(pacedPeak < 3 * MiB, `a paced reader held ${pacedPeak} bytes`);
  assert.ok(
    eagerPeak > 8 * MiB,
    `the control held only ${eagerPeak} bytes: the measure would not see growth`,
  );
});

test("errors are stream errors with the agent's MosaicError code, and the client goes on", async () => {
  const got = await new Peer(["errors", dir], APP).message(30_000);
  assert.equal(got.missing, "MOSAIC_ERR_NO_SUCH_FILE");
  assert.equal(got.unknownVolume, "MOSAIC_ERR_UNKNOWN_VOLUME");
  assert.equal(got.afterwards, "MOSAIC_ERR_NO_SUCH_FILE");
});
