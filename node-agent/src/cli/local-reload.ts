// Has the agents of a local cluster (`mosaic up`) read their cluster file
// again: SIGHUP to each pid its state.json lists, and only to a process that
// /proc shows is that very agent, so a pid the kernel has since given to
// another program is never signalled (SIGHUP would end most of them).
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { readLocalState } from "./local-state.ts";

export interface SignalledAgent {
  node: string;
  pid: number;
}

/** The agents signalled; none when no local cluster runs from the cluster file's directory. */
export async function reloadLocalAgents(clusterFile: string): Promise<SignalledAgent[]> {
  const path = resolve(clusterFile);
  const state = await readLocalState(join(dirname(path), "state.json"));
  if (state === undefined || resolve(state.clusterFile) !== path) return [];
  const signalled: SignalledAgent[] = [];
  for (const { node, pid } of state.agents) {
    if (!(await isAgentOf(pid, path, node))) continue;
    try {
      process.kill(pid, "SIGHUP");
      signalled.push({ node, pid });
    } catch {
      // Exited since we looked: nothing to tell.
    }
  }
  return signalled;
}

/** Whether `pid` runs `mosaic agent --cluster <clusterFile> --node <node>`. */
async function isAgentOf(pid: number, clusterFile: string, node: string): Promise<boolean> {
  let args: string[];
  try {
    args = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
  } catch {
    return false;
  }
  const flagValue = (flag: string) => {
    const at = args.indexOf(flag);
    return at < 0 ? undefined : args[at + 1];
  };
  const cluster = flagValue("--cluster");
  return (
    args.includes("agent") &&
    cluster !== undefined &&
    resolve(cluster) === clusterFile &&
    flagValue("--node") === node
  );
}
