// The process's tracer: span ids from the pooled generator are valid W3C ids and do not repeat,
// and the span ring keeps the newest spans, listed oldest first with their parents.
import { context, trace } from "@opentelemetry/api";
import { describe, expect, it } from "vitest";
import { initTracing, recentSpans, SPAN_RING_CAPACITY } from "../../lib/tracing.ts";

describe("tracing", () => {
  it("gives every span a valid trace and span id, never twice", async () => {
    await initTracing();
    const tracer = trace.getTracer("tracing-test");
    const traceIds = new Set<string>(), spanIds = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const span = tracer.startSpan("id", { root: true });
      const { traceId, spanId } = span.spanContext();
      span.end();
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(traceId).not.toBe("0".repeat(32));
      traceIds.add(traceId);
      spanIds.add(spanId);
    }
    expect(traceIds.size).toBe(20_000);
    expect(spanIds.size).toBe(20_000);
  });

  it("lists the newest spans oldest first, a child with its parent's id", async () => {
    await initTracing();
    const tracer = trace.getTracer("tracing-test");
    for (let i = 0; i < SPAN_RING_CAPACITY + 10; i++) tracer.startSpan(`filler ${i}`).end();
    const parent = tracer.startSpan("parent", { root: true });
    const child = tracer.startSpan("child", {}, trace.setSpan(context.active(), parent));
    child.setAttribute("answer", 42);
    child.end();
    parent.end();
    const all = recentSpans("", SPAN_RING_CAPACITY);
    expect(all).toHaveLength(SPAN_RING_CAPACITY);
    expect(all.at(-2)!.name).toBe("child");
    expect(all.at(-1)!.name).toBe("parent");
    expect(all.at(-2)!.parentSpanId).toBe(all.at(-1)!.spanId);
    expect(all.at(-2)!.attributes).toEqual({ answer: "42" });
    expect(all.at(-3)!.name).toBe(`filler ${SPAN_RING_CAPACITY + 9}`);
    const own = recentSpans(parent.spanContext().traceId);
    expect(own.map((s) => s.name)).toEqual(["child", "parent"]);
  });
});
