// The `ip` command (iproute2), and where the other Linux tools the harness
// runs live: resolved once from this process's PATH, because a container's
// environment (which the harness builds from scratch) need not name them.
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { ip } from "../../node-agent/test/helpers/netns.ts";

export { ip };

/** `ip -j …`, parsed. */
export async function ipJson<T>(...args: string[]): Promise<T> {
  const out = await ip("-j", ...args);
  return (out.trim() === "" ? [] : JSON.parse(out)) as T;
}

const found = new Map<string, string>();

/** The absolute path of a command on this process's PATH (and the sbin directories). */
export function tool(name: string): string {
  const known = found.get(name);
  if (known !== undefined) return known;
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      found.set(name, path);
      return path;
    } catch {}
  }
  throw new Error(`the harness needs \`${name}\` and it is not on the PATH`);
}

/** Why the harness cannot run here (it needs Linux, root and these tools), or undefined when it can. */
export async function harnessUnavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return "the harness needs Linux network and mount namespaces";
  if (process.getuid?.() !== 0) return "the harness needs root (network namespaces, mounts)";
  try {
    for (const name of ["ip", "unshare", "setpriv", "nsenter", "mount", "sh", "sysctl"]) tool(name);
    await ip("netns", "list");
  } catch (error) {
    return (error as Error).message;
  }
  return undefined;
}
