// The bookkeeping of temporary read copies, pure: what a holder counts
// (read-copy-holds.ts), what an owner books (read-copy-book.ts), where
// copies may go (copyCandidates), what a reader is told
// (read-copy-directory.ts) and which requests are refused
// (read-copy-messages.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { ClusterMap } from "../../src/core/cluster-map.ts";
import type { FileManifest } from "../../src/core/manifest.ts";
import { fileIdOf } from "../../src/core/names.ts";
import { fileOwner } from "../../src/core/ownership.ts";
import { placeStripe } from "../../src/core/placement.ts";
import { isMosaicError } from "../../src/errors.ts";
import type { LoadLevel } from "../../src/load/level.ts";
import { bookKey, NOTES_TO_COPY, ReadCopyBook, tempsOf } from "../../src/load/read-copy-book.ts";
import { ReadCopyDirectory } from "../../src/load/read-copy-directory.ts";
import { ReadCopyHolds } from "../../src/load/read-copy-holds.ts";
import {
  KEYS_MAX,
  type ReadCopyRequest,
  validateCopyRecord,
  validateReadCopyRequest,
} from "../../src/load/read-copy-messages.ts";
import {
  copiedSlot,
  copyCandidates,
  nextReplicaStep,
  pieceCopyTargets,
} from "../../src/load/read-replicas.ts";
import { silentLogger } from "../../src/log.ts";
import { isReadCopy, type PieceKey, READ_COPY_SLOT_BASE, readCopyKey } from "../../src/storage/piece-key.ts";

const FILE = fileIdOf("media", "clip.mp4");
const placed = (stripe: number, slot = 0): PieceKey => ({
  volume: "media",
  fileId: FILE,
  version: 3,
  stripe,
  slot,
});
const copy = (stripe: number) => readCopyKey(placed(stripe));

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

const refused = (code: string) => (error: unknown) => isMosaicError(error, code as never);

describe("a holder's read copies", () => {
  test("reads are counted while serving; a draining copy takes none and is released only at zero (or forced)", () => {
    const c = clock();
    const holds = new ReadCopyHolds(c.now);
    assert.throws(
      () => holds.begin(copy(0)),
      refused("MOSAIC_ERR_NO_SUCH_CHUNK"),
      "an unregistered copy is not served",
    );
    holds.hold(copy(0), 5_000);
    const first = holds.begin(copy(0));
    const second = holds.begin(copy(0));
    assert.equal(holds.renew(copy(0), "draining", 5_000), 2);
    assert.throws(() => holds.begin(copy(0)), /draining/, "no new read of a draining copy");
    assert.equal(holds.release(copy(0), false), false, "two reads still run");
    first();
    first(); // a read ends once, however often it says so
    assert.equal(holds.renew(copy(0), "draining", 5_000), 1);
    assert.equal(holds.release(copy(0), false), false);
    second();
    assert.equal(holds.release(copy(0), false), true);
    assert.equal(holds.has(copy(0)), false);
    assert.equal(holds.renew(copy(0), "serving", 5_000), undefined, "released: unknown to renewals");
    holds.hold(copy(1), 5_000);
    holds.begin(copy(1));
    assert.equal(holds.release(copy(1), true), true, "forced: whatever is in flight");
  });

  test("placed pieces are never counted nor refused", () => {
    const holds = new ReadCopyHolds();
    const end = holds.begin(placed(0, 1));
    end();
    assert.equal(holds.list().length, 0);
  });

  test("a copy whose lease ran out is taken once idle; renewals keep it", () => {
    const c = clock();
    const holds = new ReadCopyHolds(c.now);
    holds.hold(copy(0), 1_000);
    holds.hold(copy(1), 1_000);
    c.advance(900);
    holds.renew(copy(1), "serving", 1_000);
    const reading = holds.begin(copy(0));
    c.advance(200);
    assert.deepEqual(holds.takeExpired(), [], "copy 0 is past its lease but being read");
    reading();
    assert.deepEqual(holds.takeExpired(), [copy(0)]);
    c.advance(1_000);
    assert.deepEqual(holds.takeExpired(), [copy(1)]);
    assert.deepEqual(holds.list(), []);
  });
});

