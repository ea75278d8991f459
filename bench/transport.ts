// Round-trip cost of one small message: unary and on an open bidi stream, in-process and over
// gRPC (loopback TCP and a Unix socket) in this process, and over a Unix socket to a server in
// another process (as the services talk in process mode: the floor under a kernel call over gRPC).
// The in-process unary call is the reference the others are compared against; the same two
// cross-process round trips through @grpc/grpc-js on Deno's node:http2 (client and server), which
// the gRPC transport replaced, are measured too. Prints JSON; never fails on time.
//
//   deno run -A bench/transport.ts            (the servers of the cross-process cases are this file,
//                                              run again with --serve-echo PATH or --serve-grpc-js PATH)
import * as grpc from "@grpc/grpc-js";
import { create, type DescMessage, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import { Buffer } from "node:buffer";
import { EchoService } from "../gen/astra/testing/v1/echo_pb.ts";
import { Channel } from "../lib/channel.ts";
import { GrpcServer, GrpcTransport } from "../lib/grpc.ts";
import { InProcessRouter } from "../lib/inproc.ts";
import { client, methodPath, type Transport } from "../lib/rpc.ts";
import { echoService } from "../test/lib/echo.ts";

const UNARY_CALLS = Number(Deno.env.get("BENCH_CALLS") ?? 3000);
const payload = new Uint8Array(64);

async function unaryMicros(transport: Transport): Promise<number> {
  const echo = client(EchoService, transport);
  for (let i = 0; i < 200; i++) await echo.echo({ payload });
  const t0 = performance.now();
  for (let i = 0; i < UNARY_CALLS; i++) await echo.echo({ payload });
  return ((performance.now() - t0) * 1000) / UNARY_CALLS;
}

/** One request, wait for its reply, next request: the trap path's pattern. */
async function streamMicros(transport: Transport): Promise<number> {
  const requests = new Channel<{ text: string }>();
  const replies = client(EchoService, transport).chat(requests)[Symbol.asyncIterator]();
  const roundTrip = async () => {
    requests.push({ text: "ping" });
    await replies.next();
  };
  for (let i = 0; i < 200; i++) await roundTrip();
  const t0 = performance.now();
  for (let i = 0; i < UNARY_CALLS; i++) await roundTrip();
  const micros = ((performance.now() - t0) * 1000) / UNARY_CALLS;
  requests.close();
  await replies.next();
  return micros;
}

const ECHO = EchoService.method.echo;
const CHAT = EchoService.method.chat;
const serialize = (desc: DescMessage) => (m: Message) =>
  Buffer.from(toBinary(desc, create(desc, m as never)));
const deserialize = (desc: DescMessage) => (b: Buffer) => fromBinary(desc, b);
const grpcJsMethod = (m: typeof ECHO | typeof CHAT) => ({
  path: methodPath(m),
  requestStream: m === CHAT,
  responseStream: m === CHAT,
  requestSerialize: serialize(m.input),
  requestDeserialize: deserialize(m.input),
  responseSerialize: serialize(m.output),
  responseDeserialize: deserialize(m.output),
});

/** The reference: Echo and Chat served by grpc-js. */
async function serveGrpcJs(path: string): Promise<void> {
  const server = new grpc.Server();
  server.addService({ Echo: grpcJsMethod(ECHO), Chat: grpcJsMethod(CHAT) }, {
    Echo: (call: grpc.ServerUnaryCall<{ payload: Uint8Array }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { payload: call.request.payload, servedBy: "grpc-js" }),
    Chat: (call: grpc.ServerDuplexStream<{ text: string }, unknown>) => {
      call.on("data", (m) => call.write({ text: m.text }));
      call.on("end", () => call.end());
    },
  } as grpc.UntypedServiceImplementation);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(
      `unix:${path}`,
      grpc.ServerCredentials.createInsecure(),
      (e) => e ? reject(e) : resolve(),
    )
  );
}

async function grpcJsUnaryMicros(js: grpc.Client): Promise<number> {
  const call = () =>
    new Promise((resolve, reject) =>
      js.makeUnaryRequest(
        methodPath(ECHO),
        serialize(ECHO.input),
        deserialize(ECHO.output),
        { payload } as unknown as Message,
        (e, r) => e ? reject(e) : resolve(r),
      )
    );
  for (let i = 0; i < 200; i++) await call();
  const t0 = performance.now();
  for (let i = 0; i < UNARY_CALLS; i++) await call();
  return ((performance.now() - t0) * 1000) / UNARY_CALLS;
}

