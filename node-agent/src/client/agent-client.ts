// A client of one agent's Files service over gRPC: what the CLI, tests and
// benchmarks use. Streams both ways; nothing holds a whole file.
import * as grpc from "@grpc/grpc-js";
import type { ClusterMap } from "../core/cluster-map.ts";
import type { FileManifest } from "../core/manifest.ts";
import type { VolumeSpec } from "../core/volume.ts";
import type { PieceState } from "../data/file-service.ts";
import type { RebuildProgress } from "../data/rebuild.ts";
import { type ErrorCode, isMosaicError, MosaicError } from "../errors.ts";
import type { LoadLevel } from "../load/level.ts";
import type { HeldCount } from "../load/read-copy-messages.ts";
import type { FileRequest } from "../rpc/messages.ts";
import { awaitState, settled } from "../rpc/reconnect.ts";
import { replyBody, splitHeader, writeAll } from "../rpc/streams.ts";
import { channelOptions, decodeJson, encodeJson, FILES_SERVICE, fromServiceError } from "../rpc/wire.ts";
import { CLUSTER_TRUST } from "../tls/client-trust.ts";
import type { ChannelSecurity } from "../tls/grpc-tls.ts";

const FilesClient = grpc.makeGenericClientConstructor(FILES_SERVICE, "mosaic.v1.Files");

type Callback = (error: grpc.ServiceError | null, reply: Buffer) => void;
type RawFilesClient = grpc.Client & {
  put(callback: Callback): grpc.ClientWritableStream<Buffer>;
  get(request: Buffer): grpc.ClientReadableStream<Buffer>;
} & Record<UnaryOp, (request: Buffer, options: grpc.CallOptions, callback: Callback) => void>;
type UnaryOp = "head" | "stat" | "list" | "delete" | "cluster";

export interface ClusterInfo {
  node: string;
  map: ClusterMap;
  volumes: VolumeSpec[];
  /** The answering agent's rebuild: bytes left, rate, ETA (absent when its rebuild is off). */
  rebuild?: RebuildProgress;
  /** The answering agent's load level (seed 002): where reads go first. */
  load?: LoadLevel;
  /** Temporary read copies of hot files it holds, per volume and phase (load/read-copies.ts). */
  readCopies?: HeldCount[];
}

/** How long a put waits for a connection before it gives up, having taken nothing from its source. */
export const PUT_CONNECT_WAIT_MS = 5_000;

/** Errors after which the same write may well succeed a moment later. */
const RETRYABLE_WRITE = new Set<ErrorCode>([
  "MOSAIC_ERR_PEER_UNAVAILABLE",
  "MOSAIC_ERR_DATA_UNAVAILABLE",
  "MOSAIC_ERR_BELOW_REDUNDANCY",
]);
/** Pause before the first retry; it grows linearly with the attempt. */
const RETRY_PAUSE_MS = 250;

export class AgentClient {
  readonly address: string;
  readonly #client: RawFilesClient;

