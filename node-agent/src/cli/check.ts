// The proof that a fresh local cluster works: stream a generated media file
// into it, read it back and compare every byte with a fresh generation of
// the same stream, then show where its pieces went. Neither side ever holds
// the whole file.
import type { Writable } from "node:stream";
import type { AgentClient } from "../client/agent-client.ts";
import type { FileManifest } from "../core/manifest.ts";
import { describeRedundancy } from "../core/volume.ts";
import { compactBytes, formatBytes, formatDuration, formatRate, table } from "./format.ts";
import { fileHealth, piecesByNode } from "./health.ts";
import { mediaBytes, StreamVerifier } from "./media-stream.ts";
import { counted, type ProgressMode, startProgress } from "./progress.ts";

export interface CheckOptions {
  volume: string;
  sizeBytes: number;
  out: Writable;
  progress: ProgressMode;
  seed?: string;
  /** Aborting cancels the transfer in progress (its error is an AbortError). */
  signal?: AbortSignal;
}

export interface CheckResult {
  passed: boolean;
  name: string;
  nodesHoldingPieces: number;
}

export async function runCheck(client: AgentClient, options: CheckOptions): Promise<CheckResult> {
  const { volume, sizeBytes, out } = options;
  const name = `demo/sample-${compactBytes(sizeBytes)}.bin`;
  const seed = options.seed ?? name;
  const print = (line = "") => out.write(`${line}\n`);

  print(`check: writing ${formatBytes(sizeBytes)} of generated media to ${volume}/${name}`);
  const written = await timed(async () => {
    const progress = startProgress("write", sizeBytes, out, options.progress);
    try {
      const source = abortable(mediaBytes(sizeBytes, seed), options.signal);
      return await client.put(volume, name, counted(source, progress), sizeBytes);
    } finally {
      progress.stop();
    }
  });
  print(
    `wrote ${formatBytes(sizeBytes)} in ${formatDuration(written.ms)}: ${formatRate(sizeBytes, written.ms)}` +
      ` (version ${written.value.version}, coordinated by ${written.value.writer})`,
  );

  const read = await timed(() => readAndVerify(client, volume, name, sizeBytes, seed, options));
  const mismatch = read.value;
  if (mismatch !== undefined) {
    print(`read back: MISMATCH at byte ${mismatch.offsetBytes} (${mismatch.why})`);
  } else {
    print(
      `read ${formatBytes(sizeBytes)} in ${formatDuration(read.ms)}: ${formatRate(sizeBytes, read.ms)};` +
        ` verified byte for byte: identical`,
    );
  }

  const { manifest, pieces } = await client.stat(volume, name);
  const nodes = piecesByNode(manifest, pieces);
  const health = fileHealth(manifest, pieces);
  print(
    `pieces: ${pieces.length} on ${nodes.length} node${nodes.length === 1 ? "" : "s"} ` +
      `(${describeLayout(manifest)}); ${health.line}`,
  );
  for (const line of pieceTable(manifest, nodes)) print(line);
  const passed = mismatch === undefined && health.verdict === "healthy";
  print(passed ? "check passed" : "check FAILED");
  return { passed, name, nodesHoldingPieces: nodes.length };
}

async function readAndVerify(
  client: AgentClient,
  volume: string,
  name: string,
  sizeBytes: number,
  seed: string,
  options: CheckOptions,
) {
  const verifier = new StreamVerifier(mediaBytes(sizeBytes, seed));
  const { body } = await client.get(volume, name);
  const progress = startProgress("read ", sizeBytes, options.out, options.progress);
  try {
    for await (const part of counted(body, progress)) {
      options.signal?.throwIfAborted();
      if (!verifier.push(part)) break;
    }
  } finally {
    progress.stop();
  }
  return verifier.finish();
}

export function describeLayout(manifest: FileManifest): string {
  return (
    `${describeRedundancy(manifest.redundancy)}, chunk ${formatBytes(manifest.chunkSizeBytes)}, ` +
    `${manifest.stripes} stripe${manifest.stripes === 1 ? "" : "s"}`
  );
}

/** Pieces per node by kind: data and parity for erasure, copies for replicas. */
export function pieceTable(manifest: FileManifest, nodes: ReturnType<typeof piecesByNode>): string[] {
  const replicas = "replicas" in manifest.redundancy;
  const header = replicas ? ["node", "copies"] : ["node", "data", "parity", "total"];
  const rows = nodes.map((n) =>
    replicas
      ? [n.node, String(n.kinds.replica)]
      : [n.node, String(n.kinds.data), String(n.kinds.parity), String(n.total)],
  );
  return table(header, rows, "  ");
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

/** The parts, until the signal aborts: then an AbortError, which makes the client cancel its call. */
async function* abortable(parts: Iterable<Buffer>, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
  for (const part of parts) {
    signal?.throwIfAborted();
    yield part;
  }
}
