// The status server on a real socket: the page and its files, the snapshot
// as JSON (503 before the first), the event stream sending the snapshot at
// once and again on each change (and not for a snapshot that changes only
// its time), and clear 404 / 405 answers.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { silentLogger } from "../../src/log.ts";
import { StatusFeed } from "../../src/status/status-feed.ts";
import { StatusServer } from "../../src/status/status-server.ts";
import type { StatusSnapshot } from "../../src/status/view-model.ts";
import { oneNodeSnapshot, snapshots } from "./status-fixtures.ts";

const snapshot = (phase: "Up" | "Down", takenAt: string) =>
  oneNodeSnapshot("node-0", phase, takenAt, "127.0.0.1:7100");

describe("status server", () => {
  const feed = new StatusFeed();
  let server: StatusServer;
  let base: string;

  before(async () => {
    server = await StatusServer.start({ host: "127.0.0.1", port: 0, feed, log: silentLogger() });
    base = `http://${server.address}`;
  });
  after(() => server.close());

  test("before the first snapshot: 503 with Retry-After; the page itself is served", async () => {
    const status = await fetch(`${base}/api/status`);
    assert.equal(status.status, 503);
    assert.equal(status.headers.get("retry-after"), "1");
    assert.match(await status.text(), /no status yet/);
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    assert.match(await page.text(), /<script src="status.js"/);
    for (const [path, type] of [
      ["/status.js", /^text\/javascript/],
      ["/status.css", /^text\/css/],
    ] as const) {
      const answer = await fetch(`${base}${path}`);
      assert.equal(answer.status, 200, path);
      assert.match(answer.headers.get("content-type") ?? "", type);
      await answer.arrayBuffer();
    }
  });

  test("the stream sends the snapshot at once and each change; a snapshot only newer in time sends nothing", async () => {
    feed.publish(snapshot("Up", "2026-11-21T10:00:00.000Z"));
    const abort = new AbortController();
    const answer = await fetch(`${base}/api/events`, { signal: abort.signal });
    assert.equal(answer.status, 200);
    assert.match(answer.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = snapshots(answer.body as ReadableStream<Uint8Array>);
    try {
      const first = await events.next();
      assert.equal(first.value?.nodes[0]?.phase, "Up");
      assert.equal(feed.publish(snapshot("Up", "2026-11-21T10:00:01.000Z")), false, "same cluster, later");
      assert.equal(feed.publish(snapshot("Down", "2026-11-21T10:00:02.000Z")), true);
      const second = await events.next();
      // Had the time-only snapshot been sent, this would be it (Up, 10:00:01).
      assert.equal(second.value?.nodes[0]?.phase, "Down");
      assert.equal(second.value?.takenAt, "2026-11-21T10:00:02.000Z");
      assert.equal(server.streams, 1);
      const json = (await (await fetch(`${base}/api/status`)).json()) as StatusSnapshot;
      assert.equal(json.nodes[0]?.phase, "Down");
    } finally {
      abort.abort();
      await events.return(undefined).catch(() => {});
    }
    for (let i = 0; i < 50 && server.streams > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.streams, 0, "a closed stream is let go");
    assert.equal(feed.listeners, 0);
  });

  test("unknown paths 404, other methods 405, and nothing breaks", async () => {
    const missing = await fetch(`${base}/../../etc/passwd`);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /no such page/);
    const post = await fetch(`${base}/api/status`, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    await post.text();
    assert.equal((await fetch(`${base}/api/status`)).status, 200);
  });
});
