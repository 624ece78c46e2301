// Issue 6's chaos scenarios, defined once for any ChaosCluster. Each runs
// under an application on the client node that writes and reads media files
// through its local agent the whole time, breaks something on another node,
// waits for the cluster to heal as the API shows it, and then stops the
// application, which reads every file back whole at its last acknowledged
// generation and checks every piece is where placement puts it. A scenario
// returns its timings (detection, failover, recovery) and the checks it made;
// any failed check throws.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { JsonLinesProcess, Line } from "../../node-agent/test/helpers/netns.ts";
import type { WorkloadSummary } from "../../node-agent/test/netns/workload.ts";
import { TEMPLATE_HASH } from "../../operator/src/agent-daemonset.ts";
import { ROLLING_AGENT } from "../../operator/src/agent-rollout.ts";
import type { ChaosCluster } from "./chaos-cluster.ts";
import { type Observer, podReady, restarts } from "./observe.ts";

export interface ScenarioReport {
  name: string;
  /** Milliseconds from the fault, by what was reached. */
  timings: Record<string, number>;
  checks: string[];
}

export interface ScenarioContext {
  cluster: ChaosCluster;
  observe: Observer;
  /** The StripedVolume the application uses. */
  volume: string;
  /** The node the application runs on: faults spare it. */
  clientNode: string;
  /** The agents' down → Lost grace, as the chart was installed with. */
  outGraceMs: number;
  /** Files the application keeps (each `fileBytes`), readers and writers. */
  application: { files: number; fileBytes: number; readers: number; writers: number };
  /** For lines of progress. */
  log(line: string): void;
}

/** What a fault found while the application ran: timings from the fault, and checks made. */
export interface FaultResult {
  timings: Record<string, number>;
  checks: string[];
}

export interface Scenario {
  name: string;
  title: string;
  /** Breaks something on `victim` and waits for the cluster to heal, with the application running. */
  fault(ctx: ScenarioContext, victim: string, app: JsonLinesProcess): Promise<FaultResult>;
  /** Checks once the application has stopped, given what it last acknowledged. */
  after?(ctx: ScenarioContext, victim: string, acked: Record<string, number>): Promise<string[]>;
  /** Cheap enough (seconds) for the soak to draw. */
  soak: boolean;
  /** It restarts the application's own agent too: the application waits for it (WorkloadArgs.waitForAgent). */
  restartsClientAgent?: boolean;
}

/** Runs one scenario under the application; throws on a failed check. */
export async function runScenario(
  ctx: ScenarioContext,
  scenario: Scenario,
  victim: string,
): Promise<ScenarioReport> {
  let result: FaultResult = { timings: {}, checks: [] };
  const { summary } = await underLoad(
    ctx,
    async (app) => {
      result = await scenario.fault(ctx, victim, app);
    },
    scenario.restartsClientAgent === true,
  );
  const checks = [...result.checks, ...clean(summary, ctx.application.files)];
  if (scenario.after !== undefined) checks.push(...(await scenario.after(ctx, victim, summary.acked)));
  return { name: scenario.name, timings: result.timings, checks };
}

/** A seeded PRNG (mulberry32): the soak's faults replay exactly from its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * ≥ 1 rounds of faults drawn from the cheap scenarios, on nodes drawn from
 * `victims`, one after another under one application that runs throughout.
 */
