// Deadlines on the guest's monotonic clock: sleeping threads, futex and wait timeouts. A deadline
// fires when a Tick sees its time has come, or from a host timer armed for the earliest one, so a
// sleeper wakes even on a machine whose CPUs are all idle (no decrementer ticks).

export interface HostTimers {
  set(callback: () => void, delayMillis: number): unknown;
  clear(handle: unknown): void;
}

export const HOST_TIMERS: HostTimers = {
  set: (callback, delayMillis) => setTimeout(callback, delayMillis),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface Timer {
  id: number;
  deadline: number;
  fire: () => void;
}

export class TimerQueue {
  #timers: Timer[] = [];
  #nextId = 1;
  #armed: { handle: unknown; deadline: number } | null = null;
  #stopped = false;

  constructor(private readonly now: () => number, private readonly host: HostTimers = HOST_TIMERS) {}

  /** Calls `fire` once the monotonic clock reaches `deadline` (nanoseconds); returns its id. */
  add(deadline: number, fire: () => void): number {
    const id = this.#nextId++;
    const at = this.#timers.findIndex((t) => t.deadline > deadline);
    this.#timers.splice(at < 0 ? this.#timers.length : at, 0, { id, deadline, fire });
    this.#arm();
    return id;
  }

  /** False when it already fired or was cancelled. */
  cancel(id: number): boolean {
    const index = this.#timers.findIndex((t) => t.id === id);
    if (index < 0) return false;
    this.#timers.splice(index, 1);
    this.#arm();
    return true;
  }

  get pending(): number {
    return this.#timers.length;
  }

  /** Fires every timer whose deadline has passed; returns how many fired. */
  runDue(now = this.now()): number {
    let fired = 0;
    while (this.#timers.length > 0 && this.#timers[0].deadline <= now) {
      this.#timers.shift()!.fire();
      fired++;
    }
    this.#arm();
    return fired;
  }

  /** Drops every timer and the host timer (the service is stopping). */
  stop(): void {
    this.#stopped = true;
    this.#timers = [];
    this.#disarm();
  }

  #disarm(): void {
    if (this.#armed) this.host.clear(this.#armed.handle);
    this.#armed = null;
  }

  #arm(): void {
    const first = this.#timers[0];
    if (!first || this.#stopped) return this.#disarm();
    if (this.#armed?.deadline === first.deadline) return;
    this.#disarm();
    const delay = Math.max(0, (first.deadline - this.now()) / 1e6);
    const handle = this.host.set(() => {
      this.#armed = null;
      this.runDue();
    }, Math.ceil(delay));
    this.#armed = { handle, deadline: first.deadline };
  }
}
