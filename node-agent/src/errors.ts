// The one catalogue of Mosaic errors. Every code is stable, documented in
// docs/errors.md (a test checks), and maps to one gRPC status so that an
// error raised on one agent arrives on another, or in the CLI, intact.
import { status as GrpcStatus } from "@grpc/grpc-js";

export const ErrorCodes = {
  MOSAIC_ERR_BAD_REQUEST: GrpcStatus.INVALID_ARGUMENT,
  MOSAIC_ERR_BAD_NAME: GrpcStatus.INVALID_ARGUMENT,
  MOSAIC_ERR_MESSAGE_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  MOSAIC_ERR_UNKNOWN_VOLUME: GrpcStatus.NOT_FOUND,
  MOSAIC_ERR_NO_SUCH_FILE: GrpcStatus.NOT_FOUND,
  MOSAIC_ERR_NO_SUCH_CHUNK: GrpcStatus.NOT_FOUND,
  MOSAIC_ERR_CHUNK_CORRUPT: GrpcStatus.DATA_LOSS,
  MOSAIC_ERR_STORE_FULL: GrpcStatus.RESOURCE_EXHAUSTED,
  MOSAIC_ERR_VOLUME_FULL: GrpcStatus.RESOURCE_EXHAUSTED,
  MOSAIC_ERR_NOT_ENOUGH_NODES: GrpcStatus.UNAVAILABLE,
  MOSAIC_ERR_BELOW_REDUNDANCY: GrpcStatus.UNAVAILABLE,
  MOSAIC_ERR_DATA_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  MOSAIC_ERR_PEER_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  MOSAIC_ERR_FILE_CHANGED: GrpcStatus.ABORTED,
  MOSAIC_ERR_NO_CLUSTER: GrpcStatus.UNAVAILABLE,
  MOSAIC_ERR_INTERNAL: GrpcStatus.INTERNAL,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class MosaicError extends Error {
  override readonly name = "MosaicError";
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  get grpcStatus(): GrpcStatus {
    return ErrorCodes[this.code];
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ErrorCodes, value);
}

export function isMosaicError(error: unknown, code?: ErrorCode): error is MosaicError {
  return error instanceof MosaicError && (code === undefined || error.code === code);
}
