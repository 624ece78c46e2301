// What an agent says about itself in its ClusterNode's status, and the patch
// that brings the stored status there. Pure. The agent reconciles: whenever
// its view changes, or the stored status does (someone else wrote it), it
// patches only the fields that differ, so the status is written on
// transitions only — never a timestamp rewritten on a schedule.
//
// An agent sees its own channels only through its peers: its channel A is
// down when no live watched peer hears it on A while they still hear it on
// B (a peer down on both channels tells nothing about our NIC).
import { isDeepStrictEqual } from "node:util";
import type {
  ChannelStatus,
  ClusterNodeStatus,
  Condition,
  ObservedMap,
  VolumeHolding,
} from "@mosaic/operator/api/crds.generated.ts";
import type { ClusterMap } from "../core/cluster-map.ts";
import type { LoadLevel } from "../load/level.ts";
import type { ChannelState } from "../membership/channel-detector.ts";
import type { Channel } from "../membership/heartbeat.ts";
import type { PeerView } from "../membership/peer-health.ts";
import type { ChannelAttachment } from "./identity.ts";
import type { NodeRebuildReport } from "./node-rebuild.ts";
import { bytesQuantity } from "./quantity.ts";

export interface AgentSnapshot {
  self: string;
  channels: [ChannelAttachment, ChannelAttachment];
  /** The map the agent holds (the operator's, or one the agents agreed on since). */
  map: ClusterMap;
  /** Epoch of the operator map that map grew from. */
  baseEpoch: number;
  /** Detector views of the peers this agent watches (none while it is not in the map). */
  peers: PeerView[];
  usage: { usedBytes: number; capacityBytes: number; freeBytes: number };
  load: LoadLevel;
  /** Per volume, what this node holds (volume-report.ts): the operator's StripedVolume status adds them up. */
  holdings: VolumeHolding[];
  rebuild: NodeRebuildReport;
  /** uids of the StripedVolumes being deleted whose pieces are gone from here (volume-purge.ts). */
  deletedVolumes: string[];
}

/** The status fields the agent owns. */
export type AgentStatus = Required<
  Pick<
    ClusterNodeStatus,
    | "phase"
    | "channelA"
    | "channelB"
    | "activeChannel"
    | "load"
    | "capacity"
    | "used"
    | "observedMap"
    | "volumes"
    | "rebuild"
    | "deletedVolumes"
    | "conditions"
  >
>;

type ChannelWord = NonNullable<ChannelStatus["state"]>;

const WORD: Record<ChannelState, ChannelWord> = {
  up: "Up",
  returning: "Up",
  suspect: "Suspect",
  down: "Down",
};

/** This node's own channel, as its live watched peers hear it. */
export function ownChannelState(peers: readonly PeerView[], channel: Channel): ChannelWord {
  if (peers.length === 0) return "Up";
  const live = peers.filter((p) => p.state === "up");
  // Every watched peer silent on both channels: our NICs or theirs; we cannot tell which.
  if (live.length === 0) return "Suspect";
  const words = live.map((p) => WORD[p.channels[channel]]);
  if (words.includes("Up")) return "Up";
  return words.includes("Suspect") ? "Suspect" : "Down";
}

/** The channel most of this node's traffic takes: the per-peer choice of the majority (A on a tie). */
export function activeChannelOf(
  peers: readonly PeerView[],
  own: Record<Channel, ChannelWord>,
): "A" | "B" | "none" {
  const live = peers.filter((p) => p.state === "up");
  if (live.length === 0) return own.A !== "Down" ? "A" : own.B !== "Down" ? "B" : "none";
  const a = live.filter((p) => p.active === "A").length;
  const b = live.filter((p) => p.active === "B").length;
  if (a === 0 && b === 0) return "none";
  return a >= b ? "A" : "B";
}

