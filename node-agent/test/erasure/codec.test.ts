// The codec against the real addon: every way of losing up to m pieces must
// give back the exact stripe, and losing more must say so.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { pieceLengths, shardBytes as shardBytesOf } from "../../src/core/stripes.ts";
import * as core from "../../src/core/volume.ts";
import { layoutOf } from "../../src/core/volume.ts";
import { ERASURE_DATA_MAX, ERASURE_PARITY_MAX, ErasureCodec } from "../../src/erasure/codec.ts";
import { type ErrorCode, isMosaicError } from "../../src/errors.ts";

interface Stripe {
  codec: ErasureCodec;
  shardBytes: number;
  /** k*shardBytes: file bytes then zeros, as the writer encodes them. */
  data: Buffer;
  parity: Buffer;
  /** What the nodes hold: data pieces trimmed to their length, each its own Buffer. */
  pieces: Buffer[];
}

/** A stripe carrying `stripeBytes` random file bytes, cut the way the writer cuts it. */
async function stripeOf(k: number, m: number, chunkSizeBytes: number, stripeBytes: number): Promise<Stripe> {
  const layout = layoutOf({ chunkSizeBytes, redundancy: { erasure: { data: k, parity: m } } });
  const codec = ErasureCodec.forLayout(layout);
  const shardBytes = shardBytesOf(stripeBytes, layout);
  const data = Buffer.alloc(k * shardBytes);
  randomBytes(stripeBytes).copy(data);
  const parity = await codec.encode(data, shardBytes);
  assert.equal(parity.length, m * shardBytes);
  const pieces = pieceLengths(stripeBytes, layout).map((length, i) =>
    i < k
      ? Buffer.from(data.subarray(i * shardBytes, i * shardBytes + length))
      : Buffer.from(parity.subarray((i - k) * shardBytes, (i - k + 1) * shardBytes)),
  );
  return { codec, shardBytes, data, parity, pieces };
}

function* subsets(n: number, maxSize: number, first = 0, chosen: number[] = []): Generator<number[]> {
  yield chosen;
  if (chosen.length === maxSize) return;
  for (let i = first; i < n; i++) yield* subsets(n, maxSize, i + 1, [...chosen, i]);
}

function randomSubset(n: number, size: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [all[i], all[j]] = [all[j] as number, all[i] as number];
  }
  return all.slice(0, size).sort((a, b) => a - b);
}

function without(pieces: readonly Buffer[], lost: readonly number[]): (Buffer | undefined)[] {
  return pieces.map((piece, i) => (lost.includes(i) ? undefined : piece));
}

function expectedShard(stripe: Stripe, i: number): Buffer {
  const k = stripe.codec.dataShards;
  const s = stripe.shardBytes;
  return i < k
    ? stripe.data.subarray(i * s, (i + 1) * s)
    : stripe.parity.subarray((i - k) * s, (i - k + 1) * s);
}

async function checkRecovers(stripe: Stripe, lost: readonly number[]): Promise<void> {
  const label = `${stripe.codec.name} shard ${stripe.shardBytes} lost [${lost.join(",")}]`;
  const pieces = without(stripe.pieces, lost);
  const [decoded, shards] = await Promise.all([
    stripe.codec.decode(pieces, stripe.shardBytes),
    stripe.codec.reconstruct(pieces, stripe.shardBytes),
  ]);
  assert.ok(decoded.equals(stripe.data), `decode ${label}`);
  assert.equal(shards.length, stripe.pieces.length);
  for (const [i, shard] of shards.entries()) {
    assert.ok(shard.equals(expectedShard(stripe, i)), `reconstruct ${label}: shard ${i}`);
  }
}

async function rejectsWith(code: ErrorCode, action: () => unknown, message?: RegExp): Promise<void> {
  await assert.rejects(
    async () => action(),
    (error: unknown) => {
      assert.ok(isMosaicError(error, code), `expected ${code}, got ${String(error)}`);
      if (message) assert.match(error.message, message);
      return true;
    },
  );
}

function xorOfDataShards(stripe: Stripe): Buffer {
  const s = stripe.shardBytes;
  const sum = Buffer.alloc(s);
  for (let i = 0; i < stripe.codec.dataShards; i++) {
    for (let b = 0; b < s; b++) sum[b] = (sum[b] as number) ^ (stripe.data[i * s + b] as number);
  }
  return sum;
}

