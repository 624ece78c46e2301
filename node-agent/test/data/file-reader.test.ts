// readFile's whole-file check combines the crc32c each piece was checked by
// on the way in instead of reading every byte again: it must still catch
// what a per-piece check cannot (pieces in the wrong place, a manifest that
// does not match), and a stripe rebuilt from parity, whose crc32c nobody
// checked, is read for it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { FileManifest } from "../../src/core/manifest.ts";
import type { ReadContext } from "../../src/data/context.ts";
import { readFile } from "../../src/data/file-reader.ts";
import { isMosaicError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import { PeerClients } from "../../src/rpc/peer-client.ts";
import type { PieceKey } from "../../src/storage/piece-key.ts";
import { INSECURE } from "../../src/tls/grpc-tls.ts";
import {
  gather,
  type InProcessCluster,
  patternBytes,
  startInProcessCluster,
} from "../helpers/in-process-cluster.ts";

const SIZE = 5 * 256 * 1024 + 4_321; // erasure 2+1, 256 KiB chunks: 3 stripes, the last one short

describe("readFile's whole-file check", () => {
  let cluster: InProcessCluster;
  let peers: PeerClients;
  let expected: Buffer;
  let manifests: Record<string, FileManifest>;

  /** A reader fetching every piece from its holder over gRPC, through `get` when given. */
  const context = (get?: ReadContext["pieces"]["get"]): ReadContext => ({
    self: "",
    map: () => (cluster.agents[0] as InProcessCluster["agents"][number]).map,
    log: silentLogger(),
    stripesInFlight: 2,
    pieces: { get: get ?? ((node, key) => peers.getPiece(node, key)) },
  });

  before(async () => {
    cluster = await startInProcessCluster(3);
    peers = new PeerClients({
      map: () => cluster.agents[0]?.map ?? { epoch: 0, nodes: [] },
      log: silentLogger(),
      security: INSECURE,
    });
    expected = await gather(patternBytes(SIZE, 11));
    manifests = {};
    for (const volume of ["media", "thumbs"]) {
      manifests[volume] = await cluster
        .client(0)
        .put(volume, `check/${volume}.bin`, patternBytes(SIZE, 11), SIZE);
    }
  });
  after(async () => {
    peers.close();
    await cluster.stop();
  });

  for (const volume of ["media", "thumbs"]) {
    test(`${volume}: the file reads back whole; a manifest whose crc32c differs fails it at the end`, async () => {
      const manifest = manifests[volume] as FileManifest;
      assert.ok((await gather(readFile(context(), manifest))).equals(expected));
      const wrong = { ...manifest, crc32c: (manifest.crc32c ^ 1) >>> 0 };
      await assert.rejects(
        gather(readFile(context(), wrong)),
        (e) => isMosaicError(e, "MOSAIC_ERR_CHUNK_CORRUPT") && /whole-file checksum/.test(e.message),
      );
    });

    test(`${volume}: two stripes' pieces swapped, each whole and true to its own crc32c, fail the file`, async () => {
      const manifest = manifests[volume] as FileManifest;
      const swapped = (key: PieceKey): PieceKey =>
        key.stripe === 0 || key.stripe === 1 ? { ...key, stripe: 1 - key.stripe } : key;
      // The other stripe's piece from whichever node holds it (placement rotates with the stripe);
      // replicas are alike, so any slot of it will do.
      const slots = volume === "thumbs" ? [0, 1, 2] : undefined;
      const get: ReadContext["pieces"]["get"] = async (_node, key) => {
        for (const agent of cluster.agents)
          for (const slot of slots ?? [key.slot]) {
            const got = await peers.getPiece(agent.nodeId, { ...swapped(key), slot }).catch(() => undefined);
            if (got !== undefined) return got;
          }
        throw new Error(`no holder of ${JSON.stringify(swapped(key))}`);
      };
      await assert.rejects(
        gather(readFile(context(get), manifest)),
        (e) => isMosaicError(e, "MOSAIC_ERR_CHUNK_CORRUPT") && /whole-file checksum/.test(e.message),
      );
    });
  }

  test("a stripe rebuilt from parity is read for the check: right bytes pass, wrong ones fail", async () => {
    const manifest = manifests.media as FileManifest;
    const lost: ReadContext["pieces"]["get"] = (node, key) =>
      key.slot === 0 ? Promise.reject(new Error("slot 0 lost")) : peers.getPiece(node, key);
    assert.ok((await gather(readFile(context(lost), manifest))).equals(expected), "rebuilt from parity");
    const wrong = { ...manifest, crc32c: (manifest.crc32c ^ 1) >>> 0 };
    await assert.rejects(gather(readFile(context(lost), wrong)), (e) =>
      isMosaicError(e, "MOSAIC_ERR_CHUNK_CORRUPT"),
    );
  });
});
