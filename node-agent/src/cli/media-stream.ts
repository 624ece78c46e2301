// A media-like file that is never stored anywhere: deterministic,
// incompressible bytes from a seed (the AES-256-CTR keystream, which runs at
// GB/s with AES-NI), generated part by part so any size streams in bounded
// memory, and a verifier that compares a received stream with a fresh
// generation of the same bytes, whatever the received parts' sizes.
import { createCipheriv, createHash } from "node:crypto";

export const MEDIA_PART_BYTES = 1024 * 1024;

/** `sizeBytes` pseudo-random bytes in parts of at most `partBytes`; the same seed gives the same bytes. */
export function* mediaBytes(
  sizeBytes: number,
  seed = "mosaic",
  partBytes = MEDIA_PART_BYTES,
): Generator<Buffer> {
  const key = createHash("sha256").update(seed).digest();
  const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  const zeros = Buffer.alloc(Math.min(partBytes, Math.max(sizeBytes, 1)));
  for (let done = 0; done < sizeBytes; ) {
    const n = Math.min(zeros.length, sizeBytes - done);
    yield cipher.update(zeros.subarray(0, n));
    done += n;
  }
}

export interface Mismatch {
  offsetBytes: number;
  why: string;
}

/** Feeds received parts in order; reports the first byte that differs from the expected stream. */
export class StreamVerifier {
  readonly #expected: Iterator<Buffer>;
  #pending: Buffer = Buffer.alloc(0);
  #offsetBytes = 0;
  #mismatch: Mismatch | undefined;

  constructor(expected: Iterable<Buffer>) {
    this.#expected = expected[Symbol.iterator]();
  }

  get mismatch(): Mismatch | undefined {
    return this.#mismatch;
  }

  /** Checks the next received part; false once anything has differed. */
  push(part: Buffer): boolean {
    if (this.#mismatch !== undefined) return false;
    let at = 0;
    while (at < part.length) {
      if (this.#pending.length === 0) {
        const next = this.#expected.next();
        if (next.done) return this.#fail(this.#offsetBytes, "received more bytes than expected");
        this.#pending = next.value;
      }
      const n = Math.min(this.#pending.length, part.length - at);
      const got = part.subarray(at, at + n);
      if (!got.equals(this.#pending.subarray(0, n))) {
        return this.#fail(this.#offsetBytes + firstDifference(got, this.#pending), "bytes differ");
      }
      this.#pending = this.#pending.subarray(n);
      this.#offsetBytes += n;
      at += n;
    }
    return true;
  }

  /** After the last part: was everything expected received? */
  finish(): Mismatch | undefined {
    if (this.#mismatch === undefined && (this.#pending.length > 0 || !this.#expected.next().done)) {
      this.#fail(this.#offsetBytes, "stream ended early");
    }
    return this.#mismatch;
  }

  get offsetBytes(): number {
    return this.#offsetBytes;
  }

  #fail(offsetBytes: number, why: string): false {
    this.#mismatch = { offsetBytes, why };
    return false;
  }
}

function firstDifference(a: Buffer, b: Buffer): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return a.length;
}
