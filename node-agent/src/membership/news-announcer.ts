// When a watcher sends its channel news (channel-news.ts), on the caller's
// clock. A new list goes out at once and then k more times, one heartbeat
// interval apart (each time on both channels): the loss the detector
// tolerates on a path (k in a row) cannot swallow it, and the first copy
// normally lands one hop after the detector's own transition. While the
// list is not empty it is sent again every refreshMs, so a receiver that
// restarted, joined or missed it learns it within a refresh, and its copy
// can expire (news-board.ts) instead of outliving a watcher that died.
// Nothing is sent while every watched peer is healthy: the steady state
// costs no datagram beyond the ring's heartbeats.
import type { News, NewsItem } from "./channel-news.ts";
import { sameItems } from "./channel-news.ts";
import type { Channel } from "./heartbeat.ts";

export interface NewsSchedule {
  /** Copies of a new list: k+1. */
  copies: number;
  /** Between two copies: the heartbeat interval. */
  copyIntervalMs: number;
  /** Between two sends of an unchanged, non-empty list. */
  refreshMs: number;
}

export class NewsAnnouncer {
  readonly #self: string;
  readonly #incarnation: number;
  readonly #schedule: NewsSchedule;
  #items: NewsItem[] = [];
  #sequence = 0;
  #copiesLeft = 0;
  #nextMs = Number.POSITIVE_INFINITY;
  /** Lists announced (each sent `copies` times, then refreshed). */
  announced = 0;

  constructor(self: string, incarnation: number, schedule: NewsSchedule) {
    this.#self = self;
    this.#incarnation = incarnation;
    this.#schedule = schedule;
  }

  /** This watcher's list now; a different one is announced from nowMs on. */
  set(items: NewsItem[], nowMs: number): void {
    if (sameItems(items, this.#items)) return;
    this.#items = items;
    this.#sequence++;
    this.announced++;
    this.#copiesLeft = this.#schedule.copies;
    this.#nextMs = nowMs;
  }

  /** The news to send at nowMs (one per channel, to every member), or nothing. */
  due(nowMs: number): ((channel: Channel) => News) | undefined {
    if (nowMs < this.#nextMs) return undefined;
    const { sequence } = this;
    const items = this.#items;
    if (this.#copiesLeft > 0) this.#copiesLeft--;
    const { copyIntervalMs, refreshMs } = this.#schedule;
    // After a stall, send once and go on from now: never a burst of catch-up copies.
    if (this.#copiesLeft > 0) this.#nextMs = nowMs + copyIntervalMs;
    else this.#nextMs = items.length > 0 ? nowMs + refreshMs : Number.POSITIVE_INFINITY;
    const sender = this.#self;
    const incarnation = this.#incarnation;
    return (channel) => ({ sender, channel, incarnation, sequence, items });
  }

  /** When due() next has something; Infinity: nothing to say. */
  nextDeadlineMs(): number {
    return this.#nextMs;
  }

  get sequence(): number {
    return this.#sequence;
  }

  items(): readonly NewsItem[] {
    return this.#items;
  }
}
