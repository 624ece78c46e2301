// The status page over HTTP (node:http): the static page (page/), the latest
// snapshot as JSON, and Server-Sent Events carrying every change. Shared by
// the operator (Kubernetes objects) and `mosaic up` (local agents): both
// publish to a StatusFeed and this serves it.
//   GET /                 the page
//   GET /status.css, /status.js
//   GET /api/status       the latest snapshot (503 until the first one)
//   GET /api/events       text/event-stream: `event: snapshot` with the snapshot now and on each change
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { StatusFeed } from "./status-feed.ts";
import type { StatusSnapshot } from "./view-model.ts";

/** The operator's status port (MOSAIC_STATUS_PORT; the chart's containerPort `status`). */
export const STATUS_PORT_DEFAULT = 8090;
/** A comment line this often keeps proxies (kubectl port-forward among them) from closing an idle stream. */
const KEEPALIVE_MS = 15_000;
/** What the browser waits before reconnecting a dropped stream. */
const RETRY_MS = 2_000;
/** Streams served at once; beyond, 503: a page left open in many tabs must not exhaust the process. */
const STREAMS_MAX = 64;

const PAGE_DIR = new URL("./page/", import.meta.url);
const STATIC: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/status.css": { file: "status.css", type: "text/css; charset=utf-8" },
  "/status.js": { file: "status.js", type: "text/javascript; charset=utf-8" },
};
const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
};

export interface StatusServerOptions {
  host: string;
  /** 0: any free port (tests). */
  port: number;
  feed: StatusFeed;
  log: Logger;
}

export class StatusServer {
  /** host:port it listens on. */
  readonly address: string;
  readonly #server: Server;
  readonly #streams = new Set<ServerResponse>();

  private constructor(address: string, server: Server) {
    this.address = address;
    this.#server = server;
  }

  static async start(options: StatusServerOptions): Promise<StatusServer> {
    const { host, port, feed, log } = options;
    // Read once: the page is a few kilobytes and never changes while running.
    const files = new Map(
      Object.entries(STATIC).map(([path, s]) => [
        path,
        { body: readFileSync(new URL(s.file, PAGE_DIR)), type: s.type },
      ]),
    );
    let status: StatusServer | undefined;
    const server = createServer((req, res) => {
      try {
        route(req, res, files, feed, status as StatusServer);
      } catch (error) {
        log.warn({ err: (error as Error).message }, "status request failed");
        res.destroy();
      }
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error) =>
        reject(
          new MosaicError(
            "MOSAIC_ERR_INTERNAL",
            `status page cannot listen on ${host}:${port}: ${error.message}`,
            {
              cause: error,
            },
          ),
        ),
      );
      server.listen({ host, port }, resolve);
    });
    server.on("error", (error) => log.warn({ err: error.message }, "status listener error"));
    const bound = server.address() as AddressInfo;
    const address = `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`;
    status = new StatusServer(address, server);
    log.info({ address }, "status page listening");
    return status;
  }

  get streams(): number {
    return this.#streams.size;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const stream of this.#streams) stream.end();
    this.#server.closeAllConnections();
    await closed;
  }

  /** Streams snapshots to one client until it goes. */
  stream(req: IncomingMessage, res: ServerResponse, feed: StatusFeed): void {
    if (this.#streams.size >= STREAMS_MAX) {
      answerText(res, 503, `too many status streams open (${STREAMS_MAX}); poll /api/status\n`, {
        "retry-after": "10",
      });
      return;
    }
    // An event stream lives as long as the page: no request timeout for it.
    req.socket.setTimeout(0);
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write(`retry: ${RETRY_MS}\n\n`);
    const send = (snapshot: StatusSnapshot) =>
      res.write(`event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`);
    if (feed.latest !== undefined) send(feed.latest);
    const unsubscribe = feed.subscribe(send);
    const keepalive = setInterval(() => res.write(": keepalive\n\n"), KEEPALIVE_MS);
    this.#streams.add(res);
    res.once("close", () => {
      clearInterval(keepalive);
      unsubscribe();
      this.#streams.delete(res);
    });
  }
}

function route(
  req: IncomingMessage,
  res: ServerResponse,
  files: Map<string, { body: Buffer; type: string }>,
  feed: StatusFeed,
  server: StatusServer,
): void {
  const path = new URL(req.url ?? "/", "http://status.invalid").pathname;
  const file = files.get(path);
  const known = file !== undefined || path === "/api/status" || path === "/api/events";
  if (!known) {
    answerText(res, 404, `no such page: ${path.slice(0, 200)}; the status page is at /\n`);
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    answerText(res, 405, `${req.method} is not served here (only GET, HEAD)\n`, { allow: "GET, HEAD" });
    return;
  }
  if (path === "/api/events") {
    server.stream(req, res, feed);
    return;
  }
  if (path === "/api/status") {
    if (feed.latest === undefined) {
      answerText(res, 503, "no status yet: the first snapshot is being taken\n", { "retry-after": "1" });
      return;
    }
    send(req, res, 200, Buffer.from(JSON.stringify(feed.latest)), "application/json; charset=utf-8");
    return;
  }
  const found = file as { body: Buffer; type: string };
  send(req, res, 200, found.body, found.type);
}

function send(req: IncomingMessage, res: ServerResponse, status: number, body: Buffer, type: string): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "content-type": type,
    "content-length": String(body.length),
    "cache-control": "no-store",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

function answerText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  const body = Buffer.from(text);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    ...headers,
    "content-type": "text/plain; charset=utf-8",
    "content-length": String(body.length),
  });
  res.end(body);
}
