// What a reader checks of a GetPiece answer before it uses a byte of it:
// the bytes must be as many as the header announced and match its crc32c.
// The holder checked the whole piece against its stored crc32c before it sent
// anything; this catches what happened after (the wire, the holder's memory),
// so a ranged answer is checked end to end by the crc32c of the slice it
// carries. Pure: no I/O.
import { crc32c } from "@node-rs/crc32";
import { MosaicError } from "../errors.ts";
import type { GetPieceHeader, PieceRange } from "./messages.ts";

/**
 * The bytes asked for, checked against `header`: the whole piece when
 * `asked` is undefined, else that range of it. A holder that does not know
 * ranges sends the whole piece without echoing one: it is checked whole and
 * the range is cut from it (views, no copy). `label` names the piece and its
 * holder in errors. With the bytes, their crc32c.
 */
export function checkReceivedPiece(
  data: readonly Buffer[],
  header: GetPieceHeader,
  asked: PieceRange | undefined,
  label: string,
): { data: Buffer[]; crc32c: number } {
  let length = 0;
  let crc = 0;
  for (const part of data) {
    length += part.length;
    crc = crc32c(part, crc);
  }
  if (length !== header.dataLengthBytes || crc !== header.crc32c) {
    throw new MosaicError(
      "MOSAIC_ERR_CHUNK_CORRUPT",
      `${label}: received ${length} bytes crc 0x${crc.toString(16)}, ` +
        `announced ${header.dataLengthBytes} crc 0x${header.crc32c.toString(16)}`,
    );
  }
  if (header.range !== undefined) {
    if (asked === undefined || header.range.offset !== asked.offset || header.range.length !== asked.length) {
      throw new MosaicError(
        "MOSAIC_ERR_INTERNAL",
        `${label}: sent bytes ${describeRange(header.range)}, asked ${asked === undefined ? "the whole piece" : describeRange(asked)}`,
      );
    }
    return { data: [...data], crc32c: crc };
  }
  if (asked === undefined) return { data: [...data], crc32c: crc };
  if (asked.offset + asked.length > length) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `${label}: bytes ${describeRange(asked)} asked of a piece of ${length} bytes`,
    );
  }
  // A holder that does not know ranges sent it all: the part's crc32c is read from the part.
  const part = sliceParts(data, asked.offset, asked.length);
  return { data: part, crc32c: part.reduce((c, b) => crc32c(b, c), 0) };
}

function describeRange(range: PieceRange): string {
  return `[${range.offset}, ${range.offset + range.length})`;
}

/** `length` bytes from `offset` of the buffers taken back to back, as views (no copy). */
export function sliceParts(parts: readonly Buffer[], offset: number, length: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = offset;
  let left = length;
  for (const part of parts) {
    if (left === 0) break;
    if (skip >= part.length) {
      skip -= part.length;
      continue;
    }
    const take = Math.min(part.length - skip, left);
    out.push(skip === 0 && take === part.length ? part : part.subarray(skip, skip + take));
    skip = 0;
    left -= take;
  }
  return out;
}
