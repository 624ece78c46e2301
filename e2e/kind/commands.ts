// The command lines of the faults on kind, as pure functions: each runs with
// `docker exec` in a node's container (a kind node is a container running
// containerd and the kubelet), so a fault is what it would be on a machine.
//   killPod     crictl inspect of the pod's container for its pid, then kill -9 of that pid
//   setLink     nsenter into the agent container's network namespace, ip link set net1 down|up
//   setConnected  every NIC of the node down (its kubelet loses the API: NotReady), and up with its routes
import type { KindPlan } from "./plan.ts";

export type Argv = readonly string[];

/** `docker exec <node> <argv...>` */
export function dockerExec(node: string, argv: Argv): string[] {
  return ["exec", node, ...argv];
}

/** The container's id in containerd, from the pod status' `containerd://<id>`. */
export function containerdId(containerID: string | undefined): string {
  const match = /^containerd:\/\/([0-9a-f]{12,64})$/.exec(containerID ?? "");
  if (match === null)
    throw new Error(
      `container ID ${JSON.stringify(containerID)} is not containerd's (a kind node runs containerd): is the container running?`,
    );
  return match[1] as string;
}

export function crictlInspect(id: string): string[] {
  return ["crictl", "inspect", "--output", "json", id];
}

/** The host pid of a container's first process, from `crictl inspect -o json`. */
export function pidOfInspect(json: string): number {
  const pid = (JSON.parse(json) as { info?: { pid?: unknown } }).info?.pid;
  if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 1)
    throw new Error(`crictl inspect gave no pid for the container (info.pid ${JSON.stringify(pid)})`);
  return pid;
}

export function kill9(pid: number): string[] {
  return ["kill", "-9", String(pid)];
}

/** `ip link set <link> up|down` in the network namespace of the process `pid` (the pod's). */
export function linkInPod(pid: number, link: string, up: boolean): string[] {
  return ["nsenter", "--target", String(pid), "--net", "--", "ip", "link", "set", link, up ? "up" : "down"];
}

/**
 * The node's NICs: the nodes' network (eth0, kubelet to API) and the two
 * channels. Cutting them is cutting the node's cables: the pods' macvlan
 * NICs stay (their parent is only down), as on a machine whose cables are
 * pulled, and come back with it. `docker network disconnect` would delete
 * the parents and with them every pod's net1 and net2, which no kubelet
 * re-creates for a running pod.
 */
export function nodeNics(plan: KindPlan): string[] {
  return ["eth0", plan.channelA.nic, plan.channelB.nic];
}

export function linksSet(nics: readonly string[], up: boolean): string[] {
  const state = up ? "up" : "down";
  return ["sh", "-c", nics.map((nic) => `ip link set ${nic} ${state}`).join(" && ")];
}

/** The node's IPv4 routes, one per line (`ip -4 route show`), to put back what a link down removed. */
export const ROUTES: Argv = ["ip", "-4", "route", "show"];

/**
 * Setting a link down removes every route through it (the default route
 * too), and up restores only the link's own subnet: the saved routes of
 * `nics` are put back with `ip route replace`, which is idempotent.
 */
export function restoreRoutes(saved: string, nics: readonly string[]): string[] {
  const lines = saved
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && nics.some((nic) => new RegExp(`\\bdev ${nic}(\\s|$)`).test(l)))
    // A route through a link down shows `linkdown`, which `ip route replace` does not take.
    .map((l) => l.replace(/\s+linkdown\b/g, ""));
  return lines.length === 0 ? [] : ["sh", "-c", lines.map((l) => `ip route replace ${l}`).join(" && ")];
}

/** `ip -o -4 addr show`'s lines as NIC name → its IPv4 address. */
export function nicAddresses(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^\d+:\s+([^\s@]+)\S*\s+inet\s+(\d+\.\d+\.\d+\.\d+)\//.exec(line);
    if (match !== null) out.set(match[1] as string, match[2] as string);
  }
  return out;
}

/**
 * Renames the NICs Docker added (eth1, eth2, in whatever order it attached
 * them) to the channel names the NADs' master names, found by the address
 * Docker gave each; none when they are named so already.
 */
export function renameNics(
  current: Map<string, string>,
  wanted: { address: string; nic: string }[],
): string[] {
  const steps: string[] = [];
  for (const { address, nic } of wanted) {
    const name = [...current].find(([, a]) => a === address)?.[0];
    if (name === undefined) throw new Error(`no NIC has ${address} (NICs: ${JSON.stringify([...current])})`);
    if (name !== nic)
      steps.push(`ip link set ${name} down && ip link set ${name} name ${nic} && ip link set ${nic} up`);
  }
  return steps.length === 0 ? [] : ["sh", "-c", steps.join(" && ")];
}
