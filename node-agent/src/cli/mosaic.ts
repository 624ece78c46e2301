#!/usr/bin/env node
// The `mosaic` command line: run an agent, bring up a local cluster, and
// put / get / ls / stat / rm files against a running cluster.
import { Command, InvalidArgumentError } from "commander";
import { runAgentProcess } from "../agent-main.ts";

const program = new Command()
  .name("mosaic")
  .description("Mosaic: a highly available striped store for large media files")
  .showHelpAfterError();

program
  .command("agent")
  .description("run one node agent in the foreground (the local cluster and the DaemonSet start these)")
  .requiredOption("--cluster <file>", "cluster file listing nodes, their two addresses, and volumes")
  .requiredOption("--node <id>", "this agent's node id, as listed in the cluster file")
  .requiredOption("--data-dir <dir>", "directory for this agent's chunks")
  .option("--capacity <bytes>", "bytes this agent may store (e.g. 10GiB)", parseSize, 100 * 2 ** 30)
  .action(async (options: { cluster: string; node: string; dataDir: string; capacity: number }) => {
    await runAgentProcess({
      clusterFile: options.cluster,
      nodeId: options.node,
      dataDir: options.dataDir,
      capacityBytes: options.capacity,
    });
  });

export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/i.exec(text.trim());
  if (match === null)
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a size (e.g. 512MiB, 10GiB, 1000000)`);
  const units: Record<string, number> = {
    b: 1,
    kib: 2 ** 10,
    mib: 2 ** 20,
    gib: 2 ** 30,
    tib: 2 ** 40,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    tb: 1e12,
  };
  return Math.round(Number(match[1]) * (units[(match[2] ?? "b").toLowerCase()] as number));
}

await program.parseAsync(process.argv).catch((error: Error) => {
  process.stderr.write(`mosaic: ${error.message}\n`);
  process.exitCode = 1;
});
