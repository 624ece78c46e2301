// Fault schedules: each fault has a start and an end, both on tick
// boundaries, drawn from the run's PRNG.
import type { Channel } from "../src/membership/heartbeat.ts";
import type { Prng } from "./prng.ts";
import type { World } from "./world.ts";

export type Fault =
  | { atMs: number; kind: "nic"; node: string; channel: Channel; up: boolean }
  | { atMs: number; kind: "crash"; node: string }
  | { atMs: number; kind: "restart"; node: string }
  | { atMs: number; kind: "partition"; island: string[] | null };

export interface FaultPlan {
  faultsMax: number;
  durationMs: number;
  tickMs: number;
  /** Fault lengths range from a blip shorter than any timeout to several hold-downs. */
  lengthMsMax: number;
}

function onTick(ms: number, tickMs: number): number {
  return Math.floor(ms / tickMs) * tickMs;
}

export function randomFaults(prng: Prng, nodes: readonly string[], plan: FaultPlan): Fault[] {
  const faults: Fault[] = [];
  const count = prng.int(0, plan.faultsMax);
  for (let i = 0; i < count; i++) {
    const startMs = onTick(prng.int(plan.tickMs, plan.durationMs - 1), plan.tickMs);
    const endMs = onTick(startMs + prng.int(plan.tickMs, plan.lengthMsMax), plan.tickMs);
    const node = prng.pick(nodes);
    const kind = prng.pick(["nic", "nic", "crash", "partition"] as const);
    if (kind === "nic") {
      const channel = prng.pick(["A", "B"] as const);
      faults.push(
        { atMs: startMs, kind, node, channel, up: false },
        { atMs: endMs, kind, node, channel, up: true },
      );
    } else if (kind === "crash") {
      faults.push({ atMs: startMs, kind: "crash", node }, { atMs: endMs, kind: "restart", node });
    } else {
      const island = nodes.filter(() => prng.chance(0.5));
      faults.push({ atMs: startMs, kind, island }, { atMs: endMs, kind, island: null });
    }
  }
  // Stable: faults at the same instant apply in the order drawn.
  return faults.sort((a, b) => a.atMs - b.atMs);
}

export function applyFault(world: World, fault: Fault): void {
  switch (fault.kind) {
    case "nic":
      world.setNic(fault.node, fault.channel, fault.up);
      return;
    case "crash":
      world.crash(fault.node);
      return;
    case "restart":
      world.restart(fault.node);
      return;
    case "partition":
      world.partition(fault.island);
      return;
  }
}
