// gRPC credentials of the agents' mutual TLS, from a TLS directory
// (tls-files.ts) that may be replaced at any time (rotation).
//
// grpc-js's static createSsl() takes PEM once; files replaced later would
// need a restart. Its experimental certificate providers (grpc-js ≥ 1.12,
// grpc/grpc-node#2802, gRFC A29) re-read on a timer instead: a server bound
// with createCertificateProviderServerCredentials calls setSecureContext()
// on each update, and createCertificateProviderChannelCredentials builds
// each new connection's context from the latest update. Connections already
// open keep the certificate they began with. grpc-js's own
// FileWatcherCertificateProvider reads the three files independently and
// hands on whatever it read; ours (TlsDirectoryProvider) hands on only a
// set whose key matches its certificate and whose certificate the CA
// signed, keeps the last good set otherwise, and says so in the log.
import type { Socket } from "node:net";
import { checkServerIdentity, type TLSSocket } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { agentDnsName, certificateFacts } from "./certificates.ts";
import { materialProblem, readTlsFiles, type TlsMaterial } from "./tls-files.ts";

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** How often a TLS directory is read for a replaced certificate. */
export const TLS_REFRESH_DEFAULT_MS = 5_000;

/** How a client reaches an agent: credentials and channel options for the connection to `node` at `address`. */
export interface ChannelSecurity {
  channel(
    node: string | undefined,
    address: string,
  ): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions };
}

/** Plain HTTP/2: tests, benchmarks of the insecure baseline, and agents started with --insecure. */
export const INSECURE: ChannelSecurity = {
  channel: () => ({ credentials: grpc.credentials.createInsecure(), options: {} }),
};

/** The latest good material of a TLS directory, re-read every `refreshMs` while anyone listens. */
export class TlsDirectoryProvider implements CertificateProvider {
  readonly dir: string;
  readonly #refreshMs: number;
  readonly #log: Logger | undefined;
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();
  #latest: TlsMaterial | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reading: Promise<void> | undefined;
  #lastProblem: string | undefined;
  /** When the directory was last read (open() reads it too). */
  #readAt = Date.now();

  constructor(dir: string, options: { refreshMs?: number; log?: Logger; initial?: TlsMaterial } = {}) {
    this.dir = dir;
    this.#refreshMs = options.refreshMs ?? TLS_REFRESH_DEFAULT_MS;
    this.#log = options.log;
    this.#latest = options.initial;
  }

  /** Reads the directory once, checked; a broken set is an error naming what is wrong. */
  static async open(
    dir: string,
    options: { refreshMs?: number; log?: Logger } = {},
  ): Promise<TlsDirectoryProvider> {
    const material = await readTlsFiles(dir);
    const problem = materialProblem(material);
    if (problem !== undefined) throw new Error(`TLS directory ${dir}: ${problem}`);
    return new TlsDirectoryProvider(dir, { ...options, initial: material });
  }

  /** The material in use now (the last good set read). */
  get material(): TlsMaterial | undefined {
    return this.#latest;
  }

