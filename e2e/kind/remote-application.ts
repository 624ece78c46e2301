// The scenarios' application, run in its pod on a kind node and streamed
// back: started by JsonLinesProcess as a local script (so the scenarios
// drive it as they drive the local one), it applies the application pod,
// waits until it is Ready, and runs `kubectl exec -i` of the workload,
// relaying stdin ("stop") to it and its JSON lines out. Its own output goes
// to stderr, so stdout holds the workload's lines only. Killed (-9), it
// closes kubectl's stdin: the workload reads EOF, finishes and exits.
// Argument: JSON RemoteApplicationArgs.
import { spawn } from "node:child_process";
import { type RemoteApplicationArgs, relayCommands } from "./application.ts";
import { runTool } from "./run-tool.ts";

const args = JSON.parse(process.argv[2] ?? "{}") as RemoteApplicationArgs;
const commands = relayCommands(args);
await runTool("kubectl", commands.apply, { input: JSON.stringify(args.pod) });
await runTool("kubectl", commands.ready, { timeoutMs: 200_000 });
const child = spawn("kubectl", commands.exec, { stdio: ["pipe", "inherit", "inherit"] });
process.stdin.pipe(child.stdin);
child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
