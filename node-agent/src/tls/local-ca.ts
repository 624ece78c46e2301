// Local mode's certificates (`mosaic up`): a CA of its own under the
// cluster's directory, kept across runs while it is valid, and for every run
// a fresh certificate per agent and one for the tools (CLI, status page,
// benchmarks) that call them. Layout under <dir>:
//   ca/ca.crt, ca/ca.key     the CA (the key never leaves this directory)
//   <node>/                  ca.crt, tls.crt, tls.key of each agent (tls-files.ts)
//   client/                  the same for the tools
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  certificateFacts,
  createCa,
  issueAgentCertificate,
  issueClientCertificate,
  type KeyPairPem,
  needsRotation,
} from "./certificates.ts";
import { writeTlsFiles } from "./tls-files.ts";

export const LOCAL_CLIENT_DIR = "client";

/** Each agent's TLS directory under `dir`. */
export function localAgentTlsDir(dir: string, nodeId: string): string {
  return join(dir, nodeId);
}

/** The tools' TLS directory under `dir`. */
export function localClientTlsDir(dir: string): string {
  return join(dir, LOCAL_CLIENT_DIR);
}

/** Makes (or reuses) the CA under `dir` and writes a fresh certificate for each of `nodeIds` and for the tools. */
export async function prepareLocalTls(
  dir: string,
  nodeIds: readonly string[],
  now = new Date(),
): Promise<void> {
  const ca = await localCa(join(dir, "ca"), now);
  for (const node of nodeIds) {
    const pair = await issueAgentCertificate(ca, node, { now });
    await writeTlsFiles(localAgentTlsDir(dir, node), { ca: ca.certificate, ...pair });
  }
  const client = await issueClientCertificate(ca, "mosaic-cli", { now });
  await writeTlsFiles(localClientTlsDir(dir), { ca: ca.certificate, ...client });
}

/** The CA in `dir`, or a new one when there is none or it is near its end. */
async function localCa(dir: string, now: Date): Promise<KeyPairPem> {
  const existing = await readCa(dir);
  if (existing !== undefined && !caNeedsReplacing(existing, now)) return existing;
  const ca = await createCa({ commonName: "Mosaic local CA", now });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // The key first: a certificate on disk is never without its key.
  await writeAtomically(join(dir, "ca.key"), ca.privateKey, 0o600);
  await writeAtomically(join(dir, "ca.crt"), ca.certificate, 0o644);
  return ca;
}

function caNeedsReplacing(ca: KeyPairPem, now: Date): boolean {
  try {
    return needsRotation(certificateFacts(ca.certificate), now);
  } catch {
    return true; // not a certificate: a new CA, and new agent certificates with it
  }
}

async function readCa(dir: string): Promise<KeyPairPem | undefined> {
  try {
    return {
      certificate: await readFile(join(dir, "ca.crt"), "utf8"),
      privateKey: await readFile(join(dir, "ca.key"), "utf8"),
    };
  } catch {
    return undefined;
  }
}

async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  await writeFile(`${path}.tmp`, text, { mode });
  await rename(`${path}.tmp`, path);
}
