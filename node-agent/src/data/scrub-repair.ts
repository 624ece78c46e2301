// Repairing one piece this node should hold — a bad one the scrubber found,
// or one the rebuild finds missing — from the redundancy of its stripe:
// erasure pieces are rebuilt from k healthy pieces of the stripe, replicas
// copied from another holder, manifest copies re-written from the newest
// manifest; a piece that still sits whole on another node is copied as is. Every input is checksum-verified on read (store.get here, the
// peer's store.get remotely), so a piece rebuilt from k of them is trusted:
// the manifest's whole-file crc cannot check a single piece.
import { placeFileStripe } from "../core/file-placement.ts";
import { encodeManifest, type FileManifest } from "../core/manifest.ts";
import { MANIFEST_STRIPE } from "../core/placement.ts";
import { pieceLengths, shardBytes, stripeRange } from "../core/stripes.ts";
import { layoutOf, type StripeLayout } from "../core/volume.ts";
import { ErasureCodec } from "../erasure/codec.ts";
import type { PieceKey } from "../storage/chunk-format.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import { isReadCopy } from "../storage/piece-key.ts";
import type { DataContext } from "./context.ts";
import { readManifestById } from "./file-manifests.ts";
import type { PieceIO } from "./pieces.ts";

export type ScrubContext = Pick<DataContext, "self" | "map" | "volume" | "log" | "metrics"> & {
  pieces: Pick<PieceIO, "get" | "manifest">;
};

export type RepairOutcome =
  | { kind: "repaired"; file: string | undefined; how: string }
  | { kind: "unrepairable"; file: string | undefined; reason: string }
  /** Not the file's current version (stale, deleted, or a write still in progress): garbage, left alone. */
  | { kind: "skipped"; file: string | undefined; reason: string };

export interface RepairOptions {
  /** The file's current manifest, when the caller has just read it (the rebuild): its holders are not asked again. */
  manifest?: FileManifest;
  /** Where the piece belongs; default: where the file's placement puts it. Repaired only if that is this node. */
  target?: string;
  /** Nodes that may hold this very piece (its holder under another placement): copied whole before any rebuild. */
  copyFrom?: readonly string[];
}

/** Rebuilds `key` from its stripe's other pieces and stores it here, whole or not at all. */
export async function repairPiece(
  ctx: ScrubContext,
  store: Pick<ChunkStore, "put">,
  key: PieceKey,
  options: RepairOptions = {},
): Promise<RepairOutcome> {
  if (isReadCopy(key)) return skipped(undefined, "a temporary read copy: no redundancy to restore");
  const spec = ctx.volume(key.volume);
  if (spec === undefined) return unrepairable(undefined, `volume ${key.volume} is not configured here`);
  let manifest = options.manifest;
  try {
    // This node's copy may be the bad piece: then it is one holder not answering.
    manifest ??= await readManifestById(ctx, key.volume, key.fileId, spec.redundancy);
  } catch (error) {
    return unrepairable(undefined, (error as Error).message);
  }
  if (manifest === undefined) return skipped(undefined, "no holder has a manifest of this file");
  const file = manifest.name;
  if (manifest.version !== key.version) {
    return skipped(file, `piece is v${key.version}, the file is v${manifest.version}`);
  }
  if (key.stripe === MANIFEST_STRIPE) {
    await store.put(key, [encodeManifest(manifest)]);
    return { kind: "repaired", file, how: "manifest copy re-written from its holders" };
  }
  if (manifest.deleted) return skipped(file, "the file is deleted");
  if (key.stripe >= manifest.stripes) return skipped(file, `the file has ${manifest.stripes} stripes`);

  const layout = layoutOf(manifest);
  const nodes = placeFileStripe(ctx.map(), manifest, key.stripe);
  const target = options.target ?? nodes[key.slot];
  if (target !== ctx.self) {
    return skipped(file, `slot ${key.slot} is placed on ${target} under the current map`);
  }
  const copied = await copyPiece(ctx, key, options.copyFrom ?? []);
  const { start, end } = stripeRange(manifest.sizeBytes, layout, key.stripe);
  const rebuilt = copied ?? (await rebuildFromStripe(ctx, key, nodes, layout, end - start));
  if (typeof rebuilt === "string") return unrepairable(file, rebuilt);
  await store.put(key, rebuilt.data);
  return { kind: "repaired", file, how: rebuilt.how };
}