  /**
   * `security`: how to reach the agent; by default what its cluster
   * registered in this process (tls/client-trust.ts), else plain HTTP/2.
   * `node`: the agent's node id, checked against its certificate under TLS
   * (by default the id registered with the address).
   */
  constructor(address: string, options: { security?: ChannelSecurity; node?: string } = {}) {
    this.address = address;
    const security = (options.security ?? CLUSTER_TRUST).channel(options.node, address);
    this.#client = new FilesClient(address, security.credentials, {
      ...channelOptions(),
      ...security.options,
    }) as unknown as RawFilesClient;
  }

  /**
   * Stores a file from a stream of bytes; resolves once every piece and the
   * manifest are durable. Nothing is taken from `source` until the agent is
   * connected: a put that fails with MOSAIC_ERR_PEER_UNAVAILABLE before then
   * (refused, or no connection within `connectWaitMs`) leaves the source
   * whole for another agent.
   */
  put(
    volume: string,
    name: string,
    source: AsyncIterable<Buffer>,
    sizeBytes?: number,
    connectWaitMs = PUT_CONNECT_WAIT_MS,
  ): Promise<FileManifest> {
    return new Promise((resolve, reject) => {
      let ended = false;
      const call = this.#client.put((error, reply) => {
        ended = true;
        if (error) reject(fromServiceError(error, this.address));
        else resolve(decodeJson(reply, "put reply", (v) => (v as { manifest: FileManifest }).manifest));
      });
      const request: FileRequest =
        sizeBytes === undefined ? { op: "put", volume, name } : { op: "put", volume, name, sizeBytes };
      call.write(encodeJson(request));
      const fail = (error: unknown) => {
        call.cancel();
        reject(error);
      };
      this.reachable(connectWaitMs).then((connected) => {
        if (ended) return; // refused before any data: the callback has said so
        if (!connected) {
          const why = `cannot connect (refused, or no answer within ${connectWaitMs} ms)`;
          return fail(new MosaicError("MOSAIC_ERR_PEER_UNAVAILABLE", `${this.address}: ${why}`));
        }
        writeAll(call, source).then(() => call.end(), fail);
      }, fail);
    });
  }

  /**
   * put() from a source that can be read again from its start: a write that
   * fails while the cluster is still adjusting to a failure (its coordinator
   * died mid-stream, a holder went down, too few nodes answer yet) is sent
   * again, after a short pause, up to `attempts` times in all. Safe: a write
   * that fails stores nothing, and one whose reply alone was lost is stored
   * again as the next version with the same bytes.
   */
  async putRetrying(
    volume: string,
    name: string,
    source: () => AsyncIterable<Buffer>,
    options: {
      sizeBytes?: number;
      attempts?: number;
      onRetry?: (error: MosaicError, attempt: number) => void;
    } = {},
  ): Promise<FileManifest> {
    const attempts = options.attempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.put(volume, name, source(), options.sizeBytes);
      } catch (error) {
        if (attempt >= attempts || !isMosaicError(error) || !RETRYABLE_WRITE.has(error.code)) throw error;
        options.onRetry?.(error, attempt);
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS * attempt));
      }
    }
  }

  /**
   * Whether the agent is connected, or connects within `waitMs`. A refused
   * connection answers at once; an address that swallows packets costs the
   * whole wait. Never takes longer than `waitMs`.
   */
  async reachable(waitMs: number): Promise<boolean> {
    return (await awaitState(this.#client.getChannel(), waitMs, settled)) === grpc.connectivityState.READY;
  }

  /** The file's manifest, then its bytes as they arrive. */
  async get(volume: string, name: string): Promise<{ manifest: FileManifest; body: AsyncIterable<Buffer> }> {
    const call = this.#client.get(encodeJson({ op: "get", volume, name } satisfies FileRequest));
    try {
      const stream = await splitHeader(call, "get");
      const { manifest } = decodeJson(stream.header, "get reply", (v) => v as { manifest: FileManifest });
      return { manifest, body: replyBody(stream.data, call, this.address) };
    } catch (error) {
      call.cancel();
      throw fromServiceError(error, this.address);
    }
  }

  /** The file's manifest: size, version, layout. */
  async head(volume: string, name: string): Promise<FileManifest> {
    return (await this.#unary<{ manifest: FileManifest }>("head", { op: "head", volume, name })).manifest;
  }

  stat(volume: string, name: string): Promise<{ manifest: FileManifest; pieces: PieceState[] }> {
    return this.#unary("stat", { op: "stat", volume, name });
  }

  async list(volume: string, prefix?: string): Promise<FileManifest[]> {
    const request: FileRequest =
      prefix === undefined ? { op: "list", volume } : { op: "list", volume, prefix };
    return (await this.#unary<{ files: FileManifest[] }>("list", request)).files;
  }

  async delete(volume: string, name: string): Promise<FileManifest> {
    return (await this.#unary<{ manifest: FileManifest }>("delete", { op: "delete", volume, name })).manifest;
  }

  cluster(timeoutMs = 5_000): Promise<ClusterInfo> {
    return this.#unary("cluster", { op: "cluster" }, timeoutMs);
  }

  close(): void {
    this.#client.close();
  }

  #unary<T>(method: UnaryOp, request: FileRequest, timeoutMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      this.#client[method](encodeJson(request), { deadline: Date.now() + timeoutMs }, (error, reply) => {
        if (error) reject(fromServiceError(error, this.address));
        else resolve(decodeJson(reply, `${method} reply`, (v) => v as T));
      });
    });
  }
}
