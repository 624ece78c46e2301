// The agent's timings in Kubernetes, from the environment the DaemonSet sets
// (operator/src/agent-daemonset.ts). Pure; a bad value is named in the error.
import { MosaicError } from "../errors.ts";
import {
  CHANNEL_DOWN_MAX_MS,
  detectorConfigFor,
  HEARTBEAT_INTERVAL_MAX_MS,
  type HeartbeatTimings,
} from "../membership/config.ts";

export interface KubeAgentSettings {
  /** MOSAIC_HEARTBEAT_OUT_GRACE_MS: the agents' own down → out grace; undefined: the command line's. */
  outGraceMs: number | undefined;
  /** MOSAIC_LEASE_SECONDS: the agent Lease's duration. */
  leaseSeconds: number | undefined;
  /**
   * MOSAIC_HEARTBEAT_INTERVAL_MS and MOSAIC_HEARTBEAT_CHANNEL_DOWN_MS (the
   * chart's heartbeat.intervalMs and channelDownMs); each unset one is the
   * command line's.
   */
  heartbeat: Partial<HeartbeatTimings>;
}

export function kubeAgentSettingsFromEnv(env: Record<string, string | undefined>): KubeAgentSettings {
  const problems: string[] = [];
  const integer = (name: string, min: number, max: number): number | undefined => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return undefined;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) {
      problems.push(`${name}=${raw} must be a whole number from ${min} to ${max}`);
      return undefined;
    }
    return n;
  };
  const outGraceMs = integer("MOSAIC_HEARTBEAT_OUT_GRACE_MS", 1, 2 ** 31 - 1);
  const leaseSeconds = integer("MOSAIC_LEASE_SECONDS", 1, 3_600);
  const heartbeatIntervalMs = integer("MOSAIC_HEARTBEAT_INTERVAL_MS", 1, HEARTBEAT_INTERVAL_MAX_MS);
  const channelDownMs = integer("MOSAIC_HEARTBEAT_CHANNEL_DOWN_MS", 1, CHANNEL_DOWN_MAX_MS);
  const heartbeat = {
    ...(heartbeatIntervalMs === undefined ? {} : { heartbeatIntervalMs }),
    ...(channelDownMs === undefined ? {} : { channelDownMs }),
  };
  if (problems.length === 0) {
    try {
      detectorConfigFor(heartbeat);
    } catch (error) {
      problems.push(
        `MOSAIC_HEARTBEAT_INTERVAL_MS and MOSAIC_HEARTBEAT_CHANNEL_DOWN_MS do not fit together: ${(error as Error).message}`,
      );
    }
  }
  if (problems.length > 0)
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `agent in Kubernetes: ${problems.join("; ")}`);
  return { outGraceMs, leaseSeconds, heartbeat };
}
