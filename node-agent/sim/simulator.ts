// Runs N nodes' MemberCores — the production code — on a simulated clock and
// network. One seed fixes the scenario (size, k, network, faults) and every
// random choice, so a failing seed replays exactly.
import type { DetectorConfig } from "../src/membership/config.ts";
import { defaultDetectorConfig } from "../src/membership/config.ts";
import { MemberCore } from "../src/membership/member-core.ts";
import { Checker } from "./checker.ts";
import type { Fault } from "./faults.ts";
import { applyFault, randomFaults } from "./faults.ts";
import type { NetworkOptions, NetworkStats } from "./network.ts";
import { Network } from "./network.ts";
import { Prng } from "./prng.ts";
import { World } from "./world.ts";

export interface Scenario {
  seed: number;
  nodes: string[];
  config: DetectorConfig;
  network: NetworkOptions;
  durationMs: number;
  faults: Fault[];
}

export interface SimResult {
  seed: number;
  scenario: Scenario;
  violations: string[];
  network: NetworkStats;
  /** Heartbeat datagrams sent per live node per simulated second. */
  heartbeatsPerNodePerSecond: number;
  channelDetectMs: number[];
  nodeDetectMs: number[];
  rejected: number;
}

export function nodeNames(count: number): string[] {
  const width = String(count - 1).length;
  return Array.from({ length: count }, (_, i) => `n${String(i).padStart(width, "0")}`);
}

/** The scenario a seed stands for: cluster size, k, network behaviour and fault schedule. */
export function scenarioOf(seed: number): Scenario {
  const prng = new Prng(seed);
  const nodes = nodeNames(prng.int(2, 8));
  const config = defaultDetectorConfig(prng.int(1, 2));
  // The delay bound the config tolerates: k losses plus worst delay stay under suspicion.
  const slackMs =
    config.suspectAfterMs - (config.toleratedLosses + 1) * config.heartbeatIntervalMs - config.tickMs - 1;
  const delayMsMax = prng.int(1, Math.min(20, slackMs));
  const network: NetworkOptions = {
    lossProbability: prng.pick([0, 0.05, 0.2, 0.4]),
    maxLossStreak: config.toleratedLosses,
    duplicateProbability: prng.pick([0, 0.05, 0.2]),
    delayMsMin: prng.int(0, delayMsMax),
    delayMsMax,
    pathPacketsMax: 64,
  };
  const durationMs = 6_000;
  const faults = randomFaults(prng, nodes, {
    faultsMax: 6,
    durationMs,
    tickMs: config.tickMs,
    lengthMsMax: 2_500,
  });
  return { seed, nodes, config, network, durationMs, faults };
}

export function reproduceLine(seed: number): string {
  return `reproduce with seed=${seed}: node_modules/.bin/node node-agent/sim/main.ts --seed=${seed}`;
}

export function runScenario(scenario: Scenario): SimResult {
  const { config } = scenario;
  // The network draws from its own stream, so the scenario stays fixed whatever it consumes.
  const prng = new Prng((scenario.seed ^ 0x9e3779b9) >>> 0);
  const world = new World();
  const network = new Network(scenario.network, prng, world);
  const checker = new Checker(config, scenario.network.delayMsMax, world);
  const incarnations = new Map<string, number>();
  const cores = new Map<string, MemberCore>();
  const start = (node: string, nowMs: number) => {
    const incarnation = (incarnations.get(node) ?? 0) + 1;
    incarnations.set(node, incarnation);
    checker.forgetObserver(node);
    cores.set(
      node,
      new MemberCore({ self: node, incarnation, members: scenario.nodes, epoch: 1, config, nowMs }),
    );
  };
  for (const node of scenario.nodes) start(node, 0);
  let nextFault = 0;
  let rejected = 0;
  let liveNodeMs = 0;
  let heartbeats = 0;
  for (let nowMs = 0; nowMs <= scenario.durationMs && !checker.failed; nowMs += config.tickMs) {
    for (; nextFault < scenario.faults.length; nextFault++) {
      const fault = scenario.faults[nextFault] as Fault;
      if (fault.atMs > nowMs) break;
      applyFault(world, fault);
      if (fault.kind === "crash" && cores.has(fault.node)) {
        rejected += (cores.get(fault.node) as MemberCore).rejected;
        cores.delete(fault.node);
      }
      if (fault.kind === "restart" && !cores.has(fault.node)) start(fault.node, nowMs);
    }
    checker.observe(nowMs, cores);
    for (const p of network.deliver(nowMs)) {
      const core = cores.get(p.to);
      if (core !== undefined) checker.onEvents(p.to, core.onDatagram(p.bytes, p.channel, nowMs));
    }
    for (const [node, core] of cores) {
      const { datagrams, events } = core.tick(nowMs);
      checker.onEvents(node, events);
      heartbeats += datagrams.length;
      for (const d of datagrams) network.send(node, d.to, d.channel, d.bytes, nowMs);
    }
    checker.check(nowMs, cores);
    liveNodeMs += cores.size * config.tickMs;
  }
  for (const core of cores.values()) rejected += core.rejected;
  return {
    seed: scenario.seed,
    scenario,
    violations: checker.violations,
    network: network.stats,
    heartbeatsPerNodePerSecond: (heartbeats * 1_000) / liveNodeMs,
    channelDetectMs: checker.channelDetectMs,
    nodeDetectMs: checker.nodeDetectMs,
    rejected,
  };
}

export function runSeed(seed: number): SimResult {
  return runScenario(scenarioOf(seed));
}

/** The scale run: n nodes, light loss; at 1 s one node loses NIC A and another crashes, for good. */
export function scaleScenario(count: number, seed: number): Scenario {
  const config = defaultDetectorConfig(1);
  const nodes = nodeNames(count);
  const prng = new Prng(seed);
  const nicNode = prng.pick(nodes);
  const crashNode = prng.pick(nodes.filter((n) => n !== nicNode));
  const network: NetworkOptions = {
    lossProbability: 0.05,
    maxLossStreak: config.toleratedLosses,
    duplicateProbability: 0.01,
    delayMsMin: 0,
    delayMsMax: 5,
    pathPacketsMax: 64,
  };
  const faults: Fault[] = [
    { atMs: 1_000, kind: "nic", node: nicNode, channel: "A", up: false },
    { atMs: 1_000, kind: "crash", node: crashNode },
  ];
  return { seed, nodes, config, network, durationMs: 2_500, faults };
}
