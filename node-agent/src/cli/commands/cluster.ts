// `mosaic volumes` and `mosaic nodes`: what the cluster offers and which of
// its agents answer, on which channel.
import { readClusterFile } from "../../config.ts";
import { describeRedundancy, layoutOf, toleratedLosses } from "../../core/volume.ts";
import { formatBytes, table } from "../format.ts";
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

interface NodeReport {
  id: string;
  state: string;
  channels: { address: string; answers: boolean; error?: string }[];
}

/** Works with no agent up at all: every address is asked directly, in parallel. */
export async function nodes(options: OutputOptions): Promise<void> {
  const cluster = await readClusterFile(options.cluster);
  const reports: NodeReport[] = await Promise.all(
    cluster.nodes.map(async (node) => ({
      id: node.id,
      state: node.state,
      channels: await Promise.all(
        node.addresses.map(async (address) => {
          const answer = await probe(address);
          answer.client.close();
          return answer.info === undefined
            ? { address, answers: false, error: answer.error?.message ?? "no answer" }
            : { address, answers: true };
        }),
      ),
    })),
  );
  if (options.json) return printJson(reports);
  const cell = (c: NodeReport["channels"][number]) => `${c.address} ${c.answers ? "answers" : "DOWN"}`;
  const rows = reports.map((r) => [r.id, r.state, ...r.channels.map(cell)]);
  for (const line of table(["node", "state", "channel A", "channel B"], rows)) printLine(line);
  const answering = reports.filter((r) => r.channels.some((c) => c.answers)).length;
  printLine(`${answering} of ${reports.length} nodes answer (cluster file: ${options.cluster})`);
}
