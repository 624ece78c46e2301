// `mosaic agent --kubernetes`: the same agent as `mosaic agent --cluster`,
// with what the cluster file says taken from the API instead. Wiring only:
//   identity  — downward API and Multus network-status (identity.ts)
//   liveness  — a Lease renewed every third of its duration (agent-lease.ts)
//   map       — the operator's ConfigMap, watched; a newer epoch is handed to
//               agent.update(), where it joins the agents' own agreement
//   volumes   — StripedVolumes, watched, handed to agent.setVolumes(); one
//               being deleted has its pieces removed here (volume-purge.ts)
//   status    — its ClusterNode, reconciled on every membership event, store
//               or load change (node-reporter.ts), with what it holds of
//               each volume and its rebuild (volume-report.ts)
//   TLS       — with --tls-dir, its certificate from a CSR the operator
//               signs, renewed before expiry (agent-certificate.ts)
//   readiness — the agent's gRPC health service, also on the pod IP where
//               kubelet's probe dials (probe-server.ts)
// Until the operator lists this node, the agent serves but sends no
// heartbeats (Agent does that for any node not in its map).
import { KubeConfig } from "@kubernetes/client-node";
import { KubeRest } from "@mosaic/operator/framework/kube-rest.ts";
import { Agent, type AgentConfig } from "../agent.ts";
import { listenForStop } from "../cli/stop-signal.ts";
import { createRootLogger, type Logger } from "../log.ts";
import { AGENT_METRICS_PORT, MetricsServer } from "../metrics/metrics-http.ts";
import { agentTls, type TlsFlags } from "../tls/agent-tls-choice.ts";
import { AgentCertificate } from "./agent-certificate.ts";
import { AgentLease } from "./agent-lease.ts";
import { ClusterSource } from "./cluster-source.ts";
import { type AgentIdentity, identityFromEnv } from "./identity.ts";
import { NodeReporter } from "./node-reporter.ts";
import { type AgentSnapshot, agentStatus } from "./node-status.ts";
import { type ProbeServer, startProbeServer } from "./probe-server.ts";
import { kubeAgentSettingsFromEnv } from "./settings.ts";
import { VolumePurger } from "./volume-purge.ts";
import { VolumeReport } from "./volume-report.ts";

/** The command line's settings; MOSAIC_HEARTBEAT_OUT_GRACE_MS (the DaemonSet's) wins over its --out-grace. */
export type KubernetesAgentOptions = Pick<
  AgentConfig,
  | "dataDir"
  | "capacityBytes"
  | "ipcDir"
  | "scrubRateBytesPerSecond"
  | "rebuildRateBytesPerSecond"
  | "outGraceMs"
  | "heartbeat"
  | "metrics"
  | "http"
> &
  TlsFlags & { env?: Record<string, string | undefined> };

/** How often the ClusterNode is checked for a new load level or rounded store use (each a status transition). */
const SAMPLE_MS = 5_000;

