// `npm run e2e`: issue 6's chaos scenarios on the local cluster, one line per
// scenario with its timings, then `e2e passed=<n> failed=<n>`.
//
//   npm run e2e                          scenarios 1–5 and a soak of 3 rounds
//   npm run e2e -- --soak-rounds 20      the long soak
//   npm run e2e -- --seed 1234           replay a soak's faults
//   npm run e2e -- --only nic-down,soak  some of them
import { parseArgs } from "node:util";
import { harnessUnavailable } from "./harness/ip.ts";
import { LOCAL_CHAOS_DEFAULTS, scenarioContext, startLocalChaos, victimOf } from "./scenarios/local.ts";
import { runScenario, runSoak, SCENARIOS, type ScenarioReport } from "./scenarios/scenarios.ts";

const HELP = `Usage: npm run e2e -- [--soak-rounds N] [--seed N] [--only a,b,...]

Runs Mosaic's chaos scenarios on the local cluster (nodes as network
namespaces, the real control plane, helm install of the chart): ${SCENARIOS.map((s) => s.name).join(", ")}, soak.
Needs Linux and root. Prints a line per scenario, and last: e2e passed=<n> failed=<n>.`;

const { values } = parseArgs({
  options: {
    "soak-rounds": { type: "string", default: "3" },
    seed: { type: "string" },
    only: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const rounds = Number(values["soak-rounds"]);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (!Number.isInteger(rounds) || rounds < 0 || !Number.isInteger(seed)) {
  console.error(`--soak-rounds and --seed take whole numbers\n\n${HELP}`);
  process.exit(2);
}
const names = [...SCENARIOS.map((s) => s.name), "soak"];
const only = values.only?.split(",").map((s) => s.trim()) ?? names;
const unknown = only.filter((n) => !names.includes(n));
if (unknown.length > 0) {
  console.error(`no scenario ${unknown.join(", ")}; there are: ${names.join(", ")}`);
  process.exit(2);
}
const why = await harnessUnavailable();
if (why !== undefined) {
  console.error(`e2e: the local cluster cannot run here: ${why}`);
  process.exit(2);
}

const options = { ...LOCAL_CHAOS_DEFAULTS, log: (line: string) => console.log(`# ${line}`) };
const chaos = await startLocalChaos(options);
const ctx = scenarioContext(chaos, options);
let passed = 0;
let failed = 0;
const report = (r: ScenarioReport) => {
  const timings = Object.entries(r.timings).map(([k, v]) => `${k}=${v}`);
  console.log(`scenario ${r.name}: passed ${timings.join(" ")}`);
  for (const check of r.checks) console.log(`  ✓ ${check}`);
};
const attempt = async (name: string, run: () => Promise<ScenarioReport>) => {
  if (!only.includes(name)) return;
  try {
    report(await run());
    passed++;
  } catch (error) {
    console.log(`scenario ${name}: FAILED ${(error as Error).message}`);
    failed++;
  }
};
try {
  for (const [i, scenario] of SCENARIOS.entries())
    await attempt(scenario.name, () => runScenario(ctx, scenario, victimOf(ctx.cluster.nodes, i)));
  if (rounds > 0)
    await attempt("soak", () => runSoak(ctx, { rounds, seed, victims: ctx.cluster.nodes.slice(1) }));
} finally {
  await chaos.stop();
}
console.log(`e2e passed=${passed} failed=${failed}`);
process.exit(failed === 0 ? 0 : 1);
