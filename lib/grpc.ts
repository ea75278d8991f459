// The gRPC transport: gRPC over our own HTTP/2 (lib/h2) on Deno sockets, TCP or Unix. The server
// side serves BoundServices plus grpc.health.v1, server reflection and whatever else is added; the
// client side carries deadlines, cancellation, keepalive and message-size limits, and retries
// idempotent calls (proto idempotency_level) that fail with UNAVAILABLE. Failures travel as
// google.rpc.Status with an astra ErrorDetail inside, in the standard `grpc-status-details-bin`
// trailer, so grpcurl shows them too. (grpc-js on Deno's node:http2 cost ~100 µs per message
// round trip between two processes; this costs a fraction of that.)
import { create, type DescMessage, type DescMethod, fromBinary, toBinary } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { AstraError, Code, Errno, toAstraError, unavailable } from "./errors.ts";
import { cancelledError, deadlineError, tooLargeError } from "./inproc.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./config.ts";
import {
  type CallContext,
  type CallOptions,
  type Client,
  client,
  methodPath,
  type Transport,
} from "./rpc.ts";
import type { BoundMethod, BoundService } from "./server.ts";
import { logger } from "./log.ts";
import { HealthService, ServingStatus } from "./health.ts";
import { reflectionServices } from "./reflection.ts";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { H2Connection, type H2Stream, type StreamEvents } from "./h2/connection.ts";
import { ErrorCode } from "./h2/frames.ts";
import type { HeaderList } from "./h2/hpack.ts";
import {
  applicationMetadata,
  bareStatus,
  formatTimeout,
  MESSAGE_PREFIX_BYTES,
  messagePrefix,
  MessageReader,
  OK_TRAILERS,
  parseTimeout,
  statusFromHttp,
  statusFromReset,
  statusFromTrailers,
  statusHeaders,
} from "./grpc_wire.ts";

const CONTENT_TYPE = "application/grpc";
const USER_AGENT = "astra-grpc/1";
/** Received messages a reader may leave unread before the sender is held back by flow control. */
const UNREAD_HIGH_WATER = 4 << 20;

/** A message (or its init shape) as the bytes of one length-prefixed gRPC message. */
function encodeMessage(desc: DescMessage, msg: unknown, limit: number, what: string): Uint8Array[] {
  const body = toBinary(desc, create(desc, msg as never));
  if (body.length > limit) throw tooLargeError(what, body.length, limit);
  return [messagePrefix(body.length), body];
}

function decodeMessage(desc: DescMessage, bytes: Uint8Array, what: string) {
  try {
    return fromBinary(desc, bytes);
  } catch (e) {
    throw new AstraError(
      Code.INTERNAL,
      Errno.EBADMSG,
      `could not parse the ${what} message: ${(e as Error).message}`,
    );
  }
}

function header(headers: HeaderList, name: string): string | undefined {
  for (const [n, v] of headers) if (n === name) return v;
  return undefined;
}

/**
 * Messages received on a stream, for the reader that iterates them: everything received before a
 * failure is read first. Received bytes go back to the peer as flow-control window at once while
 * the reader keeps up, and only as it reads once it falls behind.
 */
class MessageQueue<T> implements AsyncIterable<T> {
  readonly #items: { value: T; bytes: number }[] = [];
  #unreadBytes = 0;
  #withheld = 0;
  #ended = false;
  #failure: unknown;
  #wake: (() => void) | undefined;

  constructor(private readonly stream: H2Stream) {}

