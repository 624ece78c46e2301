import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isMosaicError } from "../../src/errors.ts";
import type { Heartbeat } from "../../src/membership/heartbeat.ts";
import {
  decodeHeartbeat,
  encodeHeartbeat,
  HEARTBEAT_BYTES_MAX,
  SUSPECTS_MAX,
} from "../../src/membership/heartbeat.ts";
import type { MapMessage } from "../../src/membership/map-message.ts";
import {
  applyChanges,
  changesFrom,
  DATAGRAM_BYTES_MAX,
  decodeDatagram,
  encodeMapMessage,
  MAP_BYTES_MAX,
} from "../../src/membership/map-message.ts";

const badRequest = (e: unknown) => isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST");
const sample: Heartbeat = {
  sender: "node-1",
  channel: "B",
  incarnation: 7,
  sequence: 12345,
  epoch: 3,
  baseEpoch: 2,
  digest: "0123456789abcdef",
  suspects: [
    { peer: "node-0", fresh: true },
    { peer: "node-9", fresh: false },
  ],
};
const id = fc
  .string({ unit: "grapheme", minLength: 1, maxLength: 60 })
  .filter((s) => Buffer.byteLength(s) <= 253);
const digest = fc.stringMatching(/^[0-9a-f]{16}$/);

describe("heartbeat codec (version 2)", () => {
  test("round trip, small: one short packet", () => {
    const bytes = encodeHeartbeat(sample);
    // header 6 + sender 6 + fixed 41 + two suspects of 2 + 6 bytes.
    assert.equal(bytes.length, 6 + 6 + 41 + 2 * 8);
    assert.deepEqual(decodeHeartbeat(bytes), sample);
    assert.deepEqual(decodeDatagram(bytes), { kind: "heartbeat", heartbeat: sample });
    assert.deepEqual(decodeDatagram(encodeHeartbeat(sample, true)), { kind: "probe", heartbeat: sample });
  });

  test("round trip, any valid heartbeat, and never more than one Ethernet packet", () => {
    const heartbeat = fc.record({
      sender: id,
      channel: fc.constantFrom("A" as const, "B" as const),
      incarnation: fc.maxSafeNat(),
      sequence: fc.maxSafeNat(),
      epoch: fc.maxSafeNat(),
      baseEpoch: fc.maxSafeNat(),
      digest,
      suspects: fc.array(fc.record({ peer: id, fresh: fc.boolean() }), { maxLength: SUSPECTS_MAX }),
    });
    fc.assert(
      fc.property(heartbeat, (h) => {
        const bytes = encodeHeartbeat(h);
        assert.ok(bytes.length <= HEARTBEAT_BYTES_MAX);
        assert.deepEqual(decodeHeartbeat(bytes), { ...h, suspects: h.suspects.map((x) => ({ ...x })) });
      }),
    );
    assert.ok(HEARTBEAT_BYTES_MAX <= 1_472, `${HEARTBEAT_BYTES_MAX} bytes`);
  });

  test("garbage is refused with MOSAIC_ERR_BAD_REQUEST and nothing else", () => {
    const good = encodeHeartbeat(sample);
    const mutate = (at: number, value: number) => {
      const b = Buffer.from(good);
      b[at] = value;
      return b;
    };
    const suspectsAt = 6 + 6 + 40;
    const cases: [string, Buffer][] = [
      ["empty", Buffer.alloc(0)],
      ["short", good.subarray(0, 37)],
      ["long", Buffer.alloc(HEARTBEAT_BYTES_MAX + 1, 0x4d)],
      ["magic", mutate(0, 0x00)],
      ["version 1", mutate(2, 1)],
      ["version", mutate(2, 9)],
      ["kind", mutate(3, 7)],
      ["channel", mutate(4, 2)],
      ["sender length", mutate(5, 5)],
      ["empty sender", mutate(5, 0)],
      ["suspect count", mutate(suspectsAt, 3)],
      ["too many suspects", mutate(suspectsAt, SUSPECTS_MAX + 1)],
      ["suspect flags", mutate(suspectsAt + 1, 2)],
      ["trailing byte", Buffer.concat([good, Buffer.from([0])])],
      ["counter above 2^53", Buffer.from(good).fill(0xff, 20, 28)],
      [
        "invalid UTF-8",
        Buffer.concat([good.subarray(0, 5), Buffer.from([2, 0xc3, 0x28]), good.subarray(12)]),
      ],
    ];
    for (const [what, bytes] of cases) {
      assert.throws(() => decodeHeartbeat(bytes), badRequest, what);
      assert.throws(() => decodeDatagram(bytes), badRequest, what);
    }
  });

  test("random bytes never throw anything but MOSAIC_ERR_BAD_REQUEST", () => {
    const prefixed = fc
      .uint8Array({ maxLength: 300 })
      .map((tail) => Buffer.concat([Buffer.from([0x4d, 0x48, 2]), Buffer.from(tail)]));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
          prefixed,
        ),
        (bytes) => {
          for (const decode of [decodeHeartbeat, decodeDatagram]) {
            try {
              decode(bytes);
            } catch (e) {
              assert.ok(badRequest(e), String(e));
            }
          }
        },
      ),
    );
  });

  test("encode refuses what could not be decoded", () => {
    assert.throws(() => encodeHeartbeat({ ...sample, sender: "" }), badRequest);
    assert.throws(() => encodeHeartbeat({ ...sample, sender: "x".repeat(254) }), badRequest);
    assert.throws(() => encodeHeartbeat({ ...sample, sequence: -1 }), badRequest);
    assert.throws(() => encodeHeartbeat({ ...sample, epoch: 1.5 }), badRequest);
    assert.throws(() => encodeHeartbeat({ ...sample, channel: "C" as "A" }), badRequest);
    assert.throws(() => encodeHeartbeat({ ...sample, digest: "xyz" }), badRequest);
    const five = Array.from({ length: SUSPECTS_MAX + 1 }, (_, i) => ({ peer: `n${i}`, fresh: true }));
    assert.throws(() => encodeHeartbeat({ ...sample, suspects: five }), badRequest);
  });
});

