// Test fixture: one node's membership as a process — MembershipCore
// (detection and map agreement) on the UDP driver, nothing else. Argument:
// JSON {self, members: [{id, addresses: ["host:port", "host:port"]}],
// outGraceMs?}. Prints JSON lines on stdout: one "ready", then every health
// event with the wall clock (to compare across processes) and, for a down
// event, how long the peer had been silent; every newly agreed map as
// {kind: "map", epoch, digest, states}. Reads commands
// on stdin: "cpu" prints this process's CPU use so far (and the driver's
// counters), "view" every watched peer as this node sees it, the channel its
// traffic to each other member takes (channelFor: "A", "B", or null when
// nothing is known) and the channel news it announces; EOF (the test went
// away) or SIGTERM closes the driver and exits.
import { createInterface } from "node:readline";
import type { ClusterMap, NodeEntry } from "../../src/core/cluster-map.ts";
import type { Endpoint } from "../../src/io/udp-heartbeats.ts";
import { heartbeatEndpoints, UdpHeartbeats } from "../../src/io/udp-heartbeats.ts";
import { defaultAgreementConfig, defaultDetectorConfig } from "../../src/membership/config.ts";
import type { MembershipEvent } from "../../src/membership/membership-core.ts";

interface FixtureArgs {
  self: string;
  members: { id: string; addresses: [string, string] }[];
  outGraceMs?: number;
}

const args = JSON.parse(process.argv[2] ?? "{}") as FixtureArgs;
const endpoints = new Map<string, [Endpoint, Endpoint]>(
  args.members.map((m) => [m.id, heartbeatEndpoints({ ...m, state: "up" } as NodeEntry)]),
);
const own = endpoints.get(args.self);
if (own === undefined) throw new Error(`${args.self} is not among the members`);

const print = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

let driver: UdpHeartbeats | undefined;
function onEvent(e: MembershipEvent): void {
  if (e.kind === "map") {
    const states = Object.fromEntries(e.map.nodes.map((n) => [n.id, n.state]));
    const { how, proposer, digest, changed, atMs } = e;
    print({
      kind: "map",
      node: args.self,
      epoch: e.map.epoch,
      digest,
      how,
      proposer,
      changed,
      states,
      atMs,
      wallMs: Date.now(),
    });
    return;
  }
  const core = driver?.core;
  const line: Record<string, unknown> = { ...e, node: args.self, wallMs: Date.now() };
  if (core !== undefined && e.to === "down") {
    const a = core.lastHeardMs(e.peer, "A") ?? 0;
    const b = core.lastHeardMs(e.peer, "B") ?? 0;
    line.silentMs = e.atMs - (e.kind === "channel" ? (e.channel === "A" ? a : b) : Math.max(a, b));
  }
  print(line);
}

driver = await UdpHeartbeats.start({
  self: args.self,
  incarnation: Date.now(),
  map: {
    epoch: 1,
    nodes: args.members.map((m) => ({ ...m, state: "up" })),
  } satisfies ClusterMap,
  config: defaultDetectorConfig(1),
  agreement: defaultAgreementConfig(args.outGraceMs),
  bind: own,
  endpointOf: (node, channel) => endpoints.get(node)?.[channel === "A" ? 0 : 1],
  onEvent,
});
print({ kind: "ready", node: args.self, pid: process.pid, wallMs: Date.now() });

const stop = () => {
  driver?.close();
  process.stdin.destroy();
};
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  const command = line.trim();
  if (command === "view") {
    const views = Object.fromEntries((driver?.core.watched() ?? []).map((p) => [p, driver?.view(p)]));
    const peers = args.members.map((m) => m.id).filter((id) => id !== args.self);
    const channelFor = (id: string) => ["A", "B"][driver?.channelFor(id) ?? -1] ?? null;
    const routes = Object.fromEntries(peers.map((id) => [id, channelFor(id)]));
    print({ kind: "view", node: args.self, views, routes, news: driver?.core.news().items });
  }
  if (command !== "cpu") return;
  const cpu = process.cpuUsage();
  print({
    kind: "cpu",
    node: args.self,
    userUs: cpu.user,
    systemUs: cpu.system,
    monotonicMs: performance.now(),
    stats: driver?.stats,
  });
});
input.on("close", stop);
process.once("SIGTERM", stop);
