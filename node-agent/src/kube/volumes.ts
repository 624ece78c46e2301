// StripedVolumes (the API's view) as the agent's VolumeSpecs. Pure. The API
// server's schema and CEL rules refuse bad specs before they get here, so a
// refusal here means the two disagree: it is reported and the volume left
// out, never fatal to the other volumes.
import type { StripedVolume } from "@mosaic/operator/api/types.ts";
import type { Redundancy, VolumeSpec } from "../core/volume.ts";
import { validateVolumeSpec } from "../core/volume.ts";
import { MosaicError } from "../errors.ts";
import { quantityBytes } from "./quantity.ts";

/**
 * The VolumeSpec of one StripedVolume; throws a MosaicError naming what is
 * wrong. nodeSelector and networks are not the data plane's to apply yet.
 */
export function volumeSpecOf(sv: StripedVolume): VolumeSpec {
  const name = sv.metadata?.name ?? "";
  const { chunkSize, capacity, redundancy: r } = sv.spec ?? {};
  let redundancy: Redundancy;
  if (r?.replicas !== undefined && r.erasure === undefined) redundancy = { replicas: r.replicas };
  else if (r?.erasure !== undefined && r.replicas === undefined)
    redundancy = { erasure: { data: r.erasure.data, parity: r.erasure.parity } };
  else
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `volume ${name}: redundancy must name exactly one of replicas or erasure`,
    );
  return validateVolumeSpec({
    name,
    chunkSizeBytes: quantityBytes(String(chunkSize ?? ""), `volume ${name}: chunkSize`),
    redundancy,
    capacityBytes: quantityBytes(String(capacity ?? ""), `volume ${name}: capacity`),
  });
}

/** The specs of every volume that converts, in name order, and why each of the others did not. */
export function volumeSpecsOf(volumes: readonly StripedVolume[]): {
  volumes: VolumeSpec[];
  refused: { name: string; reason: string }[];
} {
  const specs: VolumeSpec[] = [];
  const refused: { name: string; reason: string }[] = [];
  for (const sv of volumes) {
    try {
      specs.push(volumeSpecOf(sv));
    } catch (error) {
      refused.push({ name: sv.metadata?.name ?? "?", reason: (error as Error).message });
    }
  }
  specs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { volumes: specs, refused };
}
