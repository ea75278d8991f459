// Both transports must behave identically: the same suite runs over each.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { trace } from "@opentelemetry/api";
import { EchoService } from "../../gen/astra/testing/v1/echo_pb.ts";
import { ObservabilityService } from "../../gen/astra/common/v1/observability_pb.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { GrpcServer, GrpcTransport } from "../../lib/grpc.ts";
import { InProcessRouter } from "../../lib/inproc.ts";
import { client, type Transport } from "../../lib/rpc.ts";
import { initTracing, recentSpans } from "../../lib/tracing.ts";
import { observabilityService } from "../../lib/observability.ts";
import { echoService } from "./echo.ts";
import { rejection } from "../rejection.ts";

const LIMIT = 64 * 1024;

async function* from<T>(items: T[], delayMs = 0): AsyncGenerator<T> {
  for (const item of items) {
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    yield item;
  }
}

interface Setup {
  transport: Transport;
  close(): Promise<void>;
}

const setups: Record<string, () => Promise<Setup>> = {
  "in-process": () => {
    const router = new InProcessRouter(LIMIT);
    router.add(echoService("echo"));
    return Promise.resolve({ transport: router.transport(), close: () => Promise.resolve() });
  },
  grpc: async () => {
    const server = new GrpcServer("echo", { maxMessageBytes: LIMIT });
    server.add(echoService("echo"));
    const address = await server.listen("127.0.0.1:0");
    server.setServing(true);
    const transport = new GrpcTransport(address, { maxMessageBytes: LIMIT });
    return {
      transport,
      close: async () => {
        transport.close();
        await server.shutdown(200);
      },
    };
  },
};

for (const [kind, setup] of Object.entries(setups)) {
  describe(`${kind} transport`, () => {
    let s: Setup;
    let echo: ReturnType<typeof client<typeof EchoService>>;
    beforeAll(async () => {
      await initTracing();
      s = await setup();
      echo = client(EchoService, s.transport);
    });
    afterAll(() => s.close());

    it("answers a unary call with the payload intact", async () => {
      const payload = new Uint8Array([0, 1, 2, 255]);
      const reply = await echo.echo({ payload });
      expect([...reply.payload]).toEqual([0, 1, 2, 255]);
      expect(reply.servedBy).toBe("echo");
    });

    it("delivers the status code and errno detail of a failure", async () => {
      const err = await rejection(echo.echo({ failWithErrno: Errno.EBUSY }));
      expect(err.code).toBe(Code.FAILED_PRECONDITION);
      expect(err.errno).toBe(Errno.EBUSY);
      expect(err.detail.argument).toBe("fail_with_errno");
      expect(err.detail.service).toBe("echo");
      expect(err.message).toBe("asked to fail");
    });

    it("fails with DEADLINE_EXCEEDED when the deadline passes, and the handler sees the abort", async () => {
      const started = Date.now();
      const err = await rejection(echo.sleep({ delayMs: 5000 }, { timeoutMs: 100 }));
      expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
      expect(err.errno).toBe(Errno.ETIMEDOUT);
      expect(Date.now() - started).toBeLessThan(2000);
    });

    it("fails with CANCELLED when the caller aborts", async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      const err = await rejection(echo.sleep({ delayMs: 5000 }, { signal: controller.signal }));
      expect(err.code).toBe(Code.CANCELLED);
      expect(err.errno).toBe(Errno.ECANCELED);
    });

    it("rejects a request over the size limit cleanly and keeps serving", async () => {
      const err = await rejection(echo.echo({ payload: new Uint8Array(LIMIT + 1) }));
      expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
      expect(err.errno).toBe(Errno.E2BIG);
      const ok = await echo.echo({ payload: new Uint8Array(LIMIT - 16) });
      expect(ok.payload.length).toBe(LIMIT - 16);
    });

    it("streams replies from the server in order", async () => {
      const seen: number[] = [];
      for await (const r of echo.count({ count: 20 })) seen.push(r.index);
      expect(seen).toEqual([...Array(20).keys()]);
    });

    // What both transports guarantee: the exact status, after an in-order prefix of the replies.
    it("ends a server stream with the handler's error, after an in-order prefix of the replies", async () => {
      const seen: number[] = [];
      let error: AstraError | undefined;
      try {
        for await (const r of echo.count({ count: 10, failAfter: 3 })) seen.push(r.index);
      } catch (e) {
        error = e as AstraError;
      }
      expect(seen).toEqual([0, 1, 2].slice(0, seen.length));
      expect(error?.code).toBe(Code.INTERNAL);
      expect(error?.errno).toBe(Errno.EIO);
    });

    it("stops a server stream when the caller stops reading", async () => {
      const seen: number[] = [];
      for await (const r of echo.count({ count: 1000, intervalMs: 5 })) {
        seen.push(r.index);
        if (seen.length === 3) break;
      }
      expect(seen).toEqual([0, 1, 2]);
      // The transport is still usable afterwards.
      expect((await echo.echo({ payload: new Uint8Array([7]) })).payload[0]).toBe(7);
    });

    it("collects a client stream", async () => {
      const reply = await echo.concat(from([{ part: "as" }, { part: "tra" }, { part: "lisp" }], 5));
      expect(reply).toMatchObject({ joined: "astralisp", parts: 3 });
    });

    it("answers a bidirectional stream message by message", async () => {
      const replies: string[] = [];
      for await (const r of echo.chat(from([{ text: "abc" }, { text: "power" }, { text: "" }], 5))) {
        replies.push(r.text);
      }
      expect(replies).toEqual(["cba", "rewop", ""]);
    });

    it("records server and client metrics per method", async () => {
      await echo.echo({});
      // Metrics are per process: ask this process's ObservabilityService.
      const local = new InProcessRouter();
      local.add(observabilityService("echo"));
      const metrics = await client(ObservabilityService, local.transport()).getMetrics({});
      const server = metrics.methods.find((m) =>
        m.method === "/astra.testing.v1.EchoService/Echo" && m.side === "server"
      );
      const clientSide = metrics.methods.find((m) =>
        m.method === "/astra.testing.v1.EchoService/Echo" && m.side === "client"
      );
      expect(server!.calls).toBeGreaterThan(0n);
      expect(clientSide!.calls).toBeGreaterThanOrEqual(server!.calls);
    });
  });
}