describe("map codec", () => {
  const base = {
    epoch: 5,
    nodes: ["a", "b", "c", "d"].map((n) => ({
      id: n,
      addresses: [`${n}:1`, `${n}:2`] as [string, string],
      state: "up" as const,
    })),
  };
  const message = (over: Partial<MapMessage> = {}): MapMessage => ({
    sender: "a",
    channel: "A",
    epoch: 7,
    digest: "00000000000000aa",
    proposer: "c",
    baseEpoch: 5,
    baseDigest: "00000000000000bb",
    entries: [
      { id: "b", state: "down", outEpoch: 0 },
      { id: "d", state: "out", outEpoch: 7 },
    ],
    ...over,
  });

  test("a map travels as its changes from the base, and comes back whole", () => {
    const map = applyChanges(base, 7, message().entries);
    assert.ok(map !== undefined);
    assert.deepEqual(
      map.nodes.map((n) => [n.id, n.state, n.outEpoch]),
      [
        ["a", "up", undefined],
        ["b", "down", undefined],
        ["c", "up", undefined],
        ["d", "out", 7],
      ],
    );
    assert.deepEqual(changesFrom(base, map), message().entries);
    assert.equal(
      applyChanges(base, 7, [{ id: "zz", state: "down", outEpoch: 0 }]),
      undefined,
      "unknown node",
    );
    assert.deepEqual(decodeDatagram(encodeMapMessage(message())), { kind: "map", map: message() });
    assert.deepEqual(decodeDatagram(encodeMapMessage(message({ proposer: "" }))), {
      kind: "map",
      map: message({ proposer: "" }),
    });
  });

  test("garbage maps are refused; a map never outgrows one datagram", () => {
    const good = encodeMapMessage(message());
    const at = (offset: number, value: number) => {
      const b = Buffer.from(good);
      b[offset] = value;
      return b;
    };
    const body = 6 + 1; // header with sender "a"
    const entriesAt = body + 8 + 8 + 8 + 8 + 2; // epochs, digests, proposer "c"
    for (const [what, bytes] of [
      ["truncated", good.subarray(0, good.length - 1)],
      ["trailing", Buffer.concat([good, Buffer.from([1])])],
      ["entry count", at(entriesAt, 3)],
      ["state", at(entriesAt + 4, 9)],
      ["outEpoch while down", at(entriesAt + 5, 1)],
      ["oversized", Buffer.alloc(DATAGRAM_BYTES_MAX + 1)],
    ] as [string, Buffer][])
      assert.throws(() => decodeDatagram(bytes), badRequest, what);
    const many = Array.from({ length: 300 }, (_, i) => ({
      id: `${"x".repeat(240)}${i}`,
      state: "down" as const,
      outEpoch: 0,
    }));
    assert.throws(() => encodeMapMessage(message({ entries: many })), badRequest);
    assert.ok(MAP_BYTES_MAX < 65_507);
    const twice = [...message().entries, { id: "b", state: "up" as const, outEpoch: 0 }];
    assert.throws(() => encodeMapMessage(message({ entries: twice })), badRequest);
  });
});

describe("map codec, with the base along", () => {
  test("a peer on another base gets the base whole, and it round-trips", () => {
    const base = {
      epoch: 9,
      nodes: [
        {
          id: "a",
          addresses: ["198.18.0.1:7100", "198.19.0.1:7100"] as [string, string],
          state: "up" as const,
        },
        {
          id: "b",
          addresses: ["198.18.0.2:7100", "198.19.0.2:7100"] as [string, string],
          state: "out" as const,
          outEpoch: 4,
        },
      ],
    };
    const m: MapMessage = {
      sender: "a",
      channel: "B",
      epoch: 10,
      digest: "00000000000000aa",
      proposer: "a",
      baseEpoch: 9,
      baseDigest: "00000000000000bb",
      entries: [],
      base,
    };
    assert.deepEqual(decodeDatagram(encodeMapMessage(m)), { kind: "map", map: m });
    assert.throws(() => encodeMapMessage({ ...m, baseEpoch: 8 }), badRequest, "base of another epoch");
    const bytes = encodeMapMessage(m);
    assert.throws(() => decodeDatagram(Buffer.concat([bytes, Buffer.from([0])])), badRequest);
    assert.throws(() => decodeDatagram(bytes.subarray(0, bytes.length - 3)), badRequest);
  });
});
