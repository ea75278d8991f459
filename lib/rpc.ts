// The typed RPC surface shared by both transports: what a service implements (ServiceImpl), what
// a caller holds (Client), and the Transport a client talks through. Method shapes come from the
// protoc-gen-es service descriptors, so a contract change is a compile error here.
import type { DescMethod, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { Context } from "@opentelemetry/api";
import { clientCall } from "./interceptors.ts";

export interface CallOptions {
  /** Cancels the call (CANCELLED / ECANCELED) when aborted. */
  signal?: AbortSignal;
  /** Deadline relative to now; DEADLINE_EXCEEDED / ETIMEDOUT when it passes. */
  timeoutMs?: number;
  /** Extra request metadata (lower-case keys). */
  metadata?: Record<string, string>;
  /**
   * Set by the client interceptor for an in-process call: the client span's context, which the
   * server continues from instead of W3C trace context in the metadata.
   */
  traceContext?: Context;
}

/** What a handler knows about the call it serves. */
export interface CallContext {
  /** The service process answering ("pmm", "machine", ...). */
  readonly service: string;
  readonly method: DescMethod;
  readonly metadata: Readonly<Record<string, string>>;
  /** Aborted when the caller cancels, the deadline passes or the server shuts down. */
  readonly signal: AbortSignal;
  /** Absolute deadline in epoch milliseconds, if the caller set one. */
  readonly deadline?: number;
  /** "in-process" or the remote address. */
  readonly peer: string;
  /** In-process calls: the caller's span context (otherwise it comes from the metadata). */
  readonly traceContext?: Context;
}

type In<M extends DescMethod> = MessageShape<M["input"]>;
type OutInit<M extends DescMethod> = MessageInitShape<M["output"]>;
type Out<M extends DescMethod> = MessageShape<M["output"]>;

export type MethodImpl<M extends DescMethod> = M["methodKind"] extends "unary"
  ? (req: In<M>, ctx: CallContext) => Promise<OutInit<M>> | OutInit<M>
  : M["methodKind"] extends "server_streaming" ? (req: In<M>, ctx: CallContext) => AsyncIterable<OutInit<M>>
  : M["methodKind"] extends "client_streaming"
    ? (reqs: AsyncIterable<In<M>>, ctx: CallContext) => Promise<OutInit<M>>
  : (reqs: AsyncIterable<In<M>>, ctx: CallContext) => AsyncIterable<OutInit<M>>;

/** A full implementation: every RPC of the contract must be present (later work throws UNIMPLEMENTED). */
export type ServiceImpl<S extends DescService> = { [K in keyof S["method"]]: MethodImpl<S["method"][K]> };

export type ClientMethod<M extends DescMethod> = M["methodKind"] extends "unary"
  ? (req?: MessageInitShape<M["input"]>, opts?: CallOptions) => Promise<Out<M>>
  : M["methodKind"] extends "server_streaming"
    ? (req?: MessageInitShape<M["input"]>, opts?: CallOptions) => AsyncIterable<Out<M>>
  : M["methodKind"] extends "client_streaming"
    ? (reqs: AsyncIterable<MessageInitShape<M["input"]>>, opts?: CallOptions) => Promise<Out<M>>
  : (reqs: AsyncIterable<MessageInitShape<M["input"]>>, opts?: CallOptions) => AsyncIterable<Out<M>>;

export type Client<S extends DescService> = { [K in keyof S["method"]]: ClientMethod<S["method"][K]> };

/**
 * Raw, untyped calls; the transport owns delivery, deadlines, cancellation and size limits. What
 * goes in (requests, and the replies of the services it serves) is a message or its init shape:
 * the transport makes the receiver's message of it, once (the wire encoding, or an in-process copy).
 */
export interface Transport {
  readonly kind: "in-process" | "grpc";
  unary(method: DescMethod, req: unknown, opts: CallOptions): Promise<unknown>;
  serverStream(method: DescMethod, req: unknown, opts: CallOptions): AsyncIterable<unknown>;
  clientStream(method: DescMethod, reqs: AsyncIterable<unknown>, opts: CallOptions): Promise<unknown>;
  bidiStream(method: DescMethod, reqs: AsyncIterable<unknown>, opts: CallOptions): AsyncIterable<unknown>;
  close(): void;
}

/** A typed client for `desc` over `transport`, with the client-side interceptors applied. */
export function client<S extends DescService>(desc: S, transport: Transport, caller = "client"): Client<S> {
  const out: Record<string, unknown> = {};
  const inProcess = transport.kind === "in-process";
  for (const method of desc.methods) {
    switch (method.methodKind) {
      case "unary":
        out[method.localName] = (req: unknown, opts: CallOptions = {}) =>
          clientCall(caller, method, opts, (o) => transport.unary(method, req ?? {}, o), inProcess);
        break;
      case "server_streaming":
        out[method.localName] = (req: unknown, opts: CallOptions = {}) =>
          clientCall(caller, method, opts, (o) => transport.serverStream(method, req ?? {}, o), inProcess);
        break;
      case "client_streaming":
        out[method.localName] = (reqs: AsyncIterable<unknown>, opts: CallOptions = {}) =>
          clientCall(caller, method, opts, (o) => transport.clientStream(method, reqs, o), inProcess);
        break;
      case "bidi_streaming":
        out[method.localName] = (reqs: AsyncIterable<unknown>, opts: CallOptions = {}) =>
          clientCall(caller, method, opts, (o) => transport.bidiStream(method, reqs, o), inProcess);
        break;
    }
  }
  return out as Client<S>;
}

/** "/astra.pmm.v1.PmmService/GetStatistics" — the gRPC path of a method. */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}
