// `npm run e2e`: issue 6's chaos scenarios on the local cluster, one line per
// scenario with its timings, then `e2e passed=<n> failed=<n>`.
//
//   npm run e2e                          scenarios 1–5 and a soak of 3 rounds
//   npm run e2e -- --soak-rounds 20      the long soak
//   npm run e2e -- --seed 1234           replay a soak's faults
//   npm run e2e -- --only nic-down,soak  some of them
//
// The selection and the run with its report are exported: `npm run e2e:kind`
// (kind/main.ts) runs the same scenarios on a kind cluster through them.
import { parseArgs } from "node:util";
import { harnessUnavailable } from "./harness/ip.ts";
import { LOCAL_CHAOS_DEFAULTS, scenarioContext, startLocalChaos, victimOf } from "./scenarios/local.ts";
import {
  runScenario,
  runSoak,
  SCENARIOS,
  type ScenarioContext,
  type ScenarioReport,
} from "./scenarios/scenarios.ts";

/** The scenarios' names, in the order they run, the soak last. */
export const SCENARIO_NAMES = [...SCENARIOS.map((s) => s.name), "soak"];

/** parseArgs options both entry points take. */
export const SELECTION_OPTIONS = {
  "soak-rounds": { type: "string", default: "3" },
  seed: { type: "string" },
  only: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export interface Selection {
  rounds: number;
  seed: number;
  only: string[];
}

/** The selection from parsed flags, or the line saying what is wrong with them. */
export function selectionOf(values: {
  "soak-rounds"?: string;
  seed?: string;
  only?: string;
}): Selection | { error: string } {
  const rounds = Number(values["soak-rounds"] ?? "3");
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isInteger(rounds) || rounds < 0 || !Number.isInteger(seed))
    return { error: "--soak-rounds and --seed take whole numbers" };
  const only = values.only?.split(",").map((s) => s.trim()) ?? SCENARIO_NAMES;
  const unknown = only.filter((n) => !SCENARIO_NAMES.includes(n));
  if (unknown.length > 0)
    return { error: `no scenario ${unknown.join(", ")}; there are: ${SCENARIO_NAMES.join(", ")}` };
  return { rounds, seed, only };
}

/** Runs the selected scenarios on `ctx`'s cluster, a line each; the counts for `e2e passed=<n> failed=<n>`. */
export async function runSelected(
  ctx: ScenarioContext,
  selection: Selection,
): Promise<{ passed: number; failed: number }> {
  let passed = 0;
  let failed = 0;
  const report = (r: ScenarioReport) => {
    const timings = Object.entries(r.timings).map(([k, v]) => `${k}=${v}`);
    console.log(`scenario ${r.name}: passed ${timings.join(" ")}`);
    for (const check of r.checks) console.log(`  ✓ ${check}`);
  };
  const attempt = async (name: string, run: () => Promise<ScenarioReport>) => {
    if (!selection.only.includes(name)) return;
    try {
      report(await run());
      passed++;
    } catch (error) {
      console.log(`scenario ${name}: FAILED ${(error as Error).message}`);
      failed++;
    }
  };
  for (const [i, scenario] of SCENARIOS.entries())
    await attempt(scenario.name, () => runScenario(ctx, scenario, victimOf(ctx.cluster.nodes, i)));
  if (selection.rounds > 0)
    await attempt("soak", () =>
      runSoak(ctx, { rounds: selection.rounds, seed: selection.seed, victims: ctx.cluster.nodes.slice(1) }),
    );
  return { passed, failed };
}

const HELP = `Usage: npm run e2e -- [--soak-rounds N] [--seed N] [--only a,b,...]

Runs Mosaic's chaos scenarios on the local cluster (nodes as network
namespaces, the real control plane, helm install of the chart): ${SCENARIO_NAMES.join(", ")}.
Needs Linux and root. Prints a line per scenario, and last: e2e passed=<n> failed=<n>.`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: SELECTION_OPTIONS });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const selection = selectionOf(values);
  if ("error" in selection) {
    console.error(`${selection.error}\n\n${HELP}`);
    process.exit(2);
  }
  const why = await harnessUnavailable();
  if (why !== undefined) {
    console.error(`e2e: the local cluster cannot run here: ${why}`);
    process.exit(2);
  }
  const options = { ...LOCAL_CHAOS_DEFAULTS, log: (line: string) => console.log(`# ${line}`) };
  const chaos = await startLocalChaos(options);
  let counts: { passed: number; failed: number };
  try {
    counts = await runSelected(scenarioContext(chaos, options), selection);
  } finally {
    await chaos.stop();
  }
  console.log(`e2e passed=${counts.passed} failed=${counts.failed}`);
  process.exit(counts.failed === 0 ? 0 : 1);
}

if (import.meta.main) await main();