export async function runSoak(
  ctx: ScenarioContext,
  options: { rounds: number; seed: number; victims: readonly string[] },
): Promise<ScenarioReport> {
  const random = seeded(options.seed);
  const pool = SCENARIOS.filter((s) => s.soak);
  const timings: Record<string, number> = {};
  const drawn: string[] = [];
  const { summary } = await underLoad(ctx, async (app) => {
    for (let round = 1; round <= options.rounds; round++) {
      const scenario = pool[Math.floor(random() * pool.length)] as Scenario;
      const victim = options.victims[Math.floor(random() * options.victims.length)] as string;
      const started = performance.now();
      const r = await scenario.fault(ctx, victim, app);
      drawn.push(`${scenario.name}@${victim}`);
      const healedMs = Math.round(performance.now() - started);
      timings.slowest_round_ms = Math.max(timings.slowest_round_ms ?? 0, healedMs);
      ctx.log(
        `soak round ${round}/${options.rounds}: ${scenario.name} on ${victim}, healed in ${healedMs} ms ${JSON.stringify(r.timings)}`,
      );
    }
  });
  return {
    name: "soak",
    timings,
    checks: [
      `seed ${options.seed}: ${options.rounds} rounds (${drawn.join(", ")})`,
      ...clean(summary, ctx.application.files),
    ],
  };
}

/** How often the API is polled: each poll is a kubectl process, which this 2-core machine feels. */
const POLL_MS = 250;
/** A pod deleted or killed is back, Ready, and its volume Healthy within this. */
const RECOVERY_MS = 120_000;

/**
 * Polls until `condition` holds; the ms it took (from `since`, default now),
 * or throws naming `what` and what `state` last described.
 */
export async function within(
  timeoutMs: number,
  what: string,
  condition: () => Promise<boolean>,
  since = performance.now(),
  state?: () => Promise<unknown>,
): Promise<number> {
  for (;;) {
    if (await condition()) return Math.round(performance.now() - since);
    if (performance.now() - since > timeoutMs) {
      const last = state === undefined ? "" : `; last seen: ${JSON.stringify(await state().catch(String))}`;
      throw new Error(`no ${what} within ${timeoutMs} ms${last}`);
    }
    await sleep(POLL_MS);
  }
}

/** The application on the client node, running `body` meanwhile; returns its summary once every file is checked. */
async function underLoad(
  ctx: ScenarioContext,
  body: (app: JsonLinesProcess) => Promise<void>,
  waitForAgent = false,
): Promise<{ summary: WorkloadSummary; app: JsonLinesProcess }> {
  const agent = (await ctx.observe.clusterNode(ctx.clientNode))?.status?.channelA?.address;
  assert.ok(agent !== undefined, `${ctx.clientNode}'s ClusterNode has no channel A address`);
  const app = ctx.cluster.startApplication(ctx.clientNode, {
    agent,
    volume: ctx.volume,
    files: ctx.application.files,
    sizeBytes: ctx.application.fileBytes,
    readers: ctx.application.readers,
    writers: ctx.application.writers,
    // 8 attempts pause 7 s in all: a write whose owner is restarting (a pod replaced, an upgrade)
    // is refused until the map has the owner down or its new agent listens.
    writeAttempts: 8,
    waitForAgent,
  });
  try {
    await app.until((l) => l.kind === "ready", 120_000, "the application's files written");
    await sleep(1_000);
    await body(app);
    app.command("stop");
    const summary = (await app.until(
      (l) => l.kind === "summary",
      180_000,
      "the application's summary",
    )) as unknown as WorkloadSummary;
    return { summary, app };
  } finally {
    await app.kill9();
  }
}

/** The application's verdict as checks: no error, nothing stale or corrupt, every file whole, every piece placed. */
function clean(summary: WorkloadSummary, files: number): string[] {
  const detail = JSON.stringify({ ...summary, acked: undefined });
  assert.equal(summary.readErrors, 0, `read errors: ${detail}`);
  assert.equal(summary.writeFailures, 0, `write failures: ${detail}`);
  assert.equal(summary.stale, 0, `stale reads: ${detail}`);
  assert.equal(summary.corrupt, 0, `corrupt reads: ${detail}`);
  assert.equal(summary.verified, files, `files verified at the end: ${detail}`);
  assert.equal(summary.piecesNotOk, 0, `pieces not in place: ${detail}`);
  const waited =
    summary.agentWaits === 0
      ? ""
      : `; ${summary.agentWaits} ops waited ${summary.agentWaitMs} ms in all for the local agent's restart`;
  return [
    `${summary.reads} reads and ${summary.writes} writes, 0 errors (${summary.writeRetries} write retries${waited})`,
    `0 stale, 0 corrupt; ${files} files read back whole, every piece in place`,
  ];
}

