// Our gRPC over HTTP/2 against an independent implementation, @grpc/grpc-js (on Deno's node:http2):
// its client calls our server, and our client calls its server, for every kind of call, status
// details, deadlines, cancellation, metadata and messages large enough to need flow control.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import {
  create,
  type DescMessage,
  type DescMethod,
  fromBinary,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import { Buffer } from "node:buffer";
import { EchoService } from "../../gen/astra/testing/v1/echo_pb.ts";
import { StatusSchema } from "../../gen/google/rpc/status_pb.ts";
import { ErrorDetailSchema } from "../../gen/astra/common/v1/errors_pb.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { GrpcServer, GrpcTransport } from "../../lib/grpc.ts";
import { client, methodPath } from "../../lib/rpc.ts";
import { bindService, pendingMethods } from "../../lib/server.ts";
import { echoService } from "./echo.ts";

const LIMIT = 16 * 1024 * 1024;
const big = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 11)) & 0xff);

function serialize(desc: DescMessage) {
  return (m: Message) => Buffer.from(toBinary(desc, create(desc, m as never)));
}
function deserialize(desc: DescMessage) {
  return (b: Buffer) => fromBinary(desc, b);
}

/** Byte equality without a deep diff (a 2 MiB mismatch would take the diff minutes to print). */
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);

const method = (name: string): DescMethod => EchoService.methods.find((m) => m.name === name)!;

describe("grpc-js client against our server", () => {
  let server: GrpcServer;
  let js: grpc.Client;

  beforeAll(async () => {
    server = new GrpcServer("echo", { maxMessageBytes: LIMIT });
    server.add(echoService("echo"));
    const address = await server.listen("127.0.0.1:0");
    server.setServing(true);
    js = new grpc.Client(address, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": LIMIT,
      "grpc.max_send_message_length": LIMIT,
    });
  });
  afterAll(async () => {
    js.close();
    await server.shutdown(200);
  });

  function unary(name: string, req: object, opts: grpc.CallOptions = {}, md = new grpc.Metadata()) {
    const m = method(name);
    return new Promise<Message>((resolve, reject) =>
      js.makeUnaryRequest(
        methodPath(m),
        serialize(m.input),
        deserialize(m.output),
        req as Message,
        md,
        opts,
        (err, reply) => err ? reject(err) : resolve(reply!),
      )
    );
  }

  it("answers unary calls, 2 MiB payloads included (flow control both ways)", async () => {
    const payload = big(2 << 20);
    const reply = await unary("Echo", { payload }) as unknown as { payload: Uint8Array; servedBy: string };
    expect(reply.servedBy).toBe("echo");
    expect(sameBytes(reply.payload, payload)).toBe(true);
  });

  it("sends the status with our errno detail in grpc-status-details-bin", async () => {
    const err = await unary("Echo", { failWithErrno: Errno.ENOSPC }).catch((e) => e) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toBe("asked to fail");
    const status = fromBinary(StatusSchema, err.metadata.get("grpc-status-details-bin")[0] as Buffer);
    const detail = fromBinary(ErrorDetailSchema, status.details[0].value);
    expect(detail.errno).toBe(Errno.ENOSPC);
    expect(detail.argument).toBe("fail_with_errno");
  });

  it("answers UNIMPLEMENTED for an unknown method", async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      js.makeUnaryRequest(
        "/astra.testing.v1.EchoService/Nope",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (e) => resolve(e!),
      )
    );
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("honours grpc-timeout: the handler sees the abort and the client DEADLINE_EXCEEDED", async () => {
    const err = await unary("Sleep", { delayMs: 5000 }, { deadline: Date.now() + 150 }).catch((e) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });

  it("streams server replies, collects a client stream and chats both ways", async () => {
    const count = method("Count");
    const indexes: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = js.makeServerStreamRequest(
        methodPath(count),
        serialize(count.input),
        deserialize(count.output),
        { count: 50 } as unknown as Message,
      );
      call.on("data", (m: { index: number }) => indexes.push(m.index));
      call.on("end", resolve);
      call.on("error", reject);
    });
    expect(indexes).toEqual([...Array(50).keys()]);

    const concat = method("Concat");
    const joined = await new Promise<{ joined: string; parts: number }>((resolve, reject) => {
      const call = js.makeClientStreamRequest(
        methodPath(concat),
        serialize(concat.input),
        deserialize(concat.output),
        (err, reply) => err ? reject(err) : resolve(reply as never),
      );
      for (const part of ["a", "b", "c"]) call.write({ part } as unknown as Message);
      call.end();
    });
    expect(joined).toMatchObject({ joined: "abc", parts: 3 });

    const chat = method("Chat");
    const texts: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = js.makeBidiStreamRequest(
        methodPath(chat),
        serialize(chat.input),
        deserialize(chat.output),
      );
      call.on("data", (m: { text: string }) => texts.push(m.text));
      call.on("end", resolve);
      call.on("error", reject);
      for (const text of ["abc", "xyz"]) call.write({ text } as unknown as Message);
      call.end();
    });
    expect(texts).toEqual(["cba", "zyx"]);
  });

  it("lets the client cancel a server stream", async () => {
    const count = method("Count");
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const call = js.makeServerStreamRequest(
        methodPath(count),
        serialize(count.input),
        deserialize(count.output),
        { count: 1000, intervalMs: 5 } as unknown as Message,
      );
      let seen = 0;
      call.on("data", () => ++seen === 3 && call.cancel());
      call.on("error", resolve);
    });
    expect(err.code).toBe(grpc.status.CANCELLED);
    // The server is still fine.
    expect(await unary("Echo", { payload: big(10) })).toBeTruthy();
  });
});

