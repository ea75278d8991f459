// The guest's clocks. The monotonic clock is the machine's: nanoseconds since power-on, derived
// from the same host clock as the timebase, synchronised with the machine at start and kept from
// ever running behind the `now` of its Tick. The real-time clock is the host's, as qemu-user gives
// a guest. CPU-time clocks come from the scheduler's accounting. Plus the layouts the time calls
// read and write (struct timespec, struct timeval).
import { AstraError, Code, Errno, invalidArgument } from "../../lib/errors.ts";

export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;
export const CLOCK_PROCESS_CPUTIME_ID = 2;
export const CLOCK_THREAD_CPUTIME_ID = 3;
export const CLOCK_MONOTONIC_RAW = 4;
export const CLOCK_REALTIME_COARSE = 5;
export const CLOCK_MONOTONIC_COARSE = 6;
export const CLOCK_BOOTTIME = 7;
export const CLOCK_REALTIME_ALARM = 8;
export const CLOCK_BOOTTIME_ALARM = 9;
export const CLOCK_TAI = 11;

export const TIMER_ABSTIME = 1;

export const NANOS_PER_SECOND = 1_000_000_000;
const NANOS = 1_000_000_000n;
/** The coarse clocks tick at HZ (250 on Debian's kernels): a 4 ms resolution. */
const COARSE_RESOLUTION_NANOS = 4_000_000n;

export const TIMESPEC_SIZE = 16;
export const TIMEVAL_SIZE = 16;

export interface HostClock {
  /** Monotonic milliseconds with a fraction (performance.now). */
  monotonicMillis(): number;
  /** Milliseconds since the epoch with a fraction. */
  realtimeMillis(): number;
}

export const HOST_CLOCK: HostClock = {
  monotonicMillis: () => performance.now(),
  realtimeMillis: () => performance.timeOrigin + performance.now(),
};

function millisToNanos(millis: number): bigint {
  const whole = Math.floor(millis);
  return BigInt(whole) * 1_000_000n + BigInt(Math.floor((millis - whole) * 1e6));
}

export class GuestClock {
  #offsetNanos = 0;
  #floorNanos = 0;

  constructor(private readonly host: HostClock = HOST_CLOCK) {}

  /** Makes the monotonic clock read `guestNanos` now (the machine's uptime at start). */
  syncTo(guestNanos: number): void {
    this.#offsetNanos = guestNanos - this.host.monotonicMillis() * 1e6;
  }