describe("an owner's book", () => {
  test("readers are told only serving copies of the booked version; idle stripes are pruned", () => {
    const book = new ReadCopyBook();
    book.noteHot("media", FILE, 3, 0, 0, 5_000);
    book.noteHot("media", FILE, 2, 1, 0, 5_000); // an older reader's note: not this version
    const [file] = book.files();
    assert.ok(file !== undefined);
    assert.deepEqual([...file.pieces.keys()], [bookKey(0, 0)]);
    const entry = file.pieces.get(bookKey(0, 0));
    assert.ok(entry !== undefined);
    entry.copies.push({ node: "c", phase: "serving", inFlight: 0 });
    entry.copies.push({ node: "d", phase: "draining", inFlight: 1, drainingSinceMs: 4_000 });
    assert.deepEqual(book.record("media", FILE), {
      version: 3,
      copies: [{ stripe: 0, slot: 0, node: "c" }],
    });
    assert.equal(book.owned().length, 2);
    assert.deepEqual(
      tempsOf(entry, 5_000, 2_000).map((t) => t.overdue ?? false),
      [false, false],
    );
    assert.deepEqual(
      tempsOf(entry, 6_001, 2_000).map((t) => t.overdue ?? false),
      [false, true],
    );
    book.prune(10_000);
    assert.equal(book.files().length, 1, "a stripe with copies stays, read or not");
    entry.copies.length = 0;
    book.prune(10_000);
    assert.deepEqual(book.files(), []);
    assert.equal(book.record("media", FILE), undefined);
  });
});

describe("what makes a piece wanted again", () => {
  test("one note (a stream passing through) is not enough to copy; a second in the window is; a lapsed window starts over", () => {
    const book = new ReadCopyBook();
    const piece = () => book.file("media", FILE)?.pieces.get(bookKey(0, 0));
    book.noteHot("media", FILE, 3, 0, 0, 5_000, 0);
    assert.equal(piece()?.notes, 1);
    assert.ok((piece()?.notes ?? 0) < NOTES_TO_COPY, "read once: no copy");
    book.noteHot("media", FILE, 3, 0, 0, 6_000, 1_000);
    assert.equal(piece()?.notes, NOTES_TO_COPY, "read again within its window: copied");
    book.noteHot("media", FILE, 3, 0, 0, 12_000, 7_000);
    assert.equal(piece()?.notes, 1, "a note after the window lapsed opens a new one");
    assert.equal(piece()?.hotUntilMs, 12_000);
  });
});

describe("the decision with bounds", () => {
  test("no copy is added to a stripe nobody reads; an overdue drain is removed with reads in flight", () => {
    const base = {
      holders: ["a", "b"],
      candidates: ["c"],
      levelOf: (n: string): LoadLevel => (n === "c" ? "Low" : "High"),
      max: 2,
    };
    assert.deepEqual(nextReplicaStep({ ...base, temps: [], read: false }), { kind: "none" });
    assert.deepEqual(nextReplicaStep({ ...base, temps: [], read: true }), { kind: "add", node: "c" });
    const draining = { node: "c", phase: "draining" as const, inFlight: 2 };
    const low = { ...base, levelOf: (): LoadLevel => "Low" };
    assert.deepEqual(nextReplicaStep({ ...low, temps: [draining] }), { kind: "none" });
    assert.deepEqual(nextReplicaStep({ ...low, temps: [{ ...draining, overdue: true }] }), {
      kind: "remove",
      node: "c",
    });
  });

  test("property: a copy with reads in flight is removed only once overdue; none is added unread", () => {
    const level = fc.constantFrom<LoadLevel>("Low", "Medium", "High");
    fc.assert(
      fc.property(
        fc.record({
          levels: fc.array(level, { minLength: 6, maxLength: 6 }),
          temps: fc.array(
            fc.record({
              node: fc.constantFrom("c", "d", "e"),
              phase: fc.constantFrom("serving" as const, "draining" as const),
              inFlight: fc.nat(3),
              overdue: fc.boolean(),
            }),
            { maxLength: 3 },
          ),
          read: fc.boolean(),
        }),
        ({ levels, temps, read }) => {
          const nodes = ["a", "b", "c", "d", "e", "f"];
          const unique = temps.filter((t, i) => temps.findIndex((u) => u.node === t.node) === i);
          const step = nextReplicaStep({
            holders: ["a", "b"],
            temps: unique,
            candidates: ["c", "d", "e", "f"],
            levelOf: (n) => levels[nodes.indexOf(n)] as LoadLevel,
            max: 2,
            read,
          });
          if (step.kind === "remove") {
            const t = unique.find((u) => u.node === step.node);
            assert.ok(t !== undefined && t.phase === "draining" && (t.inFlight === 0 || t.overdue));
          }
          if (step.kind === "add") assert.ok(read && unique.every((u) => u.node !== step.node));
        },
      ),
    );
  });
});

