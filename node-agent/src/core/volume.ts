// A volume's layout: how a file is cut into chunks and stripes and how much
// redundancy each stripe carries. Pure; the API server (CRD) and the local
// cluster config both end up here.
import { MosaicError } from "../errors.ts";

export type Redundancy = { replicas: number } | { erasure: { data: number; parity: number } };

export interface VolumeSpec {
  name: string;
  chunkSizeBytes: number;
  redundancy: Redundancy;
  capacityBytes: number;
}

/** What a stripe looks like on the wire and on disk, derived from a VolumeSpec. */
export interface StripeLayout {
  kind: "replicas" | "erasure";
  /** Pieces holding file data (erasure: k; replicas: 1, each copy holds it all). */
  dataPieces: number;
  /** Extra pieces (erasure: m parity; replicas: N-1 further copies). */
  redundantPieces: number;
  /** dataPieces + redundantPieces: nodes one stripe touches. */
  width: number;
  chunkSizeBytes: number;
  /** File bytes one stripe carries. */
  stripeDataBytes: number;
}

export const CHUNK_SIZE_MIN_BYTES = 64 * 1024;
export const CHUNK_SIZE_MAX_BYTES = 64 * 1024 * 1024;
export const WIDTH_MAX = 32;
export const VOLUME_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Limits of the Reed-Solomon library (@ronomon/reed-solomon); a codec test checks they still match. */
export const ERASURE_DATA_MAX = 24;
export const ERASURE_PARITY_MAX = 6;

export function layoutOf(spec: Pick<VolumeSpec, "chunkSizeBytes" | "redundancy">): StripeLayout {
  const chunkSizeBytes = spec.chunkSizeBytes;
  if ("replicas" in spec.redundancy) {
    const n = spec.redundancy.replicas;
    return {
      kind: "replicas",
      dataPieces: 1,
      redundantPieces: n - 1,
      width: n,
      chunkSizeBytes,
      stripeDataBytes: chunkSizeBytes,
    };
  }
  const { data, parity } = spec.redundancy.erasure;
  return {
    kind: "erasure",
    dataPieces: data,
    redundantPieces: parity,
    width: data + parity,
    chunkSizeBytes,
    stripeDataBytes: data * chunkSizeBytes,
  };
}

/** Nodes that may be lost while every file stays readable. */
export function toleratedLosses(layout: StripeLayout): number {
  return layout.redundantPieces;
}

/** Throws a MosaicError naming the first thing wrong with a spec. */
export function validateVolumeSpec(spec: VolumeSpec): VolumeSpec {
  const bad = (why: string) => new MosaicError("MOSAIC_ERR_BAD_REQUEST", `volume ${spec.name}: ${why}`);
  if (!VOLUME_NAME.test(spec.name)) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `volume name ${JSON.stringify(spec.name)} must be a DNS label (lower-case letters, digits, '-', at most 63)`,
    );
  }
  const c = spec.chunkSizeBytes;
  if (!Number.isInteger(c) || c < CHUNK_SIZE_MIN_BYTES || c > CHUNK_SIZE_MAX_BYTES || (c & (c - 1)) !== 0) {
    throw bad(
      `chunkSizeBytes ${c} must be a power of two between ${CHUNK_SIZE_MIN_BYTES} and ${CHUNK_SIZE_MAX_BYTES}`,
    );
  }
  if (!Number.isSafeInteger(spec.capacityBytes) || spec.capacityBytes <= 0) {
    throw bad(`capacityBytes ${spec.capacityBytes} must be a positive integer`);
  }
  const r = spec.redundancy as Partial<{ replicas: unknown; erasure: { data: unknown; parity: unknown } }>;
  if ((r.replicas === undefined) === (r.erasure === undefined)) {
    throw bad("redundancy must name exactly one of replicas or erasure");
  }
  if (r.replicas !== undefined) {
    if (!Number.isInteger(r.replicas) || (r.replicas as number) < 1 || (r.replicas as number) > WIDTH_MAX) {
      throw bad(`replicas ${r.replicas} must be an integer from 1 to ${WIDTH_MAX}`);
    }
    return spec;
  }
  const { data, parity } = r.erasure ?? {};
  if (!Number.isInteger(data) || (data as number) < 1 || (data as number) > ERASURE_DATA_MAX) {
    throw bad(`erasure.data ${data} must be an integer from 1 to ${ERASURE_DATA_MAX}`);
  }
  if (!Number.isInteger(parity) || (parity as number) < 0 || (parity as number) > ERASURE_PARITY_MAX) {
    throw bad(`erasure.parity ${parity} must be an integer from 0 to ${ERASURE_PARITY_MAX}`);
  }
  if ((data as number) + (parity as number) > WIDTH_MAX) {
    throw bad(`erasure data+parity ${(data as number) + (parity as number)} exceeds ${WIDTH_MAX}`);
  }
  return spec;
}

export function describeRedundancy(redundancy: Redundancy): string {
  return "replicas" in redundancy
    ? `replicas ${redundancy.replicas}`
    : `erasure ${redundancy.erasure.data}+${redundancy.erasure.parity}`;
}
