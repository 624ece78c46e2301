// One root logger per process; every component takes a child of it so each
// line says which node and which component it came from.
import { type Logger, pino } from "pino";

export type { Logger } from "pino";

export interface LogOptions {
  /** Node id, added to every line. */
  node?: string;
  level?: string;
  /** Human-readable output; default: when stderr is a terminal. */
  pretty?: boolean;
}

export function createRootLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? process.env.MOSAIC_LOG_LEVEL ?? "info";
  const pretty = options.pretty ?? (process.env.MOSAIC_LOG_PRETTY === "1" || process.stderr.isTTY === true);
  const base = options.node === undefined ? {} : { node: options.node };
  const redact = { paths: ["*.token", "*.secret", "*.password", "*.key"], censor: "[redacted]" };
  if (pretty) {
    return pino({
      level,
      base,
      redact,
      transport: { target: "pino-pretty", options: { destination: 2, translateTime: "HH:MM:ss.l" } },
    });
  }
  return pino({ level, base, redact }, pino.destination({ dest: 2, sync: false }));
}

export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
