// Two network channels: node-2's channel A is unreachable from node-0 and
// node-1 (their cluster file points it at a closed port; node-2 itself
// listens as usual), so every call they make to node-2 must go over channel
// B. Puts, gets, stat, ls and deletes must all still work, through every
// agent, whoever coordinates the file.
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import type { NodeEntry } from "../../src/core/cluster-map.ts";
import {
  expectTestFile,
  nameWhere,
  putTestFile,
  readError,
  type TestFile,
  testFile,
} from "../helpers/cluster-files.ts";
import {
  freePort,
  MiB,
  PROCESS_TEST_VOLUMES,
  type ProcessCluster,
  sleep,
  startProcessCluster,
  withTimeout,
} from "../helpers/process-cluster.ts";

const CUT = 2; // the agent whose channel A the others cannot reach
const OTHERS = [0, 1];

describe("channel A of one agent unreachable: everything goes over channel B", { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;
  let closedPort: number;

  before(async () => {
    closedPort = await freePort("127.0.0.1");
    cluster = await startProcessCluster({
      nodes: 3,
      clusterFor: (i, cluster) => {
        if (i === CUT) return cluster;
        const cut = cluster.nodes[CUT] as NodeEntry;
        cut.addresses = [`127.0.0.1:${closedPort}`, cut.addresses[1]];
        return cluster;
      },
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  /** One file per volume for each coordinator (owner) in `owners`. */
  async function filesOwnedBy(owners: number[], tag: string): Promise<TestFile[]> {
    const { map } = await cluster.client(CUT).cluster();
    const files: TestFile[] = [];
    for (const spec of PROCESS_TEST_VOLUMES) {
      for (const owner of owners) {
        const id = cluster.nodeId(owner);
        const name = nameWhere(map, spec, `two-channels/${tag}-owner-${owner}-`, ".bin", (h) => h[0] === id);
        files.push(testFile(spec.name, name, 5 * MiB + owner));
      }
    }
    return files;
  }

  /** Puts via node-0 and node-1 of files node-2 coordinates: forwarded to node-2, which only channel B reaches. */
  async function forwardedPuts(tag: string): Promise<void> {
    const files = await filesOwnedBy([CUT], tag);
    for (const [n, file] of files.entries()) {
      const via = OTHERS[n % 2] as number;
      const outcome = await withTimeout(
        putTestFile(cluster.client(via), file).then(
          () => "stored",
          (error: unknown) => `${(error as { code?: string }).code}: ${(error as Error).message}`,
        ),
        15_000,
      );
      assert.equal(
        outcome ?? "no answer in 15 s",
        "stored",
        `put of ${file.name} (coordinated by node-2) via node-${via}`,
      );
    }
    for (const i of OTHERS) {
      for (const file of files) await expectTestFile(cluster.client(i), file);
    }
  }

  test("the others' map really points node-2's channel A at a closed port", async () => {
    for (const i of OTHERS) {
      const { map } = await cluster.client(i).cluster();
      const entry = map.nodes.find((n) => n.id === cluster.nodeId(CUT));
      assert.deepEqual(entry?.addresses, [`127.0.0.1:${closedPort}`, cluster.address(CUT, 1)]);
    }
    const own = (await cluster.client(CUT).cluster()).map.nodes.find((n) => n.id === cluster.nodeId(CUT));
    assert.deepEqual(own?.addresses, [cluster.address(CUT, 0), cluster.address(CUT, 1)]);
  });

  test("first contact: puts that node-0 and node-1 forward to node-2 before ever calling it go over channel B", async () => {
    await forwardedPuts("cold");
  });

  test("files coordinated by node-0 and node-1: put via each, read back whole and not degraded via all", async () => {
    const files = await filesOwnedBy(OTHERS, "a");
    const marks = [0, 1, 2].map((i) => cluster.log(i).length);
    for (const [n, file] of files.entries()) await putTestFile(cluster.client(OTHERS[n % 2] as number), file);
    for (let reader = 0; reader < 3; reader++) {
      for (const file of files) await expectTestFile(cluster.client(reader), file);
    }
    await sleep(300); // pino writes asynchronously
    for (let i = 0; i < 3; i++) {
      const degraded = cluster.warnings(i, marks[i]).filter((l) => /degraded/.test(l.msg ?? ""));
      assert.deepEqual(
        degraded.map((l) => l.raw),
        [],
        `node-${i} read degraded although every piece was reachable on channel B`,
      );
    }
    for (const file of files) {
      const { pieces } = await cluster.client(0).stat(file.volume, file.name);
      assert.deepEqual(
        pieces.filter((p) => p.state !== "ok"),
        [],
        `stat of ${file.name} via node-0`,
      );
    }
    const listed = new Set((await cluster.client(0).list("media", "two-channels/a-")).map((m) => m.name));
    for (const file of files.filter((f) => f.volume === "media")) assert.ok(listed.has(file.name), file.name);
  });

  test("after other traffic: puts forwarded to node-2 by node-0 and node-1 go over channel B", async () => {
    await forwardedPuts("warm");
  });

  test("a delete coordinated by node-2, sent to node-0, reaches it over channel B", async () => {
    const [file] = await filesOwnedBy([CUT], "c");
    assert.ok(file);
    await putTestFile(cluster.client(CUT), file); // node-2 reaches everyone on channel A
    await expectTestFile(cluster.client(0), file);
    await cluster.client(0).delete(file.volume, file.name);
    const error = await readError(cluster.client(1), file.volume, file.name);
    assert.equal((error as { code?: string })?.code, "MOSAIC_ERR_NO_SUCH_FILE");
  });

  test("a client on channel B of each agent puts and gets as on channel A", async () => {
    for (let i = 0; i < 3; i++) {
      const file = testFile("media", `two-channels/client-on-b-${i}.bin`, 3 * MiB + i);
      await putTestFile(cluster.client(i, 1), file);
      await expectTestFile(cluster.client((i + 1) % 3, 1), file);
    }
  });
});

// Worse than a closed port: channel A accepts TCP connections and then says
// nothing (a hung NIC, a half-dead switch port, a blackhole after the
// handshake). Nothing refuses the connection, so only a timeout can send the
// agent to channel B; reads must not take the full call deadline.
describe("channel A of one agent silent: reads still finish promptly over channel B", {
  timeout: 90_000,
}, () => {
  let cluster: ProcessCluster;
  let silent: Server;
  const sockets = new Set<Socket>();

  before(async () => {
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    cluster = await startProcessCluster({
      nodes: 3,
      clusterFor: (i, cluster) => {
        if (i === CUT) return cluster;
        const cut = cluster.nodes[CUT] as NodeEntry;
        cut.addresses = [`127.0.0.1:${port}`, cut.addresses[1]];
        return cluster;
      },
    });
  });
  after(async () => {
    // Calls stuck on the silent channel also hold up the agents' graceful stop; do not wait long.
    await cluster?.stop(3_000);
    for (const socket of sockets) socket.destroy();
    silent?.close();
  });

  test("a get via node-0 of a file with pieces and a manifest copy on node-2 finishes within 10 s", {
    timeout: 30_000,
  }, async () => {
    // Coordinated by node-2, which reaches everyone on channel A: the write itself never touches the silent port.
    const { map } = await cluster.client(CUT).cluster();
    const spec = PROCESS_TEST_VOLUMES[1] as (typeof PROCESS_TEST_VOLUMES)[number];
    const name = nameWhere(map, spec, "silent-a/clip-", ".bin", (h) => h[0] === cluster.nodeId(CUT));
    const file = testFile(spec.name, name, 3 * MiB);
    await putTestFile(cluster.client(CUT), file);
    const started = performance.now();
    const outcome = await withTimeout(
      expectTestFile(cluster.client(0), file).then(
        () => "read",
        (error: unknown) => (error as Error).message,
      ),
      10_000,
    );
    const ms = Math.round(performance.now() - started);
    assert.equal(outcome ?? `no answer after ${ms} ms`, "read");
  });
});
