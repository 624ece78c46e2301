// Every message that crosses the wire, with the validator that turns an
// untrusted JSON value into it. A validator names the first bad field.
import { validateFileId, validateFileName } from "../core/names.ts";
import { MosaicError } from "../errors.ts";
import type { PieceKey } from "../storage/chunk-format.ts";

export type FileRequest =
  | { op: "put"; volume: string; name: string; sizeBytes?: number }
  | { op: "get"; volume: string; name: string }
  | { op: "head"; volume: string; name: string }
  | { op: "stat"; volume: string; name: string }
  | { op: "list"; volume: string; prefix?: string }
  | { op: "delete"; volume: string; name: string }
  | { op: "cluster" };

export type FileOp = FileRequest["op"];

export interface PutPieceHeader {
  key: PieceKey;
  dataLengthBytes: number;
  /** crc32c computed by the writer: the holder checks it before storing, so the wire is covered too. */
  crc32c: number;
}

/** Bytes [offset, offset + length) of a piece. */
export interface PieceRange {
  offset: number;
  length: number;
}

/** A GetPiece call: the whole piece, or with `range` only those bytes of it (the holder still checks it whole). */
export interface GetPieceRequest {
  key: PieceKey;
  range?: PieceRange;
}

/**
 * What a GetPiece stream carries: `dataLengthBytes` bytes whose crc32c is
 * `crc32c`. With `range`, they are that range of the piece (the holder echoes
 * the range it served); without it, the whole piece.
 */
export interface GetPieceHeader {
  dataLengthBytes: number;
  crc32c: number;
  range?: PieceRange;
}

export interface VersionsRequest {
  volume: string;
  fileId: string;
  /** Delete every version below this one (garbage after a newer write). */
  belowVersion?: number;
  /** Delete exactly this version (an aborted write). */
  version?: number;
}

function fail(what: string, why: string): never {
  throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `${what}: ${why}`);
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    fail(what, "must be a JSON object");
  return value as Record<string, unknown>;
}

function string(o: Record<string, unknown>, field: string, what: string): string {
  const v = o[field];
  if (typeof v !== "string" || v.length === 0) fail(what, `${field} must be a non-empty string`);
  return v;
}

