// Timings of failure detection. Every duration counts from the injected clock
// (nowMs passed in), never from a real timer, so the simulator and production
// run the same code.
import { MosaicError } from "../errors.ts";

export interface DetectorConfig {
  /** k: heartbeats a path may lose in a row without any suspicion. Also: each node is watched by k+1 observers. */
  toleratedLosses: number;
  /** How often a node sends a heartbeat to each successor, on each channel. */
  heartbeatIntervalMs: number;
  /** Silence on a channel after which it is suspect (still used: suspicion alone moves no traffic). */
  suspectAfterMs: number;
  /** Silence on a channel after which it is down and its peer's traffic moves to the other channel. */
  downAfterMs: number;
  /** Silence on both channels after which the node is down (a membership matter, so slower than a NIC). */
  nodeDownAfterMs: number;
  /** How long a returning channel must stay steady before traffic goes back to it (no flapping). */
  holdDownMs: number;
  /** Period at which the driver calls tick(): detection may lag a deadline by up to one tick. */
  tickMs: number;
  /**
   * How often a watcher repeats its channel news while a watched peer has one
   * channel unusable (news-announcer.ts). Only then: a healthy cluster sends none.
   */
  newsRefreshMs: number;
}

/** Issue 4's budget: a channel is down ≤ 300 ms after its last heartbeat, a node ≤ 1 s. */
export const CHANNEL_DOWN_BUDGET_MS = 300;
export const NODE_DOWN_BUDGET_MS = 1_000;

/**
 * Defaults inside the budget for k tolerated losses: the heartbeat interval shrinks
 * as k grows so that k lost heartbeats still fit before suspicion at 150 ms.
 */
export function defaultDetectorConfig(toleratedLosses = 1): DetectorConfig {
  return validateDetectorConfig({
    toleratedLosses,
    heartbeatIntervalMs: Math.floor(150 / (toleratedLosses + 2)),
    suspectAfterMs: 150,
    downAfterMs: 250,
    nodeDownAfterMs: 750,
    holdDownMs: 1_000,
    tickMs: 10,
    newsRefreshMs: 1_000,
  });
}

/** The two detector timings an operator sets: `--heartbeat-interval`, `--channel-down`, the chart's `heartbeat`. */
export interface HeartbeatTimings {
  heartbeatIntervalMs: number;
  /** Silence on a channel after which it is down and traffic moves to the other (downAfterMs). */
  channelDownMs: number;
}

export const HEARTBEAT_INTERVAL_MAX_MS = 10_000;
export const CHANNEL_DOWN_MAX_MS = 60_000;

/**
 * The detector for an operator's timings, the rest kept in the defaults'
 * proportions to the channel-down time (suspect at 60 % of it, node down at
 * 3×, a returning channel held 4×), so one number moves detection as a whole.
 * Unset timings keep the defaults: `detectorConfigFor({})` is
 * `defaultDetectorConfig(k)`. Errors name the settings, not the fields.
 */
export function detectorConfigFor(timings: Partial<HeartbeatTimings>, toleratedLosses = 1): DetectorConfig {
  const base = defaultDetectorConfig(toleratedLosses);
  const interval = timings.heartbeatIntervalMs ?? base.heartbeatIntervalMs;
  const down = timings.channelDownMs ?? base.downAfterMs;
  const refuse = (why: string) => new MosaicError("MOSAIC_ERR_BAD_REQUEST", `heartbeat settings: ${why}`);
  if (!Number.isSafeInteger(interval) || interval < 1 || interval > HEARTBEAT_INTERVAL_MAX_MS)
    throw refuse(`the heartbeat interval must be 1 to ${HEARTBEAT_INTERVAL_MAX_MS} ms, got ${interval}`);
  if (!Number.isSafeInteger(down) || down < 1 || down > CHANNEL_DOWN_MAX_MS)
    throw refuse(`the channel-down time must be 1 to ${CHANNEL_DOWN_MAX_MS} ms, got ${down}`);
  // k heartbeats lost in a row leave k+1 intervals of silence, seen up to a tick late: that
  // alone must not raise suspicion, and a channel is suspect before it is down.
  const quietMs = (toleratedLosses + 1) * interval + base.tickMs;
  const suspectMs = Math.max(quietMs + 1, Math.round(down * 0.6));
  if (down <= suspectMs)
    throw refuse(
      `a channel-down time of ${down} ms is too short for a ${interval} ms heartbeat interval: ` +
        `${toleratedLosses + 1} heartbeats in a row may be lost (${quietMs} ms of silence with the ${base.tickMs} ms tick), ` +
        `so a channel can be down no sooner than ${quietMs + 2} ms; lengthen it or shorten the interval`,
    );
  return validateDetectorConfig({
    ...base,
    heartbeatIntervalMs: interval,
    suspectAfterMs: suspectMs,
    downAfterMs: down,
    nodeDownAfterMs: 3 * down,
    holdDownMs: 4 * down,
    newsRefreshMs: Math.max(base.newsRefreshMs, interval),
  });
}

