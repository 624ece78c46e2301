// Garbage against a real agent's gRPC port, on both of its services, with a
// raw client that validates nothing: every bad call must end with a clear
// status (code and details naming the problem), and the agent must stay up,
// keep serving normal puts and gets, and not grow its memory without bound.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { crc32c } from "@node-rs/crc32";
import fc from "fast-check";
import { HEADER_MAX_BYTES, MESSAGE_MAX_BYTES } from "../../src/rpc/wire.ts";
import { exists } from "../helpers/chunk-files.ts";
import { expectTestFile, putTestFile, testFile } from "../helpers/cluster-files.ts";
import { MiB, type ProcessCluster, startProcessCluster } from "../helpers/process-cluster.ts";
import {
  filesPath,
  json,
  peerPath,
  RawGrpc,
  type RawGrpc as RawGrpcType,
  type RawOutcome,
} from "../helpers/raw-grpc.ts";

const TARGET = 0;
const FILE_ID = "0123456789abcdef0123456789abcdef";
const KEY = { volume: "media", fileId: FILE_ID, version: 1, stripe: 0, slot: 0 };

interface Case {
  name: string;
  call: (raw: RawGrpcType) => Promise<RawOutcome>;
  code: status;
  mosaicCode?: string;
  details: RegExp;
}

function pieceHeader(data: Buffer, overrides: Record<string, unknown> = {}): Buffer {
  return json({ key: KEY, dataLengthBytes: data.length, crc32c: crc32c(data), ...overrides });
}

const putFile =
  (header: Buffer, ...data: Buffer[]) =>
  (raw: RawGrpcType) =>
    raw.clientStream(filesPath("put"), [header, ...data]);

