#!/usr/bin/env -S node --external-memory-accounted-in-global-limit --initial-heap-size=128
// The `mosaic` command line: run an agent, bring up a local cluster, and
// put / get / ls / stat / rm files against a running cluster. Wiring only:
// each command's work lives in commands/.
import { join } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { runAgentProcess } from "../agent-main.ts";
import { runKubernetesAgent } from "../kube/kube-agent.ts";
import { LOCAL_STATUS_PORT_DEFAULT } from "../status/local-status.ts";
import { certificate } from "./commands/certificate.ts";
import { nodes, volumes } from "./commands/cluster.ts";
import { ls, rm, statFile } from "./commands/files.ts";
import { get } from "./commands/get.ts";
import { nodesIn } from "./commands/nodes-in.ts";
import { put } from "./commands/put.ts";
import { up } from "./commands/up.ts";
import {
  channelDownOption,
  heartbeatFlags,
  heartbeatIntervalOption,
  outGraceOption,
  rebuildRateOption,
} from "./failover-options.ts";
import { describeFailure } from "./failure.ts";
import { NODES_MAX } from "./local-plan.ts";
import { dnsLabel, integerIn, parseSize } from "./parse.ts";
import { exitQuietlyWhenStdoutCloses } from "./session.ts";
import { defaultClusterFile, defaultLocalDir, type TargetOptions } from "./target.ts";

const MOSAIC = "npm run mosaic --";

const program = new Command()
  .name("mosaic")
  .description("Mosaic: a highly available striped store for large media files")
  .exitOverride()
  // Options before the command (`mosaic --cluster f ls media`) are the program's; `agent --node` stays agent's.
  .enablePositionalOptions()
  .configureOutput({ outputError: (text, write) => write(usageLine("mosaic", text)) })
  .addHelpText(
    "after",
    `\nStart a local cluster with \`npm start\`, then in another terminal:\n  $ ${MOSAIC} put ./movie.mp4 media/films/movie.mp4`,
  );

/** A subcommand whose usage errors are one line naming its --help. */
function command(name: string, description: string, ...examples: string[]): Command {
  return program
    .command(name)
    .description(description)
    .configureOutput({ outputError: (text, write) => write(usageLine(`mosaic ${name}`, text)) })
    .addHelpText(
      "after",
      `\nExample${examples.length > 1 ? "s" : ""}:\n${examples.map((e) => `  $ ${e}`).join("\n")}`,
    );
}

const CLUSTER_HELP = `cluster file of the cluster to use (env MOSAIC_CLUSTER; default ${defaultClusterFile()})`;
const NODE_HELP = "talk to this agent (default: the first that answers, channel A then B)";
program.option("--cluster <file>", CLUSTER_HELP).option("--node <id>", NODE_HELP);

/** --cluster and --node, accepted after the command too. */
function targeting(cmd: Command): Command {
  return cmd.option("--cluster <file>", CLUSTER_HELP).option("--node <id>", NODE_HELP);
}

/** The command's own --cluster/--node, else its parents', else $MOSAIC_CLUSTER, else the local default. */
function targetOf(cmd: Command): TargetOptions {
  const given = (key: string, from: Command | null = cmd): string | undefined =>
    from === null ? undefined : (from.getOptionValue(key) ?? given(key, from.parent));
  const node = given("node");
  const cluster = given("cluster") ?? (process.env.MOSAIC_CLUSTER || defaultClusterFile());
  return node === undefined ? { cluster } : { cluster, node };
}

function usageLine(who: string, text: string): string {
  return `${who}: ${text.replace(/^error: /, "").trim()} (see \`${who} --help\`)\n`;
}

