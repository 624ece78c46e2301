// Recently read manifests, kept for a short while so that a player's
// stream of Range requests on one file does not look its manifest up on
// every request: that lookup (every manifest holder asked, one of them over
// gRPC, each listing the file's versions on disk) costs a third of a 1 MiB
// Range GET's CPU (bench:gateway: 7.4 ms a request without, 4.9 ms with).
// The price is bounded staleness: an overwrite or delete made through
// another agent is seen here within `ttlMs`; one made through this gateway
// at once (it updates the entry). Pieces carry their version, so a stale
// entry never mixes versions: it serves the previous file whole, or, once
// that version's pieces are collected, fails and is read again fresh.
import type { FileManifest } from "../core/manifest.ts";

export const MANIFEST_CACHE_TTL_MS_DEFAULT = 1_000;
const MAX_ENTRIES = 4_096;

export class ManifestCache {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, { manifest: FileManifest; expires: number }>();

  constructor(ttlMs: number, now: () => number = () => performance.now()) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get(volume: string, name: string): FileManifest | undefined {
    const key = keyOf(volume, name);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expires <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.manifest;
  }

  /** Remembers a manifest just read or written; a tombstone forgets the name. */
  set(manifest: FileManifest): void {
    const key = keyOf(manifest.volume, manifest.name);
    this.#entries.delete(key); // re-inserted last: the Map's order is the eviction order
    if (this.#ttlMs <= 0 || manifest.deleted) return;
    this.#entries.set(key, { manifest, expires: this.#now() + this.#ttlMs });
    if (this.#entries.size > MAX_ENTRIES) this.#entries.delete(this.#entries.keys().next().value as string);
  }

  forget(volume: string, name: string): void {
    this.#entries.delete(keyOf(volume, name));
  }

  get size(): number {
    return this.#entries.size;
  }
}

function keyOf(volume: string, name: string): string {
  return `${volume}\u0000${name}`;
}