async function healthy(ctx: ScenarioContext, since: number): Promise<number> {
  return within(
    RECOVERY_MS,
    `volume ${ctx.volume} Healthy`,
    async () => (await ctx.observe.volume(ctx.volume))?.phase === "Healthy",
    since,
    () => ctx.observe.volume(ctx.volume),
  );
}

/** Waits out the agent on `victim` going and its successor (or itself, restarted) Ready again. */
async function agentReturns(
  ctx: ScenarioContext,
  victim: string,
  since: number,
  back: (pod: Awaited<ReturnType<Observer["agentPod"]>>) => boolean,
): Promise<{ degradedMs: number; readyMs: number }> {
  let degradedMs: number | undefined;
  const readyMs = await within(
    RECOVERY_MS,
    `the agent on ${victim} back and Ready`,
    async () => {
      if (degradedMs === undefined && (await ctx.observe.volume(ctx.volume))?.phase !== "Healthy")
        degradedMs = Math.round(performance.now() - since);
      const pod = await ctx.observe.agentPod(victim);
      return back(pod) && podReady(pod);
    },
    since,
  );
  return { degradedMs: degradedMs ?? -1, readyMs };
}

const podDeleted: Scenario = {
  name: "pod-delete",
  title: "kubectl delete pod of one agent: the DaemonSet brings it back",
  soak: true,
  async fault(ctx, victim) {
    const old = await ctx.observe.agentPod(victim);
    const oldUid = old?.metadata?.uid;
    assert.ok(podReady(old), `the agent on ${victim} is Ready before the fault`);
    const at = performance.now();
    await ctx.cluster.kubectl([
      "delete",
      "pod",
      "-n",
      ctx.cluster.namespace,
      old?.metadata?.name ?? "",
      "--wait=false",
    ]);
    const r = await agentReturns(ctx, victim, at, (pod) => pod !== undefined && pod.metadata?.uid !== oldUid);
    const timings = {
      degraded_ms: r.degradedMs,
      replacement_ready_ms: r.readyMs,
      healthy_ms: await healthy(ctx, at),
    };
    return { timings, checks: [`a new agent pod on ${victim} Ready, the volume Healthy again`] };
  },
};

const agentKilled: Scenario = {
  name: "agent-kill9",
  title: "kill -9 of one agent process: restarted in place",
  soak: true,
  async fault(ctx, victim) {
    const pod = await ctx.observe.agentPod(victim);
    const before = restarts(pod);
    assert.ok(podReady(pod), `the agent on ${victim} is Ready before the fault`);
    const at = performance.now();
    await ctx.cluster.killPod(pod?.metadata?.name ?? "");
    const r = await agentReturns(ctx, victim, at, (p) => restarts(p) > before);
    const timings = {
      degraded_ms: r.degradedMs,
      restarted_ready_ms: r.readyMs,
      healthy_ms: await healthy(ctx, at),
    };
    return {
      timings,
      checks: [`the agent on ${victim} restarted in its pod (restart ${before + 1}) and Ready`],
    };
  },
};

/** Ops of the application that were in flight at `at` (its wall clock), and when the last of them ended. */
function inFlightAt(app: JsonLinesProcess, atWallMs: number): { count: number; stallMs: number } {
  const end = (l: Line) => (l.at as number) + (l.ms as number);
  const caught = app.lines.filter((l) => l.kind === "op" && (l.at as number) < atWallMs && end(l) > atWallMs);
  return { count: caught.length, stallMs: Math.max(0, ...caught.map((l) => end(l) - atWallMs)) };
}

