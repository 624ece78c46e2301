// `mosaic get <volume>/<name> [local-file|-]`: stream a file out of the
// cluster. On disk it lands in a temp file beside the target, renamed into
// place only once every byte has arrived and checked, so a failed or
// interrupted get leaves no partial file.
import { createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { formatBytes, formatDuration, formatRate } from "../format.ts";
import { parseFileRef } from "../parse.ts";
import { counted, progressMode, startProgress } from "../progress.ts";
import { withAgent } from "../session.ts";
import type { TargetOptions } from "../target.ts";

export async function get(
  source: string,
  destination: string | undefined,
  target: TargetOptions,
): Promise<void> {
  const { volume, name } = parseFileRef(source);
  const toStdout = destination === "-";
  const path = toStdout ? "-" : await localPath(destination, name);
  await withAgent(target, async ({ client }) => {
    const { manifest, body } = await client.get(volume, name);
    const progress = startProgress(
      `get ${volume}/${name}`,
      manifest.sizeBytes,
      process.stderr,
      progressMode(process.stderr, "none"),
    );
    const started = performance.now();
    try {
      if (toStdout) await toStdoutQuietly(counted(body, progress));
      else await toFileAtomically(counted(body, progress), path);
    } finally {
      progress.stop();
    }
    const ms = performance.now() - started;
    // With the data on stdout, the summary goes to stderr.
    (toStdout ? process.stderr : process.stdout).write(
      `get ${volume}/${name} → ${path}: ${formatBytes(manifest.sizeBytes)} in ${formatDuration(ms)} ` +
        `(${formatRate(manifest.sizeBytes, ms)}), version ${manifest.version}\n`,
    );
  });
}

/** The target's path: the name's basename by default, or inside a directory given as target. */
async function localPath(destination: string | undefined, name: string): Promise<string> {
  const fallback = basename(name);
  if (destination === undefined) return fallback;
  const info = await stat(destination).catch(() => undefined);
  return info?.isDirectory() ? join(destination, fallback) : destination;
}

async function toFileAtomically(body: AsyncIterable<Buffer>, path: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.mosaic-${process.pid}.part`);
  const removeTemp = () => rm(temp, { force: true });
  // Ctrl-C mid-transfer: remove the temp file, then die of the signal as usual.
  const onSignal = (signal: NodeJS.Signals) => {
    removeTemp().finally(() => process.kill(process.pid, signal));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await pipeline(body, createWriteStream(temp, { flags: "wx", flush: true }));
    await rename(temp, path);
  } catch (error) {
    await removeTemp();
    throw error;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** A reader that stops early (`| head`) is not an error. */
async function toStdoutQuietly(body: AsyncIterable<Buffer>): Promise<void> {
  try {
    await pipeline(body, process.stdout, { end: false });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPIPE") throw error;
  }
}
