// Random frames against a real gRPC server: whatever a peer sends, the server answers within the
// protocol (a GOAWAY, a reset, a status) or ignores it, never fails outside the connection, and
// goes on serving other clients, and keeps no connection once its peer has gone.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { EchoService } from "../../../gen/astra/testing/v1/echo_pb.ts";
import { GrpcServer, GrpcTransport, openConnections } from "../../../lib/grpc.ts";
import { CONNECTION_PREFACE, FrameType, FrameWriter } from "../../../lib/h2/frames.ts";
import { HpackEncoder } from "../../../lib/h2/hpack.ts";
import { client } from "../../../lib/rpc.ts";
import { echoService } from "../echo.ts";

interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

const rawFrame: fc.Arbitrary<RawFrame> = fc.record({
  type: fc.integer({ min: 0, max: 11 }),
  flags: fc.integer({ min: 0, max: 255 }),
  streamId: fc.integer({ min: 0, max: 5 }),
  payload: fc.uint8Array({ maxLength: 48 }),
});

/** A DATA frame on stream 1 carrying bytes that may or may not be gRPC messages. */
const dataFrame: fc.Arbitrary<RawFrame> = fc.record({
  type: fc.constant(FrameType.DATA),
  flags: fc.constantFrom(0, 1),
  streamId: fc.constant(1),
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 48 }),
    fc.uint8Array({ maxLength: 40 }).map((body) => {
      const m = new Uint8Array(5 + body.length);
      new DataView(m.buffer).setUint32(1, body.length);
      m.set(body, 5);
      return m;
    }),
  ),
});

describe("a gRPC server fed random HTTP/2 frames", () => {
  let server: GrpcServer;
  let port: number;
  let transport: GrpcTransport;

  beforeAll(async () => {
    server = new GrpcServer("fuzz");
    server.add(echoService("fuzz"));
    const address = await server.listen("127.0.0.1:0");
    port = Number(address.slice(address.lastIndexOf(":") + 1));
    server.setServing(true);
    transport = new GrpcTransport(address);
  });
  afterAll(async () => {
    transport.close();
    await server.shutdown(200);
  });

  it("stays within the protocol and keeps serving", async () => {
    const call = new HpackEncoder().encode([
      [":method", "POST"],
      [":scheme", "http"],
      [":path", "/astra.testing.v1.EchoService/Echo"],
      [":authority", "fuzz"],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
    ]).slice();
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(fc.oneof(rawFrame, dataFrame), { maxLength: 12 }),
        async (startCall, frames) => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          const w = new FrameWriter();
          w.raw(CONNECTION_PREFACE);
          w.settings([]);
          if (startCall) w.frame(FrameType.HEADERS, 0x4, 1, call);
          for (const f of frames) w.frame(f.type, f.flags, f.streamId, f.payload);
          const bytes = w.take();
          try {
            await conn.write(bytes);
            // Whatever the server answers, read until it closes or goes quiet.
            const buf = new Uint8Array(65536);
            const deadline = Date.now() + 100;
            while (Date.now() < deadline) {
              const n = await Promise.race([
                conn.read(buf),
                new Promise<"quiet">((r) => setTimeout(() => r("quiet"), 20)),
              ]);
              if (n === null || n === "quiet") break;
            }
          } catch {
            // The server may close first: that is an answer within the protocol.
          } finally {
            try {
              conn.close();
            } catch { /* closed */ }
          }
          const reply = await client(EchoService, transport).echo({ payload: new Uint8Array([1, 2, 3]) });
          expect([...reply.payload]).toEqual([1, 2, 3]);
        },
      ),
      { numRuns: 150 },
    );
    // Every fuzzing connection is gone from the server; only the transport's own is left.
    for (let i = 0; i < 100 && openConnections()!.size > 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect(openConnections()!.size).toBe(1);
  });
});
