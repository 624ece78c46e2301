// ClusterClient writes when the owner it learned at connect is dead: real
// agent processes, kill -9 and SIGSTOP. A write goes to the next manifest
// holder, or to the connected agent when every holder is dead, and reads
// back whole; a stream the dead owner had already taken part of is never
// sent again.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ClusterClient } from "../../src/client/cluster-client.ts";
import type { VolumeSpec } from "../../src/core/volume.ts";
import { isMosaicError } from "../../src/errors.ts";
import { expectKeystream, keystream } from "../helpers/byte-streams.ts";
import { manifestHolders, nameWhere } from "../helpers/cluster-files.ts";
import { MiB, type ProcessCluster, startProcessCluster } from "../helpers/process-cluster.ts";

const CONNECTED = 0;
/** Killed in the first test; restarted before the next. */
const OWNER = 1;
/** Stopped (SIGSTOP) and continued in the second test. */
const HUNG = 2;
/** Killed together in the second test: both manifest holders of some files. */
const DEAD = [3, 4];

describe("ClusterClient writes around a dead owner (agent processes)", { timeout: 300_000 }, () => {
  let cluster: ProcessCluster;
  let client: ClusterClient;
  let media: VolumeSpec;
  const id = (i: number) => cluster.nodeId(i);

  before(async () => {
    cluster = await startProcessCluster({ nodes: 5 });
    client = await ClusterClient.connect([cluster.address(CONNECTED)]);
    media = client.info.volumes.find((v) => v.name === "media") as VolumeSpec;
  });
  after(async () => {
    client?.close();
    await cluster?.stop();
  });

  /** Puts keystream(size, name) through the client; the manifest and how long it took. */
  async function put(name: string, sizeBytes: number) {
    const started = performance.now();
    const manifest = await client.put("media", name, keystream(sizeBytes, name), sizeBytes);
    return { manifest, ms: performance.now() - started };
  }

  async function expectWhole(name: string, sizeBytes: number): Promise<void> {
    const { manifest, body } = await client.read("media", name);
    assert.equal(manifest.sizeBytes, sizeBytes, name);
    await expectKeystream(body, sizeBytes, name);
  }

  test("putRetrying from a replayable source: the owner killed mid-forward costs one retry, not an error", async () => {
    const map = client.info.map;
    const name = nameWhere(
      map,
      media,
      "retried/",
      ".bin",
      (h) => h[0] === id(OWNER) && h[1] !== id(CONNECTED),
    );
    const size = 6 * MiB;
    // The connected agent forwards to the owner once it has heard it (just after start it may not
    // have yet, and then coordinates itself): small writes until one is forwarded, 10 s at most.
    const warmName = nameWhere(
      map,
      media,
      "warm-retried/",
      ".bin",
      (h) => h[0] === id(OWNER) && h[1] !== id(CONNECTED),
    );
    let forwarded = false;
    for (const deadline = Date.now() + 10_000; !forwarded && Date.now() < deadline; ) {
      const warm = await client.agent.put("media", warmName, keystream(MiB, "warm"), MiB);
      forwarded = warm.writer === id(OWNER);
      if (!forwarded) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.ok(forwarded, "the connected agent forwards to the owner within 10 s of start");
    const taken = Promise.withResolvers<void>();
    const killed = Promise.withResolvers<void>();
    let sources = 0;
    const source = () => {
      const attempt = ++sources;
      return (async function* () {
        const bytes = keystream(size, name);
        let sent = 0;
        for await (const part of bytes) {
          yield part;
          sent += part.length;
          if (attempt === 1 && sent >= 3 * MiB) {
            taken.resolve();
            await killed.promise;
          }
        }
      })();
    };
    const retries: string[] = [];
    // Through the connected agent, which forwards the write to the file's owner.
    const putting = client.agent.putRetrying("media", name, source, {
      sizeBytes: size,
      onRetry: (error) => retries.push(error.code),
    });
    await taken.promise;
    await new Promise((resolve) => setTimeout(resolve, 300)); // the first 3 MiB reach the owner
    await cluster.kill9(OWNER);
    killed.resolve();
    const manifest = await putting;
    assert.equal(retries.length, 1, `one retry (${retries.join(", ")})`);
    assert.equal(sources, 2, "the source was read again from its start, once");
    assert.notEqual(manifest.writer, id(OWNER));
    await expectWhole(name, size);
    await cluster.restart(OWNER);
  });

  test("the owner killed after it had taken part of a stream: the put fails and nothing is stored", async () => {
    const map = client.info.map;
    const name = nameWhere(
      map,
      media,
      "partial/",
      ".bin",
      (h) => h[0] === id(OWNER) && h[1] !== id(CONNECTED),
    );
    let iterators = 0;
    const taken = Promise.withResolvers<void>();
    const killed = Promise.withResolvers<void>();
    const source: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => {
        iterators++;
        return (async function* () {
          for (let part = 0; part < 3; part++) yield Buffer.alloc(MiB, part + 1);
          taken.resolve();
          await killed.promise;
          for (let part = 3; part < 6; part++) yield Buffer.alloc(MiB, part + 1);
        })();
      },
    };
    // No size announced: an agent handed only the tail would store it as the file.
    const putting = client.put("media", name, source);
    const outcome = putting.then(
      () => "stored",
      (error: unknown) => error,
    );
    await Promise.race([taken.promise, outcome]);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the first 3 MiB reach the owner
    await cluster.kill9(OWNER);
    killed.resolve();
    const error = await outcome;
    assert.ok(isMosaicError(error), `the put failed: ${String(error)}`);
    assert.equal(iterators, 1, "the stream was asked for once: never sent again");
    await assert.rejects(client.agent.head("media", name), (e) =>
      isMosaicError(e, "MOSAIC_ERR_NO_SUCH_FILE"),
    );
    await cluster.restart(OWNER);
  });

  test("the owner hung (SIGSTOP) behind an open connection: the write goes to the next holder", async (t) => {
    const map = client.info.map;
    const hung = id(HUNG);
    const name = nameWhere(map, media, "hung/", ".bin", (h) => h[0] === hung && h[1] !== id(CONNECTED));
    const warm = await put(
      nameWhere(map, media, "warm-hung/", ".bin", (h) => h[0] === hung),
      MiB,
    );
    assert.equal(warm.manifest.writer, hung, "the client holds a ready connection to the owner");
    const pid = cluster.pid(HUNG) as number;
    process.kill(pid, "SIGSTOP"); // our own child, by pid; continued below, pass or fail
    try {
      const hungPut = await put(name, 3 * MiB);
      t.diagnostic(`put with the owner stopped: ${Math.round(hungPut.ms)} ms (mostly the agents' own waits)`);
      assert.equal(hungPut.manifest.writer, manifestHolders(map, media, name)[1]);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await expectWhole(name, 3 * MiB);
    // The next test needs it up again in the agents' map: writes there need three reachable nodes.
    const deadline = Date.now() + 20_000;
    while ((await client.agent.cluster()).map.nodes.find((n) => n.id === hung)?.state !== "up") {
      assert.ok(Date.now() < deadline, `${hung} is up again in the map`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  test("kill -9 the owner: the write goes to the next manifest holder and reads back whole", async (t) => {
    const map = client.info.map;
    const dead = DEAD.map(id);
    const alive = (n: string | undefined) => n !== undefined && !dead.includes(n) && n !== id(CONNECTED);
    const toNext = nameWhere(map, media, "next/", ".bin", (h) => h[0] === dead[0] && alive(h[1]));
    const toConnected = nameWhere(
      map,
      media,
      "both/",
      ".bin",
      (h) => dead.includes(h[0] as string) && dead.includes(h[1] as string),
    );
    const healthy = nameWhere(map, media, "healthy/", ".bin", (h) => alive(h[0]));
    // A write before the kill leaves the client a ready connection to the owner it must notice is gone.
    const before = await put(
      nameWhere(map, media, "warm/", ".bin", (h) => h[0] === dead[0]),
      2 * MiB,
    );
    assert.equal(before.manifest.writer, dead[0]);

    for (const i of DEAD) await cluster.kill9(i);
    const sizes = { [toNext]: 5 * MiB + 17, [toConnected]: 3 * MiB + 5, [healthy]: 4 * MiB };
    const next = await put(toNext, sizes[toNext] as number);
    const connected = await put(toConnected, sizes[toConnected] as number);
    const normal = await put(healthy, sizes[healthy] as number);
    t.diagnostic(
      `put with the owner dead: ${Math.round(next.ms)} ms (next holder; most of it that agent writing ` +
        `around nodes not yet agreed down), ${Math.round(connected.ms)} ms (both holders dead, connected ` +
        `agent); owner alive: ${Math.round(normal.ms)} ms`,
    );
    // The next holder, unless it did not connect within the client's wait on a loaded machine: then the
    // connected agent, which writes around the dead owner just the same.
    assert.ok(
      [manifestHolders(map, media, toNext)[1], id(CONNECTED)].includes(next.manifest.writer),
      `the next holder or the connected agent coordinated, not ${next.manifest.writer}`,
    );
    assert.equal(connected.manifest.writer, id(CONNECTED), "the connected agent coordinated");
    assert.equal(normal.manifest.writer, manifestHolders(map, media, healthy)[0], "a live owner coordinates");
    // A refused connection is noticed at once; the connect wait (1 s per holder) bounds the rest.
    assert.ok(next.ms < 10_000 && connected.ms < 10_000, `${next.ms} ms, ${connected.ms} ms`);
    for (const name of [toNext, toConnected, healthy]) await expectWhole(name, sizes[name] as number);
  });
});
