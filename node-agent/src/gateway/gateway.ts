// The HTTP gateway of one agent: its volumes over plain HTTP/1.1 (node:http)
// for players and tools that speak Range requests. One log line per request
// at debug; failures of the server's own making (5xx, a read that broke
// mid-body) at warn; a client that hangs up is routine, logged at debug.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { GatewayMetrics } from "../metrics/metrics-http.ts";
import { type GatewayDeps, type Served, serveRequest } from "./file-routes.ts";
import { errorBody, httpErrorOf } from "./http-errors.ts";
import { MANIFEST_CACHE_TTL_MS_DEFAULT, ManifestCache } from "./manifest-cache.ts";

export interface GatewayOptions extends Omit<GatewayDeps, "manifests"> {
  /** host:port to listen on; port 0 picks a free one. */
  listen: string;
  /**
   * How long a manifest read for one request serves the next ones (manifest-cache.ts): an overwrite
   * or delete through another agent is seen within this time. 0: every request reads it. Default 1 s.
   */
  manifestCacheMs?: number;
  log: Logger;
  /** A connection silent this long is closed (a paused player's, a stalled upload's); default 120 s. */
  idleTimeoutMs?: number;
  /** Serves GET /metrics and observes every request; unset: /metrics is an unknown path like any other. */
  metrics?: GatewayMetrics;
}

export interface GatewayStats {
  /** Requests being served now: a read counts until its reader has settled. */
  inFlight: number;
  served: number;
  /** Requests whose client went away before the answer was complete. */
  aborted: number;
}

export class Gateway {
  readonly address: string;
  readonly #server: Server;
  readonly #stats: GatewayStats;

  private constructor(address: string, server: Server, stats: GatewayStats) {
    this.address = address;
    this.#server = server;
    this.#stats = stats;
  }

  static async start(options: GatewayOptions): Promise<Gateway> {
    const { host, port } = splitHostPort(options.listen);
    const stats: GatewayStats = { inFlight: 0, served: 0, aborted: 0 };
    const deps: GatewayDeps = {
      files: options.files,
      volumes: options.volumes,
      manifests: new ManifestCache(options.manifestCacheMs ?? MANIFEST_CACHE_TTL_MS_DEFAULT),
    };
    // No cap on a whole request's time: a large upload or a long film may take hours. Idle sockets are cut instead.
    const server = createServer({ requestTimeout: 0 }, (req, res) => {
      stats.inFlight++;
      void handle(req, res, deps, options.log, options.metrics).then(
        (served) => {
          stats.inFlight--;
          stats.served++;
          if (served.aborted) stats.aborted++;
        },
        (error: unknown) => {
          // Not even an error answer could be written: the connection goes, the agent stays.
          stats.inFlight--;
          res.destroy();
          options.log.error({ url: req.url, err: (error as Error)?.message }, "http request not answered");
        },
      );
    });
    server.setTimeout(options.idleTimeoutMs ?? 120_000);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error) =>
        reject(
          new MosaicError(
            "MOSAIC_ERR_INTERNAL",
            `gateway cannot listen on ${options.listen}: ${error.message}`,
            { cause: error },
          ),
        ),
      );
      server.listen({ host, port }, resolve);
    });
    // Malformed HTTP gets node's own 400 (408, 431) and no log line; a late server error is logged, not fatal.
    server.on("error", (error) => options.log.warn({ err: error.message }, "http gateway error"));
    const bound = server.address() as AddressInfo;
    const address = `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`;
    options.log.info({ address }, "http gateway listening");
    return new Gateway(address, server, stats);
  }

  get stats(): GatewayStats {
    return { ...this.#stats };
  }

  /** Stops taking connections, lets answers in progress run for up to `graceMs`, then cuts the rest. */
  async close(graceMs = 2_000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    const timer = setTimeout(() => this.#server.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(timer);
  }
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  deps: GatewayDeps,
  log: Logger,
  metrics?: GatewayMetrics,
): Promise<Served> {
  const started = performance.now();
  let served: Served;
  let failure: unknown;
  try {
    served = await (metrics?.scrape(req, res) ?? serveRequest(req, res, deps));
  } catch (error) {
    failure = error;
    served = answerError(req, res, error);
  }
  metrics?.observe(req.method ?? "", served.status, (performance.now() - started) / 1000, served.bytes);
  const line = {
    method: req.method,
    url: req.url,
    ...(req.headers.range === undefined ? {} : { range: req.headers.range }),
    status: served.status,
    bytes: served.bytes,
    ms: Math.round((performance.now() - started) * 10) / 10,
  };
  if (served.aborted) log.debug(line, "http request: client went away");
  else if (failure !== undefined && served.status >= 500) {
    const e = httpErrorOf(failure);
    log.warn({ ...line, code: e.code, err: e.message }, "http request failed");
  } else log.debug(line, "http request");
  return served;
}

/** The error as a status and a JSON body, or, once the status has gone out, a cut connection. */
function answerError(req: IncomingMessage, res: ServerResponse, error: unknown): Served {
  const e = httpErrorOf(error);
  // Not req.destroyed: a request whose body has been read is destroyed while its socket serves on.
  const socket = res.socket ?? req.socket;
  const gone = res.destroyed || socket === null || socket.destroyed;
  if (res.headersSent || gone) {
    res.destroy();
    return { status: res.headersSent ? res.statusCode : e.status, bytes: 0, aborted: gone };
  }
  const body = Buffer.from(errorBody(e));
  res.writeHead(e.status, {
    ...e.headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": String(body.length),
    "cache-control": "no-store",
    // A body the client is still sending (a refused PUT) is not read to its end: the connection goes.
    ...(req.complete ? {} : { connection: "close" }),
  });
  res.end(req.method === "HEAD" ? undefined : body);
  return { status: e.status, bytes: req.method === "HEAD" ? 0 : body.length, aborted: false };
}

function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `gateway address ${JSON.stringify(address)} must be host:port`,
    );
  }
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port };
}
