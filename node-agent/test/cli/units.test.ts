// The CLI's pure parts: argument parsing, the local cluster's plan, file
// health, the generated media stream and its verifier, and error lines.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { failoverArgs } from "../../src/cli/failover-options.ts";
import { describeFailure, oneLine } from "../../src/cli/failure.ts";
import { table } from "../../src/cli/format.ts";
import { fileHealth, piecesByNode } from "../../src/cli/health.ts";
import { localVolumes, planLocalCluster } from "../../src/cli/local-plan.ts";
import { mediaBytes, StreamVerifier } from "../../src/cli/media-stream.ts";
import {
  clusterStatus,
  describeEpochs,
  describeRebuild,
  type NodeStatus,
} from "../../src/cli/node-status.ts";
import { parseDuration, parseFileRef, parseSize, UsageError } from "../../src/cli/parse.ts";
import type { ClusterInfo } from "../../src/client/agent-client.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import { layoutOf } from "../../src/core/volume.ts";
import type { PieceState } from "../../src/data/file-service.ts";
import { freshProgress, type RebuildProgress } from "../../src/data/rebuild.ts";
import { MosaicError } from "../../src/errors.ts";

describe("arguments", () => {
  test("sizes in binary and decimal units", () => {
    assert.equal(parseSize("256MiB"), 256 * 2 ** 20);
    assert.equal(parseSize("1.5 GiB"), 1.5 * 2 ** 30);
    assert.equal(parseSize("8mb"), 8e6);
    assert.equal(parseSize("1000"), 1000);
    assert.throws(() => parseSize("lots"), /is not a size/);
  });

  test("durations need a unit, are whole milliseconds from 1 ms, and fit a timer", () => {
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("2s"), 2_000);
    assert.equal(parseDuration("1.5 m"), 90_000);
    assert.equal(parseDuration("5M"), 300_000);
    assert.equal(parseDuration("1h"), 3_600_000);
    assert.throws(() => parseDuration("30"), /"30" needs a unit \(e\.g\. 30s or 30ms\)/);
    assert.throws(() => parseDuration("soon"), /"soon" is not a duration \(e\.g\. 500ms, 2s, 5m, 1h\)/);
    assert.throws(() => parseDuration("-2s"), /is not a duration/);
    assert.throws(() => parseDuration("0s"), /"0s" is shorter than 1ms/);
    assert.throws(() => parseDuration("0.4ms"), /shorter than 1ms/);
    assert.throws(() => parseDuration("600h"), /"600h" is longer than 24 days/);
    // Handed to an agent as it was parsed, it parses back to the same value.
    const args = failoverArgs({ outGraceMs: 1_500, rebuildRateBytesPerSecond: 3 * 2 ** 20 });
    assert.deepEqual(args, ["--out-grace", "1500ms", "--rebuild-rate", String(3 * 2 ** 20)]);
    assert.equal(parseDuration(args[1] as string), 1_500);
    assert.equal(parseSize(args[3] as string), 3 * 2 ** 20);
  });

  test("<volume>/<name> splits at the first slash; names are checked before any request", () => {
    assert.deepEqual(parseFileRef("media/films/2026/clip.mp4"), {
      volume: "media",
      name: "films/2026/clip.mp4",
    });
    for (const bad of ["media", "media/", "/clip.mp4", "Media/clip.mp4", "media/../x", "media/a//b"]) {
      assert.throws(() => parseFileRef(bad), UsageError, bad);
    }
  });
});

describe("local cluster plan", () => {
  test("every volume's stripe fits the node count, from 1 to 16 nodes", () => {
    for (let nodes = 1; nodes <= 16; nodes++) {
      for (const volume of localVolumes(nodes, 2 ** 30)) {
        assert.ok(layoutOf(volume).width <= nodes, `${volume.name} on ${nodes} nodes`);
        assert.ok(volume.capacityBytes > 0);
      }
    }
    assert.deepEqual(
      localVolumes(1, 2 ** 30).map((v) => v.redundancy),
      [{ erasure: { data: 1, parity: 0 } }, { replicas: 1 }],
    );
    assert.deepEqual(
      localVolumes(3, 2 ** 30).map((v) => v.redundancy),
      [{ erasure: { data: 2, parity: 1 } }, { replicas: 3 }],
    );
  });

  test("node i listens on base+2i (127.0.0.1) and base+2i+1 (127.0.0.2)", () => {
    const plan = planLocalCluster({ nodes: 2, dir: "/d", basePort: 7100, capacityBytes: 1 });
    assert.deepEqual(
      plan.cluster.nodes.map((n) => n.addresses),
      [
        ["127.0.0.1:7100", "127.0.0.2:7101"],
        ["127.0.0.1:7102", "127.0.0.2:7103"],
      ],
    );
    assert.equal(plan.agents[1]?.logFile, "/d/logs/node-1.log");
    assert.throws(
      () => planLocalCluster({ nodes: 16, dir: "/d", basePort: 65_530, capacityBytes: 1 }),
      UsageError,
    );
  });
});

