// The X.509 side of the agents' mutual TLS: a CA (ECDSA P-256), agent
// certificates naming their node in a SAN DNS name, CSRs an agent makes for
// its own key, expiry and when to rotate. No file or network I/O here.
//
// X.509 through @peculiar/x509 1.x on Node's webcrypto: a maintained
// library, so no hand-built ASN.1. Version 2 needs a reflect-metadata
// polyfill loaded before anything else in the process (it moved to
// decorators); 1.14 does not, so the agent stays free of app-wide globals.
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { MosaicError } from "../errors.ts";

type Crypto = Parameters<typeof x509.cryptoProvider.set>[0];
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const SUBJECT_ALT_NAME_OID = "2.5.29.17";
const DAY_MS = 24 * 3600 * 1000;
/** Every agent's certificate names its node as `<node>.agent.mosaic.dev`: agents dial IPs, so the name is checked instead. */
export const AGENT_DNS_SUFFIX = ".agent.mosaic.dev";
const CLIENT_DNS_SUFFIX = ".client.mosaic.dev";
/** A CA lives ten years; rotating it is an operator's deliberate act, not a timer's. */
export const CA_VALIDITY_MS = 3650 * DAY_MS;
/** Agent certificates live a week and are replaced after two thirds of it. */
export const AGENT_VALIDITY_MS = 7 * DAY_MS;
export const ROTATE_AT_FRACTION = 2 / 3;
/** Clocks of two machines disagree: a certificate is valid from a little before it is made. */
const BACKDATE_MS = 5 * 60 * 1000;

/** PEM text of a certificate and its PKCS#8 private key. */
export interface KeyPairPem {
  certificate: string;
  privateKey: string;
}

/** What a certificate says that rotation and checks need. */
export interface CertificateFacts {
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  dnsNames: string[];
}

/** Names in certificates are DNS labels: a-z, 0-9 and inner dashes, at most 63. */
export function isDnsLabel(name: string): boolean {
  return /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name);
}

function checkedLabel(what: string, name: string): string {
  if (!isDnsLabel(name)) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `${what} ${JSON.stringify(name)} cannot name a certificate: it must be a DNS label (a-z, 0-9, -; at most 63)`,
    );
  }
  return name;
}

/** `node-1` → `node-1.agent.mosaic.dev`; a node id that is no DNS label is refused. */
export function agentDnsName(nodeId: string): string {
  return `${checkedLabel("node id", nodeId)}${AGENT_DNS_SUFFIX}`;
}

/** The node a DNS name of an agent certificate names; undefined for any other name. */
export function nodeOfDnsName(name: string): string | undefined {
  return name.endsWith(AGENT_DNS_SUFFIX) ? name.slice(0, -AGENT_DNS_SUFFIX.length) : undefined;
}

export async function createCa(
  options: { commonName?: string; now?: Date; validityMs?: number } = {},
): Promise<KeyPairPem> {
  const now = options.now ?? new Date();
  const keys = await newKeys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=${options.commonName ?? "Mosaic agents CA"}`,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + (options.validityMs ?? CA_VALIDITY_MS)),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificate: certificate.toString("pem"), privateKey: await privateKeyPem(keys.privateKey) };
}

/** A key for `nodeId` and a CSR for it (the agent keeps the key; the CSR goes to whoever signs). */
export async function createAgentCsr(nodeId: string): Promise<{ csr: string; privateKey: string }> {
  const keys = await newKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${nodeId}`,
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: "dns", value: agentDnsName(nodeId) }])],
  });
  return { csr: csr.toString("pem"), privateKey: await privateKeyPem(keys.privateKey) };
}

/**
 * Signs an agent's CSR after checking it: its signature (the requester holds
 * the key), and that it asks for exactly `nodeId`'s name and nothing else.
 * What the CSR says beyond its key and its name is not copied: the
 * certificate's usages and lifetime are the CA's to decide.
 */
export async function signAgentCsr(
  ca: KeyPairPem,
  csrPem: string,
  nodeId: string,
  options: { now?: Date; validityMs?: number } = {},
): Promise<string> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (cause) {
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `not a PKCS#10 certificate request`, { cause });
  }
  const verified = await csr.verify().catch(() => false); // a key the CSR mangled throws rather than failing
  if (!verified) {
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", "the certificate request's signature does not verify");
  }
  const want = agentDnsName(nodeId);
  const asked = subjectAltNames(csr);
  const names = asked.map((n) => `${n.type}:${n.value}`);
  if (names.length !== 1 || names[0] !== `dns:${want}`) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `the certificate request names ${names.join(", ") || "nothing"}; node ${nodeId} may ask for dns:${want} only`,
    );
  }
  const publicKey = await csr.publicKey.export(webcrypto as unknown as Crypto);
  return issue(ca, publicKey, { commonName: nodeId, dnsName: want }, options);
}

