// Seed 000 §3.2, figure 3: a ring of data slots in one shared-memory segment,
// guarded by two process-shared counting semaphores. Empty counts free slots
// (starts at `slots`), Full counts filled ones (starts at 0). The producer
// waits on Empty, fills a slot, posts Full; the consumer waits on Full, reads
// the slot in place (a zero-copy Buffer view), posts Empty. One producer and
// one consumer per ring; each direction of a conversation gets its own ring.
//
// Segment layout (little-endian; sem_t slots 64-byte aligned, data 4 KiB aligned):
//   0  u32 magic "MSRG"        4  u32 version        8  u32 slots     12 u32 slot size (bytes)
//  16  u32 producer slot      20  u32 consumer slot (next index each side will touch; for diagnosis)
//  24  producer identity: i32 pid, f64 start ticks, f64 pid namespace, u32 state   (24..48)
//  48  consumer identity, same shape                                                (48..72)
//  128 sem_t Empty            192 sem_t Full
//  256 slot headers, 16 bytes each: u32 length, u32 flags (END, ERROR), u32 sequence, u32 reserved
//  data: `slots` slots, each `slot size` rounded up to 64 bytes
//
// Control travels in slot headers: END marks the end of the stream; ERROR
// carries "<code>\n<message>" in the slot's data. A sequence number per slot
// tells a real Full post from a wake-up posted by a peer that closed.
//
// Waits: sem_trywait first (no thread hop when the peer keeps up), then
// sem_clockwait on a libuv pool thread in slices of `pollMs`. After each
// empty slice the waiter checks whether the peer closed or died (peer.ts);
// after `timeoutMs` without progress it gives up. Nothing spins: an idle
// waiter wakes 1000/pollMs times a second to read one /proc file.
import { isErrorCode, MosaicError } from "../errors.ts";
import { SEM_BYTES, semInit, semPost, semTryWait, semWaitAsync } from "./libc.ts";
import { isAlive, type ProcessIdentity, selfIdentity } from "./peer.ts";
import { createSegment, openSegment, SEGMENT_MAX_BYTES, type SharedSegment } from "./shared-memory.ts";

export const RING_MAGIC = 0x4752534d; // "MSRG" read little-endian
export const RING_VERSION = 1;
export const RING_MAX_SLOTS = 1024;
export const SLOT_MAX_BYTES = 256 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_POLL_MS = 500;

export const SLOT_END = 1;
export const SLOT_ERROR = 2;

const OFF_MAGIC = 0;
const OFF_VERSION = 4;
const OFF_SLOTS = 8;
const OFF_SLOT_BYTES = 12;
const OFF_PRODUCER_SLOT = 16;
const OFF_CONSUMER_SLOT = 20;
const OFF_PRODUCER = 24;
const OFF_CONSUMER = 48;
const OFF_EMPTY = 128;
const OFF_FULL = 192;
const OFF_SLOT_HEADERS = 256;
const SLOT_HEADER_BYTES = 16;
const PAGE_BYTES = 4096;

// sem_t must fit its place in the header.
if (OFF_FULL - OFF_EMPTY < SEM_BYTES || OFF_SLOT_HEADERS - OFF_FULL < SEM_BYTES) {
  throw new Error("slot-ring header layout leaves no room for a sem_t");
}

const STATE_NONE = 0;
const STATE_ATTACHED = 1;
const STATE_CLOSED = 2;

export type Role = "producer" | "consumer";

export type RingErrorReason = "timeout" | "peer-died" | "peer-closed" | "closed" | "protocol";

/** A ring that cannot go on: why, in `reason`; the MosaicError code says what kind. */
export class RingError extends MosaicError {
  readonly reason: RingErrorReason;

  constructor(reason: RingErrorReason, message: string) {
    super(reason === "protocol" ? "MOSAIC_ERR_INTERNAL" : "MOSAIC_ERR_PEER_UNAVAILABLE", message);
    this.reason = reason;
  }
}

export interface RingOptions {
  slots: number;
  slotSizeBytes: number;
  /** Segment name prefix (shared-memory.ts segmentPrefixFor); "/mosaic-" if not given. */
  namePrefix?: string;
}

