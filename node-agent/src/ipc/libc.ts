// The libc calls behind same-node IPC, bound in one place through koffi.
//
// Why koffi (DESIGN.md §4 leaves the mechanism to us): Node has no binding for
// POSIX shared memory or semaphores, and Atomics.wait cannot wake a waiter in
// another process (DESIGN §6). koffi is a well-kept FFI that ships prebuilt
// binaries as optional per-platform packages (@koromix/koffi-linux-x64 here),
// so nothing compiles at install and its own install script need not run;
// a hand-written N-API addon would need node-gyp on every host. Its `.async`
// calls run on the libuv thread pool and carry the worker's errno back to the
// callback, which is exactly what a blocking sem_clockwait needs: the wait
// sleeps in the kernel (futex) on a pool thread, the event loop keeps turning,
// and nothing spins.
//
// Why unnamed process-shared semaphores (sem_init with pshared=1) inside the
// segment rather than named ones (sem_open) or SysV: they live and die with
// the segment, so there is exactly one name to create, guard and unlink.
//
// Addresses are passed as plain numbers (uintptr_t): mmap'd addresses fit in
// 47 bits, so pointer + offset is ordinary arithmetic, no koffi pointer
// objects. Linux (glibc or musl) on 64-bit only; constants below are Linux's.
import koffi, { type LibraryHandle } from "koffi";
import { MosaicError } from "../errors.ts";

export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOFOLLOW = 0o400000;
export const O_CLOEXEC = 0o2000000;
const PROT_READ_WRITE = 0x1 | 0x2;
const MAP_SHARED = 0x01;
const CLOCK_REALTIME = 0;
const CLOCK_MONOTONIC = 1;

/** glibc's sem_t is 32 bytes on 64-bit Linux, musl's 32 too; slots for them are this big. */
export const SEM_BYTES = 32;

if (process.platform !== "linux" || koffi.sizeof("void *") !== 8) {
  throw new MosaicError("MOSAIC_ERR_INTERNAL", "same-node IPC needs 64-bit Linux (POSIX shm and semaphores)");
}

const libc = loadLibc();

function loadLibc(): LibraryHandle {
  try {
    return koffi.load("libc.so.6"); // glibc
  } catch {
    return koffi.load("libc.so"); // musl (Alpine images)
  }
}

const shm_open = libc.func("int shm_open(const char *name, int oflag, uint32_t mode)");
const shm_unlink = libc.func("int shm_unlink(const char *name)");
const ftruncate = libc.func("int ftruncate(int fd, int64_t length)");
const posix_fallocate = libc.func("int posix_fallocate(int fd, int64_t offset, int64_t length)");
const close = libc.func("int close(int fd)");
const mmap = libc.func(
  "intptr_t mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)",
);
const munmap = libc.func("int munmap(uintptr_t addr, size_t length)");
const sem_init = libc.func("int sem_init(uintptr_t sem, int pshared, uint32_t value)");
const sem_post = libc.func("int sem_post(uintptr_t sem)");
const sem_trywait = libc.func("int sem_trywait(uintptr_t sem)");
const sem_getvalue = libc.func("int sem_getvalue(uintptr_t sem, _Out_ int *value)");
const clock_gettime = libc.func("int clock_gettime(int clock, _Out_ uint8_t *ts)");
const strerror = libc.func("const char *strerror(int errnum)");

// sem_clockwait (glibc 2.30+) measures against CLOCK_MONOTONIC, so a wall
// clock step cannot stretch or cut a wait; sem_timedwait is the fallback.
const timedWait = bindTimedWait();

function bindTimedWait(): { call: ReturnType<LibraryHandle["func"]>; clock: number; prefix: unknown[] } {
  try {
    return {
      call: libc.func("int sem_clockwait(uintptr_t sem, int clock, const uint8_t *abstime)"),
      clock: CLOCK_MONOTONIC,
      prefix: [CLOCK_MONOTONIC],
    };
  } catch {
    return {
      call: libc.func("int sem_timedwait(uintptr_t sem, const uint8_t *abstime)"),
      clock: CLOCK_REALTIME,
      prefix: [],
    };
  }
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(koffi.os.errno).map(([name, n]) => [n, name]));
export const ERRNO = koffi.os.errno as Readonly<Record<string, number>>;

/** A failed libc call as a MosaicError naming the call, its subject and errno (e.g. "ENOENT: No such file"). */
export class LibcError extends MosaicError {
  readonly errno: number;
  readonly errnoName: string;

  constructor(call: string, subject: string, errno: number) {
    const errnoName = ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
    super(codeFor(errno), `${call}(${subject}) failed: ${errnoName} (${strerror(errno) as string})`);
    this.errno = errno;
    this.errnoName = errnoName;
  }
}

