// The load level's state machine (load/level.ts): two thresholds, each with
// a way up and a lower way down, over the worst of three signals.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isMosaicError } from "../../src/errors.ts";
import {
  DEFAULT_LOAD_CONFIG,
  LOAD_LEVELS,
  type LoadConfig,
  type LoadLevel,
  levelCode,
  levelOfCode,
  nextLevel,
  pressureOf,
  validateLoadConfig,
} from "../../src/load/level.ts";

const c = DEFAULT_LOAD_CONFIG;
const level = fc.constantFrom<LoadLevel>(...LOAD_LEVELS);
const pressure = fc.double({ min: 0, max: 3, noNaN: true });
const rank = (l: LoadLevel) => LOAD_LEVELS.indexOf(l);
const walk = (from: LoadLevel, pressures: number[]) => {
  const levels: LoadLevel[] = [];
  let l = from;
  for (const p of pressures) {
    l = nextLevel(l, p);
    levels.push(l);
  }
  return levels;
};

describe("load level", () => {
  test("thresholds: up at the 'above' ones, down only below the 'below' ones", () => {
    assert.deepEqual(walk("Low", [0.45, 0.5, 0.3, 0.24]), ["Low", "Medium", "Medium", "Low"]);
    assert.deepEqual(walk("Low", [0.99, 1, 0.8, 0.74, 0.3, 0.2]), [
      "Medium",
      "High",
      "High",
      "Medium",
      "Medium",
      "Low",
    ]);
    // High falls straight to Low when the pressure is gone.
    assert.deepEqual(walk("High", [0.1]), ["Low"]);
    // Low jumps straight to High under a sudden load.
    assert.deepEqual(walk("Low", [2]), ["High"]);
  });

  test("the worst signal decides, each scaled to its full value; nonsense readings count as nothing", () => {
    assert.equal(pressureOf({ utilization: 0.45, inFlight: 0, queueDelayMs: 0 }), 0.5);
    assert.equal(pressureOf({ utilization: 0.1, inFlight: 8, queueDelayMs: 5 }), 1);
    assert.equal(pressureOf({ utilization: 0.1, inFlight: 1, queueDelayMs: 100 }), 2);
    assert.equal(pressureOf({ utilization: Number.NaN, inFlight: -3, queueDelayMs: 0 }), 0);
  });

  test("property: the level always matches the pressure outside the hysteresis bands", () => {
    fc.assert(
      fc.property(level, pressure, (from, p) => {
        const to = nextLevel(from, p);
        if (p >= c.highAbove) assert.equal(to, "High");
        else if (p < c.mediumBelow) assert.equal(to, "Low");
        else if (p < c.highBelow && p >= c.mediumAbove) assert.equal(to, "Medium");
        // Inside a band the level does not move the other way.
        if (p >= c.mediumBelow && p < c.mediumAbove && from !== "High") assert.equal(to, from);
        if (p >= c.highBelow && p < c.highAbove && from !== "Low") assert.equal(to, from);
      }),
    );
  });

  test("property: more pressure never gives a lower level", () => {
    fc.assert(
      fc.property(level, pressure, pressure, (from, p, q) => {
        const [lo, hi] = p <= q ? [p, q] : [q, p];
        assert.ok(rank(nextLevel(from, lo)) <= rank(nextLevel(from, hi)));
      }),
    );
  });

  test("property: no flapping — a pressure jittering within less than the hysteresis gap changes the level at most once", () => {
    const gap = Math.min(c.mediumAbove - c.mediumBelow, c.highAbove - c.highBelow);
    fc.assert(
      fc.property(
        level,
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.array(fc.double({ min: 0, max: 0.999, noNaN: true }), { minLength: 1, maxLength: 200 }),
        (from, low, jitter) => {
          const levels = walk(
            from,
            jitter.map((j) => low + j * gap),
          );
          const changes = levels.filter((l, i) => l !== (i === 0 ? from : levels[i - 1])).length;
          assert.ok(changes <= 1, `${from} → ${levels.join(",")}`);
        },
      ),
    );
  });

  test("property: a level changes only when the pressure crosses a threshold band", () => {
    fc.assert(
      fc.property(level, fc.array(pressure, { maxLength: 100 }), (from, pressures) => {
        let l = from;
        for (const p of pressures) {
          const next = nextLevel(l, p);
          if (rank(next) > rank(l)) assert.ok(p >= c.mediumAbove);
          if (rank(next) < rank(l)) assert.ok(p < c.highBelow);
          l = next;
        }
      }),
    );
  });

  test("levels on the wire: one byte each, anything else refused", () => {
    for (const l of LOAD_LEVELS) assert.equal(levelOfCode(levelCode(l)), l);
    assert.equal(levelOfCode(3), undefined);
    assert.equal(levelOfCode(255), undefined);
  });

  test("a config that would flap or cannot work is refused, naming the field", () => {
    const bad: [string, LoadConfig][] = [
      ["mediumBelow", { ...c, mediumBelow: c.mediumAbove }],
      ["highBelow", { ...c, highBelow: 1.2 }],
      ["mediumAbove", { ...c, mediumAbove: 1.5 }],
      ["full.inFlight", { ...c, full: { ...c.full, inFlight: 0 } }],
      ["full.utilization", { ...c, full: { ...c.full, utilization: Number.NaN } }],
      ["highAbove", { ...c, highAbove: -1 }],
    ];
    for (const [field, config] of bad)
      assert.throws(
        () => validateLoadConfig(config),
        (e: unknown) => isMosaicError(e, "MOSAIC_ERR_BAD_REQUEST") && (e as Error).message.includes(field),
        field,
      );
    assert.equal(validateLoadConfig(c), c);
  });
});
