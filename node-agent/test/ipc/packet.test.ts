// The FIFO packet format: round trips, and tens of thousands of generated
// malformed inputs (random bytes, truncations, bit flips, oversized bodies,
// garbage between packets) that must only ever produce MosaicErrors, and never
// cost the real packets around them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { crc32c } from "@node-rs/crc32";
import fc from "fast-check";
import { MosaicError } from "../../src/errors.ts";
import {
  decodePacket,
  encodePacket,
  PACKET_HEADER_BYTES,
  PACKET_MAX_BODY_BYTES,
  type Packet,
  PacketReader,
  PacketType,
  PIPE_BUF_BYTES,
} from "../../src/ipc/packet.ts";

const arbPacket: fc.Arbitrary<Packet> = fc
  .record({
    type: fc.constantFrom(...Object.values(PacketType)),
    clientId: fc.nat({ max: 0xffff_ffff }),
    requestId: fc.nat({ max: 0xffff_ffff }),
    body: fc.oneof(
      fc.record({ op: fc.constantFrom("get", "put", "stat"), volume: fc.string(), name: fc.string() }),
      fc.string({ maxLength: 1000 }),
      fc.constant(null),
    ),
  })
  .map((p) => JSON.parse(JSON.stringify(p)) as Packet); // plain prototypes, as JSON gives back

function onlyMosaicErrors(run: () => void): void {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof MosaicError, `threw a non-MosaicError: ${String(error)}`);
    assert.match(error.code, /^MOSAIC_ERR_(BAD_REQUEST|MESSAGE_TOO_LARGE)$/);
  }
}

test("packets round-trip and always fit PIPE_BUF", () => {
  fc.assert(
    fc.property(arbPacket, (packet) => {
      const bytes = encodePacket(packet);
      assert.ok(bytes.length <= PIPE_BUF_BYTES);
      assert.deepEqual(decodePacket(bytes), packet);
    }),
    { numRuns: 2_000 },
  );
});

test("an oversized body is refused at encode with a clear error", () => {
  assert.throws(
    () => encodePacket({ type: PacketType.REQUEST, clientId: 1, requestId: 1, body: "x".repeat(5000) }),
    (error: MosaicError) => {
      assert.equal(error.code, "MOSAIC_ERR_MESSAGE_TOO_LARGE");
      assert.match(error.message, /exceeds 4076 .*PIPE_BUF/);
      return true;
    },
  );
  assert.throws(
    () => encodePacket({ type: 9 as 1, clientId: 1, requestId: 1, body: null }),
    /unknown type 9/,
  );
  assert.throws(
    () => encodePacket({ type: 1, clientId: -1, requestId: 1, body: null }),
    /clientId must be a u32/,
  );
});

test("10,000+ malformed inputs to decodePacket: only MosaicErrors, each naming the problem", () => {
  const random = fc.uint8Array({ minLength: 0, maxLength: 6000 }).map((a) => Buffer.from(a));
  const truncated = fc.tuple(arbPacket, fc.nat()).map(([p, n]) => {
    const bytes = encodePacket(p);
    return bytes.subarray(0, n % bytes.length);
  });
  const flipped = fc.tuple(arbPacket, fc.nat(), fc.integer({ min: 1, max: 255 })).map(([p, at, x]) => {
    const bytes = Buffer.from(encodePacket(p));
    const i = at % bytes.length;
    bytes[i] = (bytes[i] as number) ^ x;
    return bytes;
  });
  const oversized = fc
    .tuple(arbPacket, fc.integer({ min: PACKET_MAX_BODY_BYTES + 1, max: 0xffff }))
    .map(([p, n]) => {
      const bytes = Buffer.from(encodePacket(p));
      bytes.writeUInt16LE(n, 6);
      return bytes;
    });
  const trailing = fc
    .tuple(arbPacket, fc.uint8Array({ minLength: 1, maxLength: 30 }))
    .map(([p, extra]) => Buffer.concat([encodePacket(p), extra]));
  let count = 0;
  fc.assert(
    fc.property(fc.oneof(random, truncated, flipped, oversized, trailing), (bytes) => {
      count++;
      let decoded: Packet | undefined;
      onlyMosaicErrors(() => {
        decoded = decodePacket(bytes);
      });
      // A one-byte flip can only survive the checksum if it flipped nothing that matters.
      if (decoded) assert.ok(bytes.length >= PACKET_HEADER_BYTES);
    }),
    { numRuns: 12_000 },
  );
  assert.ok(count >= 10_000);
  for (const value of [undefined, null, "MSPK", 42, {}] as unknown[]) {
    onlyMosaicErrors(() => decodePacket(value as Buffer));
  }
});

