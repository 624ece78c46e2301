// The gateway's URL shape, pure:
//   /v1/                         the volumes (JSON)
//   /v1/<volume>/                its files (JSON); ?prefix= narrows them
//   /v1/<volume>/<dir>/          its files under <dir>/ (and ?prefix= within)
//   /v1/<volume>/<name...>       one file: GET, HEAD, PUT, DELETE
// The raw target is split on '/' before any decoding, and each segment is
// decoded alone: a '..' or an empty segment, plain or percent-encoded, is
// refused with 400 instead of being resolved away the way a URL parser
// would: nothing climbs out of a volume or quietly names another file
// (names never reach the filesystem anyway: core/names.ts).
import { validateFileName } from "../core/names.ts";
import { VOLUME_NAME } from "../core/volume.ts";
import { HttpError } from "./http-errors.ts";

export const API_PREFIX = "/v1";

export type Route =
  | { kind: "volumes" }
  | { kind: "list"; volume: string; prefix: string }
  | { kind: "file"; volume: string; name: string };

/** Methods each kind of route answers; anything else is 405 with this list in Allow. */
export const ALLOWED_METHODS: Record<Route["kind"], readonly string[]> = {
  volumes: ["GET", "HEAD"],
  list: ["GET", "HEAD"],
  file: ["GET", "HEAD", "PUT", "DELETE"],
};

export function parseTarget(target: string): Route {
  const query = target.indexOf("?");
  const path = query < 0 ? target : target.slice(0, query);
  const params = new URLSearchParams(query < 0 ? "" : target.slice(query + 1));
  if (path !== API_PREFIX && !path.startsWith(`${API_PREFIX}/`)) {
    throw new HttpError(
      404,
      "MOSAIC_ERR_BAD_REQUEST",
      `no such endpoint ${JSON.stringify(path)}: try ${API_PREFIX}/<volume>/<name>`,
    );
  }
  const segments = path
    .slice(API_PREFIX.length + 1)
    .split("/")
    .map(decodeSegment);
  const [volume = "", ...rest] = segments;
  if (volume === "" && rest.length === 0) return { kind: "volumes" };
  if (!VOLUME_NAME.test(volume)) {
    throw new HttpError(
      400,
      "MOSAIC_ERR_BAD_NAME",
      `volume name ${JSON.stringify(volume)} must be a DNS label (lower-case letters, digits, '-')`,
    );
  }
  const prefix = params.get("prefix") ?? "";
  if (rest.length === 0 || (rest.length === 1 && rest[0] === "")) return { kind: "list", volume, prefix };
  if (rest.at(-1) === "") {
    // A directory: its path is checked as a name would be, so '..' is refused here too.
    const dir = validateFileName(rest.slice(0, -1).join("/"));
    return { kind: "list", volume, prefix: `${dir}/${prefix}` };
  }
  return { kind: "file", volume, name: validateFileName(rest.join("/")) };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(
      400,
      "MOSAIC_ERR_BAD_NAME",
      `path segment ${JSON.stringify(segment)} is not valid percent-encoded UTF-8`,
    );
  }
}

/** The path of a file's URL, each segment percent-encoded: the inverse of parseTarget. */
export function fileTarget(volume: string, name: string): string {
  return `${API_PREFIX}/${volume}/${name.split("/").map(encodeURIComponent).join("/")}`;
}
