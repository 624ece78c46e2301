// The failover settings an agent takes on the command line, shared by
// `mosaic agent` (one agent) and `mosaic up` (every agent of a local
// cluster), so both say the same thing and parse it the same way.
import { type Command, InvalidArgumentError, Option } from "commander";
import { REBUILD_RATE_DEFAULT_BYTES_PER_SECOND } from "../data/rebuild.ts";
import {
  CHANNEL_DOWN_MAX_MS,
  defaultDetectorConfig,
  detectorConfigFor,
  HEARTBEAT_INTERVAL_MAX_MS,
  type HeartbeatTimings,
  OUT_GRACE_DEFAULT_MS,
} from "../membership/config.ts";
import { parseDuration, parseSize } from "./parse.ts";

/** When a node that is down counts as gone, and how fast its pieces are rebuilt elsewhere. */
export interface FailoverSettings extends Partial<HeartbeatTimings> {
  outGraceMs: number;
  rebuildRateBytesPerSecond: number;
}

const DETECTOR_DEFAULTS = defaultDetectorConfig(1);

export function heartbeatIntervalOption(whose: string): Option {
  return new Option(
    "--heartbeat-interval <duration>",
    `how often ${whose} sends a heartbeat to each peer it is watched by, on each channel (e.g. 20ms, 100ms)`,
  )
    .argParser((text) => withinMs(text, HEARTBEAT_INTERVAL_MAX_MS))
    .default(DETECTOR_DEFAULTS.heartbeatIntervalMs, `${DETECTOR_DEFAULTS.heartbeatIntervalMs}ms`);
}

export function channelDownOption(whose: string): Option {
  return new Option(
    "--channel-down <duration>",
    `silence after which ${whose} takes a peer's channel as down and moves its traffic to the other ` +
      "channel; a peer silent on both for 3 times this is down (e.g. 150ms, 1s)",
  )
    .argParser((text) => withinMs(text, CHANNEL_DOWN_MAX_MS))
    .default(DETECTOR_DEFAULTS.downAfterMs, `${DETECTOR_DEFAULTS.downAfterMs}ms`);
}

function withinMs(text: string, maxMs: number): number {
  const ms = parseDuration(text);
  if (ms > maxMs) throw new InvalidArgumentError(`${JSON.stringify(text)} is longer than ${maxMs / 1000}s`);
  return ms;
}

/** The two heartbeat flags as timings; a pair that cannot work together is a usage error (exit 2). */
export function heartbeatFlags(
  flags: { heartbeatInterval: number; channelDown: number },
  cmd: Command,
): HeartbeatTimings {
  const timings = { heartbeatIntervalMs: flags.heartbeatInterval, channelDownMs: flags.channelDown };
  try {
    detectorConfigFor(timings);
  } catch (error) {
    cmd.error(`error: ${(error as Error).message}`);
  }
  return timings;
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
  const args = [
    "--out-grace",
    `${flags.outGraceMs}ms`,
    "--rebuild-rate",
    String(flags.rebuildRateBytesPerSecond),
  ];
  if (flags.heartbeatIntervalMs !== undefined)
    args.push("--heartbeat-interval", `${flags.heartbeatIntervalMs}ms`);
  if (flags.channelDownMs !== undefined) args.push("--channel-down", `${flags.channelDownMs}ms`);
  return args;
}