command(
  "agent",
  "run one node agent in the foreground (`mosaic up` and the DaemonSet start these)",
  "node node-agent/src/cli/mosaic.ts agent --cluster /tmp/mosaic-local/cluster.json --node node-0 --data-dir /tmp/n0",
  "mosaic agent --kubernetes --data-dir /var/lib/mosaic --ipc-dir /run/mosaic   # in the DaemonSet's pods",
)
  .option("--cluster <file>", "cluster file listing nodes, their two addresses, and volumes")
  .option("--node <id>", "this agent's node id, as listed in the cluster file")
  .option(
    "--kubernetes",
    "take identity (downward API, Multus network-status), members and volumes from the Kubernetes API " +
      "instead of --cluster and --node (see operator/src/agent-daemonset.ts for the environment)",
  )
  .requiredOption("--data-dir <dir>", "directory for this agent's chunks")
  .addOption(
    new Option("--capacity <bytes>", "bytes this agent may store (e.g. 10GiB)")
      .argParser(parseSize)
      .default(100 * 2 ** 30, "100GiB"),
  )
  .option(
    "--ipc-dir <dir>",
    "serve applications on this node through a request FIFO in <dir> (/run/mosaic in Kubernetes)",
  )
  .option(
    "--http <host:port>",
    "serve the volumes over HTTP at /v1/<volume>/<name> (Range GETs, PUT, DELETE)",
  )
  .option(
    "--metrics <host:port>",
    "serve Prometheus metrics at http://<host:port>/metrics (with --http they are also at /metrics there; " +
      "with --kubernetes the default is <pod IP>:9400)",
  )
  .addOption(
    new Option("--scrub-rate <bytes>", "bytes per second the scrubber verifies and repairs; 0 turns it off")
      .argParser(parseSize)
      .default(16 * 2 ** 20, "16MiB"),
  )
  .addOption(outGraceOption("a"))
  .addOption(rebuildRateOption("this agent"))
  .addOption(heartbeatIntervalOption("this agent"))
  .addOption(channelDownOption("this agent"))
  .option(
    "--tls-dir <dir>",
    "mutual TLS with peers and clients: ca.crt, tls.crt and tls.key in <dir>, re-read when replaced " +
      "(default with --cluster: the cluster file's local CA, else none)",
  )
  .option("--insecure", "plain gRPC without TLS, on purpose (development only; logged as a warning)")
  .action(
    async (
      options: {
        tlsDir?: string;
        insecure?: boolean;
        cluster?: string;
        node?: string;
        kubernetes?: boolean;
        dataDir: string;
        capacity: number;
        ipcDir?: string;
        http?: string;
        metrics?: string;
        scrubRate: number;
        outGrace: number;
        rebuildRate: number;
        heartbeatInterval: number;
        channelDown: number;
      },
      cmd: Command,
    ) => {
      const local = {
        heartbeat: heartbeatFlags(options, cmd),
        dataDir: options.dataDir,
        capacityBytes: options.capacity,
        scrubRateBytesPerSecond: options.scrubRate,
        outGraceMs: options.outGrace,
        rebuildRateBytesPerSecond: options.rebuildRate,
        ...(options.ipcDir === undefined ? {} : { ipcDir: options.ipcDir }),
        ...(options.http === undefined ? {} : { http: options.http }),
        ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
        ...(options.tlsDir === undefined ? {} : { tlsDir: options.tlsDir }),
        ...(options.insecure === undefined ? {} : { insecure: options.insecure }),
      };
      if (options.tlsDir !== undefined && options.insecure)
        cmd.error("error: give --tls-dir or --insecure, not both");
      if (options.kubernetes) {
        if (options.cluster !== undefined || options.node !== undefined)
          cmd.error(
            "error: --kubernetes takes the cluster and the node from the API: drop --cluster and --node",
          );
        return runKubernetesAgent(local);
      }
      if (options.cluster === undefined || options.node === undefined)
        cmd.error("error: --cluster and --node are required (or --kubernetes)");
      await runAgentProcess({ clusterFile: options.cluster, nodeId: options.node, ...local });
    },
  );

