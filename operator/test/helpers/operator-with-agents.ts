// The setting most Kubernetes tests of the operator share: a real control
// plane ready for agents (controlPlaneForAgents), the operator's controllers
// in process with the chart's operator rights, and real agent processes with
// the agent's rights (KubeAgents). Stopped in the reverse order, each part
// only if it started.
import type { ControlPlane } from "../../../e2e/control-plane/control-plane.ts";
import { silentLogger } from "../../../node-agent/src/log.ts";
import { Operator } from "../../src/framework/operator.ts";
import { controlPlaneForAgents, KubeAgents, type KubeAgentsOptions } from "./kube-agents.ts";

export interface OperatorWithAgents {
  cp: ControlPlane;
  operator: Operator;
  agents: KubeAgents;
  stop(): Promise<void>;
}

/**
 * `controllers` registers what the test exercises on the operator before it
 * starts (e.g. runMembershipAndVolumes), so nothing is missed at start.
 */
export async function startOperatorWithAgents(
  namespace: string,
  controllers: (operator: Operator) => void,
  agents: Omit<KubeAgentsOptions, "kubeconfig" | "namespace">,
): Promise<OperatorWithAgents> {
  const ready = await controlPlaneForAgents(namespace);
  let operator: Operator | undefined;
  try {
    operator = new Operator({
      kubeconfig: ready.operatorKubeconfig,
      identity: "test-operator",
      log: silentLogger(),
    });
    controllers(operator);
    await operator.start();
    const started = await KubeAgents.start({ ...agents, kubeconfig: ready.agentKubeconfig, namespace });
    const running = operator;
    return {
      cp: ready.cp,
      operator: running,
      agents: started,
      async stop() {
        await started.stop();
        await running.stop();
        await ready.cp.stop();
      },
    };
  } catch (error) {
    await operator?.stop();
    await ready.cp.stop();
    throw error;
  }
}
