// Stripe math: which bytes of a file each stripe and each piece carries.
// Pure, so the writer, the reader and the tests agree by construction.
import type { StripeLayout } from "./volume.ts";

/** Erasure shards must be a multiple of this many bytes (the codec works in 8-byte words). */
export const SHARD_ALIGN_BYTES = 8;

export function stripeCount(fileSizeBytes: number, layout: StripeLayout): number {
  return Math.ceil(fileSizeBytes / layout.stripeDataBytes);
}

/** File bytes [start, end) carried by stripe `stripe`. */
export function stripeRange(
  fileSizeBytes: number,
  layout: StripeLayout,
  stripe: number,
): { start: number; end: number } {
  const start = stripe * layout.stripeDataBytes;
  return { start, end: Math.min(fileSizeBytes, start + layout.stripeDataBytes) };
}

/**
 * Bytes stored in each slot of a stripe holding `stripeBytes` file bytes.
 * Erasure: data slots hold their share of the file (the last ones may be short
 * or empty); parity slots are as long as the widest data slot, rounded up to
 * the codec's alignment. Replicas: every slot holds the whole stripe.
 */
export function pieceLengths(stripeBytes: number, layout: StripeLayout): number[] {
  if (layout.kind === "replicas") return new Array<number>(layout.width).fill(stripeBytes);
  const lengths: number[] = [];
  for (let slot = 0; slot < layout.dataPieces; slot++) {
    const start = slot * layout.chunkSizeBytes;
    lengths.push(Math.max(0, Math.min(layout.chunkSizeBytes, stripeBytes - start)));
  }
  const shard = shardBytes(stripeBytes, layout);
  for (let p = 0; p < layout.redundantPieces; p++) lengths.push(shard);
  return lengths;
}

/** The common shard length the erasure codec works on for this stripe. */
export function shardBytes(stripeBytes: number, layout: StripeLayout): number {
  const widest = Math.min(layout.chunkSizeBytes, stripeBytes);
  return Math.ceil(widest / SHARD_ALIGN_BYTES) * SHARD_ALIGN_BYTES;
}

/** Raw bytes stored across all nodes for a file: what it costs in capacity. */
export function storedBytes(fileSizeBytes: number, layout: StripeLayout): number {
  let total = 0;
  const stripes = stripeCount(fileSizeBytes, layout);
  for (let s = 0; s < stripes; s++) {
    const { start, end } = stripeRange(fileSizeBytes, layout, s);
    for (const length of pieceLengths(end - start, layout)) total += length;
  }
  return total;
}
