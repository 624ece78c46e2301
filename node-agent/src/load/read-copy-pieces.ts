// The agent's piece I/O with read copies (load/read-copies.ts): reads of a
// replicated stripe choose among its placed holders and the copies that
// serve it, reads of an erasure-coded data slot among its placed holder and
// that slot's copies (readHolders, file-reader.ts), and a read (whole or a
// range) of a copy held on this very node counts as in flight like one that
// came over the wire, so a drain waits for it too.
import type { FileManifest } from "../core/manifest.ts";
import { type PieceBytes, PieceIO } from "../data/pieces.ts";
import type { PieceRange } from "../rpc/messages.ts";
import type { PieceKey } from "../storage/piece-key.ts";
import type { ReadCopies } from "./read-copies.ts";
import { placedHolders, type ReadHolder } from "./read-copy-directory.ts";

export class ReadCopyPieceIO extends PieceIO {
  #copies: ReadCopies | undefined;

  /** Set once both exist (each is built with the other in view). */
  attach(copies: ReadCopies): void {
    this.#copies = copies;
  }

  /**
   * The holders a read may ask, placed first, then serving read copies.
   * Replicas: every placed holder by slot; erasure: data slot `slot`'s.
   */
  readHolders(manifest: FileManifest, stripe: number, placed: readonly string[], slot = 0): ReadHolder[] {
    return this.#copies?.holders(manifest, stripe, placed, slot) ?? placedHolders(manifest, placed, slot);
  }

  override get(node: string, key: PieceKey): Promise<PieceBytes> {
    return this.#counted(node, key, () => super.get(node, key));
  }

  override getRange(node: string, key: PieceKey, range: PieceRange): Promise<PieceBytes> {
    return this.#counted(node, key, () => super.getRange(node, key, range));
  }

  async #counted(node: string, key: PieceKey, read: () => Promise<PieceBytes>): Promise<PieceBytes> {
    if (node !== this.self || this.#copies === undefined) return read();
    const ended = this.#copies.beginRead(key);
    try {
      return await read();
    } finally {
      ended();
    }
  }
}
