// The status page in a real browser against a real local cluster: three
// agent processes (LocalCluster, as `mosaic up` runs them) and the page
// `mosaic up` serves (serveLocalStatus), opened in headless Chromium
// (Debian's, driven by playwright-core). The page shows every node Up with
// both channels Up at their addresses; after a kill -9 of one agent (by the
// pid this test started) the same page, never reloaded, shows it Down on
// both channels within a bound, over its event stream. A screenshot is
// checked: a PNG of the viewport's size whose pixels are not blank. With
// the event stream refused, the page polls and says so; and what it shows
// is text, never markup, whatever a name holds.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { LocalCluster } from "../../src/cli/local-cluster.ts";
import { type LocalPlan, planLocalCluster } from "../../src/cli/local-plan.ts";
import { silentLogger } from "../../src/log.ts";
import { type LocalStatusPage, serveLocalStatus } from "../../src/status/local-status.ts";
import { StatusFeed } from "../../src/status/status-feed.ts";
import { StatusServer } from "../../src/status/status-server.ts";
import { freeBasePort } from "../cli/cli-helpers.ts";
import { bytesPerPixel, pngFacts } from "./png-check.ts";
import { oneNodeSnapshot } from "./status-fixtures.ts";

// The page's globals as far as the callbacks below use them (the project compiles without the DOM library).
interface ElementLike {
  getAttribute(name: string): string | null;
  querySelectorAll(selector: string): { length: number };
}
declare const document: {
  querySelector(selector: string): ElementLike | null;
  querySelectorAll(selector: string): { length: number };
};

const CHROMIUM = "/usr/bin/chromium";
const VIEWPORT = { width: 1280, height: 800 };
/** Heartbeats call a node down within about a second, agents agree on the map soon after; generous under load. */
const DOWN_SHOWN_MS = 20_000;
const NODES = 3;

