// One real agent process whose every piece read costs `costMs` of CPU on
// its event loop before it is served: seed 002's experiment 3, where each
// request needs 10 ms of processing on the server that takes it. The cost
// is a gRPC server interceptor (AgentConfig.serverInterceptors), so the
// agent, its load meter and its heartbeats are the production ones.
// Started by experiment3.test.ts with its config as JSON in argv[2]; prints
// "ready" once serving; SIGTERM stops it.
import { ServerInterceptingCall, type ServerInterceptor } from "@grpc/grpc-js";
import { Agent } from "../../../src/agent.ts";
import type { ClusterMap } from "../../../src/core/cluster-map.ts";
import type { VolumeSpec } from "../../../src/core/volume.ts";
import { silentLogger } from "../../../src/log.ts";
import { PEER_SERVICE } from "../../../src/rpc/wire.ts";

export interface CpuHolderConfig {
  nodeId: string;
  listen: [string, string];
  dataDir: string;
  map: ClusterMap;
  volumes: VolumeSpec[];
  costMs: number;
}

const config = JSON.parse(process.argv[2] as string) as CpuHolderConfig;

/** Busy for `ms` on this thread: what a CPU-bound request costs (no sleep, no yield). */
function burn(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {}
}

const costly: ServerInterceptor = (method, call) =>
  method.path !== PEER_SERVICE.getPiece.path
    ? new ServerInterceptingCall(call)
    : new ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMessage: (message, pass) => {
              burn(config.costMs);
              pass(message);
            },
          }),
      });

const agent = await Agent.start({
  nodeId: config.nodeId,
  listen: config.listen,
  dataDir: config.dataDir,
  capacityBytes: 2 ** 40,
  map: config.map,
  volumes: config.volumes,
  scrubRateBytesPerSecond: 0,
  serverInterceptors: [costly],
  log: silentLogger(),
});
process.stdout.write("ready\n");
process.once("SIGTERM", () => {
  void agent.stop(500).then(() => process.exit(0));
});