async function grpcJsStreamMicros(js: grpc.Client): Promise<number> {
  const call = js.makeBidiStreamRequest(methodPath(CHAT), serialize(CHAT.input), deserialize(CHAT.output));
  let wake: (() => void) | undefined;
  call.on("data", () => wake?.());
  const roundTrip = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      call.write({ text: "ping" } as unknown as Message);
    });
  for (let i = 0; i < 200; i++) await roundTrip();
  const t0 = performance.now();
  for (let i = 0; i < UNARY_CALLS; i++) await roundTrip();
  const micros = ((performance.now() - t0) * 1000) / UNARY_CALLS;
  call.end();
  return micros;
}

if (Deno.args[0] === "--serve-echo") {
  const server = new GrpcServer("echo");
  server.add(echoService("echo"));
  await server.listen(`unix:${Deno.args[1]}`);
  console.log("serving");
} else if (Deno.args[0] === "--serve-grpc-js") {
  await serveGrpcJs(Deno.args[1]);
  console.log("serving");
} else {
  await main();
}

/** An echo server in a child process, serving on a Unix socket; resolves once it answers. */
async function echoProcess(path: string, flag = "--serve-echo"): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, flag, path],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  if (!value?.includes("serving")) throw new Error("the echo server process did not start");
  reader.releaseLock();
  return child;
}

async function main(): Promise<void> {
  const router = new InProcessRouter();
  router.add(echoService("echo"));
  const tcpServer = new GrpcServer("echo");
  tcpServer.add(echoService("echo"));
  const tcp = new GrpcTransport(await tcpServer.listen("127.0.0.1:0"));
  const socketPath = `${await Deno.makeTempDir()}/echo.sock`;
  const unixServer = new GrpcServer("echo");
  unixServer.add(echoService("echo"));
  const unix = new GrpcTransport(await unixServer.listen(`unix:${socketPath}`));
  const remoteSocket = `${await Deno.makeTempDir()}/echo.sock`;
  const remoteServer = await echoProcess(remoteSocket);
  const remote = new GrpcTransport(`unix:${remoteSocket}`);
  const grpcJsSocket = `${await Deno.makeTempDir()}/grpc-js.sock`;
  const grpcJsServer = await echoProcess(grpcJsSocket, "--serve-grpc-js");
  const grpcJs = new grpc.Client(`unix:${grpcJsSocket}`, grpc.credentials.createInsecure());

  const results = {
    inProcessUnaryMicros: await unaryMicros(router.transport()),
    inProcessStreamMicros: await streamMicros(router.transport()),
    grpcTcpUnaryMicros: await unaryMicros(tcp),
    grpcTcpStreamMicros: await streamMicros(tcp),
    grpcUnixUnaryMicros: await unaryMicros(unix),
    grpcUnixStreamMicros: await streamMicros(unix),
    grpcUnixOtherProcessUnaryMicros: await unaryMicros(remote),
    grpcUnixOtherProcessStreamMicros: await streamMicros(remote),
    grpcJsUnixOtherProcessUnaryMicros: await grpcJsUnaryMicros(grpcJs),
    grpcJsUnixOtherProcessStreamMicros: await grpcJsStreamMicros(grpcJs),
  };
  const ref = results.inProcessUnaryMicros;
  console.log(JSON.stringify(
    {
      benchmark: "transport",
      calls: UNARY_CALLS,
      payloadBytes: payload.length,
      ...Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Number(v.toFixed(2))])),
      ratioVsInProcessUnary: Object.fromEntries(
        Object.entries(results).map(([k, v]) => [k.replace(/Micros$/, ""), Number((v / ref).toFixed(2))]),
      ),
      speedupOverGrpcJs: {
        otherProcessUnary: Number(
          (results.grpcJsUnixOtherProcessUnaryMicros / results.grpcUnixOtherProcessUnaryMicros).toFixed(2),
        ),
        otherProcessStream: Number(
          (results.grpcJsUnixOtherProcessStreamMicros / results.grpcUnixOtherProcessStreamMicros).toFixed(2),
        ),
      },
    },
    null,
    2,
  ));
  tcp.close();
  unix.close();
  grpcJs.close();
  for (const child of [remoteServer, grpcJsServer]) {
    child.kill("SIGKILL");
    await child.status;
  }
  await tcpServer.shutdown(100);
  await unixServer.shutdown(100);
  Deno.exit(0);
}
