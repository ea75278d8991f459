// Tracing with the OpenTelemetry API and SDK. Every process keeps its recently finished spans in a
// ring buffer (served by ObservabilityService/ListSpans, which `astra trace` reads, so no collector
// is needed) and exports them over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set. Context
// crosses processes as W3C traceparent in gRPC metadata and stays in AsyncLocalStorage within one.
import { context, propagation, ROOT_CONTEXT, type Span, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type IdGenerator,
  type ReadableSpan,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { create } from "@bufbuild/protobuf";
import { type Span as SpanRecord, SpanSchema } from "../gen/astra/common/v1/observability_pb.ts";

/** Set to 1, the machine traces every system call (see KernelCallRequest.traceparent). */
export const TRACE_KERNEL_CALLS_VAR = "ASTRA_TRACE_KERNEL_CALLS";

/** Finished spans each process keeps. */
export const SPAN_RING_CAPACITY = 4096;
const KIND_NAMES = ["internal", "server", "client", "producer", "consumer"];

/** The ObservabilityService record of a finished span. */
function spanRecord(span: ReadableSpan): SpanRecord {
  const ctx = span.spanContext();
  const startNanos = BigInt(span.startTime[0]) * 1_000_000_000n + BigInt(span.startTime[1]);
  const durationNanos = BigInt(span.duration[0]) * 1_000_000_000n + BigInt(span.duration[1]);
  const attributes: Record<string, string> = {};
  for (const [k, v] of Object.entries(span.attributes)) attributes[k] = String(v);
  return create(SpanSchema, {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? "",
    name: span.name,
    kind: KIND_NAMES[span.kind] ?? "internal",
    service: span.instrumentationScope.name,
    startUnixNanos: startNanos,
    durationNanos,
    status: span.status.code === 2 ? (span.status.message || "error") : "ok",
    attributes,
  });
}

/**
 * Keeps the last SPAN_RING_CAPACITY finished spans of this process, as the SDK finished them: every
 * call ends two spans, and few are ever listed, so they become records only when listed.
 */
class RingBufferSpanProcessor implements SpanProcessor {
  readonly spans: ReadableSpan[] = [];
  private next = 0;

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (this.spans.length < SPAN_RING_CAPACITY) this.spans.push(span);
    else {
      this.spans[this.next] = span;
      this.next = (this.next + 1) % SPAN_RING_CAPACITY;
    }
  }

  /** Spans oldest first. */
  ordered(): ReadableSpan[] {
    return this.spans.length < SPAN_RING_CAPACITY
      ? [...this.spans]
      : [...this.spans.slice(this.next), ...this.spans.slice(0, this.next)];
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** Byte values as two hex digits. */
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/**
 * Trace and span ids from a pool of random bytes, refilled a few KiB at a time: the SDK's default
 * formats every id through a Node Buffer, a cost each call paid twice.
 */
class PooledIdGenerator implements IdGenerator {
  readonly #pool = new Uint8Array(4096);
  #at = this.#pool.length;

  generateTraceId(): string {
    return this.#id(16);
  }

  generateSpanId(): string {
    return this.#id(8);
  }

  #id(bytes: number): string {
    for (;;) {
      if (this.#at + bytes > this.#pool.length) {
        crypto.getRandomValues(this.#pool);
        this.#at = 0;
      }
      let id = "", zero = true;
      for (let i = 0; i < bytes; i++) {
        const b = this.#pool[this.#at++];
        if (b !== 0) zero = false;
        id += HEX[b];
      }
      // All zeros is W3C's invalid id.
      if (!zero) return id;
    }
  }
}

let ring: RingBufferSpanProcessor | undefined;
let provider: BasicTracerProvider | undefined;

function otlpEndpoint(): string | undefined {
  try {
    return Deno.env.get("OTEL_EXPORTER_OTLP_ENDPOINT") || Deno.env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  } catch {
    return undefined;
  }
}

/** Installs the tracer provider, context manager and propagator once per process. */
export async function initTracing(): Promise<void> {
  if (ring) return;
  ring = new RingBufferSpanProcessor();
  const processors: SpanProcessor[] = [ring];
  if (otlpEndpoint()) {
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
  }
  provider = new BasicTracerProvider({ spanProcessors: processors, idGenerator: new PooledIdGenerator() });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}

/** Finished spans of this process, optionally of one trace, newest last, at most `limit`. */
export function recentSpans(traceId = "", limit = 1000): SpanRecord[] {
  const all = ring?.ordered() ?? [];
  const selected = traceId ? all.filter((s) => s.spanContext().traceId === traceId) : all;
  return selected.slice(-limit).map(spanRecord);
}

/** Flushes exporters (OTLP) before the process exits. */
export async function shutdownTracing(): Promise<void> {
  await provider?.forceFlush();
}

/** The W3C traceparent of `span`, for a message that carries it in a field (not in call metadata). */
export function traceparentOf(span: Span): string {
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
  return carrier.traceparent ?? "";
}

/**
 * Runs `fn` in the trace a message's `traceparent` field names, so that what it does — the calls it
 * makes included — is traced beneath that span; an empty field leaves the active context.
 */
export function inTraceOf<T>(traceparent: string, fn: () => T): T {
  if (traceparent === "") return fn();
  return context.with(propagation.extract(ROOT_CONTEXT, { traceparent }), fn);
}
