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
// Under erasure, a holder that can send part of a piece (an agent's PieceIO)
// is asked for only the bytes of the range: it checks the whole piece, sends
// the part with its own crc32c, and the reader checks that. A stripe that
// must be rebuilt from parity needs whole pieces, and asks for them.
//
// A hot piece may have temporary read copies (load/read-copies.ts): a
// replicated stripe's reads choose among its placed holders and its copies,
// an erasure-coded data slot's among its one placed holder and that slot's
// copies, by load either way. A copy that fails (drained, its lease run
// out, its node gone) sends the read to the piece's next holder, and only
// when every holder of a data slot fails is it rebuilt from parity.
import { crc32c } from "@node-rs/crc32";
import type { ClusterMap } from "../core/cluster-map.ts";
import { placeFileStripe } from "../core/file-placement.ts";
import type { FileManifest } from "../core/manifest.ts";
import { pieceLengths, shardBytes, stripeRange } from "../core/stripes.ts";
import { layoutOf, type StripeLayout } from "../core/volume.ts";
import { ErasureCodec } from "../erasure/codec.ts";
import { MosaicError } from "../errors.ts";
import type { ReadHolder } from "../load/read-copy-directory.ts";
import type { Logger } from "../log.ts";
import type { PieceRange } from "../rpc/messages.ts";
import { sliceParts } from "../rpc/piece-range.ts";
import { crc32cCombine } from "../storage/crc32c-combine.ts";
import { type ReadContext, reachableNode } from "./context.ts";
import type { PieceBytes, PieceIO } from "./pieces.ts";

export interface ReadStats {
  degradedStripes: number;
  failedPieces: { stripe: number; slot: number; node: string; reason: string }[];
}

/**
 * Some of a file's bytes, and their crc32c when it came with them: a whole
 * piece or range as its reader checked it, or pieces back to back with
 * theirs combined. Undefined where only reading the bytes would tell (a
 * piece cut short, a stripe rebuilt from parity).
 */
interface CheckedBytes {
  data: Buffer[];
  crc32c?: number;
}

/**
 * The whole file, checked end to end against the manifest's crc32c. The
 * crc32c of each piece as it was checked on the way in is combined into the
 * file's, so the bytes are read again only where it is not known.
 */