const interfaceDown: Scenario = {
  name: "nic-down",
  title: "ip link set net1 down on one node: its traffic moves to net2, and back",
  soak: true,
  async fault(ctx, victim, app) {
    const timings: Record<string, number> = {};
    const channel = (await ctx.observe.clusterNode(victim))?.status;
    assert.equal(channel?.activeChannel, "A", `${victim} is on channel A before the fault`);
    const wallAt = Date.now();
    const at = performance.now();
    await ctx.cluster.setLink(victim, "net1", false);
    let phase: string | undefined;
    try {
      timings.channel_b_active_ms = await within(
        30_000,
        `${victim}'s ClusterNode on channel B`,
        async () => {
          const s = (await ctx.observe.clusterNode(victim))?.status;
          return s?.channelA?.state === "Down" && s.activeChannel === "B";
        },
        at,
        async () => {
          const s = (await ctx.observe.clusterNode(victim))?.status;
          return {
            channelA: s?.channelA,
            channelB: s?.channelB,
            active: s?.activeChannel,
            ready: s?.conditions,
          };
        },
      );
      await sleep(2_000);
      phase = (await ctx.observe.clusterNode(victim))?.status?.phase;
    } finally {
      await ctx.cluster.setLink(victim, "net1", true);
    }
    const flight = inFlightAt(app, wallAt);
    timings.in_flight_done_ms = flight.stallMs;
    assert.equal(phase, "Up", `a NIC failure is not a node failure: ${victim} is ${phase}`);
    const upAt = performance.now();
    timings.channel_a_back_ms = await within(
      30_000,
      `${victim}'s ClusterNode back on channel A`,
      async () => {
        const s = (await ctx.observe.clusterNode(victim))?.status;
        return s?.channelA?.state === "Up" && s.activeChannel === "A";
      },
      upAt,
    );
    return {
      timings,
      checks: [
        `${victim} stayed Up; its ClusterNode showed channel A Down and B active, then A again`,
        `${flight.count} ops in flight at the fault finished ${flight.stallMs} ms after it`,
      ],
    };
  },
};

/**
 * Cuts `victim` off until it is Lost (`whenLost` runs then) and its pieces
 * are rebuilt on the others, the volume Healthy at the map that has it out;
 * then plugs it back in and waits for it to rejoin and the volume to settle.
 */
async function loseNode(
  ctx: ScenarioContext,
  victim: string,
  timings: Record<string, number>,
  whenLost: () => Promise<void> = async () => {},
): Promise<void> {
  const at = performance.now();
  const phaseOf = async () => (await ctx.observe.clusterNode(victim))?.status?.phase;
  await ctx.cluster.setConnected(victim, false);
  try {
    // The agents' own verdict (heartbeats), then the API's (the agent's Lease lapsed).
    const heldMap = async () => (await ctx.observe.clusterNode(ctx.clientNode))?.status?.observedMap;
    timings.agents_down_ms = await within(
      30_000,
      `the agents' map with ${victim} down`,
      async () => {
        const map = await heldMap();
        return map?.down?.includes(victim) === true || map?.out?.some((o) => o.node === victim) === true;
      },
      at,
      heldMap,
    );
    timings.api_down_ms = await within(30_000, `${victim} Down`, async () => (await phaseOf()) !== "Up", at);
    timings.lost_ms = await within(
      ctx.outGraceMs + 60_000,
      `${victim} Lost`,
      async () => (await phaseOf()) === "Lost",
      at,
      phaseOf,
    );
    await whenLost();
    // The map the agents hold (the client node's report), once the operator has published it out.
    timings.map_out_ms = await within(
      60_000,
      `the agents' map with ${victim} out`,
      async () => (await heldMap())?.out?.some((o) => o.node === victim) === true,
      at,
      heldMap,
    );
    const epoch = (await heldMap())?.epoch ?? 0;
    let rebuildingMs: number | undefined;
    timings.healthy_ms = await within(
      RECOVERY_MS,
      `volume ${ctx.volume} Healthy at epoch ≥ ${epoch} (${victim} out)`,
      async () => {
        const status = await ctx.observe.volume(ctx.volume);
        if (status?.phase === "Rebuilding") rebuildingMs ??= Math.round(performance.now() - at);
        return status?.phase === "Healthy" && (status.epoch ?? 0) >= epoch;
      },
      at,
      () => ctx.observe.volume(ctx.volume),
    );
    // Seen only if the rebuild outlasts a poll of the API.
    if (rebuildingMs !== undefined) timings.rebuilding_ms = rebuildingMs;
    timings.node_not_ready_ms = await within(
      90_000,
      `Node ${victim} NotReady`,
      async () => (await ctx.observe.nodeReady(victim)) !== "True",
      at,
    );
  } finally {
    await ctx.cluster.setConnected(victim, true);
  }
  const back = performance.now();
  timings.rejoined_ms = await within(
    RECOVERY_MS,
    `${victim} Up again`,
    async () => (await phaseOf()) === "Up" && podReady(await ctx.observe.agentPod(victim)),
    back,
  );
  timings.healthy_after_rejoin_ms = await healthy(ctx, back);
}

