// The status snapshot of a local cluster (`mosaic up`), from what its agents
// say: each address's answer to a `cluster` call (the map, the agent's
// rebuild), and each agent's metrics (its load level, and how its heartbeats
// hear its peers' channels). Pure. A node's channel is what the live others
// hear of it (as its ClusterNode says in Kubernetes, kube/node-status.ts);
// when nobody reports on it, whether its address answered. Locally there is
// no per-volume accounting: chunk counts and used bytes stay null, and a
// volume's rebuild is the cluster's (every agent's pull, all volumes).
import { type ChannelAnswer, clusterStatus, type NodeStatus } from "../cli/node-status.ts";
import type { ClusterMap } from "../core/cluster-map.ts";
import { describeRedundancy, layoutOf, toleratedLosses, type VolumeSpec } from "../core/volume.ts";
import type { RebuildProgress } from "../data/rebuild.ts";
import { formatBytes } from "../storage/format-bytes.ts";
import type { AgentReadings, HeardState } from "./agent-readings.ts";
import type {
  ChannelWord,
  NodePhase,
  NodeView,
  RebuildView,
  StatusSnapshot,
  VolumePhase,
  VolumeView,
} from "./view-model.ts";

export interface LocalObservation {
  /** The cluster file: every node and its two addresses. */
  file: ClusterMap;
  volumes: VolumeSpec[];
  /** `answers[i]`: what each address of `file.nodes[i]` answered. */
  answers: ChannelAnswer[][];
  /** `readings[i]`: `file.nodes[i]`'s metrics, undefined when they could not be read. */
  readings: (AgentReadings | undefined)[];
  /** Every agent's --capacity. */
  capacityBytes: number | null;
  takenAt: string;
}

const CHANNELS = ["A", "B"] as const;
const PHASE: Record<string, NodePhase> = { up: "Up", down: "Down", out: "Lost" };
const HEARD: Record<HeardState, ChannelWord> = {
  up: "Up",
  returning: "Up",
  suspect: "Suspect",
  down: "Down",
};
const REBUILD_STATE: Record<RebuildProgress["state"], RebuildView["state"]> = {
  idle: "Idle",
  planning: "Planning",
  rebuilding: "Rebuilding",
};

export function localSnapshot(o: LocalObservation): StatusSnapshot {
  const status = clusterStatus(o.file, o.answers);
  const nodes = status.nodes.map((node, i) => nodeView(node, i, o, status.map));
  return {
    source: "local",
    takenAt: o.takenAt,
    epoch: status.map.epoch,
    nodes,
    volumes: o.volumes.map((spec) => volumeView(spec, status.map, status.nodes)),
  };
}

function nodeView(node: NodeStatus, i: number, o: LocalObservation, map: ClusterMap): NodeView {
  // What the other agents' heartbeats hear of this node (an agent cannot hear itself).
  const heard = o.readings.flatMap((r, j) =>
    r === undefined || j === i ? [] : r.peers.filter((p) => p.peer === node.id),
  );
  const answered = (c: 0 | 1) => node.channels[c]?.answers === true;
  const channel = (c: 0 | 1) => {
    const words = heard.flatMap((p) => {
      const s = p.channels[CHANNELS[c]];
      return s === undefined ? [] : [HEARD[s]];
    });
    const state: ChannelWord =
      words.length === 0
        ? answered(c)
          ? "Up"
          : "Down"
        : words.includes("Up")
          ? "Up"
          : words.includes("Suspect")
            ? "Suspect"
            : "Down";
    return { address: node.channels[c]?.address ?? map.nodes[i]?.addresses[c] ?? null, state };
  };
  const inMap = map.nodes.some((n) => n.id === node.id);
  const reachable = node.channels.some((c) => c.answers);
  return {
    name: node.id,
    phase: inMap ? (PHASE[node.state] ?? "Joining") : "Joining",
    channels: { A: channel(0), B: channel(1) },
    active: activeChannel(heard, answered(0), answered(1)),
    load: o.readings[i]?.load ?? null,
    used: null,
    capacity: o.capacityBytes === null ? null : formatBytes(o.capacityBytes),
    epoch: node.epoch ?? null,
    rebuild: !reachable ? null : node.rebuild === undefined ? offRebuild() : rebuildView(node.rebuild),
    message: reachable ? null : `its agent does not answer: ${node.channels.map((c) => c.error).join("; ")}`,
  };
}

