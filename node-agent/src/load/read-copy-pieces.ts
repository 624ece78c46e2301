// The agent's piece I/O with read copies (load/read-copies.ts): reads of a
// replicated stripe choose among its placed holders and the copies that
// serve it (readHolders, file-reader.ts), and a read of a copy held on this
// very node counts as in flight like one that came over the wire, so a
// drain waits for it too.
import type { FileManifest } from "../core/manifest.ts";
import { PieceIO } from "../data/pieces.ts";
import type { PieceKey } from "../storage/piece-key.ts";
import type { ReadCopies } from "./read-copies.ts";
import type { ReadHolder } from "./read-copy-directory.ts";

export class ReadCopyPieceIO extends PieceIO {
  #copies: ReadCopies | undefined;

  /** Set once both exist (each is built with the other in view). */
  attach(copies: ReadCopies): void {
    this.#copies = copies;
  }

  /** The holders a read of `stripe` may ask: `placed` by slot, then its serving read copies. */
  readHolders(manifest: FileManifest, stripe: number, placed: readonly string[]): ReadHolder[] {
    return this.#copies?.holders(manifest, stripe, placed) ?? placed.map((node, slot) => ({ node, slot }));
  }

  override async get(node: string, key: PieceKey): Promise<Buffer[]> {
    if (node !== this.self || this.#copies === undefined) return super.get(node, key);
    const ended = this.#copies.beginRead(key);
    try {
      return await super.get(node, key);
    } finally {
      ended();
    }
  }
}
