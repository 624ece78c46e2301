// Baseline: how fast this machine's disk takes fsync'd 1 MiB writes, which
// bounds any durable store's puts.
import { open, rm } from "node:fs/promises";
import { join } from "node:path";

export async function measureDiskWriteMBps(dir: string, totalBytes: number): Promise<number> {
  const path = join(dir, "disk-baseline.bin");
  const block = Buffer.alloc(1024 * 1024, 0x33);
  const started = performance.now();
  const file = await open(path, "w");
  try {
    for (let written = 0; written < totalBytes; written += block.length) await file.write(block);
    await file.sync();
  } finally {
    await file.close();
  }
  const seconds = (performance.now() - started) / 1000;
  await rm(path, { force: true });
  return totalBytes / 1e6 / seconds;
}