// [k, m]; the full 24+6 space is too big to walk, it gets random losses below.
const LAYOUTS: [number, number][] = [
  [1, 0],
  [1, 1],
  [1, 3],
  [2, 1],
  [3, 2],
  [4, 2],
  [5, 1],
  [6, 3],
  [8, 4],
  [10, 4],
  [2, 6],
];
const CHUNK_BYTES = 64;

describe("ErasureCodec round trip", () => {
  for (const [k, m] of LAYOUTS) {
    it(`${k}+${m}: every loss of up to ${m} pieces is rebuilt`, async () => {
      // [chunkSizeBytes, stripeBytes]
      const cases: [number, number][] = [
        [8, 8 * k], // minimum shard
        [CHUNK_BYTES, CHUNK_BYTES * k], // full stripe
        [CHUNK_BYTES, CHUNK_BYTES * k - 13], // short last data piece
        [CHUNK_BYTES, 5], // one short piece in a minimum shard, the rest empty
        [CHUNK_BYTES, Math.min(CHUNK_BYTES * k, CHUNK_BYTES + 3)], // a full piece, a 3-byte one, then empty
      ];
      for (const [chunkSizeBytes, stripeBytes] of cases) {
        const stripe = await stripeOf(k, m, chunkSizeBytes, stripeBytes);
        const originals = stripe.pieces.map((piece) => Buffer.from(piece));
        await Promise.all([...subsets(k + m, m)].map((lost) => checkRecovers(stripe, lost)));
        for (const [i, piece] of stripe.pieces.entries()) {
          assert.ok(piece.equals(originals[i] as Buffer), `piece ${i} left untouched`);
        }
      }
    });
  }

  it("larger shards, including one not a power of two", async () => {
    for (const [k, m] of [
      [3, 2],
      [6, 3],
    ] as const) {
      for (const shard of [4096, 65536 + 8]) {
        const stripe = await stripeOf(k, m, shard, k * shard - 1000);
        await Promise.all([...subsets(k + m, m)].map((lost) => checkRecovers(stripe, lost)));
      }
    }
  });

  it(`${ERASURE_DATA_MAX}+${ERASURE_PARITY_MAX}: random losses of up to ${ERASURE_PARITY_MAX} pieces`, async () => {
    const k = ERASURE_DATA_MAX;
    const m = ERASURE_PARITY_MAX;
    const stripe = await stripeOf(k, m, 256, 256 * k - 77);
    const losses: number[][] = [[], [...Array(m).keys()].map((i) => k + i), [...Array(m).keys()]];
    for (let i = 0; i < 200; i++) losses.push(randomSubset(k + m, 1 + (i % m)));
    await Promise.all(losses.map((lost) => checkRecovers(stripe, lost)));
  });

  it("parity 0 is the XOR of the data shards, and 1+m parity is copies of the data", async () => {
    for (const [k, m] of [
      [4, 2],
      [7, 3],
      [1, 4],
    ] as const) {
      const stripe = await stripeOf(k, m, 1024, k * 1024);
      assert.ok(expectedShard(stripe, k).equals(xorOfDataShards(stripe)), `${k}+${m}`);
      if (k === 1) for (let p = 0; p < m; p++) assert.ok(expectedShard(stripe, 1 + p).equals(stripe.data));
    }
  });

  it("encode is deterministic and depends on every data shard", async () => {
    const codec = new ErasureCodec(4, 2);
    const data = randomBytes(4 * 64);
    const once = await codec.encode(data, 64);
    assert.ok((await codec.encode(Buffer.from(data), 64)).equals(once));
    for (let i = 0; i < 4; i++) {
      const changed = Buffer.from(data);
      changed[i * 64 + 5] = (changed[i * 64 + 5] as number) ^ 1;
      const parity = await codec.encode(changed, 64);
      assert.ok(!parity.subarray(0, 64).equals(once.subarray(0, 64)), `parity 0 sees shard ${i}`);
      assert.ok(!parity.subarray(64).equals(once.subarray(64)), `parity 1 sees shard ${i}`);
    }
  });

  it("encode fills a given parity buffer and 0 parity shards encode to nothing", async () => {
    const codec = new ErasureCodec(3, 2);
    const data = randomBytes(3 * 16);
    const into = Buffer.alloc(2 * 16);
    assert.equal(await codec.encode(data, 16, into), into);
    assert.ok(into.equals(await codec.encode(data, 16)));

    const none = new ErasureCodec(3, 0);
    assert.equal((await none.encode(data, 16)).length, 0);
    const pieces = [data.subarray(0, 16), data.subarray(16, 32), data.subarray(32, 40)];
    const expected = Buffer.concat([data.subarray(0, 40), Buffer.alloc(8)]);
    assert.ok((await none.decode(pieces, 16)).equals(expected));
    assert.ok(Buffer.concat(await none.reconstruct(pieces, 16)).equals(expected));
  });

  it("decode into a stripe buffer leaves pieces already at their slot where they are", async () => {
    const stripe = await stripeOf(4, 2, 64, 4 * 64 - 20);
    const into = Buffer.alloc(4 * 64, 0xee);
    // Pieces 0 and 2 were read straight into place; 1 is lost; 3 arrives elsewhere.
    stripe.pieces[0]?.copy(into, 0);
    stripe.pieces[2]?.copy(into, 128);
    const pieces = [
      into.subarray(0, 64),
      undefined,
      into.subarray(128, 192),
      stripe.pieces[3],
      stripe.pieces[4],
      undefined,
    ];
    assert.equal(await stripe.codec.decode(pieces, 64, into), into);
    assert.ok(into.equals(stripe.data));
  });
});

