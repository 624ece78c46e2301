// The gateway as `mosaic up` runs it: one agent process started by
// LocalCluster with --http on the port its plan gives it (base + 2n + i),
// serving PUT, GET with Range and listing, and logging each request at
// debug (MOSAIC_LOG_LEVEL) to its log file.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LocalCluster } from "../../src/cli/local-cluster.ts";
import { type LocalPlan, planLocalCluster } from "../../src/cli/local-plan.ts";
import { ask } from "./gateway-cluster.ts";

let root: string;
let plan: LocalPlan;
let cluster: LocalCluster | undefined;
const levelBefore = process.env.MOSAIC_LOG_LEVEL;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "mosaic-agent-http-"));
  const basePort = 20_000 + 3 * Math.floor(Math.random() * 10_000);
  plan = planLocalCluster({ nodes: 1, dir: root, basePort, capacityBytes: 2 ** 30 });
  process.env.MOSAIC_LOG_LEVEL = "debug"; // the agent inherits it
  cluster = await LocalCluster.start(plan, () => {});
  await cluster.waitReady(20_000);
});
after(async () => {
  if (levelBefore === undefined) delete process.env.MOSAIC_LOG_LEVEL;
  else process.env.MOSAIC_LOG_LEVEL = levelBefore;
  await cluster?.stop();
  await rm(root, { recursive: true, force: true });
});

test("an agent started with --http serves its volumes on the planned port", async () => {
  const agent = plan.agents[0];
  assert.ok(agent);
  const [, port] = agent.http.split(":");
  assert.equal(Number(port), Number(agent.addresses[0].split(":")[1]) + 2);
  const base = `http://${agent.http}`;
  const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) & 0xff));
  assert.equal((await ask(base, "/v1/media/clips/a.mp4", { method: "PUT", body: bytes })).status, 201);
  const part = await ask(base, "/v1/media/clips/a.mp4", { headers: { range: "bytes=1000-1999" } });
  assert.equal(part.status, 206);
  assert.ok(part.body.equals(bytes.subarray(1000, 2000)));
  const list = JSON.parse((await ask(base, "/v1/media/clips/")).body.toString()) as {
    files: { name: string }[];
  };
  assert.deepEqual(
    list.files.map((f) => f.name),
    ["clips/a.mp4"],
  );
  const log = await readFile(agent.logFile, "utf8");
  assert.match(log, /"component":"gateway".*"msg":"http gateway listening"/);
  assert.match(log, /"range":"bytes=1000-1999","status":206,"bytes":1000/);
});
