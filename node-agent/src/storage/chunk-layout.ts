// Where chunks live under a store's directory:
//   <root>/volumes/<volume>/<fileId[0:2]>/<fileId>/v<version>/<stripe>.<slot>.chunk
//   (a manifest copy is manifest.<slot>.chunk), temp files in <root>/tmp/.
// Paths are built only from validated fields, so none can leave the root.
import { join } from "node:path";
import { validateFileId } from "../core/names.ts";
import {
  MANIFEST_STRIPE,
  type PieceKey,
  SLOT_MAX,
  STRIPE_MAX,
  validatePieceKey,
  validateVersion,
  validateVolumeName,
} from "./piece-key.ts";

const VERSION_DIR = /^v(0|[1-9][0-9]{0,15})$/;
const PIECE_FILE = /^(manifest|0|[1-9][0-9]{0,9})\.(0|[1-9][0-9]{0,4})\.chunk$/;
export const FILE_ID_DIR = /^[0-9a-f]{32}$/;

export class ChunkLayout {
  readonly root: string;
  readonly volumesDir: string;
  readonly tmpDir: string;

  constructor(root: string) {
    this.root = root;
    this.volumesDir = join(root, "volumes");
    this.tmpDir = join(root, "tmp");
  }

  volumeDir(volume: string): string {
    return join(this.volumesDir, validateVolumeName(volume));
  }

  fileDir(volume: string, fileId: string): string {
    validateFileId(fileId);
    return join(this.volumeDir(volume), fileId.slice(0, 2), fileId);
  }

  versionDir(volume: string, fileId: string, version: number): string {
    return join(this.fileDir(volume, fileId), `v${validateVersion(version)}`);
  }

  chunkPath(key: PieceKey): string {
    const k = validatePieceKey(key);
    return join(this.versionDir(k.volume, k.fileId, k.version), pieceFileName(k.stripe, k.slot));
  }
}

export function pieceFileName(stripe: number, slot: number): string {
  return `${stripe === MANIFEST_STRIPE ? "manifest" : stripe}.${slot}.chunk`;
}

/** The stripe and slot a chunk file name stands for; undefined for any other name. */
export function parsePieceFileName(name: string): { stripe: number; slot: number } | undefined {
  const match = PIECE_FILE.exec(name);
  if (match === null) return undefined;
  const [, stripeText = "", slotText = ""] = match;
  const stripe = stripeText === "manifest" ? MANIFEST_STRIPE : Number(stripeText);
  const slot = Number(slotText);
  if (stripe > STRIPE_MAX || slot > SLOT_MAX) return undefined;
  return { stripe, slot };
}

export function parseVersionDirName(name: string): number | undefined {
  const match = VERSION_DIR.exec(name);
  if (match === null) return undefined;
  const version = Number(match[1]);
  return Number.isSafeInteger(version) ? version : undefined;
}