describe("ErasureCodec losing too much", () => {
  for (const [k, m] of [
    [1, 0],
    [2, 1],
    [4, 2],
    [6, 3],
  ] as const) {
    it(`${k}+${m}: any ${m + 1} lost pieces are DATA_UNAVAILABLE`, async () => {
      const stripe = await stripeOf(k, m, 64, 64 * k);
      const expected = new RegExp(`${k - 1} of ${k + m} pieces present, ${k} needed`);
      for (const lost of subsets(k + m, m + 1)) {
        if (lost.length !== m + 1) continue;
        const pieces = without(stripe.pieces, lost);
        await rejectsWith("MOSAIC_ERR_DATA_UNAVAILABLE", () => stripe.codec.decode(pieces, 64), expected);
        await rejectsWith(
          "MOSAIC_ERR_DATA_UNAVAILABLE",
          () => stripe.codec.reconstruct(pieces, 64),
          expected,
        );
      }
    });
  }

  it("names the missing pieces", async () => {
    const stripe = await stripeOf(4, 2, 64, 256);
    const pieces = without(stripe.pieces, [0, 3, 5]);
    await rejectsWith(
      "MOSAIC_ERR_DATA_UNAVAILABLE",
      () => stripe.codec.reconstruct(pieces, 64),
      /erasure 4\+2: 3 of 6 pieces present, 4 needed .*missing 0, 3, 5/,
    );
  });
});

describe("ErasureCodec off the event loop", () => {
  it("the event loop keeps turning while 64 MiB encodes and decodes", async () => {
    const codec = new ErasureCodec(4, 2);
    const shardBytes = 16 * 1024 * 1024;
    const data = Buffer.allocUnsafe(4 * shardBytes);
    for (let offset = 0; offset < data.length; offset += 1 << 20) randomBytes(1 << 20).copy(data, offset);

    const measure = async <T>(work: () => Promise<T>): Promise<{ result: T; ticks: number }> => {
      let ticks = 0;
      let spinning = true;
      const spin = () => {
        ticks++;
        if (spinning) setImmediate(spin);
      };
      setImmediate(spin);
      try {
        return { result: await work(), ticks };
      } finally {
        spinning = false;
      }
    };

    const encoded = await measure(() => codec.encode(data, shardBytes));
    assert.ok(encoded.ticks >= 20, `only ${encoded.ticks} turns of the event loop during encode`);

    // Data shards 0 and 2 lost: a full two-shard rebuild, not the single-loss XOR shortcut.
    const pieces: (Buffer | undefined)[] = [
      undefined,
      data.subarray(shardBytes, 2 * shardBytes),
      undefined,
      data.subarray(3 * shardBytes),
      encoded.result.subarray(0, shardBytes),
      encoded.result.subarray(shardBytes),
    ];
    const decoded = await measure(() => codec.decode(pieces, shardBytes));
    assert.ok(decoded.ticks >= 20, `only ${decoded.ticks} turns of the event loop during decode`);
    assert.ok(decoded.result.equals(data));
  });
});

