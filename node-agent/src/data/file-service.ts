// The file operations an agent serves — put, get, stat, list, delete — for
// its own clients and for requests other agents forward to it. Writes of a
// file are coordinated by its owner (first live manifest holder that can be
// reached), so versions of one name are assigned in one place; a write that
// reaches any other agent is forwarded there (seed 000's forward_request /
// forward_response).
import { nodeById } from "../core/cluster-map.ts";
import { placeFileStripe } from "../core/file-placement.ts";
import { type FileManifest, newestPerFile } from "../core/manifest.ts";
import { fileIdOf } from "../core/names.ts";
import { manifestHolders } from "../core/ownership.ts";
import type { VolumeSpec } from "../core/volume.ts";
import { isMosaicError, MosaicError } from "../errors.ts";
import type { LoadLevel } from "../load/level.ts";
import type { HeldCount } from "../load/read-copy-messages.ts";
import type { FileHandler, FileReply, RequestOrigin } from "../rpc/file-handler.ts";
import type { FileRequest } from "../rpc/messages.ts";
import type { PeerClients } from "../rpc/peer-client.ts";
import { decodeJson } from "../rpc/wire.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import { formatBytes } from "../storage/format-bytes.ts";
import { KeyedMutex } from "../storage/keyed-mutex.ts";
import { type DataContext, reachableNode } from "./context.ts";
import { readManifest, writeManifest } from "./file-manifests.ts";
import { readFile, readFileRange } from "./file-reader.ts";
import { writeFile, writeManifestAround } from "./file-writer.ts";
import { readLocalManifest, readLocalManifests } from "./manifests.ts";
import type { RebuildProgress } from "./rebuild.ts";

export interface PieceState {
  stripe: number;
  slot: number;
  node: string;
  state: "ok" | "missing" | "unreachable" | "corrupt";
  detail?: string;
}

export interface FileServiceOptions {
  /** This node's rebuild progress, reported with the cluster map (`mosaic nodes`, the operator). */
  rebuildProgress?: () => RebuildProgress | undefined;
  /** This node's load level (load/meter.ts), reported with the cluster map (`mosaic nodes`). */
  loadLevel?: () => LoadLevel;
  /** The temporary read copies this node holds (load/read-copies.ts), reported likewise. */
  readCopies?: () => HeldCount[];
}

export class FileService implements FileHandler {
  readonly #ctx: DataContext;
  readonly #store: ChunkStore;
  readonly #peers: PeerClients;
  readonly #options: FileServiceOptions;
  readonly #writes = new KeyedMutex();

  constructor(ctx: DataContext, store: ChunkStore, peers: PeerClients, options: FileServiceOptions = {}) {
    this.#ctx = ctx;
    this.#store = store;
    this.#peers = peers;
    this.#options = options;
  }

