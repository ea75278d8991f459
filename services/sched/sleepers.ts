// Threads asleep in sched: a sleep takes its thread off its CPU or runqueue until it is woken,
// times out, is cut short by a signal or ends with its process. A thread asleep in a kernel call
// runs again once the call is answered; any other is runnable as soon as its sleep ends.
import { Errno, failedPrecondition } from "../../lib/errors.ts";
import type { Thread, WaitObject } from "./processes.ts";
import type { Scheduler } from "./runqueue.ts";
import type { TimerQueue } from "./timers.ts";

/** How a sleep ended. */
export type SleepEnd =
  | { kind: "woken" }
  | { kind: "timeout" }
  | { kind: "signal" }
  /** The process died while the thread slept: its kernel call answers EXIT_PROCESS. */
  | { kind: "exit"; waitStatus: number };

export interface SleepRequest {
  state: "sleeping" | "blocked";
  waitObject?: WaitObject | null;
  /** Monotonic nanoseconds at which the sleep ends with "timeout". */
  wakeAt?: number | null;
  /** The thread sleeps inside a sched kernel call: the call, not sched, makes it runnable again. */
  inCall: boolean;
  /** A deliverable signal ends it (EINTR); storage's I/O waits are not sched's to cut short. */
  interruptible: boolean;
  onEnd?: (reason: SleepEnd) => void;
}

export interface Sleeper extends SleepRequest {
  thread: Thread;
  timer: number | null;
}

export class Sleepers {
  readonly #sleepers = new Map<number, Sleeper>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly timers: TimerQueue,
    private readonly now: () => number,
    /** Puts a thread whose sleep ended back on a runqueue. */
    private readonly makeRunnable: (thread: Thread) => void,
  ) {}

  get(tid: number): Sleeper | undefined {
    return this.#sleepers.get(tid);
  }

  has(tid: number): boolean {
    return this.#sleepers.has(tid);
  }

  values(): IterableIterator<Sleeper> {
    return this.#sleepers.values();
  }

  /** Takes a thread off its CPU or runqueue until the sleep ends. */
  sleep(thread: Thread, request: SleepRequest): void {
    if (thread.state !== "runnable" || this.#sleepers.has(thread.tid)) {
      throw failedPrecondition(`thread ${thread.tid} is ${thread.state}, not runnable`, Errno.EINVAL, "tid");
    }
    thread.state = request.state;
    thread.waitObject = request.waitObject ?? null;
    thread.wakeAtNanos = request.wakeAt ?? 0;
    this.scheduler.leave(thread.tid, this.now());
    const sleeper: Sleeper = { ...request, thread, timer: null };
    if (request.wakeAt !== null && request.wakeAt !== undefined) {
      sleeper.timer = this.timers.add(request.wakeAt, () => this.end(sleeper, { kind: "timeout" }));
    }
    this.#sleepers.set(thread.tid, sleeper);
  }

  /** Ends a thread's sleep; a sleep outside a kernel call makes the thread runnable at once. */
  end(sleeper: Sleeper, reason: SleepEnd): void {
    if (this.#sleepers.get(sleeper.thread.tid) !== sleeper) return;
    this.#sleepers.delete(sleeper.thread.tid);
    if (sleeper.timer !== null) this.timers.cancel(sleeper.timer);
    const thread = sleeper.thread;
    thread.waitObject = null;
    thread.wakeAtNanos = 0;
    if (reason.kind !== "exit" && thread.state !== "exited") {
      thread.state = thread.process.stopped ? "stopped" : "runnable";
      if (!sleeper.inCall && thread.state === "runnable") this.makeRunnable(thread);
    }
    sleeper.onEnd?.(reason);
  }
}