const MAP: ClusterMap = {
  epoch: 1,
  nodes: ["n1", "n2", "n3", "n4", "n5"].map((id) => ({
    id,
    addresses: ["127.0.0.1:1", "127.0.0.2:1"] as [string, string],
    state: "up" as const,
  })),
};

describe("where copies go", () => {
  test("only data slots are copied (replicas: slot 0 stands for the stripe)", () => {
    const ec = { kind: "erasure" as const, dataPieces: 2 };
    assert.deepEqual(
      [0, 1, 2, -1].map((slot) => copiedSlot(ec, slot)),
      [true, true, false, false],
    );
    assert.deepEqual(
      [0, 1].map((slot) => copiedSlot({ kind: "replicas", dataPieces: 1 }, slot)),
      [true, false],
    );
  });

  test("erasure: a slot's copy goes to a node with no piece of its stripe; else parity holders, other slots' copies, other data holders", () => {
    const key = { volume: "media", fileId: FILE, stripe: 7 };
    const ranked = placeStripe(MAP, key, MAP.nodes.length);
    const placedNodes = ranked.slice(0, 3); // 2 data, 1 parity
    const [d0, d1, parity] = placedNodes as [string, string, string];
    const [x, y] = ranked.slice(3) as [string, string];
    const ec = { kind: "erasure" as const, dataPieces: 2 };
    const t = pieceCopyTargets(MAP, ec, key, placedNodes, 0, [], () => true);
    assert.deepEqual(t, { holders: [d0], candidates: [x, y], fallback: [parity, d1] });
    // y holds a copy of slot 1: slot 0's copy keeps off it while x will do.
    const withCopy = pieceCopyTargets(MAP, ec, key, placedNodes, 0, [y], () => true);
    assert.deepEqual(withCopy, { holders: [d0], candidates: [x], fallback: [parity, y, d1] });
    const levels: Record<string, LoadLevel> = { [d0]: "High", [x]: "High", [y]: "Low", [parity]: "Low" };
    const levelOf = (n: string): LoadLevel => levels[n] ?? "Low";
    const step = (targets: typeof t) =>
      nextReplicaStep({ ...targets, temps: [], levelOf, max: 2, read: true });
    assert.deepEqual(step(withCopy), { kind: "add", node: parity }, "x is High: the parity holder next");
    assert.deepEqual(step(t), { kind: "add", node: y }, "a node with no piece of the stripe first");
    // Replicas: every placed holder takes reads, nothing to fall back on.
    assert.deepEqual(
      pieceCopyTargets(MAP, { kind: "replicas", dataPieces: 1 }, key, placedNodes, 0, [], () => true),
      { holders: placedNodes, candidates: [x, y], fallback: [] },
    );
    // Never the slot's own holder, never an unusable node.
    const down = pieceCopyTargets(MAP, ec, key, placedNodes, 1, [], (n) => n !== parity && n !== x);
    assert.deepEqual(down, { holders: [d1], candidates: [y], fallback: [d0] });
  });

  test("in the stripe's placement order over the whole map, less its holders and unusable nodes", () => {
    const key = { volume: "media", fileId: FILE, stripe: 4 };
    const ranked = placeStripe(MAP, key, MAP.nodes.length);
    const holders = ranked.slice(0, 2);
    assert.deepEqual(
      copyCandidates(MAP, key, holders, () => true),
      ranked.slice(2),
    );
    const down = ranked[2] as string;
    assert.deepEqual(
      copyCandidates(MAP, key, holders, (n) => n !== down),
      ranked.slice(3),
    );
  });
});