function integer(o: Record<string, unknown>, field: string, what: string, min: number, max: number): number {
  const v = o[field];
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) {
    fail(what, `${field} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v as number;
}

function optionalInteger(o: Record<string, unknown>, field: string, what: string, min: number, max: number) {
  return o[field] === undefined ? undefined : integer(o, field, what, min, max);
}

const U32 = 0xffff_ffff;

export function validatePieceKey(value: unknown, what = "piece key"): PieceKey {
  const o = object(value, what);
  return {
    volume: string(o, "volume", what),
    fileId: validateFileId(o.fileId),
    version: integer(o, "version", what, 0, Number.MAX_SAFE_INTEGER),
    stripe: integer(o, "stripe", what, -1, 0x7fff_ffff),
    slot: integer(o, "slot", what, 0, 0xffff),
  };
}

export function validatePutPieceHeader(value: unknown): PutPieceHeader {
  const o = object(value, "PutPiece header");
  return {
    key: validatePieceKey(o.key),
    dataLengthBytes: integer(o, "dataLengthBytes", "PutPiece header", 0, U32),
    crc32c: integer(o, "crc32c", "PutPiece header", 0, U32),
  };
}

export function validateGetPieceHeader(value: unknown): GetPieceHeader {
  const o = object(value, "GetPiece header");
  const header: GetPieceHeader = {
    dataLengthBytes: integer(o, "dataLengthBytes", "GetPiece header", 0, U32),
    crc32c: integer(o, "crc32c", "GetPiece header", 0, U32),
  };
  if (o.range !== undefined) header.range = validatePieceRange(o.range, "GetPiece header range");
  return header;
}

export function validateGetPieceRequest(value: unknown): GetPieceRequest {
  const o = object(value, "GetPiece request");
  const request: GetPieceRequest = { key: validatePieceKey(o.key) };
  if (o.range !== undefined) request.range = validatePieceRange(o.range, "GetPiece request range");
  return request;
}

/** A non-empty range within a piece (a piece holds at most 2^32 - 1 bytes). */
export function validatePieceRange(value: unknown, what = "piece range"): PieceRange {
  const o = object(value, what);
  const offset = integer(o, "offset", what, 0, U32 - 1);
  const length = integer(o, "length", what, 1, U32 - offset);
  return { offset, length };
}

export function validateKeyRequest(value: unknown): { key: PieceKey } {
  return { key: validatePieceKey(object(value, "request").key) };
}

export function validateFileRef(value: unknown): { volume: string; fileId: string } {
  const o = object(value, "request");
  return { volume: string(o, "volume", "request"), fileId: validateFileId(o.fileId) };
}

export function validateVolumeRef(value: unknown): { volume: string } {
  return { volume: string(object(value, "request"), "volume", "request") };
}

export function validateVersionsRequest(value: unknown): VersionsRequest {
  const o = object(value, "DeleteVersions request");
  const request: VersionsRequest = { ...validateFileRef(o) };
  const below = optionalInteger(o, "belowVersion", "DeleteVersions request", 0, Number.MAX_SAFE_INTEGER);
  const exact = optionalInteger(o, "version", "DeleteVersions request", 0, Number.MAX_SAFE_INTEGER);
  if ((below === undefined) === (exact === undefined))
    fail("DeleteVersions request", "give belowVersion or version");
  if (below !== undefined) request.belowVersion = below;
  if (exact !== undefined) request.version = exact;
  return request;
}

export function validateFileRequest(value: unknown): FileRequest {
  const o = object(value, "file request");
  const what = `file request ${JSON.stringify(o.op)}`;
  switch (o.op) {
    case "cluster":
      return { op: "cluster" };
    case "list": {
      const prefix = o.prefix === undefined ? undefined : string(o, "prefix", what);
      return prefix === undefined
        ? { op: "list", volume: string(o, "volume", what) }
        : { op: "list", volume: string(o, "volume", what), prefix };
    }
    case "put": {
      const sizeBytes = optionalInteger(o, "sizeBytes", what, 0, Number.MAX_SAFE_INTEGER);
      const base = { op: "put" as const, volume: string(o, "volume", what), name: validateFileName(o.name) };
      return sizeBytes === undefined ? base : { ...base, sizeBytes };
    }
    case "get":
    case "head":
    case "stat":
    case "delete":
      return { op: o.op, volume: string(o, "volume", what), name: validateFileName(o.name) };
    default:
      fail(
        "file request",
        `unknown op ${JSON.stringify(o.op)} (put, get, head, stat, list, delete, cluster)`,
      );
  }
}

/**
 * First message of a Peer/Forward stream. `session` names the forward across
 * channels: a stream that broke is resumed on the other one with the same
 * session and request, and the owner answers where the input continues.
 */
export interface ForwardHeader {
  session: string;
  request: FileRequest;
  /** false: a new forward; true: take over the session's input where the owner says. */
  resume: boolean;
  /**
   * On a resume of a put: the sender still holds its input from byte 0, so
   * if the session is gone (abandoned, or its reply no longer kept) the
   * owner starts the put again instead of failing it.
   */
  fromStart?: boolean;
}

/**
 * What the owner sends on a Forward stream, one JSON message each: first
 * `from` (the input offset the sender must continue at), then `ack`s of the
 * input consumed so far, and last the `reply` header, after which any reply
 * data follows raw.
 */
export type ForwardControl = { from: number } | { ack: number } | { reply: unknown };

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function validateForwardHeader(value: unknown): ForwardHeader {
  const o = object(value, "Forward header");
  if (typeof o.session !== "string" || !SESSION_ID.test(o.session))
    fail(
      "Forward header",
      `session must be a lowercase UUID, got ${JSON.stringify(o.session)?.slice(0, 60)}`,
    );
  if (typeof o.resume !== "boolean") fail("Forward header", "resume must be true or false");
  if (o.fromStart !== undefined && typeof o.fromStart !== "boolean")
    fail("Forward header", "fromStart must be true or false when given");
  const header: ForwardHeader = {
    session: o.session,
    request: validateFileRequest(o.request),
    resume: o.resume,
  };
  if (o.fromStart === true) header.fromStart = true;
  return header;
}

export function validateForwardControl(value: unknown): ForwardControl {
  const o = object(value, "Forward control message");
  const what = "Forward control message";
  if ("reply" in o) return { reply: o.reply };
  if ("from" in o) return { from: integer(o, "from", what, 0, Number.MAX_SAFE_INTEGER) };
  if ("ack" in o) return { ack: integer(o, "ack", what, 0, Number.MAX_SAFE_INTEGER) };
  fail(what, "expected from, ack or reply");
}
