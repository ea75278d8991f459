// The guest's clocks and time layouts, the deadline queue, futex queues, and reading guest memory
// in FETCH rounds.
import { describe, expect, it } from "vitest";
import { AstraError, Errno } from "../../lib/errors.ts";
import {
  CLOCK_MONOTONIC,
  CLOCK_MONOTONIC_COARSE,
  CLOCK_REALTIME,
  clockResolution,
  decodeTimespec,
  encodeTimespec,
  encodeTimeval,
  GuestClock,
  resolveClock,
} from "../../services/sched/clock.ts";
import {
  decodeFutexOperation,
  FUTEX_CLOCK_REALTIME,
  FUTEX_PRIVATE_FLAG,
  FUTEX_WAIT_BITSET,
  FUTEX_WAKE,
  FutexTable,
} from "../../services/sched/futex.ts";
import { FetchNeeded, GuestReader } from "../../services/sched/guest_memory.ts";
import { TimerQueue } from "../../services/sched/timers.ts";

function timespec(seconds: bigint, nanos: bigint): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setBigInt64(0, seconds, true);
  view.setBigInt64(8, nanos, true);
  return bytes;
}

describe("clocks", () => {
  it("runs the monotonic clock from the machine's uptime and never backwards", () => {
    let millis = 1000;
    const clock = new GuestClock({ monotonicMillis: () => millis, realtimeMillis: () => 1.5 });
    clock.syncTo(5_000_000);
    expect(clock.monotonicNanos()).toBe(5_000_000);
    millis += 2;
    expect(clock.monotonicNanos()).toBe(7_000_000);
    clock.observe(9_000_000);
    expect(clock.monotonicNanos()).toBe(9_000_000);
    expect(clock.realtimeNanos()).toBe(1_500_000n);
  });

  it("resolves clock ids, dynamic CPU clocks included", () => {
    expect(resolveClock(CLOCK_REALTIME, 1, 2)).toEqual({ kind: "realtime" });
    expect(resolveClock(7, 1, 2)).toEqual({ kind: "monotonic" });
    expect(resolveClock(2, 1, 2)).toEqual({ kind: "process-cpu", pid: 1 });
    expect(resolveClock(3, 1, 2)).toEqual({ kind: "thread-cpu", tid: 2 });
    // MAKE_PROCESS_CPUCLOCK(5, CPUCLOCK_SCHED) and MAKE_THREAD_CPUCLOCK(0, CPUCLOCK_SCHED).
    expect(resolveClock((~5 << 3) | 2, 1, 2)).toEqual({ kind: "process-cpu", pid: 5 });
    expect(resolveClock((~0 << 3) | 4 | 2, 1, 2)).toEqual({ kind: "thread-cpu", tid: 2 });
    expect(() => resolveClock(99, 1, 2)).toThrow(AstraError);
    expect(clockResolution(CLOCK_MONOTONIC)).toBe(1n);
    expect(clockResolution(CLOCK_MONOTONIC_COARSE)).toBe(4_000_000n);
  });

  it("encodes and checks struct timespec and timeval", () => {
    expect(encodeTimespec(3_000_000_005n)).toEqual(timespec(3n, 5n));
    expect(encodeTimespec(-1n)).toEqual(timespec(-1n, 999_999_999n));
    expect(new DataView(encodeTimeval(1_500_000_000n).buffer).getBigInt64(8, true)).toBe(500_000n);
    expect(decodeTimespec(timespec(2n, 7n), "req", true)).toBe(2_000_000_007n);
    for (const bad of [timespec(0n, 1_000_000_000n), timespec(0n, -1n), timespec(-1n, 0n)]) {
      expect(() => decodeTimespec(bad, "req", true)).toThrow(AstraError);
    }
    expect(decodeTimespec(timespec(-1n, 0n), "abs", false)).toBe(-1_000_000_000n);
  });
});

describe("TimerQueue", () => {
  it("fires deadlines in order when due and keeps one host timer for the earliest", () => {
    let now = 0;
    const armed: number[] = [];
    const queue = new TimerQueue(() => now, { set: (_cb, delay) => armed.push(delay), clear: () => {} });
    const fired: string[] = [];
    queue.add(3_000_000, () => fired.push("c"));
    const b = queue.add(2_000_000, () => fired.push("b"));
    queue.add(1_000_000, () => fired.push("a"));
    expect(armed).toEqual([3, 2, 1]);
    expect(queue.cancel(b)).toBe(true);
    expect(queue.cancel(b)).toBe(false);
    now = 1_500_000;
    expect(queue.runDue()).toBe(1);
    now = 5_000_000;
    queue.runDue();
    expect(fired).toEqual(["a", "c"]);
    expect(queue.pending).toBe(0);
  });
});

