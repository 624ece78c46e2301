// The local source's snapshot, pure: from fixtures shaped as the agents
// answer (ClusterInfo of a `cluster` call, RebuildProgress) and as their
// metrics read (prom-client's text exposition, the gauges of
// metrics/agent-metrics.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ChannelAnswer } from "../../src/cli/node-status.ts";
import type { ClusterInfo } from "../../src/client/agent-client.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import { freshProgress, type RebuildProgress } from "../../src/data/rebuild.ts";
import { agentReadings } from "../../src/status/agent-readings.ts";
import { localSnapshot } from "../../src/status/local-view.ts";

const FILE: ClusterMap = {
  epoch: 1,
  nodes: ["node-0", "node-1", "node-2"].map((id, i) => ({
    id,
    addresses: [`127.0.0.1:${7100 + 2 * i}`, `127.0.0.2:${7101 + 2 * i}`] as [string, string],
    state: "up" as const,
  })),
};
const VOLUMES = [
  {
    name: "media",
    chunkSizeBytes: 2 ** 20,
    redundancy: { erasure: { data: 2, parity: 1 } },
    capacityBytes: 2 ** 30,
  },
  { name: "thumbs", chunkSizeBytes: 2 ** 18, redundancy: { replicas: 3 }, capacityBytes: 2 ** 28 },
];
const IDLE: RebuildProgress = freshProgress("idle", 1, 67_108_864, 1);

function info(node: string, map: ClusterMap, rebuild: RebuildProgress = IDLE): ClusterInfo {
  return { node, map, volumes: VOLUMES, rebuild };
}

/** prom-client's exposition of one agent's view: its load, and each watched peer's channels and active one. */
function metricsText(
  load: number,
  peers: { peer: string; A: string; B: string; active: "A" | "B" | null }[],
): string {
  const lines = [
    "# HELP mosaic_load_level This agent's load level: 0 Low, 1 Medium, 2 High",
    "# TYPE mosaic_load_level gauge",
    `mosaic_load_level ${load}`,
    "# TYPE mosaic_peer_channel_state gauge",
  ];
  for (const p of peers)
    for (const channel of ["A", "B"] as const)
      for (const state of ["up", "suspect", "returning", "down"])
        lines.push(
          `mosaic_peer_channel_state{peer="${p.peer}",channel="${channel}",state="${state}"} ${p[channel] === state ? 1 : 0}`,
        );
  lines.push("# TYPE mosaic_peer_active_channel gauge");
  for (const p of peers)
    for (const channel of ["A", "B"])
      lines.push(
        `mosaic_peer_active_channel{peer="${p.peer}",channel="${channel}"} ${p.active === channel ? 1 : 0}`,
      );
  return `${lines.join("\n")}\nmosaic_process_cpu_seconds_total 1.5\n`;
}

const answered = (i: number, map: ClusterMap, rebuild?: RebuildProgress): ChannelAnswer[] =>
  (FILE.nodes[i]?.addresses ?? []).map((address) => ({ address, info: info(`node-${i}`, map, rebuild) }));
const refused = (i: number): ChannelAnswer[] =>
  (FILE.nodes[i]?.addresses ?? []).map((address) => ({ address, error: `${address}: connection refused` }));

describe("agentReadings", () => {
  test("reads the load level and each peer's channels and active channel; skips the rest", () => {
    const r = agentReadings(
      metricsText(1, [
        { peer: "node-1", A: "up", B: "suspect", active: "A" },
        { peer: "node-2", A: "down", B: "returning", active: "B" },
      ]),
    );
    assert.equal(r.load, "Medium");
    assert.deepEqual(r.peers, [
      { peer: "node-1", channels: { A: "up", B: "suspect" }, active: "A" },
      { peer: "node-2", channels: { A: "down", B: "returning" }, active: "B" },
    ]);
  });

  test("text that is not an exposition gives nothing, and throws nothing", () => {
    assert.deepEqual(agentReadings("<html>not metrics</html>\n{]"), { load: null, peers: [] });
    assert.deepEqual(
      agentReadings('mosaic_peer_channel_state{peer="x",channel="C",state="up"} 1\nmosaic_load_level 7'),
      {
        load: null,
        peers: [],
      },
    );
  });
});

