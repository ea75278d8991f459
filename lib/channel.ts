// An unbounded async queue: producers push, one consumer iterates. It turns callbacks and events
// into the AsyncIterable a streaming call sends or a handler returns.
import { PASSIVE } from "./iterators.ts";

export class Channel<T> implements AsyncIterable<T> {
  readonly [PASSIVE] = true;
  private readonly items: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | undefined;
  private failWaiting: ((e: unknown) => void) | undefined;
  private closed = false;
  private failure: { error: unknown } | undefined;

  /** Queues a value; ignored once the channel is closed. */
  push(value: T): void {
    if (this.closed) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = this.failWaiting = undefined;
      resolve({ value, done: false });
    } else {
      this.items.push(value);
    }
  }

  /** Ends the stream after the queued values. */
  close(): void {
    this.closed = true;
    if (this.waiting && this.items.length === 0) {
      const resolve = this.waiting;
      this.waiting = this.failWaiting = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  /** Ends the stream with an error after the queued values. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.failure = { error };
    this.closed = true;
    if (this.failWaiting && this.items.length === 0) {
      const reject = this.failWaiting;
      this.waiting = this.failWaiting = undefined;
      reject(error);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length) return Promise.resolve({ value: this.items.shift()!, done: false });
        if (this.failure) return Promise.reject(this.failure.error);
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.waiting = resolve;
          this.failWaiting = reject;
        });
      },
      return: () => {
        this.closed = true;
        this.items.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/**
 * Serves a stream whose requests are handled concurrently and answered in any order (the trap
 * path's KernelCall streams): `handle` gets each request as it arrives and pushes its answers to
 * `replies`. The replies end once the requests have ended and every handler has finished, and fail
 * with the first error of the requests or of a handler. Returns `replies`.
 */
export function serveConcurrently<Request, Reply>(
  requests: AsyncIterable<Request>,
  replies: Channel<Reply>,
  handle: (request: Request) => Promise<unknown>,
): Channel<Reply> {
  let inFlight = 0;
  let ended = false;
  const settle = () => {
    if (ended && inFlight === 0) replies.close();
  };
  (async () => {
    try {
      for await (const request of requests) {
        inFlight++;
        handle(request).catch((error) => replies.fail(error)).finally(() => {
          inFlight--;
          settle();
        });
      }
      ended = true;
      settle();
    } catch (error) {
      replies.fail(error);
    }
  })();
  return replies;
}
