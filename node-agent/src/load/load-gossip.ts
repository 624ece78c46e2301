// How load levels travel, on the caller's clock (pure).
//
// Sending (LoadAnnouncer): a new level goes to every node at once and then
// k more times, one heartbeat interval apart (k lost in a row cannot swallow
// it), and while it is not Low it is sent again every refresh period, so a
// node that restarted or missed it learns it within one. Low is what a node
// that has heard nothing assumes, so a Low level is only announced as a
// change: an idle or evenly loaded cluster sends no load datagram at all.
// Heartbeats carry the level too, every interval, to the k+1 watchers.
//
// Receiving (LoadBoard): per sender, the newest (incarnation, sequence)
// stands, from a heartbeat or a load datagram alike; older copies change
// nothing. A standing level not heard again within the lease counts as Low
// (unknown): the sender died, restarted, or its refreshes were lost, and a
// stale High must not keep readers away from a node for ever.
import type { LoadStamp } from "../membership/heartbeat.ts";
import type { LoadLevel } from "./level.ts";

export interface LoadSchedule {
  /** Copies of a new level: k+1. */
  copies: number;
  /** Between two copies: the heartbeat interval. */
  copyIntervalMs: number;
  /** Between two sends of an unchanged level above Low. */
  refreshMs: number;
}

export class LoadAnnouncer {
  readonly #schedule: LoadSchedule;
  #stamp: LoadStamp = { level: "Low", sequence: 0 };
  #copiesLeft = 0;
  #nextMs = Number.POSITIVE_INFINITY;
  /** Changes of level announced. */
  announced = 0;

  constructor(schedule: LoadSchedule) {
    this.#schedule = schedule;
  }

  get stamp(): LoadStamp {
    return this.#stamp;
  }

  /** This node's level now; a different one is announced from nowMs on. */
  set(level: LoadLevel, nowMs: number): void {
    if (level === this.#stamp.level) return;
    this.#stamp = { level, sequence: this.#stamp.sequence + 1 };
    this.announced++;
    this.#copiesLeft = this.#schedule.copies;
    this.#nextMs = nowMs;
  }

  /** Whether to send the stamp to every node at nowMs; schedules the next send if so. */
  due(nowMs: number): boolean {
    if (nowMs < this.#nextMs) return false;
    // After a stall, one send and on from now: never a burst of catch-up copies.
    if (this.#copiesLeft > 0) this.#copiesLeft--;
    if (this.#copiesLeft > 0) this.#nextMs = nowMs + this.#schedule.copyIntervalMs;
    else if (this.#stamp.level !== "Low") this.#nextMs = nowMs + this.#schedule.refreshMs;
    else this.#nextMs = Number.POSITIVE_INFINITY;
    return true;
  }

  /** When due() next says yes; Infinity: nothing to say. */
  nextDeadlineMs(): number {
    return this.#nextMs;
  }
}

interface Heard extends LoadStamp {
  incarnation: number;
  heardMs: number;
}

export class LoadBoard {
  readonly #leaseMs: number;
  readonly #heard = new Map<string, Heard>();

  constructor(leaseMs: number) {
    this.#leaseMs = leaseMs;
  }

  /** `sender`'s level as one of its heartbeats or load datagrams says; returns whether the standing level changed. */
  accept(sender: string, incarnation: number, load: LoadStamp, nowMs: number): boolean {
    const heard = this.#heard.get(sender);
    if (heard !== undefined) {
      const order = incarnation - heard.incarnation || load.sequence - heard.sequence;
      if (order < 0) return false;
      if (order === 0) {
        heard.heardMs = nowMs;
        return false;
      }
    }
    const before = this.levelOf(sender, nowMs);
    this.#heard.set(sender, { incarnation, level: load.level, sequence: load.sequence, heardMs: nowMs });
    return load.level !== before;
  }

  /** `peer`'s level at nowMs: Low when nothing stands for it (never heard, or its lease ran out). */
  levelOf(peer: string, nowMs: number): LoadLevel {
    const heard = this.#heard.get(peer);
    return heard === undefined || nowMs - heard.heardMs >= this.#leaseMs ? "Low" : heard.level;
  }

  /** Forgets senders `keep` refuses (gone from the map). */
  forget(keep: (sender: string) => boolean): void {
    for (const sender of this.#heard.keys()) if (!keep(sender)) this.#heard.delete(sender);
  }

  /** Every peer whose standing level at nowMs is not Low. */
  loaded(nowMs: number): Map<string, LoadLevel> {
    const out = new Map<string, LoadLevel>();
    for (const peer of this.#heard.keys()) {
      const level = this.levelOf(peer, nowMs);
      if (level !== "Low") out.set(peer, level);
    }
    return out;
  }
}
