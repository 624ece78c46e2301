// PeerClients takes the channel the heartbeats choose. Node "x" is mapped to
// two real agents, one per channel, told apart by their capacity, so each
// answer shows which channel a call took.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Agent } from "../../src/agent.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import { silentLogger } from "../../src/log.ts";
import { PeerClients } from "../../src/rpc/peer-client.ts";

const CAPACITY = [1_000_000, 2_000_000];

describe("PeerClients: channel from heartbeats", () => {
  let root: string;
  let agents: Agent[] = [];
  let map: ClusterMap;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mosaic-channel-choice-"));
    agents = await Promise.all(
      CAPACITY.map((capacityBytes, i) =>
        Agent.start({
          nodeId: `agent-${i}`,
          listen: [`127.0.0.${i + 1}:0`, `127.0.0.${i + 1}:0`],
          dataDir: join(root, `agent-${i}`),
          capacityBytes,
          map: { epoch: 0, nodes: [] },
          volumes: [],
          log: silentLogger(),
        }),
      ),
    );
    map = {
      epoch: 1,
      nodes: [
        {
          id: "x",
          addresses: [(agents[0] as Agent).addresses[0], (agents[1] as Agent).addresses[0]],
          state: "up",
        },
      ],
    };
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await rm(root, { recursive: true, force: true });
  });

  test("0/1 from channelFor picks A/B; undefined falls back to connectivity (A when it is ready)", async () => {
    let choice: 0 | 1 | undefined;
    const asked: string[] = [];
    const peers = new PeerClients({
      map: () => map,
      log: silentLogger(),
      channelFor: (node) => {
        asked.push(node);
        return choice;
      },
    });
    try {
      choice = 1;
      assert.equal((await peers.usage("x")).capacityBytes, CAPACITY[1]);
      choice = 0;
      assert.equal((await peers.usage("x")).capacityBytes, CAPACITY[0]);
      choice = 1;
      assert.equal((await peers.usage("x")).capacityBytes, CAPACITY[1]);
      choice = undefined;
      assert.equal((await peers.usage("x")).capacityBytes, CAPACITY[0]);
      assert.deepEqual(asked, ["x", "x", "x", "x"]);
    } finally {
      peers.close();
    }
  });
});
