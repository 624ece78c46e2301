// Piece I/O addressed by node id: this node's own pieces go straight to its
// store, everyone else's over gRPC. The file layer never cares which. It
// also says which holder of a piece to ask first by their load levels
// (load/holder-choice.ts), so a hot piece's reads spread over its holders.
import { crc32c } from "@node-rs/crc32";
import type { FileManifest } from "../core/manifest.ts";
import { isMosaicError } from "../errors.ts";
import { rankByLoad } from "../load/holder-choice.ts";
import type { LoadLevel } from "../load/level.ts";
import type { Logger } from "../log.ts";
import type { PieceRange, VersionsRequest } from "../rpc/messages.ts";
import type { PeerClients } from "../rpc/peer-client.ts";
import type { ChunkHeader, PieceKey } from "../storage/chunk-format.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import { readLocalManifest, readLocalManifests } from "./manifests.ts";

/**
 * A piece's bytes, or a range's, with their crc32c: checked by whoever read
 * them (the local store, or the reader against the holder's announcement),
 * so a whole-file check can combine these instead of reading every byte
 * again (file-reader.ts).
 */
export interface PieceBytes {
  data: Buffer[];
  crc32c: number;
}

export function pieceName(key: PieceKey): string {
  return `${key.volume}/${key.fileId} v${key.version} stripe ${key.stripe} slot ${key.slot}`;
}

export class PieceIO {
  readonly self: string;
  readonly #store: ChunkStore;
  readonly #peers: PeerClients;
  readonly #log: Logger;

  readonly #onMissing: ((key: PieceKey) => void) | undefined;
  readonly #loadOf: (node: string) => LoadLevel;
  /** Advances with every choice among holders: the round-robin among Medium (or all High) ones. */
  #turn = 0;

  /**
   * `onMissing`: a read found a piece of this node's absent (the rebuild
   * pulls its file first). `loadOf`: a node's load level (this node's own
   * included); unset, every holder counts as Low and the caller's order stands.
   */
  constructor(
    self: string,
    store: ChunkStore,
    peers: PeerClients,
    log: Logger,
    onMissing?: (key: PieceKey) => void,
    loadOf?: (node: string) => LoadLevel,
  ) {
    this.self = self;
    this.#store = store;
    this.#peers = peers;
    this.#log = log.child({ component: "pieces" });
    this.#onMissing = onMissing;
    this.#loadOf = loadOf ?? (() => "Low");
  }

  /**
   * A stripe's `slots` (held by `nodes[slot]`, in the reader's order of
   * preference, all likely to answer) in the order to ask them by their
   * holders' load: a Low holder until it turns Medium, then round-robin
   * among Medium ones, a High one only when all are High. Replicas: ask the
   * first, then the next; erasure: fetch the first k.
   */
  rankByLoad(nodes: readonly string[], slots: readonly number[]): number[] {
    return rankByLoad(slots, (slot) => this.#loadOf(nodes[slot] as string), this.#turn++);
  }

  async put(node: string, key: PieceKey, data: Buffer[]): Promise<void> {
    if (node === this.self) {
      await this.#store.put(key, data);
      return;
    }
    const dataLengthBytes = data.reduce((n, part) => n + part.length, 0);
    const crc = data.reduce((c, part) => crc32c(part, c), 0);
    await this.#peers.putPiece(node, { key, dataLengthBytes, crc32c: crc }, data);
  }

  async get(node: string, key: PieceKey): Promise<PieceBytes> {
    if (node !== this.self) return this.#peers.getPiece(node, key);
    return this.#local(key, async () => {
      const { header, data } = await this.#store.get(key);
      return { data, crc32c: header.crc32c };
    });
  }

  /**
   * Bytes `range` of a piece. Its holder reads and checks the whole piece
   * (a flipped bit anywhere in it fails the read, as get() does) but keeps,
   * or sends, only the range: a reader that wants part of a piece moves that
   * part alone.
   */
  async getRange(node: string, key: PieceKey, range: PieceRange): Promise<PieceBytes> {
    if (node !== this.self) return this.#peers.getPiece(node, key, range);
    return this.#local(key, () => this.#store.getRange(key, range));
  }

  /** A read of this node's own piece: corruption is logged, a missing piece reported to onMissing. */
  async #local(key: PieceKey, read: () => Promise<{ data: Buffer; crc32c: number }>): Promise<PieceBytes> {
    try {
      const { data, crc32c } = await read();
      return { data: [data], crc32c };
    } catch (error) {
      if (isMosaicError(error, "MOSAIC_ERR_CHUNK_CORRUPT")) {
        this.#log.warn({ piece: pieceName(key), err: error.message }, "corrupt piece found on read");
      } else if (isMosaicError(error, "MOSAIC_ERR_NO_SUCH_CHUNK")) {
        this.#onMissing?.(key);
      }
      throw error;
    }
  }

  /** Whether `node` answers (this node always does); see PeerClients.reachable. */
  reachable(node: string, patienceMs = 0): Promise<boolean> {
    return node === this.self ? Promise.resolve(true) : this.#peers.reachable(node, patienceMs);
  }

  stat(node: string, key: PieceKey): Promise<ChunkHeader | undefined> {
    return node === this.self ? this.#store.stat(key) : this.#peers.statPiece(node, key);
  }

  async deleteVersions(node: string, request: VersionsRequest): Promise<number> {
    if (node !== this.self) return (await this.#peers.deleteVersions(node, request)).freedBytes;
    const doomed =
      request.version !== undefined
        ? (v: number) => v === request.version
        : (v: number) => v < (request.belowVersion ?? 0);
    return this.#store.deleteVersions(request.volume, request.fileId, doomed);
  }

  manifest(node: string, volume: string, fileId: string): Promise<FileManifest | undefined> {
    return node === this.self
      ? readLocalManifest(this.#store, volume, fileId)
      : this.#peers.getManifest(node, { volume, fileId });
  }

  manifests(node: string, volume: string): Promise<FileManifest[]> {
    return node === this.self
      ? readLocalManifests(this.#store, volume, this.#log)
      : this.#peers.listManifests(node, volume);
  }
}
