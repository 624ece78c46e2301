// Runs N nodes' MembershipCores — the production code: detection and map
// agreement — on a simulated clock and network. One seed fixes the scenario
// (size, k, grace, network, faults) and every random choice, so a failing
// seed replays exactly. A run lasts until every fault has healed and the maps
// have had time to converge.
import type { ClusterMap } from "../src/core/cluster-map.ts";
import type { AgreementConfig, DetectorConfig } from "../src/membership/config.ts";
import { defaultAgreementConfig, defaultDetectorConfig } from "../src/membership/config.ts";
import type { Datagram } from "../src/membership/member-core.ts";
import { MembershipCore } from "../src/membership/membership-core.ts";
import { Checker } from "./checker.ts";
import type { Fault } from "./faults.ts";
import { applyFault, randomFaults } from "./faults.ts";
import type { CrashFigure } from "./map-checker.ts";
import { MapChecker } from "./map-checker.ts";
import type { NetworkOptions, NetworkStats } from "./network.ts";
import { Network } from "./network.ts";
import { NewsChecker } from "./news-checker.ts";
import { Prng } from "./prng.ts";
import { World } from "./world.ts";

export interface Scenario {
  seed: number;
  nodes: string[];
  config: DetectorConfig;
  agreement: AgreementConfig;
  network: NetworkOptions;
  /** Faults start before this; the run goes on until they have healed and maps could converge. */
  durationMs: number;
  faults: Fault[];
}

export interface SimResult {
  seed: number;
  scenario: Scenario;
  violations: string[];
  network: NetworkStats;
  /** Heartbeat datagrams (and off-ring probes) sent per live node per simulated second. */
  heartbeatsPerNodePerSecond: number;
  /** Map datagrams (proposals and repairs) sent per live node per simulated second. */
  mapsPerNodePerSecond: number;
  /** Channel news datagrams sent per live node per simulated second. */
  newsPerNodePerSecond: number;
  /** NIC down → every node that does not watch its node routes it on the other channel (judged ones). */
  newsMoveMs: number[];
  /** NIC up → no such node avoids it any more. */
  newsBackMs: number[];
  channelDetectMs: number[];
  nodeDetectMs: number[];
  /** Crashes in a settled cluster: how long until a map marks them down, everywhere, and out. */
  crashes: CrashFigure[];
  /** From the last fault healing to every live node holding one map. */
  convergeMs: number[];
  /** Map epochs proposed in the run (by any node). */
  proposals: number;
  rejected: number;
  endMs: number;
}

export function nodeNames(count: number): string[] {
  const width = String(count - 1).length;
  return Array.from({ length: count }, (_, i) => `n${String(i).padStart(width, "0")}`);
}

/** The operator's map every node starts (and restarts) from. */
export function baseMap(nodes: readonly string[]): ClusterMap {
  return {
    epoch: 1,
    nodes: nodes.map((id, i) => ({
      id,
      addresses: [`198.18.${i >> 8}.${i & 255}:7100`, `198.19.${i >> 8}.${i & 255}:7100`],
      state: "up",
    })),
  };
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
  // Short graces, so that crashes and partitions of up to 2.5 s also end with nodes out.
  const agreement = defaultAgreementConfig(prng.pick([1_000, 1_500, 2_000]));
  return { seed, nodes, config, agreement, network, durationMs, faults };
}

