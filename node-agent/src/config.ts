// The cluster file of a local (non-Kubernetes) cluster: members, their two
// addresses, and the volumes. Agents read it at start and again on SIGHUP;
// clients read it to find an agent. In Kubernetes the operator supplies the
// same information from the API.
import { readFile, rename, writeFile } from "node:fs/promises";
import type { ClusterMap, NodeEntry } from "./core/cluster-map.ts";
import { type VolumeSpec, validateVolumeSpec } from "./core/volume.ts";
import { MosaicError } from "./errors.ts";
import { trustCluster } from "./tls/client-trust.ts";
import { MutualTls } from "./tls/grpc-tls.ts";
import { localClientTlsDir } from "./tls/local-ca.ts";

export interface ClusterFile extends ClusterMap {
  volumes: VolumeSpec[];
  /**
   * The cluster runs mutual TLS. `dir`: a local CA's directory (tls/local-ca.ts),
   * `<dir>/<node>` each agent's, `<dir>/client` the tools'. `client`: the
   * tools' own TLS directory instead (`mosaic certificate`), which is all a
   * cluster file for agents run elsewhere (Kubernetes) needs.
   * Absent: the agents take their --tls-dir, or run without TLS.
   */
  tls?: { dir?: string; client?: string };
}

export async function readClusterFile(path: string): Promise<ClusterFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new MosaicError(
      "MOSAIC_ERR_NO_CLUSTER",
      `no cluster file at ${path}: start a local cluster with \`npm start\` or give --cluster`,
      { cause },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `cluster file ${path} is not valid JSON`, { cause });
  }
  const cluster = validateClusterFile(value, path);
  if (cluster.tls !== undefined) await trustClusterTls(cluster, cluster.tls);
  return cluster;
}

/** Clients in this process reach `cluster`'s agents with the tools' certificate (client-trust.ts). */
export async function trustClusterTls(
  cluster: ClusterMap,
  tls: NonNullable<ClusterFile["tls"]>,
): Promise<void> {
  const dir = tls.client ?? localClientTlsDir(tls.dir as string);
  trustCluster(cluster.nodes, await MutualTls.open(dir));
}

export async function writeClusterFile(path: string, cluster: ClusterFile): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, `${JSON.stringify(cluster, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, path);
}

function validateClusterFile(value: unknown, path: string): ClusterFile {
  const bad = (why: string) => new MosaicError("MOSAIC_ERR_BAD_REQUEST", `cluster file ${path}: ${why}`);
  const c = value as Partial<ClusterFile> | null;
  if (typeof c !== "object" || c === null) throw bad("not an object");
  if (!Number.isSafeInteger(c.epoch)) throw bad("epoch must be an integer");
  if (!Array.isArray(c.nodes) || c.nodes.length === 0) throw bad("nodes must be a non-empty list");
  if (!Array.isArray(c.volumes)) throw bad("volumes must be a list");
  const ids = new Set<string>();
  for (const n of c.nodes as Partial<NodeEntry>[]) {
    if (typeof n.id !== "string" || n.id === "") throw bad("every node needs an id");
    if (ids.has(n.id)) throw bad(`node ${n.id} listed twice`);
    ids.add(n.id);
    const addresses = n.addresses;
    if (
      !Array.isArray(addresses) ||
      addresses.length !== 2 ||
      !addresses.every((a) => /^[^\s]+:\d+$/.test(a))
    ) {
      throw bad(`node ${n.id} needs two host:port addresses (channel A and B)`);
    }
    if (!["up", "down", "out"].includes(n.state as string))
      throw bad(`node ${n.id}: state must be up, down or out`);
  }
  for (const v of c.volumes) validateVolumeSpec(v);
  if (c.tls !== undefined) {
    const named = (v: unknown) => v === undefined || (typeof v === "string" && v !== "");
    const tls = c.tls as { dir?: unknown; client?: unknown } | null;
    if (
      typeof tls !== "object" ||
      tls === null ||
      (tls.dir === undefined && tls.client === undefined) ||
      !named(tls.dir) ||
      !named(tls.client)
    )
      throw bad(
        "tls must be { dir: <directory of the local CA> } and/or { client: <the tools' TLS directory> }",
      );
  }
  return c as ClusterFile;
}
