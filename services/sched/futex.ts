// Futex wait queues (kernel/futex): threads waiting on a 32-bit word, woken in FIFO order by
// FUTEX_WAKE with a bitset match, moved between words by FUTEX_REQUEUE. A futex is named by its
// key: the address space and the word's address. Linux keys a shared futex by the page it maps
// instead, so that processes sharing memory meet on it; with no memory shared between address
// spaces yet (no MAP_SHARED across fork), the address-space key is the same futex.
import { AstraError, Code, Errno } from "../../lib/errors.ts";

export const FUTEX_WAIT = 0;
export const FUTEX_WAKE = 1;
export const FUTEX_REQUEUE = 3;
export const FUTEX_CMP_REQUEUE = 4;
export const FUTEX_WAKE_OP = 5;
export const FUTEX_WAIT_BITSET = 9;
export const FUTEX_WAKE_BITSET = 10;
export const FUTEX_PRIVATE_FLAG = 128;
export const FUTEX_CLOCK_REALTIME = 256;
export const FUTEX_BITSET_MATCH_ANY = 0xffffffff;

export interface FutexOperation {
  command: number;
  private: boolean;
  /** Absolute timeouts of FUTEX_WAIT_BITSET are on CLOCK_REALTIME instead of CLOCK_MONOTONIC. */
  realtime: boolean;
}

/** Splits futex_op; FUTEX_CLOCK_REALTIME only goes with the waits (ENOSYS otherwise, as Linux). */
export function decodeFutexOperation(op: number): FutexOperation {
  const command = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
  const realtime = (op & FUTEX_CLOCK_REALTIME) !== 0;
  if (realtime && command !== FUTEX_WAIT && command !== FUTEX_WAIT_BITSET) {
    throw new AstraError(
      Code.UNIMPLEMENTED,
      Errno.ENOSYS,
      `FUTEX_CLOCK_REALTIME does not apply to futex command ${command}`,
      { argument: "futex_op" },
    );
  }
  return { command, private: (op & FUTEX_PRIVATE_FLAG) !== 0, realtime };
}

export function futexKey(spaceId: bigint, address: bigint): string {
  return `${spaceId}:${address}`;
}

export interface FutexWaiter {
  readonly tid: number;
  key: string;
  readonly bitset: number;
  /** Called once, when a wake or requeue-wake takes it off the queue. */
  readonly woken: () => void;
}

export class FutexTable {
  readonly #queues = new Map<string, FutexWaiter[]>();
  /** Wakes per key: a waiter that saw the word before a wake knows it may have missed it. */
  readonly #wakes = new Map<string, number>();

  /** Queues a thread on a futex; `woken` runs when a wake picks it. */
  wait(key: string, tid: number, bitset: number, woken: () => void): FutexWaiter {
    if (bitset === 0) {
      throw new AstraError(Code.INVALID_ARGUMENT, Errno.EINVAL, "a futex wait needs a non-zero bitset", {
        argument: "val3",
      });
    }
    const waiter: FutexWaiter = { tid, key, bitset: bitset >>> 0, woken };
    const queue = this.#queues.get(key) ?? [];
    queue.push(waiter);
    this.#queues.set(key, queue);
    return waiter;
  }

  /** Takes a waiter off its queue without waking it (timeout, signal); false if already gone. */
  cancel(waiter: FutexWaiter): boolean {
    const queue = this.#queues.get(waiter.key);
    const index = queue?.indexOf(waiter) ?? -1;
    if (!queue || index < 0) return false;
    queue.splice(index, 1);
    if (queue.length === 0) this.#queues.delete(waiter.key);
    return true;
  }

  /** Wakes up to `count` waiters whose bitset shares a bit with `bitset`, oldest first; their TIDs. */
  wake(key: string, count: number, bitset = FUTEX_BITSET_MATCH_ANY): number[] {
    if ((bitset >>> 0) === 0) {
      throw new AstraError(Code.INVALID_ARGUMENT, Errno.EINVAL, "a futex wake needs a non-zero bitset", {
        argument: "val3",
      });
    }
    this.#wakes.set(key, (this.#wakes.get(key) ?? 0) + 1);
    const queue = this.#queues.get(key);
    if (!queue) return [];
    const woken: FutexWaiter[] = [];
    for (const waiter of queue) {
      if (woken.length >= count) break;
      if ((waiter.bitset & bitset) !== 0) woken.push(waiter);
    }
    const rest = queue.filter((w) => !woken.includes(w));
    if (rest.length === 0) this.#queues.delete(key);
    else this.#queues.set(key, rest);
    for (const waiter of woken) waiter.woken();
    return woken.map((w) => w.tid);
  }

  /**
   * FUTEX_REQUEUE: wakes up to `wakeCount` waiters of `from` and moves up to `requeueCount` of the
   * rest to `to`. Returns how many were woken plus how many moved (CMP_REQUEUE's result).
   */
  requeue(from: string, to: string, wakeCount: number, requeueCount: number): number {
    const woken = this.wake(from, wakeCount).length;
    const queue = this.#queues.get(from);
    if (!queue || from === to) return woken;
    const moved = queue.splice(0, requeueCount);
    if (queue.length === 0) this.#queues.delete(from);
    const target = this.#queues.get(to) ?? [];
    for (const waiter of moved) {
      waiter.key = to;
      target.push(waiter);
    }
    if (target.length > 0) this.#queues.set(to, target);
    return woken + moved.length;
  }

  /** How many wakes a key has seen. */
  wakeCount(key: string): number {
    return this.#wakes.get(key) ?? 0;
  }

  waiters(key: string): number {
    return this.#queues.get(key)?.length ?? 0;
  }

  /** Drops the wake counters of an address space that is gone. */
  forgetSpace(spaceId: bigint): void {
    const prefix = `${spaceId}:`;
    for (const key of this.#wakes.keys()) if (key.startsWith(prefix)) this.#wakes.delete(key);
  }
}