test("10,000+ streams of packets and garbage, cut anywhere: every real packet is recovered, in order", () => {
  const garbage = fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => ({ garbage: Buffer.from(a) }));
  const damaged = fc.tuple(arbPacket, fc.nat()).map(([p, n]) => {
    // Cut at least 4 bytes short: garbage after it could otherwise complete it by chance (1 in 256 per byte).
    const bytes = encodePacket(p);
    return { garbage: bytes.subarray(0, 1 + (n % (Math.min(bytes.length, PACKET_HEADER_BYTES + 3) - 4))) };
  });
  const item = fc.oneof(
    { weight: 3, arbitrary: arbPacket.map((packet) => ({ packet })) },
    { weight: 1, arbitrary: garbage },
    { weight: 1, arbitrary: damaged },
  );
  let count = 0;
  fc.assert(
    fc.property(fc.array(item, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 8 }), (items, cuts) => {
      count++;
      const sent: Packet[] = [];
      const parts: Buffer[] = [];
      for (const it of items) {
        if ("packet" in it) {
          sent.push(it.packet);
          parts.push(encodePacket(it.packet));
        } else parts.push(it.garbage);
      }
      const stream = Buffer.concat(parts);
      const at = [...new Set(cuts.map((c) => (stream.length ? c % stream.length : 0)))].sort((a, b) => a - b);
      const reader = new PacketReader();
      const got: Packet[] = [];
      let from = 0;
      for (const cut of [...at, stream.length]) {
        const { packets, malformed } = reader.push(stream.subarray(from, cut));
        for (const m of malformed) assert.ok(m.error instanceof MosaicError);
        got.push(...packets);
        from = cut;
      }
      got.push(...reader.flush().packets);
      assert.ok(reader.pendingBytes === 0);
      // Garbage may by chance hold a well-formed packet only with a matching crc32c: not in 10,000 runs.
      assert.deepEqual(got, sent);
    }),
    { numRuns: 10_000 },
  );
  assert.ok(count >= 10_000);
});

test("the reader keeps at most one partial packet, and reports each run of garbage once", () => {
  const reader = new PacketReader();
  const a = encodePacket({ type: PacketType.REQUEST, clientId: 7, requestId: 1, body: { op: "get" } });
  const r1 = reader.push(Buffer.concat([Buffer.from("hello garbage"), a, a.subarray(0, 10)]));
  assert.equal(r1.packets.length, 1);
  assert.equal(r1.malformed.length, 1);
  assert.match(r1.malformed[0]?.error.message ?? "", /no magic/);
  assert.equal(reader.pendingBytes, 10);
  const r2 = reader.push(a.subarray(10));
  assert.equal(r2.packets.length, 1);
  assert.equal(reader.pendingBytes, 0);
  reader.push(a.subarray(0, 15));
  const r3 = reader.flush();
  assert.equal(r3.packets.length, 0);
  assert.match(r3.malformed[0]?.error.message ?? "", /truncated: 15 of 20 bytes/);
});

test("a sound frame with a non-JSON body names its sender, so the agent can answer it", () => {
  const good = encodePacket({ type: PacketType.REQUEST, clientId: 42, requestId: 9, body: "xx" });
  const broken = Buffer.from(good);
  broken.write("{", PACKET_HEADER_BYTES); // body now `{x"`
  broken.writeUInt32LE(crc32c(broken.subarray(PACKET_HEADER_BYTES), crc32c(broken.subarray(0, 16))), 16);
  const { packets, malformed } = new PacketReader().push(broken);
  assert.equal(packets.length, 0);
  assert.equal(malformed[0]?.clientId, 42);
  assert.equal(malformed[0]?.requestId, 9);
  assert.match(malformed[0]?.error.message ?? "", /body is not JSON/);
});
