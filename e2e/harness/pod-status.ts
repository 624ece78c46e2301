// The kubelet's status manager and restart rules, as pure functions: what a
// pod's status says given its containers' states (phase, conditions,
// containerStatuses, IPs), and whether and when an exited container starts
// again (restartPolicy; CrashLoopBackOff doubling from 10 s to 5 min).

export type ContainerState =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | {
      terminated: {
        exitCode: number;
        signal?: number;
        reason: string;
        message?: string;
        startedAt: string;
        finishedAt: string;
        containerID?: string;
      };
    };

export interface ContainerRecord {
  name: string;
  image: string;
  state: ContainerState;
  lastState?: ContainerState;
  restartCount: number;
  ready: boolean;
  containerID?: string;
}

export type RestartPolicy = "Always" | "OnFailure" | "Never";
export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed";

export interface PodCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  lastProbeTime?: string | null;
}

export interface PodStatusInput {
  records: readonly ContainerRecord[];
  restartPolicy: RestartPolicy;
  /** The pod's network is up (Multus done): it has its IP. */
  sandboxReady: boolean;
  podIp: string;
  hostIp: string;
  startTime: string;
  /** The pod's conditions as the API has them: others' (PodScheduled, gates) are kept. */
  previous: readonly PodCondition[];
  /** spec.readinessGates' condition types: Ready needs them True too. */
  readinessGates: readonly string[];
  now: string;
}

/** The kubelet's phase: Pending until every container has run; then by what runs, and the restart policy. */
export function podPhase(records: readonly ContainerRecord[], policy: RestartPolicy): PodPhase {
  let running = 0;
  let neverRan = 0;
  let succeeded = 0;
  let failed = 0;
  for (const r of records) {
    if ("running" in r.state) running++;
    else if ("terminated" in r.state) r.state.terminated.exitCode === 0 ? succeeded++ : failed++;
    else if (r.lastState !== undefined && "terminated" in r.lastState)
      r.lastState.terminated.exitCode === 0 ? succeeded++ : failed++;
    else neverRan++;
  }
  if (neverRan > 0) return "Pending";
  if (running > 0) return "Running";
  if (policy === "Always") return "Running";
  if (policy === "OnFailure") return failed > 0 ? "Running" : "Succeeded";
  return failed > 0 ? "Failed" : "Succeeded";
}

/** The status the kubelet writes (a merge patch's `status`): phase, conditions, IPs, containerStatuses. */
export function podStatus(s: PodStatusInput): Record<string, unknown> {
  const phase = podPhase(s.records, s.restartPolicy);
  const done = phase === "Succeeded" || phase === "Failed";
  const unready = s.records.filter((r) => !r.ready).map((r) => r.name);
  const gatesOpen = s.readinessGates.every((g) =>
    s.previous.some((c) => c.type === g && c.status === "True"),
  );
  const condition = (type: string, ok: boolean, reason?: string, message?: string): PodCondition => {
    const status = ok ? "True" : "False";
    const before = s.previous.find((c) => c.type === type);
    return {
      type,
      status,
      ...(ok || reason === undefined ? {} : { reason }),
      ...(ok || message === undefined ? {} : { message }),
      lastProbeTime: null,
      lastTransitionTime:
        before?.status === status && before.lastTransitionTime ? before.lastTransitionTime : s.now,
    };
  };
  const containersReady = !done && unready.length === 0;
  const why = done ? "PodCompleted" : "ContainersNotReady";
  const message = done ? undefined : `containers with unready status: [${unready.join(" ")}]`;
  const ours: PodCondition[] = [
    condition("PodReadyToStartContainers", s.sandboxReady),
    condition("Initialized", true),
    condition("ContainersReady", containersReady, why, message),
    condition("Ready", containersReady && gatesOpen, gatesOpen ? why : "ReadinessGatesNotReady", message),
  ];
  const kept = s.previous.filter((c) => !ours.some((o) => o.type === c.type));
  return {
    phase,
    conditions: [...kept, ...ours],
    hostIP: s.hostIp,
    hostIPs: [{ ip: s.hostIp }],
    ...(s.sandboxReady ? { podIP: s.podIp, podIPs: [{ ip: s.podIp }] } : {}),
    startTime: s.startTime,
    containerStatuses: s.records.map((r) => ({
      name: r.name,
      image: r.image,
      imageID: "",
      ...(r.containerID === undefined ? {} : { containerID: r.containerID }),
      ready: r.ready,
      started: "running" in r.state,
      restartCount: r.restartCount,
      state: r.state,
      lastState: r.lastState ?? {},
    })),
  };
}

/** CrashLoopBackOff: no wait for the first restart, then 10 s doubling to 5 min; reset after 10 min of running. */
export const BACKOFF = { baseMs: 10_000, maxMs: 300_000 } as const;

/**
 * Whether a container that exited with `exitCode` starts again under
 * `policy`, and after how long: undefined for never.
 */
export function restartDelayMs(
  policy: RestartPolicy,
  exitCode: number,
  restartCount: number,
  ranMs: number,
  backoff: { baseMs: number; maxMs: number } = BACKOFF,
): number | undefined {
  if (policy === "Never" || (policy === "OnFailure" && exitCode === 0)) return undefined;
  if (restartCount === 0 || ranMs >= 2 * backoff.maxMs) return 0;
  return Math.min(backoff.maxMs, backoff.baseMs * 2 ** (restartCount - 1));
}

/** The terminated state a runtime reports for an exit. */
export function terminatedState(
  exit: { exitCode: number; signal?: string | undefined },
  startedAt: string,
  finishedAt: string,
  containerID: string,
): ContainerState {
  return {
    terminated: {
      exitCode: exit.exitCode,
      reason: exit.exitCode === 0 ? "Completed" : "Error",
      ...(exit.signal === undefined ? {} : { message: `killed by ${exit.signal}` }),
      startedAt,
      finishedAt,
      containerID,
    },
  };
}
