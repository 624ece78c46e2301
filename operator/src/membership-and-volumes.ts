// The operator's two data-plane controllers, wired the one way main.ts and
// the tests run them: ClusterNodes and the cluster map
// (cluster-node-controller.ts), and StripedVolume status
// (striped-volume-controller.ts), which follows every membership reconcile.
import type { Logger } from "pino";
import type { StripedVolume } from "./api/types.ts";
import { ClusterNodeController } from "./cluster-node-controller.ts";
import type { Controller } from "./framework/controller.ts";
import type { Operator } from "./framework/operator.ts";
import { StripedVolumeController } from "./striped-volume-controller.ts";

export interface MembershipAndVolumes {
  membership: ClusterNodeController;
  volumes: Controller<StripedVolume>;
}

export function runMembershipAndVolumes(
  operator: Operator,
  options: { namespace: string; outGraceMs: number; log: Logger },
): MembershipAndVolumes {
  let volumes: Controller<StripedVolume> | undefined;
  const membership = operator.run(
    new ClusterNodeController({
      kc: operator.kc,
      rest: operator.rest,
      ...options,
      onChange: () => volumes?.requeueAll(),
      observer: operator.observer("ClusterNode"),
    }),
  );
  volumes = operator.handle(new StripedVolumeController(() => membership.view()).handlers());
  return { membership, volumes };
}
