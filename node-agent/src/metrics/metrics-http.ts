// Serving an agent's metrics in Prometheus' text format: GET /metrics on the
// HTTP gateway when there is one (the gateway asks scrape() first), or on a
// listener of its own (--metrics host:port; in Kubernetes the pod IP at
// AGENT_METRICS_PORT). Process metrics (CPU, memory, event loop, GC) belong
// to the process, not to an agent: they are collected once per process, on a
// registry of their own, only once something is served, and appended to
// every agent's answer.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Registry } from "prom-client";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { METRIC_PREFIX } from "./agent-metrics.ts";

export const METRICS_PATH = "/metrics";
/** The agent's metrics port in Kubernetes, on the pod IP (the DaemonSet names it `metrics`). */
export const AGENT_METRICS_PORT = 9400;

/** What one request cost, as the gateway logs it. */
export interface Answered {
  status: number;
  bytes: number;
  aborted: boolean;
}

let processRegistry: Registry | undefined;

/** The process's own metrics (prom-client's default set, prefixed), made on first use. */
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: METRIC_PREFIX });
  }
  return processRegistry;
}

/** The text exposition of `registry` followed by the process's metrics. */
export async function exposition(registry: Registry): Promise<string> {
  const own = await registry.metrics();
  return `${own}\n${await processMetrics().metrics()}`;
}

/** The gateway's hooks: its /metrics route, and an observation per request. */
export interface GatewayMetrics {
  /** Answers GET or HEAD /metrics; undefined for any other target (the gateway serves it). */
  scrape(req: IncomingMessage, res: ServerResponse): Promise<Answered> | undefined;
  observe(method: string, status: number, seconds: number, bytes: number): void;
}

export function gatewayMetrics(registry: Registry, observe: GatewayMetrics["observe"]): GatewayMetrics {
  return {
    scrape: (req, res) => (pathOf(req.url) === METRICS_PATH ? answerScrape(req, res, registry) : undefined),
    observe,
  };
}

async function answerScrape(
  req: IncomingMessage,
  res: ServerResponse,
  registry: Registry,
): Promise<Answered> {
  if (req.method !== "GET" && req.method !== "HEAD")
    return answerText(res, 405, `${req.method} is not served at ${METRICS_PATH} (only GET, HEAD)\n`, {
      allow: "GET, HEAD",
    });
  const text = await exposition(registry);
  const body = Buffer.from(text);
  res.writeHead(200, {
    "content-type": registry.contentType,
    "content-length": String(body.length),
    "cache-control": "no-store",
  });
  res.end(req.method === "HEAD" ? undefined : body);
  return { status: 200, bytes: req.method === "HEAD" ? 0 : body.length, aborted: false };
}

function answerText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): Answered {
  const body = Buffer.from(text);
  res.writeHead(status, {
    ...headers,
    "content-type": "text/plain; charset=utf-8",
    "content-length": String(body.length),
  });
  res.end(body);
  return { status, bytes: body.length, aborted: false };
}

function pathOf(url: string | undefined): string {
  const target = url ?? "/";
  const query = target.indexOf("?");
  return query < 0 ? target : target.slice(0, query);
}

/** A listener that serves only GET /metrics: for agents without the gateway. */
export class MetricsServer {
  readonly address: string;
  readonly #server: Server;

  private constructor(address: string, server: Server) {
    this.address = address;
    this.#server = server;
  }

  static async start(listen: string, registry: Registry, log: Logger): Promise<MetricsServer> {
    const { host, port } = splitHostPort(listen);
    const server = createServer((req, res) => {
      const answered =
        pathOf(req.url) === METRICS_PATH
          ? answerScrape(req, res, registry)
          : Promise.resolve(answerText(res, 404, `no such endpoint; metrics are at ${METRICS_PATH}\n`));
      answered.catch((error: unknown) => {
        log.warn({ err: (error as Error).message }, "metrics not served");
        res.destroy();
      });
    });
    // A scraper that stalls must not hold a socket for ever.
    server.setTimeout(30_000);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error) =>
        reject(
          new MosaicError("MOSAIC_ERR_INTERNAL", `metrics cannot listen on ${listen}: ${error.message}`, {
            cause: error,
          }),
        ),
      );
      server.listen({ host, port }, resolve);
    });
    server.on("error", (error) => log.warn({ err: error.message }, "metrics listener error"));
    const bound = server.address() as AddressInfo;
    const address = `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`;
    log.info({ address }, "metrics listening");
    return new MetricsServer(address, server);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}

/** "host:port" (IPv6 in brackets) → its parts; a clear error for anything else. */
export function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !/^\d+$/.test(address.slice(colon + 1)) || port > 65_535) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `metrics address ${JSON.stringify(address)} must be host:port`,
    );
  }
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port };
}
