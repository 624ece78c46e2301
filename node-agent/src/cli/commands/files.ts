// `mosaic ls`, `mosaic stat` and `mosaic rm`: what a volume holds, where a
// file's pieces are and whether they are all there, and deleting a file.
import type { FileManifest } from "../../core/manifest.ts";
import type { PieceState } from "../../data/file-service.ts";
import { describeLayout } from "../check.ts";
import { oneLine } from "../failure.ts";
import { formatBytes, formatTime, table } from "../format.ts";
import { fileHealth, pieceKind, piecesByNode } from "../health.ts";
import { parseFileRef, parseVolume } from "../parse.ts";
import { printJson, printLine, withAgent } from "../session.ts";
import type { TargetOptions } from "../target.ts";

export interface OutputOptions extends TargetOptions {
  json?: boolean;
}

/** Non-ok pieces listed one by one before the list is cut short (unless --pieces). */
const PROBLEMS_SHOWN = 20;

export async function ls(
  volumeArg: string,
  prefix: string | undefined,
  options: OutputOptions,
): Promise<void> {
  const volume = parseVolume(volumeArg);
  const files = await withAgent(options, ({ client }) => client.list(volume, prefix));
  if (options.json) return printJson(files);
  if (files.length === 0) {
    printLine(`no files in ${volume}${prefix === undefined ? "" : ` under ${JSON.stringify(prefix)}`}`);
    return;
  }
  const rows = files.map((f) => [
    f.name,
    formatBytes(f.sizeBytes),
    String(f.version),
    formatTime(f.createdAt),
  ]);
  for (const line of table(["name", "size", "version", "modified"], rows)) printLine(line);
  const total = files.reduce((sum, f) => sum + f.sizeBytes, 0);
  printLine(`${files.length} file${files.length === 1 ? "" : "s"}, ${formatBytes(total)}`);
}

export async function statFile(ref: string, options: OutputOptions & { pieces?: boolean }): Promise<void> {
  const { volume, name } = parseFileRef(ref);
  const { manifest, pieces } = await withAgent(options, ({ client }) => client.stat(volume, name));
  const health = fileHealth(manifest, pieces);
  if (options.json) {
    const { line: _line, ...verdict } = health;
    return printJson({ manifest, health: { ...verdict, summary: health.line }, pieces });
  }
  for (const line of describeManifest(manifest)) printLine(line);
  printLine(`health    ${health.line}`);
  printLine();
  const rows = piecesByNode(manifest, pieces).map((n) => {
    const kinds =
      "replicas" in manifest.redundancy
        ? [String(n.kinds.replica)]
        : [String(n.kinds.data), String(n.kinds.parity)];
    return [
      n.node,
      ...kinds,
      String(n.states.ok),
      String(n.states.missing),
      String(n.states.unreachable),
      String(n.states.corrupt),
    ];
  });
  const kindHeader = "replicas" in manifest.redundancy ? ["copies"] : ["data", "parity"];
  for (const line of table(["node", ...kindHeader, "ok", "missing", "unreachable", "corrupt"], rows))
    printLine(line);
  const shown = options.pieces ? pieces : pieces.filter((p) => p.state !== "ok");
  if (shown.length === 0) return;
  printLine();
  for (const line of pieceLines(manifest, shown, options.pieces ? Infinity : PROBLEMS_SHOWN)) printLine(line);
}

export async function rm(ref: string, options: TargetOptions): Promise<void> {
  const { volume, name } = parseFileRef(ref);
  const tombstone = await withAgent(options, ({ client }) => client.delete(volume, name));
  printLine(`removed ${volume}/${name} (version ${tombstone.version})`);
}

function describeManifest(m: FileManifest): string[] {
  return [
    `${m.volume}/${m.name}`,
    `size      ${formatBytes(m.sizeBytes)} (${m.sizeBytes} bytes)`,
    `version   ${m.version}, written ${formatTime(m.createdAt)} by ${m.writer}`,
    `layout    ${describeLayout(m)}`,
    `crc32c    ${m.crc32c.toString(16).padStart(8, "0")}`,
  ];
}

function pieceLines(manifest: FileManifest, pieces: PieceState[], limit: number): string[] {
  const rows = pieces
    .slice(0, limit)
    .map((p) => [
      String(p.stripe),
      String(p.slot),
      pieceKind(manifest, p.slot),
      p.node,
      p.state,
      oneLine(p.detail ?? ""),
    ]);
  const lines = table(["stripe", "slot", "kind", "node", "state", "detail"], rows);
  if (pieces.length > limit) lines.push(`… and ${pieces.length - limit} more (all of them: --pieces)`);
  return lines;
}
