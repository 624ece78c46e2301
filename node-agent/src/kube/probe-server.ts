// Readiness where kubelet looks for it. Its gRPC probe dials the pod's own
// address (the pod network's, status.podIP) at the probe's port, but the
// agent's server listens only on its two Multus channels (net1, net2). So a
// second gRPC server on the pod IP, same port number, serves the agent's
// health service and nothing else: the data services stay off the pod
// network.
import { isIP } from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../log.ts";
import type { AgentHealth } from "../rpc/health.ts";

export interface ProbeServer {
  address: string;
  stop(): Promise<void>;
}

export function hostPort(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Serves `health` alone on ip:port; rejects if it cannot listen there. */
export async function startProbeServer(
  health: AgentHealth,
  ip: string,
  port: number,
  log: Logger,
): Promise<ProbeServer> {
  const server = new grpc.Server();
  health.addTo(server);
  const address = hostPort(ip, port);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error) =>
      error
        ? reject(new Error(`readiness probe server: cannot listen on ${address}: ${error.message}`))
        : resolve(),
    ),
  );
  log.info({ address }, "readiness served on the pod IP for kubelet's probe");
  return {
    address,
    stop: () =>
      new Promise<void>((resolve) => {
        // Nothing long-running is served here: a probe in flight may be cut.
        server.forceShutdown();
        resolve();
      }),
  };
}
