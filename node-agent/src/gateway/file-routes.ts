// What each request does, on the file service. Headers and decisions come
// from the pure modules (routes, conditional, ranges, representation); this
// one does the I/O and returns what happened, for the request's log line.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FileManifest } from "../core/manifest.ts";
import type { VolumeSpec } from "../core/volume.ts";
import type { FileService } from "../data/file-service.ts";
import { isMosaicError } from "../errors.ts";
import { evaluatePreconditions, ifRangeHolds } from "./conditional.ts";
import { HttpError } from "./http-errors.ts";
import type { ManifestCache } from "./manifest-cache.ts";
import { contentRange, selectBytes } from "./ranges.ts";
import { representationHeaders, representationOf } from "./representation.ts";
import { ALLOWED_METHODS, API_PREFIX, fileTarget, parseTarget, type Route } from "./routes.ts";
import { streamBody } from "./send-body.ts";

export type GatewayFiles = Pick<FileService, "manifest" | "read" | "list" | "handle">;

export interface GatewayDeps {
  files: GatewayFiles;
  volumes: () => VolumeSpec[];
  manifests: ManifestCache;
}

export interface Served {
  status: number;
  bytes: number;
  aborted: boolean;
}

const NO_INPUT: AsyncIterable<Buffer> = (async function* () {})();

export async function serveRequest(
  req: IncomingMessage,
  res: ServerResponse,
  deps: GatewayDeps,
): Promise<Served> {
  const route = parseTarget(req.url ?? "/");
  const method = req.method ?? "GET";
  const allowed = ALLOWED_METHODS[route.kind];
  if (!allowed.includes(method)) {
    throw new HttpError(
      405,
      "MOSAIC_ERR_BAD_REQUEST",
      `${method} is not served here (only ${allowed.join(", ")})`,
      {
        allow: allowed.join(", "),
      },
    );
  }
  switch (route.kind) {
    case "volumes":
      return sendJson(res, method, { volumes: deps.volumes().map(describeVolume) });
    case "list":
      return sendJson(res, method, await listing(deps.files, route));
    case "file":
      if (method === "PUT") return putFile(req, res, deps, route);
      if (method === "DELETE") return deleteFile(res, deps, route);
      return getFile(req, res, deps, route, method === "HEAD");
  }
}

async function getFile(
  req: IncomingMessage,
  res: ServerResponse,
  deps: GatewayDeps,
  file: Extract<Route, { kind: "file" }>,
  head: boolean,
  fresh = false,
): Promise<Served> {
  const cached = fresh ? undefined : deps.manifests.get(file.volume, file.name);
  const manifest = cached ?? (await deps.files.manifest(file.volume, file.name));
  if (cached === undefined) deps.manifests.set(manifest);
  const r = representationOf(manifest);
  const validators = representationHeaders(r);
  const precondition = evaluatePreconditions(req.headers, r);
  if (precondition === "failed") {
    throw new HttpError(
      412,
      "MOSAIC_ERR_BAD_REQUEST",
      `a precondition failed: the file is now ${r.etag}`,
      validators,
    );
  }
  if (precondition === "not-modified") {
    res.writeHead(304, validators).end();
    return { status: 304, bytes: 0, aborted: false };
  }
  // Range means nothing to HEAD (RFC 9110 §14.2): it describes the whole file.
  const selection = head
    ? ({ kind: "whole" } as const)
    : selectBytes(req.headers.range, r.sizeBytes, ifRangeHolds(req.headers["if-range"], r));
  const partial = selection.kind === "partial";
  const headers: Record<string, string> = {
    ...validators,
    "content-type": r.contentType,
    "content-length": String(partial ? selection.last - selection.start + 1 : r.sizeBytes),
    ...(partial ? { "content-range": contentRange(selection, r.sizeBytes) } : {}),
  };
  const status = partial ? 206 : 200;
  if (head) {
    res.writeHead(status, headers).end();
    return { status, bytes: 0, aborted: false };
  }
  const body = deps.files.read(
    manifest,
    partial ? { start: selection.start, end: selection.last + 1 } : undefined,
  );
  // The first bytes are read before the status is sent, so a file that cannot be read is a 503, not a cut 200.
  let first: IteratorResult<Buffer>;
  try {
    first = await body.next();
  } catch (error) {
    // A remembered manifest may name a version whose pieces are gone (overwritten elsewhere): ask again, once.
    if (cached === undefined || !isMosaicError(error)) throw error;
    deps.manifests.forget(file.volume, file.name);
    return getFile(req, res, deps, file, head, true);
  }
  res.writeHead(status, headers);
  const sent = await streamBody(res, first, body);
  return { status, ...sent };
}

