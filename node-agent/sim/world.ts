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

  alive(node: string): boolean {
    return !this.#crashed.has(node);
  }

  nicUp(node: string, channel: Channel): boolean {
    return !this.#nicDown.has(`${node}/${channel}`);
  }

  together(a: string, b: string): boolean {
    return this.#island === null || this.#island.has(a) === this.#island.has(b);
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
