// The in-process transport: services in one Deno process call each other directly, with the same
// semantics as gRPC. Messages cross as deep copies (so no caller and callee ever share a mutable
// object) and the size limit applies, deadlines and cancellation abort the handler's
// signal and fail the call with the same status codes the gRPC transport produces.
import { type DescMessage, type DescMethod, type Message, toBinary } from "@bufbuild/protobuf";
import { AstraError, Code, Errno } from "./errors.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./config.ts";
import { type CallContext, type CallOptions, methodPath, type Transport } from "./rpc.ts";
import { mapAsync } from "./iterators.ts";
import { copyMessage } from "./message_copy.ts";
import type { BoundMethod, BoundService } from "./server.ts";

export function cancelledError(): AstraError {
  return new AstraError(Code.CANCELLED, Errno.ECANCELED, "call cancelled by the caller");
}

export function deadlineError(timeoutMs: number): AstraError {
  return new AstraError(Code.DEADLINE_EXCEEDED, Errno.ETIMEDOUT, `deadline of ${timeoutMs} ms exceeded`);
}

export function tooLargeError(what: string, size: number, limit: number): AstraError {
  return new AstraError(
    Code.RESOURCE_EXHAUSTED,
    Errno.E2BIG,
    `${what} message of ${size} bytes exceeds the limit of ${limit} bytes`,
    { argument: what },
  );
}

interface CallSignal {
  signal: AbortSignal;
  deadline?: number;
  /**
   * Ends the call and clears the timer. A call that ends before its handler did (the caller
   * stopped reading) aborts the handler's signal; a completed one leaves it alone, as over gRPC.
   */
  end(handlerDone: boolean): void;
}

