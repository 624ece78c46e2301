// One real agent process whose every piece read costs `costMs` of CPU on
// its event loop before it is served: seed 002's experiment 3, where each
// request needs 10 ms of processing on the server that takes it. The cost
// is a gRPC server interceptor (AgentConfig.serverInterceptors), so the
// agent, its load meter and its heartbeats are the production ones.
// Started by experiment3.test.ts and read-copies.test.ts with its config as
// JSON in argv[2]; prints "ready <metrics address>" once serving; SIGTERM
// stops it. A line "slow-copies <ms>" on stdin holds back the answer to
// every read of a read copy by that long (0: not at all), inside the
// agent's own handling of it, so the read counts as in flight meanwhile;
// a new value sends the answers held back so far at once.
import { createInterface } from "node:readline";
import { ServerInterceptingCall, type ServerInterceptor } from "@grpc/grpc-js";
import { Agent } from "../../../src/agent.ts";
import type { ClusterMap } from "../../../src/core/cluster-map.ts";
import type { VolumeSpec } from "../../../src/core/volume.ts";
import type { LoadConfig } from "../../../src/load/level.ts";
import type { ReadCopyConfig } from "../../../src/load/read-copies.ts";
import { silentLogger } from "../../../src/log.ts";
import { PEER_SERVICE } from "../../../src/rpc/wire.ts";
import { isReadCopy } from "../../../src/storage/piece-key.ts";

export interface CpuHolderConfig {
  nodeId: string;
  listen: [string, string];
  dataDir: string;
  map: ClusterMap;
  volumes: VolumeSpec[];
  costMs: number;
  /** The agent's load thresholds (default: the production ones). */
  load?: LoadConfig;
  readCopies?: Partial<ReadCopyConfig>;
  /** Print each read copy this agent adds or removes as its owner: a line "event <json>". */
  reportEvents?: boolean;
}

const config = JSON.parse(process.argv[2] as string) as CpuHolderConfig;

/** Busy for `ms` on this thread: what a CPU-bound request costs (no sleep, no yield). */
function burn(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {}
}

let slowCopiesMs = 0;
/** Answers being held back: each sends its message (once) and forgets its timer. */
const held = new Set<() => void>();
createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, value] = line.trim().split(/\s+/);
  if (command !== "slow-copies" || !Number.isSafeInteger(Number(value))) return;
  slowCopiesMs = Number(value);
  for (const send of [...held]) send();
});

/** Whether a GetPiece request asks for a read copy (its key's slot says so). */
function readsCopy(message: unknown): boolean {
  try {
    return isReadCopy(JSON.parse((message as Buffer).toString("utf8")).key);
  } catch {
    return false;
  }
}

const costly: ServerInterceptor = (method, call) => {
  if (method.path !== PEER_SERVICE.getPiece.path) return new ServerInterceptingCall(call);
  let holdMs = 0;
  return new ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMessage: (message, pass) => {
          burn(config.costMs);
          if (readsCopy(message)) holdMs = slowCopiesMs;
          pass(message);
        },
      }),
    sendMessage: (message, next) => {
      if (holdMs <= 0) return next(message);
      const send = () => {
        clearTimeout(timer);
        held.delete(send);
        next(message);
      };
      const timer = setTimeout(send, holdMs);
      held.add(send);
      holdMs = 0;
    },
  });
};

const agent = await Agent.start({
  nodeId: config.nodeId,
  listen: config.listen,
  dataDir: config.dataDir,
  capacityBytes: 2 ** 40,
  map: config.map,
  volumes: config.volumes,
  scrubRateBytesPerSecond: 0,
  serverInterceptors: [costly],
  metrics: `${config.listen[0].slice(0, config.listen[0].lastIndexOf(":"))}:0`,
  ...(config.load === undefined ? {} : { load: config.load }),
  ...(config.readCopies === undefined ? {} : { readCopies: config.readCopies }),
  ...(config.reportEvents === true
    ? { onReadCopyEvent: (event) => process.stdout.write(`event ${JSON.stringify(event)}\n`) }
    : {}),
  log: silentLogger(),
});
process.stdout.write(`ready ${agent.metricsAddress}\n`);
process.once("SIGTERM", () => {
  void agent.stop(500).then(() => process.exit(0));
});
