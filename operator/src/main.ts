// The operator process, as its Deployment runs it: settings from the
// environment (the Helm chart sets them), leader election on a Lease in its
// own namespace, the node-agent DaemonSet kept as declared, and the
// ClusterNodes and cluster map (cluster-node-controller.ts), and each
// StripedVolume's status (striped-volume-controller.ts).
//   MOSAIC_NAMESPACE, MOSAIC_AGENT_IMAGE, MOSAIC_NETWORK_A, MOSAIC_NETWORK_B, ... (see settingsFromEnv)
import { hostname } from "node:os";
import { createRootLogger } from "../../node-agent/src/log.ts";
import { MetricsServer } from "../../node-agent/src/metrics/metrics-http.ts";
import { AgentCertificates } from "./agent-certificates.ts";
import { rollAgents } from "./agent-rollout.ts";
import { AGENT_SELECTOR } from "./api/agents.ts";
import { leaderIdentity } from "./framework/leader-election.ts";
import { Operator } from "./framework/operator.ts";
import { DAEMON_SETS, PODS } from "./framework/resources.ts";
import { runMembershipAndVolumes } from "./membership-and-volumes.ts";
import { metricsListenOf, OperatorMetrics, readingsOf } from "./metrics.ts";
import { applyAgentDaemonSet } from "./reconcile-daemonset.ts";
import { settingsFromEnv } from "./settings.ts";
import { serveKubeStatus, statusPortOf } from "./status-source.ts";

const log = createRootLogger();
const settings = (() => {
  try {
    return {
      ...settingsFromEnv(process.env),
      metrics: metricsListenOf(process.argv.slice(2), process.env),
      statusPort: statusPortOf(process.env),
    };
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
})();
const metrics = new OperatorMetrics();
const operator = new Operator({
  observe: (part) => metrics.queue(part),
  // Per process, as client-go's hostname_uuid: a container restarted in the same pod is a new
  // candidate that waits out its dead predecessor's Lease, never a leader resuming unseen.
  identity: leaderIdentity(process.env.MOSAIC_POD_NAME ?? hostname()),
  log,
  leaderElection: { namespace: settings.agent.namespace, name: "mosaic-operator" },
});
operator.keep({
  name: "agent-daemonset",
  watch: {
    resource: DAEMON_SETS,
    namespace: settings.agent.namespace,
    labelSelector: "app.kubernetes.io/name=mosaic-agent",
  },
  reconcile: () => applyAgentDaemonSet(operator.rest, settings.agent),
});
// Agents roll one node at a time while the volumes are Healthy; volume phases are read on each resync.
operator.keep({
  name: "agent-rollout",
  watch: { resource: PODS, namespace: settings.agent.namespace, labelSelector: AGENT_SELECTOR },
  reconcile: async () => {
    await rollAgents(operator.rest, settings.agent, log);
  },
  resyncMs: 5_000,
});
const parts = runMembershipAndVolumes(operator, {
  namespace: settings.agent.namespace,
  outGraceMs: settings.outGraceMs,
  log,
});
// Agents' certificates: the CA Secret, its public bundle, and their CSRs (leader only, as everything here).
if (settings.tls.enabled)
  operator.run(
    new AgentCertificates({
      kc: operator.kc,
      rest: operator.rest,
      namespace: settings.agent.namespace,
      agentServiceAccount: settings.agent.serviceAccountName,
      certificateLifetimeMs: settings.tls.certificateLifetimeMs,
      log,
      observer: operator.observer("agent-certificates"),
    }),
  );
metrics.read(readingsOf(operator, parts));
// Best effort: an operator that cannot serve its metrics (the port taken) still operates.
const metricsServer =
  settings.metrics === undefined
    ? undefined
    : await MetricsServer.start(settings.metrics, metrics.registry, log).catch((error: unknown) => {
        log.error({ err: (error as Error).message }, "metrics not served");
        return undefined;
      });
// Best effort as the metrics: the page is for people; the operator operates without it.
const statusPage = await serveKubeStatus({
  kc: operator.kc,
  rest: operator.rest,
  port: settings.statusPort,
  log,
}).catch((error: unknown) => {
  log.error({ err: (error as Error).message }, "status page not served");
  return undefined;
});
await operator.start();
log.info({ namespace: settings.agent.namespace }, "operator started");
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    log.info({ signal }, "operator stopping");
    void Promise.all([operator.stop(), metricsServer?.close(), statusPage?.stop()]).then(() =>
      process.exit(0),
    );
  });
}
