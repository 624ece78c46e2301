// Writing a file: cut the incoming stream into stripes, encode each, send its
// pieces to their holders in parallel, and acknowledge once every piece and
// then the manifest are durable. A few stripes are in flight at once; the
// source is not read further until one finishes, so memory stays bounded
// (stripesInFlight × width × chunk size) whatever the file's size.
//
// A holder that cannot be reached is written around (write-placement.ts):
// its slot goes to a substitute, stripes already stored on it are re-placed
// from their other pieces before the manifest is written, and the manifest
// names the nodes gone around so readers place the file the same way. So an
// acknowledged write always has every piece, on distinct nodes.
import { crc32c } from "@node-rs/crc32";
import type { FileManifest } from "../core/manifest.ts";
import { fileIdOf } from "../core/names.ts";
import { MANIFEST_STRIPE } from "../core/placement.ts";
import { pieceLengths, shardBytes, stripeRange } from "../core/stripes.ts";
import { layoutOf, type StripeLayout, type VolumeSpec } from "../core/volume.ts";
import { ErasureCodec } from "../erasure/codec.ts";
import { isMosaicError, MosaicError } from "../errors.ts";
import { formatBytes } from "../storage/format-bytes.ts";
import type { DataContext } from "./context.ts";
import { putManifest } from "./file-manifests.ts";
import { rebuildFromStripe } from "./scrub-repair.ts";
import { settleAll } from "./settle.ts";
import { WritePlacer } from "./write-placement.ts";

export interface WriteRequest {
  spec: VolumeSpec;
  name: string;
  version: number;
  /** Bytes the client announced; the write fails if a different number arrives. */
  sizeBytes?: number;
  /** Room left in the volume: a stream that grows past it fails with VOLUME_FULL. */
  limitBytes?: number;
  source: AsyncIterable<Buffer>;
}

export async function writeFile(ctx: DataContext, request: WriteRequest): Promise<FileManifest> {
  const { spec, name, version } = request;
  const layout = layoutOf(spec);
  const fileId = fileIdOf(spec.name, name);
  const log = ctx.log.child({ component: "writer", volume: spec.name, file: name, version });
  const codec = layout.kind === "erasure" ? ErasureCodec.forLayout(layout) : undefined;
  const started = performance.now();
  // One map for the whole write, so every stripe is placed alike.
  const placer = new WritePlacer(ctx.map(), spec, fileId, (node) => ctx.nodeDown?.(node) === true, log);
  /** Per stripe, the node each slot was stored on. */
  const placed: string[][] = [];

  const pool: Buffer[] = [];
  const inFlight: Promise<void>[] = [];
  let stripe = 0;
  let total = 0;
  let crc = 0;
  let buffer: Buffer = Buffer.allocUnsafe(layout.stripeDataBytes);
  let filled = 0;

  const flush = async () => {
    const full = buffer;
    const bytes = filled;
    const index = stripe++;
    const stored = storeStripe(ctx, placer, {
      volume: spec.name,
      layout,
      codec,
      fileId,
      version,
      stripe: index,
      data: full,
      bytes,
    }).then((nodes) => {
      placed[index] = nodes;
    });
    // Reused only once settled: pieces may still be on their way until then.
    const settled = stored.finally(() => pool.push(full));
    settled.catch(() => {}); // awaited below or in the catch; not an unhandled rejection meanwhile
    inFlight.push(settled);
    buffer = pool.pop() ?? Buffer.allocUnsafe(layout.stripeDataBytes);
    filled = 0;
    if (inFlight.length >= ctx.stripesInFlight) await inFlight.shift();
  };

  try {
    for await (const part of request.source) {
      crc = crc32c(part, crc);
      total += part.length;
      if (request.limitBytes !== undefined && total > request.limitBytes) {
        throw new MosaicError(
          "MOSAIC_ERR_VOLUME_FULL",
          `volume ${spec.name} is full: only ${formatBytes(request.limitBytes)} was left for this write`,
        );
      }
      if (request.sizeBytes !== undefined && total > request.sizeBytes) {
        throw new MosaicError(
          "MOSAIC_ERR_BAD_REQUEST",
          `more data than the announced ${request.sizeBytes} bytes`,
        );
      }
      for (let offset = 0; offset < part.length; ) {
        const n = part.copy(buffer, filled, offset);
        filled += n;
        offset += n;
        if (filled === layout.stripeDataBytes) await flush();
      }
    }
    if (request.sizeBytes !== undefined && total !== request.sizeBytes) {
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `stream ended after ${total} of the announced ${request.sizeBytes} bytes`,
      );
    }
    if (filled > 0) await flush();
    await settleAll(inFlight.splice(0));
  } catch (error) {
    await Promise.allSettled(inFlight);
    log.warn({ stripesSent: stripe, err: (error as Error).message }, "write failed; removing its pieces");
    await removeVersion(ctx, spec.name, fileId, version);
    throw error;
  }

  const manifest: FileManifest = {
    volume: spec.name,
    name,
    fileId,
    version,
    sizeBytes: total,
    chunkSizeBytes: spec.chunkSizeBytes,
    redundancy: spec.redundancy,
    stripes: stripe,
    crc32c: crc,
    createdAt: new Date().toISOString(),
    writer: ctx.self,
  };
  try {
    await completeWrite(ctx, placer, manifest, placed);
  } catch (error) {
    log.warn({ err: (error as Error).message }, "write failed; removing its pieces");
    await removeVersion(ctx, spec.name, fileId, version);
    throw error;
  }
  if (manifest.writtenAround !== undefined) {
    log.warn({ writtenAround: manifest.writtenAround }, "file written around unreachable nodes");
  }
  const seconds = (performance.now() - started) / 1000;
  log.info(
    { sizeBytes: total, stripes: stripe, MBps: Math.round(total / 1e6 / Math.max(seconds, 1e-6)) },
    "file written",
  );
  return manifest;
}

