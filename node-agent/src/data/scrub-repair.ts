// Repairing one bad piece this node holds, from the redundancy of its stripe:
// erasure pieces are rebuilt from k healthy pieces of the stripe, replicas
// copied from another holder, manifest copies re-written from the newest
// manifest. Every input is checksum-verified on read (store.get here, the
// peer's store.get remotely), so a piece rebuilt from k of them is trusted:
// the manifest's whole-file crc cannot check a single piece.
import { encodeManifest, type FileManifest } from "../core/manifest.ts";
import { MANIFEST_STRIPE, placeStripe } from "../core/placement.ts";
import { pieceLengths, shardBytes, stripeRange } from "../core/stripes.ts";
import { layoutOf, type StripeLayout } from "../core/volume.ts";
import { ErasureCodec } from "../erasure/codec.ts";
import type { PieceKey } from "../storage/chunk-format.ts";
import type { ChunkStore } from "../storage/chunk-store.ts";
import type { DataContext } from "./context.ts";
import { readManifestById } from "./file-manifests.ts";
import type { PieceIO } from "./pieces.ts";

export type ScrubContext = Pick<DataContext, "self" | "map" | "volume" | "log"> & {
  pieces: Pick<PieceIO, "get" | "manifest">;
};

export type RepairOutcome =
  | { kind: "repaired"; file: string | undefined; how: string }
  | { kind: "unrepairable"; file: string | undefined; reason: string }
  /** Not the file's current version (stale, deleted, or a write still in progress): garbage, left alone. */
  | { kind: "skipped"; file: string | undefined; reason: string };

/** Rebuilds `key` from its stripe's other pieces and stores it here, whole or not at all. */
export async function repairPiece(
  ctx: ScrubContext,
  store: Pick<ChunkStore, "put">,
  key: PieceKey,
): Promise<RepairOutcome> {
  const spec = ctx.volume(key.volume);
  if (spec === undefined) return unrepairable(undefined, `volume ${key.volume} is not configured here`);
  let manifest: FileManifest | undefined;
  try {
    // This node's copy may be the bad piece: then it is one holder not answering.
    manifest = await readManifestById(ctx, key.volume, key.fileId, spec.redundancy);
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
  const nodes = placeStripe(ctx.map(), key, layout.width);
  if (nodes[key.slot] !== ctx.self) {
    return skipped(file, `slot ${key.slot} is placed on ${nodes[key.slot]} under the current map`);
  }
  const { start, end } = stripeRange(manifest.sizeBytes, layout, key.stripe);
  const rebuilt =
    layout.kind === "replicas"
      ? await copyReplica(ctx, key, nodes)
      : await rebuildErasure(ctx, key, nodes, layout, end - start);
  if (typeof rebuilt === "string") return unrepairable(file, rebuilt);
  await store.put(key, rebuilt.data);
  return { kind: "repaired", file, how: rebuilt.how };
}

type Rebuilt = { data: Buffer[]; how: string };

async function copyReplica(ctx: ScrubContext, key: PieceKey, nodes: string[]): Promise<Rebuilt | string> {
  const failures: string[] = [];
  for (let slot = 0; slot < nodes.length; slot++) {
    if (slot === key.slot) continue;
    const node = nodes[slot] as string;
    try {
      return {
        data: await ctx.pieces.get(node, { ...key, slot }),
        how: `copied replica ${slot} from ${node}`,
      };
    } catch (error) {
      failures.push(`slot ${slot} on ${node}: ${(error as Error).message}`);
    }
  }
  return `no healthy replica (${failures.join("; ")})`;
}

async function rebuildErasure(
  ctx: ScrubContext,
  key: PieceKey,
  nodes: string[],
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
        const parts = await ctx.pieces.get(node, { ...key, slot });
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
