// Reading a file: fetch each stripe's data pieces in parallel, a few stripes
// ahead, and yield the bytes in order. A piece that is missing, corrupt,
// stale or on an unreachable node is routed around: the stripe is rebuilt
// from parity or read from another replica (a degraded read, logged with the
// reason). The whole file is never in memory; a stripe at a time is.
//
// A byte range (an HTTP Range request) reads only the stripes that cover it
// and, under erasure, only the data pieces of each stripe that hold its
// bytes: a player seeking in a large file costs what it asks for, not the
// file. Parity is fetched only when one of those pieces cannot be read.
import { crc32c } from "@node-rs/crc32";
import { placeFileStripe } from "../core/file-placement.ts";
import type { FileManifest } from "../core/manifest.ts";
import { pieceLengths, shardBytes, stripeRange } from "../core/stripes.ts";
import { layoutOf, type StripeLayout } from "../core/volume.ts";
import { ErasureCodec } from "../erasure/codec.ts";
import { MosaicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type ReadContext, reachableNode } from "./context.ts";

export interface ReadStats {
  degradedStripes: number;
  failedPieces: { stripe: number; slot: number; node: string; reason: string }[];
}

/** The whole file, checked end to end against the manifest's crc32c. */
export async function* readFile(
  ctx: ReadContext,
  manifest: FileManifest,
  stats?: ReadStats,
): AsyncGenerator<Buffer> {
  let crc = 0;
  for await (const part of readFileRange(ctx, manifest, 0, manifest.sizeBytes, stats)) {
    crc = crc32c(part, crc);
    yield part;
  }
  if (crc !== manifest.crc32c) {
    throw new MosaicError(
      "MOSAIC_ERR_CHUNK_CORRUPT",
      `${manifest.volume}/${manifest.name} v${manifest.version}: whole-file checksum 0x${crc.toString(16)} ` +
        `differs from the manifest's 0x${manifest.crc32c.toString(16)}`,
    );
  }
}

/**
 * The file's bytes [start, end), reading only the stripes (and data pieces)
 * that hold them. Every piece is checked by its own crc32c as it is read;
 * the whole-file checksum cannot be, so readFile is the one for whole files.
 */
export async function* readFileRange(
  ctx: ReadContext,
  manifest: FileManifest,
  start: number,
  end: number,
  stats?: ReadStats,
): AsyncGenerator<Buffer> {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end) {
    throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `byte range [${start}, ${end}) is not a range`);
  }
  if (end > manifest.sizeBytes) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `byte range [${start}, ${end}) ends past ${manifest.volume}/${manifest.name}'s ${manifest.sizeBytes} bytes`,
    );
  }
  if (start === end) return;
  const layout = layoutOf(manifest);
  const log = ctx.log.child({ component: "reader", volume: manifest.volume, file: manifest.name });
  const reader = new StripeReader(
    ctx,
    manifest,
    layout,
    log,
    stats ?? { degradedStripes: 0, failedPieces: [] },
  );
  const first = Math.floor(start / layout.stripeDataBytes);
  const last = Math.floor((end - 1) / layout.stripeDataBytes);
  const ahead: Promise<Buffer[]>[] = [];
  let next = first;
  try {
    while (next <= last || ahead.length > 0) {
      while (next <= last && ahead.length < ctx.stripesInFlight) {
        const stripeStart = next * layout.stripeDataBytes;
        const from = Math.max(start - stripeStart, 0);
        const to = Math.min(end - stripeStart, layout.stripeDataBytes);
        const p = reader.read(next++, from, to);
        p.catch(() => {}); // observed when awaited below; avoids an unhandled rejection meanwhile
        ahead.push(p);
      }
      yield* await (ahead.shift() as Promise<Buffer[]>);
    }
  } finally {
    // A reader that stops early (a client gone) leaves no fetch behind it.
    await Promise.allSettled(ahead);
  }
}

class StripeReader {
  readonly #ctx: ReadContext;
  readonly #manifest: FileManifest;
  readonly #layout: StripeLayout;
  readonly #log: Logger;
  readonly #stats: ReadStats;
  readonly #codec: ErasureCodec | undefined;

