// An agent's TLS directory: ca.crt, tls.crt, tls.key — the names of a
// Kubernetes TLS Secret, so a mounted Secret and a directory we write look
// the same. We write like the kubelet does for Secret volumes: the files
// live in a fresh hidden directory, `..data` is a symlink to it, and each
// name is a symlink through `..data`; one rename of `..data` swaps all
// three at once, so a reader never pairs a new certificate with an old key.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdir, readdir, readFile, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MosaicError } from "../errors.ts";

export const TLS_FILE_NAMES = { ca: "ca.crt", certificate: "tls.crt", privateKey: "tls.key" } as const;
const DATA_LINK = "..data";

/** PEM text of the three files. */
export interface TlsMaterial {
  ca: string;
  certificate: string;
  privateKey: string;
}

/** Replaces the directory's three files at once (see the top of this file). */
export async function writeTlsFiles(dir: string, material: TlsMaterial): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const version = `..${new Date().toISOString().replace(/[:.]/g, "_")}.${process.pid}.${Math.random().toString(36).slice(2, 8)}`;
  await mkdir(join(dir, version), { mode: 0o700 });
  await writeFile(join(dir, version, TLS_FILE_NAMES.ca), material.ca, { mode: 0o644 });
  await writeFile(join(dir, version, TLS_FILE_NAMES.certificate), material.certificate, { mode: 0o644 });
  await writeFile(join(dir, version, TLS_FILE_NAMES.privateKey), material.privateKey, { mode: 0o600 });
  const temp = join(dir, `..data_tmp.${process.pid}`);
  await rm(temp, { force: true });
  await symlink(version, temp);
  await rename(temp, join(dir, DATA_LINK));
  for (const name of Object.values(TLS_FILE_NAMES)) {
    const link = join(dir, name);
    const target = join(DATA_LINK, name);
    if ((await readlink(link).catch(() => undefined)) === target) continue;
    const linkTemp = `${link}.tmp.${process.pid}`;
    await rm(linkTemp, { force: true });
    await symlink(target, linkTemp);
    await rename(linkTemp, link);
  }
  await removeOldVersions(dir, version);
}

/** Reads the three files; a missing or unreadable one is named in the error. */
export async function readTlsFiles(dir: string): Promise<TlsMaterial> {
  const read = async (name: string) => {
    try {
      return await readFile(join(dir, name), "utf8");
    } catch (cause) {
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `TLS directory ${dir}: cannot read ${name} (${(cause as NodeJS.ErrnoException).code ?? cause}); ` +
          `it needs ${Object.values(TLS_FILE_NAMES).join(", ")}`,
        { cause },
      );
    }
  };
  return {
    ca: await read(TLS_FILE_NAMES.ca),
    certificate: await read(TLS_FILE_NAMES.certificate),
    privateKey: await read(TLS_FILE_NAMES.privateKey),
  };
}

/**
 * Why the material cannot serve (not PEM, key not the certificate's, not
 * signed by the CA), or undefined when it can. Checked before use, so a
 * broken set on disk is refused with a reason instead of breaking handshakes.
 */
export function materialProblem(material: TlsMaterial): string | undefined {
  let certificate: X509Certificate;
  let cas: X509Certificate[];
  try {
    certificate = new X509Certificate(material.certificate);
  } catch {
    return `${TLS_FILE_NAMES.certificate} is not a PEM certificate`;
  }
  try {
    cas = pemCertificates(material.ca).map((pem) => new X509Certificate(pem));
    if (cas.length === 0) throw new Error("none");
  } catch {
    return `${TLS_FILE_NAMES.ca} is not a PEM certificate`;
  }
  try {
    if (!certificate.checkPrivateKey(createPrivateKey(material.privateKey)))
      return `${TLS_FILE_NAMES.privateKey} is not the key of ${TLS_FILE_NAMES.certificate}`;
  } catch {
    return `${TLS_FILE_NAMES.privateKey} is not a PEM private key`;
  }
  // A bundle during a CA rotation (Kubernetes mode) holds the new CA and the old: either may be the issuer.
  if (!cas.some((ca) => certificate.checkIssued(ca) && certificate.verify(ca.publicKey)))
    return `${TLS_FILE_NAMES.certificate} (${certificate.subject}) is not signed by ${TLS_FILE_NAMES.ca} (${cas.map((ca) => ca.subject).join(", ")})`;
  return undefined;
}

/** Each certificate of a PEM bundle, in order. */
function pemCertificates(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Earlier versions, now unreachable (one writer per directory: the agent, or `mosaic up`). */
async function removeOldVersions(dir: string, keep: string): Promise<void> {
  for (const entry of await readdir(dir)) {
    if (entry.startsWith("..") && entry !== keep && !entry.startsWith(DATA_LINK))
      await rm(join(dir, entry), { recursive: true, force: true });
  }
}