describe("localSnapshot", () => {
  const takenAt = "2026-11-21T10:00:00.000Z";

  test("a healthy cluster: every node Up on both channels, as its peers hear it, volumes Healthy", () => {
    const heardAll = (self: number) =>
      agentReadings(
        metricsText(
          0,
          FILE.nodes
            .filter((_, j) => j !== self)
            .map((n) => ({ peer: n.id, A: "up", B: "up", active: "A" as const })),
        ),
      );
    const s = localSnapshot({
      file: FILE,
      volumes: VOLUMES,
      answers: [0, 1, 2].map((i) => answered(i, FILE)),
      readings: [0, 1, 2].map(heardAll),
      capacityBytes: 2 ** 30,
      takenAt,
    });
    assert.equal(s.source, "local");
    assert.equal(s.epoch, 1);
    assert.deepEqual(s.nodes[0], {
      name: "node-0",
      phase: "Up",
      channels: {
        A: { address: "127.0.0.1:7100", state: "Up" },
        B: { address: "127.0.0.2:7101", state: "Up" },
      },
      active: "A",
      load: "Low",
      used: null,
      capacity: "1 GiB",
      epoch: 1,
      rebuild: { state: "Idle", bytesLeft: 0, bytesPerSecond: 0, etaSeconds: null },
      message: null,
    });
    assert.deepEqual(
      s.volumes.map((v) => [v.name, v.phase, v.redundancy, v.chunks, v.rebuild]),
      [
        ["media", "Healthy", "erasure 2+1", null, null],
        ["thumbs", "Healthy", "replicas 3", null, null],
      ],
    );
  });

  test("a NIC down: the channel its peers no longer hear is Down, traffic on the other", () => {
    const readings = [0, 1, 2].map((self) =>
      agentReadings(
        metricsText(
          0,
          FILE.nodes
            .filter((_, j) => j !== self)
            .map((n) =>
              n.id === "node-1"
                ? { peer: n.id, A: "down", B: "up", active: "B" as const }
                : { peer: n.id, A: "up", B: "up", active: "A" as const },
            ),
        ),
      ),
    );
    const s = localSnapshot({
      file: FILE,
      volumes: VOLUMES,
      answers: [0, 1, 2].map((i) => answered(i, FILE)),
      readings,
      capacityBytes: null,
      takenAt,
    });
    const n1 = s.nodes[1];
    assert.equal(n1?.phase, "Up");
    assert.equal(n1?.channels.A.state, "Down");
    assert.equal(n1?.channels.B.state, "Up");
    assert.equal(n1?.active, "B");
  });

  test("read copies: what the agents hold of each volume, summed (serving and draining); null when no agent says", () => {
    const holding = (i: number, readCopies: ClusterInfo["readCopies"]): ChannelAnswer[] =>
      (FILE.nodes[i]?.addresses ?? []).map((address) => ({
        address,
        info: { ...info(`node-${i}`, FILE), readCopies },
      }));
    const observe = (answers: ChannelAnswer[][]) =>
      localSnapshot({ file: FILE, volumes: VOLUMES, answers, readings: [], capacityBytes: null, takenAt });
    const s = observe([
      holding(0, []),
      holding(1, [
        { volume: "thumbs", phase: "serving", count: 2 },
        { volume: "media", phase: "serving", count: 1 },
      ]),
      holding(2, [{ volume: "thumbs", phase: "draining", count: 1 }]),
    ]);
    assert.deepEqual(
      s.volumes.map((v) => [v.name, v.readCopies]),
      [
        ["media", 1],
        ["thumbs", 3],
      ],
    );
    const unknown = observe([0, 1, 2].map((i) => answered(i, FILE)));
    assert.deepEqual(
      unknown.volumes.map((v) => v.readCopies),
      [null, null],
    );
  });

  test("a killed agent: Down in the newest map, both channels Down, volumes Degraded; then out and rebuilding", () => {
    const down: ClusterMap = {
      epoch: 2,
      nodes: FILE.nodes.map((n) => (n.id === "node-2" ? { ...n, state: "down" } : n)),
    };
    const s = localSnapshot({
      file: FILE,
      volumes: VOLUMES,
      answers: [answered(0, down), answered(1, down), refused(2)],
      // Its peers stopped watching it: no heartbeat views, so its unanswered addresses speak.
      readings: [agentReadings(metricsText(0, [])), agentReadings(metricsText(0, [])), undefined],
      capacityBytes: null,
      takenAt,
    });
    assert.equal(s.epoch, 2);
    const n2 = s.nodes[2];
    assert.equal(n2?.phase, "Down");
    assert.deepEqual(
      [n2?.channels.A.state, n2?.channels.B.state, n2?.active, n2?.load],
      ["Down", "Down", "none", null],
    );
    assert.match(n2?.message ?? "", /does not answer: 127\.0\.0\.1:7104: connection refused/);
    assert.equal(n2?.rebuild, null);
    assert.deepEqual(
      s.volumes.map((v) => [v.phase, v.message]),
      [
        ["Degraded", "node-2 down; tolerates 1"],
        ["Degraded", "node-2 down; tolerates 2"],
      ],
    );

    const out: ClusterMap = {
      epoch: 3,
      nodes: FILE.nodes.map((n) => (n.id === "node-2" ? { ...n, state: "out", outEpoch: 3 } : n)),
    };
    const pulling: RebuildProgress = {
      ...IDLE,
      state: "rebuilding",
      epoch: 3,
      bytesTotal: 40 * 2 ** 20,
      bytesDone: 8 * 2 ** 20,
      bytesLeft: 32 * 2 ** 20,
      rateBytesPerSecond: 4 * 2 ** 20,
      etaSeconds: 8,
    };
    const later = localSnapshot({
      file: FILE,
      volumes: VOLUMES,
      answers: [answered(0, out, pulling), answered(1, out, pulling), refused(2)],
      readings: [undefined, undefined, undefined],
      capacityBytes: null,
      takenAt,
    });
    assert.equal(later.nodes[2]?.phase, "Lost");
    assert.deepEqual(later.nodes[0]?.rebuild, {
      state: "Rebuilding",
      bytesLeft: 32 * 2 ** 20,
      bytesPerSecond: 4 * 2 ** 20,
      etaSeconds: 8,
    });
    assert.equal(later.volumes[0]?.phase, "Rebuilding");
    assert.deepEqual(later.volumes[0]?.rebuild, {
      bytesLeft: 64 * 2 ** 20,
      bytesPerSecond: 8 * 2 ** 20,
      etaSeconds: 8,
    });
  });

  test("more nodes down than a volume tolerates: that volume Failed, the wider one Degraded", () => {
    const twoDown: ClusterMap = {
      epoch: 4,
      nodes: FILE.nodes.map((n) => (n.id === "node-0" ? n : { ...n, state: "down" })),
    };
    const s = localSnapshot({
      file: FILE,
      volumes: VOLUMES,
      answers: [answered(0, twoDown), refused(1), refused(2)],
      readings: [undefined, undefined, undefined],
      capacityBytes: null,
      takenAt,
    });
    assert.deepEqual(
      s.volumes.map((v) => v.phase),
      ["Failed", "Degraded"],
    );
    assert.match(s.volumes[0]?.message ?? "", /node-1, node-2 down: more than the 1 it tolerates/);
  });
});
