// Writing a file: cut the incoming stream into stripes, encode each, send its
// pieces to their holders in parallel, and acknowledge once every piece and
// then the manifest are durable. A few stripes are in flight at once; the
// source is not read further until one finishes, so memory stays bounded
// (stripesInFlight × width × chunk size) whatever the file's size.
import { crc32c } from "@node-rs/crc32";
import type { FileManifest } from "../core/manifest.ts";
import { fileIdOf } from "../core/names.ts";
import { placeStripe } from "../core/placement.ts";
import { pieceLengths, shardBytes } from "../core/stripes.ts";
import { layoutOf, type StripeLayout, type VolumeSpec } from "../core/volume.ts";
import { ErasureCodec } from "../erasure/codec.ts";
import { isMosaicError, MosaicError } from "../errors.ts";
import { formatBytes } from "../storage/format-bytes.ts";
import type { DataContext } from "./context.ts";
import { writeManifest } from "./file-manifests.ts";
import { settleAll } from "./settle.ts";

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
    const stored = storeStripe(ctx, {
      volume: spec.name,
      layout,
      codec,
      fileId,
      version,
      stripe: index,
      data: full,
      bytes,
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
    await writeManifest(ctx, manifest);
  } catch (error) {
    await removeVersion(ctx, spec.name, fileId, version);
    throw error;
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

/** Encodes one stripe and puts every piece on its holder, all in parallel. */
async function storeStripe(ctx: DataContext, w: StripeWrite): Promise<void> {
  const nodes = placeStripe(
    ctx.map(),
    { volume: w.volume, fileId: w.fileId, stripe: w.stripe },
    w.layout.width,
  );
  const pieces = await encodeStripe(w);
  await settleAll(
    pieces.map(async (data, slot) => {
      const node = nodes[slot] as string;
      const key = { volume: w.volume, fileId: w.fileId, version: w.version, stripe: w.stripe, slot };
      try {
        await ctx.pieces.put(node, key, [data]);
      } catch (error) {
        const e = error as Error;
        throw new MosaicError(
          isMosaicError(error) ? error.code : "MOSAIC_ERR_INTERNAL",
          `writing stripe ${w.stripe} slot ${slot} to ${node}: ${e.message} (a write needs all ${w.layout.width} holders)`,
          { cause: error },
        );
      }
    }),
  );
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
