// The gRPC transport (@grpc/grpc-js). The server side serves BoundServices plus grpc.health.v1,
// server reflection and ObservabilityService; the client side carries deadlines, cancellation,
// keepalive and message-size limits, and retries idempotent calls (proto idempotency_level) that
// fail with UNAVAILABLE. Failures travel as google.rpc.Status with an astra ErrorDetail inside, in
// the standard `grpc-status-details-bin` trailer, so grpcurl shows them too.
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import {
  create,
  type DescFile,
  type DescMessage,
  type DescMethod,
  fromBinary,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import { anyPack, FileDescriptorProtoSchema, MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { StatusSchema } from "../gen/google/rpc/status_pb.ts";
import { ErrorDetailSchema } from "../gen/astra/common/v1/errors_pb.ts";
import { AstraError, Code, Errno, toAstraError, unavailable } from "./errors.ts";
import { cancelledError } from "./inproc.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./config.ts";
import { type CallContext, type CallOptions, methodPath, type Transport } from "./rpc.ts";
import type { BoundMethod, BoundService } from "./server.ts";
import { logger } from "./log.ts";

const DETAILS_KEY = "grpc-status-details-bin";
const ERROR_DETAIL_TYPE_URL = `type.googleapis.com/${ErrorDetailSchema.typeName}`;

/** Encodes a message or its init shape (what clients send and handlers reply). */
function serializer(desc: DescMessage) {
  return (msg: Message) => {
    const bytes = toBinary(desc, create(desc, msg));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(desc: DescMessage) {
  return (buf: Buffer) => fromBinary(desc, buf);
}

/** A thrown AstraError as the status object grpc-js sends. */
function toStatus(err: AstraError): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  const status = create(StatusSchema, {
    code: err.code,
    message: err.message,
    details: [anyPack(ErrorDetailSchema, err.detail)],
  });
  metadata.set(DETAILS_KEY, Buffer.from(toBinary(StatusSchema, status)));
  return { code: err.code as number as grpc.status, details: err.message, metadata };
}

const ERRNO_FOR_BARE_STATUS: Partial<Record<Code, Errno>> = {
  [Code.CANCELLED]: Errno.ECANCELED,
  [Code.DEADLINE_EXCEEDED]: Errno.ETIMEDOUT,
  [Code.UNAVAILABLE]: Errno.ECONNREFUSED,
  [Code.RESOURCE_EXHAUSTED]: Errno.E2BIG,
  [Code.UNIMPLEMENTED]: Errno.ENOSYS,
};

/** A grpc-js error as an AstraError: the server's detail if it sent one, else one derived from the code. */
export function fromServiceError(e: unknown): AstraError {
  const err = e as Partial<grpc.ServiceError>;
  if (typeof err?.code !== "number") return toAstraError(e);
  const raw = err.metadata?.get(DETAILS_KEY)?.[0];
  if (raw instanceof Uint8Array) {
    try {
      const status = fromBinary(StatusSchema, raw);
      const any = status.details.find((d) => d.typeUrl === ERROR_DETAIL_TYPE_URL);
      if (any) {
        return AstraError.fromDetail(err.code as number as Code, fromBinary(ErrorDetailSchema, any.value));
      }
    } catch {
      // A malformed detail falls through to the bare status.
    }
  }
  const code = err.code as number as Code;
  return new AstraError(code, ERRNO_FOR_BARE_STATUS[code] ?? Errno.EIO, err.details || Code[code]);
}

function textMetadata(md: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) if (typeof v === "string") out[k] = v;
  return out;
}

function fileClosure(files: Iterable<DescFile>): DescFile[] {
  const seen = new Set<DescFile>();
  const order: DescFile[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f)) return;
    seen.add(f);
    f.dependencies.forEach(visit);
    order.push(f);
  };
  for (const f of files) visit(f);
  return order;
}

type ServerCall =
  | grpc.ServerUnaryCall<Message, Message>
  | grpc.ServerReadableStream<Message, Message>
  | grpc.ServerWritableStream<Message, Message>
  | grpc.ServerDuplexStream<Message, Message>;

export interface GrpcServerOptions {
  maxMessageBytes?: number;
}

export class GrpcServer {
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation({ "": "NOT_SERVING" });
  private readonly services: BoundService[] = [];
  private readonly streams = new Set<
    grpc.ServerWritableStream<Message, Message> | grpc.ServerDuplexStream<Message, Message>
  >();
  private readonly log;

  constructor(readonly name: string, opts: GrpcServerOptions = {}) {
    const limit = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.server = new grpc.Server({
      "grpc.max_receive_message_length": limit,
      "grpc.max_send_message_length": limit,
      "grpc.keepalive_permit_without_calls": 1,
    });
    this.log = logger(name);
  }