/** After a node returned: every file read through its own agent is exactly the last acknowledged generation. */
async function servesOnlyCurrent(
  ctx: ScenarioContext,
  node: string,
  acked: Record<string, number>,
): Promise<string> {
  const agent = (await ctx.observe.clusterNode(node))?.status?.channelA?.address;
  assert.ok(agent !== undefined);
  const check = ctx.cluster.startApplication(node, {
    agent,
    volume: ctx.volume,
    files: ctx.application.files,
    sizeBytes: ctx.application.fileBytes,
    readers: 0,
    writers: 0,
    verifyOnly: true,
    expect: acked,
  });
  try {
    const seen = (await check.until(
      (l) => l.kind === "summary",
      120_000,
      `${node}'s verification`,
    )) as unknown as WorkloadSummary;
    assert.equal(seen.stale, 0, `${node} served stale data: ${JSON.stringify(seen.errors)}`);
    assert.equal(seen.corrupt, 0, `${node} served corrupt data: ${JSON.stringify(seen.errors)}`);
    assert.equal(seen.readErrors, 0, `${node} failed reads: ${JSON.stringify(seen.errors)}`);
    assert.equal(seen.verified, Object.keys(acked).length);
    return `read through ${node}'s own agent after it returned: ${seen.verified} files, each the last acknowledged generation`;
  } finally {
    await check.kill9();
  }
}

const nodeLost: Scenario = {
  name: "node-lost",
  title:
    "a whole node cut off past the grace: Lost, rebuilt elsewhere, Healthy; back, it serves nothing stale",
  soak: false,
  async fault(ctx, victim) {
    const timings: Record<string, number> = {};
    await loseNode(ctx, victim, timings);
    return {
      timings,
      checks: [
        `${victim} Down, Lost after the ${ctx.outGraceMs} ms grace, its Node NotReady; the map has it out and the volume is Healthy at that map`,
      ],
    };
  },
  async after(ctx, victim, acked) {
    return [await servesOnlyCurrent(ctx, victim, acked)];
  },
};

const leaderKilled: Scenario = {
  name: "operator-leader-kill9",
  title: "the operator's leader killed as a node goes Lost: a new leader takes over and the rebuild finishes",
  soak: false,
  async fault(ctx, victim) {
    const timings: Record<string, number> = {};
    const checks: string[] = [];
    await loseNode(ctx, victim, timings, async () => {
      // The moment it is Lost: the map with it out and the rebuild are still to come, or just begun.
      const leader = await ctx.observe.leader();
      assert.ok(leader !== undefined, "an operator leads");
      const at = performance.now();
      await ctx.cluster.killPod(leader.pod);
      let next: Awaited<ReturnType<Observer["leader"]>>;
      timings.new_leader_ms = await within(
        60_000,
        "a new operator process leading",
        async () => {
          next = await ctx.observe.leader();
          return next !== undefined && next.identity !== leader.identity;
        },
        at,
      );
      const who =
        next?.pod === leader.pod ? `${leader.pod} again, restarted` : `the other replica, ${next?.pod}`;
      checks.push(
        `kill -9 of the leader ${leader.pod} as ${victim} went Lost; ${who} led ${timings.new_leader_ms} ms later`,
      );
    });
    checks.push(`the rebuild finished: Healthy ${timings.healthy_ms} ms after the cut`);
    return { timings, checks };
  },
};

