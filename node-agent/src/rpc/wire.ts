// The wire between agents, and between a client and an agent: gRPC with raw
// Buffer (identity) serializers. Every stream starts with one JSON header
// message; on data streams every later message is raw bytes, at most
// DATA_MESSAGE_BYTES each. Unary calls carry one JSON message each way.
//
// Why JSON headers and not protobuf: a header travels once per piece (≥ 64
// KiB of data), so its encoding cost is noise, and JSON needs no code
// generation under erasable TypeScript. Data never goes through JSON.
import * as grpc from "@grpc/grpc-js";
import { type ErrorCode, isErrorCode, MosaicError } from "../errors.ts";

/** Largest raw data message: 1 MiB keeps HTTP/2 framing cheap and memory per stream bounded. */
export const DATA_MESSAGE_BYTES = 1024 * 1024;
/** Largest JSON header or unary message. */
export const HEADER_MAX_BYTES = 64 * 1024;
/** gRPC refuses anything larger before our code sees it. */
export const MESSAGE_MAX_BYTES = DATA_MESSAGE_BYTES + HEADER_MAX_BYTES;
/** Receive window per stream and connection: bulk data needs more than HTTP/2's 64 KiB default. */
export const FLOW_CONTROL_WINDOW_BYTES = 8 * 1024 * 1024;
/** Longest pause between gRPC's attempts to connect to a peer that refused (or could not be reached). */
export const MAX_RECONNECT_BACKOFF_MS = 2_000;

const raw = {
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};

function method(path: string, requestStream: boolean, responseStream: boolean) {
  return { path, requestStream, responseStream, ...raw };
}

/** Agent ↔ agent: pieces, manifests and forwarded client requests. */
export const PEER_SERVICE = {
  putPiece: method("/mosaic.v1.Peer/PutPiece", true, false),
  getPiece: method("/mosaic.v1.Peer/GetPiece", false, true),
  statPiece: method("/mosaic.v1.Peer/StatPiece", false, false),
  deleteVersions: method("/mosaic.v1.Peer/DeleteVersions", false, false),
  getManifest: method("/mosaic.v1.Peer/GetManifest", false, false),
  listManifests: method("/mosaic.v1.Peer/ListManifests", false, false),
  usage: method("/mosaic.v1.Peer/Usage", false, false),
  /** Temporary read copies of hot stripes (load/read-copies.ts): one JSON request, one JSON reply. */
  readCopies: method("/mosaic.v1.Peer/ReadCopies", false, false),
  forward: method("/mosaic.v1.Peer/Forward", true, true),
} satisfies grpc.ServiceDefinition;

/** Client → agent: whole files. */
export const FILES_SERVICE = {
  put: method("/mosaic.v1.Files/Put", true, false),
  get: method("/mosaic.v1.Files/Get", false, true),
  head: method("/mosaic.v1.Files/Head", false, false),
  stat: method("/mosaic.v1.Files/Stat", false, false),
  list: method("/mosaic.v1.Files/List", false, false),
  delete: method("/mosaic.v1.Files/Delete", false, false),
  cluster: method("/mosaic.v1.Files/Cluster", false, false),
} satisfies grpc.ServiceDefinition;

export function channelOptions(): grpc.ChannelOptions {
  return {
    "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
    "grpc.max_receive_message_length": MESSAGE_MAX_BYTES,
    "grpc.max_send_message_length": MESSAGE_MAX_BYTES,
    // One connection per client object: each channel (NIC) gets its own.
    "grpc.use_local_subchannel_pool": 1,
    // A restarted peer is found again within seconds, not grpc's default two minutes.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": MAX_RECONNECT_BACKOFF_MS,
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
  };
}

export function serverOptions(): grpc.ServerOptions {
  return {
    "grpc.max_receive_message_length": MESSAGE_MAX_BYTES,
    "grpc.max_send_message_length": MESSAGE_MAX_BYTES,
    // A caller behind a dead NIC sends nothing, not even a reset: pings find
    // its connection dead, so its calls end (a forward's session starts its
    // resume grace) instead of hanging for TCP's 15 minutes.
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
  };
}

/**
 * grpc-js offers no option for the server's receive window, so data sent
 * client → server (puts) would crawl through 64 KiB windows. Raise it on each
 * new HTTP/2 session. Measured on loopback: +15–30% on client-streaming puts.
 */