/** Loss streaks are kept per kind of datagram (network.ts): each kind gets the loss the model allows. */
const LANES: Record<Datagram["kind"], string> = {
  heartbeat: "",
  probe: "",
  map: "/map",
  news: "/news",
  load: "/load",
};

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
  const maps = new MapChecker(
    scenario.nodes,
    config,
    scenario.agreement,
    scenario.network.delayMsMax,
    checker.bounds,
    world,
  );
  const news = new NewsChecker(config, scenario.network.delayMsMax, checker.bounds, world, scenario.nodes);
  const base = baseMap(scenario.nodes);
  const incarnations = new Map<string, number>();
  const cores = new Map<string, MembershipCore>();
  const start = (node: string, nowMs: number) => {
    const incarnation = (incarnations.get(node) ?? 0) + 1;
    incarnations.set(node, incarnation);
    checker.forgetObserver(node);
    maps.forget(node);
    news.onStart(node, nowMs);
    const agreement = scenario.agreement;
    cores.set(node, new MembershipCore({ self: node, incarnation, map: base, config, agreement, nowMs }));
  };
  for (const node of scenario.nodes) start(node, 0);
  const lastFaultMs = scenario.faults.reduce((m, f) => Math.max(m, f.atMs), 0);
  const endMs = Math.max(scenario.durationMs, lastFaultMs) + maps.bounds.convergeMs + 500;
  let nextFault = 0;
  let rejected = 0;
  let liveNodeMs = 0;
  let heartbeats = 0;
  let mapDatagrams = 0;
  let newsDatagrams = 0;
  let proposals = 0;
  const failed = () => checker.failed || maps.failed || news.failed;
  let nowMs = 0;
  for (; nowMs <= endMs && !failed(); nowMs += config.tickMs) {
    for (; nextFault < scenario.faults.length; nextFault++) {
      const fault = scenario.faults[nextFault] as Fault;
      if (fault.atMs > nowMs) break;
      applyFault(world, fault);
      maps.onFault();
      if (fault.kind === "crash" && cores.has(fault.node)) {
        rejected += (cores.get(fault.node) as MembershipCore).rejected;
        maps.onCrash(fault.node, nowMs, cores);
        news.onCrash(nowMs);
        cores.delete(fault.node);
      }
      if (fault.kind === "restart" && !cores.has(fault.node)) {
        maps.onRestart(fault.node);
        start(fault.node, nowMs);
      }
    }
    checker.observe(nowMs, cores);
    maps.observe(nowMs);
    news.observe(nowMs, cores);
    for (const p of network.deliver(nowMs)) {
      const core = cores.get(p.to);
      if (core === undefined) continue;
      const events = core.onDatagram(p.bytes, p.channel, nowMs);
      checker.onEvents(p.to, events);
      maps.onEvents(p.to, events);
    }
    for (const [node, core] of cores) {
      const { datagrams, events } = core.tick(nowMs);
      checker.onEvents(node, events);
      maps.onEvents(node, events);
      for (const e of events) if (e.kind === "map" && e.how === "proposed") proposals++;
      for (const d of datagrams) {
        if (d.kind === "map") mapDatagrams++;
        else if (d.kind === "news") newsDatagrams++;
        else heartbeats++;
        network.send(node, d.to, d.channel, d.bytes, nowMs, LANES[d.kind]);
      }
    }
    checker.check(nowMs, cores);
    maps.check(nowMs, cores);
    news.check(nowMs, cores);
    liveNodeMs += cores.size * config.tickMs;
  }
  if (!failed()) maps.finish(nowMs - config.tickMs, cores);
  for (const core of cores.values()) rejected += core.rejected;
  return {
    seed: scenario.seed,
    scenario,
    violations: [...checker.violations, ...maps.violations, ...news.violations],
    network: network.stats,
    heartbeatsPerNodePerSecond: (heartbeats * 1_000) / liveNodeMs,
    mapsPerNodePerSecond: (mapDatagrams * 1_000) / liveNodeMs,
    newsPerNodePerSecond: (newsDatagrams * 1_000) / liveNodeMs,
    newsMoveMs: news.moveMs,
    newsBackMs: news.backMs,
    channelDetectMs: checker.channelDetectMs,
    nodeDetectMs: checker.nodeDetectMs,
    crashes: maps.crashes,
    convergeMs: maps.convergeMs,
    proposals,
    rejected,
    endMs: nowMs - config.tickMs,
  };
}

export function runSeed(seed: number): SimResult {
  return runScenario(scenarioOf(seed));
}

/**
 * The scale run: n nodes, light loss; at 1 s one node loses NIC A (until 3 s)
 * and another crashes for good; with a 1 s grace it is out about 2 s later.
 */
export function scaleScenario(count: number, seed: number): Scenario {
  const config = defaultDetectorConfig(1);
  const agreement = defaultAgreementConfig(1_000);
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
    { atMs: 3_000, kind: "nic", node: nicNode, channel: "A", up: true },
  ];
  return { seed, nodes, config, agreement, network, durationMs: 3_500, faults };
}
