// Async iterables for the streaming hot path. Every message of a stream passes through several
// layers (message creation, copies, interceptors); written as async generators each layer costs a
// generator resumption and its promises per message, which the trap path's one-message round trips
// feel. These do the same with one promise per element.

/**
 * Marks an async iterable whose `next()` runs none of its producer's code, only hands over what was
 * queued (a Channel): the server span need not be entered around each read of a handler's replies.
 */
export const PASSIVE: unique symbol = Symbol("passive async iterable");

export function isPassive(source: AsyncIterable<unknown>): boolean {
  return (source as { [PASSIVE]?: boolean })[PASSIVE] === true;
}

/**
 * The elements of `source`, each passed through `map`: what `for await (x of source) yield map(x)`
 * does — a throwing `map` ends the stream with its error and returns the source, and returning
 * early returns the source — without a generator.
 */
export function mapAsync<T, U>(source: AsyncIterable<T>, map: (value: T) => U): AsyncIterable<U> {
  const mapped: AsyncIterable<U> & { [PASSIVE]: boolean } = {
    // `map` converts; it starts no work of its own, so reading stays as passive as the source.
    [PASSIVE]: isPassive(source),
    [Symbol.asyncIterator](): AsyncIterator<U> {
      const it = source[Symbol.asyncIterator]();
      let ended = false;
      const stop = async () => {
        if (ended) return;
        ended = true;
        await it.return?.();
      };
      return {
        next(): Promise<IteratorResult<U>> {
          if (ended) return Promise.resolve({ done: true, value: undefined });
          return it.next().then(
            (r): IteratorResult<U> | Promise<IteratorResult<U>> => {
              if (r.done) {
                ended = true;
                return { done: true, value: undefined };
              }
              try {
                return { done: false, value: map(r.value) };
              } catch (e) {
                return stop().catch(() => {}).then(() => Promise.reject(e));
              }
            },
            (e) => {
              ended = true;
              throw e;
            },
          );
        },
        async return(value?: unknown): Promise<IteratorResult<U>> {
          await stop();
          return { done: true, value: value as U };
        },
      };
    },
  };
  return mapped;
}
