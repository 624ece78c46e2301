// The ReadCopies call (rpc/wire.ts): one JSON request, one JSON reply. An
// owner registers, renews, drains and releases the copies it placed on a
// holder; a reader tells an owner a stripe is hot and asks which copies
// serve a file; anyone asks a node what it holds and owns (status). Every
// request is validated here before it touches anything.
import { validateFileId } from "../core/names.ts";
import { WIDTH_MAX } from "../core/volume.ts";
import { MosaicError } from "../errors.ts";
import { validatePieceKey } from "../rpc/messages.ts";
import { isReadCopy, type PieceKey } from "../storage/piece-key.ts";
import type { CopyPhase, HeldCopy } from "./read-copy-holds.ts";

/** Most keys in one request: a file's hot stripes on one holder. */
export const KEYS_MAX = 256;
const LEASE_MAX_MS = 10 * 60_000;

export type ReadCopyRequest =
  /** Register copies about to be written here (serving), or renew them. */
  | { op: "hold"; keys: PieceKey[]; leaseMs: number }
  /** Renew registered copies and set their phase; answers each one's reads in flight (-1: not registered). */
  | { op: "renew"; keys: PieceKey[]; phase: CopyPhase; leaseMs: number }
  /** Delete copies with no read in flight (all of them with force); answers which are gone. */
  | { op: "release"; keys: PieceKey[]; force: boolean }
  /**
   * To a file's owner: a reader found every holder of this piece High. Replicas:
   * slot 0 stands for the stripe (every replica is the same piece); erasure: a data slot.
   */
  | { op: "hot"; volume: string; fileId: string; version: number; stripe: number; slot: number }
  /** To a file's owner: the copies that serve reads of the file now. */
  | { op: "record"; volume: string; fileId: string }
  | { op: "status" };

export interface RenewReply {
  inFlight: number[];
}
export interface ReleaseReply {
  released: boolean[];
}

/** The serving copies of one file version, as its owner tells readers (slot: as in the hot note). */
export interface CopyRecord {
  version: number;
  copies: { stripe: number; slot: number; node: string }[];
}

/** Read copies one node holds of a volume in one phase (the metrics' gauge, `mosaic nodes`). */
export interface HeldCount {
  volume: string;
  phase: CopyPhase;
  count: number;
}

/** What one node holds and owns: `mosaic nodes`, the metrics, the tests. */
export interface ReadCopyStatus {
  held: HeldCopy[];
  owned: OwnedCopy[];
}

/** Which piece a copy is of, and where it is. */
export interface CopyPlace {
  volume: string;
  fileId: string;
  version: number;
  stripe: number;
  /** The placed slot it copies (replicas: 0). */
  slot: number;
  node: string;
}

export interface OwnedCopy extends CopyPlace {
  phase: CopyPhase;
  inFlight: number;
}

function fail(why: string): never {
  throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `ReadCopies request: ${why}`);
}

function integer(o: Record<string, unknown>, field: string, min: number, max: number): number {
  const v = o[field];
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max)
    fail(`${field} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v as number;
}

function volumeOf(o: Record<string, unknown>): string {
  if (typeof o.volume !== "string" || o.volume.length === 0) fail("volume must be a non-empty string");
  return o.volume;
}

function copyKeys(o: Record<string, unknown>): PieceKey[] {
  const keys = o.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > KEYS_MAX)
    fail(`keys must be a list of 1 to ${KEYS_MAX} piece keys`);
  return keys.map((k) => {
    const key = validatePieceKey(k, "ReadCopies key");
    if (!isReadCopy(key) || key.stripe < 0)
      fail(`slot ${key.slot} of stripe ${key.stripe} is not a read copy`);
    return key;
  });
}

export function validateReadCopyRequest(value: unknown): ReadCopyRequest {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail("must be a JSON object");
  const o = value as Record<string, unknown>;
  switch (o.op) {
    case "hold":
      return { op: "hold", keys: copyKeys(o), leaseMs: integer(o, "leaseMs", 1, LEASE_MAX_MS) };
    case "renew": {
      if (o.phase !== "serving" && o.phase !== "draining") fail("phase must be serving or draining");
      return {
        op: "renew",
        keys: copyKeys(o),
        phase: o.phase,
        leaseMs: integer(o, "leaseMs", 1, LEASE_MAX_MS),
      };
    }
    case "release":
      if (typeof o.force !== "boolean") fail("force must be true or false");
      return { op: "release", keys: copyKeys(o), force: o.force };
    case "hot":
      return {
        op: "hot",
        volume: volumeOf(o),
        fileId: validateFileId(o.fileId),
        version: integer(o, "version", 0, Number.MAX_SAFE_INTEGER),
        stripe: integer(o, "stripe", 0, 0x7fff_ffff),
        // Absent from an agent that predates erasure copies: it noted a replicated stripe.
        slot: o.slot === undefined ? 0 : integer(o, "slot", 0, WIDTH_MAX - 1),
      };
    case "record":
      return { op: "record", volume: volumeOf(o), fileId: validateFileId(o.fileId) };
    case "status":
      return { op: "status" };
    default:
      fail(`unknown op ${JSON.stringify(o.op)} (hold, renew, release, hot, record, status)`);
  }
}

/** An owner's answer to `record`, from another agent: checked, since a reader acts on it. */
export function validateCopyRecord(value: unknown): CopyRecord {
  const bad = () =>
    new MosaicError("MOSAIC_ERR_INTERNAL", `ReadCopies record reply: ${JSON.stringify(value)}`);
  if (typeof value !== "object" || value === null) throw bad();
  const o = value as Record<string, unknown>;
  if (!Number.isSafeInteger(o.version) || !Array.isArray(o.copies)) throw bad();
  const copies = o.copies.map((c: unknown) => {
    const { stripe, slot = 0, node } = (c ?? {}) as Record<string, unknown>;
    if (!Number.isSafeInteger(stripe) || typeof node !== "string") throw bad();
    if (!Number.isSafeInteger(slot) || (slot as number) < 0 || (slot as number) >= WIDTH_MAX) throw bad();
    return { stripe: stripe as number, slot: slot as number, node };
  });
  return { version: o.version as number, copies };
}