describe("our client against a grpc-js server", () => {
  let server: grpc.Server;
  let transport: GrpcTransport;
  let cancelledSeen: Promise<boolean>;
  let seenMetadata: Record<string, unknown> = {};

  beforeAll(async () => {
    server = new grpc.Server({
      "grpc.max_receive_message_length": LIMIT,
      "grpc.max_send_message_length": LIMIT,
    });
    let markCancelled: (v: boolean) => void = () => {};
    cancelledSeen = new Promise((r) => markCancelled = r);
    const def = (name: string) => {
      const m = method(name);
      return {
        path: methodPath(m),
        requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
        responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
        requestSerialize: serialize(m.input),
        requestDeserialize: deserialize(m.input),
        responseSerialize: serialize(m.output),
        responseDeserialize: deserialize(m.output),
      };
    };
    server.addService({
      Echo: def("Echo"),
      Sleep: def("Sleep"),
      Count: def("Count"),
      Concat: def("Concat"),
      Chat: def("Chat"),
    }, {
      Echo: (
        call: grpc.ServerUnaryCall<{ payload: Uint8Array; failWithErrno: number }, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        seenMetadata = call.metadata.getMap();
        if (call.request.failWithErrno) {
          const md = new grpc.Metadata();
          md.set(
            "grpc-status-details-bin",
            Buffer.from(toBinary(StatusSchema, {
              $typeName: "google.rpc.Status",
              code: Code.FAILED_PRECONDITION,
              message: "js says no",
              details: [{
                $typeName: "google.protobuf.Any",
                typeUrl: `type.googleapis.com/${ErrorDetailSchema.typeName}`,
                value: toBinary(
                  ErrorDetailSchema,
                  create(ErrorDetailSchema, { errno: Errno.EROFS, message: "js says no" }),
                ),
              }],
            })),
          );
          return cb({ code: grpc.status.FAILED_PRECONDITION, details: "js says no", metadata: md });
        }
        cb(null, { payload: call.request.payload, servedBy: "grpc-js" });
      },
      Sleep: (call: grpc.ServerUnaryCall<{ delayMs: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const timer = setTimeout(() => cb(null, { cancelledSeen: false }), call.request.delayMs);
        call.on("cancelled", () => {
          clearTimeout(timer);
          markCancelled(true);
        });
      },
      Count: (call: grpc.ServerWritableStream<{ count: number }, unknown>) => {
        for (let i = 0; i < call.request.count; i++) call.write({ index: i });
        call.end();
      },
      Concat: (
        call: grpc.ServerReadableStream<{ part: string }, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        const parts: string[] = [];
        call.on("data", (m) => parts.push(m.part));
        call.on("end", () => cb(null, { joined: parts.join(""), parts: parts.length }));
      },
      Chat: (call: grpc.ServerDuplexStream<{ text: string }, unknown>) => {
        call.on("data", (m) => call.write({ text: [...m.text].reverse().join("") }));
        call.on("end", () => call.end());
      },
    } as grpc.UntypedServiceImplementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        "127.0.0.1:0",
        grpc.ServerCredentials.createInsecure(),
        (e, p) => e ? reject(e) : resolve(p),
      )
    );
    transport = new GrpcTransport(`127.0.0.1:${port}`, { maxMessageBytes: LIMIT });
  });
  afterAll(() => {
    transport.close();
    server.forceShutdown();
  });

  it("makes unary calls with metadata, 4 MiB payloads included", async () => {
    const echo = client(EchoService, transport);
    const payload = big(4 << 20);
    const reply = await echo.echo({ payload }, { metadata: { "x-astra-test": "yes" } });
    expect(reply.servedBy).toBe("grpc-js");
    expect(sameBytes(reply.payload, payload)).toBe(true);
    expect(seenMetadata["x-astra-test"]).toBe("yes");
  });

  it("reads the errno detail grpc-js sent", async () => {
    const err = await client(EchoService, transport).echo({ failWithErrno: 1 }).catch((e) => e) as AstraError;
    expect(err).toBeInstanceOf(AstraError);
    expect(err.code).toBe(Code.FAILED_PRECONDITION);
    expect(err.errno).toBe(Errno.EROFS);
  });

  it("cancels at the deadline, and the server hears of it", async () => {
    const err = await client(EchoService, transport).sleep({ delayMs: 5000 }, { timeoutMs: 100 }).catch((e) =>
      e
    );
    expect((err as AstraError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(await cancelledSeen).toBe(true);
  });

  it("runs streams of every direction", async () => {
    const echo = client(EchoService, transport);
    const indexes: number[] = [];
    for await (const r of echo.count({ count: 100 })) indexes.push(r.index);
    expect(indexes).toEqual([...Array(100).keys()]);
    async function* parts() {
      yield { part: "x" };
      yield { part: "y" };
    }
    expect(await echo.concat(parts())).toMatchObject({ joined: "xy", parts: 2 });
    async function* texts() {
      yield { text: "ab" };
      yield { text: "cd" };
    }
    const out: string[] = [];
    for await (const r of echo.chat(texts())) out.push(r.text);
    expect(out).toEqual(["ba", "dc"]);
  });

  it("answers UNAVAILABLE when nothing listens", async () => {
    const dead = new GrpcTransport("127.0.0.1:1", { maxAttempts: 1 });
    const err = await client(EchoService, dead).sleep({ delayMs: 1 }).catch((e) => e) as AstraError;
    expect(err.code).toBe(Code.UNAVAILABLE);
    dead.close();
  });
});

describe("a server that admits two calls at a time (MAX_CONCURRENT_STREAMS)", () => {
  let server: GrpcServer;
  let address: string;
  let running = 0;
  let most = 0;

  beforeAll(async () => {
    server = new GrpcServer("limited", { maxConcurrentCalls: 2 });
    server.add(bindService("limited", EchoService, {
      ...pendingMethods(EchoService, "not used here"),
      async sleep(req) {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, req.delayMs));
        running--;
        return { cancelledSeen: false };
      },
    }));
    address = await server.listen("127.0.0.1:0");
  });
  afterAll(() => server.shutdown(200));

  it("holds our client's calls beyond the limit until earlier ones end", async () => {
    most = 0;
    const transport = new GrpcTransport(address);
    try {
      const echo = client(EchoService, transport);
      await Promise.all(Array.from({ length: 10 }, () => echo.sleep({ delayMs: 20 })));
      expect(most).toBe(2);
    } finally {
      transport.close();
    }
  });

  it("is respected by grpc-js too", async () => {
    most = 0;
    const js = new grpc.Client(address, grpc.credentials.createInsecure());
    const sleep = method("Sleep");
    try {
      await Promise.all(Array.from({ length: 10 }, () =>
        new Promise((resolve, reject) =>
          js.makeUnaryRequest(
            methodPath(sleep),
            serialize(sleep.input),
            deserialize(sleep.output),
            { delayMs: 20 } as unknown as Message,
            (err, reply) => err ? reject(err) : resolve(reply),
          )
        )));
      expect(most).toBe(2);
    } finally {
      js.close();
    }
  });
});
