// The simulator's command line: replay one seed, or run many.
//   node node-agent/sim/main.ts --seed=1234          one run, with its scenario and figures
//   node node-agent/sim/main.ts --seeds=1000 [--from=N]   many runs; stops at the first failure
import { parseArgs } from "node:util";
import { reproduceLine, runSeed } from "./simulator.ts";

const USAGE = `Usage: node node-agent/sim/main.ts [--seed=N | --seeds=COUNT [--from=N]]

Runs the membership simulator: nodes, a lossy network and a fault schedule
(partitions, NICs down, crashes, restarts) drawn from a seed, checked against
every invariant of detection, agreement and channel news.

  --seed=N        replay one seed: its scenario, figures and any violation
  --seeds=COUNT   run COUNT seeds (default 1000), stopping at the first failure
  --from=N        the first of those seeds (default: random); failures print
                  the --seed=N line that replays them
  -h, --help      this text`;

function parse() {
  try {
    return parseArgs({
      options: {
        seed: { type: "string" },
        seeds: { type: "string" },
        from: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
}

const values = parse();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function uint32(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffff_ffff) throw new Error(`not a uint32: ${text}`);
  return n;
}

if (values.seed !== undefined) {
  const r = runSeed(uint32(values.seed, 0));
  const { nodes, config, agreement, network, faults } = r.scenario;
  console.log(JSON.stringify({ nodes: nodes.length, config, agreement, network, faults }, null, 1));
  console.log(
    JSON.stringify({
      network: r.network,
      heartbeatsPerNodePerSecond: r.heartbeatsPerNodePerSecond,
      mapsPerNodePerSecond: r.mapsPerNodePerSecond,
      newsPerNodePerSecond: r.newsPerNodePerSecond,
      newsMoveMs: r.newsMoveMs,
      newsBackMs: r.newsBackMs,
      proposals: r.proposals,
      endMs: r.endMs,
    }),
  );
  // Crashes in a settled cluster: crash → first map with it down, → every live node's map, → out.
  for (const c of r.crashes) console.log(`crash ${JSON.stringify(c)}`);
  for (const ms of r.convergeMs) console.log(`maps converged ${ms} ms after the faults healed`);
  for (const v of r.violations) console.log(`violation: ${v}`);
  console.log(r.violations.length === 0 ? `seed=${r.seed} ok` : reproduceLine(r.seed));
  process.exitCode = r.violations.length === 0 ? 0 : 1;
} else {
  const count = uint32(values.seeds, 1_000);
  const from = uint32(values.from, Math.floor(Math.random() * 0xffff_0000));
  const started = performance.now();
  for (let seed = from; seed < from + count; seed++) {
    if (seed > from && (seed - from) % 1_000 === 0)
      console.error(`${seed - from} of ${count} seeds ok (${Math.round(performance.now() - started)} ms)`);
    const r = runSeed(seed);
    if (r.violations.length > 0) {
      for (const v of r.violations) console.log(`violation: ${v}`);
      console.log(reproduceLine(seed));
      process.exit(1);
    }
  }
  console.log(`${count} seeds from ${from} ok in ${Math.round(performance.now() - started)} ms`);
}