describe("file health", () => {
  const manifest = {
    volume: "media",
    name: "a",
    redundancy: { erasure: { data: 2, parity: 1 } },
    chunkSizeBytes: 2 ** 20,
    stripes: 2,
  } as FileManifest;
  const pieces = (states: PieceState["state"][]): PieceState[] =>
    states.map((state, i) => ({ stripe: Math.floor(i / 3), slot: i % 3, node: `node-${i % 3}`, state }));

  test("healthy, degraded while every stripe keeps k pieces, unreadable below", () => {
    assert.equal(fileHealth(manifest, pieces(["ok", "ok", "ok", "ok", "ok", "ok"])).verdict, "healthy");
    const degraded = fileHealth(manifest, pieces(["ok", "ok", "missing", "unreachable", "ok", "ok"]));
    assert.equal(degraded.verdict, "degraded");
    assert.equal(degraded.line, "degraded: 2 of 6 pieces not ok; every stripe still reads");
    const lost = fileHealth(manifest, pieces(["ok", "ok", "ok", "corrupt", "unreachable", "ok"]));
    assert.equal(lost.verdict, "unreadable");
    assert.deepEqual(lost.unreadableStripes, [1]);
  });

  test("pieces per node by kind: slots below k are data, the rest parity", () => {
    const byNode = piecesByNode(manifest, pieces(["ok", "ok", "ok", "ok", "ok", "missing"]));
    assert.deepEqual(
      byNode.map((n) => [n.node, n.kinds.data, n.kinds.parity, n.states.missing]),
      [
        ["node-0", 2, 0, 0],
        ["node-1", 2, 0, 0],
        ["node-2", 0, 2, 1],
      ],
    );
  });
});

describe("generated media stream", () => {
  test("the same seed gives the same bytes, whatever the part size", () => {
    const whole = Buffer.concat([...mediaBytes(100_000, "s", 100_000)]);
    assert.equal(whole.length, 100_000);
    assert.deepEqual(Buffer.concat([...mediaBytes(100_000, "s", 7_001)]), whole);
    assert.notDeepEqual(Buffer.concat([...mediaBytes(100_000, "t")]), whole);
  });

  test("the verifier accepts the stream in any cut and reports the first differing byte", () => {
    const size = 50_000;
    const bytes = Buffer.concat([...mediaBytes(size, "v", 4096)]);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 9_000 }), { minLength: 1, maxLength: 20 }),
        fc.option(fc.integer({ min: 0, max: size - 1 }), { nil: undefined }),
        (cuts, flip) => {
          const received = Buffer.from(bytes);
          if (flip !== undefined) received[flip] = (received[flip] as number) ^ 1;
          const verifier = new StreamVerifier(mediaBytes(size, "v", 4096));
          let at = 0;
          for (let i = 0; at < size; i++) {
            const n = cuts[i % cuts.length] as number;
            verifier.push(received.subarray(at, at + n));
            at += n;
          }
          const mismatch = verifier.finish();
          assert.deepEqual(
            mismatch,
            flip === undefined ? undefined : { offsetBytes: flip, why: "bytes differ" },
          );
        },
      ),
    );
  });

  test("a short or long stream is a mismatch", () => {
    const short = new StreamVerifier(mediaBytes(10, "x"));
    short.push(Buffer.concat([...mediaBytes(9, "x")]));
    assert.deepEqual(short.finish(), { offsetBytes: 9, why: "stream ended early" });
    const long = new StreamVerifier(mediaBytes(10, "x"));
    long.push(Buffer.concat([...mediaBytes(11, "x")]));
    assert.equal(long.finish()?.why, "received more bytes than expected");
  });
});

describe("error lines", () => {
  test("usage errors and bad names exit 2; other failures 1, with a hint where the message is not enough", () => {
    assert.equal(describeFailure(new UsageError("bad")).exitCode, 2);
    assert.equal(describeFailure(new MosaicError("MOSAIC_ERR_BAD_NAME", "x")).exitCode, 2);
    const full = describeFailure(new MosaicError("MOSAIC_ERR_STORE_FULL", "node-1: 1 GiB of 1 GiB used"));
    assert.equal(full.exitCode, 1);
    assert.match(full.line, /^node-1: 1 GiB of 1 GiB used \(a node is out of room: .*--capacity\)$/);
    const local = Object.assign(new Error("ENOENT"), { code: "ENOENT", path: "a.mp4" });
    assert.deepEqual(describeFailure(local), { line: "a.mp4: no such file or directory", exitCode: 1 });
  });

  test("grpc-js connection boilerplate becomes a few words", () => {
    assert.equal(
      oneLine(
        "node-1@127.0.0.1:7102: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7102. Resolution note: ; slot 2",
      ),
      "node-1@127.0.0.1:7102: connection refused; slot 2",
    );
  });

  test("tables right-align numbers and sizes", () => {
    assert.deepEqual(
      table(
        ["name", "size"],
        [
          ["a", "1 KiB"],
          ["bb", "12.5 MiB"],
        ],
      ),
      ["name      size", "a        1 KiB", "bb    12.5 MiB"],
    );
  });
});