const agentRollout: Scenario = {
  name: "agent-rollout",
  title: "helm upgrade rolls the agents one node at a time, each once the volume is Healthy again",
  soak: false,
  restartsClientAgent: true,
  async fault(ctx) {
    const hashOf = (pod: Awaited<ReturnType<Observer["agentPod"]>>) =>
      pod?.metadata?.annotations?.[TEMPLATE_HASH];
    const before = await ctx.observe.agentPods(ctx.cluster.nodes);
    const old = new Set(before.map(hashOf));
    assert.equal(old.size, 1, "every agent on one template before the upgrade");
    const earlierEvents = new Set((await ctx.observe.events(ROLLING_AGENT)).map((e) => e.metadata?.name));
    const at = performance.now();
    // A value the agents' template carries (their --rebuild-rate): a new template, so a rollout.
    await ctx.cluster.upgrade(["agent.rebuildRate=12MiB"]);
    const rolled: string[] = [];
    let peakUnavailable = 0;
    const timings: Record<string, number> = {};
    timings.rollout_done_ms = await within(
      300_000,
      "every agent on the new template, Ready, and the volume Healthy",
      async () => {
        const phase = (await ctx.observe.volume(ctx.volume))?.phase;
        // One kubectl call for every agent pod, so a poll is short enough to see each node go.
        const pods = await ctx.observe.agentPods(ctx.cluster.nodes);
        const unavailable = pods.filter((p) => !podReady(p)).length;
        peakUnavailable = Math.max(peakUnavailable, unavailable);
        for (const [i, pod] of pods.entries()) {
          const node = ctx.cluster.nodes[i] as string;
          if (pod !== undefined && !old.has(hashOf(pod)) && !rolled.includes(node)) {
            rolled.push(node);
            timings[`${node}_rolled_ms`] = Math.round(performance.now() - at);
          }
        }
        return rolled.length === ctx.cluster.nodes.length && unavailable === 0 && phase === "Healthy";
      },
      at,
    );
    assert.equal(peakUnavailable, 1, "at most one agent unavailable at any time, and one at a time");
    // What the operator read when it decided each deletion, from its Events: a sample taken
    // here could fall between its read and its delete, on either side.
    const decisions = (await ctx.observe.events(ROLLING_AGENT))
      .filter((e) => !earlierEvents.has(e.metadata?.name))
      .map((e) => e.message ?? "");
    for (const node of ctx.cluster.nodes)
      assert.ok(
        decisions.some((d) => d.includes(` on ${node} `)),
        `a deletion on ${node} among: ${decisions.join(" | ")}`,
      );
    for (const decision of decisions) {
      assert.match(decision, new RegExp(`volumes: .*\\b${ctx.volume} Healthy\\b`), decision);
      assert.doesNotMatch(decision, /\b(Degraded|Rebuilding|Pending|Failed|undefined)\b/, decision);
    }
    return {
      timings,
      checks: [
        `agents rolled in turn: ${rolled.join(", ")}, never two unavailable at once`,
        `each deleted while every volume was Healthy, by the operator's ${decisions.length} RollingAgent Events`,
      ],
    };
  },
};

export const SCENARIOS: readonly Scenario[] = [
  podDeleted,
  agentKilled,
  interfaceDown,
  nodeLost,
  leaderKilled,
  agentRollout,
];
