// In-process agents (real sockets, real directories) each with an HTTP
// gateway in front of its file service, a log that the test can read, and
// a plain node:http client that sends the request target exactly as
// written (fetch would resolve '..' before it left).
import { request } from "node:http";
import { pino } from "pino";
import type { VolumeSpec } from "../../src/core/volume.ts";
import { Gateway } from "../../src/gateway/gateway.ts";
import { type InProcessCluster, startInProcessCluster, TEST_VOLUMES } from "../helpers/in-process-cluster.ts";

export const GATEWAY_VOLUMES: VolumeSpec[] = [
  ...TEST_VOLUMES,
  // Small enough to refuse a PUT by its Content-Length.
  { name: "tiny", chunkSizeBytes: 64 * 1024, redundancy: { replicas: 2 }, capacityBytes: 1024 * 1024 },
];

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface GatewayCluster {
  cluster: InProcessCluster;
  gateways: Gateway[];
  /** Every line the gateways logged, parsed (debug and up). */
  log: LogLine[];
  url: (i?: number) => string;
  stop: () => Promise<void>;
}

export async function startGatewayCluster(n: number): Promise<GatewayCluster> {
  const cluster = await startInProcessCluster(n, { volumes: GATEWAY_VOLUMES });
  const log: LogLine[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => log.push(JSON.parse(line)) });
  const gateways: Gateway[] = [];
  try {
    for (const agent of cluster.agents) {
      gateways.push(
        await Gateway.start({
          listen: "127.0.0.1:0",
          files: agent.files,
          volumes: () => GATEWAY_VOLUMES,
          log: logger.child({ node: agent.nodeId }),
        }),
      );
    }
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return {
    cluster,
    gateways,
    log,
    url: (i = 0) => `http://${(gateways[i] as Gateway).address}`,
    stop: async () => {
      await Promise.all(gateways.map((g) => g.close(500)));
      await cluster.stop();
    },
  };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface Ask {
  method?: string;
  headers?: Record<string, string>;
  /** Sent with Content-Length when a Buffer, chunked when an iterable. */
  body?: Buffer | AsyncIterable<Buffer>;
}

/** One request, its target sent verbatim; resolves with the whole answer. */
export function ask(base: string, target: string, options: Ask = {}): Promise<Reply> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port, path: target, method: options.method ?? "GET", headers: options.headers ?? {} },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (part: Buffer) => parts.push(part));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    // Silence this long is a hang, named, rather than a test that runs into its own time limit.
    req.setTimeout(30_000, () =>
      req.destroy(new Error(`${options.method ?? "GET"} ${target}: no answer within 30 s`)),
    );
    const body = options.body;
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      (async () => {
        for await (const part of body) if (!req.write(part)) await new Promise((r) => req.once("drain", r));
        req.end();
      })().catch((error) => req.destroy(error));
    }
  });
}

/** The JSON error body's Mosaic code. */
export function codeOf(reply: Reply): string | undefined {
  try {
    return (JSON.parse(reply.body.toString()) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}
