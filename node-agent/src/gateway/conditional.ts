// Conditional GET and HEAD (RFC 9110 §13.2.2), pure: If-Match, then
// If-Unmodified-Since (412 when false), then If-None-Match, then
// If-Modified-Since (304 when the client's copy is current; `fresh` does
// these two, weak comparison, and honours Cache-Control: no-cache). If-Range
// is decided with the range (ranges.ts). PUT and DELETE ignore conditions:
// checking one apart from the write could not make it atomic.
import fresh from "fresh";
import type { Representation } from "./representation.ts";

export type Precondition = "proceed" | "not-modified" | "failed";

type Headers = Record<string, string | string[] | undefined>;

export function evaluatePreconditions(headers: Headers, r: Representation): Precondition {
  const ifMatch = header(headers, "if-match");
  if (ifMatch !== undefined) {
    if (!strongMatch(ifMatch, r.etag)) return "failed";
  } else {
    const since = httpDate(header(headers, "if-unmodified-since"));
    if (since !== undefined && r.lastModifiedMs > since) return "failed";
  }
  const response = { etag: r.etag, "last-modified": new Date(r.lastModifiedMs).toUTCString() };
  return fresh(headers, response) ? "not-modified" : "proceed";
}

/** Whether an If-Range validator still names this representation: only then is the Range honoured. */
export function ifRangeHolds(value: string | string[] | undefined, r: Representation): boolean {
  if (value === undefined) return true;
  if (Array.isArray(value)) return false; // more than one validator names nothing: send the whole file
  const v = value.trim();
  if (v.startsWith('"') || v.startsWith("W/")) return v === r.etag; // strong comparison: a weak tag never matches
  const date = httpDate(v);
  return date !== undefined && date === r.lastModifiedMs;
}

/** Strong comparison of a list of entity tags (or '*') against ours. */
function strongMatch(list: string, etag: string): boolean {
  return list.split(",").some((tag) => {
    const t = tag.trim();
    return t === "*" || t === etag;
  });
}

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

function httpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}
