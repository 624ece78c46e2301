// The agent's readiness as the standard gRPC health service
// (grpc.health.v1.Health, from grpc-node's grpc-health-check), which is what
// kubelet's gRPC readiness probe calls. It is its own protobuf service beside
// the agent's raw-Buffer ones, on the same server.
//
// Ready (SERVING) means: started, store open, and up in the cluster map it
// holds — the cluster reads from and writes to it. Not ready (NOT_SERVING):
// not in the map yet (the operator has not taken it in), down or out in it
// (the other agents stopped hearing it: a pod that runs but is cut off), or
// stopping (set first thing on SIGTERM, so the endpoint goes before the
// server does).
//
// What should also make it not ready, once the agent can tell (not done here):
// a store that fails writes (disk errors, full: the ClusterNode's Ready
// condition already says StoreFull, but a full node still serves reads), and a
// node back after an absence that has not yet pulled the pieces placement puts
// on it again — then a DaemonSet rolling update would wait for the node's data
// to be whole before it takes down the next one.
import type { Server } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { type ClusterMap, nodeById } from "../core/cluster-map.ts";
import { READINESS_SERVICE } from "./readiness-service.ts";

export interface Readiness {
  serving: boolean;
  /** Why, for logs. */
  reason: string;
}

export function readinessOf(s: { self: string; map: ClusterMap; stopping: boolean }): Readiness {
  if (s.stopping) return { serving: false, reason: "stopping" };
  const entry = nodeById(s.map, s.self);
  if (entry === undefined) return { serving: false, reason: `not in the cluster map (epoch ${s.map.epoch})` };
  if (entry.state !== "up")
    return { serving: false, reason: `${entry.state} in the cluster map (epoch ${s.map.epoch})` };
  return { serving: true, reason: `up in the cluster map (epoch ${s.map.epoch}), store open` };
}

/** One readiness, served on every server it is added to (the agent's, and a probe-only one). */
export class AgentHealth {
  readonly #impl = new HealthImplementation({ [READINESS_SERVICE]: "NOT_SERVING" });
  #current: Readiness = { serving: false, reason: "starting" };

  get current(): Readiness {
    return this.#current;
  }

  addTo(server: Server): void {
    this.#impl.addToServer(server);
  }

  /** Sets the readiness; returns whether SERVING flipped. */
  set(readiness: Readiness): boolean {
    const flipped = readiness.serving !== this.#current.serving;
    this.#current = readiness;
    if (flipped) this.#impl.setStatus(READINESS_SERVICE, readiness.serving ? "SERVING" : "NOT_SERVING");
    return flipped;
  }
}