export type Rebuilt = { data: Buffer[]; how: string };

/** The piece itself from the first of `nodes` that has it whole; undefined if none does. */
async function copyPiece(
  ctx: Pick<ScrubContext, "self" | "pieces">,
  key: PieceKey,
  nodes: readonly string[],
): Promise<Rebuilt | undefined> {
  for (const node of new Set(nodes)) {
    if (node === ctx.self) continue;
    try {
      return { data: (await ctx.pieces.get(node, key)).data, how: `copied from ${node}` };
    } catch {
      // Not there (or not whole): the stripe rebuilds it.
    }
  }
  return undefined;
}

/**
 * `key`'s bytes from the other pieces of its stripe, which sit on `nodes`
 * (indexed by slot): a replica copied, an erasure piece decoded. A string
 * says why it could not be done.
 */
export function rebuildFromStripe(
  ctx: Pick<ScrubContext, "pieces">,
  key: PieceKey,
  nodes: readonly string[],
  layout: StripeLayout,
  stripeBytes: number,
): Promise<Rebuilt | string> {
  return layout.kind === "replicas"
    ? copyReplica(ctx, key, nodes)
    : rebuildErasure(ctx, key, nodes, layout, stripeBytes);
}

async function copyReplica(
  ctx: Pick<ScrubContext, "pieces">,
  key: PieceKey,
  nodes: readonly string[],
): Promise<Rebuilt | string> {
  const failures: string[] = [];
  for (let slot = 0; slot < nodes.length; slot++) {
    if (slot === key.slot) continue;
    const node = nodes[slot] as string;
    try {
      return {
        data: (await ctx.pieces.get(node, { ...key, slot })).data,
        how: `copied replica ${slot} from ${node}`,
      };
    } catch (error) {
      failures.push(`slot ${slot} on ${node}: ${(error as Error).message}`);
    }
  }
  return `no healthy replica (${failures.join("; ")})`;
}

async function rebuildErasure(
  ctx: Pick<ScrubContext, "pieces">,
  key: PieceKey,
  nodes: readonly string[],
  layout: StripeLayout,
  stripeBytes: number,
): Promise<Rebuilt | string> {
  const lengths = pieceLengths(stripeBytes, layout);
  const failures: string[] = [];
  // Every other slot at once: one piece more than needed at worst, and no second round trip.
  const pieces = await Promise.all(
    nodes.map(async (node, slot): Promise<Buffer | undefined> => {
      if (slot === key.slot) return undefined;
      try {
        const { data: parts } = await ctx.pieces.get(node, { ...key, slot });
        return parts.length === 1 ? parts[0] : Buffer.concat(parts);
      } catch (error) {
        failures.push(`slot ${slot} on ${node}: ${(error as Error).message}`);
        return undefined;
      }
    }),
  );
  const healthy = pieces.filter((p) => p !== undefined).length;
  if (healthy < layout.dataPieces) {
    return `${healthy} healthy pieces of the stripe, ${layout.dataPieces} needed (${failures.join("; ")})`;
  }
  const codec = ErasureCodec.forLayout(layout);
  try {
    const shards = await codec.reconstruct(pieces, shardBytes(stripeBytes, layout));
    // Data shards come back zero-padded to the shard length; the piece is only its own bytes.
    const data = (shards[key.slot] as Buffer).subarray(0, lengths[key.slot] as number);
    return { data: [data], how: `rebuilt from ${healthy} pieces (${codec.name})` };
  } catch (error) {
    return `rebuild failed: ${(error as Error).message}`;
  }
}

function unrepairable(file: string | undefined, reason: string): RepairOutcome {
  return { kind: "unrepairable", file, reason };
}

function skipped(file: string | undefined, reason: string): RepairOutcome {
  return { kind: "skipped", file, reason };
}