interface StripeWrite {
  volume: string;
  layout: StripeLayout;
  codec: ErasureCodec | undefined;
  fileId: string;
  version: number;
  stripe: number;
  /** Stripe buffer (stripeDataBytes long); the first `bytes` are file data. */
  data: Buffer;
  bytes: number;
}

/** Encodes one stripe and puts every piece on its holder, all in parallel; returns the holders. */
async function storeStripe(ctx: DataContext, placer: WritePlacer, w: StripeWrite): Promise<string[]> {
  const pieces = await encodeStripe(w);
  const stored: (string | undefined)[] = new Array(w.layout.width).fill(undefined);
  const key = { volume: w.volume, fileId: w.fileId, version: w.version, stripe: w.stripe };
  return placeSlots(ctx, placer, key, stored, async (slot) => [pieces[slot] as Buffer]);
}

type StripeRef = { volume: string; fileId: string; version: number; stripe: number };

/**
 * Puts each slot whose holder, as the stripe is placed now, does not have it
 * yet (`stored[slot]`: where it is), and places again around every holder
 * that cannot be reached, until all sit where placement puts them. Returns
 * the holders. A copy left on a node placement no longer names is garbage
 * the rebuild removes once the piece is safe elsewhere.
 */
async function placeSlots(
  ctx: DataContext,
  placer: WritePlacer,
  stripe: StripeRef,
  stored: (string | undefined)[],
  data: (slot: number) => Promise<Buffer[]>,
): Promise<string[]> {
  for (;;) {
    const nodes = placer.place(stripe.stripe);
    const todo = nodes.map((_, slot) => slot).filter((slot) => stored[slot] !== nodes[slot]);
    if (todo.length === 0) return nodes;
    await settleAll(
      todo.map(async (slot) => {
        const node = nodes[slot] as string;
        try {
          await ctx.pieces.put(node, { ...stripe, slot }, await data(slot));
          stored[slot] = node;
        } catch (error) {
          if (isMosaicError(error, "MOSAIC_ERR_PEER_UNAVAILABLE") && node !== ctx.self) {
            await unreachable(ctx, placer, node, error);
            return;
          }
          throw new MosaicError(
            isMosaicError(error) ? error.code : "MOSAIC_ERR_INTERNAL",
            `writing ${stripe.stripe === MANIFEST_STRIPE ? "the manifest" : `stripe ${stripe.stripe}`} ` +
              `slot ${slot} to ${node}: ${(error as Error).message}`,
            { cause: error },
          );
        }
      }),
    );
  }
}

/**
 * After the last stripe: stripes stored before a holder was found
 * unreachable still have a piece on it; each is re-placed (copied, or
 * rebuilt from the rest of its stripe) until every stripe sits where the
 * final placement puts it. Then the manifest, which names the nodes gone
 * around; a manifest holder that cannot be reached is gone around too, and
 * the loop runs again (a higher revision: copies written before differ).
 */
