// The gateway's manifest cache on a hand-driven clock: entries last their
// TTL and no longer, a tombstone or a TTL of 0 remembers nothing, a newer
// write replaces the entry, and the oldest entry goes first when full.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { FileManifest } from "../../src/core/manifest.ts";
import { ManifestCache } from "../../src/gateway/manifest-cache.ts";

const manifest = (name: string, version: number, deleted = false): FileManifest => ({
  volume: "media",
  name,
  fileId: "0".repeat(32),
  version,
  sizeBytes: 10,
  chunkSizeBytes: 65_536,
  redundancy: { replicas: 1 },
  stripes: 1,
  crc32c: 0,
  createdAt: new Date(0).toISOString(),
  writer: "node-0",
  ...(deleted ? { deleted } : {}),
});

test("an entry serves for its TTL, then is read again", () => {
  let now = 0;
  const cache = new ManifestCache(1_000, () => now);
  cache.set(manifest("a", 1));
  now = 999;
  assert.equal(cache.get("media", "a")?.version, 1);
  now = 1_000;
  assert.equal(cache.get("media", "a"), undefined);
  assert.equal(cache.size, 0);
  assert.equal(cache.get("thumbs", "a"), undefined, "names are per volume");
});

test("a newer write replaces the entry; a tombstone or forget() removes it; a TTL of 0 keeps nothing", () => {
  let now = 0;
  const cache = new ManifestCache(1_000, () => now);
  cache.set(manifest("a", 1));
  now = 500;
  cache.set(manifest("a", 2));
  now = 1_200;
  assert.equal(cache.get("media", "a")?.version, 2, "the newer entry's TTL runs from its own write");
  cache.set(manifest("a", 3, true));
  assert.equal(cache.get("media", "a"), undefined);
  cache.set(manifest("b", 1));
  cache.forget("media", "b");
  assert.equal(cache.get("media", "b"), undefined);
  const off = new ManifestCache(0, () => now);
  off.set(manifest("a", 1));
  assert.equal(off.size, 0);
});

test("full, it drops the entry written longest ago", () => {
  const cache = new ManifestCache(60_000, () => 0);
  for (let i = 0; i <= 4_096; i++) cache.set(manifest(`f${i}`, 1));
  assert.equal(cache.size, 4_096);
  assert.equal(cache.get("media", "f0"), undefined);
  assert.equal(cache.get("media", "f1")?.version, 1);
  assert.equal(cache.get("media", "f4096")?.version, 1);
});
