// `mosaic volumes` and `mosaic nodes`: what the cluster offers, which of its
// agents answer on which channel, the state the agents agree each node is
// in, how loaded each is, and what each is rebuilding.
import { type ClusterFile, readClusterFile } from "../../config.ts";
import { describeRedundancy, layoutOf, toleratedLosses } from "../../core/volume.ts";
import { formatBytes, table } from "../format.ts";
import {
  type ChannelAnswer,
  clusterStatus,
  describeEpochs,
  describeReadCopies,
  describeRebuild,
  type NodeStatus,
} from "../node-status.ts";
import { printJson, printLine, withAgent } from "../session.ts";
import { probe } from "../target.ts";
import type { OutputOptions } from "./files.ts";

export async function volumes(options: OutputOptions): Promise<void> {
  const specs = await withAgent(options, async ({ info }) => info.volumes);
  if (options.json) return printJson(specs);
  const rows = specs.map((v) => {
    const layout = layoutOf(v);
    return [
      v.name,
      describeRedundancy(v.redundancy),
      formatBytes(v.chunkSizeBytes),
      String(layout.width),
      String(toleratedLosses(layout)),
      formatBytes(v.capacityBytes),
    ];
  });
  for (const line of table(["volume", "redundancy", "chunk", "width", "survives", "capacity"], rows))
    printLine(line);
  printLine("width: nodes one stripe spans; survives: nodes that may be down while every file reads");
}

/** Works with no agent up at all: every address is asked directly, in parallel. */
export async function nodes(options: OutputOptions): Promise<void> {
  const cluster = await readClusterFile(options.cluster);
  const status = clusterStatus(cluster, await askEveryAddress(cluster));
  if (options.json) return printJson(status.nodes);
  const cell = (c: NodeStatus["channels"][number]) => `${c.address} ${c.answers ? "answers" : "DOWN"}`;
  const rebuilds = status.nodes.map(describeRebuild);
  const header = ["node", "state", "load", "channel A", "channel B"];
  const rows = status.nodes.map((n) => [n.id, n.state, n.load ?? "-", ...n.channels.map(cell)]);
  // A cluster with nothing to rebuild gets no rebuild column at all.
  if (rebuilds.some((r) => r !== "")) {
    header.push("rebuild");
    for (const [i, row] of rows.entries()) row.push(rebuilds[i] as string);
  }
  // Likewise temporary read copies of hot files: a column only while some node holds one.
  const copies = status.nodes.map(describeReadCopies);
  if (copies.some((c) => c !== "")) {
    header.push("read copies");
    for (const [i, row] of rows.entries()) row.push(copies[i] as string);
  }
  for (const line of table(header, rows)) printLine(line);
  const answering = status.nodes.filter((n) => n.epoch !== undefined);
  const epochs = describeEpochs(status.nodes);
  printLine(
    `${answering.length} of ${status.nodes.length} nodes answer${epochs === undefined ? "" : `; ${epochs}`}` +
      ` (cluster file: ${options.cluster})`,
  );
  for (const n of answering.filter((a) => a.state === "out"))
    printLine(`${n.id} is out but its agent answers: \`mosaic nodes in ${n.id}\` takes it back in`);
}

/** What each address of each node answers to a `cluster` call, all at once. */
export function askEveryAddress(cluster: ClusterFile): Promise<ChannelAnswer[][]> {
  return Promise.all(
    cluster.nodes.map((node) =>
      Promise.all(
        node.addresses.map(async (address): Promise<ChannelAnswer> => {
          const answer = await probe(address);
          answer.client.close();
          return answer.info === undefined
            ? { address, error: answer.error?.message ?? "no answer" }
            : { address, info: answer.info };
        }),
      ),
    ),
  );
}
