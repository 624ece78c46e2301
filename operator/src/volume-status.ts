// A StripedVolume's status, from the cluster view (cluster-view.ts). Pure.
//
// Where the facts come from: each agent reports in its ClusterNode, per
// volume, the pieces (chunk files) and bytes it holds, and its rebuild —
// whether pieces are moving, how fast, and the newest map epoch at which it
// had nothing left to pull (settledEpoch). The agents' map says which nodes
// are up, down or out. From those:
//   - a holder (a node that reported pieces of the volume) that is down, or
//     whose agent's Lease lapsed, is unavailable: its pieces are read around;
//     one that is out is unavailable until every serving node has settled at
//     the current epoch (its pieces have been placed elsewhere by then);
//   - Degraded: a holder is unavailable, or fewer nodes serve than a stripe
//     is wide;
//   - Failed: more holders unavailable than the redundancy survives: stripes
//     with pieces on more of them than that cannot be read until they return;
//   - Rebuilding: pieces are moving (some serving agent is pulling) and not
//     every serving node has settled; or nothing moves yet but some node has
//     not caught up with the epoch (CatchingUp);
//   - Pending: no agent serves it yet, or it holds no data and the agents
//     have not caught up yet;
//   - Healthy: every serving node has the volume and has settled at the
//     current epoch, no holder is unavailable, enough nodes for a stripe.
// The phase is the first that holds of Failed, Rebuilding (pieces moving),
// Pending (not taken), Degraded, Rebuilding (catching up), Pending, Healthy.
//
// Chunks: healthy counts pieces on serving nodes, degraded those on
// unavailable holders (as they last reported). Lost is not reported: it
// needs a per-stripe view the counts do not give. The rebuild's progress is
// this volume's part of each agent's rebuild (agents list the volumes they
// pull for), summed over the agents pulling: a volume the failure did not
// touch shows none. An agent's pass pulls for all its volumes at once, so
// each volume gets the share of the agent's rate that its bytes left are,
// and the agent's ETA.
//
// Read replicas: the temporary read copies of hot files the agents hold
// (each file's owner adds and removes them: node-agent/src/load/
// read-copies.ts), per serving node and in all. The operator decides
// nothing about them; it reports them, and an Event for each change.

import { describeRedundancy, layoutOf, toleratedLosses } from "../../node-agent/src/core/volume.ts";
import { bytesQuantity } from "../../node-agent/src/kube/quantity.ts";
import { volumeSpecOf } from "../../node-agent/src/kube/volumes.ts";
import type { Condition, ReadReplicas, StripedVolume, StripedVolumeStatus } from "./api/types.ts";
import type { ClusterView, MemberView } from "./cluster-view.ts";

export type VolumePhase = NonNullable<StripedVolumeStatus["phase"]>;

export type DesiredCondition = Omit<Condition, "lastTransitionTime">;

/** The status the operator writes; `rebuild` null clears it (merge patch). */
export interface DesiredVolumeStatus {
  observedGeneration: number;
  phase: VolumePhase;
  redundancy: string;
  used: string;
  epoch: number;
  chunks: { healthy: number; degraded: number };
  /** etaSeconds null: no agent has measured a rate yet (the merge patch removes a stale one). */
  rebuild: { bytesLeft: number; bytesPerSecond: number; etaSeconds: number | null } | null;
  /** null: none (the merge patch removes a stale count). */
  readReplicas: ReadReplicaCounts | null;
  conditions: DesiredCondition[];
}

export interface ReadReplicaCounts {
  count: number;
  nodes: { name: string; count: number }[];
}

export interface VolumeVerdict {
  status: DesiredVolumeStatus;
  /** One line saying why the phase is what it is: the message of the phase's Event. */
  summary: string;
}

