// Waiters for "something changed" on a VFS object (a pipe's data or ends, a file's flock): each
// waits for the next wake-up or for its call to be aborted, and a wake-up wakes every one of them.
export class Wakeups {
  readonly #waiters = new Set<() => void>();

  get waiting(): number {
    return this.#waiters.size;
  }

  /** Wakes everything waiting now; later waits wait for the next wake-up. */
  wakeAll(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  /** Settles at the next wake-up; rejects with the signal's reason when it aborts first. */
  next(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters.delete(wake);
        reject(signal.reason);
      };
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      this.#waiters.add(wake);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}
