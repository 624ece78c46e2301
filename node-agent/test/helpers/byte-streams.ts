// Deterministic test data of any size without holding it: an AES-256-CTR
// keystream (encrypting zeros) seeded by a string, fast enough for gigabytes,
// and a streaming comparison of what comes back against the same stream
// generated again. Neither side ever holds more than one part.
import { AssertionError } from "node:assert/strict";
import { createCipheriv, createHash } from "node:crypto";

/** Odd on purpose: parts never line up with chunks, stripes or gRPC messages. */
export const DEFAULT_PART_BYTES = 786_433;

/** `sizeBytes` pseudo-random bytes, the same for the same seed, in parts of `partBytes`. */
export async function* keystream(
  sizeBytes: number,
  seed: string,
  partBytes = DEFAULT_PART_BYTES,
): AsyncGenerator<Buffer> {
  const key = createHash("sha256").update(`mosaic-test\u0000${seed}`).digest();
  const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  const zeros = Buffer.alloc(Math.min(partBytes, Math.max(sizeBytes, 1)));
  for (let done = 0; done < sizeBytes; ) {
    const n = Math.min(zeros.length, sizeBytes - done);
    yield cipher.update(n === zeros.length ? zeros : zeros.subarray(0, n));
    done += n;
  }
}

export interface StreamCheck {
  bytes: number;
  parts: number;
}

/**
 * Reads `body` to its end and checks it is exactly keystream(sizeBytes, seed),
 * comparing part by part against the regenerated stream. Fails at the first
 * differing byte, naming its offset. `onPart` sees the running byte count.
 */
export async function expectKeystream(
  body: AsyncIterable<Buffer>,
  sizeBytes: number,
  seed: string,
  onPart?: (bytesSoFar: number) => void,
): Promise<StreamCheck> {
  const expected = keystream(sizeBytes, seed)[Symbol.asyncIterator]();
  let want: Buffer = Buffer.alloc(0);
  let wantOffset = 0;
  let bytes = 0;
  let parts = 0;
  for await (const part of body) {
    parts++;
    for (let offset = 0; offset < part.length; ) {
      if (wantOffset === want.length) {
        const next = await expected.next();
        if (next.done) {
          throw new AssertionError({
            message: `read more than the expected ${sizeBytes} bytes (byte ${bytes + offset} is extra)`,
          });
        }
        want = next.value;
        wantOffset = 0;
      }
      const n = Math.min(part.length - offset, want.length - wantOffset);
      const got = part.subarray(offset, offset + n);
      const exp = want.subarray(wantOffset, wantOffset + n);
      if (!got.equals(exp)) {
        let at = 0;
        while (got[at] === exp[at]) at++;
        throw new AssertionError({
          message: `byte ${bytes + offset + at} differs: got 0x${got[at]?.toString(16)}, expected 0x${exp[at]?.toString(16)}`,
        });
      }
      offset += n;
      wantOffset += n;
    }
    bytes += part.length;
    onPart?.(bytes);
  }
  if (bytes !== sizeBytes) {
    throw new AssertionError({ message: `read ${bytes} bytes, expected ${sizeBytes}` });
  }
  return { bytes, parts };
}

/** Samples a number (e.g. RSS) every `intervalMs` until stopped; reports the peak. */
export function peakSampler(
  sample: () => number,
  intervalMs = 100,
): { stop: () => number; peak: () => number } {
  let peak = sample();
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, sample());
    } catch {}
  }, intervalMs);
  return {
    peak: () => peak,
    stop: () => {
      clearInterval(timer);
      peak = Math.max(peak, sample());
      return peak;
    },
  };
}
