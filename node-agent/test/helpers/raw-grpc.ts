// A gRPC client with no manners: raw Buffers to any method path of an agent,
// nothing validated or encoded on the way, and every outcome (status code,
// details, the mosaic-code trailer, messages received) reported rather than
// thrown. For tests of what an agent does with garbage.
import * as grpc from "@grpc/grpc-js";
import { FILES_SERVICE, PEER_SERVICE } from "../../src/rpc/wire.ts";

export type PeerMethod = keyof typeof PEER_SERVICE;
export type FilesMethod = keyof typeof FILES_SERVICE;

export interface RawOutcome {
  code: grpc.status;
  /** grpc.status name, e.g. "INVALID_ARGUMENT", for readable assertion messages. */
  codeName: string;
  details: string;
  /** The agent's error code from the mosaic-code trailer, if it sent one. */
  mosaicCode: string | undefined;
  /** Messages received: the unary reply, or every message of a response stream. */
  messages: Buffer[];
}

const identity = (b: Buffer) => b;

export function peerPath(method: PeerMethod): string {
  return PEER_SERVICE[method].path;
}

export function filesPath(method: FilesMethod): string {
  return FILES_SERVICE[method].path;
}

export class RawGrpc {
  readonly address: string;
  readonly #client: grpc.Client;

  constructor(address: string) {
    this.address = address;
    this.#client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      "grpc.max_send_message_length": -1,
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
      "grpc.use_local_subchannel_pool": 1,
    });
  }

  unary(path: string, request: Buffer, timeoutMs = 10_000): Promise<RawOutcome> {
    return new Promise((resolve) => {
      this.#client.makeUnaryRequest(
        path,
        identity,
        identity,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (error, reply) => resolve(outcome(error, reply === undefined ? [] : [reply])),
      );
    });
  }

  /** Writes every message (waiting for drain), then ends the stream unless `end` is false. */
  clientStream(path: string, messages: Buffer[], timeoutMs = 10_000, end = true): Promise<RawOutcome> {
    return new Promise((resolve) => {
      const call = this.#client.makeClientStreamRequest(
        path,
        identity,
        identity,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (error, reply) => resolve(outcome(error, reply === undefined ? [] : [reply])),
      );
      call.on("error", () => {}); // the callback reports it
      writeMessages(call, messages, end);
    });
  }

  serverStream(path: string, request: Buffer, timeoutMs = 10_000): Promise<RawOutcome> {
    return new Promise((resolve) => {
      const call = this.#client.makeServerStreamRequest(
        path,
        identity,
        identity,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
      );
      collectStream(call, resolve);
    });
  }

  bidiStream(path: string, messages: Buffer[], timeoutMs = 10_000): Promise<RawOutcome> {
    return new Promise((resolve) => {
      const call = this.#client.makeBidiStreamRequest(path, identity, identity, new grpc.Metadata(), {
        deadline: Date.now() + timeoutMs,
      });
      collectStream(call, resolve);
      writeMessages(call, messages, true);
    });
  }

  close(): void {
    this.#client.close();
  }
}

function writeMessages(call: grpc.ClientWritableStream<Buffer>, messages: Buffer[], end: boolean): void {
  (async () => {
    for (const message of messages) {
      if (!call.write(message)) {
        await new Promise<void>((resolve) => {
          call.once("drain", resolve);
          call.once("close", resolve);
          call.once("error", resolve);
        });
      }
    }
    if (end) call.end();
  })().catch(() => {});
}

function collectStream(call: grpc.ClientReadableStream<Buffer>, resolve: (o: RawOutcome) => void): void {
  const messages: Buffer[] = [];
  call.on("data", (m: Buffer) => messages.push(m));
  call.on("error", () => {}); // 'status' reports it
  call.on("status", (status: grpc.StatusObject) => {
    resolve({
      code: status.code,
      codeName: grpc.status[status.code] ?? String(status.code),
      details: status.details,
      mosaicCode: mosaicCode(status.metadata),
      messages,
    });
  });
}

function outcome(error: grpc.ServiceError | null, messages: Buffer[]): RawOutcome {
  if (error === null)
    return { code: grpc.status.OK, codeName: "OK", details: "", mosaicCode: undefined, messages };
  return {
    code: error.code,
    codeName: grpc.status[error.code] ?? String(error.code),
    details: error.details,
    mosaicCode: mosaicCode(error.metadata),
    messages,
  };
}

function mosaicCode(metadata: grpc.Metadata | undefined): string | undefined {
  const value = metadata?.get("mosaic-code")[0];
  return typeof value === "string" ? value : undefined;
}

export function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}
