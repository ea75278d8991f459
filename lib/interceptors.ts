// The interceptors every call passes through, identical on both transports: a span per call
// (client side and server side, linked by W3C trace context in the metadata), per-method metrics,
// structured logging of failures, and the conversion of any thrown value into an AstraError.
import type { DescMethod } from "@bufbuild/protobuf";
import {
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { AstraError, Code, toAstraError } from "./errors.ts";
import { logger } from "./log.ts";
import { isPassive } from "./iterators.ts";
import { recordCall } from "./metrics.ts";
import type { CallContext, CallOptions } from "./rpc.ts";

function pathOf(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function spanName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

function endSpan(span: Span, err?: AstraError): void {
  if (err) span.setStatus({ code: SpanStatusCode.ERROR, message: Code[err.code] });
  span.end();
}

/**
 * `source` with `finish` called once when the stream ends: with the wrapped error if it failed,
 * with nothing if it completed or the consumer stopped early. With a `ctx`, every `next()` runs
 * inside it, so that what a handler's generator does per element is traced under its span.
 */
function observeStream<T>(
  source: AsyncIterable<T>,
  ctx: ReturnType<typeof context.active> | undefined,
  finish: (err?: AstraError) => void,
  wrapError: (e: unknown) => AstraError,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = source[Symbol.asyncIterator]();
      let finished = false;
      const end = (err?: AstraError) => {
        if (finished) return;
        finished = true;
        finish(err);
      };
      return {
        next: () =>
          (ctx === undefined ? it.next() : context.with(ctx, () => it.next())).then(
            (r) => {
              if (r.done) end();
              return r;
            },
            (e) => {
              const failure = wrapError(e);
              end(failure);
              throw failure;
            },
          ),
        return: async (value?: unknown) => {
          try {
            await (ctx === undefined ? it.return?.(value) : context.with(ctx, () => it.return?.(value)));
          } finally {
            end();
          }
          return { done: true, value: value as T };
        },
      };
    },
  };
}

/**
 * Client side: starts a client span under the active context, hands the trace context to the
 * server (in the call's metadata, or as the context object itself in one process) and runs `send`
 * inside it.
 */
export function clientCall<R>(
  caller: string,
  method: DescMethod,
  opts: CallOptions,
  send: (opts: CallOptions) => R,
  inProcess: boolean,
): R {
  const tracer = trace.getTracer(caller);
  const span = tracer.startSpan(spanName(method), {
    kind: SpanKind.CLIENT,
    attributes: { "rpc.system": "grpc" },
  });
  const ctx = trace.setSpan(context.active(), span);
  const started = performance.now();
  const finish = (err?: AstraError) => {
    recordCall("client", pathOf(method), (performance.now() - started) * 1000, err !== undefined);
    endSpan(span, err);
  };
  // In one process the server continues from the context object itself; across processes, from
  // W3C trace context in the metadata.
  let traced: CallOptions;
  if (inProcess) {
    traced = { ...opts, traceContext: ctx };
  } else {
    const metadata: Record<string, string> = { ...opts.metadata };
    propagation.inject(ctx, metadata);
    traced = { ...opts, metadata };
  }
  const outcome = context.with(ctx, () => send(traced));
  if (method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming") {
    // Reading replies runs no code of the caller's: the transport delivers them, and a handler's
    // own work runs in its server span (below). Entering the client span per reply would only cost.
    return observeStream(outcome as AsyncIterable<unknown>, undefined, finish, (e) => toAstraError(e)) as R;
  }
  return (outcome as Promise<unknown>).then(
    (value) => {
      finish();
      return value;
    },
    (e) => {
      const err = toAstraError(e);
      finish(err);
      throw err;
    },
  ) as R;
}

/**
 * Server side: continues the caller's trace from the metadata, opens a server span, records
 * metrics, logs failures and converts whatever the handler throws into an AstraError naming the
 * service. `invoke` runs the handler; streaming results are observed until they end.
 */
export function serverCall<R>(ctx: CallContext, invoke: () => R): R {
  const method = ctx.method;
  const parent = ctx.traceContext ?? propagation.extract(ROOT_CONTEXT, ctx.metadata);
  const span = trace.getTracer(ctx.service).startSpan(
    spanName(method),
    { kind: SpanKind.SERVER, attributes: { "rpc.system": "grpc", "net.peer": ctx.peer } },
    parent,
  );
  const spanCtx = trace.setSpan(parent, span);
  const started = performance.now();
  const log = logger(ctx.service);
  const wrap = (e: unknown) => toAstraError(e, ctx.service);
  const finish = (err?: AstraError) => {
    recordCall("server", pathOf(method), (performance.now() - started) * 1000, err !== undefined);
    if (err) {
      const unexpected = err.code === Code.INTERNAL || err.code === Code.UNKNOWN;
      (unexpected ? log.error : log.debug)("call failed", { method: pathOf(method), status: err.describe() });
    }
    endSpan(span, err);
  };
  let outcome: R;
  try {
    outcome = context.with(spanCtx, invoke);
  } catch (e) {
    const err = wrap(e);
    finish(err);
    if (method.methodKind === "unary" || method.methodKind === "client_streaming") {
      return Promise.reject(err) as R;
    }
    return (async function* () {
      yield* [];
      throw err;
    })() as R;
  }
  if (method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming") {
    const replies = outcome as AsyncIterable<unknown>;
    return observeStream(replies, isPassive(replies) ? undefined : spanCtx, finish, wrap) as R;
  }
  return Promise.resolve(outcome).then(
    (value) => {
      finish();
      return value;
    },
    (e) => {
      const err = wrap(e);
      finish(err);
      throw err;
    },
  ) as R;
}
