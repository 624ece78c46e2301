// <dir>/state.json: which processes a running local cluster is made of, so a
// second `mosaic up` on the same directory refuses instead of fighting over
// ports and chunk files, and so tests and people can find the pids.
import { readFile, rename, rm, writeFile } from "node:fs/promises";

export interface LocalState {
  /** The `mosaic up` process. */
  upPid: number;
  startedAt: string;
  clusterFile: string;
  agents: { node: string; pid: number; logFile: string }[];
}

export async function readLocalState(path: string): Promise<LocalState | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const state = JSON.parse(text) as LocalState;
    return Number.isInteger(state.upPid) && Array.isArray(state.agents) ? state : undefined;
  } catch {
    return undefined;
  }
}

export async function writeLocalState(path: string, state: LocalState): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(temp, path);
}

export async function removeLocalState(path: string): Promise<void> {
  await rm(path, { force: true });
}

/** Pids of the state's processes that still run. */
export function livePids(state: LocalState): number[] {
  return [state.upPid, ...state.agents.map((a) => a.pid)].filter(isAlive);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else, which still holds the ports.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