export async function* readFile(
  ctx: ReadContext,
  manifest: FileManifest,
  stats?: ReadStats,
): AsyncGenerator<Buffer> {
  let crc = 0;
  for await (const stripe of readStripes(ctx, manifest, 0, manifest.sizeBytes, stats)) {
    if (stripe.crc32c === undefined) for (const part of stripe.data) crc = crc32c(part, crc);
    else crc = crc32cCombine(crc, stripe.crc32c, byteLength(stripe.data));
    yield* stripe.data;
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
  for await (const stripe of readStripes(ctx, manifest, start, end, stats)) yield* stripe.data;
}

/** The bytes [start, end) a stripe at a time, fetched a few stripes ahead. */
async function* readStripes(
  ctx: ReadContext,
  manifest: FileManifest,
  start: number,
  end: number,
  stats?: ReadStats,
): AsyncGenerator<CheckedBytes> {
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
  const ahead: Promise<CheckedBytes>[] = [];
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
      yield await (ahead.shift() as Promise<CheckedBytes>);
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
  readonly #getRange: PieceIO["getRange"] | undefined;

  constructor(ctx: ReadContext, manifest: FileManifest, layout: StripeLayout, log: Logger, stats: ReadStats) {
    this.#ctx = ctx;
    this.#manifest = manifest;
    this.#layout = layout;
    this.#log = log;
    this.#stats = stats;
    this.#codec = layout.kind === "erasure" ? ErasureCodec.forLayout(layout) : undefined;
    // A client reading from holders itself fetches whole pieces and cuts them here.
    this.#getRange = ctx.pieces.getRange?.bind(ctx.pieces);
  }

  /** The stripe's bytes [from, to) (offsets within the stripe; default all), as buffers in order. */
  async read(stripe: number, from = 0, to = Number.POSITIVE_INFINITY): Promise<CheckedBytes> {
    const { start, end } = stripeRange(this.#manifest.sizeBytes, this.#layout, stripe);
    const bytes = end - start;
    const upTo = Math.min(to, bytes);
    // Placed as the write placed it: around the nodes it could not reach.
    const nodes = placeFileStripe(this.#ctx.map(), this.#manifest, stripe);
    if (this.#layout.kind === "replicas") {
      return cut(await this.#readReplica(stripe, nodes), from, upTo - from);
    }
    const got = await this.#readErasure(stripe, nodes, pieceLengths(bytes, this.#layout), bytes, from, upTo);
    return cut(got.bytes, from - got.offset, upTo - from);
  }

  /** The piece, or only `range` of it. */
  async #fetch(stripe: number, slot: number, node: string, range?: PieceRange): Promise<PieceBytes> {
    const m = this.#manifest;
    const key = { volume: m.volume, fileId: m.fileId, version: m.version, stripe, slot };
    try {
      return range === undefined || this.#getRange === undefined
        ? await this.#ctx.pieces.get(node, key)
        : await this.#getRange(node, key, range);
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
    for (const [slot, node] of nodes.entries()) if (!this.#likely(map, node)) slots.add(slot);
    return slots;
  }

  /** This node, or one up in the map and heard: likely to answer. */
  #likely(map: ClusterMap, node: string): boolean {
    return node === this.#ctx.self || reachableNode(this.#ctx, map, node);
  }

  /**
   * Indexes into `all` (one piece's holders) in the order to ask them:
   * those of `preferred` likely to answer, by load (a Low one until it
   * turns Medium, then in turn, High last), then the unlikely ones.
   */
  #byLoad(all: string[], preferred: number[]): number[] {
    const unlikely = this.#unlikely(all);
    const likely = preferred.filter((i) => !unlikely.has(i));
    return [
      ...(this.#ctx.pieces.rankByLoad?.(all, likely) ?? likely),
      ...preferred.filter((i) => unlikely.has(i)),
    ];
  }

  /**
   * Where data slot `slot` of an erasure-coded stripe may be read, in the
   * order to ask: its placed holder and the slot's serving read copies (a
   * copy on this node first), by load, unlikely ones last.
   */
  #slotHolders(stripe: number, nodes: string[], slot: number): ReadHolder[] {
    const holders = this.#ctx.pieces.readHolders?.(this.#manifest, stripe, nodes, slot) ?? [
      { node: nodes[slot] as string, slot },
    ];
    if (holders.length === 1) return holders;
    const all = holders.map((h) => h.node);
    const local = all.indexOf(this.#ctx.self);
    const preferred = all.map((_, i) => i).filter((i) => i !== local);
    if (local >= 0) preferred.unshift(local);
    return this.#byLoad(all, preferred).map((i) => holders[i] as ReadHolder);
  }

  /** The piece (or `range` of it) from the first of `holders` that sends it; the last failure if none does. */
  async #fetchFirst(stripe: number, holders: readonly ReadHolder[], range?: PieceRange): Promise<PieceBytes> {
    let failure: unknown = new Error("no holder to ask");
    for (const { node, slot } of holders) {
      try {
        return await this.#fetch(stripe, slot, node, range);
      } catch (error) {
        failure = error;
      }
    }
    throw failure;
  }

  /** Replicas: the local copy if there is one, else a holder that rotates with the stripe; unlikely holders last. */
  async #readReplica(stripe: number, nodes: string[]): Promise<PieceBytes> {
    const width = nodes.length;
    // The placed holders by slot, then the read copies serving the stripe (load/read-copies.ts).
    const holders =
      this.#ctx.pieces.readHolders?.(this.#manifest, stripe, nodes) ??
      nodes.map((node, slot) => ({ node, slot }));
    const all = holders.map((h) => h.node);
    // A copy on this node costs no network; otherwise rotate over the placed holders, read copies after them.
    const local = all.indexOf(this.#ctx.self);
    const start = local >= 0 && local < width ? local : stripe % width;
    const rotated = [
      ...(local >= width ? [local] : []),
      ...Array.from({ length: width }, (_, i) => (start + i) % width),
      ...Array.from({ length: all.length - width }, (_, i) => width + i).filter((i) => i !== local),
    ];
    const order = this.#byLoad(all, rotated);
    for (const [attempt, at] of order.entries()) {
      const { node, slot } = holders[at] as { node: string; slot: number };
      try {
        const data = await this.#fetch(stripe, slot, node);
        if (attempt > 0) this.#degraded(stripe, "replica", `read replica ${slot} after ${attempt} failed`);
        return data;
      } catch {}
    }
    throw this.#unavailable(stripe, 0, 1);
  }

  /**
   * Buffers holding the stripe's bytes [from, upTo), back to back from the
   * stripe's byte `offset`: exactly those bytes when the holders sent the
   * ranges of their pieces; the data pieces that hold them; or the whole
   * stripe when one had to be rebuilt from parity.
   */
  async #readErasure(
    stripe: number,
    nodes: string[],
    lengths: number[],
    bytes: number,
    from: number,
    upTo: number,
  ): Promise<{ bytes: CheckedBytes; offset: number }> {
    const wanted = piecesOfRange(this.#layout.chunkSizeBytes, lengths, from, upTo);
    // Each wanted slot's holders: placed, then its read copies, in the order to ask.
    const holders = new Map(wanted.map((w) => [w.slot, this.#slotHolders(stripe, nodes, w.slot)]));
    const map = this.#ctx.map();
    const likely = (node: string) => this.#likely(map, node);
    // A wanted slot is unlikely when none of its holders is likely (they come first when some is).
    const unlikely = this.#unlikely(nodes);
    for (const [slot, hs] of holders)
      if (likely((hs[0] as ReadHolder).node)) unlikely.delete(slot);
      else unlikely.add(slot);
    // Every wanted piece on a likely holder: ask each for its part alone (the next holder of
    // the slot when one fails). One that fails on all of them counts as unlikely below,
    // where whole pieces are fetched to rebuild it.
    if (this.#getRange !== undefined && wanted.every((w) => !unlikely.has(w.slot))) {
      const parts = await Promise.allSettled(
        wanted.map((w) =>
          this.#fetchFirst(
            stripe,
            (holders.get(w.slot) as ReadHolder[]).filter((h) => likely(h.node)),
            w.range,
          ),
        ),
      );
      if (parts.every((p) => p.status === "fulfilled"))
        return { bytes: join(parts.map((p) => p.value)), offset: from };
      for (const [i, p] of parts.entries())
        if (p.status === "rejected") unlikely.add((wanted[i] as WantedPiece).slot);
    }
    return this.#readErasureWhole(
      stripe,
      nodes,
      lengths,
      bytes,
      wanted.map((w) => w.slot),
      unlikely,
      holders,
    );
  }

  /**
   * The `wanted` data slots' whole pieces, back to back from the first one's
   * start, or the whole stripe when a wanted piece had to be rebuilt from
   * parity. Pieces on `unlikely` holders are asked last. A wanted slot is
   * asked of its `holders` in turn (placed, read copies); any other of its
   * placed holder alone.
   */
  async #readErasureWhole(
    stripe: number,
    nodes: string[],
    lengths: number[],
    bytes: number,
    wanted: number[],
    unlikely: Set<number>,
    holders: ReadonlyMap<number, readonly ReadHolder[]>,
  ): Promise<{ bytes: CheckedBytes; offset: number }> {
    const k = this.#layout.dataPieces;
    const pieces: (PieceBytes | undefined)[] = new Array(this.#layout.width).fill(undefined);
    const fetchSlots = async (slots: number[]) => {
      await Promise.allSettled(
        slots.map(async (slot) => {
          pieces[slot] =
            (lengths[slot] as number) === 0
              ? { data: [], crc32c: 0 }
              : await this.#fetchFirst(stripe, holders.get(slot) ?? [{ node: nodes[slot] as string, slot }]);
        }),
      );
    };
    const dataSlots = Array.from({ length: k }, (_, slot) => slot);
    const paritySlots = Array.from({ length: this.#layout.redundantPieces }, (_, p) => k + p);
    // Wanted pieces on likely holders; for each one on an unlikely holder, another piece
    // (unwanted data first, then parity) so that k are at hand to rebuild it, at once.
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
      const offset = (wanted[0] as number) * this.#layout.chunkSizeBytes;
      return { bytes: join(wanted.map((slot) => pieces[slot] as PieceBytes)), offset };
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
      p === undefined ? undefined : p.data.length === 1 ? p.data[0] : Buffer.concat(p.data),
    );
    const data = await (this.#codec as ErasureCodec).decode(joined, shard);
    return { bytes: { data: [data.subarray(0, bytes)] }, offset: 0 };
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

/** `length` bytes from `offset`: views, their crc32c kept only when they are all of it. */
function cut(bytes: CheckedBytes, offset: number, length: number): CheckedBytes {
  const data = sliceParts(bytes.data, offset, length);
  return offset === 0 && length === byteLength(bytes.data) ? { data, crc32c: bytes.crc32c } : { data };
}

/** Pieces back to back, their crc32c combined. */
function join(pieces: readonly PieceBytes[]): CheckedBytes {
  let crc = 0;
  for (const piece of pieces) crc = crc32cCombine(crc, piece.crc32c, byteLength(piece.data));
  return { data: pieces.flatMap((piece) => piece.data), crc32c: crc };
}

function byteLength(parts: readonly Buffer[]): number {
  let n = 0;
  for (const part of parts) n += part.length;
  return n;
}

interface WantedPiece {
  slot: number;
  range: PieceRange;
}

/**
 * The data pieces that hold the stripe's bytes [from, upTo) (`lengths`: each
 * slot's piece length; data slot s holds the stripe's bytes from s × chunk),
 * and the part of each that does. Pure.
 */
export function piecesOfRange(
  chunk: number,
  lengths: readonly number[],
  from: number,
  upTo: number,
): WantedPiece[] {
  const wanted: WantedPiece[] = [];
  for (let slot = Math.floor(from / chunk); slot * chunk < upTo; slot++) {
    const offset = Math.max(from - slot * chunk, 0);
    const end = Math.min(upTo - slot * chunk, lengths[slot] as number);
    wanted.push({ slot, range: { offset, length: end - offset } });
  }
  return wanted;
}
