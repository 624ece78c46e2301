// Command-line argument parsers: sizes, durations, bounded integers and
// `volume/name` references. Pure; a bad value is a UsageError (exit code 2), never a
// request that reaches the cluster.
import { InvalidArgumentError } from "commander";
import { validateFileName } from "../core/names.ts";
import { VOLUME_NAME } from "../core/volume.ts";
import { isMosaicError } from "../errors.ts";
import { isDnsLabel } from "../tls/certificates.ts";

/** An argument the user must fix: reported in one line with exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
};

/** "512MiB", "1.5 GiB", "1000000": bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/i.exec(text.trim());
  if (match === null)
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a size (e.g. 512MiB, 10GiB, 1000000)`);
  const bytes = Math.round(Number(match[1]) * (SIZE_UNITS[(match[2] ?? "b").toLowerCase()] as number));
  if (!Number.isSafeInteger(bytes)) throw new InvalidArgumentError(`${JSON.stringify(text)} is too large`);
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** The longest delay Node's timers take: a longer one fires at once. */
export const DURATION_MAX_MS = 2 ** 31 - 1;

/**
 * "500ms", "2s", "1.5m", "1h": whole milliseconds, at least 1. The unit is
 * required: a bare "30" could mean seconds or milliseconds.
 */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/i.exec(text.trim());
  if (match === null && /^\d+(?:\.\d+)?$/.test(text.trim()))
    throw new InvalidArgumentError(
      `${JSON.stringify(text)} needs a unit (e.g. ${text.trim()}s or ${text.trim()}ms)`,
    );
  if (match === null)
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a duration (e.g. 500ms, 2s, 5m, 1h)`);
  const ms = Math.round(Number(match[1]) * (DURATION_UNITS[(match[2] as string).toLowerCase()] as number));
  if (ms < 1) throw new InvalidArgumentError(`${JSON.stringify(text)} is shorter than 1ms`);
  if (ms > DURATION_MAX_MS) throw new InvalidArgumentError(`${JSON.stringify(text)} is longer than 24 days`);
  return ms;
}

/** A name that can go into a certificate (tls/certificates.ts). */
export function dnsLabel(text: string): string {
  if (!isDnsLabel(text))
    throw new InvalidArgumentError(
      `${JSON.stringify(text)} is not a DNS label (a-z, 0-9 and inner dashes, at most 63 characters)`,
    );
  return text;
}

/** A commander parser for an integer in [min, max]. */
export function integerIn(min: number, max: number): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new InvalidArgumentError(`${JSON.stringify(text)} must be a whole number from ${min} to ${max}`);
    }
    return value;
  };
}

export interface FileRef {
  volume: string;
  name: string;
}

/** "media/films/clip.mp4" → volume "media", name "films/clip.mp4". */
export function parseFileRef(text: string): FileRef {
  const slash = text.indexOf("/");
  const volume = slash < 0 ? text : text.slice(0, slash);
  const name = slash < 0 ? "" : text.slice(slash + 1);
  if (!VOLUME_NAME.test(volume) || name === "") {
    throw new UsageError(
      `${JSON.stringify(text)} is not <volume>/<name> (e.g. media/films/clip.mp4; volumes: \`mosaic volumes\`)`,
    );
  }
  try {
    validateFileName(name);
  } catch (error) {
    if (!isMosaicError(error)) throw error;
    throw new UsageError(`${error.message}; use a plain relative name like media/films/2026/clip.mp4`);
  }
  return { volume, name };
}

export function parseVolume(text: string): string {
  if (!VOLUME_NAME.test(text)) {
    throw new UsageError(
      `${JSON.stringify(text)} is not a volume name (lower-case letters, digits and '-'; see \`mosaic volumes\`)`,
    );
  }
  return text;
}
