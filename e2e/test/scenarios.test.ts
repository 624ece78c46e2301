// Issue 6's chaos scenarios on the local cluster (e2e/scenarios/): the real
// control plane, nodes as network namespaces, the harness as kubelet and
// Multus, `helm install` of the chart, a StripedVolume applied with kubectl,
// and an application on node-0 writing and reading media files through its
// agent the whole time. Each scenario prints its timings and checks; the
// soak here is short (MOSAIC_E2E_SOAK_ROUNDS, default 2; `npm run e2e --
// --soak-rounds 20` for the long one) and prints its seed for replay
// (MOSAIC_E2E_SEED). Skipped, with the reason, where the harness cannot run.
import assert from "node:assert/strict";
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

  test("every agent serves the volume over HTTP on its pod IP: a PUT through one, a Range GET through another", async (t) => {
    if (chaos === undefined) return t.skip("no cluster");
    const ips = await Promise.all(
      ctx.cluster.nodes.map(async (n) => (await ctx.observe.agentPod(n))?.status?.podIP as string),
    );
    const body = Buffer.alloc(3 * 1024 * 1024 + 17, "mosaic gateway ");
    const url = (ip: string | undefined) => `http://${ip}:8080/v1/${ctx.volume}/gateway/probe.bin`;
    const put = await fetch(url(ips[1]), { method: "PUT", body });
    assert.ok(put.status === 201 || put.status === 204, `PUT answered ${put.status}`);
    const got = await fetch(url(ips[2]), { headers: { range: "bytes=1048570-1048600" } });
    assert.equal(got.status, 206);
    assert.equal(got.headers.get("content-range"), `bytes 1048570-1048600/${body.length}`);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), body.subarray(1048570, 1048601));
    assert.equal((await fetch(url(ips[0]), { method: "DELETE" })).status, 204);
  });

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