describe("ErasureCodec refuses misuse", () => {
  const bad = (action: () => unknown, message: RegExp) =>
    rejectsWith("MOSAIC_ERR_BAD_REQUEST", action, message);

  it("bad shapes", async () => {
    for (const [k, m] of [
      [0, 1],
      [-1, 1],
      [1.5, 1],
      [Number.NaN, 1],
      [ERASURE_DATA_MAX + 1, 1],
      [4, -1],
      [4, 0.5],
      [4, ERASURE_PARITY_MAX + 1],
    ]) {
      await bad(
        () => new ErasureCodec(k as number, m as number),
        /erasure (data|parity) shards .* must be an integer/,
      );
    }
    const replicas = layoutOf({ chunkSizeBytes: 65536, redundancy: { replicas: 3 } });
    await bad(() => ErasureCodec.forLayout(replicas), /replicas layout has no erasure codec/);
  });

  it("bad encode arguments", async () => {
    const codec = new ErasureCodec(4, 2);
    const data = Buffer.alloc(4 * 64);
    for (const shard of [0, -8, 12, 7.5, Number.NaN]) {
      await bad(() => codec.encode(data, shard), /shardBytes .* must be a positive multiple of 8/);
    }
    await bad(() => codec.encode(data, 2 ** 30), /makes a stripe over 4294967295 bytes/);
    await bad(() => codec.encode(data, 32), /data is 256 bytes, expected 128/);
    await bad(() => codec.encode(data.subarray(8), 64), /data is 248 bytes, expected 256/);
    await bad(() => codec.encode(new Uint8Array(256) as Buffer, 64), /data must be a Buffer/);
    await bad(() => codec.encode(data, 64, Buffer.alloc(64)), /parity is 64 bytes, expected 128/);
    const stripe = Buffer.alloc(6 * 64);
    await bad(
      () => codec.encode(stripe.subarray(0, 256), 64, stripe.subarray(192, 320)),
      /parity output overlaps the data/,
    );
    // Adjacent in one buffer is fine: the writer's natural layout.
    await codec.encode(stripe.subarray(0, 256), 64, stripe.subarray(256));
  });

  it("bad pieces", async () => {
    const codec = new ErasureCodec(4, 2);
    const piece = Buffer.alloc(64);
    const six = () => [piece, piece, piece, piece, piece, piece] as (Buffer | undefined)[];
    for (const recover of [codec.decode.bind(codec), codec.reconstruct.bind(codec)]) {
      await bad(() => recover(six().slice(0, 5), 64), /expected 6 pieces/);
      await bad(() => recover([...six(), piece], 64), /expected 6 pieces/);
      await bad(() => recover(six(), 12), /shardBytes 12 must be a positive multiple of 8/);
      const long = six();
      long[1] = Buffer.alloc(72);
      await bad(() => recover(long, 64), /piece 1 is 72 bytes, expected at most 64/);
      const shortParity = six();
      shortParity[5] = Buffer.alloc(56);
      await bad(() => recover(shortParity, 64), /piece 5 is 56 bytes, expected 64/);
      const notBuffer = six() as unknown[];
      notBuffer[2] = "abc";
      await bad(() => recover(notBuffer as Buffer[], 64), /piece 2 must be a Buffer or undefined/);
    }
    await bad(() => codec.decode(six(), 64, Buffer.alloc(100)), /decode output is 100 bytes, expected 256/);
    const into = Buffer.alloc(256);
    const misplaced = six();
    misplaced[1] = into.subarray(0, 64);
    await bad(() => codec.decode(misplaced, 64, into), /piece 1 overlaps the output but is not at its slot/);
    const parityInside = six();
    parityInside[4] = into.subarray(128, 192);
    await bad(
      () => codec.decode(parityInside, 64, into),
      /piece 4 overlaps the output but is not at its slot/,
    );
    assert.ok(into.equals(Buffer.alloc(256)), "a refused decode leaves its output alone");
  });
});

it("volume validation allows exactly the layouts the codec can run", () => {
  assert.equal(core.ERASURE_DATA_MAX, ERASURE_DATA_MAX);
  assert.equal(core.ERASURE_PARITY_MAX, ERASURE_PARITY_MAX);
});
