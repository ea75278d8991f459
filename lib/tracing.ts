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

/** Keeps the last SPAN_RING_CAPACITY finished spans of this process. */
class RingBufferSpanProcessor implements SpanProcessor {
  readonly spans: SpanRecord[] = [];
  private next = 0;

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    const ctx = span.spanContext();
    const startNanos = BigInt(span.startTime[0]) * 1_000_000_000n + BigInt(span.startTime[1]);
    const durationNanos = BigInt(span.duration[0]) * 1_000_000_000n + BigInt(span.duration[1]);
    const attributes: Record<string, string> = {};
    for (const [k, v] of Object.entries(span.attributes)) attributes[k] = String(v);
    const record = create(SpanSchema, {
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
    if (this.spans.length < SPAN_RING_CAPACITY) this.spans.push(record);
    else {
      this.spans[this.next] = record;
      this.next = (this.next + 1) % SPAN_RING_CAPACITY;
    }
  }

  /** Spans oldest first. */
  ordered(): SpanRecord[] {
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
  provider = new BasicTracerProvider({ spanProcessors: processors });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}

/** Finished spans of this process, optionally of one trace, newest last, at most `limit`. */
export function recentSpans(traceId = "", limit = 1000): SpanRecord[] {
  const all = ring?.ordered() ?? [];
  const selected = traceId ? all.filter((s) => s.traceId === traceId) : all;
  return selected.slice(-limit);
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
