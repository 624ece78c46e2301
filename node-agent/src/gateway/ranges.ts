// Which bytes a GET answers with, pure. `range-parser` reads the header.
// - No Range, a unit other than bytes, or an If-Range that no longer holds:
//   the whole file (200).
// - One satisfiable range: 206 with Content-Range.
// - Several ranges: one 206 spanning from the first byte asked to the last
//   (RFC 9110 lets a server coalesce; players never ask for several, and a
//   multipart/byteranges body would buy nothing here).
// - Ranges none of which fits the file, or a malformed bytes range: 416
//   with Content-Range: bytes */<size>.
import parseRange from "range-parser";
import { HttpError } from "./http-errors.ts";

export type ByteSelection =
  | { kind: "whole" }
  /** Inclusive last byte, as Content-Range writes it. */
  | { kind: "partial"; start: number; last: number };

export function selectBytes(
  rangeHeader: string | undefined,
  sizeBytes: number,
  ifRangeHolds: boolean,
): ByteSelection {
  if (rangeHeader === undefined || !ifRangeHolds) return { kind: "whole" };
  const unit = rangeHeader.slice(0, rangeHeader.indexOf("=")).trim().toLowerCase();
  if (rangeHeader.includes("=") && unit !== "bytes") return { kind: "whole" }; // RFC 9110: ignore unknown units
  const ranges = parseRange(sizeBytes, longSuffixesAsWhole(rangeHeader, sizeBytes), { combine: true });
  if (ranges === -1 || ranges === -2) {
    const why = ranges === -2 ? "is malformed" : `asks for no byte of the ${sizeBytes} there are`;
    throw new HttpError(416, "MOSAIC_ERR_BAD_REQUEST", `Range ${JSON.stringify(rangeHeader)} ${why}`, {
      "content-range": `bytes */${sizeBytes}`,
    });
  }
  const start = Math.min(...ranges.map((r) => r.start));
  const last = Math.max(...ranges.map((r) => r.end));
  return { kind: "partial", start, last };
}

export function contentRange(
  selection: Extract<ByteSelection, { kind: "partial" }>,
  sizeBytes: number,
): string {
  return `bytes ${selection.start}-${selection.last}/${sizeBytes}`;
}

/**
 * RFC 9110 §14.1.2: a suffix longer than the file means the whole file;
 * range-parser would call it unsatisfiable, so such a suffix is shortened
 * to the file's size first.
 */
function longSuffixesAsWhole(header: string, sizeBytes: number): string {
  const eq = header.indexOf("=");
  if (eq < 0 || sizeBytes === 0) return header;
  const specs = header
    .slice(eq + 1)
    .split(",")
    .map((spec) => {
      const suffix = /^\s*-(\d+)\s*$/.exec(spec);
      return suffix !== null && Number(suffix[1]) > sizeBytes ? `-${sizeBytes}` : spec;
    });
  return `${header.slice(0, eq + 1)}${specs.join(",")}`;
}