function readyCondition(
  s: AgentSnapshot,
  own: Record<Channel, ChannelWord>,
): Omit<Condition, "lastTransitionTime"> {
  const state = s.map.nodes.find((n) => n.id === s.self)?.state;
  const no = (reason: string, message: string) => ({
    type: "Ready",
    status: "False" as const,
    reason,
    message,
  });
  if (state === undefined)
    return no("NotInClusterMap", "waiting for the operator to add this node to the cluster map");
  if (state === "out")
    return no("OutOfClusterMap", "out of the cluster map (Lost); waiting for the operator to take it back");
  if (state === "down") return no("DownInClusterMap", "the other agents agreed this node is down");
  if (s.usage.freeBytes <= 0)
    return no(
      "StoreFull",
      `chunk store full: ${bytesQuantity(s.usage.usedBytes)} used of ${bytesQuantity(s.usage.capacityBytes)}`,
    );
  const live = s.peers.filter((p) => p.state === "up").length;
  if (s.peers.length > 0 && live === 0)
    return no("Isolated", `none of the ${s.peers.length} watched peers is heard on either channel`);
  const heard = `${live} of ${s.peers.length} watched peers heard`;
  if (own.A === "Down" || own.B === "Down") {
    const [down, up] = own.A === "Down" ? ["A", "B"] : ["B", "A"];
    return {
      type: "Ready",
      status: "True",
      reason: `Channel${down}Down`,
      message: `serving on channel ${up} only: no live peer hears channel ${down}; ${heard}`,
    };
  }
  return { type: "Ready", status: "True", reason: "Serving", message: `both channels up; ${heard}` };
}

export function agentStatus(s: AgentSnapshot): AgentStatus {
  const own = { A: ownChannelState(s.peers, "A"), B: ownChannelState(s.peers, "B") };
  const state = s.map.nodes.find((n) => n.id === s.self)?.state;
  const [a, b] = s.channels;
  const down = s.map.nodes.filter((n) => n.state === "down").map((n) => n.id);
  const out = s.map.nodes
    .filter((n) => n.state === "out")
    .map((n) => ({ node: n.id, outEpoch: n.outEpoch ?? s.map.epoch }));
  return {
    phase: state === "up" ? "Up" : state === "down" ? "Down" : "Joining",
    channelA: { address: a.address, interface: a.interface, state: own.A },
    channelB: { address: b.address, interface: b.interface, state: own.B },
    activeChannel: activeChannelOf(s.peers, own),
    load: s.load,
    capacity: bytesQuantity(s.usage.capacityBytes),
    used: bytesQuantity(s.usage.usedBytes),
    observedMap: { epoch: s.map.epoch, baseEpoch: s.baseEpoch, down: down.sort(), out: out.sort(byNode) },
    volumes: s.holdings,
    rebuild: s.rebuild,
    deletedVolumes: s.deletedVolumes,
    conditions: [readyCondition(s, own)],
  };
}

function byNode(a: { node: string }, b: { node: string }): number {
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

function normalMap(m: ObservedMap | undefined): ObservedMap {
  return { epoch: m?.epoch ?? 0, baseEpoch: m?.baseEpoch ?? 0, down: m?.down ?? [], out: m?.out ?? [] };
}

/**
 * The merge patch that makes `stored` say what `desired` says, or undefined
 * when it already does. A condition keeps its lastTransitionTime while its
 * status holds; `nowIso` stamps a new one.
 */
export function statusPatch(
  desired: AgentStatus,
  stored: ClusterNodeStatus | undefined,
  nowIso: string,
): Partial<ClusterNodeStatus> | undefined {
  const patch: Partial<ClusterNodeStatus> = {};
  const keys = [
    "phase",
    "channelA",
    "channelB",
    "activeChannel",
    "load",
    "capacity",
    "used",
    "volumes",
    "rebuild",
    "deletedVolumes",
  ] as const;
  for (const key of keys) {
    if (!isDeepStrictEqual(desired[key], stored?.[key])) Object.assign(patch, { [key]: desired[key] });
  }
  if (!isDeepStrictEqual(normalMap(desired.observedMap), normalMap(stored?.observedMap)))
    patch.observedMap = desired.observedMap;
  const want = desired.conditions[0] as Condition;
  const had = stored?.conditions?.find((c) => c.type === want.type);
  const same = (k: keyof Condition) => (had?.[k] ?? undefined) === (want[k] ?? undefined);
  if (!same("status") || !same("reason") || !same("message") || stored?.conditions?.length !== 1) {
    const since = had?.status === want.status ? (had.lastTransitionTime ?? nowIso) : nowIso;
    patch.conditions = [{ ...want, lastTransitionTime: since }];
  }
  return Object.keys(patch).length === 0 ? undefined : patch;
}
