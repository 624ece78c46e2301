// Kubernetes quantities ("4Mi", "1.5Ti", "20e9") as byte counts, both ways.
// client-node's quantityToScalar refuses decimals with a suffix ("1.5Gi"),
// which the API server's isQuantity() accepts, so a spec the API server took
// would fail here: this follows the API's grammar exactly, in BigInt, so a
// byte count is exact or refused, never rounded.
import { MosaicError } from "../errors.ts";

const BINARY: Record<string, bigint> = { Ki: 1n, Mi: 2n, Gi: 3n, Ti: 4n, Pi: 5n, Ei: 6n };
const DECIMAL: Record<string, bigint> = { k: 3n, M: 6n, G: 9n, T: 12n, P: 15n, E: 18n };
// <sign><digits>[.<digits>] then one suffix: binary SI, an exponent (e3, E-2), or decimal SI (m, k, M, …).
const QUANTITY = /^([+-]?)(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|m|k|M|G|T|P|E)?$/;

/** A whole, non-negative number of bytes that fits a JS number exactly; `what` names it in the error. */
export function quantityBytes(text: string, what: string): number {
  const bad = (why: string) =>
    new MosaicError("MOSAIC_ERR_BAD_REQUEST", `${what} ${JSON.stringify(text)} ${why}`);
  const match = QUANTITY.exec(text.trim());
  if (match === null) throw bad("is not a quantity (e.g. 4Mi, 500Gi, 1.5Ti)");
  const [, sign, number = "", suffix = ""] = match;
  const [whole = "", fraction = ""] = number.split(".");
  let numerator = BigInt(`${whole}${fraction}` || "0");
  let denominator = 10n ** BigInt(fraction.length);
  if (suffix in BINARY) numerator *= 1024n ** (BINARY[suffix] as bigint);
  else if (suffix in DECIMAL) numerator *= 10n ** (DECIMAL[suffix] as bigint);
  else if (suffix === "m") denominator *= 1000n;
  else if (suffix !== "") {
    const exponent = BigInt(suffix.slice(1));
    if (exponent > 30n || exponent < -30n) throw bad("has an exponent out of range");
    if (exponent >= 0n) numerator *= 10n ** exponent;
    else denominator *= 10n ** -exponent;
  }
  if (sign === "-" && numerator !== 0n) throw bad("is negative");
  if (numerator % denominator !== 0n) throw bad("is not a whole number of bytes");
  const bytes = numerator / denominator;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw bad("is too large");
  return Number(bytes);
}

const UNITS = ["", "Ki", "Mi", "Gi", "Ti", "Pi"] as const;

/**
 * Bytes as a quantity: exact where a binary unit divides them ("100Gi"), else
 * three significant digits of the largest unit ("1.23Gi"). Rounding is what
 * keeps a status field from changing on every byte written.
 */
export function bytesQuantity(bytes: number): string {
  let unit = 0;
  while (unit < UNITS.length - 1 && bytes >= 1024 ** (unit + 1)) unit++;
  const scale = 1024 ** unit;
  if (bytes % scale === 0) return `${bytes / scale}${UNITS[unit]}`;
  const value = bytes / scale;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${Number(value.toFixed(digits))}${UNITS[unit]}`;
}
