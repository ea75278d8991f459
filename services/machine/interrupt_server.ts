// InterruptService's RPC surface: decode, validate, call the interrupt hub, encode. The
// controller names its arguments as its own API does; errors here name the contract's fields.
import { type InterruptService, Sharing as ProtoSharing } from "../../gen/astra/machine/v1/interrupts_pb.ts";
import { AstraError, invalidArgument, notFound } from "../../lib/errors.ts";
import type { ServiceImpl } from "../../lib/rpc.ts";
import type { InterruptDelivery, Sharing } from "./devices/intc.ts";
import type { InterruptHub } from "./interrupts.ts";

/** Runs `call`, renaming the argument an error names from the controller's API to the contract's. */
function asFields<T>(renamed: Record<string, string>, call: () => T): T {
  try {
    return call();
  } catch (err) {
    if (err instanceof AstraError && renamed[err.detail.argument]) {
      err.detail.argument = renamed[err.detail.argument];
    }
    throw err;
  }
}

function sharingOf(value: ProtoSharing): Sharing {
  switch (value) {
    case ProtoSharing.SHARED:
      return "shared";
    case ProtoSharing.EXCLUSIVE:
      return "exclusive";
    default:
      throw invalidArgument("sharing", `sharing must be SHARED or EXCLUSIVE, not ${value}`);
  }
}

/** A uint64 ID as a number; one beyond every ID ever handed out names nothing. */
function idOf(value: bigint, field: string, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw notFound(field, `no ${what} ${value}`);
  return Number(value);
}

/** An empty list in a request means all of them (every CPU, every source in use). */
function allIfEmpty(list: number[]): number[] | undefined {
  return list.length === 0 ? undefined : list;
}

function encodeDelivery(d: InterruptDelivery) {
  return {
    deliveryId: BigInt(d.deliveryId),
    irq: d.irq,
    cpu: d.cpu,
    priority: d.priority,
    nestingDepth: d.nestingDepth,
    timebase: d.timebase,
    software: d.software,
  };
}

export function interruptServiceImpl(interrupts: InterruptHub): ServiceImpl<typeof InterruptService> {
  return {
    registerHandler: (req) => ({
      handlerId: BigInt(interrupts.register(req.irq, req.name, sharingOf(req.sharing))),
    }),
    unregisterHandler: (req) => {
      asFields(
        { handlerId: "handler_id" },
        () => interrupts.unregister(idOf(req.handlerId, "handler_id", "interrupt handler")),
      );
      return {};
    },
    async *handlerStream(requests, ctx) {
      const incoming = requests[Symbol.asyncIterator]();
      const first = await incoming.next();
      if (first.done || first.value.message.case !== "attach") {
        throw invalidArgument("attach", "a handler stream starts with an attach naming its handler");
      }
      const session = interrupts.attach(
        idOf(first.value.message.value.handlerId, "handler_id", "interrupt handler"),
      );
      // Completions arrive while deliveries go out; a protocol error or the request side ending
      // ends the handler, which closes its deliveries and so ends the loop below.
      let failure: unknown;
      (async () => {
        for (let next = await incoming.next(); !next.done; next = await incoming.next()) {
          const message = next.value.message;
          if (message.case !== "completion") {
            throw invalidArgument("attach", "a handler stream attaches once, in its first message");
          }
          session.complete({
            deliveryId: idOf(message.value.deliveryId, "completion.delivery_id", "interrupt delivery"),
            handled: message.value.handled,
            endOfInterrupt: message.value.endOfInterrupt,
          });
        }
      })().then(session.end, (err) => {
        failure = err;
        session.end();
      });
      const onAbort = () => session.end();
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        for await (const delivery of session.deliveries) yield { delivery: encodeDelivery(delivery) };
        if (failure) throw failure;
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        session.end();
        incoming.return?.().catch(() => {});
      }
    },
    acknowledge: (req) => {
      interrupts.acknowledge(req.irq, req.cpu);
      return {};
    },
    mask: (req) => {
      interrupts.mask(req.irq);
      return {};
    },
    unmask: (req) => {
      interrupts.unmask(req.irq);
      return {};
    },
    enable: (req) => {
      interrupts.enable(allIfEmpty(req.cpus));
      return {};
    },
    disable: (req) => {
      interrupts.disable(allIfEmpty(req.cpus));
      return {};
    },
    disableSave: (req) => ({ wasEnabled: interrupts.disableSave(req.cpu) }),
    restore: (req) => {
      interrupts.restore(req.cpu, req.enabled);
      return {};
    },
    raise: (req) => ({ delivered: interrupts.raise(req.irq) }),
    setPriority: (req) => {
      asFields(
        { cpu: "target_cpu", targetCpu: "target_cpu" },
        () => interrupts.setPriority(req.irq, req.priority, req.targetCpu),
      );
      return {};
    },
    setStormThreshold: (req) => {
      asFields(
        { raisesPerSecond: "raises_per_second" },
        () => interrupts.setStormThreshold(req.irq, req.raisesPerSecond),
      );
      return {};
    },
    getStatistics: (req) => ({
      interrupts: asFields({ irq: "irqs" }, () => interrupts.statistics(allIfEmpty(req.irqs))).map((s) => ({
        irq: s.irq,
        handlers: s.handlers,
        priority: s.priority,
        targetCpu: s.targetCpu,
        masked: s.masked,
        stormMasked: s.stormMasked,
        stormThreshold: s.stormThreshold,
        pending: s.pending,
        inService: s.inService,
        count: BigInt(s.count),
        unhandled: BigInt(s.unhandled),
        timeInHandlerNanos: s.timeInHandlerNanos,
        maxTimeInHandlerNanos: s.maxTimeInHandlerNanos,
        lastDeliveryTimebase: s.lastDeliveryTimebase,
        lastDeliveryUnixNanos: s.lastDeliveryUnixNanos,
        nested: BigInt(s.nested),
        storms: BigInt(s.storms),
        raises: BigInt(s.raises),
        coalesced: BigInt(s.coalesced),
      })),
      cpus: interrupts.cpuStates(),
      spurious: BigInt(interrupts.spurious),
    }),
  };
}