async function putFile(
  req: IncomingMessage,
  res: ServerResponse,
  { files, manifests }: GatewayDeps,
  file: Extract<Route, { kind: "file" }>,
): Promise<Served> {
  const length = req.headers["content-length"];
  const chunked = /\bchunked\b/i.test(req.headers["transfer-encoding"] ?? "");
  if (length === undefined && !chunked) {
    throw new HttpError(
      411,
      "MOSAIC_ERR_BAD_REQUEST",
      "a PUT needs Content-Length or Transfer-Encoding: chunked",
    );
  }
  const existed = await files.manifest(file.volume, file.name).then(
    () => true,
    (error: unknown) => {
      if (isMosaicError(error, "MOSAIC_ERR_UNKNOWN_VOLUME")) throw error;
      return false; // absent, or its holders down: the write itself finds out what it can do
    },
  );
  const request = {
    op: "put" as const,
    volume: file.volume,
    name: file.name,
    ...(length === undefined ? {} : { sizeBytes: Number(length) }),
  };
  // The request body is the write's source: read as the write consumes it, never whole.
  // A client whose connection closes before the reply is gone (forward-sender.ts).
  const gone = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) gone.abort();
  };
  res.once("close", onClose);
  const reply = await files
    .handle(request, req, { forwarded: false, clientGone: gone.signal })
    .finally(() => res.off("close", onClose));
  const manifest = (reply.header as { manifest: FileManifest }).manifest;
  manifests.set(manifest);
  const r = representationOf(manifest);
  const headers = { etag: r.etag, "last-modified": new Date(r.lastModifiedMs).toUTCString() };
  if (existed) {
    res.writeHead(204, headers).end();
    return { status: 204, bytes: 0, aborted: false };
  }
  const location = fileTarget(file.volume, file.name);
  return sendJson(res, "PUT", describeFile(manifest), 201, { ...headers, location });
}

async function deleteFile(
  res: ServerResponse,
  { files, manifests }: GatewayDeps,
  file: Extract<Route, { kind: "file" }>,
): Promise<Served> {
  manifests.forget(file.volume, file.name);
  await files.handle({ op: "delete", volume: file.volume, name: file.name }, NO_INPUT, { forwarded: false });
  res.writeHead(204).end();
  return { status: 204, bytes: 0, aborted: false };
}

async function listing(files: GatewayFiles, list: Extract<Route, { kind: "list" }>) {
  const found = await files.list(list.volume, list.prefix);
  return { volume: list.volume, prefix: list.prefix, files: found.map(describeFile) };
}

function describeFile(m: FileManifest) {
  const r = representationOf(m);
  return {
    name: m.name,
    url: fileTarget(m.volume, m.name),
    sizeBytes: m.sizeBytes,
    contentType: r.contentType,
    etag: r.etag,
    lastModified: new Date(r.lastModifiedMs).toUTCString(),
  };
}

function describeVolume(v: VolumeSpec) {
  return {
    name: v.name,
    url: `${API_PREFIX}/${v.name}/`,
    chunkSizeBytes: v.chunkSizeBytes,
    redundancy: v.redundancy,
    capacityBytes: v.capacityBytes,
  };
}

function sendJson(
  res: ServerResponse,
  method: string,
  value: unknown,
  status = 200,
  extra: Record<string, string> = {},
): Served {
  const body = Buffer.from(`${JSON.stringify(value)}\n`);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(body.length),
    "cache-control": "no-store",
    ...extra,
  });
  res.end(method === "HEAD" ? undefined : body);
  return { status, bytes: method === "HEAD" ? 0 : body.length, aborted: false };
}