  /** Reads the directory now and hands a changed, good set to the listeners. */
  refresh(): Promise<void> {
    this.#reading ??= this.#read().finally(() => {
      this.#reading = undefined;
    });
    return this.#reading;
  }

  async #read(): Promise<void> {
    this.#readAt = Date.now();
    let material: TlsMaterial;
    try {
      material = await readTlsFiles(this.dir);
    } catch (error) {
      return this.#problem((error as Error).message);
    }
    const problem = materialProblem(material);
    if (problem !== undefined) return this.#problem(`TLS directory ${this.dir}: ${problem}`);
    this.#lastProblem = undefined;
    const before = this.#latest;
    if (
      before?.certificate === material.certificate &&
      before.privateKey === material.privateKey &&
      before.ca === material.ca
    )
      return;
    this.#latest = material;
    if (before !== undefined) {
      const facts = certificateFacts(material.certificate);
      this.#log?.info(
        { dir: this.dir, subject: facts.subject, notAfter: facts.notAfter.toISOString() },
        "TLS certificate reloaded; new connections use it",
      );
    }
    this.#publish();
  }

  #problem(message: string): void {
    if (message === this.#lastProblem) return;
    this.#lastProblem = message;
    this.#log?.error({ err: message }, "TLS files not reloaded; keeping the certificate in use");
  }

  #publish(): void {
    const material = this.#latest;
    if (material === undefined) return;
    const ca = { caCertificate: Buffer.from(material.ca) };
    const identity = {
      certificate: Buffer.from(material.certificate),
      privateKey: Buffer.from(material.privateKey),
    };
    for (const listener of this.#caListeners) listener(ca);
    for (const listener of this.#identityListeners) listener(identity);
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#caListeners.add(listener);
    this.#listenersChanged(() => {
      if (this.#latest !== undefined) listener({ caCertificate: Buffer.from(this.#latest.ca) });
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
    this.#listenersChanged();
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.add(listener);
    this.#listenersChanged(() => {
      const m = this.#latest;
      if (m !== undefined)
        listener({ certificate: Buffer.from(m.certificate), privateKey: Buffer.from(m.privateKey) });
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
    this.#listenersChanged();
  }

  /** Polls while anyone listens; a new listener hears the current set on the next tick, as grpc-js's own provider does. */
  #listenersChanged(greet?: () => void): void {
    if (greet !== undefined) process.nextTick(greet);
    const listening = this.#caListeners.size + this.#identityListeners.size > 0;
    if (listening && this.#timer === undefined) {
      this.#timer = setInterval(() => void this.refresh(), this.#refreshMs);
      this.#timer.unref();
      // A provider used again after a pause (a client made, closed, made again) reads at once, not a period later.
      if (this.#latest === undefined || Date.now() - this.#readAt >= this.#refreshMs) void this.refresh();
    } else if (!listening && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/**
 * Mutual TLS from a TLS directory: the server asks every caller for a
 * certificate and refuses any the CA did not sign; a client presents its own
 * and accepts only the node it meant to call (its certificate's DNS name is
 * `<node>.agent.mosaic.dev`, checked through grpc's ssl_target_name_override
 * since agents dial IP addresses).
 */
export class MutualTls implements ChannelSecurity {
  readonly provider: TlsDirectoryProvider;
  readonly #channelCredentials: grpc.ChannelCredentials;

  constructor(provider: TlsDirectoryProvider, log?: Logger) {
    this.provider = provider;
    // One credentials object for every peer: grpc-js shares subchannels only between equal credentials.
    const credentials = grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, {
      // Called with the node's name (ssl_target_name_override), after the chain verified against the CA.
      checkServerIdentity: (name, certificate) => {
        const error = checkServerIdentity(name, certificate);
        if (error !== undefined)
          log?.warn(
            {
              expected: name,
              presented: certificate.subjectaltname ?? certificate.subject?.CN,
              err: error.message,
            },
            "peer refused: its certificate names another node than the one called",
          );
        return error;
      },
    });
    this.#channelCredentials = limitHandshakes(credentials, HANDSHAKE_TIMEOUT_MS);
  }

  static async open(dir: string, options: { refreshMs?: number; log?: Logger } = {}): Promise<MutualTls> {
    return new MutualTls(await TlsDirectoryProvider.open(dir, options), options.log);
  }

  serverCredentials(): grpc.ServerCredentials {
    return grpc.experimental.createCertificateProviderServerCredentials(this.provider, this.provider, true);
  }

  channel(
    node: string | undefined,
    address: string,
  ): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
    // The name is what is checked: without it any certificate of the cluster would pass for this agent.
    if (node === undefined)
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `mutual TLS to ${address} needs the node id of the agent there`,
      );
    return {
      credentials: this.#channelCredentials,
      options: { "grpc.ssl_target_name_override": agentDnsName(node) },
    };
  }
}

/** Longest a TLS handshake may take once TCP is connected; a healthy peer needs milliseconds. */
export const HANDSHAKE_TIMEOUT_MS = 3_000;

type SecureConnector = { connect(socket: Socket): Promise<unknown> };

/**
 * grpc-js cannot cancel a TLS handshake in progress: closing a client does
 * not end it, so a peer that accepted TCP and then stopped answering (a
 * SIGSTOPped or hung agent) holds the attempt, and the process (a `mosaic`
 * command that should exit), until it wakes. Each handshake here ends within
 * `ms`; grpc-js then retries as after any failed connect. Through
 * _createSecureConnector, grpc-js's internal hook (there is no public one).
 */
function limitHandshakes(credentials: grpc.ChannelCredentials, ms: number): grpc.ChannelCredentials {
  const hooked = credentials as unknown as { _createSecureConnector?(...args: unknown[]): SecureConnector };
  // Another grpc-js may not have the hook: handshakes then run unbounded, as grpc-js itself leaves them.
  if (typeof hooked._createSecureConnector !== "function") return credentials;
  const create = hooked._createSecureConnector.bind(hooked);
  hooked._createSecureConnector = (...args) => {
    const connector = create(...args);
    const connect = connector.connect.bind(connector);
    connector.connect = (socket) => {
      const timer = setTimeout(() => socket.destroy(new Error(`TLS handshake not done within ${ms} ms`)), ms);
      return connect(socket).finally(() => clearTimeout(timer));
    };
    return connector;
  };
  return credentials;
}

const LOGGED = Symbol("mosaic.logRefusedHandshakes");

/** In words, why a peer's handshake failed, from OpenSSL's verify code or Node's error code. */
export function refusalReason(code: string | Error | undefined): string {
  switch (String(code)) {
    case "ERR_SSL_WRONG_VERSION_NUMBER":
    case "ERR_SSL_HTTP_REQUEST":
      return "the peer does not speak TLS (an agent or client started --insecure?)";
    case "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE":
      return "the peer presented no certificate";
    case "CERT_HAS_EXPIRED":
      return "the peer's certificate has expired";
    case "CERT_NOT_YET_VALID":
      return "the peer's certificate is not valid yet";
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "CERT_SIGNATURE_FAILURE":
      return "the peer's certificate is not signed by this cluster's CA";
    default:
      return `the handshake failed (${String(code)})`;
  }
}

/**
 * Logs each TLS handshake the server refuses (no certificate, another CA,
 * expired): Node drops such connections silently and grpc-js does not listen
 * for it, so without this a refused peer leaves no trace. grpc-js exposes
 * no hook: its private http2Servers, as wire.ts's raiseServerReceiveWindow.
 */
export function logRefusedHandshakes(server: grpc.Server, log: Logger): boolean {
  const servers = (server as unknown as { http2Servers?: Map<unknown, unknown> }).http2Servers;
  if (!(servers instanceof Map)) return false;
  for (const http2Server of servers.keys()) {
    const tlsServer = http2Server as import("node:tls").Server & { [LOGGED]?: true };
    // Node's http2 listens itself, so the count cannot tell whether we did: a mark can.
    if (tlsServer[LOGGED]) continue;
    tlsServer[LOGGED] = true;
    // By then the socket is closed and knows no peer address: it is taken as the connection comes.
    const peers = new WeakMap<object, string>();
    tlsServer.on("connection", (raw: import("node:net").Socket) => {
      peers.set(raw, `${raw.remoteAddress}:${raw.remotePort}`);
    });
    tlsServer.on("tlsClientError", (error, socket) => {
      const raw = (socket as unknown as { _parent?: object })._parent;
      // A certificate that does not verify fails after the handshake, as a bare hang-up: the reason is on the socket.
      const code = (socket as TLSSocket).authorizationError ?? (error as NodeJS.ErrnoException).code;
      log.warn(
        {
          peer: (raw && peers.get(raw)) ?? `${socket.remoteAddress}:${socket.remotePort}`,
          why: refusalReason(code),
          code: String(code),
          err: error.message,
        },
        `TLS handshake refused: ${refusalReason(code)}`,
      );
    });
  }
  return true;
}