command(
  "up",
  "start a local cluster of agent processes on this machine, check that it stores and returns a file " +
    "intact (write, read back, compare, show where the pieces went), and serve until Ctrl-C",
  "npm start",
  "npm start -- --once --size 1GiB",
  "npm start -- --nodes 5 --dir /tmp/mosaic5 --base-port 7200 --no-check",
)
  .summary("start a local cluster, check it with a file, serve until Ctrl-C")
  .option("--nodes <n>", `agents to run, 1 to ${NODES_MAX}`, integerIn(1, NODES_MAX), 3)
  .option("--dir <dir>", "directory for the cluster file, chunks, logs and state", defaultLocalDir())
  .option(
    "--base-port <port>",
    "node i listens on 127.0.0.1:(port+2i) (channel A) and 127.0.0.2:(port+2i+1) (channel B)",
    integerIn(1, 65_535),
    7100,
  )
  .addOption(
    new Option("--size <bytes>", "size of the check file (e.g. 64MiB, 2GiB)")
      .argParser(parseSize)
      .default(256 * 2 ** 20, "256MiB"),
  )
  .addOption(
    new Option("--capacity <bytes>", "bytes each agent may store")
      .argParser(parseSize)
      .default(8 * 2 ** 30, "8GiB"),
  )
  .addOption(outGraceOption("a"))
  .addOption(rebuildRateOption("each agent"))
  .addOption(heartbeatIntervalOption("each agent"))
  .addOption(channelDownOption("each agent"))
  .option("--once", "stop the cluster after the check; exit code 0 only if it passed")
  .option("--no-check", "skip writing and verifying the check file")
  .option(
    "--status-port <port>",
    "serve the live status page on 127.0.0.1:<port> (0: any free port)",
    integerIn(0, 65_535),
    LOCAL_STATUS_PORT_DEFAULT,
  )
  .option("--no-status", "serve no status page")
  .action(
    async (
      o: {
        nodes: number;
        dir: string;
        basePort: number;
        size: number;
        capacity: number;
        outGrace: number;
        rebuildRate: number;
        heartbeatInterval: number;
        channelDown: number;
        once?: boolean;
        check: boolean;
        statusPort: number;
        status: boolean;
      },
      cmd: Command,
    ) => {
      const code = await up({
        nodes: o.nodes,
        dir: o.dir,
        basePort: o.basePort,
        sizeBytes: o.size,
        capacityBytes: o.capacity,
        outGraceMs: o.outGrace,
        rebuildRateBytesPerSecond: o.rebuildRate,
        heartbeat: heartbeatFlags(o, cmd),
        once: o.once === true,
        check: o.check,
        ...(o.status ? { statusPort: o.statusPort } : {}),
      });
      // Anything still open (a check cut short by Ctrl-C) must not hold the exit.
      process.exit(code);
    },
  );

targeting(
  command(
    "put",
    "store a local file (or stdin, as -) in the cluster under <volume>/<name>, streaming it",
    `${MOSAIC} put ./movie.mp4 media/films/movie.mp4`,
    `ffmpeg -i in.mov -f mp4 - | ${MOSAIC} put - media/films/out.mp4`,
  ),
)
  .argument("<local-file>", "file to store, or - for stdin")
  .argument("<volume/name>", "where to store it, e.g. media/films/movie.mp4")
  .action((source: string, destination: string, _: unknown, cmd: Command) =>
    put(source, destination, targetOf(cmd)),
  );

targeting(
  command(
    "get",
    "fetch <volume>/<name> into a local file (default: its base name here) or stdout (-); a failed get leaves no partial file",
    `${MOSAIC} get media/films/movie.mp4 ./copy.mp4`,
    `${MOSAIC} get media/films/movie.mp4 - | mpv -`,
  ),
)
  .summary("fetch a file into a local file or stdout")
  .argument("<volume/name>", "file to fetch, e.g. media/films/movie.mp4")
  .argument("[local-file]", "where to write it: a path, a directory, or - for stdout")
  .action((source: string, destination: string | undefined, _: unknown, cmd: Command) =>
    get(source, destination, targetOf(cmd)),
  );

targeting(
  command("ls", "list the files of a volume: name, size, version, modified", `${MOSAIC} ls media films/`),
)
  .argument("<volume>", "volume to list (see `mosaic volumes`)")
  .argument("[prefix]", "only names starting with this")
  .option("--json", "print the file manifests as JSON")
  .action((volume: string, prefix: string | undefined, o: { json?: boolean }, cmd: Command) =>
    ls(volume, prefix, { ...targetOf(cmd), json: o.json === true }),
  );

