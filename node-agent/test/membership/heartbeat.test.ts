import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isMosaicError } from "../../src/errors.ts";
import type { Heartbeat } from "../../src/membership/heartbeat.ts";
import { decodeHeartbeat, encodeHeartbeat, HEARTBEAT_BYTES_MAX } from "../../src/membership/heartbeat.ts";

const badRequest = (e: unknown) => isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST");
const sample: Heartbeat = { sender: "node-1", channel: "B", incarnation: 7, sequence: 12345, epoch: 3 };

describe("heartbeat codec", () => {
  test("round trip, small", () => {
    const bytes = encodeHeartbeat(sample);
    assert.equal(bytes.length, 29 + 6);
    assert.deepEqual(decodeHeartbeat(bytes), sample);
  });

  test("round trip, any valid heartbeat", () => {
    const heartbeat = fc.record({
      sender: fc
        .string({ unit: "grapheme", minLength: 1, maxLength: 60 })
        .filter((s) => Buffer.byteLength(s) <= 253),
      channel: fc.constantFrom("A" as const, "B" as const),
      incarnation: fc.maxSafeNat(),
      sequence: fc.maxSafeNat(),
      epoch: fc.maxSafeNat(),
    });
    fc.assert(fc.property(heartbeat, (h) => assert.deepEqual(decodeHeartbeat(encodeHeartbeat(h)), { ...h })));
  });

  test("garbage is refused with MOSAIC_ERR_BAD_REQUEST and nothing else", () => {
    const good = encodeHeartbeat(sample);
    const mutate = (at: number, value: number) => {
      const b = Buffer.from(good);
      b[at] = value;
      return b;
    };
    const cases: [string, Buffer][] = [
      ["empty", Buffer.alloc(0)],
      ["short", good.subarray(0, 29)],
      ["long", Buffer.alloc(HEARTBEAT_BYTES_MAX + 1, 0x4d)],
      ["magic", mutate(0, 0x00)],
      ["version", mutate(2, 9)],
      ["channel", mutate(3, 2)],
      ["sender length", mutate(28, 5)],
      ["trailing byte", Buffer.concat([good, Buffer.from([0])])],
      ["counter above 2^53", Buffer.from(good).fill(0xff, 12, 20)],
      ["invalid UTF-8", Buffer.concat([good.subarray(0, 28), Buffer.from([2, 0xc3, 0x28])])],
    ];
    for (const [what, bytes] of cases) assert.throws(() => decodeHeartbeat(bytes), badRequest, what);
  });

  test("random bytes never throw anything but MOSAIC_ERR_BAD_REQUEST", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decodeHeartbeat(Buffer.from(bytes));
        } catch (e) {
          assert.ok(badRequest(e), String(e));
        }
      }),
    );
  });

  test("encode refuses what could not be decoded", () => {
    assert.throws(() => encodeHeartbeat({ ...sample, sender: "" }), badRequest);
    assert.throws(() => encodeHeartbeat({ ...sample, sender: "x".repeat(254) }), badRequest);
    assert.throws(() => encodeHeartbeat({ ...sample, sequence: -1 }), badRequest);
    assert.throws(() => encodeHeartbeat({ ...sample, epoch: 1.5 }), badRequest);
    assert.throws(() => encodeHeartbeat({ ...sample, channel: "C" as "A" }), badRequest);
  });
});