describe("tracing across servers", () => {
  it("links the spans of a call that a service makes to another into one trace", async () => {
    await initTracing();
    const back = new GrpcServer("back");
    back.add(echoService("back"));
    const backAddress = await back.listen("127.0.0.1:0");
    const backTransport = new GrpcTransport(backAddress);
    const front = new GrpcServer("front");
    front.add(echoService("front", () => backTransport));
    const frontAddress = await front.listen("127.0.0.1:0");
    const frontTransport = new GrpcTransport(frontAddress);
    try {
      const tracer = trace.getTracer("test");
      const traceId = await tracer.startActiveSpan("test.root", async (root) => {
        const reply = await client(EchoService, frontTransport, "test").relay({
          payload: new Uint8Array([1]),
        });
        expect(reply.servedBy).toBe("back");
        root.end();
        return root.spanContext().traceId;
      });
      const spans = recentSpans(traceId);
      const frontServer = spans.find((s) => s.service === "front" && s.kind === "server")!;
      const backServer = spans.find((s) => s.service === "back" && s.kind === "server")!;
      const relayClient = spans.find((s) => s.service === "front" && s.kind === "client")!;
      expect(spans.find((s) => s.service === "test" && s.name === "test.root")).toBeDefined();
      expect(frontServer.name).toBe("astra.testing.v1.EchoService/Relay");
      expect(backServer.name).toBe("astra.testing.v1.EchoService/Echo");
      expect(relayClient.parentSpanId).toBe(frontServer.spanId);
      expect(backServer.parentSpanId).toBe(relayClient.spanId);
      expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([traceId]));
    } finally {
      frontTransport.close();
      backTransport.close();
      await front.shutdown(200);
      await back.shutdown(200);
    }
  });
});

describe("gRPC retries", () => {
  it("retries an idempotent call while the server is not up yet, and not a call with side effects", async () => {
    const probe = new GrpcServer("probe");
    probe.add(echoService("probe"));
    const address = await probe.listen("127.0.0.1:0");
    await probe.shutdown(100);

    const late = new GrpcServer("late");
    late.add(echoService("late"));
    const startLate = new Promise<void>((resolve) =>
      setTimeout(async () => {
        await late.listen(address);
        resolve();
      }, 300)
    );
    const transport = new GrpcTransport(address);
    const echo = client(EchoService, transport);
    try {
      // Sleep has side effects (no idempotency option): one attempt, then UNAVAILABLE.
      const err = await rejection(echo.sleep({ delayMs: 1 }, { timeoutMs: 5000 }));
      expect(err.code).toBe(Code.UNAVAILABLE);
      // Echo is NO_SIDE_EFFECTS: retried with backoff until the server answers.
      const reply = await echo.echo({ payload: new Uint8Array([9]) }, { timeoutMs: 5000 });
      expect(reply.servedBy).toBe("late");
    } finally {
      await startLate;
      transport.close();
      await late.shutdown(100);
    }
  });
});