export function volumeStatus(sv: StripedVolume, view: ClusterView): VolumeVerdict {
  const generation = sv.metadata?.generation ?? 0;
  const condition = (type: string, ok: boolean, reason: string, message: string): DesiredCondition => ({
    type,
    status: ok ? "True" : "False",
    reason,
    message,
    observedGeneration: generation,
  });
  let spec: ReturnType<typeof volumeSpecOf>;
  try {
    spec = volumeSpecOf(sv);
  } catch (error) {
    const message = (error as Error).message;
    return {
      summary: message,
      status: {
        observedGeneration: generation,
        phase: "Failed",
        redundancy: "",
        used: "0",
        epoch: view.epoch,
        chunks: { healthy: 0, degraded: 0 },
        rebuild: null,
        readReplicas: null,
        conditions: [condition("Ready", false, "InvalidSpec", message)],
      },
    };
  }
  const layout = layoutOf(spec);
  const tolerance = toleratedLosses(layout);
  const redundancy = describeRedundancy(spec.redundancy);
  const holding = (m: MemberView) => m.status?.volumes?.find((v) => v.name === spec.name);
  const serving = view.members.filter((m) => m.state === "up" && m.liveness === "live");
  const notSettled = serving.filter(
    (m) =>
      holding(m) === undefined ||
      (m.status?.rebuild?.state !== "Off" && (m.status?.rebuild?.settledEpoch ?? 0) < view.epoch),
  );
  const settled = serving.length > 0 && notSettled.length === 0;
  // With its rebuild off, an agent never takes over an out node's pieces.
  const replaced = settled && serving.every((m) => m.status?.rebuild?.state !== "Off");
  const holders = view.members.filter((m) => (holding(m)?.pieces ?? 0) > 0);
  const unavailable = holders.filter((m) => !serving.includes(m) && !(m.state === "out" && replaced));
  // This volume's share of each agent's rebuild; an agent that does not list its volumes counts whole.
  const pullingFor = (m: MemberView): number => {
    const r = m.status?.rebuild;
    if (r?.state !== "Rebuilding") return 0;
    if (r.volumes === undefined) return r.bytesLeft ?? 0;
    return r.volumes.find((v) => v.name === spec.name)?.bytesLeft ?? 0;
  };
  const moving = serving.filter((m) => pullingFor(m) > 0);
  const hasData = holders.length > 0;
  const sum = (ms: MemberView[], field: "pieces" | "bytes") =>
    ms.reduce((total, m) => total + (holding(m)?.[field] ?? 0), 0);
  const names = (ms: MemberView[]) => ms.map((m) => m.id).join(", ");
  const degradedPieces = sum(unavailable, "pieces");

  const failed = unavailable.length > tolerance;
  const pullingNow = hasData && !settled && moving.length > 0;
  const catchingUp = hasData && !settled && moving.length === 0;
  const untaken = serving.every((m) => holding(m) === undefined);
  const pending = untaken || (!hasData && !settled);

  const unavailableWhy = unavailable
    .map((m) => `${m.id} ${m.liveness === "live" ? m.state : "silent"}`)
    .join(", ");
  const tooFew = serving.length < layout.width;
  let degraded: DesiredCondition;
  if (unavailable.length > 0)
    degraded = condition(
      "Degraded",
      true,
      "NodesUnavailable",
      `${unavailableWhy}: their ${degradedPieces} pieces are read around (decoded or from another copy) until they return or are rebuilt`,
    );
  else if (tooFew)
    degraded = condition(
      "Degraded",
      true,
      "TooFewNodes",
      `${serving.length} nodes serve it; a stripe of ${redundancy} needs ${layout.width} on distinct nodes`,
    );
  else degraded = condition("Degraded", false, "AllPiecesAvailable", "every node holding its pieces is up");

  let rebuild: DesiredVolumeStatus["rebuild"] = null;
  let rebuilding: DesiredCondition;
  if (pullingNow) {
    const bytesLeft = moving.reduce((t, m) => t + pullingFor(m), 0);
    // An agent's pass pulls all its volumes at once: each gets the share of its rate that its bytes are.
    const share = (m: MemberView) =>
      pullingFor(m) / Math.max(m.status?.rebuild?.bytesLeft ?? 0, pullingFor(m));
    const bytesPerSecond = Math.round(
      moving.reduce((t, m) => t + (m.status?.rebuild?.bytesPerSecond ?? 0) * share(m), 0),
    );
    // Agents rebuild in parallel: the last to finish sets the ETA; one without a rate yet says nothing.
    const rated = moving.filter((m) => (m.status?.rebuild?.bytesPerSecond ?? 0) > 0);
    const etaSeconds =
      rated.length === 0 ? null : Math.max(...rated.map((m) => m.status?.rebuild?.etaSeconds ?? 0));
    rebuild = { bytesLeft, bytesPerSecond, etaSeconds };
    rebuilding = condition(
      "Rebuilding",
      true,
      "PiecesMoving",
      `${names(moving)} pulling pieces for map epoch ${view.epoch}: ${bytesQuantity(bytesLeft)} left` +
        (etaSeconds === null
          ? ", rate not measured yet"
          : ` at ${bytesQuantity(bytesPerSecond)}/s, about ${etaSeconds} s`),
    );
  } else if (catchingUp)
    rebuilding = condition(
      "Rebuilding",
      true,
      "CatchingUp",
      `${names(notSettled)} not yet settled at map epoch ${view.epoch}`,
    );
  else
    rebuilding = condition(
      "Rebuilding",
      false,
      "Settled",
      `every serving node holds what placement puts on it at map epoch ${view.epoch}`,
    );

  let ready: DesiredCondition;
  if (failed)
    ready = condition(
      "Ready",
      false,
      "TooManyNodesUnavailable",
      `${unavailableWhy}: more than the ${tolerance} that ${redundancy} survives; stripes with pieces on more than ${tolerance} of them cannot be read until they return`,
    );
  else if (pending)
    ready = condition(
      "Ready",
      false,
      "Pending",
      serving.length === 0
        ? "no agent is up in the cluster map"
        : untaken
          ? "no agent has taken the volume yet"
          : `${names(notSettled)} not yet settled at map epoch ${view.epoch}`,
    );
  else
    ready = condition(
      "Ready",
      true,
      "Serving",
      `served by ${serving.length} nodes at map epoch ${view.epoch}`,
    );

  const phase: VolumePhase = failed
    ? "Failed"
    : pullingNow
      ? "Rebuilding"
      : untaken
        ? "Pending"
        : degraded.status === "True"
          ? "Degraded"
          : catchingUp
            ? "Rebuilding"
            : pending
              ? "Pending"
              : "Healthy";
  const summary =
    phase === "Failed" || phase === "Pending"
      ? (ready.message ?? "")
      : phase === "Degraded"
        ? (degraded.message ?? "")
        : phase === "Rebuilding"
          ? (rebuilding.message ?? "")
          : `${ready.message}; ${sum(serving, "pieces")} pieces, none unavailable`;
  return {
    summary,
    status: {
      observedGeneration: generation,
      phase,
      redundancy,
      used: bytesQuantity(sum(serving, "bytes")),
      epoch: view.epoch,
      chunks: { healthy: sum(serving, "pieces"), degraded: degradedPieces },
      rebuild,
      readReplicas: readReplicasOf(serving.map((m) => ({ name: m.id, count: holding(m)?.readCopies ?? 0 }))),
      conditions: [ready, degraded, rebuilding],
    },
  };
}

