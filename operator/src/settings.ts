// The operator's settings, read from its environment (the Helm chart's values
// arrive this way). Every problem is reported at once, by variable name.
import type { AgentDaemonSetSettings } from "./agent-daemonset.ts";

export interface OperatorSettings {
  agent: AgentDaemonSetSettings;
  /** A node whose agent's Lease has been expired this long is Lost: out of the cluster map. */
  outGraceMs: number;
  /** Agents' certificates: signed by the operator when enabled, with this lifetime. */
  tls: { enabled: boolean; certificateLifetimeMs: number };
}

/** `168h`, `90m`: the chart's tls.certificateLifetime, in ms; undefined when it is not one. */
export function lifetimeMs(text: string): number | undefined {
  const match = /^(\d+)(h|m)$/.exec(text.trim());
  if (match === null) return undefined;
  return Number(match[1]) * (match[2] === "h" ? 3_600_000 : 60_000);
}

export function settingsFromEnv(env: Record<string, string | undefined>): OperatorSettings {
  const problems: string[] = [];
  const text = (name: string, fallback?: string): string => {
    const value = env[name] ?? fallback;
    if (value === undefined || value === "") problems.push(`${name} is required`);
    return value ?? "";
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max)
      problems.push(`${name}=${raw} must be an integer from ${min} to ${max}`);
    return n;
  };
  const json = <T>(name: string): T | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === "") return undefined;
    try {
      return JSON.parse(raw) as T;
    } catch {
      problems.push(`${name} must be JSON`);
      return undefined;
    }
  };
  const nodeSelector = json<Record<string, string>>("MOSAIC_AGENT_NODE_SELECTOR");
  const tolerations = json<AgentDaemonSetSettings["tolerations"]>("MOSAIC_AGENT_TOLERATIONS");
  const resources = json<AgentDaemonSetSettings["resources"]>("MOSAIC_AGENT_RESOURCES");
  const outGraceMs = integer("MOSAIC_OUT_GRACE_MS", 300_000, 1_000, 86_400_000);
  const rebuildRate = env.MOSAIC_AGENT_REBUILD_RATE?.trim() ?? "";
  const gatewayPort = integer("MOSAIC_GATEWAY_PORT", 0, 0, 65535);
  // The agent's own --rebuild-rate syntax: refused here, clearly, rather than by every agent at start.
  if (rebuildRate !== "" && !/^\d+(\.\d+)?\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/i.test(rebuildRate))
    problems.push(`MOSAIC_AGENT_REBUILD_RATE=${rebuildRate} is not a size per second (e.g. 64MiB)`);
  const agent: AgentDaemonSetSettings = {
    namespace: text("MOSAIC_NAMESPACE"),
    name: text("MOSAIC_AGENT_NAME", "mosaic-agent"),
    image: text("MOSAIC_AGENT_IMAGE"),
    serviceAccountName: text("MOSAIC_AGENT_SERVICE_ACCOUNT", "mosaic-agent"),
    networks: { channelA: text("MOSAIC_NETWORK_A"), channelB: text("MOSAIC_NETWORK_B") },
    hostPaths: {
      data: text("MOSAIC_DATA_HOST_PATH", "/var/lib/mosaic"),
      ipc: text("MOSAIC_IPC_HOST_PATH", "/run/mosaic"),
    },
    port: integer("MOSAIC_AGENT_PORT", 7400, 1, 65535),
    heartbeat: {
      intervalMs: integer("MOSAIC_HEARTBEAT_INTERVAL_MS", 50, 5, 10_000),
      channelDownMs: integer("MOSAIC_CHANNEL_DOWN_MS", 300, 20, 60_000),
      outGraceMs,
    },
    ...(nodeSelector === undefined ? {} : { nodeSelector }),
    ...(tolerations === undefined ? {} : { tolerations }),
    ...(resources === undefined ? {} : { resources }),
    ...(rebuildRate === "" ? {} : { rebuildRate }),
    ...(gatewayPort === 0 ? {} : { gatewayPort }),
  };
  if (agent.networks.channelA !== "" && agent.networks.channelA === agent.networks.channelB) {
    problems.push(
      "MOSAIC_NETWORK_A and MOSAIC_NETWORK_B must differ: one network for both channels makes a NIC failure a node failure",
    );
  }
  const tlsText = env.MOSAIC_TLS_ENABLED ?? "false";
  if (tlsText !== "true" && tlsText !== "false")
    problems.push(`MOSAIC_TLS_ENABLED=${tlsText} must be true or false`);
  const lifetimeText = env.MOSAIC_TLS_CERTIFICATE_LIFETIME ?? "168h";
  const certificateLifetimeMs = lifetimeMs(lifetimeText) ?? 0;
  // Under an hour, renewals (at two thirds) would chase the clock skew the certificates allow for.
  if (certificateLifetimeMs < 3_600_000 || certificateLifetimeMs > 8_760 * 3_600_000)
    problems.push(
      `MOSAIC_TLS_CERTIFICATE_LIFETIME=${lifetimeText} must be hours or minutes (e.g. 168h), from 1h to 8760h`,
    );
  const tls = { enabled: tlsText === "true", certificateLifetimeMs };
  if (tls.enabled) agent.tls = { enabled: true };
  if (problems.length > 0) throw new Error(`operator settings: ${problems.join("; ")}`);
  return { agent, outGraceMs, tls };
}
