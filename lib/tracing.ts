// Tracing with the OpenTelemetry API and SDK. Every process keeps its recently finished spans in a
// ring buffer (served by ObservabilityService/ListSpans, which `astra trace` reads, so no collector
// is needed) and exports them over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set. Context
// crosses processes as W3C traceparent in gRPC metadata and stays in AsyncLocalStorage within one.
import { context, propagation, trace } from "@opentelemetry/api";
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

const RING_CAPACITY = 4096;
const KIND_NAMES = ["internal", "server", "client", "producer", "consumer"];

/** Keeps the last RING_CAPACITY finished spans of this process. */
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
    if (this.spans.length < RING_CAPACITY) this.spans.push(record);
    else {
      this.spans[this.next] = record;
      this.next = (this.next + 1) % RING_CAPACITY;
    }
  }

  /** Spans oldest first. */
  ordered(): SpanRecord[] {
    return this.spans.length < RING_CAPACITY
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
