// What `mosaic nodes` shows of each node: its state in the newest map an
// agent holds (agents agree on down and out among themselves; the cluster
// file says only what an operator last wrote), which channels answer, the
// map epoch its agent holds, its load level, and its rebuild (bytes left,
// rate, ETA). Pure:
// the input is the cluster file and what each address answered.
import type { ClusterInfo } from "../client/agent-client.ts";
import type { ClusterMap, NodeState } from "../core/cluster-map.ts";
import type { RebuildProgress } from "../data/rebuild.ts";
import type { LoadLevel } from "../load/level.ts";
import type { HeldCount } from "../load/read-copy-messages.ts";
import { formatBytes, formatDuration } from "./format.ts";

/** What one address said to a `cluster` call. */
export interface ChannelAnswer {
  address: string;
  info?: ClusterInfo;
  error?: string;
}

export interface NodeStatus {
  id: string;
  /** In the newest map (ClusterStatus.map). */
  state: NodeState;
  channels: { address: string; answers: boolean; error?: string }[];
  /** Epoch of the map its agent holds; absent when it does not answer. */
  epoch?: number;
  /** Its agent's rebuild; absent when it does not answer or runs with the rebuild off. */
  rebuild?: RebuildProgress;
  /** Its agent's load level; absent when it does not answer. */
  load?: LoadLevel;
  /** Temporary read copies of hot files its agent holds; absent when it does not answer. */
  readCopies?: HeldCount[];
}

export interface ClusterStatus {
  /** The newest map any agent holds; the cluster file's when none answers. */
  map: ClusterMap;
  nodes: NodeStatus[];
}

/** `answers[i]` holds what each address of `file.nodes[i]` answered. */
export function clusterStatus(file: ClusterMap, answers: ChannelAnswer[][]): ClusterStatus {
  const infos = answers.flat().flatMap((a) => (a.info === undefined ? [] : [a.info]));
  const map = infos.reduce<ClusterMap | undefined>(
    (newest, info) => (newest === undefined || info.map.epoch > newest.epoch ? info.map : newest),
    undefined,
  ) ?? { epoch: file.epoch, nodes: file.nodes };
  const nodes = file.nodes.map((node, i): NodeStatus => {
    const said = answers[i] ?? [];
    const info = said.find((a) => a.info !== undefined)?.info;
    const state = map.nodes.find((n) => n.id === node.id)?.state ?? node.state;
    const channels = said.map((a) =>
      a.info === undefined
        ? { address: a.address, answers: false, error: a.error ?? "no answer" }
        : { address: a.address, answers: true },
    );
    const status: NodeStatus = { id: node.id, state, channels };
    if (info !== undefined) status.epoch = info.map.epoch;
    if (info?.rebuild !== undefined) status.rebuild = info.rebuild;
    if (info?.load !== undefined) status.load = info.load;
    if (info?.readCopies !== undefined) status.readCopies = info.readCopies;
    return status;
  });
  return { map, nodes };
}

/**
 * The rebuild column: empty for an idle node with nothing waiting, so a
 * healthy cluster's table stays quiet; "off" for an agent running without
 * a rebuild.
 */
export function describeRebuild(node: NodeStatus): string {
  if (node.epoch === undefined) return "";
  const p = node.rebuild;
  if (p === undefined) return "off";
  if (p.state === "planning") return "planning";
  if (p.state === "idle") return p.pending > 0 ? `${p.pending} waiting on other nodes` : "";
  // A rate over less than an average piece is noise: a pass pulls small
  // manifests first and its first data piece waits for the rate limit.
  const measured = p.rateBytesPerSecond > 0 && p.bytesDone * p.piecesTotal >= p.bytesTotal;
  // In the unit of --rebuild-rate, so the two compare at a glance.
  const rate = measured ? ` at ${formatBytes(p.rateBytesPerSecond)}/s` : ", rate not yet measured";
  const eta = measured && p.etaSeconds !== null ? `, ETA ${formatDuration(p.etaSeconds * 1_000)}` : "";
  const failed =
    p.piecesFailed > 0 ? `, ${p.piecesFailed} piece${p.piecesFailed === 1 ? "" : "s"} failed` : "";
  return `${formatBytes(p.bytesLeft)} left of ${formatBytes(p.bytesTotal)}${rate}${eta}${failed}`;
}

/** The read copies column: "hot: 2 serving, 1 draining"; empty for a node holding none. */
export function describeReadCopies(node: NodeStatus): string {
  const byVolume = new Map<string, string[]>();
  for (const { volume, phase, count } of node.readCopies ?? []) {
    if (count === 0) continue;
    byVolume.set(volume, [...(byVolume.get(volume) ?? []), `${count} ${phase}`]);
  }
  return [...byVolume].map(([volume, parts]) => `${volume}: ${parts.join(", ")}`).join("; ");
}

/** "map epoch 4", or "map epochs 3 to 4" while agents still converge. */
export function describeEpochs(nodes: NodeStatus[]): string | undefined {
  const epochs = nodes.flatMap((n) => (n.epoch === undefined ? [] : [n.epoch]));
  if (epochs.length === 0) return undefined;
  const low = Math.min(...epochs);
  const high = Math.max(...epochs);
  return low === high ? `map epoch ${high}` : `map epochs ${low} to ${high}`;
}
