// The reply to one request on an agent→client ring: a header frame, the body's
// slots, then an END slot; or an ERROR slot in place of any of them (slot
// flags, slot-ring.ts). The header frame is "u32 request id, u32 JSON length,
// JSON", spread over as many slots as it needs, so a large `list` reply is no
// special case; the request id catches a client and agent out of step.
// ERROR slots carry the request id too ("request <id>: <message>"), so an
// error answered for a packet the client never sent (say, garbage that named
// its client id) is recognised as stale and skipped, not taken as the answer
// to the client's next request.
import { MosaicError } from "../errors.ts";
import { type RingConsumer, RingError, type RingProducer } from "./slot-ring.ts";

const TAG = /^request (\d+): /;
/** Stale errors skipped before a reply header at most (each is one slot). */
const MAX_STALE_ERRORS = 64;

/** Ends the reply to `requestId` with an ERROR slot that names the request. */
export function failRequest(producer: RingProducer, requestId: number, error: MosaicError): Promise<void> {
  return producer.fail(new MosaicError(error.code, `request ${requestId >>> 0}: ${error.message}`));
}

/**
 * An agent's error as the application should see it: the tag removed when it
 * names `requestId`; "stale" when it names another request.
 */
export function untagError(error: unknown, requestId: number): unknown {
  if (!(error instanceof MosaicError) || error instanceof RingError) return error;
  const tag = TAG.exec(error.message);
  if (!tag) return error;
  if (Number(tag[1]) !== requestId >>> 0) return "stale";
  return new MosaicError(error.code, error.message.slice(tag[0].length));
}

const PREFIX_BYTES = 8;
/** A reply header larger than this is refused (a list of many thousand files still fits). */
export const REPLY_HEADER_MAX_BYTES = 64 * 1024 * 1024;

export async function writeReplyHeader(
  producer: RingProducer,
  requestId: number,
  header: unknown,
): Promise<void> {
  const json = Buffer.from(JSON.stringify(header ?? null), "utf8");
  if (json.length > REPLY_HEADER_MAX_BYTES) {
    throw new MosaicError(
      "MOSAIC_ERR_MESSAGE_TOO_LARGE",
      `reply header of ${json.length} bytes is too large`,
    );
  }
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + json.length);
  frame.writeUInt32LE(requestId >>> 0, 0);
  frame.writeUInt32LE(json.length, 4);
  json.copy(frame, PREFIX_BYTES);
  await producer.write(frame);
}

/** Reads one header frame; an ERROR slot for this request is thrown as the agent's MosaicError. */
export async function readReplyHeader(consumer: RingConsumer, requestId: number): Promise<unknown> {
  let first: Buffer | null = null;
  // Bounded by MAX_STALE_ERRORS.
  for (let stale = 0; ; stale++) {
    try {
      first = await consumer.next();
      break;
    } catch (error) {
      const untagged = untagError(error, requestId);
      if (untagged !== "stale" || stale >= MAX_STALE_ERRORS) throw untagged === "stale" ? error : untagged;
      consumer.restart(); // an answer to a packet this client never sent: skip it
    }
  }
  if (first === null || first.length < PREFIX_BYTES) {
    throw new MosaicError("MOSAIC_ERR_INTERNAL", "IPC reply without a header frame");
  }
  const gotId = first.readUInt32LE(0);
  const lengthBytes = first.readUInt32LE(4);
  if (gotId !== requestId >>> 0) {
    throw new MosaicError("MOSAIC_ERR_INTERNAL", `IPC reply for request ${gotId}, expected ${requestId}`);
  }
  if (lengthBytes > REPLY_HEADER_MAX_BYTES) {
    throw new MosaicError("MOSAIC_ERR_MESSAGE_TOO_LARGE", `IPC reply header claims ${lengthBytes} bytes`);
  }
  const json = Buffer.allocUnsafe(lengthBytes);
  let have = first.copy(json, 0, PREFIX_BYTES);
  // Bounded by lengthBytes / slot size slots.
  while (have < lengthBytes) {
    const more = await consumer.next();
    if (more === null) throw new MosaicError("MOSAIC_ERR_INTERNAL", "IPC reply header cut short");
    have += more.copy(json, have);
  }
  try {
    return JSON.parse(json.toString("utf8"));
  } catch {
    throw new MosaicError("MOSAIC_ERR_INTERNAL", "IPC reply header is not JSON");
  }
}
