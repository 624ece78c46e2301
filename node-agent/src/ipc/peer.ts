// Who is on the other side of a ring, and is it still alive. A peer killed
// with SIGKILL posts nothing, so a waiter would only notice it at its overall
// timeout; recording (pid, start time, pid namespace) in the segment lets the
// waiter, each time a bounded wait slice ends, ask /proc whether that exact
// process still exists. The start time guards against pid reuse; the
// namespace check skips the question when the peer lives in another pid
// namespace (Kubernetes pods share IPC via hostIPC, not pids), where only
// the overall timeout applies.
import { readFileSync, statSync } from "node:fs";

export interface ProcessIdentity {
  pid: number;
  /** Clock ticks after boot (/proc/<pid>/stat field 22). */
  startTicks: number;
  /** Inode of /proc/<pid>/ns/pid; 0 if unknown. */
  pidNamespace: number;
}

interface StatFields {
  state: string;
  startTicks: number;
}

function readStat(pid: number | "self"): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0] ?? "", startTicks: Number(fields[19]) };
}

function namespaceOf(pid: number | "self"): number {
  try {
    return statSync(`/proc/${pid}/ns/pid`).ino;
  } catch {
    return 0;
  }
}

let self: ProcessIdentity | undefined;

export function selfIdentity(): ProcessIdentity {
  // Forked children get a fresh module, so caching per process is safe.
  self ??= {
    pid: process.pid,
    startTicks: readStat("self")?.startTicks ?? 0,
    pidNamespace: namespaceOf("self"),
  };
  return self;
}

/** False only when the peer is known to be gone; true when alive or unknowable from here. */
export function isAlive(peer: ProcessIdentity): boolean {
  if (peer.pid <= 0) return true; // never attached: nothing to check yet
  const mine = selfIdentity().pidNamespace;
  if (peer.pidNamespace === 0 || mine === 0 || peer.pidNamespace !== mine) return true;
  const stat = readStat(peer.pid);
  if (!stat) return false;
  if (stat.state === "Z" || stat.state === "X") return false; // killed, not yet reaped
  return stat.startTicks === peer.startTicks; // otherwise the pid was reused
}