export async function runKubernetesAgent(options: KubernetesAgentOptions): Promise<void> {
  const { env = process.env, tlsDir, insecure, ...local } = options;
  const id = identityFromEnv(env);
  const settings = kubeAgentSettingsFromEnv(env);
  const log = createRootLogger({ node: id.nodeName });
  // KUBECONFIG if set, else ~/.kube/config, else the pod's service account.
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const rest = new KubeRest(kc);
  log.info(
    {
      pod: id.podName,
      namespace: id.namespace,
      channels: id.channels,
      server: kc.getCurrentCluster()?.server,
    },
    "agent in Kubernetes starting",
  );

  const lease = new AgentLease({
    rest,
    namespace: id.namespace,
    node: id.nodeName,
    holder: id.podName,
    ...(settings.leaseSeconds === undefined ? {} : { durationSeconds: settings.leaseSeconds }),
    log,
  });
  await lease.start();

  let agent: Agent | undefined;
  let reporter: NodeReporter | undefined;
  let volumeReport: VolumeReport | undefined;
  let purger: VolumePurger | undefined;
  const source = new ClusterSource({
    kc,
    rest,
    namespace: id.namespace,
    log,
    onMap: (map) => agent?.update(map),
    onVolumes: (volumes) => {
      agent?.setVolumes(volumes);
      volumeReport?.volumesChanged();
    },
    onDeleting: (deleting) => void purger?.deleting(deleting),
  });
  await source.start();
  const startVolumes = source.volumes();
  // In Kubernetes the agent fills its own TLS directory, through a CSR the operator signs.
  const certificate =
    tlsDir === undefined
      ? undefined
      : new AgentCertificate({ rest, namespace: id.namespace, node: id.nodeName, dir: tlsDir, log });
  await certificate?.ensure();
  certificate?.start();
  const tls = await agentTls(
    { ...(tlsDir === undefined ? {} : { tlsDir }), ...(insecure === undefined ? {} : { insecure }) },
    log,
  );
  agent = await Agent.start({
    ...local,
    ...(tls === undefined ? {} : { tls }),
    outGraceMs: settings.outGraceMs ?? local.outGraceMs,
    heartbeat: { ...local.heartbeat, ...settings.heartbeat },
    nodeId: id.nodeName,
    listen: [id.channels[0].address, id.channels[1].address],
    map: source.map() ?? { epoch: 0, nodes: [] },
    volumes: startVolumes,
    onMembershipEvent: () => reporter?.nudge(),
    log,
  });
  // A map or volume change that came while the agent was starting.
  const latest = source.map();
  if (latest !== undefined) agent.update(latest);
  if (source.volumes() !== startVolumes) agent.setVolumes(source.volumes());

  const running = agent;
  const probe = await probeServerFor(running, id, log);
  const metrics = local.metrics === undefined ? await podMetricsServer(running, id, log) : undefined;
  const purge = new VolumePurger({
    store: running.store,
    onChange: () => {
      volumeReport?.volumesChanged();
      reporter?.nudge();
    },
    log,
  });
  purger = purge;
  const volumes = new VolumeReport({
    store: running.store,
    served: () => source.volumes().map((v) => v.name),
    rebuild: () => running.rebuild?.progress(),
    readCopies: () => running.readCopies.heldCounts(),
    onChange: () => reporter?.nudge(),
    onScanned: (scanned) => void purge.held(scanned),
    log,
  });
  volumeReport = volumes;
  // Volumes deleted while this agent was starting (or away, their finalizer still held).
  await purge.deleting(source.deleting());
  await volumes.start();
  reporter = new NodeReporter({
    kc,
    rest,
    node: id.nodeName,
    status: () => agentStatus(snapshotOf(running, id, volumes, purge)),
    log,
  });
  await reporter.start();
  // The level is the agent's own (load/meter.ts, the one its heartbeats carry); store use changes without events.
  const sampler = setInterval(() => reporter?.nudge(), SAMPLE_MS);

  const stop = listenForStop();
  const signal = await stop.received;
  stop.onRepeat(() => process.exit(1));
  log.info({ signal }, "stopping");
  clearInterval(sampler);
  certificate?.stop();
  lease.stop();
  await volumes.stop();
  await reporter.stop();
  await source.stop();
  await agent.stop();
  await probe?.stop();
  await metrics?.close();
  log.flush();
  // Idle keep-alive timers of gRPC and HTTP clients must not hold the process open.
  process.exit(0);
}

/** Readiness on the pod IP for kubelet, unless the environment does not say it or a channel already has it. */
async function probeServerFor(
  agent: Agent,
  id: AgentIdentity,
  log: Logger,
): Promise<ProbeServer | undefined> {
  if (id.podIP === undefined) {
    log.warn(
      "MOSAIC_POD_IP is not set: readiness is served on the channels only, where kubelet's probe does not dial",
    );
    return undefined;
  }
  if (id.channels.some((c) => c.ip === id.podIP)) return undefined;
  return startProbeServer(agent.health, id.podIP, id.port, log);
}

function snapshotOf(
  agent: Agent,
  id: AgentIdentity,
  volumes: VolumeReport,
  purge: VolumePurger,
): AgentSnapshot {
  const heartbeats = agent.heartbeats;
  const peers = heartbeats?.core.watched().flatMap((peer) => heartbeats.view(peer) ?? []) ?? [];
  return {
    self: id.nodeName,
    channels: id.channels,
    map: agent.map,
    baseEpoch: heartbeats?.core.agreement.baseEpoch ?? agent.map.epoch,
    peers,
    usage: agent.store.usage(),
    load: agent.load.level,
    holdings: volumes.holdings,
    rebuild: volumes.rebuild,
    deletedVolumes: purge.purged,
  };
}

/**
 * Metrics on the pod IP at AGENT_METRICS_PORT, where Prometheus scrapes (the
 * DaemonSet's port named `metrics`), unless --metrics put them elsewhere. Best
 * effort: an agent that cannot serve its metrics still serves its data.
 */
async function podMetricsServer(
  agent: Agent,
  id: AgentIdentity,
  log: Logger,
): Promise<MetricsServer | undefined> {
  if (id.podIP === undefined) return undefined;
  const host = id.podIP.includes(":") ? `[${id.podIP}]` : id.podIP;
  try {
    return await MetricsServer.start(`${host}:${AGENT_METRICS_PORT}`, agent.metrics.registry, log);
  } catch (error) {
    log.error({ err: (error as Error).message }, "metrics not served on the pod IP");
    return undefined;
  }
}
