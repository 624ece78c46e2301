// What the agent learns from the API server: the cluster map the operator
// publishes (the ConfigMap of operator/src/api/cluster-map.ts, watched by
// name) and the StripedVolumes. Both are watches that come back after any
// break (the framework's ResilientInformer), and each change is handed on
// whole: the newest map, the full volume set. A StripedVolume being deleted
// (the operator's finalizer holds it) leaves the volume set and is handed on
// as one to delete from this node.
import type { KubeConfig } from "@kubernetes/client-node";
import {
  CLUSTER_MAP_CONFIGMAP,
  CLUSTER_MAP_KEY,
  CLUSTER_MAP_SELECTOR,
  CONFIG_MAPS,
  decodeClusterMap,
} from "@mosaic/operator/api/cluster-map.ts";
import type { StripedVolume } from "@mosaic/operator/api/types.ts";
import { ResilientInformer } from "@mosaic/operator/framework/informer.ts";
import type { KubeRest } from "@mosaic/operator/framework/kube-rest.ts";
import { STRIPED_VOLUMES } from "@mosaic/operator/framework/resources.ts";
import type { ClusterMap } from "../core/cluster-map.ts";
import type { VolumeSpec } from "../core/volume.ts";
import type { Logger } from "../log.ts";
import { volumeSpecsOf } from "./volumes.ts";

interface ConfigMap {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

export interface ClusterSourceOptions {
  kc: KubeConfig;
  rest: KubeRest;
  /** The operator's (and agents') namespace, where the map's ConfigMap lives. */
  namespace: string;
  log: Logger;
  onMap?: (map: ClusterMap) => void;
  onVolumes?: (volumes: VolumeSpec[]) => void;
  /** The StripedVolumes being deleted, whenever that list changes. */
  onDeleting?: (deleting: DeletingVolume[]) => void;
}

export interface DeletingVolume {
  name: string;
  uid: string;
}

export class ClusterSource {
  readonly #o: ClusterSourceOptions;
  readonly #log: Logger;
  readonly #maps: ResilientInformer<ConfigMap & { metadata: object }>;
  readonly #volumes: ResilientInformer<StripedVolume>;
  #map: ClusterMap | undefined;
  #mapVersion: string | undefined;
  #volumeSpecs: VolumeSpec[] = [];
  #deleting: DeletingVolume[] = [];
  #refused = "";
  #started = false;

  constructor(options: ClusterSourceOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: "cluster-source" });
    this.#maps = new ResilientInformer({
      kc: options.kc,
      rest: options.rest,
      resource: CONFIG_MAPS,
      namespace: options.namespace,
      fieldSelector: CLUSTER_MAP_SELECTOR,
      onKey: () => this.#readMap(),
      log: this.#log,
    });
    this.#volumes = new ResilientInformer<StripedVolume>({
      kc: options.kc,
      rest: options.rest,
      resource: STRIPED_VOLUMES,
      onKey: () => this.#readVolumes(),
      log: this.#log,
    });
  }

  /** Lists both (so map() and volumes() hold what the API has), then watches. */
  async start(): Promise<void> {
    await Promise.all([this.#maps.start(), this.#volumes.start()]);
    this.#readMap();
    this.#readVolumes();
    this.#started = true;
  }

  async stop(): Promise<void> {
    await Promise.all([this.#maps.stop(), this.#volumes.stop()]);
  }

  /** The operator's newest map; undefined until it has published one. */
  map(): ClusterMap | undefined {
    return this.#map;
  }

  volumes(): VolumeSpec[] {
    return this.#volumeSpecs;
  }

  /** StripedVolumes with a deletion timestamp, in name order. */
  deleting(): DeletingVolume[] {
    return this.#deleting;
  }

  #readMap(): void {
    const cm = this.#maps.get(CLUSTER_MAP_CONFIGMAP, this.#o.namespace);
    if (cm === undefined || cm.metadata?.resourceVersion === this.#mapVersion) return;
    this.#mapVersion = cm.metadata?.resourceVersion;
    const text = cm.data?.[CLUSTER_MAP_KEY];
    const where = `ConfigMap ${this.#o.namespace}/${CLUSTER_MAP_CONFIGMAP}`;
    try {
      if (text === undefined) throw new Error(`cluster map in ${where}: no ${CLUSTER_MAP_KEY} key`);
      const map = decodeClusterMap(text, where);
      if (this.#map !== undefined && map.epoch <= this.#map.epoch) return;
      this.#map = map;
      if (this.#started) this.#o.onMap?.(map);
    } catch (error) {
      // A bad map is the operator's bug or someone's edit: keep the last good one and say so.
      this.#log.error({ err: (error as Error).message }, "published cluster map ignored");
    }
  }

  #readVolumes(): void {
    const all = this.#volumes.list();
    const deleting = all
      .filter((sv) => sv.metadata?.deletionTimestamp !== undefined)
      .map((sv) => ({ name: sv.metadata?.name ?? "", uid: sv.metadata?.uid ?? "" }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (JSON.stringify(deleting) !== JSON.stringify(this.#deleting)) {
      this.#deleting = deleting;
      if (this.#started) this.#o.onDeleting?.(deleting);
    }
    const { volumes, refused } = volumeSpecsOf(
      all.filter((sv) => sv.metadata?.deletionTimestamp === undefined),
    );
    const text = JSON.stringify(refused);
    if (text !== this.#refused) {
      this.#refused = text;
      for (const r of refused) this.#log.error(r, "StripedVolume ignored: its spec does not convert");
    }
    if (JSON.stringify(volumes) === JSON.stringify(this.#volumeSpecs)) return;
    this.#volumeSpecs = volumes;
    this.#log.info({ volumes: volumes.map((v) => v.name) }, "volumes changed");
    if (this.#started) this.#o.onVolumes?.(volumes);
  }
}
