// A seeded byte stream for the IPC tests that costs almost nothing to make
// or check: a pseudo-random pattern of an odd length (so it never lines up
// with slots or socket chunks), repeated. Filling and checking are memcpy
// and memcmp, so the transfer itself dominates the measured time.
import { createCipheriv, createHash } from "node:crypto";

export const PATTERN_BYTES = 4 * 1024 * 1024 + 4099;

export function pattern(seed: string): Buffer {
  const key = createHash("sha256").update(`mosaic-ipc-test\u0000${seed}`).digest();
  return createCipheriv("aes-256-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(PATTERN_BYTES));
}

/** Fills `target` with the stream's bytes from `streamOffset` on. */
export function fillFromPattern(data: Buffer, target: Uint8Array, streamOffset: number): void {
  // Bounded: each pass copies up to PATTERN_BYTES.
  for (let done = 0; done < target.length; ) {
    const at = (streamOffset + done) % data.length;
    done += data.copy(target, done, at, Math.min(data.length, at + target.length - done));
  }
}

/** The index of the first byte of `view` that is not the stream's byte at `streamOffset` + index, or -1. */
export function mismatchAt(data: Buffer, view: Buffer, streamOffset: number): number {
  // Bounded: each pass compares up to PATTERN_BYTES.
  for (let done = 0; done < view.length; ) {
    const at = (streamOffset + done) % data.length;
    const n = Math.min(data.length - at, view.length - done);
    if (!view.subarray(done, done + n).equals(data.subarray(at, at + n))) {
      for (let i = 0; i < n; i++) if (view[done + i] !== data[at + i]) return done + i;
    }
    done += n;
  }
  return -1;
}
