// The agent's load as seed 002's three levels, from how busy its event loop
// was over the last sample (every request, heartbeat and stream passes
// through it). Two thresholds per step with a gap between up and down
// (hysteresis), so a load sitting on a threshold does not flap the level and
// the ClusterNode is not rewritten for noise. Pure.
export type LoadLevel = "Low" | "Medium" | "High";

export interface LoadThresholds {
  /** Utilization (0..1) at which Low becomes Medium, and below which Medium falls back to Low. */
  mediumAbove: number;
  mediumBelow: number;
  highAbove: number;
  highBelow: number;
}

export const DEFAULT_LOAD_THRESHOLDS: LoadThresholds = {
  mediumAbove: 0.5,
  mediumBelow: 0.35,
  highAbove: 0.85,
  highBelow: 0.7,
};

export function nextLoadLevel(
  current: LoadLevel,
  utilization: number,
  t: LoadThresholds = DEFAULT_LOAD_THRESHOLDS,
): LoadLevel {
  if (utilization >= t.highAbove) return "High";
  if (current === "High" && utilization >= t.highBelow) return "High";
  if (utilization >= t.mediumAbove) return "Medium";
  if (current !== "Low" && utilization >= t.mediumBelow) return "Medium";
  return "Low";
}