export interface WaitOptions {
  /** Longest wait for one slot before giving up (the peer is stuck or gone). */
  timeoutMs?: number;
  /** How often a waiting side checks that its peer is alive. */
  pollMs?: number;
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

function layout(slots: number, slotSizeBytes: number) {
  const strideBytes = roundUp(slotSizeBytes, 64);
  const dataOffset = roundUp(OFF_SLOT_HEADERS + slots * SLOT_HEADER_BYTES, PAGE_BYTES);
  return { strideBytes, dataOffset, totalBytes: dataOffset + slots * strideBytes };
}

function checkGeometry({ slots, slotSizeBytes }: RingOptions): void {
  if (!Number.isSafeInteger(slots) || slots < 1 || slots > RING_MAX_SLOTS) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `ring slots must be an integer 1-${RING_MAX_SLOTS}, got ${slots}`,
    );
  }
  if (!Number.isSafeInteger(slotSizeBytes) || slotSizeBytes < 1) {
    throw new MosaicError(
      "MOSAIC_ERR_BAD_REQUEST",
      `ring slot size must be a positive integer, got ${slotSizeBytes}`,
    );
  }
  if (slotSizeBytes > SLOT_MAX_BYTES) {
    throw new MosaicError(
      "MOSAIC_ERR_MESSAGE_TOO_LARGE",
      `ring slot size ${slotSizeBytes} bytes exceeds the ${SLOT_MAX_BYTES}-byte limit`,
    );
  }
  const { totalBytes } = layout(slots, slotSizeBytes);
  if (totalBytes > SEGMENT_MAX_BYTES) {
    throw new MosaicError(
      "MOSAIC_ERR_MESSAGE_TOO_LARGE",
      `ring of ${slots} × ${slotSizeBytes} bytes needs ${totalBytes} bytes, over the ${SEGMENT_MAX_BYTES}-byte limit`,
    );
  }
}

/** One mapped ring. Create it on one side, open it by name on the other, take one role on each. */
export class SlotRing {
  readonly name: string;
  readonly slots: number;
  readonly slotSizeBytes: number;
  readonly #segment: SharedSegment;
  readonly #bytes: Buffer;
  readonly #strideBytes: number;
  readonly #dataOffset: number;
  readonly #roles = new Set<RingEnd>();

  private constructor(segment: SharedSegment) {
    this.#segment = segment;
    this.#bytes = segment.bytes;
    this.name = segment.name;
    this.slots = this.#bytes.readUInt32LE(OFF_SLOTS);
    this.slotSizeBytes = this.#bytes.readUInt32LE(OFF_SLOT_BYTES);
    const { strideBytes, dataOffset } = layout(this.slots, this.slotSizeBytes);
    this.#strideBytes = strideBytes;
    this.#dataOffset = dataOffset;
  }

  /** A new ring in a fresh segment (mode 0600, unguessable name); semaphores Empty = slots, Full = 0. */
  static create(options: RingOptions): SlotRing {
    checkGeometry(options);
    const { slots, slotSizeBytes } = options;
    const segment = createSegment(layout(slots, slotSizeBytes).totalBytes, options.namePrefix);
    try {
      const b = segment.bytes;
      b.writeUInt32LE(RING_VERSION, OFF_VERSION);
      b.writeUInt32LE(slots, OFF_SLOTS);
      b.writeUInt32LE(slotSizeBytes, OFF_SLOT_BYTES);
      semInit(segment.address + OFF_EMPTY, slots);
      semInit(segment.address + OFF_FULL, 0);
      b.writeUInt32LE(RING_MAGIC, OFF_MAGIC); // last: an opener never sees a half-made header
      return new SlotRing(segment);
    } catch (error) {
      segment.close();
      segment.unlink();
      throw error;
    }
  }

