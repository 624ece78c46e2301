// What an HTTP client is told when a request fails: one status per Mosaic
// error code (the table is exhaustive, so a new code cannot be forgotten),
// Retry-After where waiting helps, and a small JSON body that carries the
// Mosaic code, as the CLI and gRPC clients see it.
import { type ErrorCode, isMosaicError } from "../errors.ts";

/** Seconds a client is asked to wait when nodes are down: about detection plus a rebuild's start. */
export const RETRY_AFTER_NODES_SECONDS = 5;

interface Answer {
  status: number;
  retryAfterSeconds?: number;
}

const unavailable: Answer = { status: 503, retryAfterSeconds: RETRY_AFTER_NODES_SECONDS };

export const HTTP_STATUS_OF: Record<ErrorCode, Answer> = {
  MOSAIC_ERR_BAD_REQUEST: { status: 400 },
  MOSAIC_ERR_BAD_NAME: { status: 400 },
  MOSAIC_ERR_MESSAGE_TOO_LARGE: { status: 413 },
  MOSAIC_ERR_UNKNOWN_VOLUME: { status: 404 },
  MOSAIC_ERR_NO_SUCH_FILE: { status: 404 },
  MOSAIC_ERR_NO_SUCH_CHUNK: { status: 404 },
  // Readers route around a corrupt piece; this is the whole-file checksum failing: the server's fault.
  MOSAIC_ERR_CHUNK_CORRUPT: { status: 500 },
  // A node (not the volume) has no room: RFC 4918's Insufficient Storage.
  MOSAIC_ERR_STORE_FULL: { status: 507 },
  MOSAIC_ERR_VOLUME_FULL: { status: 413 },
  MOSAIC_ERR_NOT_ENOUGH_NODES: unavailable,
  MOSAIC_ERR_BELOW_REDUNDANCY: unavailable,
  MOSAIC_ERR_DATA_UNAVAILABLE: unavailable,
  MOSAIC_ERR_PEER_UNAVAILABLE: unavailable,
  MOSAIC_ERR_NO_CLUSTER: unavailable,
  // The file was overwritten during the read: asking again at once gets the new version.
  MOSAIC_ERR_FILE_CHANGED: { status: 503, retryAfterSeconds: 0 },
  MOSAIC_ERR_INTERNAL: { status: 500 },
};

/** A failure as the gateway answers it. HTTP-only refusals (405, 411, 416) carry a Mosaic code too. */
export class HttpError extends Error {
  override readonly name = "HttpError";
  readonly status: number;
  readonly code: ErrorCode;
  readonly headers: Record<string, string>;

  constructor(status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

export function httpErrorOf(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (isMosaicError(error)) {
    const { status, retryAfterSeconds } = HTTP_STATUS_OF[error.code];
    const headers: Record<string, string> =
      retryAfterSeconds === undefined ? {} : { "retry-after": String(retryAfterSeconds) };
    return new HttpError(status, error.code, error.message, headers);
  }
  return new HttpError(500, "MOSAIC_ERR_INTERNAL", (error as Error)?.message ?? String(error));
}

export function errorBody(error: HttpError): string {
  return `${JSON.stringify({ error: { code: error.code, status: error.status, message: error.message } })}\n`;
}
