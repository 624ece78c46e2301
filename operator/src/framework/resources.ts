// Where a kind lives in the API: its group, version and plural make its paths.
import type { KubernetesObject } from "@kubernetes/client-node";

export interface Resource {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

export const STRIPED_VOLUMES: Resource = {
  group: "mosaic.dev",
  version: "v1alpha1",
  plural: "stripedvolumes",
  kind: "StripedVolume",
  namespaced: false,
};

export const CLUSTER_NODES: Resource = {
  group: "mosaic.dev",
  version: "v1alpha1",
  plural: "clusternodes",
  kind: "ClusterNode",
  namespaced: false,
};

export const DAEMON_SETS: Resource = {
  group: "apps",
  version: "v1",
  plural: "daemonsets",
  kind: "DaemonSet",
  namespaced: true,
};

export const PODS: Resource = {
  group: "",
  version: "v1",
  plural: "pods",
  kind: "Pod",
  namespaced: true,
};

export const LEASES: Resource = {
  group: "coordination.k8s.io",
  version: "v1",
  plural: "leases",
  kind: "Lease",
  namespaced: true,
};

export function apiVersionOf(r: Resource): string {
  return r.group === "" ? r.version : `${r.group}/${r.version}`;
}

/** The collection path, across namespaces when `namespace` is undefined. */
export function collectionPath(r: Resource, namespace?: string): string {
  const base = r.group === "" ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  return r.namespaced && namespace !== undefined
    ? `${base}/namespaces/${namespace}/${r.plural}`
    : `${base}/${r.plural}`;
}

export function objectPath(r: Resource, name: string, namespace?: string): string {
  return `${collectionPath(r, namespace)}/${encodeURIComponent(name)}`;
}

/** The queue key of an object: name, or namespace/name. */
export function keyOf(o: KubernetesObject): string {
  const { name, namespace } = o.metadata ?? {};
  return namespace ? `${namespace}/${name}` : String(name);
}

export function splitKey(key: string): { name: string; namespace: string | undefined } {
  const slash = key.indexOf("/");
  return slash < 0
    ? { name: key, namespace: undefined }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * The newer of two copies of one object (undefined-safe). resourceVersion is
 * opaque by the API's contract, but etcd's are revisions that only grow;
 * comparing them keeps a watch event that lags our own write from undoing it
 * in our view. Of two different objects (another uid: deleted and created
 * again), the first is taken: pass the watch's copy first.
 */
export function newerOf<T extends KubernetesObject>(a: T | undefined, b: T | undefined): T | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  if (a.metadata?.uid !== b.metadata?.uid) return a;
  const ra = Number(a.metadata?.resourceVersion);
  const rb = Number(b.metadata?.resourceVersion);
  return Number.isSafeInteger(ra) && Number.isSafeInteger(rb) && rb > ra ? b : a;
}