  add(bound: BoundService): void {
    this.services.push(bound);
    this.health.setStatus(bound.desc.typeName, "NOT_SERVING");
    const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const [path, m] of bound.methods) {
      const { method } = m;
      const requestStream = method.methodKind === "client_streaming" ||
        method.methodKind === "bidi_streaming";
      const responseStream = method.methodKind === "server_streaming" ||
        method.methodKind === "bidi_streaming";
      definition[method.name] = {
        path,
        requestStream,
        responseStream,
        requestSerialize: serializer(method.input),
        requestDeserialize: deserializer(method.input),
        responseSerialize: serializer(method.output),
        responseDeserialize: deserializer(method.output),
        originalName: method.localName,
      };
      handlers[method.name] = this.handler(bound.service, method, m.call);
    }
    this.server.addService(definition, handlers);
  }

  private context(
    service: string,
    method: DescMethod,
    call: ServerCall,
  ): CallContext {
    const controller = new AbortController();
    (call as grpc.ServerUnaryCall<Message, Message>).on(
      "cancelled",
      () => controller.abort(cancelledError()),
    );
    const deadline = call.getDeadline();
    const ms = deadline instanceof Date ? deadline.getTime() : deadline;
    return {
      service,
      method,
      metadata: textMetadata(call.metadata),
      signal: controller.signal,
      deadline: Number.isFinite(ms) ? ms : undefined,
      peer: call.getPeer(),
    };
  }

  private handler(
    service: string,
    method: DescMethod,
    invoke: BoundMethod["call"],
  ) {
    const fail = (e: unknown) => toStatus(toAstraError(e, service));
    switch (method.methodKind) {
      case "unary":
        return (call: grpc.ServerUnaryCall<Message, Message>, callback: grpc.sendUnaryData<Message>) => {
          (invoke(call.request, this.context(service, method, call)) as Promise<Message>).then(
            // A message or its init shape: the serializer makes it a message.
            (reply) => callback(null, reply),
            (e) => callback(fail(e)),
          );
        };
      case "client_streaming":
        return (call: grpc.ServerReadableStream<Message, Message>, callback: grpc.sendUnaryData<Message>) => {
          (invoke(requests(call), this.context(service, method, call)) as Promise<Message>).then(
            (reply) => callback(null, reply),
            (e) => callback(fail(e)),
          );
        };
      case "server_streaming":
        return (call: grpc.ServerWritableStream<Message, Message>) =>
          this.serveStream(
            call,
            invoke(call.request, this.context(service, method, call)) as AsyncIterable<Message>,
            fail,
          );
      case "bidi_streaming":
        return (call: grpc.ServerDuplexStream<Message, Message>) =>
          this.serveStream(
            call,
            invoke(requests(call), this.context(service, method, call)) as AsyncIterable<Message>,
            fail,
          );
    }
  }

  /** Binds `address` ("host:port", "[::]:0", "unix:/path"); returns the address actually bound. */
  async listen(address: string): Promise<string> {
    const files = fileClosure(this.services.map((s) => s.desc.file));
    const fileDescriptorProtos = files.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
    const healthDefinition = loadSync(healthProtoPath, { keepCase: true });
    new ReflectionService({ ...healthDefinition, "astra.files": { fileDescriptorProtos } } as never)
      .addToServer(this.server);
    this.health.addToServer(this.server);
    if (address.startsWith("unix:")) await removeStaleSocket(address.slice("unix:".length));
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(
        address,
        grpc.ServerCredentials.createInsecure(),
        (err, p) => err ? reject(err) : resolve(p),
      )
    );
    if (address.startsWith("unix:")) return address;
    const host = address.slice(0, address.lastIndexOf(":"));
    return `${host}:${port}`;
  }

  /** Marks every service (and the server as a whole) SERVING or NOT_SERVING for health checks. */
  setServing(serving: boolean): void {
    const status = serving ? "SERVING" : "NOT_SERVING";
    this.health.setStatus("", status);
    for (const s of this.services) this.health.setStatus(s.desc.typeName, status);
  }

  /** Sends a stream's replies; the stream stays known until it ends, so that shutdown can end it. */
  private async serveStream(
    call: grpc.ServerWritableStream<Message, Message> | grpc.ServerDuplexStream<Message, Message>,
    replies: AsyncIterable<Message>,
    fail: (e: unknown) => grpc.StatusObject,
  ): Promise<void> {
    this.streams.add(call);
    try {
      await pump(replies, call, fail);
    } finally {
      this.streams.delete(call);
    }
  }

  /**
   * Stops accepting calls and ends the open streams at once with UNAVAILABLE (a long-lived stream,
   * like the trap path's, never ends on its own; its client reconnects elsewhere), lets running
   * unary calls finish for up to `graceMs`, then cuts the rest.
   */
  async shutdown(graceMs = 2000): Promise<void> {
    this.setServing(false);
    for (const call of this.streams) {
      if (!call.cancelled) call.emit("error", toStatus(unavailable("the server is shutting down")));
    }
    this.streams.clear();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn("forcing shutdown: calls still running", { graceMs });
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
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

/**
 * The request messages of a client-streaming or bidi call. Node's default stream iterator destroys
 * the whole duplex when the requests end, which would abort the replies still to be sent.
 */
function requests(
  call: grpc.ServerReadableStream<Message, Message> | grpc.ServerDuplexStream<Message, Message>,
): AsyncIterable<Message> {
  const source = call.iterator({ destroyOnReturn: false }) as AsyncIterable<Message>;
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        // The call ending under the reader (client gone, server shutting down) is a cancellation,
        // not a failure of the handler.
        next: () =>
          it.next().catch((e) => {
            throw call.cancelled || isStatusObject(e) ||
                (e as { code?: unknown }).code === "ERR_STREAM_PREMATURE_CLOSE"
              ? cancelledError()
              : e;
          }),
        return: (value?: unknown) => it.return?.(value) ?? Promise.resolve({ done: true, value }),
      };
    },
  };
}