  async handle(
    request: FileRequest,
    input: AsyncIterable<Buffer>,
    origin: RequestOrigin,
  ): Promise<FileReply> {
    switch (request.op) {
      case "cluster": {
        const rebuild = this.#options.rebuildProgress?.();
        const load = this.#options.loadLevel?.();
        const info = {
          node: this.#ctx.self,
          map: this.#ctx.map(),
          volumes: this.#volumes(),
          ...(load === undefined ? {} : { load }),
          readCopies: this.#options.readCopies?.() ?? [],
        };
        return { header: rebuild === undefined ? info : { ...info, rebuild } };
      }
      case "list":
        return { header: { files: await this.list(request.volume, request.prefix) } };
      case "get": {
        const manifest = await this.manifest(request.volume, request.name);
        return { header: { manifest }, body: this.#read(manifest) };
      }
      case "head":
        return { header: { manifest: await this.manifest(request.volume, request.name) } };
      case "stat": {
        const manifest = await this.manifest(request.volume, request.name);
        return { header: { manifest, pieces: await this.pieceStates(manifest) } };
      }
      case "put":
      case "delete":
        return this.#atOwner(request, input, origin);
    }
  }

  localManifest(volume: string, fileId: string): Promise<FileManifest | undefined> {
    return readLocalManifest(this.#store, volume, fileId);
  }

  localManifests(volume: string): Promise<FileManifest[]> {
    return readLocalManifests(this.#store, volume, this.#ctx.log);
  }

  /** The file as readers see it; a deleted or unknown name is NO_SUCH_FILE. */
  async manifest(volume: string, name: string): Promise<FileManifest> {
    const spec = this.#spec(volume);
    const manifest = await readManifest(this.#ctx, volume, name, spec.redundancy);
    if (manifest === undefined || manifest.deleted) {
      throw new MosaicError("MOSAIC_ERR_NO_SUCH_FILE", `no file ${JSON.stringify(name)} in volume ${volume}`);
    }
    return manifest;
  }

  /** Every live file of a volume, from every node that answers, newest version of each. */
  async list(volume: string, prefix = ""): Promise<FileManifest[]> {
    this.#spec(volume);
    const live = this.#ctx.map().nodes.filter((n) => n.state !== "out");
    const results = await Promise.allSettled(live.map((n) => this.#ctx.pieces.manifests(n.id, volume)));
    return newestPerFile(results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : [])))
      .filter((m) => !m.deleted && m.name.startsWith(prefix))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** The file's bytes, or only [start, end) of them (reading only the stripes that hold them: the HTTP gateway's Range). */
  read(manifest: FileManifest, range?: { start: number; end: number }): AsyncGenerator<Buffer> {
    return this.#read(manifest, range);
  }

  /**
   * The file's bytes. A stripe that cannot be read may mean the file was
   * overwritten meanwhile (its old pieces are garbage once the new version
   * is durable): then the reader is told so, not that nodes are down.
   */
  async *#read(manifest: FileManifest, range?: { start: number; end: number }): AsyncGenerator<Buffer> {
    try {
      yield* range === undefined
        ? readFile(this.#ctx, manifest)
        : readFileRange(this.#ctx, manifest, range.start, range.end);
    } catch (error) {
      if (!isMosaicError(error, "MOSAIC_ERR_DATA_UNAVAILABLE")) throw error;
      const now = await readManifest(this.#ctx, manifest.volume, manifest.name, manifest.redundancy).catch(
        () => undefined,
      );
      if (now === undefined || now.version === manifest.version) throw error;
      throw new MosaicError(
        "MOSAIC_ERR_FILE_CHANGED",
        `${manifest.volume}/${manifest.name} was ${now.deleted ? "deleted" : "overwritten"} while being read ` +
          `(version ${manifest.version} → ${now.version}); read it again`,
        { cause: error },
      );
    }
  }

  /** Where every piece of a file is and whether its holder has it at the file's version. */
  async pieceStates(manifest: FileManifest): Promise<PieceState[]> {
    const states: PieceState[] = [];
    for (let stripe = 0; stripe < manifest.stripes; stripe++) {
      const nodes = placeFileStripe(this.#ctx.map(), manifest, stripe);
      const checks = nodes.map(async (node, slot): Promise<PieceState> => {
        const key = {
          volume: manifest.volume,
          fileId: manifest.fileId,
          version: manifest.version,
          stripe,
          slot,
        };
        try {
          const header = await this.#ctx.pieces.stat(node, key);
          return { stripe, slot, node, state: header === undefined ? "missing" : "ok" };
        } catch (error) {
          const e = error as MosaicError;
          const state = e.code === "MOSAIC_ERR_CHUNK_CORRUPT" ? "corrupt" : "unreachable";
          return { stripe, slot, node, state, detail: e.message };
        }
      });
      states.push(...(await Promise.all(checks)));
    }
    return states;
  }

  async #atOwner(
    request: Extract<FileRequest, { op: "put" | "delete" }>,
    input: AsyncIterable<Buffer>,
    origin: RequestOrigin,
  ): Promise<FileReply> {
    const spec = this.#spec(request.volume);
    const fileId = fileIdOf(spec.name, request.name);
    const owner = origin.forwarded ? this.#ctx.self : await this.#ownerOf(spec, fileId);
    // A forwarded request is served here even if our maps disagree: never forward twice.
    if (owner !== this.#ctx.self && !origin.forwarded) {
      this.#ctx.log.debug(
        { op: request.op, volume: spec.name, file: request.name, owner },
        "forwarding to owner",
      );
      const reply = await this.#peers.forwardRequest(owner, request, input, origin.clientGone);
      return { header: decodeJson(reply.header, "forwarded reply", (v) => v) };
    }
    return this.#writes.run(fileId, async () => {
      const previous = await readManifest(this.#ctx, spec.name, request.name, spec.redundancy).catch(
        (error: unknown) => {
          // A put stays correct without the previous manifest (its version follows the clock, below); a
          // delete must know the file exists, so with every holder of its manifest down it fails.
          if (request.op === "put" && isMosaicError(error, "MOSAIC_ERR_DATA_UNAVAILABLE")) return undefined;
          throw error;
        },
      );
      // Versions grow by one per write, and never fall behind the clock, so
      // a coordinator that missed a write still cannot reuse a version.
      const version = Math.max((previous?.version ?? 0) + 1, Date.now() * 1000);
      const manifest =
        request.op === "put"
          ? await writeFile(this.#ctx, {
              spec,
              name: request.name,
              version,
              sizeBytes: request.sizeBytes,
              limitBytes: await this.#roomFor(spec, request, previous),
              source: input,
            })
          : await this.#tombstone(spec, request.name, previous, version);
      this.#collectGarbage(spec.name, fileId, manifest.version);
      return { header: { manifest } };
    });
  }

  /**
   * The node that coordinates writes of a file: its first manifest holder
   * that is up and can be reached. One that cannot is passed over, as the
   * write will go around it anyway: a dead owner must not stop writes. With
   * none reachable, this node coordinates (and the write finds out what it
   * can place).
   */
  async #ownerOf(spec: VolumeSpec, fileId: string): Promise<string> {
    const map = this.#ctx.map();
    for (const node of manifestHolders(map, spec.name, fileId, spec.redundancy)) {
      if (nodeById(map, node)?.state !== "up") continue;
      if (node === this.#ctx.self) return node;
      if (reachableNode(this.#ctx, map, node) && (await this.#peers.reachable(node))) return node;
    }
    return this.#ctx.self;
  }

  /**
   * Rewrites the manifest of `expected`'s version with `change` applied and
   * its revision bumped (the rebuild clears writtenAround once the pieces are
   * home), unless the file has changed since: then nothing, and undefined.
   * Under the file's write lock, so it never races a write of the file here.
   */
  async reviseManifest(
    expected: FileManifest,
    change: (current: FileManifest) => FileManifest,
  ): Promise<FileManifest | undefined> {
    const spec = this.#spec(expected.volume);
    return this.#writes.run(expected.fileId, async () => {
      const current = await readManifest(this.#ctx, spec.name, expected.name, spec.redundancy);
      if (current === undefined || current.version !== expected.version) return undefined;
      if ((current.revision ?? 0) !== (expected.revision ?? 0)) return undefined;
      const revised = { ...change(current), revision: (current.revision ?? 0) + 1 };
      await writeManifest(this.#ctx, revised);
      return revised;
    });
  }

  /** Bytes this write may add to the volume: its capacity less what its other files hold. */
  async #roomFor(
    spec: VolumeSpec,
    request: Extract<FileRequest, { op: "put" }>,
    previous: FileManifest | undefined,
  ): Promise<number> {
    const files = await this.list(spec.name);
    const replacedBytes = previous?.deleted ? 0 : (previous?.sizeBytes ?? 0);
    const usedBytes = files.reduce((sum, f) => sum + f.sizeBytes, 0) - replacedBytes;
    const roomBytes = Math.max(0, spec.capacityBytes - usedBytes);
    if (request.sizeBytes !== undefined && request.sizeBytes > roomBytes) {
      throw volumeFull(spec, usedBytes, request.sizeBytes);
    }
    return roomBytes;
  }

  async #tombstone(
    spec: VolumeSpec,
    name: string,
    previous: FileManifest | undefined,
    version: number,
  ): Promise<FileManifest> {
    if (previous === undefined || previous.deleted) {
      throw new MosaicError(
        "MOSAIC_ERR_NO_SUCH_FILE",
        `no file ${JSON.stringify(name)} in volume ${spec.name}`,
      );
    }
    const { writtenAround: _placed, revision: _revised, ...file } = previous;
    const tombstone: FileManifest = {
      ...file,
      version,
      sizeBytes: 0,
      stripes: 0,
      crc32c: 0,
      createdAt: new Date().toISOString(),
      writer: this.#ctx.self,
      deleted: true,
    };
    await writeManifestAround(this.#ctx, spec, tombstone);
    this.#ctx.log.info({ volume: spec.name, file: name, version }, "file deleted");
    return tombstone;
  }

  /** Older versions are garbage once a newer manifest is durable; removal is best effort and logged. */
  #collectGarbage(volume: string, fileId: string, version: number): void {
    const live = this.#ctx.map().nodes.filter((n) => n.state === "up");
    Promise.allSettled(
      live.map((n) => this.#ctx.pieces.deleteVersions(n.id, { volume, fileId, belowVersion: version })),
    ).then((results) => {
      const failed = results.filter((r) => r.status === "rejected").length;
      if (failed > 0) this.#ctx.log.warn({ volume, fileId, failed }, "old versions not removed everywhere");
    });
  }

  #spec(volume: string): VolumeSpec {
    const spec = this.#ctx.volume(volume);
    if (spec === undefined) {
      throw new MosaicError(
        "MOSAIC_ERR_UNKNOWN_VOLUME",
        `no volume named ${JSON.stringify(volume)} (volumes: ${
          this.#volumes()
            .map((v) => v.name)
            .join(", ") || "none"
        })`,
      );
    }
    return spec;
  }

  #volumes(): VolumeSpec[] {
    return this.#ctx.volumes();
  }
}

function volumeFull(spec: VolumeSpec, usedBytes: number, wantedBytes: number): MosaicError {
  return new MosaicError(
    "MOSAIC_ERR_VOLUME_FULL",
    `volume ${spec.name} is full: ${formatBytes(usedBytes)} of ${formatBytes(spec.capacityBytes)} used, ` +
      `this write needs ${formatBytes(wantedBytes)}`,
  );
}