const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the browser test`;

/** The text of one cell of a node's row. */
async function nodeCell(page: Page, node: string, cell: string): Promise<string> {
  return ((await page.locator(`tr[data-node="${node}"] ${cell}`).textContent()) ?? "").trim();
}

describe("the status page in headless Chromium, on a real local cluster", { skip, timeout: 180_000 }, () => {
  let root: string;
  let plan: LocalPlan;
  let cluster: LocalCluster | undefined;
  let status: LocalStatusPage | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-status-page-"));
    const basePort = await freeBasePort(NODES);
    plan = planLocalCluster({ nodes: NODES, dir: join(root, "cluster"), basePort, capacityBytes: 2 ** 30 });
    cluster = await LocalCluster.start(plan, () => {});
    await cluster.waitReady(30_000);
    status = await serveLocalStatus(plan, 0, silentLogger());
    browser = await chromium.launch({ executablePath: CHROMIUM });
    page = await browser.newPage({ viewport: VIEWPORT });
  });

  after(async () => {
    await browser?.close();
    await status?.stop();
    await cluster?.stop();
    // The screenshot stays for a person to look at; the cluster's data goes.
    await rm(join(root, "cluster"), { recursive: true, force: true });
  });

  test("shows every node and both its channels, then a killed agent Down without a reload", async () => {
    const navigations: string[] = [];
    page.on("framenavigated", (frame) => navigations.push(frame.url()));
    await page.goto(status?.url as string);
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: 15_000 });
    await page
      .locator("tr[data-node]")
      .nth(NODES - 1)
      .waitFor({ timeout: 15_000 });
    // Heartbeats settle within a round or two: every node Up on both channels, each at its planned address.
    await page.waitForFunction(
      (n) => document.querySelectorAll('tr[data-node][data-phase="Up"] td[data-state="Up"]').length === 2 * n,
      NODES,
      { timeout: 15_000 },
    );
    for (const agent of plan.agents) {
      assert.equal(await nodeCell(page, agent.id, '[data-field="phase"]'), "Up");
      assert.equal(await nodeCell(page, agent.id, '[data-channel="A"] .address'), agent.addresses[0]);
      assert.equal(await nodeCell(page, agent.id, '[data-channel="B"] .address'), agent.addresses[1]);
      assert.equal(await nodeCell(page, agent.id, '[data-field="active"]'), "A");
      // Read from the agent's metrics; its level is what it is (a machine busy with other tests reads High).
      assert.match(await nodeCell(page, agent.id, '[data-field="load"]'), /^(Low|Medium|High)$/);
    }
    // A fresh cluster's agents make a first rebuild pass: Rebuilding for a moment, then Healthy.
    await page.waitForFunction(
      () => document.querySelectorAll('tr[data-volume][data-phase="Healthy"]').length === 2,
      undefined,
      { timeout: 15_000 },
    );
    for (const [volume, redundancy] of [
      ["media", "erasure 2+1"],
      ["thumbs", "replicas 3"],
    ]) {
      assert.equal(await page.locator(`tr[data-volume="${volume}"]`).getAttribute("data-phase"), "Healthy");
      assert.equal(
        (await page.locator(`tr[data-volume="${volume}"] [data-field="redundancy"]`).textContent())?.trim(),
        redundancy,
      );
      // Nothing read yet, so no stripe is hot: the agents say 0, not unknown.
      assert.equal(
        (await page.locator(`tr[data-volume="${volume}"] [data-field="read-copies"]`).textContent())?.trim(),
        "0",
      );
    }

    const victim = plan.agents[NODES - 1]?.id as string;
    const pid = cluster?.pid(victim);
    assert.ok(pid !== undefined, "the victim's pid");
    const killedAt = performance.now();
    process.kill(pid, "SIGKILL");
    await page.waitForFunction(
      (node) => {
        const row = document.querySelector(`tr[data-node="${node}"]`);
        return (
          row?.getAttribute("data-phase") === "Down" &&
          row.querySelectorAll('td[data-channel][data-state="Down"]').length === 2
        );
      },
      victim,
      { timeout: DOWN_SHOWN_MS },
    );
    const shownMs = Math.round(performance.now() - killedAt);
    console.log(
      `# ${victim} shown Down on both channels ${shownMs} ms after kill -9 (bound ${DOWN_SHOWN_MS} ms)`,
    );
    assert.deepEqual(navigations, [status?.url], "one navigation: the update came without a reload");
    assert.equal(await page.locator("#connection").getAttribute("data-state"), "live");
    for (const agent of plan.agents.filter((a) => a.id !== victim)) {
      assert.equal(await nodeCell(page, agent.id, '[data-field="phase"]'), "Up", `${agent.id} stays Up`);
    }
    const mediaPhase = await page.locator('tr[data-volume="media"]').getAttribute("data-phase");
    assert.ok(mediaPhase === "Degraded" || mediaPhase === "Rebuilding", `media is ${mediaPhase}`);
    assert.match((await page.locator("#summary").textContent()) ?? "", /2 of 3 nodes up/);

    const shot = join(root, "status-page.png");
    await page.screenshot({ path: shot });
    console.log(`# screenshot: ${shot}`);
    const png = await readFile(shot);
    const facts = pngFacts(png);
    assert.equal(facts.width, VIEWPORT.width);
    assert.equal(facts.height, VIEWPORT.height);
    assert.equal(facts.bitDepth, 8);
    assert.equal(
      facts.rawBytes,
      facts.height * (1 + facts.width * bytesPerPixel(facts.colorType)),
      "every scanline is there",
    );
    // A blank viewport inflates to a handful of byte values; text, tables and coloured words to many.
    assert.ok(facts.distinctBytes > 64, `${facts.distinctBytes} distinct byte values`);
    assert.ok(png.length > 10_000, `${png.length} bytes`);
  });

  test("with the event stream refused, the page polls and says so", async () => {
    const polling = await browser?.newPage({ viewport: VIEWPORT });
    assert.ok(polling);
    try {
      await polling.route("**/api/events", (route) => route.abort());
      await polling.goto(status?.url as string);
      await polling.locator('#connection[data-state="polling"]').waitFor({ timeout: 15_000 });
      await polling
        .locator("tr[data-node]")
        .nth(NODES - 1)
        .waitFor({ timeout: 15_000 });
      assert.match((await polling.locator("#summary").textContent()) ?? "", /of 3 nodes up/);
    } finally {
      await polling.close();
    }
  });

  test("names are shown as text, never run as markup", async () => {
    const feed = new StatusFeed();
    const server = await StatusServer.start({ host: "127.0.0.1", port: 0, feed, log: silentLogger() });
    const hostile = "<img src=x onerror=\"document.title='pwned'\">";
    feed.publish(oneNodeSnapshot(hostile, "Up", new Date().toISOString()));
    const other = await browser?.newPage({ viewport: VIEWPORT });
    assert.ok(other);
    try {
      await other.goto(`http://${server.address}/`);
      await other.locator("tr[data-node]").waitFor({ timeout: 15_000 });
      assert.equal(await other.locator("img").count(), 0);
      assert.equal((await other.locator("tr[data-node] td").first().textContent())?.trim(), hostile);
      assert.equal(await other.title(), "Mosaic status");
    } finally {
      await other.close();
      await server.close();
    }
  });
});
