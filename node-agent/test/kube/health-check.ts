// A gRPC health client for tests: what kubelet's gRPC readiness probe does,
// one grpc.health.v1.Health/Check call with a deadline, and the probe the
// operator's DaemonSet gives it.
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { service as HEALTH } from "grpc-health-check";
import { agentDaemonSet } from "../../../operator/src/agent-daemonset.ts";

type CheckCallback = (error: grpc.ServiceError | null, reply: { status: string }) => void;
interface HealthClient extends grpc.Client {
  check(request: { service: string }, options: grpc.CallOptions, callback: CheckCallback): void;
}
const HealthClient = grpc.makeClientConstructor(
  HEALTH as unknown as grpc.ServiceDefinition,
  "grpc.health.v1.Health",
) as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => HealthClient;

/** Check(service) at `address`: SERVING, NOT_SERVING, …; rejects with the gRPC error. */
export function healthCheck(address: string, service: string, timeoutMs = 1_000): Promise<string> {
  const client = new HealthClient(address, grpc.credentials.createInsecure());
  return new Promise<string>((resolve, reject) => {
    client.check({ service }, { deadline: new Date(Date.now() + timeoutMs) }, (error, reply) =>
      error ? reject(error) : resolve(reply.status),
    );
  }).finally(() => client.close());
}

/** The gRPC readiness probe (port, service) of the DaemonSet the operator keeps, for agents on `port`. */
export function daemonSetProbe(port: number): { port: number; service: string } {
  const ds = agentDaemonSet({
    namespace: "mosaic-system",
    name: "mosaic-agent",
    image: "mosaic:test",
    serviceAccountName: "mosaic-agent",
    networks: { channelA: "mosaic-a", channelB: "mosaic-b" },
    hostPaths: { data: "/var/lib/mosaic", ipc: "/run/mosaic" },
    port,
  });
  const probe = ds.spec?.template.spec?.containers[0]?.readinessProbe?.grpc;
  assert.ok(probe !== undefined, "the DaemonSet has a gRPC readiness probe");
  return { port: probe.port, service: probe.service ?? "" };
}
