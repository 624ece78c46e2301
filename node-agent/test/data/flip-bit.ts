// Corrupts a chunk file in place, the way a failing disk would: one bit of
// one byte, at a byte offset in the file (header included).
import { open } from "node:fs/promises";

export async function flipBit(path: string, at: number, mask = 0x10): Promise<void> {
  const fh = await open(path, "r+");
  try {
    const one = Buffer.alloc(1);
    await fh.read(one, 0, 1, at);
    one[0] = (one[0] as number) ^ mask;
    await fh.write(one, 0, 1, at);
  } finally {
    await fh.close();
  }
}
