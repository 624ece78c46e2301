// What is really true in a simulated cluster: which nodes run, which NICs are
// up, which nodes a partition separates. The network obeys it; the checker
// judges the detectors against it.
import type { Channel } from "../src/membership/heartbeat.ts";

export class World {
  readonly #crashed = new Set<string>();
  readonly #nicDown = new Set<string>();
  /** One side of the current partition; null: none. */
  #island: Set<string> | null = null;

  crash(node: string): void {
    this.#crashed.add(node);
  }

  restart(node: string): void {
    this.#crashed.delete(node);
  }

  setNic(node: string, channel: Channel, up: boolean): void {
    if (up) this.#nicDown.delete(`${node}/${channel}`);
    else this.#nicDown.add(`${node}/${channel}`);
  }

  partition(island: readonly string[] | null): void {
    this.#island = island === null ? null : new Set(island);
  }

  partitioned(): boolean {
    return this.#island !== null;
  }

  alive(node: string): boolean {
    return !this.#crashed.has(node);
  }

  nicUp(node: string, channel: Channel): boolean {
    return !this.#nicDown.has(`${node}/${channel}`);
  }

  together(a: string, b: string): boolean {
    return this.#island === null || this.#island.has(a) === this.#island.has(b);
  }

  /**
   * Whether some live node other than `node` can reach it on neither channel
   * (or it is dead): the only excuse for a map to mark it down. One NIC down
   * with the other up is never such an excuse.
   */
  lostBySomeone(node: string, nodes: readonly string[]): boolean {
    if (!this.alive(node)) return true;
    const other = (n: string) => n !== node && this.alive(n);
    if (this.#island !== null && nodes.some((n) => other(n) && !this.together(n, node))) return true;
    const a = this.nicUp(node, "A");
    const b = this.nicUp(node, "B");
    if (!a && !b) return nodes.some(other);
    // Only nodes with a NIC down can fail to reach a node that has one up.
    for (const key of this.#nicDown) {
      const n = key.slice(0, key.lastIndexOf("/"));
      if (other(n) && (!a || !this.nicUp(n, "A")) && (!b || !this.nicUp(n, "B"))) return true;
    }
    return false;
  }

  /**
   * Every live node but `except` reaches every other on some channel: no
   * partition, nobody with both NICs down, and NICs down on one channel only.
   */
  connected(except: string): boolean {
    if (this.#island !== null) return false;
    const channels = new Set<string>();
    for (const key of this.#nicDown) {
      const at = key.lastIndexOf("/");
      if (key.slice(0, at) !== except) channels.add(key.slice(at + 1));
    }
    return channels.size < 2;
  }

  /** No NIC down, no partition (crashed nodes may stay crashed). */
  linksHealed(): boolean {
    return this.#nicDown.size === 0 && this.#island === null;
  }

  /** Whether a packet sent now from → to on channel could arrive. */
  pathUp(from: string, to: string, channel: Channel): boolean {
    return (
      this.alive(from) &&
      this.alive(to) &&
      this.nicUp(from, channel) &&
      this.nicUp(to, channel) &&
      this.together(from, to)
    );
  }
}
