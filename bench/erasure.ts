// Erasure coding throughput against memcpy measured in the same run, so the
// figures travel between machines as ratios. Counts file data only: a k+m
// encode of k MiB is k MiB/op, whatever parity it writes. Decode rebuilds m
// lost data shards from the other k-m and all m parity, and includes copying
// the received pieces into place, which the read path pays too. One operation
// in flight at a time: this is one stream's speed, not the machine's.
//
//   node bench/erasure.ts
import { randomFillSync } from "node:crypto";
import { availableParallelism, cpus } from "node:os";
import { ErasureCodec } from "../node-agent/src/erasure/codec.ts";
import { median } from "./lib/stats.ts";

const LAYOUTS: [number, number][] = [
  [2, 1],
  [4, 2],
  [8, 3],
];
const SHARD_BYTES = 1024 * 1024;
const ROUNDS = 5;
const ROUND_MS = 150;
const MB = 1e6;

/** MB/s of `bytesPerOp` over as many back-to-back ops as fit in ROUND_MS. */
async function rate(bytesPerOp: number, op: () => unknown): Promise<number> {
  let ops = 0;
  const started = performance.now();
  let elapsedMs = 0;
  do {
    await op();
    ops++;
    elapsedMs = performance.now() - started;
  } while (elapsedMs < ROUND_MS);
  return (ops * bytesPerOp) / MB / (elapsedMs / 1000);
}

async function benchLayout(k: number, m: number): Promise<string> {
  const codec = new ErasureCodec(k, m);
  const dataBytes = k * SHARD_BYTES;
  const data = randomFillSync(Buffer.allocUnsafe(dataBytes));
  const parity = Buffer.allocUnsafe(m * SHARD_BYTES);
  await codec.encode(data, SHARD_BYTES, parity);

  // As the pieces arrive off the network: separate buffers, the first m data shards lost.
  const pieces: (Buffer | undefined)[] = [];
  for (let i = 0; i < k; i++) {
    pieces.push(i < m ? undefined : Buffer.from(data.subarray(i * SHARD_BYTES, (i + 1) * SHARD_BYTES)));
  }
  for (let i = 0; i < m; i++)
    pieces.push(Buffer.from(parity.subarray(i * SHARD_BYTES, (i + 1) * SHARD_BYTES)));
  const decoded = Buffer.allocUnsafe(dataBytes);
  await codec.decode(pieces, SHARD_BYTES, decoded);
  if (!decoded.equals(data)) throw new Error(`${codec.name}: decode gave back different bytes`);

  const copy = Buffer.allocUnsafe(dataBytes);
  const encode: number[] = [];
  const decode: number[] = [];
  const memcpy: number[] = [];
  // Round 0 warms up; the three are interleaved so drift hits them alike.
  for (let round = 0; round <= ROUNDS; round++) {
    const e = await rate(dataBytes, () => codec.encode(data, SHARD_BYTES, parity));
    const d = await rate(dataBytes, () => codec.decode(pieces, SHARD_BYTES, decoded));
    const c = await rate(dataBytes, () => data.copy(copy));
    if (round === 0) continue;
    encode.push(e);
    decode.push(d);
    memcpy.push(c);
  }
  const [e, d, c] = [median(encode), median(decode), median(memcpy)];
  return (
    `erasure ${k}+${m} encode_MBps=${e.toFixed(0)} decode_MBps=${d.toFixed(0)} memcpy_MBps=${c.toFixed(0)} ` +
    `encode/memcpy=${(e / c).toFixed(3)} decode/memcpy=${(d / c).toFixed(3)}`
  );
}

const cpu = cpus()[0]?.model ?? "unknown cpu";
console.log(
  `# node ${process.version}, ${availableParallelism()} cpus (${cpu}), shard ${SHARD_BYTES} bytes, ` +
    `${ROUNDS} rounds of ${ROUND_MS} ms, medians, MB = ${MB} bytes of file data`,
);
for (const [k, m] of LAYOUTS) console.log(await benchLayout(k, m));