/** The nodes holding read copies (by name) and their total; null when none does. */
export function readReplicasOf(
  perNode: readonly { name: string; count: number }[],
): ReadReplicaCounts | null {
  const nodes = perNode.filter((n) => n.count > 0).sort((a, b) => (a.name < b.name ? -1 : 1));
  return nodes.length === 0 ? null : { count: nodes.reduce((t, n) => t + n.count, 0), nodes };
}

/** One Event per node whose count of read copies moved: ReadReplicaAdded or ReadReplicaRemoved. */
export function readReplicaChanges(
  before: ReadReplicas | null | undefined,
  after: ReadReplicaCounts | null,
): { reason: "ReadReplicaAdded" | "ReadReplicaRemoved"; message: string }[] {
  const was = new Map((before?.nodes ?? []).map((n) => [n.name, n.count]));
  const now = new Map((after?.nodes ?? []).map((n) => [n.name, n.count]));
  const copies = (n: number) => `${n} read ${n === 1 ? "copy" : "copies"}`;
  const total = after?.count ?? 0;
  const changes: { reason: "ReadReplicaAdded" | "ReadReplicaRemoved"; message: string }[] = [];
  for (const name of [...new Set([...was.keys(), ...now.keys()])].sort()) {
    const a = was.get(name) ?? 0;
    const b = now.get(name) ?? 0;
    if (b > a)
      changes.push({
        reason: "ReadReplicaAdded",
        message: `${copies(b - a)} of hot stripes added on ${name} (every holder High); ${b} there, ${total} in all`,
      });
    else if (b < a)
      changes.push({
        reason: "ReadReplicaRemoved",
        message: `${copies(a - b)} drained and removed from ${name} (the load is gone, or the file changed); ${b} there, ${total} in all`,
      });
  }
  return changes;
}

/** The conditions with their lastTransitionTime: kept from `stored` while a condition's status holds. */
export function withTransitionTimes(
  desired: readonly DesiredCondition[],
  stored: readonly Condition[] | undefined,
  nowIso: string,
): Condition[] {
  return desired.map((c) => {
    const had = stored?.find((s) => s.type === c.type);
    const since = had?.status === c.status ? (had.lastTransitionTime ?? nowIso) : nowIso;
    return { ...c, lastTransitionTime: since };
  });
}

/** Whether the stored status already says everything `desired` says (conditions compared without their times). */
export function statusSays(stored: StripedVolumeStatus | undefined, desired: DesiredVolumeStatus): boolean {
  if (stored === undefined) return false;
  const strip = (cs: readonly Condition[] | undefined) =>
    (cs ?? []).map(({ lastTransitionTime: _t, ...rest }) => JSON.stringify(rest, Object.keys(rest).sort()));
  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  return (
    stored.observedGeneration === desired.observedGeneration &&
    stored.phase === desired.phase &&
    stored.redundancy === desired.redundancy &&
    stored.used === desired.used &&
    stored.epoch === desired.epoch &&
    stored.chunks?.healthy === desired.chunks.healthy &&
    stored.chunks?.degraded === desired.chunks.degraded &&
    same(
      stored.rebuild && [stored.rebuild.bytesLeft, stored.rebuild.bytesPerSecond, stored.rebuild.etaSeconds],
      desired.rebuild && [
        desired.rebuild.bytesLeft,
        desired.rebuild.bytesPerSecond,
        desired.rebuild.etaSeconds,
      ],
    ) &&
    same(
      stored.readReplicas && [stored.readReplicas.count, stored.readReplicas.nodes ?? []],
      desired.readReplicas && [desired.readReplicas.count, desired.readReplicas.nodes],
    ) &&
    same(strip(stored.conditions), strip(desired.conditions))
  );
}
