// The two kinds as the operator handles them: Kubernetes metadata around the
// spec and status generated from crds/ (crds.generated.ts).
import type { KubernetesObject } from "@kubernetes/client-node";
import type {
  ClusterNodeSpec,
  ClusterNodeStatus,
  StripedVolumeSpec,
  StripedVolumeStatus,
} from "./crds.generated.ts";

export type * from "./crds.generated.ts";

export interface StripedVolume extends KubernetesObject {
  spec: StripedVolumeSpec;
  status?: StripedVolumeStatus;
}

export interface ClusterNode extends KubernetesObject {
  spec: ClusterNodeSpec;
  status?: ClusterNodeStatus;
}
