// `mosaic put <local-file|-> <volume>/<name>`: stream a local file (or
// stdin) into the cluster, announcing its size when known.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { formatBytes, formatDuration, formatRate } from "../format.ts";
import { parseFileRef } from "../parse.ts";
import { counted, progressMode, startProgress } from "../progress.ts";
import { printLine, withAgent } from "../session.ts";
import type { TargetOptions } from "../target.ts";

const READ_BUFFER_BYTES = 1024 * 1024;

export async function put(source: string, destination: string, target: TargetOptions): Promise<void> {
  const { volume, name } = parseFileRef(destination);
  // A missing or unreadable local file is reported before the cluster is asked anything.
  const sizeBytes = source === "-" ? undefined : await regularFileSize(source);
  await withAgent(target, async ({ client }) => {
    const input =
      source === "-" ? process.stdin : createReadStream(source, { highWaterMark: READ_BUFFER_BYTES });
    const progress = startProgress(
      `put ${volume}/${name}`,
      sizeBytes,
      process.stderr,
      progressMode(process.stderr, "none"),
    );
    const started = performance.now();
    try {
      const manifest = await client.put(volume, name, counted(input, progress), sizeBytes);
      progress.stop();
      const ms = performance.now() - started;
      printLine(
        `put ${volume}/${name}: ${formatBytes(manifest.sizeBytes)} in ${formatDuration(ms)} ` +
          `(${formatRate(manifest.sizeBytes, ms)}), version ${manifest.version}`,
      );
    } finally {
      progress.stop();
      if (input !== process.stdin) input.destroy();
    }
  });
}

async function regularFileSize(path: string): Promise<number> {
  const info = await stat(path);
  if (info.isDirectory()) throw Object.assign(new Error(`${path} is a directory`), { code: "EISDIR", path });
  return info.size;
}
