// A seeded packet network (after TigerBeetle's packet_simulator): every send
// is delayed, maybe lost, maybe duplicated; faults in the World drop
// everything on the paths they cut. Random loss on a path never exceeds
// maxLossStreak in a row: the model the detector is configured to tolerate.
// Heartbeats and maps keep separate streaks, so a map that gets through does
// not let more heartbeats in a row be lost than the model allows.
import type { Channel } from "../src/membership/heartbeat.ts";
import type { Prng } from "./prng.ts";
import type { World } from "./world.ts";

export interface NetworkOptions {
  lossProbability: number;
  maxLossStreak: number;
  duplicateProbability: number;
  delayMsMin: number;
  delayMsMax: number;
  /** Packets in flight per path beyond this are dropped (and counted): queues are bounded. */
  pathPacketsMax: number;
}

export interface Packet {
  deliverAtMs: number;
  order: number;
  from: string;
  to: string;
  channel: Channel;
  bytes: Buffer;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  cut: number;
  duplicated: number;
  overflowed: number;
}

function earlier(a: Packet, b: Packet): boolean {
  return a.deliverAtMs < b.deliverAtMs || (a.deliverAtMs === b.deliverAtMs && a.order < b.order);
}

export class Network {
  readonly #options: NetworkOptions;
  readonly #prng: Prng;
  readonly #world: World;
  readonly #heap: Packet[] = [];
  readonly #inFlight = new Map<string, number>();
  readonly #lossStreak = new Map<string, number>();
  #order = 0;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, cut: 0, duplicated: 0, overflowed: 0 };

  constructor(options: NetworkOptions, prng: Prng, world: World) {
    this.#options = options;
    this.#prng = prng;
    this.#world = world;
  }

  send(from: string, to: string, channel: Channel, bytes: Buffer, nowMs: number, lane = ""): void {
    this.stats.sent++;
    if (!this.#world.pathUp(from, to, channel)) {
      this.stats.cut++;
      return;
    }
    const path = `${from}>${to}/${channel}`;
    const streakKey = `${path}${lane}`;
    const streak = this.#lossStreak.get(streakKey) ?? 0;
    if (streak < this.#options.maxLossStreak && this.#prng.chance(this.#options.lossProbability)) {
      this.#lossStreak.set(streakKey, streak + 1);
      this.stats.lost++;
      return;
    }
    this.#lossStreak.set(streakKey, 0);
    this.#enqueue(path, from, to, channel, bytes, nowMs);
    if (this.#prng.chance(this.#options.duplicateProbability)) {
      this.stats.duplicated++;
      this.#enqueue(path, from, to, channel, bytes, nowMs);
    }
  }

  /** Packets due by nowMs, in delivery order, that the receiver can still take. */
  deliver(nowMs: number): Packet[] {
    const out: Packet[] = [];
    while (this.#heap.length > 0 && (this.#heap[0] as Packet).deliverAtMs <= nowMs) {
      const p = this.#pop();
      const path = `${p.from}>${p.to}/${p.channel}`;
      this.#inFlight.set(path, (this.#inFlight.get(path) ?? 1) - 1);
      // On the wire the sender no longer matters; the receiver's side must still be there.
      const w = this.#world;
      if (!w.alive(p.to) || !w.nicUp(p.to, p.channel) || !w.together(p.from, p.to)) {
        this.stats.cut++;
        continue;
      }
      this.stats.delivered++;
      out.push(p);
    }
    return out;
  }

  #enqueue(path: string, from: string, to: string, channel: Channel, bytes: Buffer, nowMs: number): void {
    const inFlight = this.#inFlight.get(path) ?? 0;
    if (inFlight >= this.#options.pathPacketsMax) {
      this.stats.overflowed++;
      return;
    }
    this.#inFlight.set(path, inFlight + 1);
    const delayMs = this.#prng.int(this.#options.delayMsMin, this.#options.delayMsMax);
    this.#push({ deliverAtMs: nowMs + delayMs, order: this.#order++, from, to, channel, bytes });
  }

  #push(p: Packet): void {
    const h = this.#heap;
    h.push(p);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(h[i] as Packet, h[parent] as Packet)) break;
      [h[i], h[parent]] = [h[parent] as Packet, h[i] as Packet];
      i = parent;
    }
  }

  #pop(): Packet {
    const h = this.#heap;
    const top = h[0] as Packet;
    const last = h.pop() as Packet;
    if (h.length === 0) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && earlier(h[l] as Packet, h[m] as Packet)) m = l;
      if (r < h.length && earlier(h[r] as Packet, h[m] as Packet)) m = r;
      if (m === i) return top;
      [h[i], h[m]] = [h[m] as Packet, h[i] as Packet];
      i = m;
    }
  }
}
