// An agent's load as seed 002's three levels (§3.3). Three signals, each
// scaled so that 1 is "full" (the point where this node should get no more
// reads while another can take them), combine into one pressure: the worst
// of them, since any one of them saturated is enough to make reads wait.
// The level follows the pressure with two thresholds, each with a gap
// between going up and coming down (hysteresis), so a load sitting on a
// threshold does not flap the level: a flapping level would swing every
// reader's traffic back and forth and announce itself to every peer each
// time. Pure: the meter (meter.ts) measures, this decides.
import { MosaicError } from "../errors.ts";

export type LoadLevel = "Low" | "Medium" | "High";
export const LOAD_LEVELS: readonly LoadLevel[] = ["Low", "Medium", "High"];

/** What the meter measured over one sample. */
export interface LoadSignals {
  /** Event-loop utilisation, 0..1: the share of the sample the agent's one JavaScript thread was busy. */
  utilization: number;
  /** Calls being served (piece and file reads, writes), averaged over the sample. */
  inFlight: number;
  /** How late the event loop ran a timer that was due: the wait any new request would see first. */
  queueDelayMs: number;
}

export interface LoadConfig {
  /** Each signal's "full" value: pressure 1. */
  full: LoadSignals;
  /** Pressure at which Low becomes Medium, and below which Medium falls back to Low. */
  mediumAbove: number;
  mediumBelow: number;
  /** Pressure at which High is entered, and below which it is left. */
  highAbove: number;
  highBelow: number;
}

/**
 * A busy thread past 90 % already queues; 8 reads in flight on a 2-core node
 * or 50 ms of loop delay each mean a new read waits as long as it takes.
 * Medium from half of that. Back to Low only below a quarter: a Low holder
 * takes every read (seed 002), so one that turned Low while its Medium peers
 * share the load evenly would draw all of it at once and come straight back
 * up; with three holders sharing what made one of them Medium, each stays
 * above a quarter. High is left a quarter below where it is entered.
 */
export const DEFAULT_LOAD_CONFIG: LoadConfig = {
  full: { utilization: 0.9, inFlight: 8, queueDelayMs: 50 },
  mediumAbove: 0.5,
  mediumBelow: 0.25,
  highAbove: 1,
  highBelow: 0.75,
};

function refuse(why: string): MosaicError {
  return new MosaicError("MOSAIC_ERR_BAD_REQUEST", `load config: ${why}`);
}

/** The config, or a one-line error naming what is wrong with it. */
export function validateLoadConfig(config: LoadConfig): LoadConfig {
  for (const [name, v] of Object.entries(config.full))
    if (!(typeof v === "number" && Number.isFinite(v) && v > 0))
      throw refuse(`full.${name} must be a positive number, got ${v}`);
  const { mediumAbove, mediumBelow, highAbove, highBelow } = config;
  for (const [name, v] of Object.entries({ mediumAbove, mediumBelow, highAbove, highBelow }))
    if (!(typeof v === "number" && Number.isFinite(v) && v > 0))
      throw refuse(`${name} must be a positive number, got ${v}`);
  // Each way down strictly below its way up (else a level flaps), and Medium's band under High's.
  if (!(mediumBelow < mediumAbove)) throw refuse("mediumBelow must be below mediumAbove");
  if (!(highBelow < highAbove)) throw refuse("highBelow must be below highAbove");
  if (!(mediumAbove < highAbove)) throw refuse("mediumAbove must be below highAbove");
  if (!(mediumBelow < highBelow)) throw refuse("mediumBelow must be below highBelow");
  return config;
}

/** The worst signal, each as a fraction of its full value (NaN or negative readings count as 0). */
export function pressureOf(s: LoadSignals, config: LoadConfig = DEFAULT_LOAD_CONFIG): number {
  const part = (v: number, full: number) => (Number.isFinite(v) && v > 0 ? v / full : 0);
  return Math.max(
    part(s.utilization, config.full.utilization),
    part(s.inFlight, config.full.inFlight),
    part(s.queueDelayMs, config.full.queueDelayMs),
  );
}

/**
 * The level after a sample of `pressure` at level `current`: up at the
 * "above" thresholds, down only below the "below" ones, unchanged in
 * between; High falls to Medium or straight to Low, as the pressure says.
 */
export function nextLevel(
  current: LoadLevel,
  pressure: number,
  config: LoadConfig = DEFAULT_LOAD_CONFIG,
): LoadLevel {
  if (pressure >= config.highAbove) return "High";
  if (current === "High" && pressure >= config.highBelow) return "High";
  if (pressure >= config.mediumAbove) return "Medium";
  if (current !== "Low" && pressure >= config.mediumBelow) return "Medium";
  return "Low";
}

/** A level as one byte on the wire (0 Low, 1 Medium, 2 High). */
export function levelCode(level: LoadLevel): number {
  return LOAD_LEVELS.indexOf(level);
}

/** The level a byte stands for; undefined for any other byte. */
export function levelOfCode(code: number): LoadLevel | undefined {
  return LOAD_LEVELS[code];
}