/** The choice of most of the peers that hear it (A on a tie); with none, the first channel that answers. */
function activeChannel(heard: AgentReadings["peers"], a: boolean, b: boolean): NodeView["active"] {
  if (heard.length === 0) return a ? "A" : b ? "B" : "none";
  const onA = heard.filter((p) => p.active === "A").length;
  const onB = heard.filter((p) => p.active === "B").length;
  if (onA === 0 && onB === 0) return "none";
  return onA >= onB ? "A" : "B";
}

function offRebuild(): RebuildView {
  return { state: "Off", bytesLeft: null, bytesPerSecond: null, etaSeconds: null };
}

function rebuildView(p: RebuildProgress): RebuildView {
  return {
    state: REBUILD_STATE[p.state],
    bytesLeft: p.bytesLeft,
    bytesPerSecond: p.rateBytesPerSecond,
    etaSeconds: p.etaSeconds,
  };
}

function isRebuilding(p: RebuildProgress | undefined): boolean {
  return p !== undefined && (p.state !== "idle" || p.bytesLeft > 0);
}

/** The copies every answering agent holds of the volume; null when none said (an agent older than read copies). */
function readCopiesOf(volume: string, nodes: NodeStatus[]): number | null {
  const told = nodes.filter((n) => n.readCopies !== undefined);
  if (told.length === 0) return null;
  return told
    .flatMap((n) => n.readCopies ?? [])
    .reduce((sum, h) => sum + (h.volume === volume ? h.count : 0), 0);
}

/**
 * Failed when more nodes are down than its redundancy covers; Rebuilding
 * while any agent pulls pieces; Degraded while a node is down; else Healthy.
 */
function volumeView(spec: VolumeSpec, map: ClusterMap, nodes: NodeStatus[]): VolumeView {
  const tolerated = toleratedLosses(layoutOf(spec));
  const down = map.nodes.filter((n) => n.state === "down").map((n) => n.id);
  const rebuilding = nodes.filter((n) => isRebuilding(n.rebuild));
  const bytesLeft = rebuilding.reduce((sum, n) => sum + (n.rebuild?.bytesLeft ?? 0), 0);
  const rate = rebuilding.reduce((sum, n) => sum + (n.rebuild?.rateBytesPerSecond ?? 0), 0);
  const downWords = `${down.join(", ")} down`;
  let phase: VolumePhase = "Healthy";
  let message: string | null = null;
  if (down.length > tolerated) {
    phase = "Failed";
    message = `${downWords}: more than the ${tolerated} it tolerates, some files cannot be read`;
  } else if (rebuilding.length > 0) {
    phase = "Rebuilding";
    message = `${rebuilding.map((n) => n.id).join(", ")} pulling pieces (the cluster's rebuild, every volume)`;
  } else if (down.length > 0) {
    phase = "Degraded";
    message = `${downWords}; tolerates ${tolerated}`;
  }
  return {
    name: spec.name,
    phase,
    redundancy: describeRedundancy(spec.redundancy),
    capacity: formatBytes(spec.capacityBytes),
    used: null,
    chunks: null,
    readCopies: readCopiesOf(spec.name, nodes),
    rebuild:
      rebuilding.length === 0
        ? null
        : { bytesLeft, bytesPerSecond: rate, etaSeconds: rate > 0 ? Math.ceil(bytesLeft / rate) : null },
    message,
  };
}