describe("what readers are told", () => {
  const manifest = (redundancy: FileManifest["redundancy"]): FileManifest =>
    ({
      volume: "media",
      fileId: FILE,
      name: "clip.mp4",
      version: 3,
      sizeBytes: 1,
      chunkSizeBytes: 65_536,
      redundancy,
      stripes: 1,
      crc32c: 0,
    }) as FileManifest;

  function directory(
    levels: Record<string, LoadLevel>,
    asked: { node: string; request: ReadCopyRequest }[],
    redundancy: FileManifest["redundancy"] = { replicas: 2 },
  ) {
    const book = new ReadCopyBook();
    const c = clock();
    const self = fileOwner(MAP, "media", FILE, redundancy);
    const dir = new ReadCopyDirectory({
      self,
      map: () => MAP,
      levelOf: (n) => levels[n] ?? "Low",
      localRecord: (v, f) => book.record(v, f),
      noteHotLocal: (v, f, version, stripe, slot) =>
        book.noteHot(v, f, version, stripe, slot, c.now() + 5_000),
      ask: async (node, request) => {
        asked.push({ node, request });
        return { version: -1, copies: [] };
      },
      log: silentLogger(),
      cacheMs: 1_000,
      hotNoteGapMs: 500,
      now: c.now,
    });
    return { book, dir, c, self };
  }

  test("the owner's serving copies follow the placed holders; a read finding all High makes the stripe hot", () => {
    const asked: { node: string; request: ReadCopyRequest }[] = [];
    const { book, dir, self } = directory({ a: "High", b: "High" }, asked);
    const m = manifest({ replicas: 2 });
    assert.deepEqual(dir.holders(m, 0, ["a", "b"]), [
      { node: "a", slot: 0 },
      { node: "b", slot: 1 },
    ]);
    const entry = book.files()[0]?.pieces.get(bookKey(0, 0));
    assert.ok(entry !== undefined, "the owner (this node) booked the stripe hot");
    entry.copies.push(
      { node: "c", phase: "serving", inFlight: 0 },
      { node: "d", phase: "draining", inFlight: 0 },
    );
    assert.deepEqual(dir.holders(m, 0, ["a", "b"]), [
      { node: "a", slot: 0 },
      { node: "b", slot: 1 },
      { node: "c", slot: READ_COPY_SLOT_BASE },
    ]);
    assert.ok(isReadCopy({ slot: READ_COPY_SLOT_BASE }));
    assert.deepEqual(dir.holders(m, 1, ["a", "b"]).length, 2, "another stripe has no copies");
    assert.deepEqual(asked, [], `the owner ${self} asks nobody`);
  });

  test("erasure: each data slot has its placed holder and its own copies; a slot whose holders are all High is hot", () => {
    const asked: { node: string; request: ReadCopyRequest }[] = [];
    const ec: FileManifest["redundancy"] = { erasure: { data: 2, parity: 1 } };
    // Slot 0's holder is High; slot 1's and the parity holder are not.
    const { book, dir, self } = directory({ a: "High", b: "Low", c: "High" }, asked, ec);
    const m = manifest(ec);
    const placedNodes = ["a", "b", "c"];
    assert.deepEqual(dir.holders(m, 0, placedNodes, 0), [{ node: "a", slot: 0 }]);
    assert.deepEqual(dir.holders(m, 0, placedNodes, 1), [{ node: "b", slot: 1 }]);
    const [file] = book.files();
    assert.deepEqual(
      [...(file?.pieces.keys() ?? [])],
      [bookKey(0, 0)],
      "only slot 0 is hot: slot 1's holder is Low",
    );
    const entry = file?.pieces.get(bookKey(0, 0));
    assert.ok(entry !== undefined);
    entry.copies.push(
      { node: "d", phase: "serving", inFlight: 0 },
      { node: "e", phase: "draining", inFlight: 0 },
    );
    assert.deepEqual(dir.holders(m, 0, placedNodes, 0), [
      { node: "a", slot: 0 },
      { node: "d", slot: READ_COPY_SLOT_BASE },
    ]);
    assert.deepEqual(
      dir.holders(m, 0, placedNodes, 1),
      [{ node: "b", slot: 1 }],
      "slot 0's copy is not slot 1's",
    );
    assert.deepEqual(dir.holders(m, 1, placedNodes, 0), [{ node: "a", slot: 0 }], "nor another stripe's");
    assert.deepEqual(asked, [], `the owner ${self} asks nobody`);
  });

  test("erasure: a copy of slot 1 is read under slot READ_COPY_SLOT_BASE + 1; the owner's record says which slot", () => {
    const asked: { node: string; request: ReadCopyRequest }[] = [];
    const ec: FileManifest["redundancy"] = { erasure: { data: 3, parity: 1 } };
    const { book, dir } = directory({ b: "High", e: "High" }, asked, ec);
    const m = manifest(ec);
    book.noteHot("media", FILE, 3, 2, 1, 5_000);
    book.files()[0]?.pieces.get(bookKey(2, 1))?.copies.push({ node: "e", phase: "serving", inFlight: 0 });
    assert.deepEqual(book.record("media", FILE), { version: 3, copies: [{ stripe: 2, slot: 1, node: "e" }] });
    assert.deepEqual(dir.holders(m, 2, ["a", "b", "c", "d"], 1), [
      { node: "b", slot: 1 },
      { node: "e", slot: READ_COPY_SLOT_BASE + 1 },
    ]);
  });
});