  constructor(ctx: ReadContext, manifest: FileManifest, layout: StripeLayout, log: Logger, stats: ReadStats) {
    this.#ctx = ctx;
    this.#manifest = manifest;
    this.#layout = layout;
    this.#log = log;
    this.#stats = stats;
    this.#codec = layout.kind === "erasure" ? ErasureCodec.forLayout(layout) : undefined;
  }

  /** The stripe's bytes [from, to) (offsets within the stripe; default all), as buffers in order. */
  async read(stripe: number, from = 0, to = Number.POSITIVE_INFINITY): Promise<Buffer[]> {
    const { start, end } = stripeRange(this.#manifest.sizeBytes, this.#layout, stripe);
    const bytes = end - start;
    const upTo = Math.min(to, bytes);
    // Placed as the write placed it: around the nodes it could not reach.
    const nodes = placeFileStripe(this.#ctx.map(), this.#manifest, stripe);
    if (this.#layout.kind === "replicas") {
      return sliceParts(await this.#readReplica(stripe, nodes), from, upTo - from);
    }
    // Only the data slots that hold [from, upTo); their bytes begin at the first one's start.
    const chunk = this.#layout.chunkSizeBytes;
    const firstSlot = Math.floor(from / chunk);
    const wanted = Array.from(
      { length: Math.floor((upTo - 1) / chunk) - firstSlot + 1 },
      (_, i) => firstSlot + i,
    );
    const got = await this.#readErasure(stripe, nodes, pieceLengths(bytes, this.#layout), bytes, wanted);
    return got.whole
      ? sliceParts(got.parts, from, upTo - from)
      : sliceParts(got.parts, from - firstSlot * chunk, upTo - from);
  }

  async #fetch(stripe: number, slot: number, node: string): Promise<Buffer[]> {
    const m = this.#manifest;
    const key = { volume: m.volume, fileId: m.fileId, version: m.version, stripe, slot };
    try {
      return await this.#ctx.pieces.get(node, key);
    } catch (error) {
      const reason = (error as Error).message;
      this.#stats.failedPieces.push({ stripe, slot, node, reason });
      this.#log.warn(
        { stripe, slot, holder: node, version: m.version, reason },
        "piece unavailable; reading degraded",
      );
      throw error;
    }
  }

  /**
   * Slots whose node is neither this one nor up and heard: out, down in the
   * map, or silent to the heartbeats. Asked last, so a dead holder costs a
   * read nothing while the others can serve it (the map may lag, so they are
   * still asked when nothing else is left).
   */
  #unlikely(nodes: string[]): Set<number> {
    const map = this.#ctx.map();
    const slots = new Set<number>();
    for (const [slot, node] of nodes.entries())
      if (node !== this.#ctx.self && !reachableNode(this.#ctx, map, node)) slots.add(slot);
    return slots;
  }

  /** Replicas: the local copy if there is one, else a holder that rotates with the stripe; unlikely holders last. */
  async #readReplica(stripe: number, nodes: string[]): Promise<Buffer[]> {
    const width = nodes.length;
    // A copy on this node costs no network; otherwise rotate over the holders.
    const local = nodes.indexOf(this.#ctx.self);
    const start = local >= 0 ? local : stripe % width;
    const unlikely = this.#unlikely(nodes);
    const rotated = Array.from({ length: width }, (_, i) => (start + i) % width);
    // Likely holders by load (a Low one until it turns Medium, then in turn, High last); unlikely ones last.
    const likely = rotated.filter((s) => !unlikely.has(s));
    const order = [
      ...(this.#ctx.pieces.rankByLoad?.(nodes, likely) ?? likely),
      ...rotated.filter((s) => unlikely.has(s)),
    ];
    for (const [attempt, slot] of order.entries()) {
      try {
        const data = await this.#fetch(stripe, slot, nodes[slot] as string);
        if (attempt > 0) this.#degraded(stripe, "replica", `read replica ${slot} after ${attempt} failed`);
        return data;
      } catch {}
    }
    throw this.#unavailable(stripe, 0, 1);
  }

  /**
   * The `wanted` data slots' bytes, back to back (whole: false), or the whole
   * stripe's bytes when a wanted piece had to be rebuilt from parity (whole:
   * true).
   */
  async #readErasure(
    stripe: number,
    nodes: string[],
    lengths: number[],
    bytes: number,
    wanted: number[],
  ): Promise<{ parts: Buffer[]; whole: boolean }> {
    const k = this.#layout.dataPieces;
    const pieces: (Buffer[] | undefined)[] = new Array(this.#layout.width).fill(undefined);
    const fetchSlots = async (slots: number[]) => {
      await Promise.allSettled(
        slots.map(async (slot) => {
          pieces[slot] =
            (lengths[slot] as number) === 0 ? [] : await this.#fetch(stripe, slot, nodes[slot] as string);
        }),
      );
    };
    const dataSlots = Array.from({ length: k }, (_, slot) => slot);
    const paritySlots = Array.from({ length: this.#layout.redundantPieces }, (_, p) => k + p);
    // Wanted pieces on likely holders; for each one on an unlikely holder, another piece
    // (unwanted data first, then parity) so that k are at hand to rebuild it, at once.
    const unlikely = this.#unlikely(nodes);
    const skipped = wanted.filter((slot) => unlikely.has(slot));
    const spares = [...dataSlots.filter((slot) => !wanted.includes(slot)), ...paritySlots].filter(
      (slot) => !unlikely.has(slot),
    );
    const first = [
      ...wanted.filter((slot) => !unlikely.has(slot)),
      ...spares.slice(0, skipped.length === 0 ? 0 : Math.max(0, k - (wanted.length - skipped.length))),
    ];
    await fetchSlots(first);
    if (wanted.every((slot) => pieces[slot] !== undefined)) {
      return { parts: wanted.flatMap((slot) => pieces[slot] as Buffer[]), whole: false };
    }

    const missing = wanted.filter((slot) => pieces[slot] === undefined).length;
    if (pieces.filter((p) => p !== undefined).length < k) {
      await fetchSlots([...dataSlots, ...paritySlots].filter((slot) => !first.includes(slot)));
    }
    const present = pieces.filter((p) => p !== undefined).length;
    if (present < k) throw this.#unavailable(stripe, present, k);
    this.#degraded(stripe, "parity", `rebuilt ${missing} data piece(s) from parity`);
    const shard = shardBytes(bytes, this.#layout);
    const joined = pieces.map((p) =>
      p === undefined ? undefined : p.length === 1 ? p[0] : Buffer.concat(p),
    );
    const data = await (this.#codec as ErasureCodec).decode(joined, shard);
    return { parts: [data.subarray(0, bytes)], whole: true };
  }

  #degraded(stripe: number, kind: "parity" | "replica", how: string): void {
    this.#stats.degradedStripes++;
    this.#ctx.metrics?.degradedRead(kind);
    this.#log.warn({ stripe, version: this.#manifest.version }, `degraded read: ${how}`);
  }

  #unavailable(stripe: number, present: number, needed: number): MosaicError {
    const m = this.#manifest;
    const failures = this.#stats.failedPieces
      .filter((f) => f.stripe === stripe)
      .map((f) => `slot ${f.slot} on ${f.node}: ${f.reason}`);
    return new MosaicError(
      "MOSAIC_ERR_DATA_UNAVAILABLE",
      `${m.volume}/${m.name} stripe ${stripe}: ${present} pieces readable, ${needed} needed — more nodes are ` +
        `down than ${describe(this.#layout)} covers (${failures.join("; ")})`,
    );
  }
}

function describe(layout: StripeLayout): string {
  return layout.kind === "replicas"
    ? `${layout.width} replicas`
    : `erasure ${layout.dataPieces}+${layout.redundantPieces}`;
}

/** `length` bytes from `offset` of the buffers taken back to back, as views (no copy). */
function sliceParts(parts: Buffer[], offset: number, length: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = offset;
  let left = length;
  for (const part of parts) {
    if (left === 0) break;
    if (skip >= part.length) {
      skip -= part.length;
      continue;
    }
    const take = Math.min(part.length - skip, left);
    out.push(skip === 0 && take === part.length ? part : part.subarray(skip, skip + take));
    skip = 0;
    left -= take;
  }
  return out;
}
