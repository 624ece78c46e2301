// Baseline: how fast this machine's disk takes what a durable store must do
// per piece — write a 1 MiB file and fsync it — with a few in flight, as the
// agents have. It bounds any durable store's puts on this disk.
import { open, rm } from "node:fs/promises";
import { join } from "node:path";

const BLOCK_BYTES = 1024 * 1024;
const IN_FLIGHT = 4;

export async function measureDiskWriteMBps(dir: string, totalBytes: number): Promise<number> {
  const block = Buffer.alloc(BLOCK_BYTES, 0x33);
  const files = Math.ceil(totalBytes / BLOCK_BYTES);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < files; i = next++) {
        const file = await open(join(dir, `disk-baseline-${i}.bin`), "w");
        try {
          await file.write(block);
          await file.sync();
        } finally {
          await file.close();
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(
    Array.from({ length: files }, (_, i) => rm(join(dir, `disk-baseline-${i}.bin`), { force: true })),
  );
  return (files * BLOCK_BYTES) / 1e6 / seconds;
}