describe("ReadCopies requests", () => {
  test("anything but a well-formed request about read copies is refused with a clear error", () => {
    const key = copy(0);
    assert.deepEqual(validateReadCopyRequest({ op: "hold", keys: [key], leaseMs: 1_000 }), {
      op: "hold",
      keys: [key],
      leaseMs: 1_000,
    });
    const hot = { op: "hot", volume: "media", fileId: FILE, version: 1, stripe: 0 };
    assert.equal((validateReadCopyRequest(hot) as { slot: number }).slot, 0, "an older agent's note: slot 0");
    assert.equal((validateReadCopyRequest({ ...hot, slot: 3 }) as { slot: number }).slot, 3);
    assert.deepEqual(validateCopyRecord({ version: 2, copies: [{ stripe: 1, node: "e" }] }).copies, [
      { stripe: 1, slot: 0, node: "e" },
    ]);
    assert.throws(() => validateCopyRecord({ version: 2, copies: [{ stripe: 1, slot: "x", node: "e" }] }));
    const bad: [unknown, RegExp][] = [
      [null, /JSON object/],
      [{ op: "explode" }, /unknown op/],
      [{ op: "hold", keys: [placed(0)], leaseMs: 1_000 }, /not a read copy/],
      [{ op: "hold", keys: [], leaseMs: 1_000 }, /keys/],
      [{ op: "hold", keys: Array(KEYS_MAX + 1).fill(key), leaseMs: 1_000 }, /keys/],
      [{ op: "hold", keys: [key], leaseMs: 0 }, /leaseMs/],
      [{ op: "renew", keys: [key], phase: "gone", leaseMs: 1_000 }, /phase/],
      [{ op: "release", keys: [key] }, /force/],
      [{ op: "hot", volume: "media", fileId: "../../etc", version: 1, stripe: 0 }, /file id/],
      [{ op: "record", volume: "", fileId: FILE }, /volume/],
      [{ op: "hot", volume: "media", fileId: FILE, version: 1, stripe: 0, slot: 32 }, /slot/],
      [{ op: "hot", volume: "media", fileId: FILE, version: 1, stripe: 0, slot: -1 }, /slot/],
    ];
    for (const [request, why] of bad)
      assert.throws(
        () => validateReadCopyRequest(request),
        (e: unknown) => {
          return isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST") && why.test(e.message);
        },
      );
  });
});