  /** A time the machine reported (Tick's now): the clock never reads less after it. */
  observe(guestNanos: number): void {
    if (guestNanos > this.#floorNanos) this.#floorNanos = guestNanos;
  }

  /** CLOCK_MONOTONIC in nanoseconds since the machine powered on. */
  monotonicNanos(): number {
    const now = Math.round(this.host.monotonicMillis() * 1e6 + this.#offsetNanos);
    if (now > this.#floorNanos) this.#floorNanos = now;
    return this.#floorNanos;
  }

  /** CLOCK_REALTIME in nanoseconds since the epoch. */
  realtimeNanos(): bigint {
    return millisToNanos(this.host.realtimeMillis());
  }
}

/** CPU time of a thread and of its whole process, for the CPU-time clocks. */
export interface CpuTimes {
  threadNanos(tid: number): bigint;
  processNanos(pid: number): bigint;
}

/** A clock a call names: a fixed clock id, or a CPU-time clock of some process or thread. */
export type ClockTarget =
  | { kind: "realtime" }
  | { kind: "monotonic" }
  | { kind: "process-cpu"; pid: number }
  | { kind: "thread-cpu"; tid: number };

function invalidClock(clockId: number): AstraError {
  return new AstraError(Code.INVALID_ARGUMENT, Errno.EINVAL, `clock ${clockId} is not a clock`, {
    argument: "clockid",
  });
}

/**
 * What a clockid_t names for the calling thread. Negative ids are Linux's dynamic CPU clocks:
 * ~id >> 3 is a PID or (with bit 2) a TID, 0 meaning the caller.
 */
export function resolveClock(clockId: number, callerPid: number, callerTid: number): ClockTarget {
  switch (clockId) {
    case CLOCK_REALTIME:
    case CLOCK_REALTIME_COARSE:
    case CLOCK_REALTIME_ALARM:
    case CLOCK_TAI:
      return { kind: "realtime" };
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_BOOTTIME:
    case CLOCK_BOOTTIME_ALARM:
      return { kind: "monotonic" };
    case CLOCK_PROCESS_CPUTIME_ID:
      return { kind: "process-cpu", pid: callerPid };
    case CLOCK_THREAD_CPUTIME_ID:
      return { kind: "thread-cpu", tid: callerTid };
  }
  if (clockId < 0 && (clockId & 3) !== 3) {
    const id = ~(clockId >> 3);
    if ((clockId & 4) !== 0) return { kind: "thread-cpu", tid: id === 0 ? callerTid : id };
    return { kind: "process-cpu", pid: id === 0 ? callerPid : id };
  }
  throw invalidClock(clockId);
}

/** clock_getres: 1 ns for the high-resolution clocks, a tick for the coarse ones. */
export function clockResolution(clockId: number): bigint {
  if (clockId === CLOCK_REALTIME_COARSE || clockId === CLOCK_MONOTONIC_COARSE) return COARSE_RESOLUTION_NANOS;
  resolveClock(clockId, 0, 0);
  return 1n;
}

/** Reads a clock in nanoseconds. */
export function readClock(target: ClockTarget, clock: GuestClock, cpu: CpuTimes): bigint {
  switch (target.kind) {
    case "realtime":
      return clock.realtimeNanos();
    case "monotonic":
      return BigInt(clock.monotonicNanos());
    case "process-cpu":
      return cpu.processNanos(target.pid);
    case "thread-cpu":
      return cpu.threadNanos(target.tid);
  }
}

/** struct timespec { time_t tv_sec; long tv_nsec; }: 16 bytes on ppc64. */
export function encodeTimespec(nanos: bigint): Uint8Array {
  const bytes = new Uint8Array(TIMESPEC_SIZE);
  const view = new DataView(bytes.buffer);
  const seconds = nanos >= 0n ? nanos / NANOS : -((-nanos + NANOS - 1n) / NANOS);
  view.setBigInt64(0, seconds, true);
  view.setBigInt64(8, nanos - seconds * NANOS, true);
  return bytes;
}

/** struct timeval { time_t tv_sec; suseconds_t tv_usec; }: 16 bytes on ppc64. */
export function encodeTimeval(nanos: bigint): Uint8Array {
  const bytes = new Uint8Array(TIMEVAL_SIZE);
  const view = new DataView(bytes.buffer);
  view.setBigInt64(0, nanos / NANOS, true);
  view.setBigInt64(8, (nanos % NANOS) / 1000n, true);
  return bytes;
}

/**
 * A timespec the guest passed, in nanoseconds. EINVAL when tv_nsec is outside 0..999999999 or, for
 * a duration, tv_sec is negative (as nanosleep and futex timeouts check).
 */
export function decodeTimespec(bytes: Uint8Array, argument: string, duration: boolean): bigint {
  if (bytes.length < TIMESPEC_SIZE) {
    throw invalidArgument(
      argument,
      `a timespec needs ${TIMESPEC_SIZE} bytes, got ${bytes.length}`,
      Errno.EFAULT,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, TIMESPEC_SIZE);
  const seconds = view.getBigInt64(0, true);
  const nanos = view.getBigInt64(8, true);
  if (nanos < 0n || nanos >= NANOS || (duration && seconds < 0n)) {
    throw invalidArgument(argument, `timespec {${seconds}, ${nanos}} is not a valid time`);
  }
  return seconds * NANOS + nanos;
}
