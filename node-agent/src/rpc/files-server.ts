// The Files service: what clients (the CLI, applications) ask of their agent.
// Each call becomes one FileRequest for the file layer, the same shape a
// forwarded request takes.
import type * as grpc from "@grpc/grpc-js";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { FileHandler } from "./file-handler.ts";
import { type FileOp, validateFileRequest } from "./messages.ts";
import { splitHeader, writeAll } from "./streams.ts";
import { decodeJson, encodeJson, toServiceError } from "./wire.ts";

const noInput: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: async function* () {} };

/** The origin of a client's call: the client is gone once it cancels (or its connection dies). */
function clientOrigin(call: { on(event: "cancelled", listener: () => void): unknown }) {
  const gone = new AbortController();
  call.on("cancelled", () => gone.abort());
  return { forwarded: false, clientGone: gone.signal };
}

export function filesServiceHandlers(files: FileHandler, parent: Logger): grpc.UntypedServiceImplementation {
  const log = parent.child({ component: "files-server" });
  const refuse = (op: string, call: { getPeer(): string }, error: unknown) => {
    log.info({ op, client: call.getPeer(), err: (error as Error).message }, "request refused");
    return toServiceError(error);
  };
  const request = (message: Buffer, op: FileOp) => {
    const r = decodeJson(message, `${op} request`, validateFileRequest);
    if (r.op !== op) throw toMismatch(op, r.op);
    return r;
  };

  const unary =
    (op: FileOp) => (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      (async () =>
        (await files.handle(request(call.request, op), noInput, clientOrigin(call))).header)().then(
        (header) => callback(null, encodeJson(header)),
        (error) => callback(refuse(op, call, error)),
      );
    };

  return {
    put: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      (async () => {
        const stream = await splitHeader(call, "Put");
        const reply = await files.handle(request(stream.header, "put"), stream.data, clientOrigin(call));
        return reply.header;
      })().then(
        (header) => callback(null, encodeJson(header)),
        (error) => callback(refuse("put", call, error)),
      );
    },
    get: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      (async () => {
        const reply = await files.handle(request(call.request, "get"), noInput, { forwarded: false });
        call.write(encodeJson(reply.header));
        if (reply.body) await writeAll(call, reply.body);
        call.end();
      })().catch((error) => call.emit("error", refuse("get", call, error)));
    },
    head: unary("head"),
    stat: unary("stat"),
    list: unary("list"),
    delete: unary("delete"),
    cluster: unary("cluster"),
  };
}

function toMismatch(expected: FileOp, got: FileOp): MosaicError {
  return new MosaicError("MOSAIC_ERR_BAD_REQUEST", `${expected} request: op is ${JSON.stringify(got)}`);
}