/** A key and certificate for `nodeId`, made in one place (local mode: `mosaic up` holds the CA itself). */
export function issueAgentCertificate(
  ca: KeyPairPem,
  nodeId: string,
  options: { now?: Date; validityMs?: number } = {},
): Promise<KeyPairPem> {
  return issueWithNewKey(ca, { commonName: nodeId, dnsName: agentDnsName(nodeId) }, options);
}

/**
 * A key and certificate for a tool (the `mosaic` CLI of a local cluster):
 * signed by the same CA, so agents take its calls, but named
 * `<name>.client.mosaic.dev`, so it can never pass for an agent.
 */
export function issueClientCertificate(
  ca: KeyPairPem,
  name: string,
  options: { now?: Date; validityMs?: number } = {},
): Promise<KeyPairPem> {
  const label = checkedLabel("tool name", name);
  return issueWithNewKey(ca, { commonName: name, dnsName: `${label}${CLIENT_DNS_SUFFIX}` }, options);
}

async function issueWithNewKey(
  ca: KeyPairPem,
  name: { commonName: string; dnsName: string },
  options: { now?: Date; validityMs?: number },
): Promise<KeyPairPem> {
  const keys = await newKeys();
  return {
    certificate: await issue(ca, keys.publicKey, name, options),
    privateKey: await privateKeyPem(keys.privateKey),
  };
}

async function issue(
  ca: KeyPairPem,
  publicKey: CryptoKey,
  name: { commonName: string; dnsName: string },
  options: { now?: Date; validityMs?: number },
): Promise<string> {
  const now = options.now ?? new Date();
  const caCert = new x509.X509Certificate(ca.certificate);
  const caKey = await importPrivateKey(ca.privateKey);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${name.commonName}`,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + (options.validityMs ?? AGENT_VALIDITY_MS)),
    signingAlgorithm: ALGORITHM,
    publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: name.dnsName }]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return certificate.toString("pem");
}

/** Reads the first certificate of a PEM text; anything else is a clear error. */
export function certificateFacts(pem: string): CertificateFacts {
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(pem);
  } catch (cause) {
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", "not a PEM X.509 certificate", { cause });
  }
  const names = subjectAltNames(certificate);
  return {
    subject: certificate.subject,
    issuer: certificate.issuer,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    dnsNames: names.filter((n) => n.type === "dns").map((n) => n.value),
  };
}

/** Whether `caPem` signed `certificatePem` (the CA a Secret holds really is the one an agent's chain names). */
export async function signedBy(certificatePem: string, caPem: string): Promise<boolean> {
  const certificate = new x509.X509Certificate(certificatePem);
  const ca = new x509.X509Certificate(caPem);
  return certificate.verify({ publicKey: ca.publicKey, signatureOnly: true });
}

/** When a certificate valid over [notBefore, notAfter] should be replaced: at `fraction` of its life. */
export function rotationDue(
  facts: Pick<CertificateFacts, "notBefore" | "notAfter">,
  fraction = ROTATE_AT_FRACTION,
): Date {
  const life = facts.notAfter.getTime() - facts.notBefore.getTime();
  return new Date(facts.notBefore.getTime() + life * fraction);
}

/** Why a certificate cannot serve at `now` (expired, not yet valid), or undefined when it can. */
export function validityProblem(
  facts: Pick<CertificateFacts, "notBefore" | "notAfter">,
  now: Date,
): string | undefined {
  if (now < facts.notBefore) return `not valid before ${facts.notBefore.toISOString()}`;
  if (now >= facts.notAfter) return `expired at ${facts.notAfter.toISOString()}`;
  return undefined;
}

/** Whether the certificate should be replaced now: past its rotation point, or unusable. */
export function needsRotation(facts: Pick<CertificateFacts, "notBefore" | "notAfter">, now: Date): boolean {
  return validityProblem(facts, now) !== undefined || now >= rotationDue(facts);
}

/** By OID: 1.14's CSR getExtension(class) finds nothing, though the extension is there. */
function subjectAltNames(
  item: x509.X509Certificate | x509.Pkcs10CertificateRequest,
): readonly x509.GeneralName[] {
  const extension = item.getExtension(SUBJECT_ALT_NAME_OID) as x509.SubjectAlternativeNameExtension | null;
  return extension?.names.items ?? [];
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as CryptoKeyPair;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  try {
    const der = x509.PemConverter.decodeFirst(pem);
    return await webcrypto.subtle.importKey("pkcs8", der, ALGORITHM, false, ["sign"]);
  } catch (cause) {
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", "the CA's private key is not a PKCS#8 ECDSA P-256 key", {
      cause,
    });
  }
}

/** 16 random bytes, the top bit clear so the DER integer stays positive. */
function serialNumber(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] as number) & 0x7f;
  return Buffer.from(bytes).toString("hex");
}
