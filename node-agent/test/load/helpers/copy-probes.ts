// What the read-copy tests on real agents share: their agents' load and
// read-copy settings, and what they look at: an agent's read copies (held
// and owned), its piece reads served and its read-copy gauge (its own
// /metrics), and a bounded wait for any of them.
import type { ChildProcess } from "node:child_process";
import type { Agent } from "../../../src/agent.ts";
import type { ClusterMap } from "../../../src/core/cluster-map.ts";
import type { VolumeSpec } from "../../../src/core/volume.ts";
import { DEFAULT_LOAD_CONFIG, type LoadConfig } from "../../../src/load/level.ts";
import type { ReadCopyConfig, ReadCopyEvent } from "../../../src/load/read-copies.ts";
import type { ReadCopyStatus } from "../../../src/load/read-copy-messages.ts";
import type { PeerClients } from "../../../src/rpc/peer-client.ts";
import { sleep } from "../../helpers/process-cluster.ts";
import { startCpuHolder } from "./cpu-holders.ts";

/**
 * The holders' load thresholds: a quarter of production's (High from 25 % of
 * one core busy), so 60 reads a second of 10 ms each make a holder High
 * without taking the 2 shared cores from everything else.
 */
export const LOAD: LoadConfig = {
  ...DEFAULT_LOAD_CONFIG,
  full: { ...DEFAULT_LOAD_CONFIG.full, utilization: 0.25 },
};

/** Read copies at test speed: ticks, leases and caches in fractions of a second, one copy per piece. */
export const COPIES: Partial<ReadCopyConfig> = {
  tickMs: 250,
  leaseMs: 4_000,
  hotForMs: 3_000,
  maxPerStripe: 1,
  drainTimeoutMs: 20_000,
  cacheMs: 300,
};

/**
 * Polls `check` every 50 ms until it returns a value, for at most `ms`. A
 * check that throws counts as not yet (an agent busy with the test's load
 * may miss a call's deadline); the last such error is the cause if time runs out.
 */
export async function waitFor<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const end = performance.now() + ms;
  let failure: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      failure = error;
    }
    if (performance.now() > end) throw new Error(`${what}: not within ${ms} ms`, { cause: failure });
    await sleep(50);
  }
}

/** The read copies `node` holds and owns: asked over the wire, or of `reader` itself. */
export async function copyStatus(reader: Agent, peers: PeerClients, node: string): Promise<ReadCopyStatus> {
  return node === reader.nodeId
    ? reader.readCopies.status()
    : ((await peers.readCopies(node, { op: "status" })) as ReadCopyStatus);
}

/** Piece reads an agent has served, from its /metrics at `address` (host:port). */
export async function piecesServed(address: string): Promise<number> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  let count = 0;
  for (const m of text.matchAll(/^mosaic_grpc_server_call_duration_seconds_count\{([^}]*)\} (\d+)/gm))
    if ((m[1] as string).includes('method="GetPiece"')) count += Number(m[2]);
  return count;
}

/** The read copies an agent holds in `phase`: its mosaic_read_copies gauge, from its /metrics at `address`. */
export async function readCopiesGauge(address: string, phase: string): Promise<number> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const m = new RegExp(`^mosaic_read_copies\\{[^}]*phase="${phase}"[^}]*\\} (\\d+)`, "m").exec(text);
  return m === null ? 0 : Number(m[1]);
}

/**
 * Holder processes for `ids`, each 10 ms of CPU per read, with the tests'
 * load and read-copy settings, their read-copy events gathered in `events`.
 */
export async function startCopyHolders(
  map: ClusterMap,
  ids: readonly string[],
  root: string,
  volume: VolumeSpec,
  into: { children: Map<string, ChildProcess>; metrics: Map<string, string>; events: ReadCopyEvent[] },
): Promise<void> {
  for (const id of ids) {
    const more = { costMs: 10, load: LOAD, readCopies: COPIES, reportEvents: true };
    const holder = await startCpuHolder(map, id, root, volume, more, (line) => {
      if (line.startsWith("event ")) into.events.push(JSON.parse(line.slice("event ".length)));
    });
    into.children.set(id, holder.child);
    into.metrics.set(id, holder.metrics);
  }
}
