// What the status page shows: one JSON snapshot of the cluster, nodes and
// volumes, the same whether it came from Kubernetes objects (the operator's
// status-source.ts) or from the agents of a local cluster (local-view.ts).
// Pure. Absent facts are null, never guessed: a source that cannot know a
// volume's chunk counts says null and the page shows a dash.
import { isDeepStrictEqual } from "node:util";

export type ChannelWord = "Up" | "Suspect" | "Down" | "Unknown";
export type NodePhase = "Joining" | "Up" | "Down" | "Lost";
export type LoadWord = "Low" | "Medium" | "High";
export type VolumePhase = "Pending" | "Healthy" | "Degraded" | "Rebuilding" | "Failed";

export interface ChannelView {
  /** host:port the node serves this channel on. */
  address: string | null;
  state: ChannelWord;
}

export interface RebuildView {
  state: "Idle" | "Planning" | "Rebuilding" | "Off";
  bytesLeft: number | null;
  bytesPerSecond: number | null;
  etaSeconds: number | null;
}

export interface NodeView {
  name: string;
  phase: NodePhase;
  channels: { A: ChannelView; B: ChannelView };
  /** The channel most of its traffic takes; null when unknown. */
  active: "A" | "B" | "none" | null;
  load: LoadWord | null;
  /** Quantities as the source gives them (e.g. "12Gi"). */
  used: string | null;
  capacity: string | null;
  /** Epoch of the cluster map this node's agent holds. */
  epoch: number | null;
  rebuild: RebuildView | null;
  /** Why it is in this phase, in words (a Ready condition's message); null when nothing to say. */
  message: string | null;
}

export interface ChunkCountsView {
  healthy: number;
  degraded: number;
  lost: number;
}

export interface VolumeView {
  name: string;
  phase: VolumePhase;
  /** e.g. "erasure 2+1" or "replicas 3". */
  redundancy: string;
  capacity: string | null;
  used: string | null;
  chunks: ChunkCountsView | null;
  /** Temporary read copies of its hot stripes, serving or draining (seed 002); null when the source cannot know. */
  readCopies: number | null;
  rebuild: Omit<RebuildView, "state"> | null;
  message: string | null;
}

export interface StatusSnapshot {
  source: "kubernetes" | "local";
  /** ISO time the snapshot was taken. */
  takenAt: string;
  /** The newest cluster-map epoch known. */
  epoch: number | null;
  nodes: NodeView[];
  volumes: VolumeView[];
}

/** The same cluster, whenever each was taken: the feed publishes only changes. */
export function sameCluster(a: StatusSnapshot, b: StatusSnapshot): boolean {
  const { takenAt: _a, ...restA } = a;
  const { takenAt: _b, ...restB } = b;
  return isDeepStrictEqual(restA, restB);
}

export function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