async function completeWrite(
  ctx: DataContext,
  placer: WritePlacer,
  manifest: FileManifest,
  placed: string[][],
): Promise<void> {
  const layout = layoutOf(manifest);
  const ref = (stripe: number) => ({
    volume: manifest.volume,
    fileId: manifest.fileId,
    version: manifest.version,
    stripe,
  });
  for (let revision = 0; ; revision++) {
    for (let pass = placer.around.length; ; pass = placer.around.length) {
      const stale = placed.flatMap((nodes, stripe) =>
        sameNodes(nodes, placer.place(stripe)) ? [] : [stripe],
      );
      for (let i = 0; i < stale.length; i += ctx.stripesInFlight) {
        await settleAll(
          stale.slice(i, i + ctx.stripesInFlight).map(async (stripe) => {
            const { start, end } = stripeRange(manifest.sizeBytes, layout, stripe);
            const was = placed[stripe] as string[];
            const data = async (slot: number) => {
              const key = { ...ref(stripe), slot };
              const holder = was[slot] as string;
              // Still reachable (another slot's move displaced it): a plain copy.
              if (!placer.around.includes(holder)) return (await ctx.pieces.get(holder, key)).data;
              const rebuilt = await rebuildFromStripe(ctx, key, was, layout, end - start);
              if (typeof rebuilt === "string") {
                throw new MosaicError(
                  "MOSAIC_ERR_DATA_UNAVAILABLE",
                  `re-placing stripe ${stripe} slot ${slot} around ${holder}: ${rebuilt}`,
                );
              }
              return rebuilt.data;
            };
            placed[stripe] = await placeSlots(ctx, placer, ref(stripe), [...was], data);
          }),
        );
      }
      if (placer.around.length === pass) break;
    }
    placer.trim(placed.length);
    if (placer.around.length > 0) manifest.writtenAround = [...placer.around];
    else delete manifest.writtenAround;
    if (revision > 0) manifest.revision = revision;
    const failed = await putManifest(ctx, manifest, placer.place(MANIFEST_STRIPE));
    if (failed.length === 0) return;
    for (const { node, error } of failed) {
      if (!isMosaicError(error, "MOSAIC_ERR_PEER_UNAVAILABLE") || node === ctx.self) throw error;
      await unreachable(ctx, placer, node, error);
    }
  }
}

/** Grace for a holder whose put failed to connect again before it is gone around (≥ grpc's longest reconnect backoff). */
const RECONNECT_PATIENCE_MS = 2_500;

/**
 * A put to `node` could not reach it on either channel. Once per write it gets
 * until RECONNECT_PATIENCE_MS to connect again, and every put that failed
 * meanwhile is retried with it; if it does not connect, or fails again later,
 * it is gone around.
 */
async function unreachable(ctx: DataContext, placer: WritePlacer, node: string, error: Error): Promise<void> {
  if (placer.around.includes(node)) return;
  if (await placer.retryAfterReconnect(node, () => ctx.pieces.reachable(node, RECONNECT_PATIENCE_MS))) return;
  placer.goAround(node, error.message);
}

/** Writes a manifest with no pieces to place (a tombstone), going around holders that cannot be reached. */
export async function writeManifestAround(
  ctx: DataContext,
  spec: VolumeSpec,
  manifest: FileManifest,
): Promise<void> {
  const log = ctx.log.child({ component: "writer", volume: spec.name, file: manifest.name });
  const placer = new WritePlacer(
    ctx.map(),
    spec,
    manifest.fileId,
    (node) => ctx.nodeDown?.(node) === true,
    log,
  );
  await completeWrite(ctx, placer, manifest, []);
}

function sameNodes(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((node, i) => node === b[i]);
}

/** The bytes of every slot of a stripe: data slices of the stripe buffer (no copy) and parity. */
async function encodeStripe(w: StripeWrite): Promise<Buffer[]> {
  const lengths = pieceLengths(w.bytes, w.layout);
  if (w.codec === undefined) return lengths.map(() => w.data.subarray(0, w.bytes));
  const { dataPieces, chunkSizeBytes } = w.layout;
  const shard = shardBytes(w.bytes, w.layout);
  let shards: Buffer;
  if (shard === chunkSizeBytes) {
    w.data.fill(0, w.bytes);
    shards = w.data;
  } else {
    // A short last stripe: only slot 0 holds data, and shards are narrower than a chunk.
    shards = Buffer.alloc(dataPieces * shard);
    w.data.copy(shards, 0, 0, w.bytes);
  }
  const parity = await w.codec.encode(shards, shard);
  const pieces: Buffer[] = [];
  for (let slot = 0; slot < dataPieces; slot++) {
    const start = slot * shard;
    pieces.push(shards.subarray(start, start + (lengths[slot] as number)));
  }
  for (let p = 0; p < w.layout.redundantPieces; p++) pieces.push(parity.subarray(p * shard, (p + 1) * shard));
  return pieces;
}

export async function removeVersion(ctx: DataContext, volume: string, fileId: string, version: number) {
  const live = ctx.map().nodes.filter((n) => n.state === "up");
  await Promise.allSettled(live.map((n) => ctx.pieces.deleteVersions(n.id, { volume, fileId, version })));
}
