// `npm run e2e:kind`: issue 6's chaos scenarios on a kind cluster. Creates
// the cluster (1 control plane, N workers, each with two extra NICs on two
// Docker networks), installs Multus, whereabouts and the macvlan plugin,
// builds and loads the images, `helm install`s the chart and runs the same
// scenarios as `npm run e2e` (run.ts), a line each, then
// `e2e passed=<n> failed=<n>`. The cluster and its networks are deleted
// afterwards, pass or fail, unless --keep.
//
// Without docker (an engine that answers), kind, kubectl or helm it prints
// `e2e:kind skipped: <what is missing>; needs ...` and exits 0: a machine
// without a container runtime is not a failure (npm run e2e covers the same
// scenarios on the local cluster there). --require-runtime makes it exit 3.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runSelected, SCENARIO_NAMES, SELECTION_OPTIONS, selectionOf } from "../run.ts";
import { startKindChaos } from "../scenarios/kind.ts";
import { LOCAL_CHAOS_DEFAULTS } from "../scenarios/local.ts";
import { KindCluster } from "./cluster.ts";
import { chartValues, DEFAULT_CLUSTER_NAME, kindPlan, MAX_WORKERS } from "./plan.ts";
import { missingPrerequisite } from "./prerequisites.ts";

const HELP = `Usage: npm run e2e:kind -- [--workers N] [--name NAME] [--keep] [--node-image IMAGE]
                            [--soak-rounds N] [--seed N] [--only a,b,...] [--require-runtime]

Creates a kind cluster "${DEFAULT_CLUSTER_NAME}" (1 control plane, --workers workers, 3 by
default, 2 to ${MAX_WORKERS}), each worker on two extra Docker networks for the agents'
channels A and B (Multus, macvlan, whereabouts), builds and loads the images,
installs the chart with helm and runs the chaos scenarios: ${SCENARIO_NAMES.join(", ")}.
Prints a line per scenario, and last: e2e passed=<n> failed=<n>.

  --keep             keep the cluster afterwards (kubeconfig path printed);
                     delete it later with: kind delete cluster --name NAME
                     and docker network rm NAME-nodes NAME-a NAME-b
  --node-image       kind's node image (Kubernetes version), kind's default otherwise
  --require-runtime  exit 3 instead of 0 when docker, kind, kubectl or helm is missing

Needs docker, kind >= 0.20, kubectl and helm 3 (README, "Running on kind").`;

const { values } = parseArgs({
  options: {
    ...SELECTION_OPTIONS,
    workers: { type: "string", default: "3" },
    name: { type: "string", default: DEFAULT_CLUSTER_NAME },
    keep: { type: "boolean", default: false },
    "node-image": { type: "string" },
    "require-runtime": { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const selection = selectionOf(values);
let plan: ReturnType<typeof kindPlan>;
try {
  if ("error" in selection) throw new Error(selection.error);
  plan = kindPlan({
    name: values.name,
    workers: Number(values.workers),
    ...(values["node-image"] === undefined ? {} : { nodeImage: values["node-image"] }),
  });
} catch (error) {
  console.error(`${(error as Error).message}\n\n${HELP}`);
  process.exit(2);
}
if ("error" in selection) process.exit(2);

const missing = await missingPrerequisite();
if (missing !== undefined) {
  console.log(`e2e:kind skipped: ${missing}`);
  process.exit(values["require-runtime"] ? 3 : 0);
}

const log = (line: string) => console.log(`# ${line}`);
const options = { ...LOCAL_CHAOS_DEFAULTS, log };
const dir = await mkdtemp(join(tmpdir(), `mosaic-${plan.name}-`));
const kind = new KindCluster(plan, dir, log);
// Ctrl-C deletes the cluster too (unless --keep): what it started is not left behind.
process.once("SIGINT", () => {
  console.log("# interrupted");
  void (values.keep ? Promise.resolve() : kind.delete()).finally(() => process.exit(130));
});
let counts = { passed: 0, failed: 0 };
let code = 1;
try {
  await kind.create(chartValues(plan, options));
  const { context } = await startKindChaos(kind, options);
  counts = await runSelected(context, selection);
  code = counts.failed === 0 ? 0 : 1;
} catch (error) {
  console.log(`e2e:kind: the cluster did not come up: ${(error as Error).message}`);
  counts.failed++;
} finally {
  if (values.keep) log(`kept: kind cluster ${plan.name}, kubeconfig ${kind.kubeconfig}`);
  else {
    await kind.delete();
    await rm(dir, { recursive: true, force: true });
  }
}
console.log(`e2e passed=${counts.passed} failed=${counts.failed}`);
process.exit(code);