function callSignal(opts: CallOptions): CallSignal {
  const controller = new AbortController();
  if (opts.signal?.aborted) throw cancelledError();
  const onAbort = () => controller.abort(cancelledError());
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let deadline: number | undefined;
  if (opts.timeoutMs !== undefined) {
    deadline = Date.now() + opts.timeoutMs;
    timer = setTimeout(() => controller.abort(deadlineError(opts.timeoutMs!)), opts.timeoutMs);
  }
  return {
    signal: controller.signal,
    deadline,
    end(handlerDone) {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      if (!handlerDone && !controller.signal.aborted) controller.abort(cancelledError());
    },
  };
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

export class InProcessRouter {
  private readonly methods = new Map<string, BoundMethod & { service: string }>();

  constructor(readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  add(bound: BoundService): void {
    for (const [path, m] of bound.methods) this.methods.set(path, { ...m, service: bound.service });
  }

  /** A transport whose calls are served by the services added to this router. */
  transport(): Transport {
    return new InProcessTransport(this);
  }

  lookup(method: DescMethod): BoundMethod & { service: string } {
    const path = methodPath(method);
    const found = this.methods.get(path);
    if (!found) {
      throw new AstraError(Code.UNIMPLEMENTED, Errno.ENOSYS, `no service in this process serves ${path}`);
    }
    return found;
  }

  /**
   * The receiver's own message made from what the sender gave (a message or its init shape);
   * rejected if its encoding is over the limit (measured exactly only when the cheap bound says it
   * might be).
   */
  copy(desc: DescMessage, msg: unknown, what: string): Message {
    const { copy, sizeBound } = copyMessage(desc, msg);
    if (sizeBound > this.maxMessageBytes) {
      const size = toBinary(desc, copy).length;
      if (size > this.maxMessageBytes) throw tooLargeError(what, size, this.maxMessageBytes);
    }
    return copy;
  }
}

class InProcessTransport implements Transport {
  readonly kind = "in-process";

  constructor(private readonly router: InProcessRouter) {}

  private start(method: DescMethod, opts: CallOptions) {
    const bound = this.router.lookup(method);
    const call = callSignal(opts);
    const ctx: CallContext = {
      service: bound.service,
      method,
      metadata: opts.metadata ?? {},
      signal: call.signal,
      deadline: call.deadline,
      peer: "in-process",
      traceContext: opts.traceContext,
    };
    return { bound, call, ctx };
  }

  private inputs(method: DescMethod, reqs: AsyncIterable<unknown>): AsyncIterable<Message> {
    return mapAsync(reqs, (req) => this.router.copy(method.input, req, "request"));
  }

  /**
   * The handler's replies, copied. The call's signal is watched once per call, not per message: an
   * abort fails the pending read. Ending before the handler did (abort, a failed handler, the
   * consumer stopping) aborts the handler's signal and returns its iterator.
   */
  private replies(
    method: DescMethod,
    source: AsyncIterable<Message>,
    call: CallSignal,
  ): AsyncIterable<unknown> {
    const router = this.router;
    return {
      [Symbol.asyncIterator](): AsyncIterator<unknown> {
        const it = source[Symbol.asyncIterator]();
        let ended = false;
        let failPending: ((e: unknown) => void) | undefined;
        const finish = (handlerDone: boolean) => {
          if (ended) return;
          ended = true;
          call.signal.removeEventListener("abort", onAbort);
          call.end(handlerDone);
          // A handler still suspended in an await finishes on its own once it sees the aborted signal.
          if (!handlerDone) it.return?.().catch(() => {});
        };
        const onAbort = () => {
          const fail = failPending;
          failPending = undefined;
          finish(false);
          fail?.(call.signal.reason);
        };
        call.signal.addEventListener("abort", onAbort);
        return {
          next(): Promise<IteratorResult<unknown>> {
            if (ended) return Promise.resolve({ done: true, value: undefined });
            if (call.signal.aborted) {
              finish(false);
              return Promise.reject(call.signal.reason);
            }
            return new Promise((resolve, reject) => {
              failPending = reject;
              it.next().then(
                (r) => {
                  if (failPending !== reject) return;
                  failPending = undefined;
                  if (r.done) {
                    finish(true);
                    resolve({ done: true, value: undefined });
                    return;
                  }
                  try {
                    resolve({ done: false, value: router.copy(method.output, r.value, "response") });
                  } catch (e) {
                    finish(false);
                    reject(e);
                  }
                },
                (e) => {
                  if (failPending !== reject) return;
                  failPending = undefined;
                  finish(false);
                  reject(e);
                },
              );
            });
          },
          return(): Promise<IteratorResult<unknown>> {
            finish(false);
            return Promise.resolve({ done: true, value: undefined });
          },
        };
      },
    };
  }

  async unary(method: DescMethod, req: unknown, opts: CallOptions): Promise<unknown> {
    const input = this.router.copy(method.input, req, "request");
    const { bound, call, ctx } = this.start(method, opts);
    try {
      const reply = await raceAbort(bound.call(input, ctx) as Promise<Message>, call.signal);
      return this.router.copy(method.output, reply, "response");
    } finally {
      call.end(true);
    }
  }

  serverStream(method: DescMethod, req: unknown, opts: CallOptions): AsyncIterable<unknown> {
    const input = this.router.copy(method.input, req, "request");
    const { bound, call, ctx } = this.start(method, opts);
    return this.replies(method, bound.call(input, ctx) as AsyncIterable<Message>, call);
  }

  async clientStream(method: DescMethod, reqs: AsyncIterable<unknown>, opts: CallOptions): Promise<unknown> {
    const { bound, call, ctx } = this.start(method, opts);
    try {
      const reply = await raceAbort(
        bound.call(this.inputs(method, reqs), ctx) as Promise<Message>,
        call.signal,
      );
      return this.router.copy(method.output, reply, "response");
    } finally {
      call.end(true);
    }
  }

  bidiStream(method: DescMethod, reqs: AsyncIterable<unknown>, opts: CallOptions): AsyncIterable<unknown> {
    const { bound, call, ctx } = this.start(method, opts);
    return this.replies(method, bound.call(this.inputs(method, reqs), ctx) as AsyncIterable<Message>, call);
  }

  close(): void {}
}
