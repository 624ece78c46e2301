// The failover settings an agent takes on the command line, shared by
// `mosaic agent` (one agent) and `mosaic up` (every agent of a local
// cluster), so both say the same thing and parse it the same way.
import { Option } from "commander";
import { OUT_GRACE_DEFAULT_MS } from "../membership/config.ts";
import { parseDuration, parseSize } from "./parse.ts";

/** The agent's own default (agent.ts), repeated here to show it in --help. */
export const REBUILD_RATE_DEFAULT_BYTES_PER_SECOND = 64 * 2 ** 20;

/** When a node that is down counts as gone, and how fast its pieces are rebuilt elsewhere. */
export interface FailoverSettings {
  outGraceMs: number;
  rebuildRateBytesPerSecond: number;
}

export function outGraceOption(whose: string): Option {
  return new Option(
    "--out-grace <duration>",
    `how long ${whose} node stays down in the agreed map before it is out and its pieces are rebuilt ` +
      "on other nodes (e.g. 500ms, 2s, 5m)",
  )
    .argParser(parseDuration)
    .default(OUT_GRACE_DEFAULT_MS, `${OUT_GRACE_DEFAULT_MS / 1000}s`);
}

export function rebuildRateOption(whose: string): Option {
  return new Option(
    "--rebuild-rate <bytes/s>",
    `bytes per second of pieces ${whose} rebuilds (pieces placement moved to it); ` +
      "0 turns the rebuild off, leaving a departed node's pieces missing until it returns",
  )
    .argParser(parseSize)
    .default(REBUILD_RATE_DEFAULT_BYTES_PER_SECOND, "64MiB");
}

/** The flags as `mosaic agent` arguments, for a process that starts agents. */
export function failoverArgs(flags: FailoverSettings): string[] {
  return ["--out-grace", `${flags.outGraceMs}ms`, "--rebuild-rate", String(flags.rebuildRateBytesPerSecond)];
}