/** The status a call was ended with (emitted as its error), as opposed to a thrown failure. */
function isStatusObject(e: unknown): boolean {
  return typeof e === "object" && e !== null && typeof (e as { code?: unknown }).code === "number" &&
    "details" in e;
}

async function pump(
  replies: AsyncIterable<Message>,
  call: grpc.ServerWritableStream<Message, Message> | grpc.ServerDuplexStream<Message, Message>,
  fail: (e: unknown) => grpc.StatusObject,
): Promise<void> {
  try {
    for await (const reply of replies) {
      if (call.cancelled) return;
      if (!call.write(reply)) await once(call, "drain");
    }
    call.end();
  } catch (e) {
    if (!call.cancelled) call.emit("error", fail(e));
  }
}

export interface GrpcTransportOptions {
  maxMessageBytes?: number;
  /** Attempts for idempotent unary calls that fail with UNAVAILABLE (first try included). */
  maxAttempts?: number;
}

/** Waits between attempts: 50 ms doubling up to 2 s, so 10 attempts span about 9 s. */
const RETRY_BASE_MS = 50;
const RETRY_MAX_WAIT_MS = 2000;

function deadlineOf(opts: CallOptions): number {
  return opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : Infinity;
}

function metadataOf(opts: CallOptions): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
  return md;
}

function isIdempotent(method: DescMethod): boolean {
  return method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
    method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT;
}

export class GrpcTransport implements Transport {
  readonly kind = "grpc";
  private readonly client: grpc.Client;
  private readonly maxAttempts: number;

  constructor(readonly address: string, opts: GrpcTransportOptions = {}) {
    const limit = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxAttempts = opts.maxAttempts ?? 10;
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": limit,
      "grpc.max_send_message_length": limit,
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.keepalive_permit_without_calls": 1,
      // grpc-js's own retries are off: idempotency decides, below.
      "grpc.enable_retries": 0,
      // Reconnect soon after a peer restarts (grpc-js waits 1 s at first by default and fails
      // calls fast meanwhile).
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 2000,
    });
  }

  private once(method: DescMethod, req: unknown, opts: CallOptions, deadline: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted) return reject(cancelledError());
      const call = this.client.makeUnaryRequest(
        methodPath(method),
        serializer(method.input),
        deserializer(method.output),
        req as Message,
        metadataOf(opts),
        { deadline },
        (err, reply) => {
          opts.signal?.removeEventListener("abort", cancel);
          if (err) reject(fromServiceError(err));
          else resolve(reply);
        },
      );
      const cancel = () => call.cancel();
      opts.signal?.addEventListener("abort", cancel, { once: true });
    });
  }

  async unary(method: DescMethod, req: unknown, opts: CallOptions): Promise<unknown> {
    const deadline = deadlineOf(opts);
    const attempts = isIdempotent(method) ? this.maxAttempts : 1;
    for (let attempt = 1;; attempt++) {
      try {
        return await this.once(method, req, opts, deadline);
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
    const call = this.client.makeServerStreamRequest(
      methodPath(method),
      serializer(method.input),
      deserializer(method.output),
      req as Message,
      metadataOf(opts),
      { deadline: deadlineOf(opts) },
    );
    return readReplies(call, opts);
  }

  clientStream(method: DescMethod, reqs: AsyncIterable<unknown>, opts: CallOptions): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const call = this.client.makeClientStreamRequest(
        methodPath(method),
        serializer(method.input),
        deserializer(method.output),
        metadataOf(opts),
        { deadline: deadlineOf(opts) },
        (err, reply) => err ? reject(fromServiceError(err)) : resolve(reply),
      );
      opts.signal?.addEventListener("abort", () => call.cancel(), { once: true });
      writeRequests(reqs, call);
    });
  }

  bidiStream(method: DescMethod, reqs: AsyncIterable<unknown>, opts: CallOptions): AsyncIterable<unknown> {
    const call = this.client.makeBidiStreamRequest(
      methodPath(method),
      serializer(method.input),
      deserializer(method.output),
      metadataOf(opts),
      { deadline: deadlineOf(opts) },
    );
    writeRequests(reqs, call);
    return readReplies(call, opts);
  }

  /** Resolves when the channel is connected, or rejects at the deadline. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.waitForReady(Date.now() + timeoutMs, (err) => err ? reject(err) : resolve())
    );
  }

  close(): void {
    this.client.close();
  }
}

async function writeRequests(
  reqs: AsyncIterable<unknown>,
  call: grpc.ClientWritableStream<Message> | grpc.ClientDuplexStream<Message, Message>,
): Promise<void> {
  try {
    for await (const req of reqs) {
      if (!call.write(req as Message)) await once(call, "drain");
    }
    call.end();
  } catch (e) {
    // A failing request source cancels the call; the reader sees CANCELLED.
    logger("grpc").debug("request stream failed", { error: String(e) });
    call.cancel();
  }
}

/**
 * Replies of a client-side stream, in order. Node's stream iterator throws as soon as the call
 * emits 'error' and drops replies already received; here every reply received before the status
 * is yielded first, then the error (as an AstraError) is thrown.
 */
