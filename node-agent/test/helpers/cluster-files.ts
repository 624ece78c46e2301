// Test files on a cluster: what was written (name, size, seed) so it can be
// read back and checked by streaming, and where placement puts a file's
// manifest, so a test can pick files that do or do not survive on a node.
import type { AgentClient } from "../../src/client/agent-client.ts";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import { fileIdOf } from "../../src/core/names.ts";
import { MANIFEST_STRIPE, placeStripe } from "../../src/core/placement.ts";
import { layoutOf, type VolumeSpec } from "../../src/core/volume.ts";
import { expectKeystream, keystream } from "./byte-streams.ts";
import { withTimeout } from "./process-cluster.ts";

export interface TestFile {
  volume: string;
  name: string;
  sizeBytes: number;
  seed: string;
  manifest?: FileManifest;
}

export function testFile(volume: string, name: string, sizeBytes: number): TestFile {
  return { volume, name, sizeBytes, seed: `${volume}/${name}/${sizeBytes}` };
}

export async function putTestFile(client: AgentClient, file: TestFile): Promise<FileManifest> {
  file.manifest = await client.put(
    file.volume,
    file.name,
    keystream(file.sizeBytes, file.seed),
    file.sizeBytes,
  );
  return file.manifest;
}

/** Reads the file through `client` and checks every byte as it streams in. */
export async function expectTestFile(client: AgentClient, file: TestFile): Promise<void> {
  const { manifest, body } = await client.get(file.volume, file.name);
  if (file.manifest !== undefined && manifest.version !== file.manifest.version) {
    throw new Error(`${file.name}: read version ${manifest.version}, wrote ${file.manifest.version}`);
  }
  await expectKeystream(body, file.sizeBytes, file.seed);
}

/**
 * Reads a file to its end and returns the error the read ended with (from
 * get() or from the body), undefined if it succeeded, or "timeout" if it took
 * longer than `timeoutMs`: a read that should fail must fail, not hang.
 */
export async function readError(
  client: AgentClient,
  volume: string,
  name: string,
  timeoutMs = 10_000,
): Promise<unknown> {
  const attempt = (async () => {
    try {
      const { body } = await client.get(volume, name);
      for await (const _ of body) {
      }
      return undefined;
    } catch (error) {
      return error ?? new Error("rejected with nothing");
    }
  })();
  const result = await withTimeout(
    attempt.then((e) => ({ e })),
    timeoutMs,
  );
  return result === undefined ? "timeout" : result.e;
}

/** The nodes holding a file's manifest copies, as placement computes them. */
export function manifestHolders(map: ClusterMap, spec: VolumeSpec, name: string): string[] {
  const fileId = fileIdOf(spec.name, name);
  const copies = layoutOf(spec).redundantPieces + 1;
  return placeStripe(map, { volume: spec.name, fileId, stripe: MANIFEST_STRIPE }, copies);
}

/** The first name `${prefix}<n>${suffix}` whose manifest holders satisfy `fits`. */
export function nameWhere(
  map: ClusterMap,
  spec: VolumeSpec,
  prefix: string,
  suffix: string,
  fits: (holders: string[]) => boolean,
): string {
  for (let n = 0; n < 10_000; n++) {
    const name = `${prefix}${n}${suffix}`;
    if (fits(manifestHolders(map, spec, name))) return name;
  }
  throw new Error(`no name ${prefix}<n>${suffix} fits`);
}
