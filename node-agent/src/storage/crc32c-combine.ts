// crc32c of two byte strings back to back, from the crc32c of each and the
// second's length, without reading a byte (zlib's crc32_combine, for the
// Castagnoli polynomial). A holder serving part of a piece checks the whole
// piece and sends the part with its own crc32c: it computes the crc32c of
// the bytes before, of the part and of the bytes after once each, and
// combines them for the whole, instead of reading the part twice. Pure.

/** The Castagnoli polynomial, bit-reversed (as crc32c computes). */
const POLY = 0x82f63b78;

/** a × b modulo the polynomial, both as reflected 32-bit polynomials. */
function multModP(a: number, b: number): number {
  let m = 0x8000_0000;
  let p = 0;
  let x = b >>> 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= x;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    x = x & 1 ? (x >>> 1) ^ POLY : x >>> 1;
  }
  return p >>> 0;
}

/** x^(2^n) modulo the polynomial, for n = 0..31. */
const X2N: number[] = (() => {
  const table: number[] = [];
  let p = 0x4000_0000; // x^1
  table.push(p);
  for (let n = 1; n < 32; n++) {
    p = multModP(p, p);
    table.push(p);
  }
  return table;
})();

/** x^(8 × bytes) modulo the polynomial: what shifting a crc past `bytes` zero bytes multiplies it by. */
function shiftOf(bytes: number): number {
  let p = 0x8000_0000; // x^0
  let k = 3; // 2^3 bits per byte
  for (let n = bytes; n > 0; n = Math.floor(n / 2), k++) {
    if (n % 2 === 1) p = multModP(X2N[k % 32] as number, p);
  }
  return p;
}

/** crc32c(a ‖ b) from crc32c(a), crc32c(b) and b's length in bytes. */
export function crc32cCombine(crcA: number, crcB: number, bytesB: number): number {
  if (!Number.isSafeInteger(bytesB) || bytesB < 0)
    throw new RangeError(`length ${bytesB} is not a byte count`);
  return (multModP(shiftOf(bytesB), crcA >>> 0) ^ (crcB >>> 0)) >>> 0;
}
