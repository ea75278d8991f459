// Round-trip cost of one small message: unary and on an open bidi stream, in-process and over
// gRPC (loopback TCP and a Unix socket) in this process, and over a Unix socket to a server in
// another process (as the services talk in process mode: the floor under a kernel call over gRPC).
// The in-process unary call is the reference the others are compared against. Prints JSON; never
// fails on time.
//
//   deno run -A bench/transport.ts            (the server of the cross-process case is this file,
//                                              run again with --serve-echo PATH)
import { EchoService } from "../gen/astra/testing/v1/echo_pb.ts";
import { Channel } from "../lib/channel.ts";
import { GrpcServer, GrpcTransport } from "../lib/grpc.ts";
import { InProcessRouter } from "../lib/inproc.ts";
import { client, type Transport } from "../lib/rpc.ts";
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

if (Deno.args[0] === "--serve-echo") {
  const server = new GrpcServer("echo");
  server.add(echoService("echo"));
  await server.listen(`unix:${Deno.args[1]}`);
  console.log("serving");
} else {
  await main();
}

/** The echo server in a child process, serving on a Unix socket; resolves once it answers. */
async function echoProcess(path: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--serve-echo", path],
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

  const results = {
    inProcessUnaryMicros: await unaryMicros(router.transport()),
    inProcessStreamMicros: await streamMicros(router.transport()),
    grpcTcpUnaryMicros: await unaryMicros(tcp),
    grpcTcpStreamMicros: await streamMicros(tcp),
    grpcUnixUnaryMicros: await unaryMicros(unix),
    grpcUnixStreamMicros: await streamMicros(unix),
    grpcUnixOtherProcessUnaryMicros: await unaryMicros(remote),
    grpcUnixOtherProcessStreamMicros: await streamMicros(remote),
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
    },
    null,
    2,
  ));
  tcp.close();
  unix.close();
  remoteServer.kill("SIGKILL");
  await remoteServer.status;
  await tcpServer.shutdown(100);
  await unixServer.shutdown(100);
  Deno.exit(0);
}
