// Several real agents in this process, on real sockets and real directories:
// for tests of the file layer that do not need separate processes.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent } from "../../src/agent.ts";
import { AgentClient } from "../../src/client/agent-client.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import type { VolumeSpec } from "../../src/core/volume.ts";
import { silentLogger } from "../../src/log.ts";

export const MiB = 1024 * 1024;

export const TEST_VOLUMES: VolumeSpec[] = [
  {
    name: "media",
    chunkSizeBytes: 256 * 1024,
    redundancy: { erasure: { data: 2, parity: 1 } },
    capacityBytes: 2 ** 40,
  },
  { name: "thumbs", chunkSizeBytes: 64 * 1024, redundancy: { replicas: 3 }, capacityBytes: 2 ** 40 },
];

export interface InProcessCluster {
  agents: Agent[];
  client: (i?: number) => AgentClient;
  stop: () => Promise<void>;
}

export async function startInProcessCluster(
  n: number,
  options: { volumes?: VolumeSpec[]; capacityBytes?: number; scrubRateBytesPerSecond?: number } = {},
): Promise<InProcessCluster> {
  const root = await mkdtemp(join(tmpdir(), "mosaic-test-"));
  const volumes = options.volumes ?? TEST_VOLUMES;
  const placeholder: ClusterMap = { epoch: 0, nodes: [] };
  const agents: Agent[] = [];
  for (let i = 0; i < n; i++) {
    agents.push(
      await Agent.start({
        nodeId: `node-${i}`,
        listen: ["127.0.0.1:0", "127.0.0.2:0"],
        dataDir: join(root, `node-${i}`),
        capacityBytes: options.capacityBytes ?? 2 ** 40,
        // Off unless asked: a background scrub would quietly repair bytes a test corrupts on purpose.
        scrubRateBytesPerSecond: options.scrubRateBytesPerSecond ?? 0,
        map: placeholder,
        volumes,
        log: silentLogger(),
      }),
    );
  }
  const map: ClusterMap = {
    epoch: 1,
    nodes: agents.map((a) => ({ id: a.nodeId, addresses: a.addresses, state: "up" as const })),
  };
  for (const agent of agents) agent.update(map);
  const clients: AgentClient[] = [];
  return {
    agents,
    client: (i = 0) => {
      clients[i] ??= new AgentClient((agents[i] as Agent).addresses[0]);
      return clients[i] as AgentClient;
    },
    stop: async () => {
      for (const c of clients) c?.close();
      await Promise.all(agents.map((a) => a.stop()));
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Deterministic pseudo-random bytes, `total` of them in parts of `partBytes`. */
export async function* patternBytes(total: number, seed = 1, partBytes = 200_000): AsyncGenerator<Buffer> {
  let x = seed >>> 0 || 1;
  for (let done = 0; done < total; ) {
    const n = Math.min(partBytes, total - done);
    const part = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      part[i] = x & 0xff;
    }
    done += n;
    yield part;
  }
}

export async function gather(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of body) parts.push(part);
  return Buffer.concat(parts);
}

export async function gatherAll(source: AsyncIterable<Buffer>): Promise<Buffer> {
  return gather(source);
}
