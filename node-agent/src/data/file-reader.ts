// Reading a file: fetch each stripe's data pieces in parallel, a few stripes
// ahead, and yield the bytes in order. A piece that is missing, corrupt,
// stale or on an unreachable node is routed around: the stripe is rebuilt
// from parity or read from another replica (a degraded read, logged with the
// reason). The whole file is never in memory; a stripe at a time is.
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

export async function* readFile(
  ctx: ReadContext,
  manifest: FileManifest,
  stats?: ReadStats,
): AsyncGenerator<Buffer> {
  const layout = layoutOf(manifest);
  const log = ctx.log.child({ component: "reader", volume: manifest.volume, file: manifest.name });
  const reader = new StripeReader(
    ctx,
    manifest,
    layout,
    log,
    stats ?? { degradedStripes: 0, failedPieces: [] },
  );
  const ahead: Promise<Buffer[]>[] = [];
  let next = 0;
  let crc = 0;
  try {
    while (next < manifest.stripes || ahead.length > 0) {
      while (next < manifest.stripes && ahead.length < ctx.stripesInFlight) {
        const p = reader.read(next++);
        p.catch(() => {}); // observed when awaited below; avoids an unhandled rejection meanwhile
        ahead.push(p);
      }
      for (const part of await (ahead.shift() as Promise<Buffer[]>)) {
        crc = crc32c(part, crc);
        yield part;
      }
    }
  } finally {
    await Promise.allSettled(ahead);
  }
  if (crc !== manifest.crc32c) {
    throw new MosaicError(
      "MOSAIC_ERR_CHUNK_CORRUPT",
      `${manifest.volume}/${manifest.name} v${manifest.version}: whole-file checksum 0x${crc.toString(16)} ` +
        `differs from the manifest's 0x${manifest.crc32c.toString(16)}`,
    );
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

  /** The stripe's file bytes, as one or more buffers in order. */
  async read(stripe: number): Promise<Buffer[]> {
    const { start, end } = stripeRange(this.#manifest.sizeBytes, this.#layout, stripe);
    const lengths = pieceLengths(end - start, this.#layout);
    // Placed as the write placed it: around the nodes it could not reach.
    const nodes = placeFileStripe(this.#ctx.map(), this.#manifest, stripe);
    return this.#layout.kind === "replicas"
      ? this.#readReplica(stripe, nodes)
      : this.#readErasure(stripe, nodes, lengths, end - start);
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
    const order = [...rotated.filter((s) => !unlikely.has(s)), ...rotated.filter((s) => unlikely.has(s))];
    for (const [attempt, slot] of order.entries()) {
      try {
        const data = await this.#fetch(stripe, slot, nodes[slot] as string);
        if (attempt > 0) this.#degraded(stripe, `read replica ${slot} after ${attempt} failed`);
        return data;
      } catch {}
    }
    throw this.#unavailable(stripe, 0, 1);
  }

  async #readErasure(stripe: number, nodes: string[], lengths: number[], bytes: number): Promise<Buffer[]> {
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
    // Data pieces on likely holders, and for each one on an unlikely holder a parity piece, at once.
    const unlikely = this.#unlikely(nodes);
    const paritySlots = Array.from({ length: this.#layout.redundantPieces }, (_, p) => k + p);
    const skipped = dataSlots.filter((slot) => unlikely.has(slot));
    const first = [
      ...dataSlots.filter((slot) => !unlikely.has(slot)),
      ...paritySlots.filter((slot) => !unlikely.has(slot)).slice(0, skipped.length),
    ];
    await fetchSlots(first);
    if (dataSlots.every((slot) => pieces[slot] !== undefined)) return pieces.slice(0, k).flat() as Buffer[];

    const missing = dataSlots.filter((slot) => pieces[slot] === undefined).length;
    if (pieces.filter((p) => p !== undefined).length < k) {
      await fetchSlots([...dataSlots, ...paritySlots].filter((slot) => !first.includes(slot)));
    }
    const present = pieces.filter((p) => p !== undefined).length;
    if (present < k) throw this.#unavailable(stripe, present, k);
    this.#degraded(stripe, `rebuilt ${missing} data piece(s) from parity`);
    const shard = shardBytes(bytes, this.#layout);
    const joined = pieces.map((p) =>
      p === undefined ? undefined : p.length === 1 ? p[0] : Buffer.concat(p),
    );
    const data = await (this.#codec as ErasureCodec).decode(joined, shard);
    return [data.subarray(0, bytes)];
  }

  #degraded(stripe: number, how: string): void {
    this.#stats.degradedStripes++;
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