function bad(field: string, why: string): MosaicError {
  return new MosaicError("MOSAIC_ERR_BAD_REQUEST", `detector config: ${field} ${why}`);
}

function positiveInt(config: DetectorConfig, field: keyof DetectorConfig, min: number): void {
  const v = config[field];
  if (!Number.isSafeInteger(v) || v < min) throw bad(field, `must be an integer ≥ ${min}, got ${v}`);
}

export function validateDetectorConfig(config: DetectorConfig): DetectorConfig {
  positiveInt(config, "toleratedLosses", 0);
  for (const f of ["heartbeatIntervalMs", "suspectAfterMs", "downAfterMs", "nodeDownAfterMs"] as const)
    positiveInt(config, f, 1);
  positiveInt(config, "holdDownMs", 0);
  positiveInt(config, "tickMs", 1);
  positiveInt(config, "newsRefreshMs", 1);
  const lossWindowMs = (config.toleratedLosses + 1) * config.heartbeatIntervalMs;
  // k losses in a row leave a gap of (k+1) intervals; that gap alone must not raise suspicion.
  if (config.suspectAfterMs <= lossWindowMs + config.tickMs)
    throw bad(
      "suspectAfterMs",
      `must exceed (k+1)·heartbeatIntervalMs + tickMs = ${lossWindowMs + config.tickMs}`,
    );
  if (config.downAfterMs <= config.suspectAfterMs) throw bad("downAfterMs", "must exceed suspectAfterMs");
  if (config.nodeDownAfterMs < config.downAfterMs) throw bad("nodeDownAfterMs", "must be ≥ downAfterMs");
  // Refreshes repeat what copies (one heartbeat interval apart) already said: never more often than those.
  if (config.newsRefreshMs < config.heartbeatIntervalMs)
    throw bad("newsRefreshMs", "must be ≥ heartbeatIntervalMs");
  return config;
}

/**
 * How long a receiver keeps a watcher's channel news without a copy or
 * refresh (news-board.ts): k refreshes may be lost in a row, and
 * suspectAfterMs covers delay and ticking, as it does for heartbeats.
 */
export function newsLeaseMs(config: DetectorConfig): number {
  return (config.toleratedLosses + 1) * config.newsRefreshMs + config.suspectAfterMs;
}

/** Timings of membership agreement (agreement.ts), on the same injected clock as detection. */
export interface AgreementConfig {
  /** How long a node stays down in the map before it is declared out and its pieces are placed elsewhere. */
  outGraceMs: number;
  /** Least time between two map datagrams to one peer that holds another map: repair, never a flood. */
  mapPushIntervalMs: number;
  /**
   * Every this many heartbeat rounds, one extra heartbeat goes to the next
   * node of the whole map in turn (down and out ones too): a map that differs
   * anywhere is found even where the rings of two maps do not meet. A
   * backstop (the majority rule makes rings meet; 3,000 simulated schedules
   * converge without probes), so rare: 20 adds 1/(20·(k+1)) to the heartbeat
   * traffic (2.5 % at k = 1), whatever the cluster's size.
   */
  probeEveryRounds: number;
}

/** Production grace: long enough for a reboot or a rescheduled pod, short beside Ceph's 10 min down-out. */
export const OUT_GRACE_DEFAULT_MS = 30_000;

export function defaultAgreementConfig(outGraceMs = OUT_GRACE_DEFAULT_MS): AgreementConfig {
  return validateAgreementConfig({ outGraceMs, mapPushIntervalMs: 100, probeEveryRounds: 20 });
}

export function validateAgreementConfig(config: AgreementConfig): AgreementConfig {
  for (const field of ["outGraceMs", "mapPushIntervalMs", "probeEveryRounds"] as const) {
    const v = config[field];
    if (!Number.isSafeInteger(v) || v < 1)
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `agreement config: ${field} must be an integer ≥ 1, got ${v}`,
      );
  }
  return config;
}
