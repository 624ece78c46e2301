// Command-line argument parsers: sizes, bounded integers and `volume/name`
// references. Pure; a bad value is a UsageError (exit code 2), never a
// request that reaches the cluster.
import { InvalidArgumentError } from "commander";
import { validateFileName } from "../core/names.ts";
import { VOLUME_NAME } from "../core/volume.ts";
import { isMosaicError } from "../errors.ts";

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
