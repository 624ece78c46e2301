// Predicates over an agent's log lines (pino JSON) for the events chaos tests
// and the failover benchmark time: a peer's traffic moving to a channel, and
// an agreed map changing a node's state.
import type { LogLine } from "./process-cluster.ts";

/**
 * This agent moved `peer`'s traffic to channel `to`: by its own heartbeats
 * ("active", a peer it watches) or by its watchers' news ("route", one it
 * does not; a route withdrawn means channel A again).
 */
export function channelMoved(peer: string, to: "A" | "B"): (l: LogLine) => boolean {
  return (l) => {
    const e = l.event as { kind?: string; peer?: string; to?: string | null } | undefined;
    if (e?.peer !== peer) return false;
    if (e.kind === "active") return e.to === to;
    return e.kind === "route" && (e.to === to || (to === "A" && e.to === null));
  };
}

/** This agent took a map, agreed by the membership, in which `node` changed to `to`. */
export function mapChanged(node: string, to: "up" | "down" | "out"): (l: LogLine) => boolean {
  return (l) =>
    l.msg === "membership agreed on a map" &&
    ((l.changed as { id: string; to: string }[] | undefined) ?? []).some((c) => c.id === node && c.to === to);
}