describe("FutexTable", () => {
  it("wakes in FIFO order, by bitset, at most the count asked", () => {
    const futexes = new FutexTable();
    const woken: number[] = [];
    for (const [tid, bitset] of [[1, 1], [2, 2], [3, 3]]) {
      futexes.wait("k", tid, bitset, () => woken.push(tid));
    }
    expect(futexes.wake("k", 1, 2)).toEqual([2]);
    expect(futexes.wake("k", 5)).toEqual([1, 3]);
    expect(woken).toEqual([2, 1, 3]);
    expect(futexes.waiters("k")).toBe(0);
    expect(futexes.wakeCount("k")).toBe(2);
    expect(() => futexes.wake("k", 1, 0)).toThrow(AstraError);
  });

  it("requeues waiters to another word and cancels a waiter that timed out", () => {
    const futexes = new FutexTable();
    const woken: number[] = [];
    const waiters = [1, 2, 3, 4].map((tid) => futexes.wait("a", tid, 0xffffffff, () => woken.push(tid)));
    expect(futexes.cancel(waiters[3])).toBe(true);
    expect(futexes.cancel(waiters[3])).toBe(false);
    expect(futexes.requeue("a", "b", 1, 1)).toBe(2);
    expect(woken).toEqual([1]);
    expect([futexes.waiters("a"), futexes.waiters("b")]).toEqual([1, 1]);
    expect(futexes.wake("b", 1)).toEqual([2]);
  });

  it("decodes futex_op", () => {
    expect(decodeFutexOperation(FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)).toEqual({
      command: FUTEX_WAIT_BITSET,
      private: true,
      realtime: true,
    });
    const error = (() => {
      try {
        decodeFutexOperation(FUTEX_WAKE | FUTEX_CLOCK_REALTIME);
      } catch (e) {
        return e as AstraError;
      }
    })();
    expect(error?.errno).toBe(Errno.ENOSYS);
  });
});

describe("GuestReader", () => {
  const tooLong = () => new AstraError(3, Errno.ENAMETOOLONG, "too long");

  it("asks for what it lacks, one page at a time for strings", () => {
    const empty = new GuestReader([]);
    const fetch = (work: () => unknown) => {
      try {
        work();
      } catch (e) {
        if (e instanceof FetchNeeded) return e.ranges;
        throw e;
      }
      throw new Error("no fetch");
    };
    expect(fetch(() => empty.readString(0x10ff8n, 100, "path", tooLong))).toEqual([{
      address: 0x10ff8n,
      length: 8n,
    }]);
    const firstPage = new GuestReader([{ address: 0x10ff8n, data: new TextEncoder().encode("/usr/bin") }]);
    expect(fetch(() => firstPage.readString(0x10ff8n, 100, "path", tooLong)))
      .toEqual([{ address: 0x11000n, length: 93n }]);
    const secondPage = new Uint8Array(93);
    secondPage.set(new TextEncoder().encode("/env"));
    const both = new GuestReader([
      { address: 0x10ff8n, data: new TextEncoder().encode("/usr/bin") },
      { address: 0x11000n, data: secondPage },
    ]);
    expect(new TextDecoder().decode(both.readString(0x10ff8n, 100, "path", tooLong))).toBe("/usr/bin/env");
    expect(() => both.readString(0x10ff8n, 10, "path", tooLong)).toThrow("too long");
    expect(() => empty.read(0x10n, 4, "p")).toThrow(AstraError);
    expect(
      fetch(() =>
        empty.readAll([{ address: 0x20000n, length: 4, argument: "a" }, {
          address: 0x30000n,
          length: 8,
          argument: "b",
        }])
      ),
    )
      .toHaveLength(2);
  });

  it("reads NULL-terminated pointer arrays", () => {
    const array = new Uint8Array(24);
    const view = new DataView(array.buffer);
    view.setBigUint64(0, 0x1000n, true);
    view.setBigUint64(8, 0x2000n, true);
    const reader = new GuestReader([{ address: 0x20000n, data: new Uint8Array(4096).fill(0) }]);
    expect(reader.readPointerArray(0x20000n, 10, "argv", tooLong)).toEqual([]);
    const filled = new Uint8Array(4096);
    filled.set(array);
    const withPointers = new GuestReader([{ address: 0x20000n, data: filled }]);
    expect(withPointers.readPointerArray(0x20000n, 10, "argv", tooLong)).toEqual([0x1000n, 0x2000n]);
    expect(() => withPointers.readPointerArray(0x20000n, 1, "argv", tooLong)).toThrow("too long");
  });
});
