// What `npm run e2e:kind` builds, as pure data: the kind cluster's config,
// the three Docker networks (the nodes' own, and channel A's and B's, which
// every worker joins as two extra NICs), the NICs' names inside a node, and
// the chart's values that point the NetworkAttachmentDefinitions at them.
// Every address is from 198.18.0.0/15 and clear of the local harness's.

/** The kind node image's Kubernetes: kind's default for its version unless --node-image says otherwise. */
export interface KindOptions {
  /** The kind cluster's name; its node containers, networks and kubeconfig are named after it. */
  name: string;
  workers: number;
  nodeImage?: string;
}

export interface ChannelNetwork {
  /** The Docker network's name. */
  docker: string;
  /** The Docker network's subnet, and the part Docker hands to node containers. */
  subnet: string;
  nodeRange: string;
  /** The part whereabouts hands to pods' macvlan interfaces (the NAD's range): clear of the nodes'. */
  podRange: string;
  /** The NIC's name inside every worker (renamed so, whatever Docker called it): the NAD's master. */
  nic: string;
}

export interface KindPlan {
  name: string;
  /** The Docker network kind puts its nodes on (KIND_EXPERIMENTAL_DOCKER_NETWORK), made first with this subnet. */
  nodeNetwork: { docker: string; subnet: string };
  channelA: ChannelNetwork;
  channelB: ChannelNetwork;
  podSubnet: string;
  serviceSubnet: string;
  /** The control plane's container and node name. */
  controlPlane: string;
  /** The workers' container and node names, in order: the first runs the scenarios' application. */
  workers: string[];
  nodeImage?: string;
}

export const DEFAULT_CLUSTER_NAME = "mosaic-e2e";
export const MAX_WORKERS = 8;

/**
 * The ranges the local harness and the other tests use (NetnsLab's channels,
 * the chart's default NAD ranges, the harness's pod networks and Service
 * range): the kind cluster stays clear of them all, so both can exist on one
 * machine.
 */
export const LOCAL_HARNESS_RANGES = [
  "198.18.0.0/24",
  "198.18.1.0/24",
  "198.19.0.0/24",
  "198.19.64.0/18",
  "198.19.128.0/24",
] as const;

export function kindPlan(o: KindOptions): KindPlan {
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(o.name))
    throw new Error(
      `cluster name ${JSON.stringify(o.name)}: lower-case letters, digits and dashes, at most 31`,
    );
  if (!Number.isInteger(o.workers) || o.workers < 2 || o.workers > MAX_WORKERS)
    throw new Error(
      `--workers ${o.workers}: from 2 to ${MAX_WORKERS} (the scenarios need a client node and a victim)`,
    );
  const channel = (letter: "a" | "b", third: number): ChannelNetwork => ({
    docker: `${o.name}-${letter}`,
    subnet: `198.18.${third}.0/24`,
    nodeRange: `198.18.${third}.0/26`,
    podRange: `198.18.${third}.128/25`,
    nic: `mosaic-${letter}`,
  });
  return {
    name: o.name,
    nodeNetwork: { docker: `${o.name}-nodes`, subnet: "198.18.130.0/24" },
    channelA: channel("a", 128),
    channelB: channel("b", 129),
    podSubnet: "198.19.192.0/19",
    serviceSubnet: "198.19.224.0/20",
    controlPlane: `${o.name}-control-plane`,
    // kind names its workers <name>-worker, <name>-worker2, <name>-worker3, ...
    workers: Array.from({ length: o.workers }, (_, i) => `${o.name}-worker${i === 0 ? "" : i + 1}`),
    ...(o.nodeImage === undefined ? {} : { nodeImage: o.nodeImage }),
  };
}

/** kind's cluster config (kind.x-k8s.io/v1alpha4) for the plan, as an object to write as YAML or JSON. */
export function kindConfig(plan: KindPlan): Record<string, unknown> {
  const node = (role: string) => ({
    role,
    ...(plan.nodeImage === undefined ? {} : { image: plan.nodeImage }),
  });
  return {
    kind: "Cluster",
    apiVersion: "kind.x-k8s.io/v1alpha4",
    name: plan.name,
    networking: { ipFamily: "ipv4", podSubnet: plan.podSubnet, serviceSubnet: plan.serviceSubnet },
    nodes: [node("control-plane"), ...plan.workers.map(() => node("worker"))],
    // A node cut off is NotReady after 20 s rather than 40 s, as on the local harness's control plane.
    kubeadmConfigPatches: [
      [
        "kind: ClusterConfiguration",
        "controllerManager:",
        "  extraArgs:",
        '    node-monitor-grace-period: "20s"',
      ].join("\n"),
    ],
  };
}

/** The chart's values on kind: the NADs on the two extra NICs, and the scenarios' failure timings. */
export function chartValues(plan: KindPlan, o: { outGraceMs: number; rebuildRate: string }): string[] {
  return [
    `networks.channelA.master=${plan.channelA.nic}`,
    `networks.channelA.range=${plan.channelA.podRange}`,
    `networks.channelB.master=${plan.channelB.nic}`,
    `networks.channelB.range=${plan.channelB.podRange}`,
    `heartbeat.outGraceMs=${o.outGraceMs}`,
    `agent.rebuildRate=${o.rebuildRate}`,
    // Three agents and two operators on a laptop's kind: requests that fit, limits as the chart has them.
    "agent.resources.requests.cpu=100m",
    "agent.resources.requests.memory=128Mi",
  ];
}

/** Every subnet the plan uses, for the overlap checks. */
export function planRanges(plan: KindPlan): string[] {
  return [
    plan.nodeNetwork.subnet,
    plan.channelA.subnet,
    plan.channelB.subnet,
    plan.podSubnet,
    plan.serviceSubnet,
  ];
}

/** [first, last] addresses of an IPv4 CIDR, as integers. */
export function cidrBounds(cidr: string): [number, number] {
  const match = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  const octets = match?.slice(1, 5).map(Number) ?? [];
  const prefix = Number(match?.[5]);
  if (match === null || octets.some((o) => o > 255) || prefix > 32)
    throw new Error(`${cidr} is not an IPv4 CIDR`);
  const address = octets.reduce((a, o) => a * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  const first = address - (address % size);
  return [first, first + size - 1];
}

export function cidrsOverlap(a: string, b: string): boolean {
  const [a0, a1] = cidrBounds(a);
  const [b0, b1] = cidrBounds(b);
  return a0 <= b1 && b0 <= a1;
}

export function cidrWithin(inner: string, outer: string): boolean {
  const [i0, i1] = cidrBounds(inner);
  const [o0, o1] = cidrBounds(outer);
  return o0 <= i0 && i1 <= o1;
}
