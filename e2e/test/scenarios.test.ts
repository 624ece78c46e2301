// Issue 6's chaos scenarios on the local cluster (e2e/scenarios/): the real
// control plane, nodes as network namespaces, the harness as kubelet and
// Multus, `helm install` of the chart, a StripedVolume applied with kubectl,
// and an application on node-0 writing and reading media files through its
// agent the whole time. Each scenario prints its timings and checks; the
// soak here is short (MOSAIC_E2E_SOAK_ROUNDS, default 2; `npm run e2e --
// --soak-rounds 20` for the long one) and prints its seed for replay
// (MOSAIC_E2E_SEED). Skipped, with the reason, where the harness cannot run.
import { after, before, describe, type TestContext, test } from "node:test";
import { harnessUnavailable } from "../harness/ip.ts";
import {
  LOCAL_CHAOS_DEFAULTS,
  type LocalChaos,
  scenarioContext,
  startLocalChaos,
  victimOf,
} from "../scenarios/local.ts";
import {
  runScenario,
  runSoak,
  SCENARIOS,
  type ScenarioContext,
  type ScenarioReport,
} from "../scenarios/scenarios.ts";

const skip = await harnessUnavailable();
const options = { ...LOCAL_CHAOS_DEFAULTS, log: (line: string) => console.log(`# ${line}`) };

function print(r: ScenarioReport): void {
  const timings = Object.entries(r.timings).map(([k, v]) => `${k}=${v}`);
  console.log(`# scenario ${r.name}: ${timings.join(" ")}\n${r.checks.map((c) => `#   ✓ ${c}`).join("\n")}`);
}

describe("chaos on the local cluster: helm install, kubectl apply, faults under continuous I/O", {
  skip,
}, () => {
  let chaos: LocalChaos | undefined;
  let ctx: ScenarioContext;
  /** A scenario after one that failed would start from a broken cluster: it is skipped, not run. */
  let broken: string | undefined;

  before(async () => {
    chaos = await startLocalChaos(options);
    ctx = scenarioContext(chaos, options);
  });

  after(async () => {
    if (chaos === undefined) return;
    const { network } = chaos.local;
    await chaos.stop();
    await network.assertGone();
  });

  const guarded = async (t: TestContext, name: string, run: () => Promise<ScenarioReport>) => {
    if (broken !== undefined) {
      t.skip(`the cluster was left broken by ${broken}`);
      return;
    }
    try {
      print(await run());
    } catch (error) {
      broken = name;
      throw error;
    }
  };

  for (const [i, scenario] of SCENARIOS.entries()) {
    test(`${i + 1}. ${scenario.title}`, (t) =>
      guarded(t, scenario.name, () => runScenario(ctx, scenario, victimOf(ctx.cluster.nodes, i))));
  }

  test("6. a randomised soak of faults drawn from the above, its seed printed", (t) => {
    const rounds = Number(process.env.MOSAIC_E2E_SOAK_ROUNDS ?? 2);
    const seed = Number(process.env.MOSAIC_E2E_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`# soak: ${rounds} rounds, seed ${seed} (MOSAIC_E2E_SEED=${seed} replays it)`);
    return guarded(t, "soak", () => runSoak(ctx, { rounds, seed, victims: ctx.cluster.nodes.slice(1) }));
  });
});
