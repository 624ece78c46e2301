// Ranged piece reads across three real agents in this process (real gRPC,
// real chunk files): a byte range of an erasure-coded file asks each holder
// for only the part of its piece it needs, through the HTTP gateway and
// through readFileRange, and gets exactly the source's bytes back: ranges at
// the start, middle and end of a piece, across pieces and stripes, one byte,
// the short last stripe. A holder whose piece has a flipped bit outside the
// range asked, in a 64 KiB block the range touches, still refuses it (it
// checks every block it reads), and the reader
// rebuilds the stripe from parity, whether the holder is a peer or itself.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Agent } from "../../src/agent.ts";
import { placeFileStripe } from "../../src/core/file-placement.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import type { ReadContext } from "../../src/data/context.ts";
import { type ReadStats, readFileRange } from "../../src/data/file-reader.ts";
import { type PieceBytes, PieceIO } from "../../src/data/pieces.ts";
import { silentLogger } from "../../src/log.ts";
import type { PieceRange } from "../../src/rpc/messages.ts";
import { PeerClients } from "../../src/rpc/peer-client.ts";
import { headerLengthOf, type PieceKey } from "../../src/storage/chunk-format.ts";
import { ChunkLayout } from "../../src/storage/chunk-layout.ts";
import { ask, type GatewayCluster, startGatewayCluster } from "../gateway/gateway-cluster.ts";
import { gather, patternBytes } from "../helpers/in-process-cluster.ts";
import { flipBit } from "./flip-bit.ts";

const CHUNK = 256 * 1024; // the test "media" volume: erasure 2+1 of 256 KiB chunks
const STRIPE = 2 * CHUNK;
const SIZE = 3 * STRIPE + CHUNK + 7; // the last stripe: a whole first piece and 7 bytes in the second

/** The agent's own piece I/O, counting what the reader asks of it: whole pieces, and bytes of ranges. */
class CountedPieces extends PieceIO {
  wholePieces = 0;
  rangeBytes = 0;

  override async get(node: string, key: PieceKey): Promise<PieceBytes> {
    this.wholePieces++;
    return super.get(node, key);
  }

  override async getRange(node: string, key: PieceKey, range: PieceRange): Promise<PieceBytes> {
    const got = await super.getRange(node, key, range);
    this.rangeBytes += got.data.reduce((n, b) => n + b.length, 0);
    return got;
  }
}

