// What an agent process runs its gRPC with, from its flags: --tls-dir
// (mutual TLS), --insecure (plain, said so loudly), or neither.
//
// Neither means plain HTTP/2 too, with the same loud warning, rather than a
// refusal to start: every way Mosaic is meant to be run turns TLS on by
// itself (`mosaic up` makes a CA and passes --tls-dir; in Kubernetes the
// operator's DaemonSet passes it), and the bare `mosaic agent` is also the
// building block of many tests that call it without either flag.
import type { Logger } from "../log.ts";
import { MutualTls } from "./grpc-tls.ts";

export interface TlsFlags {
  /** Directory of ca.crt, tls.crt, tls.key (tls-files.ts). */
  tlsDir?: string;
  /** Plain HTTP/2 on purpose (development only). */
  insecure?: boolean;
}

/** The agent's mutual TLS, or undefined for plain HTTP/2; a TLS directory that cannot serve is an error. */
export async function agentTls(flags: TlsFlags, log: Logger): Promise<MutualTls | undefined> {
  if (flags.tlsDir !== undefined && flags.insecure === true)
    throw new Error("--tls-dir and --insecure contradict each other: give one");
  if (flags.tlsDir !== undefined) {
    const tls = await MutualTls.open(flags.tlsDir, { log: log.child({ component: "tls" }) });
    log.info({ tlsDir: flags.tlsDir }, "gRPC with mutual TLS: peers need a certificate of this cluster's CA");
    return tls;
  }
  log.warn(
    { insecure: flags.insecure === true },
    flags.insecure === true
      ? "INSECURE: --insecure given: gRPC without TLS; anyone who reaches these ports can read, write and delete data (development only)"
      : "INSECURE: no --tls-dir: gRPC without TLS; anyone who reaches these ports can read, write and delete data (give --tls-dir, or --insecure to say it is meant)",
  );
  return undefined;
}