function codeFor(errno: number): MosaicError["code"] {
  // Caller mistakes (bad or unknown name, no permission, absurd size) are
  // bad requests; running out of memory is exhaustion; the rest is ours.
  if ([ERRNO.ENOENT, ERRNO.EACCES, ERRNO.EEXIST, ERRNO.EINVAL, ERRNO.ENAMETOOLONG].includes(errno)) {
    return "MOSAIC_ERR_BAD_REQUEST";
  }
  if ([ERRNO.ENOMEM, ERRNO.ENOSPC, ERRNO.EFBIG, ERRNO.EMFILE, ERRNO.ENFILE].includes(errno)) {
    return "MOSAIC_ERR_STORE_FULL";
  }
  return "MOSAIC_ERR_INTERNAL";
}

function check(result: number, call: string, subject: string): number {
  if (result < 0) throw new LibcError(call, subject, koffi.errno());
  return result;
}

export function shmOpen(name: string, flags: number, mode: number): number {
  return check(shm_open(name, flags | O_CLOEXEC | O_NOFOLLOW, mode) as number, "shm_open", name);
}

export function shmUnlink(name: string): boolean {
  if ((shm_unlink(name) as number) === 0) return true;
  const errno = koffi.errno();
  if (errno === ERRNO.ENOENT) return false;
  throw new LibcError("shm_unlink", name, errno);
}

export function setSize(fd: number, sizeBytes: number, subject: string): void {
  check(ftruncate(fd, sizeBytes) as number, "ftruncate", subject);
}

/** Reserves the pages now (tmpfs is sparse), so a full /dev/shm fails here, not as SIGBUS later. */
export function reserve(fd: number, sizeBytes: number, subject: string): void {
  const errno = posix_fallocate(fd, 0, sizeBytes) as number; // returns the error, not -1
  if (errno !== 0) throw new LibcError("posix_fallocate", subject, errno);
}

export function closeFd(fd: number): void {
  close(fd);
}

export function mapShared(fd: number, sizeBytes: number, subject: string): number {
  return check(mmap(null, sizeBytes, PROT_READ_WRITE, MAP_SHARED, fd, 0) as number, "mmap", subject);
}

export function unmap(address: number, sizeBytes: number, subject: string): void {
  check(munmap(address, sizeBytes) as number, "munmap", subject);
}

/** The mapped bytes as an ArrayBuffer, no copy (koffi.view makes an external ArrayBuffer). */
export function viewOf(address: number, sizeBytes: number): ArrayBuffer {
  return koffi.view(address, sizeBytes) as ArrayBuffer;
}

export function semInit(sem: number, value: number): void {
  check(sem_init(sem, 1, value) as number, "sem_init", `value ${value}`);
}

export function semPost(sem: number): void {
  check(sem_post(sem) as number, "sem_post", "");
}

/** One decrement if it can be had now: the fast path that skips the thread pool. */
export function semTryWait(sem: number): boolean {
  if ((sem_trywait(sem) as number) === 0) return true;
  const errno = koffi.errno();
  if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return false;
  throw new LibcError("sem_trywait", "", errno);
}

export function semValue(sem: number): number {
  const out = [0];
  check(sem_getvalue(sem, out) as number, "sem_getvalue", "");
  return out[0] as number;
}

/**
 * Waits up to `timeoutMs` for one decrement on a libuv pool thread (the event
 * loop keeps running, the thread sleeps in the kernel). Resolves true when
 * decremented, false on timeout or a signal; rejects on anything else.
 */
export function semWaitAsync(sem: number, timeoutMs: number): Promise<boolean> {
  const abstime = deadline(timedWait.clock, timeoutMs);
  return new Promise((resolve, reject) => {
    // abstime stays referenced by this closure until the call completes.
    timedWait.call.async(sem, ...timedWait.prefix, abstime, (error: unknown, result: number) => {
      if (error) return reject(error);
      if (result === 0) return resolve(true);
      const errno = koffi.errno();
      if (errno === ERRNO.ETIMEDOUT || errno === ERRNO.EINTR) return resolve(false);
      reject(new LibcError(timedWait.prefix.length ? "sem_clockwait" : "sem_timedwait", "", errno));
    });
  });
}

function deadline(clock: number, timeoutMs: number): Buffer {
  const ts = Buffer.alloc(16);
  check(clock_gettime(clock, ts) as number, "clock_gettime", String(clock));
  const ns = ts.readBigInt64LE(8) + BigInt(Math.max(0, Math.round(timeoutMs * 1e6)));
  ts.writeBigInt64LE(ts.readBigInt64LE(0) + ns / 1_000_000_000n, 0);
  ts.writeBigInt64LE(ns % 1_000_000_000n, 8);
  return ts;
}