describe("ranged piece reads", { timeout: 300_000 }, () => {
  let g: GatewayCluster;
  let bytes: Buffer;
  let manifest: FileManifest;
  const peers: PeerClients[] = [];
  const NAME = "ranged/clip.bin";

  /** A reader on `agent`, as its file service reads, with its piece I/O counted. */
  const readerOn = (agent: Agent) => {
    const log = silentLogger();
    const clients = new PeerClients({ map: () => agent.map, log });
    peers.push(clients);
    const pieces = new CountedPieces(agent.nodeId, agent.store, clients, log);
    const ctx: ReadContext = { self: agent.nodeId, map: () => agent.map, log, stripesInFlight: 2, pieces };
    return { ctx, pieces };
  };

  const read = async (ctx: ReadContext, start: number, end: number, stats?: ReadStats) =>
    gather(readFileRange(ctx, manifest, start, end, stats));

  /** Reads [start, end) and checks it is the source's bytes, rebuilt because `corrupt`'s holder refused its piece. */
  const readRebuilt = async (
    ctx: ReadContext,
    start: number,
    end: number,
    corrupt: { stripe: number; slot: number; holder: Agent },
  ) => {
    const stats: ReadStats = { degradedStripes: 0, failedPieces: [] };
    const got = await read(ctx, start, end, stats);
    assert.ok(got.equals(bytes.subarray(start, end)), "rebuilt from parity, byte for byte");
    assert.equal(stats.degradedStripes, 1);
    const failed = stats.failedPieces.find((f) => f.stripe === corrupt.stripe && f.slot === corrupt.slot);
    assert.equal(failed?.node, corrupt.holder.nodeId, JSON.stringify(stats.failedPieces));
    assert.match(String(failed?.reason), /checksum mismatch/);
  };

  /** Flips one data byte of `stripe`'s piece in `slot`, on its holder's disk; returns the holder. */
  const corrupt = async (stripe: number, slot: number, offset: number): Promise<Agent> => {
    const holderId = placeFileStripe((g.cluster.agents[0] as Agent).map, manifest, stripe)[slot];
    const holder = g.cluster.agents.find((a) => a.nodeId === holderId) as Agent;
    const key = { volume: manifest.volume, fileId: manifest.fileId, version: manifest.version, stripe, slot };
    await flipBit(new ChunkLayout(holder.store.dir).chunkPath(key), headerLengthOf(manifest.volume) + offset);
    return holder;
  };

  before(async () => {
    g = await startGatewayCluster(3);
    bytes = await gather(patternBytes(SIZE, 7));
    await g.cluster.client(0).put("media", NAME, patternBytes(SIZE, 7), SIZE);
    manifest = await (g.cluster.agents[0] as Agent).files.manifest("media", NAME);
  });
  after(async () => {
    for (const p of peers) p.close();
    await g?.stop();
  });

  // [start, end) in the file, and what it is.
  const RANGES: [number, number, string][] = [
    [0, 1, "the first byte"],
    [CHUNK + 12_345, CHUNK + 12_346, "one byte inside a piece"],
    [SIZE - 1, SIZE, "the last byte"],
    [STRIPE, STRIPE + 1000, "the start of a piece"],
    [STRIPE + 1000, STRIPE + 90_000, "the middle of a piece"],
    [STRIPE + CHUNK - 5000, STRIPE + CHUNK, "the end of a piece"],
    [STRIPE, STRIPE + CHUNK, "exactly one piece"],
    [CHUNK - 10, CHUNK + 10, "across two pieces of a stripe"],
    [STRIPE - 10, STRIPE + 10, "across two stripes"],
    [CHUNK + 5, 2 * STRIPE + 17, "across three stripes"],
    [3 * STRIPE + CHUNK - 3, SIZE, "into the short last piece"],
    [0, SIZE, "the whole file"],
  ];

  test("through readFileRange on each agent: exactly the source's bytes, and only the range's bytes fetched", async () => {
    for (const agent of g.cluster.agents) {
      const { ctx, pieces } = readerOn(agent);
      for (const [start, end, what] of RANGES) {
        pieces.wholePieces = 0;
        pieces.rangeBytes = 0;
        const stats: ReadStats = { degradedStripes: 0, failedPieces: [] };
        const got = await read(ctx, start, end, stats);
        assert.ok(got.equals(bytes.subarray(start, end)), `${what} [${start}, ${end}) on ${agent.nodeId}`);
        assert.equal(stats.degradedStripes, 0, `${what}: ${JSON.stringify(stats.failedPieces)}`);
        assert.equal(pieces.wholePieces, 0, `${what}: no whole piece asked`);
        assert.equal(pieces.rangeBytes, end - start, `${what}: the holders sent the range's bytes alone`);
      }
    }
  });

  test("through every agent's gateway: 206 with exactly those bytes", async () => {
    for (const [i] of g.gateways.entries()) {
      for (const [start, end, what] of RANGES) {
        const reply = await ask(g.url(i), `/v1/media/${NAME}`, {
          headers: { range: `bytes=${start}-${end - 1}` },
        });
        assert.equal(reply.status, 206, what);
        assert.ok(reply.body.equals(bytes.subarray(start, end)), `${what} via gateway ${i}`);
      }
    }
  });

  test("a peer's piece with a flipped bit outside the range is refused by its holder; the stripe is rebuilt", async () => {
    // Stripe 1, slot 0: asked for bytes 0..99 of it, corrupt at byte 60_000 (the same 64 KiB block).
    const holder = await corrupt(1, 0, 60_000);
    const reader = g.cluster.agents.find((a) => a !== holder) as Agent;
    await readRebuilt(readerOn(reader).ctx, STRIPE, STRIPE + 100, { stripe: 1, slot: 0, holder });
    const reply = await ask(g.url(g.cluster.agents.indexOf(reader)), `/v1/media/${NAME}`, {
      headers: { range: `bytes=${STRIPE}-${STRIPE + 99}` },
    });
    assert.equal(reply.status, 206);
    assert.ok(reply.body.equals(bytes.subarray(STRIPE, STRIPE + 100)), "the gateway serves it rebuilt too");
  });

  test("this node's own piece with a flipped bit outside the range is caught on the local read too", async () => {
    // Stripe 2, slot 1, read on its holder: bytes 10..19 of the piece asked, byte 50_000 (same block) corrupt.
    const holder = await corrupt(2, 1, 50_000);
    const { ctx, pieces } = readerOn(holder);
    const start = 2 * STRIPE + CHUNK + 10;
    await readRebuilt(ctx, start, start + 10, { stripe: 2, slot: 1, holder });
    assert.ok(pieces.wholePieces >= 2, "the rebuild fetched whole pieces");
  });
});