const CASES: Case[] = [
  {
    name: "Files/Put: random bytes as the header",
    call: putFile(Buffer.concat([Buffer.from([0xff, 0xfe, 0x00]), randomBytes(200)])),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /put request: not a JSON header \(203 bytes\)/,
  },
  {
    name: "Files/Put: truncated JSON header",
    call: putFile(Buffer.from('{"op":"put","volume":"media","name":"a.b')),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /not a JSON header/,
  },
  {
    name: "Files/Put: JSON of the wrong shape (an array)",
    call: putFile(json([1, 2, 3])),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /file request: must be a JSON object/,
  },
  {
    name: "Files/Put: volume of the wrong type",
    call: putFile(json({ op: "put", volume: 7, name: "x" })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /volume must be a non-empty string/,
  },
  {
    name: "Files/Put: negative sizeBytes",
    call: putFile(json({ op: "put", volume: "media", name: "x", sizeBytes: -1 })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /sizeBytes must be an integer from 0/,
  },
  {
    name: "Files/Put: a header over 64 KiB",
    call: putFile(json({ op: "put", volume: "media", name: "x", pad: "a".repeat(HEADER_MAX_BYTES + 10) })),
    code: status.RESOURCE_EXHAUSTED,
    mosaicCode: "MOSAIC_ERR_MESSAGE_TOO_LARGE",
    details: /header of \d+ bytes exceeds 65536/,
  },
  {
    name: "Files/Put: no header at all (stream ends at once)",
    call: (raw) => raw.clientStream(filesPath("put"), []),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /stream ended before its header/,
  },
  {
    name: "Files/Put: more data than announced",
    call: putFile(json({ op: "put", volume: "media", name: "bad/more.bin", sizeBytes: 10 }), randomBytes(20)),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /more data than the announced 10 bytes/,
  },
  {
    name: "Files/Put: less data than announced",
    call: putFile(
      json({ op: "put", volume: "media", name: "bad/less.bin", sizeBytes: 100 }),
      randomBytes(10),
    ),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /stream ended after 10 of the announced 100 bytes/,
  },
  {
    name: "Files/Put: a data message over the message limit",
    call: putFile(
      json({ op: "put", volume: "media", name: "bad/huge.bin" }),
      Buffer.alloc(MESSAGE_MAX_BYTES + 1),
    ),
    code: status.RESOURCE_EXHAUSTED,
    details: /larger than max/i,
  },
  {
    name: "Files/Put: a name with ../",
    call: putFile(json({ op: "put", volume: "media", name: "../etc/passwd" }), randomBytes(10)),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_NAME",
    details: /file name "\.\.\/etc\/passwd": has a '\.' or '\.\.' path segment/,
  },
  {
    name: "Files/Get: a name with ../ in the middle",
    call: (raw) =>
      raw.serverStream(filesPath("get"), json({ op: "get", volume: "media", name: "a/../../b" })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_NAME",
    details: /file name "a\/\.\.\/\.\.\/b"/,
  },
  {
    name: "Files/Get: an unknown volume",
    call: (raw) => raw.serverStream(filesPath("get"), json({ op: "get", volume: "nope", name: "a" })),
    code: status.NOT_FOUND,
    mosaicCode: "MOSAIC_ERR_UNKNOWN_VOLUME",
    details: /no volume named "nope" \(volumes: media, replicated\)/,
  },
  {
    name: "Files/Stat: an unknown op",
    call: (raw) => raw.unary(filesPath("stat"), json({ op: "explode", volume: "media", name: "a" })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /unknown op "explode"/,
  },
  {
    name: "Files/Stat: an op that is not the method's",
    call: (raw) => raw.unary(filesPath("stat"), json({ op: "delete", volume: "media", name: "a" })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /stat request: op is "delete"/,
  },
  {
    name: "Files/List: a 2 MiB unary message",
    call: (raw) => raw.unary(filesPath("list"), Buffer.alloc(2 * MiB, 0x20)),
    code: status.RESOURCE_EXHAUSTED,
    details: /larger than max/i,
  },
  {
    name: "Peer/PutPiece: more data than its header announces",
    call: (raw) => {
      const data = randomBytes(20);
      return raw.clientStream(peerPath("putPiece"), [pieceHeader(data.subarray(0, 10)), data]);
    },
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /PutPiece: more than the announced 10 bytes/,
  },
  {
    name: "Peer/PutPiece: a crc that does not match the data",
    call: (raw) => {
      const data = randomBytes(10);
      return raw.clientStream(peerPath("putPiece"), [pieceHeader(data, { crc32c: 12345 }), data]);
    },
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /received 10 bytes crc 0x[0-9a-f]+, header announced 10 bytes crc 0x3039/,
  },
  {
    name: "Peer/PutPiece: a piece larger than the volume's chunk",
    call: (raw) =>
      raw.clientStream(peerPath("putPiece"), [json({ key: KEY, dataLengthBytes: MiB + 1, crc32c: 0 })]),
    code: status.RESOURCE_EXHAUSTED,
    mosaicCode: "MOSAIC_ERR_MESSAGE_TOO_LARGE",
    details: /piece of 1048577 bytes exceeds volume media's chunk size 1048576/,
  },
  {
    name: "Peer/PutPiece: a data message over the message limit",
    call: (raw) =>
      raw.clientStream(peerPath("putPiece"), [
        json({ key: KEY, dataLengthBytes: MiB, crc32c: 0 }),
        Buffer.alloc(MESSAGE_MAX_BYTES + 1),
      ]),
    code: status.RESOURCE_EXHAUSTED,
    details: /larger than max/i,
  },
  {
    name: "Peer/PutPiece: path traversal in the volume",
    call: (raw) => {
      const data = randomBytes(10);
      return raw.clientStream(peerPath("putPiece"), [
        pieceHeader(data, { key: { ...KEY, volume: "../../etc" } }),
        data,
      ]);
    },
    code: status.NOT_FOUND,
    mosaicCode: "MOSAIC_ERR_UNKNOWN_VOLUME",
    details: /no volume named "\.\.\/\.\.\/etc"/,
  },
  {
    name: "Peer/PutPiece: a negative version",
    call: (raw) => {
      const data = randomBytes(10);
      return raw.clientStream(peerPath("putPiece"), [
        pieceHeader(data, { key: { ...KEY, version: -1 } }),
        data,
      ]);
    },
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /version must be an integer from 0/,
  },
  {
    name: "Peer/GetPiece: path traversal in the volume",
    call: (raw) => raw.serverStream(peerPath("getPiece"), json({ key: { ...KEY, volume: "../../etc" } })),
    code: status.NOT_FOUND,
    mosaicCode: "MOSAIC_ERR_UNKNOWN_VOLUME",
    details: /no volume named "\.\.\/\.\.\/etc"/,
  },
  {
    name: "Peer/GetPiece: path traversal in the file id",
    call: (raw) =>
      raw.serverStream(peerPath("getPiece"), json({ key: { ...KEY, fileId: "../../../../../etc/passwd" } })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /file id "\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd" must be 32 hex characters/,
  },
  {
    name: "Peer/GetPiece: a slot out of range",
    call: (raw) => raw.serverStream(peerPath("getPiece"), json({ key: { ...KEY, slot: 70_000 } })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /slot must be an integer from 0 to 65535, got 70000/,
  },
  {
    name: "Peer/GetPiece: a stripe that is a string",
    call: (raw) => raw.serverStream(peerPath("getPiece"), json({ key: { ...KEY, stripe: "0" } })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /stripe must be an integer/,
  },
  {
    name: "Peer/GetPiece: a piece this agent does not hold",
    call: (raw) => raw.serverStream(peerPath("getPiece"), json({ key: KEY })),
    code: status.NOT_FOUND,
    mosaicCode: "MOSAIC_ERR_NO_SUCH_CHUNK",
    details: /no chunk media\/0123456789abcdef0123456789abcdef v1 stripe 0 slot 0 on this node/,
  },
  {
    name: "Peer/StatPiece: random bytes",
    call: (raw) => raw.unary(peerPath("statPiece"), Buffer.from([0xc3, 0x28, 0xa0, 0xa1])),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /StatPiece request: not a JSON header/,
  },
  {
    name: "Peer/DeleteVersions: neither version nor belowVersion",
    call: (raw) => raw.unary(peerPath("deleteVersions"), json({ volume: "media", fileId: FILE_ID })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /give belowVersion or version/,
  },
  {
    name: "Peer/DeleteVersions: path traversal in the volume",
    call: (raw) =>
      raw.unary(peerPath("deleteVersions"), json({ volume: "..", fileId: FILE_ID, belowVersion: 9 })),
    code: status.NOT_FOUND,
    mosaicCode: "MOSAIC_ERR_UNKNOWN_VOLUME",
    details: /no volume named "\.\."/,
  },
  {
    name: "Peer/GetManifest: a bad file id",
    call: (raw) => raw.unary(peerPath("getManifest"), json({ volume: "media", fileId: "zz" })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /file id "zz" must be 32 hex characters/,
  },
  {
    name: "Peer/ListManifests: an empty volume",
    call: (raw) => raw.unary(peerPath("listManifests"), json({ volume: "" })),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /volume must be a non-empty string/,
  },
  {
    name: "Peer/Forward: garbage as the forwarded request",
    call: (raw) => raw.bidiStream(peerPath("forward"), [Buffer.from("\u0000\u0001garbage")]),
    code: status.INVALID_ARGUMENT,
    mosaicCode: "MOSAIC_ERR_BAD_REQUEST",
    details: /Forward request: not a JSON header/,
  },
  {
    name: "an unknown method",
    call: (raw) => raw.unary("/mosaic.v1.Peer/Explode", json({})),
    code: status.UNIMPLEMENTED,
    details: /Explode/,
  },
];

describe("bad input against an agent process's gRPC port", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  let raw: RawGrpc;
  const normal = testFile("media", "bad-input/normal.bin", 3 * MiB + 11);

  before(async () => {
    cluster = await startProcessCluster({ nodes: 3 });
    raw = new RawGrpc(cluster.address(TARGET));
    await putTestFile(cluster.client(TARGET), normal);
  });
  after(async () => {
    raw?.close();
    await cluster?.stop();
  });

  async function stillServes(label: string) {
    assert.ok(cluster.alive(TARGET), `${label}: the agent process is alive`);
    await expectTestFile(cluster.client(TARGET), normal);
    const file = testFile("replicated", `bad-input/after-${label}.bin`, MiB + 1);
    await putTestFile(cluster.client(TARGET), file);
    await expectTestFile(cluster.client(TARGET), file);
  }

  for (const c of CASES) {
    test(c.name, async () => {
      const outcome = await c.call(raw);
      const shown = `${outcome.codeName} ${outcome.mosaicCode ?? "-"}: ${outcome.details}`;
      assert.equal(outcome.codeName, status[c.code], shown);
      assert.match(outcome.details, c.details, shown);
      if (c.mosaicCode !== undefined) assert.equal(outcome.mosaicCode, c.mosaicCode, shown);
    });
  }

  test("after every bad call: alive, serving puts and gets, nothing written outside its directory", async () => {
    await stillServes("cases");
    const root = cluster.dataDir(TARGET);
    for (const escaped of ["etc", "../etc", "volumes/..", "volumes/../etc"]) {
      assert.ok(!(await exists(`${root}/${escaped}/${FILE_ID.slice(0, 2)}`)), escaped);
    }
  });

  test("hundreds of random garbage calls: every one ends with a status, the agent stays up, RSS stays bounded", async (t) => {
    const methods: { path: string; kind: "unary" | "client" | "server" | "bidi" }[] = [
      { path: filesPath("put"), kind: "client" },
      { path: filesPath("get"), kind: "server" },
      { path: filesPath("stat"), kind: "unary" },
      { path: filesPath("list"), kind: "unary" },
      { path: filesPath("delete"), kind: "unary" },
      { path: filesPath("cluster"), kind: "unary" },
      { path: peerPath("putPiece"), kind: "client" },
      { path: peerPath("getPiece"), kind: "server" },
      { path: peerPath("statPiece"), kind: "unary" },
      { path: peerPath("deleteVersions"), kind: "unary" },
      { path: peerPath("getManifest"), kind: "unary" },
      { path: peerPath("listManifests"), kind: "unary" },
      { path: peerPath("usage"), kind: "unary" },
      { path: peerPath("forward"), kind: "bidi" },
    ];
    const volume = fc.constantFrom("media", "replicated", "nope", "../../etc", "", "MEDIA", "media/..");
    const hexish = fc.string({
      unit: fc.constantFrom(..."0123456789abcdef./"),
      minLength: 28,
      maxLength: 36,
    });
    const number = fc.oneof(
      fc.integer(),
      fc.double(),
      fc.constantFrom(-1, 0, 1, 2 ** 53, 0xffff_ffff),
      fc.string(),
    );
    const key = fc.record(
      {
        volume,
        fileId: fc.oneof(hexish, fc.constant(FILE_ID)),
        version: number,
        stripe: number,
        slot: number,
      },
      { requiredKeys: [] },
    );
    const header = fc.oneof(
      fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
      fc.jsonValue().map(json),
      fc
        .record(
          {
            op: fc.constantFrom("put", "get", "stat", "list", "delete", "cluster", "nope", ""),
            volume,
            name: fc.oneof(fc.string(), fc.constantFrom("../a", "a/../b", "/x", "fuzz/ok.bin", "a\u0000b")),
            prefix: fc.string(),
            sizeBytes: number,
          },
          { requiredKeys: [] },
        )
        .map(json),
      fc.record({ key, dataLengthBytes: number, crc32c: number }, { requiredKeys: [] }).map(json),
      fc
        .record({ volume, fileId: hexish, version: number, belowVersion: number }, { requiredKeys: [] })
        .map(json),
    );
    const data = fc.array(
      fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b)),
      { maxLength: 3 },
    );
    const call = fc.record({ method: fc.constantFrom(...methods), header, data });

    const seen = new Map<string, number>();
    const runCalls = async (numRuns: number, seed: number) => {
      await fc.assert(
        fc.asyncProperty(call, async ({ method, header, data }) => {
          const outcome =
            method.kind === "unary"
              ? await raw.unary(method.path, header)
              : method.kind === "server"
                ? await raw.serverStream(method.path, header)
                : method.kind === "client"
                  ? await raw.clientStream(method.path, [header, ...data])
                  : await raw.bidiStream(method.path, [header, ...data]);
          seen.set(outcome.codeName, (seen.get(outcome.codeName) ?? 0) + 1);
          const shown = `${method.path}: ${outcome.codeName} ${outcome.details}`;
          assert.notEqual(outcome.code, status.DEADLINE_EXCEEDED, `no answer: ${shown}`);
          assert.notEqual(outcome.code, status.UNAVAILABLE, `agent gone? ${shown}`);
          assert.notEqual(outcome.code, status.INTERNAL, `an unvalidated path: ${shown}`);
          assert.notEqual(outcome.code, status.UNKNOWN, shown);
          if (outcome.code !== status.OK) assert.ok(outcome.details.length > 0, `no details: ${shown}`);
        }),
        { numRuns, seed },
      );
    };

    await runCalls(100, 1); // warm-up: code paths compiled, buffers pooled
    const rssBefore = cluster.rssBytes(TARGET);
    await runCalls(300, 2);
    const rssMid = cluster.rssBytes(TARGET);
    await runCalls(300, 3);
    const rssAfter = cluster.rssBytes(TARGET);
    t.diagnostic(
      `agent RSS ${[rssBefore, rssMid, rssAfter].map((b) => Math.round(b / MiB)).join(" → ")} MiB; ` +
        `outcomes ${JSON.stringify(Object.fromEntries(seen))}`,
    );
    assert.ok(rssAfter - rssBefore < 96 * MiB, `RSS grew by ${Math.round((rssAfter - rssBefore) / MiB)} MiB`);
    await stillServes("fuzz");
  });

  // Last: it stops the agent.
  test("a client stream that stalls half-way does not keep the agent from stopping on SIGTERM", async () => {
    const stalled = raw.clientStream(
      peerPath("putPiece"),
      [json({ key: KEY, dataLengthBytes: 1000, crc32c: 0 }), Buffer.alloc(10)],
      120_000,
      false, // never ends: a hung or malicious peer
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const exit = await cluster.stopNode(TARGET, 5_000);
    const stop = cluster.stops.at(-1);
    await stalled; // ended by the agent's exit either way
    assert.ok(
      stop?.graceful,
      `SIGTERM did not stop the agent within 5 s (it needed SIGKILL): ${JSON.stringify(exit)}`,
    );
    assert.equal(exit?.code, 0);
  });
});
