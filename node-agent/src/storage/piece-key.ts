// The address of one chunk on a node. Every field ends up in a path or a
// header, so a key is checked here once, before it reaches either.
import { validateFileId } from "../core/names.ts";
import { VOLUME_NAME } from "../core/volume.ts";
import { MosaicError } from "../errors.ts";

export type PieceKey = { volume: string; fileId: string; version: number; stripe: number; slot: number };

import { MANIFEST_STRIPE } from "../core/placement.ts";

export { MANIFEST_STRIPE };
export const STRIPE_MAX = 2 ** 31 - 1;
export const SLOT_MAX = 2 ** 16 - 1;
/**
 * Slots from here up name temporary read copies of a hot stripe
 * (load/read-copies.ts), never a placed piece (stripes are at most
 * WIDTH_MAX wide): the rebuild and the scrubber tell them apart by the key
 * alone, and they live in the file's version directory, so a newer version
 * or a delete sweeps them away with the rest.
 */
export const READ_COPY_SLOT_BASE = 0xff00;

/** Whether `key` names a temporary read copy rather than a placed piece. */
export function isReadCopy(key: Pick<PieceKey, "slot">): boolean {
  return key.slot >= READ_COPY_SLOT_BASE;
}

/** The read copy of a placed piece `key` (any replica's: they hold the same bytes). */
export function readCopyKey(key: PieceKey): PieceKey {
  return { ...key, slot: READ_COPY_SLOT_BASE + key.slot };
}

export function isVolumeName(value: unknown): value is string {
  return typeof value === "string" && VOLUME_NAME.test(value);
}

export function validateVolumeName(volume: unknown): string {
  if (!isVolumeName(volume)) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `volume ${JSON.stringify(volume)} is not a valid volume name`,
    );
  }
  return volume;
}

export function validateVersion(version: unknown): number {
  if (!isIntegerIn(version, 0, Number.MAX_SAFE_INTEGER)) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `version ${String(version)} must be a non-negative safe integer`,
    );
  }
  return version;
}

/** Returns a plain copy of the key, so later changes by the caller cannot alter a stored path. */
export function validatePieceKey(key: PieceKey): PieceKey {
  if (typeof key !== "object" || key === null)
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", "piece key missing");
  const { volume, fileId, version, stripe, slot } = key;
  validateVolumeName(volume);
  validateFileId(fileId);
  validateVersion(version);
  if (!isIntegerIn(stripe, MANIFEST_STRIPE, STRIPE_MAX)) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `stripe ${String(stripe)} must be an integer in -1..${STRIPE_MAX}`,
    );
  }
  if (!isIntegerIn(slot, 0, SLOT_MAX)) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `slot ${String(slot)} must be an integer in 0..${SLOT_MAX}`,
    );
  }
  return { volume, fileId, version, stripe, slot };
}

export function samePieceKey(a: PieceKey, b: PieceKey): boolean {
  return (
    a.volume === b.volume &&
    a.fileId === b.fileId &&
    a.version === b.version &&
    a.stripe === b.stripe &&
    a.slot === b.slot
  );
}

/** "vol/0123…ef v3 stripe 2 slot 1", the prefix of every message about a chunk. */
export function describePieceKey(key: PieceKey): string {
  const stripe = key.stripe === MANIFEST_STRIPE ? "manifest" : `stripe ${key.stripe}`;
  return `${key.volume}/${key.fileId} v${key.version} ${stripe} slot ${key.slot}`;
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max;
}