targeting(
  command(
    "stat",
    "show a file's manifest, which nodes hold which pieces, each piece's state and the file's health",
    `${MOSAIC} stat media/films/movie.mp4`,
  ),
)
  .summary("show where a file's pieces are and whether it is healthy")
  .argument("<volume/name>", "file to inspect")
  .option("--pieces", "list every piece, not only those that are not ok")
  .option("--json", "print manifest, health and pieces as JSON")
  .action((ref: string, o: { json?: boolean; pieces?: boolean }, cmd: Command) =>
    statFile(ref, { ...targetOf(cmd), json: o.json === true, pieces: o.pieces === true }),
  );

targeting(command("rm", "delete a file", `${MOSAIC} rm media/films/movie.mp4`))
  .argument("<volume/name>", "file to delete")
  .action((ref: string, _: unknown, cmd: Command) => rm(ref, targetOf(cmd)));

targeting(command("volumes", "list volumes with their redundancy and chunk size", `${MOSAIC} volumes`))
  .option("--json", "print the volume specs as JSON")
  .action((o: { json?: boolean }, cmd: Command) => volumes({ ...targetOf(cmd), json: o.json === true }));

const nodesCommand = targeting(
  command(
    "nodes",
    "list nodes: the state the agents agree on (up, down, out), whether each channel answers, and what each is rebuilding (bytes left, rate, ETA)",
    `${MOSAIC} nodes`,
    `${MOSAIC} nodes in node-2`,
  ),
)
  .summary("list nodes: state, channels, rebuild progress (`nodes in` takes one back in)")
  .option("--json", "print nodes, channel reachability and rebuild progress as JSON")
  .action((o: { json?: boolean }, cmd: Command) => nodes({ ...targetOf(cmd), json: o.json === true }));

nodesCommand
  .command("in")
  .description(
    "take a node that is out back in: its agent runs again and may hold data (the agents bring back a node " +
      "that was down by themselves, never one that is out); writes a map with it up to the cluster file and " +
      "has a local cluster's agents read it",
  )
  .argument("<node>", "the node, e.g. node-2 (see `mosaic nodes`)")
  .option("--cluster <file>", CLUSTER_HELP)
  .configureOutput({ outputError: (text, write) => write(usageLine("mosaic nodes in", text)) })
  .addHelpText("after", `\nExample:\n  $ ${MOSAIC} nodes in node-2`)
  .action((node: string, _: unknown, cmd: Command) => nodesIn(node, targetOf(cmd)));

command(
  "certificate",
  "issue a tool's own certificate for agents that require mutual TLS: <name>.client.mosaic.dev, signed by " +
    "the agents' CA, written as a TLS directory (ca.crt, tls.crt, tls.key) that a cluster file names in " +
    '"tls": {"client": …}. Agents take its calls; it can never pass for an agent',
  `${MOSAIC} certificate backup-job --out ~/.mosaic/backup-job`,
  `${MOSAIC} certificate ops --kubernetes --namespace mosaic-system --out ./ops-tls   # an administrator's kubeconfig`,
)
  .summary("issue a tool certificate (<name>.client.mosaic.dev) from the agents' CA")
  .argument("<name>", "the tool's name, a DNS label (e.g. backup-job)", dnsLabel)
  .requiredOption("--out <dir>", "TLS directory to write (made if missing; replaced at once if present)")
  .option("--ca <dir>", "directory with the CA's ca.crt and ca.key", join(defaultLocalDir(), "tls", "ca"))
  .option(
    "--kubernetes",
    "take the CA from the operator's Secret mosaic-agent-ca with the current kubeconfig (needs the right to read it)",
  )
  .option("--namespace <ns>", "the release's namespace, with --kubernetes", "mosaic-system")
  .option("--days <n>", "days the certificate is valid, 1 to 365", integerIn(1, 365), 7)
  .action(
    (name: string, o: { out: string; ca: string; kubernetes?: boolean; namespace: string; days: number }) =>
      certificate(name, {
        out: o.out,
        caDir: o.ca,
        days: o.days,
        ...(o.kubernetes === true ? { kubernetes: { namespace: o.namespace } } : {}),
      }),
  );

exitQuietlyWhenStdoutCloses();
try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander has printed help or the usage error already.
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else {
    const failure = describeFailure(error);
    process.stderr.write(`mosaic: ${failure.line}\n`);
    process.exitCode = failure.exitCode;
  }
}