  /** Maps a ring another process created, checking its header against the segment's size. */
  static open(name: string): SlotRing {
    const segment = openSegment(name);
    try {
      const b = segment.bytes;
      if (segment.sizeBytes < OFF_SLOT_HEADERS || b.readUInt32LE(OFF_MAGIC) !== RING_MAGIC) {
        throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `segment ${name} is not a Mosaic slot ring`);
      }
      if (b.readUInt32LE(OFF_VERSION) !== RING_VERSION) {
        throw new MosaicError(
          "MOSAIC_ERR_BAD_REQUEST",
          `segment ${name} is ring version ${b.readUInt32LE(OFF_VERSION)}, this side speaks ${RING_VERSION}`,
        );
      }
      const geometry = { slots: b.readUInt32LE(OFF_SLOTS), slotSizeBytes: b.readUInt32LE(OFF_SLOT_BYTES) };
      checkGeometry(geometry);
      if (layout(geometry.slots, geometry.slotSizeBytes).totalBytes !== segment.sizeBytes) {
        throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `segment ${name}: header does not match its size`);
      }
      return new SlotRing(segment);
    } catch (error) {
      segment.close();
      throw error;
    }
  }

  /** Removes the name. Safe once both sides have it mapped: nothing is left to reclaim if either dies. */
  unlink(): boolean {
    return this.#segment.unlink();
  }

  producer(options: WaitOptions = {}): RingProducer {
    return this.#take(new RingProducer(this, options));
  }

  consumer(options: WaitOptions = {}): RingConsumer {
    return this.#take(new RingConsumer(this, options));
  }

  /**
   * Tells every role on this side that the peer is gone, learnt from outside
   * the ring (its life-line FIFO reached end of file): pending and later
   * waits fail at once instead of at their next /proc check or timeout.
   */
  peerGone(detail: string): void {
    for (const role of this.#roles) role.peerGone(detail);
  }

  /** Closes both roles (waking any wait), waits for in-flight waits to return, then unmaps. */
  async close(): Promise<void> {
    await Promise.all([...this.#roles].map((role) => role.close()));
    this.#segment.close();
  }

  /**
   * Whether the process attached as `role` still runs: false only when it is
   * known to be gone (killed, exited, pid reused); true if none attached yet.
   * Lets an owner notice a dead peer while no wait is pending.
   */
  attachedAlive(role: Role): boolean {
    const offset = identityOffset(role);
    const b = this.#bytes;
    if (b.length === 0) return false; // unmapped
    return isAlive({
      pid: b.readInt32LE(offset),
      startTicks: b.readDoubleLE(offset + 4),
      pidNamespace: b.readDoubleLE(offset + 12),
    });
  }

  #take<T extends RingEnd>(role: T): T {
    this.#roles.add(role);
    return role;
  }

  // Internal accessors for the two roles (same module).
  /** @internal */ get bytes(): Buffer {
    return this.#bytes;
  }
  /** @internal */ get address(): number {
    return this.#segment.address;
  }
  /** @internal */ slotData(index: number): Buffer {
    const start = this.#dataOffset + index * this.#strideBytes;
    return this.#bytes.subarray(start, start + this.slotSizeBytes);
  }
}

abstract class RingEnd {
  protected readonly ring: SlotRing;
  protected readonly timeoutMs: number;
  protected readonly pollMs: number;
  protected counter = 0; // slots this side has handed over so far
  #role: Role;
  #closed = false;
  #gone: RingError | undefined;
  #waiting: Promise<boolean> | undefined;
  #waitingOn = 0;

  constructor(ring: SlotRing, role: Role, options: WaitOptions) {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    if (!(timeoutMs > 0) || !(pollMs > 0)) {
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `ring waits need positive timeoutMs and pollMs`);
    }
    const offset = identityOffset(role);
    if (ring.bytes.readUInt32LE(offset + 20) !== STATE_NONE) {
      throw new MosaicError("MOSAIC_ERR_BAD_REQUEST", `ring ${ring.name} already has a ${role}`);
    }
    this.ring = ring;
    this.#role = role;
    this.timeoutMs = timeoutMs;
    this.pollMs = Math.min(pollMs, timeoutMs);
    const me = selfIdentity();
    const b = ring.bytes;
    b.writeInt32LE(me.pid, offset);
    b.writeDoubleLE(me.startTicks, offset + 4);
    b.writeDoubleLE(me.pidNamespace, offset + 12);
    b.writeUInt32LE(STATE_ATTACHED, offset + 20);
  }

  get closed(): boolean {
    return this.#closed;
  }

  protected get peerRole(): Role {
    return this.#role === "producer" ? "consumer" : "producer";
  }

  protected peerState(): number {
    return this.ring.bytes.readUInt32LE(identityOffset(this.peerRole) + 20);
  }

  protected slotHeader(index: number): number {
    return OFF_SLOT_HEADERS + index * SLOT_HEADER_BYTES;
  }

  protected sem(which: "empty" | "full"): number {
    return this.ring.address + (which === "empty" ? OFF_EMPTY : OFF_FULL);
  }

  protected assertOpen(): void {
    if (this.#closed) throw new RingError("closed", `ring ${this.ring.name}: this ${this.#role} is closed`);
    if (this.#gone) throw this.#gone;
  }

  /** The peer is known gone (see SlotRing.peerGone): fail the wait in progress and every later one. */
  peerGone(detail: string): void {
    if (this.#closed || this.#gone) return;
    const b = this.ring.bytes;
    const offset = identityOffset(this.peerRole);
    const closed = b.length > 0 && b.readUInt32LE(offset + 20) === STATE_CLOSED;
    const pid = b.length > 0 ? b.readInt32LE(offset) : 0;
    this.#gone = new RingError(
      closed ? "peer-closed" : "peer-died",
      closed
        ? `ring ${this.ring.name}: the ${this.peerRole} closed its end`
        : `ring ${this.ring.name}: the ${this.peerRole} (pid ${pid}) died or ended the session (${detail})`,
    );
    if (this.#waiting) semPost(this.#waitingOn); // wakes our pool thread; acquire then throws #gone
  }

  /** One decrement of `which`, within timeoutMs, noticing a peer that closed or died on the way. */
  protected async acquire(which: "empty" | "full", isWake: () => boolean): Promise<void> {
    this.assertOpen();
    const sem = this.sem(which);
    if (semTryWait(sem)) {
      if (isWake()) this.checkPeer();
      return;
    }
    const startMs = performance.now();
    // Bounded: each pass waits ≥ pollMs or returns; timeoutMs ends it.
    for (;;) {
      const leftMs = this.timeoutMs - (performance.now() - startMs);
      if (leftMs <= 0) {
        throw new RingError(
          "timeout",
          `ring ${this.ring.name}: no ${which === "empty" ? "free" : "filled"} slot from the ${this.peerRole} within ${this.timeoutMs} ms`,
        );
      }
      this.#waitingOn = sem;
      this.#waiting = semWaitAsync(sem, Math.min(this.pollMs, leftMs));
      const got = await this.#waiting.finally(() => {
        this.#waiting = undefined;
      });
      this.assertOpen(); // close() posts to wake us; that count was ours
      if (got && !isWake()) return;
      this.checkPeer();
      if (got) return; // a wake-up while the peer still runs: take it as it is
    }
  }

  /** Throws if the peer has closed (for good) or its process is gone. */
  protected checkPeer(): void {
    const offset = identityOffset(this.peerRole);
    const b = this.ring.bytes;
    if (b.readUInt32LE(offset + 20) === STATE_CLOSED) {
      throw new RingError("peer-closed", `ring ${this.ring.name}: the ${this.peerRole} closed its end`);
    }
    const peer: ProcessIdentity = {
      pid: b.readInt32LE(offset),
      startTicks: b.readDoubleLE(offset + 4),
      pidNamespace: b.readDoubleLE(offset + 12),
    };
    if (!isAlive(peer)) {
      throw new RingError(
        "peer-died",
        `ring ${this.ring.name}: the ${this.peerRole} (pid ${peer.pid}) died without closing its end`,
      );
    }
  }

  /** Marks this end closed and wakes the peer (and our own wait, if any) so nobody waits for nothing. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.ring.bytes.writeUInt32LE(STATE_CLOSED, identityOffset(this.#role) + 20);
    semPost(this.sem(this.#role === "producer" ? "full" : "empty")); // wakes the peer
    const waiting = this.#waiting;
    if (waiting) {
      semPost(this.#waitingOn); // wakes our own pool thread so munmap can follow
      await waiting.catch(() => undefined);
    }
  }
}

function identityOffset(role: Role): number {
  return role === "producer" ? OFF_PRODUCER : OFF_CONSUMER;
}

/** The filling side: wait Empty → fill → post Full. */
export class RingProducer extends RingEnd {
  #slot: Buffer | undefined;

  constructor(ring: SlotRing, options: WaitOptions) {
    super(ring, "producer", options);
  }

  /** The next free slot, as a writable view of `slotSizeBytes`; hand it over with commit(). */
  async acquireSlot(): Promise<Buffer> {
    if (this.#slot) throw new MosaicError("MOSAIC_ERR_INTERNAL", "acquireSlot twice without commit");
    await this.acquire("empty", () => this.peerState() === STATE_CLOSED);
    this.#slot = this.ring.slotData(this.counter % this.ring.slots);
    return this.#slot;
  }

  /** Publishes the acquired slot: `lengthBytes` of data and flags (SLOT_END, SLOT_ERROR). */
  commit(lengthBytes: number, flags = 0): void {
    this.assertOpen();
    if (!this.#slot) throw new MosaicError("MOSAIC_ERR_INTERNAL", "commit without an acquired slot");
    if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0 || lengthBytes > this.ring.slotSizeBytes) {
      throw new MosaicError(
        "MOSAIC_ERR_BAD_REQUEST",
        `slot length ${lengthBytes} outside 0-${this.ring.slotSizeBytes}`,
      );
    }
    const index = this.counter % this.ring.slots;
    const header = this.slotHeader(index);
    const b = this.ring.bytes;
    this.counter++;
    b.writeUInt32LE(lengthBytes, header);
    b.writeUInt32LE(flags, header + 4);
    b.writeUInt32LE(this.counter >>> 0, header + 8);
    b.writeUInt32LE((index + 1) % this.ring.slots, OFF_PRODUCER_SLOT);
    this.#slot = undefined;
    semPost(this.sem("full")); // a full barrier: the consumer sees the bytes above
  }

  /** Copies `data` into as many slots as it needs, waiting for free ones. */
  async write(data: Uint8Array): Promise<void> {
    const slotBytes = this.ring.slotSizeBytes;
    // Bounded by data.length / slotBytes passes.
    for (let offset = 0; offset < data.length; offset += slotBytes) {
      const n = Math.min(slotBytes, data.length - offset);
      const slot = await this.acquireSlot();
      slot.set(data.subarray(offset, offset + n));
      this.commit(n);
    }
  }

  /** Marks the end of the stream; the consumer's iterator finishes after the slots before it. */
  async end(): Promise<void> {
    await this.acquireSlot();
    this.commit(0, SLOT_END);
  }

  /** Ends the stream with an error the consumer will throw as a MosaicError. */
  async fail(error: MosaicError): Promise<void> {
    const slot = await this.acquireSlot();
    const n = slot.write(`${error.code}\n${error.message}`, "utf8");
    this.commit(n, SLOT_ERROR);
  }
}

/** The draining side: wait Full → read in place → post Empty. */
export class RingConsumer extends RingEnd {
  #held = false;
  #done = false;

  constructor(ring: SlotRing, options: WaitOptions) {
    super(ring, "consumer", options);
  }

  /**
   * The next slot's data as a zero-copy view, valid until release() or the
   * next call (which releases it); null at the end of the stream. A slot
   * marked ERROR is thrown as the MosaicError the producer sent.
   */
  async next(): Promise<Buffer | null> {
    if (this.#held) this.release();
    if (this.#done) return null;
    const expected = (this.counter + 1) >>> 0;
    const index = this.counter % this.ring.slots;
    const header = this.slotHeader(index);
    const b = this.ring.bytes;
    await this.acquire("full", () => b.readUInt32LE(header + 8) !== expected);
    if (b.readUInt32LE(header + 8) !== expected) {
      throw new RingError(
        "protocol",
        `ring ${this.ring.name}: slot ${index} holds sequence ${b.readUInt32LE(header + 8)}, expected ${expected}`,
      );
    }
    const lengthBytes = b.readUInt32LE(header);
    const flags = b.readUInt32LE(header + 4);
    if (lengthBytes > this.ring.slotSizeBytes) {
      throw new RingError("protocol", `ring ${this.ring.name}: slot ${index} claims ${lengthBytes} bytes`);
    }
    this.#held = true;
    const data = this.ring.slotData(index).subarray(0, lengthBytes);
    if (flags & SLOT_ERROR) {
      const text = data.toString("utf8");
      this.#done = true;
      this.release();
      throw remoteError(text);
    }
    if (flags & SLOT_END) {
      this.#done = true;
      this.release();
      return null;
    }
    return data;
  }

  /**
   * Starts reading the next stream after END or ERROR: one ring carries many
   * streams in turn (one per request), each ended by its END or ERROR slot.
   */
  restart(): void {
    this.#done = false;
  }

  /** Gives the slot from next() back to the producer; its view must not be used after. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    this.counter++;
    this.ring.bytes.writeUInt32LE(this.counter % this.ring.slots, OFF_CONSUMER_SLOT);
    semPost(this.sem("empty"));
  }

  /** Each slot's data until the end of the stream; each view is valid until the next iteration. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer, void, undefined> {
    try {
      // Bounded by the producer's END (or an error / timeout).
      for (;;) {
        const data = await this.next();
        if (data === null) return;
        yield data;
      }
    } finally {
      this.release();
    }
  }
}

function remoteError(text: string): MosaicError {
  const newline = text.indexOf("\n");
  const code = newline > 0 ? text.slice(0, newline) : "";
  const message = newline > 0 ? text.slice(newline + 1) : text;
  return isErrorCode(code)
    ? new MosaicError(code, message)
    : new MosaicError("MOSAIC_ERR_INTERNAL", `the producer failed: ${text}`);
}