export function raiseServerReceiveWindow(server: grpc.Server): boolean {
  const servers = (server as unknown as { http2Servers?: Map<unknown, unknown> }).http2Servers;
  if (!(servers instanceof Map)) return false;
  for (const http2Server of servers.keys()) {
    (http2Server as import("node:http2").Http2Server).on("session", (session) => {
      session.settings({ initialWindowSize: FLOW_CONTROL_WINDOW_BYTES });
      session.setLocalWindowSize(2 * FLOW_CONTROL_WINDOW_BYTES);
    });
  }
  return true;
}

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

/** Parses an untrusted JSON message; anything malformed is a clear BAD_REQUEST. */
export function decodeJson<T>(message: unknown, what: string, validate: (value: unknown) => T): T {
  if (!Buffer.isBuffer(message)) throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `${what}: expected bytes`);
  if (message.length > HEADER_MAX_BYTES) {
    throw new MosaicError(
      "MOSAIC_ERR_MESSAGE_TOO_LARGE",
      `${what}: header of ${message.length} bytes exceeds ${HEADER_MAX_BYTES}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(message.toString("utf8"));
  } catch {
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `${what}: not a JSON header (${message.length} bytes)`);
  }
  return validate(value);
}

const CODE_KEY = "mosaic-code";

/** A MosaicError (or anything thrown) as a gRPC status the other side turns back into the same error. */
export function toServiceError(error: unknown): Partial<grpc.ServiceError> {
  const e =
    error instanceof MosaicError
      ? error
      : new MosaicError("MOSAIC_ERR_INTERNAL", (error as Error)?.message ?? String(error), { cause: error });
  const metadata = new grpc.Metadata();
  metadata.set(CODE_KEY, e.code);
  return { code: e.grpcStatus, details: e.message, metadata };
}

/** A gRPC error as the MosaicError it was raised as; transport failures name the peer. */
export function fromServiceError(error: unknown, peer: string): MosaicError {
  if (error instanceof MosaicError) return error;
  const e = error as Partial<grpc.ServiceError>;
  const code = e.metadata?.get(CODE_KEY)[0];
  if (isErrorCode(code)) return new MosaicError(code, e.details ?? "", { cause: error });
  const byStatus: Partial<Record<grpc.status, ErrorCode>> = {
    [grpc.status.UNAVAILABLE]: "MOSAIC_ERR_PEER_UNAVAILABLE",
    [grpc.status.DEADLINE_EXCEEDED]: "MOSAIC_ERR_PEER_UNAVAILABLE",
    [grpc.status.CANCELLED]: "MOSAIC_ERR_PEER_UNAVAILABLE",
    [grpc.status.RESOURCE_EXHAUSTED]: "MOSAIC_ERR_MESSAGE_TOO_LARGE",
  };
  const mapped = e.code === undefined ? undefined : byStatus[e.code];
  return new MosaicError(
    mapped ?? "MOSAIC_ERR_INTERNAL",
    `${peer}: ${tidyTransportDetails(e.details || e.message || String(error))}`,
    { cause: error },
  );
}

/**
 * Whether a call failed on its way (connection refused, reset or cut,
 * cancelled, out of time) rather than by the other side's verdict, which
 * always carries a mosaic-code.
 */
export function isTransportFailure(error: unknown): boolean {
  if (error instanceof MosaicError || typeof error !== "object" || error === null) return false;
  const e = error as Partial<grpc.ServiceError>;
  if ((e.metadata?.get(CODE_KEY).length ?? 0) > 0) return false;
  return (
    e.code === grpc.status.UNAVAILABLE ||
    e.code === grpc.status.CANCELLED ||
    e.code === grpc.status.DEADLINE_EXCEEDED
  );
}

const CONNECT_ERRORS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "connection timed out",
};

/** grpc-js's connection boilerplate, anywhere in a message, reduced to what happened ("connection refused"). */
export function tidyTransportDetails(text: string): string {
  return text
    .replace(
      /No connection established\. Last error: (?:Error: )?connect (E[A-Z]+) \S+?\.?(?=\s|$)/g,
      (_, code: string) => CONNECT_ERRORS[code] ?? code,
    )
    .replace(/\s*Resolution note:\s*/g, " ")
    .replace(/ ([;)])/g, "$1")
    .trim();
}