  /** `n` DATA bytes arrived for this queue's stream. */
  received(n: number): void {
    if (this.#unreadBytes > UNREAD_HIGH_WATER) this.#withheld += n;
    else this.stream.consume(n);
  }

  push(value: T, bytes: number): void {
    this.#items.push({ value, bytes });
    this.#unreadBytes += bytes;
    this.#notify();
  }

  end(): void {
    this.#ended = true;
    this.#notify();
  }

  fail(e: unknown): void {
    if (this.#ended) return;
    this.#failure = e;
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  next(): Promise<IteratorResult<T>> {
    const item = this.#items.shift();
    if (item) {
      this.#unreadBytes -= item.bytes;
      if (this.#withheld && this.#unreadBytes <= UNREAD_HIGH_WATER) {
        this.stream.consume(this.#withheld);
        this.#withheld = 0;
      }
      return Promise.resolve({ value: item.value, done: false });
    }
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise<void>((resolve) => this.#wake = resolve).then(() => this.next());
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => this.next(),
      // A handler that stops reading requests may still be sending replies: the call goes on.
      return: (value?: unknown) => Promise.resolve({ value: value as T, done: true }),
    };
  }
}

export interface GrpcServerOptions {
  maxMessageBytes?: number;
  /** Calls one client connection may have open at once (HTTP/2 MAX_CONCURRENT_STREAMS, default 4096). */
  maxConcurrentCalls?: number;
}

interface Route {
  service: string;
  method: DescMethod;
  invoke: BoundMethod["call"];
}

/** Every server connection in this process, for `openConnections`. */
const serverConnections = new Map<H2Connection, string>();
let serversListening = 0;

export class GrpcServer {
  readonly #log;
  readonly #limit: number;
  readonly #maxConcurrentCalls: number | undefined;
  readonly #routes = new Map<string, Route>();
  readonly #services: BoundService[] = [];
  readonly #connections = new Set<H2Connection>();
  /** Calls whose replies are a stream: ended at shutdown, since they never end on their own. */
  readonly #streamingCalls = new Set<ServerCall>();
  readonly #health: HealthService;
  #listener: Deno.Listener | undefined;
  #stopping = false;

  constructor(readonly name: string, opts: GrpcServerOptions = {}) {
    this.#limit = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxConcurrentCalls = opts.maxConcurrentCalls;
    this.#log = logger(name);
    this.#health = new HealthService(name);
    this.#health.setStatus("", ServingStatus.NOT_SERVING);
    this.add(this.#health.bound);
    for (const b of reflectionServices(name, () => this.#services.map((s) => s.desc))) this.add(b);
  }

  add(bound: BoundService): void {
    this.#services.push(bound);
    this.#health.setStatus(bound.desc.typeName, ServingStatus.NOT_SERVING);
    for (const [path, m] of bound.methods) {
      this.#routes.set(path, { service: bound.service, method: m.method, invoke: m.call });
    }
  }

  /** Binds `address` ("host:port", "[::]:0", "unix:/path"); returns the address actually bound. */
  async listen(address: string): Promise<string> {
    const where = socketAddress(address);
    if (where.transport === "unix") await removeStaleSocket(where.path);
    const listener = where.transport === "unix" ? Deno.listen(where) : Deno.listen(where);
    this.#listener = listener;
    serversListening++;
    this.#accept(listener);
    if (where.transport === "unix") return address;
    const host = address.slice(0, address.lastIndexOf(":"));
    return `${host}:${(listener.addr as Deno.NetAddr).port}`;
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) {
        if (this.#stopping) {
          conn.close();
          continue;
        }
        this.#serve(conn);
      }
    } catch (e) {
      if (!this.#stopping) this.#log.error("accepting connections failed", { error: String(e) });
    }
  }

  #serve(conn: Deno.Conn): void {
    const peer = peerOf(conn);
    if (conn.remoteAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
    const connection = new H2Connection(conn, {
      role: "server",
      maxConcurrentStreams: this.#maxConcurrentCalls,
      onStream: (stream, headers, endStream) => this.#call(stream, headers, endStream, peer),
      onClose: (error) => {
        this.#connections.delete(connection);
        serverConnections.delete(connection);
        if (error && !this.#stopping) this.#log.debug("connection failed", { peer, error: error.message });
      },
    });
    this.#connections.add(connection);
    serverConnections.set(connection, peer);
  }

  #call(stream: H2Stream, headers: HeaderList, endStream: boolean, peer: string): StreamEvents {
    const method = header(headers, ":method");
    const contentType = header(headers, "content-type") ?? "";
    if (method !== "POST") return refuse(stream, [[":status", "405"]]);
    if (!contentType.startsWith(CONTENT_TYPE)) return refuse(stream, [[":status", "415"]]);
    const path = header(headers, ":path") ?? "";
    const route = this.#routes.get(path);
    if (!route) {
      return refuse(stream, [
        [":status", "200"],
        ["content-type", CONTENT_TYPE],
        ...statusHeaders(bareStatus(Code.UNIMPLEMENTED, `unknown method ${path}`)),
      ]);
    }
    const timeout = header(headers, "grpc-timeout");
    const timeoutMs = timeout === undefined ? undefined : parseTimeout(timeout);
    if (timeout !== undefined && timeoutMs === undefined) {
      return refuse(stream, [
        [":status", "200"],
        ["content-type", CONTENT_TYPE],
        ...statusHeaders(bareStatus(Code.INTERNAL, `malformed grpc-timeout "${timeout}"`)),
      ]);
    }
    const call = new ServerCall(this, stream, route, this.#limit, {
      metadata: applicationMetadata(headers),
      peer,
      timeoutMs,
    });
    if (endStream) call.data(new Uint8Array(0), true);
    return call;
  }

  /** Marks every service (and the server as a whole) SERVING or NOT_SERVING for health checks. */
  setServing(serving: boolean): void {
    const status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    this.#health.setStatus("", status);
    for (const s of this.#services) this.#health.setStatus(s.desc.typeName, status);
  }

  streamStarted(call: ServerCall): void {
    this.#streamingCalls.add(call);
  }

  streamEnded(call: ServerCall): void {
    this.#streamingCalls.delete(call);
  }

  /**
   * Stops accepting calls and ends the open streams at once with UNAVAILABLE (a long-lived stream,
   * like the trap path's, never ends on its own; its client reconnects elsewhere), lets running
   * unary calls finish for up to `graceMs`, then cuts the rest.
   */
  async shutdown(graceMs = 2000): Promise<void> {
    this.setServing(false);
    this.#health.shutdown();
    this.#stopping = true;
    if (this.#listener) {
      try {
        this.#listener.close();
      } catch { /* already closed */ }
      this.#listener = undefined;
      serversListening--;
    }
    for (const call of [...this.#streamingCalls]) call.finish(unavailable("the server is shutting down"));
    this.#streamingCalls.clear();
    for (const c of this.#connections) c.shutdown(ErrorCode.NO_ERROR, "the server is shutting down");
    const all = Promise.all([...this.#connections].map((c) => c.closed));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), graceMs)),
    ]);
    clearTimeout(timer);
    if (expired) {
      this.#log.warn("forcing shutdown: calls still running", { graceMs });
      for (const c of [...this.#connections]) c.close("the server shut down");
    }
  }
}

/** Answers a stream with `headers` alone and ignores whatever else the client sends on it. */
function refuse(stream: H2Stream, headers: HeaderList): StreamEvents {
  stream.sendHeaders(headers, true);
  if (!stream.remoteEnded) stream.reset(ErrorCode.NO_ERROR);
  return { headers() {}, data() {}, reset() {} };
}

/** One call being served. */
class ServerCall implements StreamEvents {
  readonly #server: GrpcServer;
  readonly #stream: H2Stream;
  readonly #route: Route;
  readonly #limit: number;
  readonly #reader: MessageReader;
  readonly #controller = new AbortController();
  readonly #ctx: CallContext;
  readonly #requestStream: boolean;
  /** Streaming requests: what the handler iterates. */
  readonly #requests: MessageQueue<unknown> | undefined;
  /** Unary requests: the one message, until the client half-closes. */
  #request: unknown;
  #requestCount = 0;
  #headersSent = false;
  #finished = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    server: GrpcServer,
    stream: H2Stream,
    route: Route,
    limit: number,
    call: { metadata: Record<string, string>; peer: string; timeoutMs: number | undefined },
  ) {
    this.#server = server;
    this.#stream = stream;
    this.#route = route;
    this.#limit = limit;
    this.#reader = new MessageReader(limit);
    const kind = route.method.methodKind;
    this.#requestStream = kind === "client_streaming" || kind === "bidi_streaming";
    this.#ctx = {
      service: route.service,
      method: route.method,
      metadata: call.metadata,
      signal: this.#controller.signal,
      deadline: call.timeoutMs === undefined ? undefined : Date.now() + call.timeoutMs,
      peer: call.peer,
    };
    if (call.timeoutMs !== undefined) {
      const ms = call.timeoutMs;
      this.#timer = setTimeout(() => this.finish(deadlineError(ms)), ms);
    }
    if (this.#requestStream) {
      this.#requests = new MessageQueue(stream);
      this.#start(this.#requests);
    }
  }

  /** Request trailers (the connection lets only those through): nothing gRPC uses but the end they mark. */
  headers(_headers: HeaderList, _endStream: boolean): void {
    this.data(new Uint8Array(0), true);
  }

  data(payload: Uint8Array, endStream: boolean): void {
    if (this.#finished) return;
    try {
      if (this.#requests) this.#requests.received(payload.length);
      else this.#stream.consume(payload.length);
      this.#reader.push(payload, (bytes) => {
        const msg = decodeMessage(this.#route.method.input, bytes, "request");
        this.#requestCount++;
        if (this.#requests) this.#requests.push(msg, bytes.length + MESSAGE_PREFIX_BYTES);
        else this.#request = msg;
      });
    } catch (e) {
      this.finish(toAstraError(e, this.#route.service));
      return;
    }
    if (!endStream) return;
    if (!this.#reader.idle) {
      this.finish(bareStatus(Code.INTERNAL, "the request stream ended inside a message"));
    } else if (this.#requests) this.#requests.end();
    else if (this.#requestCount !== 1) {
      this.finish(
        bareStatus(Code.INTERNAL, `a unary call takes one request message, not ${this.#requestCount}`),
      );
    } else this.#start(this.#request);
  }

  reset(_code: number, _message: string, _connectionLost: boolean): void {
    // The client cancelled the call, or its connection went away.
    if (this.#finished) return;
    this.#finished = true;
    this.#cleanup();
    this.#controller.abort(cancelledError());
    this.#requests?.fail(cancelledError());
  }

  #start(input: unknown): void {
    const { method, service, invoke } = this.#route;
    let result: Promise<unknown> | AsyncIterable<unknown>;
    try {
      result = invoke(input, this.#ctx);
    } catch (e) {
      this.finish(toAstraError(e, service));
      return;
    }
    if (method.methodKind === "unary" || method.methodKind === "client_streaming") {
      (result as Promise<unknown>).then(
        (reply) => {
          if (this.#finished) return;
          try {
            this.#send(reply);
            this.finish(undefined);
          } catch (e) {
            this.finish(toAstraError(e, service));
          }
        },
        (e) => this.finish(toAstraError(e, service)),
      );
    } else {
      this.#server.streamStarted(this);
      this.#pump(result as AsyncIterable<unknown>);
    }
  }

  async #pump(replies: AsyncIterable<unknown>): Promise<void> {
    try {
      for await (const reply of replies) {
        if (this.#finished) return;
        this.#send(reply);
        if (this.#stream.congested) await this.#stream.writable();
      }
      this.finish(undefined);
    } catch (e) {
      this.finish(toAstraError(e, this.#route.service));
    }
  }

  #send(reply: unknown): void {
    const pieces = encodeMessage(this.#route.method.output, reply, this.#limit, "reply");
    if (!this.#headersSent) {
      this.#headersSent = true;
      this.#stream.sendHeaders([[":status", "200"], ["content-type", CONTENT_TYPE]]);
    }
    this.#stream.sendData(pieces);
  }

  /** Ends the call with OK (`err` undefined) or `err`, in trailers, or trailers-only when nothing was sent. */
  finish(err: AstraError | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#cleanup();
    const status = err ? statusHeaders(err) : OK_TRAILERS;
    const trailers: HeaderList = this.#headersSent
      ? status
      : [[":status", "200"], ["content-type", CONTENT_TYPE], ...status];
    this.#stream.sendHeaders(trailers, true);
    // The client may still be sending; it hears that the server is done.
    if (!this.#stream.remoteEnded) this.#stream.reset(ErrorCode.NO_ERROR);
    if (err) {
      this.#controller.abort(err.code === Code.DEADLINE_EXCEEDED ? err : cancelledError());
      this.#requests?.fail(cancelledError());
    }
  }

  #cleanup(): void {
    clearTimeout(this.#timer);
    this.#server.streamEnded(this);
  }
}

/**
 * A socket file left behind by a server that died (a restarted service listens on the same path):
 * nothing listens on it any more, so it goes. Anything else at the path is left alone.
 */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    if (!(await Deno.lstat(path)).isSocket) return;
  } catch {
    return;
  }
  try {
    (await Deno.connect({ transport: "unix", path })).close();
  } catch {
    await Deno.remove(path).catch(() => {});
  }
}

/** "unix:/path", "host:port", "[v6]:port" or "v6:port" as Deno's listen/connect options. */
function socketAddress(
  address: string,
): { transport: "unix"; path: string } | { transport: "tcp"; hostname: string; port: number } {
  if (address.startsWith("unix:")) return { transport: "unix", path: address.slice("unix:".length) };
  const colon = address.lastIndexOf(":");
  const port = Number(address.slice(colon + 1));
  let hostname = address.slice(0, colon);
  if (hostname.startsWith("[") && hostname.endsWith("]")) hostname = hostname.slice(1, -1);
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw bareStatus(Code.INVALID_ARGUMENT, `not an address: "${address}" (want host:port or unix:/path)`);
  }
  return { transport: "tcp", hostname: hostname || "0.0.0.0", port };
}

/** "host:port" of a TCP peer, "unix:path" of a Unix socket's. */
function peerOf(conn: Deno.Conn): string {
  const addr = conn.remoteAddr;
  return addr.transport === "tcp" || addr.transport === "udp"
    ? `${addr.hostname}:${addr.port}`
    : `unix:${(addr as Deno.UnixAddr).path}`;
}

/**
 * The remote ends ("host:port") of every open connection to a gRPC server in this process, or
 * undefined when no server listens here: then nobody can tell whether a connection closed.
 */
export function openConnections(): Set<string> | undefined {
  if (serversListening === 0 && serverConnections.size === 0) return undefined;
  return new Set(serverConnections.values());
}

export interface GrpcTransportOptions {
  maxMessageBytes?: number;
  /** Attempts for idempotent unary calls that fail with UNAVAILABLE (first try included). */
  maxAttempts?: number;
}

/** Waits between attempts: 50 ms doubling up to 2 s, so 10 attempts span about 9 s. */
const RETRY_BASE_MS = 50;
const RETRY_MAX_WAIT_MS = 2000;
/** A connection with no traffic is checked with a PING this often, and dropped if unanswered. */
const KEEPALIVE_INTERVAL_MS = 30_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;

function isIdempotent(method: DescMethod): boolean {
  return method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
    method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT;
}

/** A client of one server address, over one HTTP/2 connection made when first needed and again after it fails. */
export class GrpcTransport implements Transport {
  readonly kind = "grpc";
  readonly #limit: number;
  readonly #maxAttempts: number;
  readonly #authority: string;
  #connection: H2Connection | undefined;
  #connecting: Promise<H2Connection> | undefined;
  #keepalive: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(readonly address: string, opts: GrpcTransportOptions = {}) {
    this.#limit = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxAttempts = opts.maxAttempts ?? 10;
    this.#authority = address.startsWith("unix:") ? "localhost" : address;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The open connection, or a new one; UNAVAILABLE when the server cannot be reached. */
  #connect(): Promise<H2Connection> {
    if (this.#closed) return Promise.reject(bareStatus(Code.CANCELLED, "the channel is closed"));
    if (this.#connection?.open) return Promise.resolve(this.#connection);
    this.#connecting ??= this.#dial().finally(() => this.#connecting = undefined);
    return this.#connecting;
  }

  async #dial(): Promise<H2Connection> {
    let conn: Deno.Conn;
    try {
      const where = socketAddress(this.address);
      if (where.transport === "unix") conn = await Deno.connect(where);
      else {
        conn = await Deno.connect(where);
        (conn as Deno.TcpConn).setNoDelay(true);
      }
    } catch (e) {
      throw bareStatus(Code.UNAVAILABLE, `cannot connect to ${this.address}: ${(e as Error).message}`);
    }
    if (this.#closed) {
      conn.close();
      throw bareStatus(Code.CANCELLED, "the channel is closed");
    }
    const connection: H2Connection = new H2Connection(conn, {
      role: "client",
      onGoaway: () => this.#forget(connection),
      onClose: () => this.#forget(connection),
    });
    // Streams start once the server's SETTINGS are known: its MAX_CONCURRENT_STREAMS among them.
    await connection.settled;
    if (connection.isClosed) {
      throw bareStatus(Code.UNAVAILABLE, `${this.address} closed the connection before its HTTP/2 settings`);
    }
    this.#connection = connection;
    this.#startKeepalive();
    return connection;
  }

  #forget(connection: H2Connection): void {
    if (this.#connection === connection) this.#connection = undefined;
  }

  #startKeepalive(): void {
    if (this.#keepalive !== undefined) return;
    const timer = setInterval(() => {
      const c = this.#connection;
      if (!c || c.isClosed) return;
      c.ping(KEEPALIVE_TIMEOUT_MS).catch(() => c.close(`no answer to a keepalive PING from ${this.address}`));
    }, KEEPALIVE_INTERVAL_MS);
    // Keepalive alone does not keep a process running.
    Deno.unrefTimer(timer);
    this.#keepalive = timer;
  }

  #requestHeaders(method: DescMethod, opts: CallOptions): HeaderList {
    const headers: HeaderList = [
      [":method", "POST"],
      [":scheme", "http"],
      [":path", methodPath(method)],
      [":authority", this.#authority],
      ["content-type", CONTENT_TYPE],
      ["te", "trailers"],
      ["user-agent", USER_AGENT],
    ];
    if (opts.timeoutMs !== undefined) headers.push(["grpc-timeout", formatTimeout(opts.timeoutMs)]);
    for (const [k, v] of Object.entries(opts.metadata ?? {})) headers.push([k.toLowerCase(), v]);
    return headers;
  }

  /** A call on the connection, its deadline and cancellation armed. */
  async #open(method: DescMethod, opts: CallOptions, streamingReplies: boolean): Promise<ClientCall> {
    if (opts.signal?.aborted) throw cancelledError();
    let connection = await this.#connect();
    // The server's MAX_CONCURRENT_STREAMS: a call beyond it waits for one to end.
    while (!connection.hasStreamSlot) {
      await connection.streamSlot();
      connection = await this.#connect();
    }
    if (opts.signal?.aborted) throw cancelledError();
    const call = new ClientCall(this, method, this.#limit, streamingReplies, opts);
    call.begin(connection, this.#requestHeaders(method, opts));
    return call;
  }

  async #once(method: DescMethod, req: unknown, opts: CallOptions): Promise<unknown> {
    const call = await this.#open(method, opts, false);
    call.sendLast(req);
    return call.reply();
  }

  async unary(method: DescMethod, req: unknown, opts: CallOptions): Promise<unknown> {
    const deadline = opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : Infinity;
    const attempts = isIdempotent(method) ? this.#maxAttempts : 1;
    for (let attempt = 1;; attempt++) {
      try {
        const left = deadline === Infinity ? undefined : Math.max(0, deadline - Date.now());
        return await this.#once(method, req, left === undefined ? opts : { ...opts, timeoutMs: left });
      } catch (e) {
        const err = e as AstraError;
        const backoff = Math.min(RETRY_MAX_WAIT_MS, RETRY_BASE_MS * 2 ** (attempt - 1)) *
          (0.5 + Math.random() / 2);
        if (err.code !== Code.UNAVAILABLE || attempt >= attempts || Date.now() + backoff >= deadline) {
          throw err;
        }
        await new Promise((r) => setTimeout(r, backoff));
      }
    }
  }

  serverStream(method: DescMethod, req: unknown, opts: CallOptions): AsyncIterable<unknown> {
    return this.#replies(method, opts, (call) => call.sendLast(req));
  }

  async clientStream(method: DescMethod, reqs: AsyncIterable<unknown>, opts: CallOptions): Promise<unknown> {
    const call = await this.#open(method, opts, false);
    call.sendAll(reqs);
    return call.reply();
  }

  bidiStream(method: DescMethod, reqs: AsyncIterable<unknown>, opts: CallOptions): AsyncIterable<unknown> {
    return this.#replies(method, opts, (call) => call.sendAll(reqs));
  }

  /** The replies of a streaming call, which starts at once; leaving them early cancels it. */
  #replies(method: DescMethod, opts: CallOptions, send: (call: ClientCall) => void): AsyncIterable<unknown> {
    const opening = this.#open(method, opts, true).then((c) => {
      send(c);
      return c;
    });
    // A call that fails to start reports it to whoever iterates.
    opening.catch(() => {});
    let call: ClientCall | undefined;
    const iterator: AsyncIterator<unknown> = {
      next: () => call ? call.replies!.next() : opening.then((c) => (call = c).replies!.next()),
      return: async (value?: unknown) => {
        (call ?? await opening.catch(() => undefined))?.abandon();
        return { value, done: true };
      },
    };
    return { [Symbol.asyncIterator]: () => iterator };
  }

  /** Resolves when a connection is up, or rejects at the deadline. */
  async waitForReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.#connect();
        return;
      } catch (e) {
        if (this.#closed || Date.now() + 100 > deadline) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Closes the connection; calls still running end with CANCELLED. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keepalive);
    this.#connection?.close("the channel was closed");
    this.#connection = undefined;
  }
}

/** The client end of one call. */
class ClientCall implements StreamEvents {
  readonly #transport: GrpcTransport;
  readonly #method: DescMethod;
  readonly #limit: number;
  readonly #reader: MessageReader;
  readonly #opts: CallOptions;
  readonly #streamingReplies: boolean;
  #stream!: H2Stream;
  /** Streaming replies, in order; undefined for unary and client-streaming calls. */
  replies: MessageQueue<unknown> | undefined;
  #responseHeaders = false;
  #finished = false;
  #failure: AstraError | undefined;
  #reply: unknown;
  #replyCount = 0;
  #settled: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onAbort: (() => void) | undefined;

  constructor(
    transport: GrpcTransport,
    method: DescMethod,
    limit: number,
    streamingReplies: boolean,
    opts: CallOptions,
  ) {
    this.#transport = transport;
    this.#method = method;
    this.#limit = limit;
    this.#opts = opts;
    this.#streamingReplies = streamingReplies;
    this.#reader = new MessageReader(limit);
  }

  /** Opens the stream with the request headers and arms the deadline and the caller's signal. */
  begin(connection: H2Connection, headers: HeaderList): void {
    this.#stream = connection.openStream(this);
    if (this.#streamingReplies) this.replies = new MessageQueue(this.#stream);
    this.#stream.sendHeaders(headers);
    const { timeoutMs, signal } = this.#opts;
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(() => this.#cancel(deadlineError(timeoutMs)), timeoutMs);
    }
    if (signal) {
      this.#onAbort = () => this.#cancel(cancelledError());
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /** The one request of a unary or server-streaming call, which also half-closes. */
  sendLast(req: unknown): void {
    try {
      this.#stream.sendData(encodeMessage(this.#method.input, req, this.#limit, "request"), true);
    } catch (e) {
      this.#cancel(toAstraError(e));
    }
  }

  /** Streams the requests, then half-closes. A failing request source cancels the call. */
  async sendAll(reqs: AsyncIterable<unknown>): Promise<void> {
    try {
      for await (const req of reqs) {
        if (this.#finished) return;
        let pieces: Uint8Array[];
        try {
          pieces = encodeMessage(this.#method.input, req, this.#limit, "request");
        } catch (e) {
          this.#cancel(toAstraError(e));
          return;
        }
        this.#stream.sendData(pieces);
        if (this.#stream.congested) await this.#stream.writable();
      }
      this.#stream.end();
    } catch (e) {
      logger("grpc").debug("request stream failed", { error: String(e) });
      this.#cancel(cancelledError());
    }
  }

  /** The reply of a unary or client-streaming call. */
  reply(): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const settle = () => {
        if (this.#failure) reject(this.#failure);
        else if (this.#replyCount !== 1) {
          reject(
            bareStatus(Code.INTERNAL, `the server sent ${this.#replyCount} reply messages to a unary call`),
          );
        } else resolve(this.#reply);
      };
      if (this.#finished) settle();
      else this.#settled = settle;
    });
  }

  headers(headers: HeaderList, endStream: boolean): void {
    if (this.#finished) return;
    if (!this.#responseHeaders) {
      this.#responseHeaders = true;
      const status = header(headers, ":status") ?? "(none)";
      if (status !== "200") return this.#cancel(statusFromHttp(status));
      const contentType = header(headers, "content-type") ?? "";
      if (!contentType.startsWith(CONTENT_TYPE)) {
        return this.#cancel(
          bareStatus(Code.UNKNOWN, `the server answered with content-type "${contentType}"`),
        );
      }
      if (!endStream) return;
    }
    if (!endStream) return this.#cancel(bareStatus(Code.INTERNAL, "trailers without the end of the stream"));
    this.#finish(statusFromTrailers(headers));
  }

  data(payload: Uint8Array, endStream: boolean): void {
    if (this.#finished) return;
    if (this.replies) this.replies.received(payload.length);
    else this.#stream.consume(payload.length);
    try {
      this.#reader.push(payload, (bytes) => {
        const msg = decodeMessage(this.#method.output, bytes, "reply");
        this.#replyCount++;
        if (this.replies) this.replies.push(msg, bytes.length + MESSAGE_PREFIX_BYTES);
        else this.#reply = msg;
      });
    } catch (e) {
      return this.#cancel(toAstraError(e));
    }
    if (endStream) this.#finish(bareStatus(Code.INTERNAL, "the server ended the stream without a status"));
  }

  reset(code: number, message: string, connectionLost: boolean): void {
    if (connectionLost) {
      this.#finish(
        this.#transport.closed
          ? bareStatus(Code.CANCELLED, "the channel was closed")
          : bareStatus(Code.UNAVAILABLE, message),
      );
    } else this.#finish(statusFromReset(code, message));
  }

  /** The caller stopped reading the replies: the call is cancelled if it is still running. */
  abandon(): void {
    this.#cancel(cancelledError());
  }

  #cancel(err: AstraError): void {
    if (this.#finished) return;
    this.#stream.reset(ErrorCode.CANCEL);
    this.#finish(err);
  }

  #finish(err: AstraError | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#timer);
    if (this.#onAbort) this.#opts.signal!.removeEventListener("abort", this.#onAbort);
    this.#failure = err;
    if (this.replies) {
      if (err) this.replies.fail(err);
      else this.replies.end();
    }
    this.#settled?.();
  }
}

/** grpc.health.v1 Check against `address`: "SERVING", "NOT_SERVING", "UNKNOWN", or throws. */
export async function checkHealth(address: string, service = "", timeoutMs = 1000): Promise<string> {
  const probe = new HealthProbe(address);
  try {
    return await probe.check(service, timeoutMs);
  } finally {
    probe.close();
  }
}

/** Repeated health checks of one server over one connection, kept open until close(). */
export class HealthProbe {
  private readonly transport: GrpcTransport;
  private readonly health: Client<typeof Health>;

  constructor(readonly address: string) {
    this.transport = new GrpcTransport(address);
    this.health = client(Health, this.transport);
  }

  async check(service = "", timeoutMs = 1000): Promise<string> {
    const { status } = await this.health.check({ service }, { timeoutMs });
    return ServingStatus[status] ?? "UNKNOWN";
  }

  close(): void {
    this.transport.close();
  }
}