describe("node status", () => {
  const node = (id: string, state: "up" | "down" | "out" = "up") => ({
    id,
    addresses: [`127.0.0.1:${id.length}`, `127.0.0.2:${id.length}`] as [string, string],
    state,
  });
  const file: ClusterMap = { epoch: 1, nodes: [node("a"), node("b"), node("c")] };
  const info = (self: string, map: ClusterMap, rebuild?: RebuildProgress): ClusterInfo =>
    rebuild === undefined ? { node: self, map, volumes: [] } : { node: self, map, volumes: [], rebuild };
  const progress = (p: Partial<RebuildProgress>): RebuildProgress => ({
    ...freshProgress("idle", 3, 2 ** 20, 1),
    ...p,
  });

  test("states come from the newest map an agent holds, not the cluster file", () => {
    const agreed: ClusterMap = { epoch: 3, nodes: [node("a"), node("b"), node("c", "out")] };
    const older: ClusterMap = { epoch: 2, nodes: [node("a"), node("b"), node("c", "down")] };
    const status = clusterStatus(file, [
      [
        { address: "a1", info: { ...info("a", agreed), load: "High" } },
        { address: "a2", error: "refused" },
      ],
      [
        { address: "b1", info: info("b", older) },
        { address: "b2", info: info("b", older) },
      ],
      [
        { address: "c1", error: "deadline" },
        { address: "c2", error: "deadline" },
      ],
    ]);
    assert.equal(status.map.epoch, 3);
    assert.deepEqual(
      status.nodes.map((n) => [n.id, n.state, n.epoch, n.channels.map((c) => c.answers)]),
      [
        ["a", "up", 3, [true, false]],
        ["b", "up", 2, [true, true]],
        ["c", "out", undefined, [false, false]],
      ],
    );
    assert.equal(status.nodes[0]?.channels[1]?.error, "refused");
    assert.deepEqual(
      status.nodes.map((n) => n.load),
      ["High", undefined, undefined],
      "the load each agent says of itself",
    );
    assert.equal(describeEpochs(status.nodes), "map epochs 2 to 3");
    const none = clusterStatus(file, [[{ address: "a1", error: "refused" }], [], []]);
    assert.equal(none.map.epoch, 1, "with no agent answering, the file's map");
    assert.equal(describeEpochs(none.nodes), undefined);
  });

  test("the rebuild cell: quiet when idle, bytes left, rate and ETA while rebuilding", () => {
    const answering = (rebuild?: RebuildProgress): NodeStatus =>
      rebuild === undefined
        ? { id: "a", state: "up", channels: [], epoch: 3 }
        : { id: "a", state: "up", channels: [], epoch: 3, rebuild };
    assert.equal(describeRebuild({ id: "a", state: "out", channels: [] }), "", "not answering: nothing");
    assert.equal(describeRebuild(answering()), "off");
    assert.equal(describeRebuild(answering(progress({}))), "");
    assert.equal(describeRebuild(answering(progress({ pending: 2 }))), "2 waiting on other nodes");
    assert.equal(describeRebuild(answering(progress({ state: "planning" }))), "planning");
    const MiB = 2 ** 20;
    assert.equal(
      describeRebuild(answering(progress({ state: "rebuilding", bytesTotal: 8 * MiB, bytesLeft: 8 * MiB }))),
      "8 MiB left of 8 MiB, rate not yet measured",
    );
    const manifestOnly = progress({
      state: "rebuilding",
      piecesTotal: 5,
      piecesDone: 1,
      bytesTotal: 4 * MiB + 300,
      bytesDone: 300,
      bytesLeft: 4 * MiB,
      rateBytesPerSecond: 80,
      etaSeconds: 52_429,
    });
    assert.equal(
      describeRebuild(answering(manifestOnly)),
      "4 MiB left of 4.00 MiB, rate not yet measured",
      "a rate over less than an average piece is not shown",
    );
    assert.equal(
      describeRebuild(
        answering(
          progress({
            state: "rebuilding",
            piecesTotal: 8,
            piecesDone: 2,
            bytesDone: 2 * MiB,
            bytesTotal: 8 * MiB,
            bytesLeft: 6 * MiB,
            rateBytesPerSecond: MiB,
            etaSeconds: 6,
            piecesFailed: 1,
          }),
        ),
      ),
      "6 MiB left of 8 MiB at 1 MiB/s, ETA 6.00 s, 1 piece failed",
    );
  });
});
