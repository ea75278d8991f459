// With OTEL_EXPORTER_OTLP_ENDPOINT set, a process exports its spans to that collector over
// OTLP/HTTP; here the collector is a local HTTP server that records what it receives.
import { describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";

describe("OTLP export", () => {
  it("sends the spans of a call to the configured collector", async () => {
    const received: { path: string; type: string; body: Uint8Array }[] = [];
    const collector = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
      received.push({
        path: new URL(req.url).pathname,
        type: req.headers.get("content-type") ?? "",
        body: new Uint8Array(await req.arrayBuffer()),
      });
      return new Response("{}", { headers: { "content-type": "application/json" } });
    });
    try {
      const emitter = fileURLToPath(new URL("./otlp-emitter.ts", import.meta.url));
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", emitter],
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.addr.port}` },
      }).output();
      expect(out.code, new TextDecoder().decode(out.stderr)).toBe(0);
      const traces = received.filter((r) => r.path === "/v1/traces");
      expect(traces.length).toBeGreaterThan(0);
      const text = traces.map((t) => new TextDecoder().decode(t.body)).join("\n");
      expect(text).toContain("astra.testing.v1.EchoService/Echo");
      expect(text).toContain("otlp-emitter");
    } finally {
      await collector.shutdown();
    }
  });
});