async function* readReplies(
  call: grpc.ClientReadableStream<Message> | grpc.ClientDuplexStream<Message, Message>,
  opts: CallOptions,
): AsyncGenerator<unknown> {
  const queue: Message[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  call.on("data", (m: Message) => {
    queue.push(m);
    notify();
  });
  call.on("end", () => {
    ended = true;
    notify();
  });
  call.on("error", (e: unknown) => {
    // grpc-js emits the status in the same tick as the last pushes: flush the buffer first.
    while (call.read() !== null);
    failure = e;
    ended = true;
    notify();
  });
  const cancel = () => call.cancel();
  opts.signal?.addEventListener("abort", cancel, { once: true });
  try {
    while (true) {
      if (queue.length) {
        yield queue.shift();
        continue;
      }
      if (failure !== undefined) throw fromServiceError(failure);
      if (ended) return;
      await new Promise<void>((resolve) => wake = resolve);
    }
  } finally {
    opts.signal?.removeEventListener("abort", cancel);
    if (!ended) call.cancel();
  }
}

type HealthClient = grpc.Client & {
  check(
    req: { service: string },
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: { status: string | number }) => void,
  ): void;
};

/** grpc.health.v1.HealthCheckResponse.ServingStatus by number (the loader may give either form). */
const SERVING_STATUS_NAMES = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

let healthClientCtor:
  | (new (address: string, creds: grpc.ChannelCredentials, options: grpc.ChannelOptions) => HealthClient)
  | undefined;

function healthClient(address: string): HealthClient {
  healthClientCtor ??=
    (grpc.loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true })) as never as {
      grpc: { health: { v1: { Health: typeof healthClientCtor } } };
    }).grpc.health.v1.Health;
  // A local subchannel pool: closing this client closes its connection, instead of leaving it in
  // grpc-js's global pool, where a peer's later death would still reach this process.
  return new healthClientCtor!(address, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
  });
}

function check(health: HealthClient, service: string, timeoutMs: number): Promise<string> {
  return new Promise<string>((resolve, reject) =>
    health.check({ service }, { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err) reject(fromServiceError(err));
      else {resolve(
          typeof res!.status === "number" ? SERVING_STATUS_NAMES[res!.status] ?? "UNKNOWN" : res!.status,
        );}
    })
  );
}

/** grpc.health.v1 Check against `address`: "SERVING", "NOT_SERVING", "UNKNOWN", or throws. */
export async function checkHealth(address: string, service = "", timeoutMs = 1000): Promise<string> {
  const health = healthClient(address);
  try {
    return await check(health, service, timeoutMs);
  } finally {
    health.close();
  }
}

/**
 * Repeated health checks of one server over one connection, kept open until close(). A supervisor
 * probing its children this way opens no connection per check: every connection a client closes
 * sends its server a GOAWAY, on which Deno's node:http2 can abort the server (denoland/deno#36788).
 */
export class HealthProbe {
  private readonly health: HealthClient;

  constructor(readonly address: string) {
    this.health = healthClient(address);
  }

  check(service = "", timeoutMs = 1000): Promise<string> {
    return check(this.health, service, timeoutMs);
  }

  close(): void {
    this.health.close();
  }
}
