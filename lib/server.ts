// Binding a service implementation to its contract: the one place where the server-side
// interceptors wrap a handler. Both transports serve BoundServices; a handler's replies are
// message init shapes, which the transport that carries them makes into messages.
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { unimplemented } from "./errors.ts";
import { serverCall } from "./interceptors.ts";
import { type CallContext, methodPath, type ServiceImpl } from "./rpc.ts";

export interface BoundMethod {
  readonly method: DescMethod;
  /**
   * Unary/client-streaming: a promise of the reply; server/bidi streaming: the replies (messages
   * or their init shapes).
   */
  call(input: unknown, ctx: CallContext): Promise<unknown> | AsyncIterable<unknown>;
}

export interface BoundService {
  /** The process-level service name ("pmm"), recorded in spans and error details. */
  readonly service: string;
  readonly desc: DescService;
  readonly methods: ReadonlyMap<string, BoundMethod>;
}

export function bindService<S extends DescService>(
  service: string,
  desc: S,
  impl: ServiceImpl<S>,
): BoundService {
  const methods = new Map<string, BoundMethod>();
  for (const method of desc.methods) {
    const handler = (impl as Record<string, unknown>)[method.localName];
    if (typeof handler !== "function") {
      throw new Error(`${service}: ${desc.typeName} has no handler for ${method.name}`);
    }
    const fn = handler.bind(impl) as (
      input: unknown,
      ctx: CallContext,
    ) => Promise<unknown> | AsyncIterable<unknown>;
    methods.set(methodPath(method), { method, call: (input, ctx) => serverCall(ctx, () => fn(input, ctx)) });
  }
  return { service, desc, methods };
}

/**
 * Handlers for RPCs whose work belongs to a later piece of work: each answers UNIMPLEMENTED and
 * names that work instead of inventing data. A service spreads this first and overrides what it
 * implements; `methods` limits it to some local method names.
 */
export function pendingMethods<S extends DescService>(
  desc: S,
  work: string,
  methods?: string[],
): ServiceImpl<S> {
  const impl: Record<string, unknown> = {};
  for (const method of desc.methods) {
    if (methods && !methods.includes(method.localName)) continue;
    impl[method.localName] = () => {
      throw unimplemented(method.name, work);
    };
  }
  return impl as ServiceImpl<S>;
}
