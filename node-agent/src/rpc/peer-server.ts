// The Peer service: what other agents ask of this one. Every message is
// validated before it touches the store; a bad one fails its own call with a
// clear status and nothing else.

import type * as grpc from "@grpc/grpc-js";
import { crc32c } from "@node-rs/crc32";
import { decodeManifest } from "../core/manifest.ts";
import { MANIFEST_STRIPE } from "../core/placement.ts";
import type { VolumeSpec } from "../core/volume.ts";
import { isMosaicError, MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { PieceKey } from "../storage/chunk-format.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import type { FileHandler } from "./file-handler.ts";
import { ForwardSessions } from "./forward-sessions.ts";
import {
  type GetPieceHeader,
  validateFileRef,
  validateForwardHeader,
  validateGetPieceRequest,
  validateKeyRequest,
  validatePutPieceHeader,
  validateVersionsRequest,
  validateVolumeRef,
} from "./messages.ts";
import { collect, splitHeader, writeAll } from "./streams.ts";
import { decodeJson, encodeJson, toServiceError } from "./wire.ts";

export interface PeerServiceDeps {
  store: ChunkStore;
  volume: (name: string) => VolumeSpec | undefined;
  files: FileHandler;
  log: Logger;
  /** A peer asked for a piece this node does not have: the rebuild pulls that file's pieces first. */
  onMissingPiece?: (key: PieceKey) => void;
  /** How long a forwarded write whose stream broke waits to be resumed (default FORWARD_RESUME_GRACE_MS). */
  forwardResumeGraceMs?: number;
  /** Temporary read copies (load/read-copies.ts); unset: ReadCopies calls are refused and reads not counted. */
  readCopies?: PeerReadCopies;
}

/** What the Peer service needs of the read copies held and owned here. */
export interface PeerReadCopies {
  /** Answers one ReadCopies request (validated there). */
  handle(request: Buffer): Promise<unknown>;
  /** A read of `key` begins: throws if it is a read copy that takes no new reads; call the result when it ends. */
  beginRead(key: PieceKey): () => void;
}

type Callback = grpc.sendUnaryData<Buffer>;

export function peerServiceHandlers(deps: PeerServiceDeps): grpc.UntypedServiceImplementation {
  const log = deps.log.child({ component: "peer-server" });
  const knownVolume = (name: string): VolumeSpec => {
    const spec = deps.volume(name);
    if (spec === undefined)
      throw new MosaicError("MOSAIC_ERR_UNKNOWN_VOLUME", `no volume named ${JSON.stringify(name)}`);
    return spec;
  };
  const checkKey = (key: PieceKey): VolumeSpec => knownVolume(key.volume);
  const forwards = new ForwardSessions({
    handle: (request, input) => deps.files.handle(request, input, { forwarded: true }),
    log,
    ...(deps.forwardResumeGraceMs === undefined ? {} : { graceMs: deps.forwardResumeGraceMs }),
  });

  const unary =
    (name: string, body: (request: Buffer) => Promise<unknown>) =>
    (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: Callback) => {
      body(call.request).then(
        (reply) => callback(null, encodeJson(reply)),
        (error) => {
          log.warn(
            { method: name, peer: call.getPeer(), err: (error as Error).message },
            "peer call refused",
          );
          callback(toServiceError(error));
        },
      );
    };

  return {
    putPiece: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: Callback) => {
      (async () => {
        const stream = await splitHeader(call, "PutPiece");
        const header = decodeJson(stream.header, "PutPiece header", validatePutPieceHeader);
        const spec = checkKey(header.key);
        const limit = header.key.stripe === MANIFEST_STRIPE ? 1024 * 1024 : spec.chunkSizeBytes;
        if (header.dataLengthBytes > limit) {
          throw new MosaicError(
            "MOSAIC_ERR_MESSAGE_TOO_LARGE",
            `piece of ${header.dataLengthBytes} bytes exceeds volume ${spec.name}'s chunk size ${limit}`,
          );
        }
        const data = await collect(stream.data, header.dataLengthBytes, "PutPiece");
        const received = data.reduce((crc, part) => crc32c(part, crc), 0);
        const length = data.reduce((n, part) => n + part.length, 0);
        if (length !== header.dataLengthBytes || received !== header.crc32c) {
          throw new MosaicError(
            "MOSAIC_ERR_BAD_REQUEST",
            `PutPiece: received ${length} bytes crc 0x${received.toString(16)}, header announced ` +
              `${header.dataLengthBytes} bytes crc 0x${header.crc32c.toString(16)}`,
          );
        }
        // A manifest copy must be a manifest: garbage here would hide the file from readers.
        if (header.key.stripe === MANIFEST_STRIPE) decodeManifest(Buffer.concat(data));
        return deps.store.put(header.key, data, received);
      })().then(
        (stored) => callback(null, encodeJson(stored)),
        (error) => {
          log.warn({ peer: call.getPeer(), err: (error as Error).message }, "PutPiece refused");
          callback(toServiceError(error));
        },
      );
    },

    getPiece: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      (async () => {
        const { key, range } = decodeJson(call.request, "GetPiece request", validateGetPieceRequest);
        checkKey(key);
        // A draining read copy is removed only once the reads it counts here have ended: sent
        // in full (finish), or cut. Ending twice is harmless.
        const ended = deps.readCopies?.beginRead(key);
        if (ended !== undefined) for (const e of ["finish", "close", "cancelled"]) call.once(e, ended);
        try {
          // A range is read and checked whole here, but only its bytes travel, with their own crc32c.
          const read =
            range === undefined
              ? deps.store.get(key).then(({ header: h, data }) => ({
                  data,
                  sent: { dataLengthBytes: h.dataLengthBytes, crc32c: h.crc32c } as GetPieceHeader,
                }))
              : // Lent bytes: gRPC copies each message into a frame of its own, so they go back once the call has ended.
                deps.store.lendRange(key, range).then(({ data, crc32c, release }) => {
                  for (const e of ["finish", "close", "error"]) call.once(e, release);
                  return { data, sent: { dataLengthBytes: data.length, crc32c, range } as GetPieceHeader };
                });
          const { data, sent } = await read.catch((error: unknown) => {
            if (isMosaicError(error, "MOSAIC_ERR_NO_SUCH_CHUNK")) deps.onMissingPiece?.(key);
            throw error;
          });
          call.write(encodeJson(sent));
          await writeAll(call, [data]);
          call.end();
        } catch (error) {
          ended?.();
          throw error;
        }
      })().catch((error) => {
        log.warn({ peer: call.getPeer(), err: (error as Error).message }, "GetPiece refused");
        call.emit("error", toServiceError(error));
      });
    },

    statPiece: unary("StatPiece", async (request) => {
      const { key } = decodeJson(request, "StatPiece request", validateKeyRequest);
      checkKey(key);
      return { header: await deps.store.stat(key) };
    }),

    deleteVersions: unary("DeleteVersions", async (request) => {
      const r = decodeJson(request, "DeleteVersions request", validateVersionsRequest);
      knownVolume(r.volume);
      const doomed =
        r.version !== undefined
          ? (v: number) => v === r.version
          : (v: number) => v < (r.belowVersion as number);
      return { freedBytes: await deps.store.deleteVersions(r.volume, r.fileId, doomed) };
    }),

    getManifest: unary("GetManifest", async (request) => {
      const ref = decodeJson(request, "GetManifest request", validateFileRef);
      knownVolume(ref.volume);
      return { manifest: await deps.files.localManifest(ref.volume, ref.fileId) };
    }),

    listManifests: unary("ListManifests", async (request) => {
      const { volume } = decodeJson(request, "ListManifests request", validateVolumeRef);
      knownVolume(volume);
      return { manifests: await deps.files.localManifests(volume) };
    }),

    usage: unary("Usage", async () => deps.store.usage()),

    readCopies: unary("ReadCopies", async (request) => {
      if (deps.readCopies === undefined)
        throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", "this agent keeps no read copies");
      return deps.readCopies.handle(request);
    }),

    // Seed 000's forward path: another agent hands over a client's write;
    // this agent serves it as a session that survives its stream breaking
    // (forward-sessions.ts) and answers (forward_response).
    forward: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      (async () => {
        const stream = await splitHeader(call, "Forward");
        const header = decodeJson(stream.header, "Forward request", validateForwardHeader);
        forwards.serve(header, call, stream.data);
      })().catch((error) => {
        log.warn({ peer: call.getPeer(), err: (error as Error).message }, "Forward refused");
        call.emit("error", toServiceError(error));
      });
    },
  };
}
