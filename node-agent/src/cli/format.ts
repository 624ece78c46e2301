// Text for people: sizes, rates, durations, times and aligned tables. Pure.
import { formatBytes } from "../storage/format-bytes.ts";

export { formatBytes };

/** Decimal megabytes per second, the unit disks and networks are quoted in. */
export function formatRate(bytes: number, elapsedMs: number): string {
  const mbps = bytes / 1e6 / Math.max(elapsedMs / 1000, 1e-6);
  return `${mbps < 10 ? mbps.toFixed(1) : Math.round(mbps)} MB/s`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** "2026-05-01 14:03:22" in local time: sortable and short. */
export function formatTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** "256MiB": a size fit for a file name. */
export function compactBytes(bytes: number): string {
  return formatBytes(bytes).replace(" ", "");
}

/** Numbers and sizes ("12", "1.5 GiB") line up on the right. */
const NUMERIC = /^[\d.,]*( (B|KiB|MiB|GiB|TiB|PiB))?$/;

/**
 * Rows under a header, columns padded to their widest cell; columns whose
 * cells are all numbers or sizes (or empty) are right-aligned.
 */
export function table(header: string[], rows: string[][], indent = ""): string[] {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)));
  const numeric = header.map((_, c) => rows.length > 0 && rows.every((r) => NUMERIC.test(r[c] ?? "")));
  return all.map((row) =>
    (
      indent +
      header
        .map((_, c) => {
          const cell = row[c] ?? "";
          const width = widths[c] as number;
          return numeric[c] ? cell.padStart(width) : cell.padEnd(width);
        })
        .join("  ")
    ).trimEnd(),
  );
}
