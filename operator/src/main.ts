// The operator process, as its Deployment runs it: settings from the
// environment (the Helm chart sets them), leader election on a Lease in its
// own namespace, the node-agent DaemonSet kept as declared, and the
// ClusterNodes and cluster map (cluster-node-controller.ts), and each
// StripedVolume's status (striped-volume-controller.ts).
//   MOSAIC_NAMESPACE, MOSAIC_AGENT_IMAGE, MOSAIC_NETWORK_A, MOSAIC_NETWORK_B, ... (see settingsFromEnv)
import { hostname } from "node:os";
import { createRootLogger } from "../../node-agent/src/log.ts";
import { leaderIdentity } from "./framework/leader-election.ts";
import { Operator } from "./framework/operator.ts";
import { DAEMON_SETS } from "./framework/resources.ts";
import { runMembershipAndVolumes } from "./membership-and-volumes.ts";
import { applyAgentDaemonSet } from "./reconcile-daemonset.ts";
import { settingsFromEnv } from "./settings.ts";

const log = createRootLogger();
const settings = (() => {
  try {
    return settingsFromEnv(process.env);
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
})();
const operator = new Operator({
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
runMembershipAndVolumes(operator, {
  namespace: settings.agent.namespace,
  outGraceMs: settings.outGraceMs,
  log,
});
await operator.start();
log.info({ namespace: settings.agent.namespace }, "operator started");
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    log.info({ signal }, "operator stopping");
    void operator.stop().then(() => process.exit(0));
  });
}
