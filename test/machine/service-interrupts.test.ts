// InterruptService through the machine's contract, over both transports: registration with
// sharing rules, HandlerStream's protocol, masking, priority nesting, enable/disable with save and
// restore, acknowledge, storms and statistics. Then the interrupt hub on its own: the decrementer
// timer and the log lines it writes for storms and unhandled interrupts.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Sharing } from "../../gen/astra/machine/v1/interrupts_pb.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { TIMEBASE_FREQUENCY } from "../../services/machine/devices/intc.ts";
import { InterruptHub } from "../../services/machine/interrupts.ts";
import {
  failure,
  HandlerClient,
  type InterruptClient,
  KINDS,
  type MachineRig,
  startMachine,
  StreamReader,
} from "./service-rig.ts";

describe.each(KINDS)("interrupts over %s", (kind) => {
  let rig: MachineRig;
  let irqs: InterruptClient;
  const open: HandlerClient[] = [];

  /** A handler on a software IRQ, closed after the test. */
  async function handler(irq: number, name: string, sharing: "shared" | "exclusive" = "exclusive") {
    const h = await HandlerClient.open(irqs, irq, name, sharing);
    open.push(h);
    return h;
  }

  async function stats(irq: number) {
    return (await irqs.getStatistics({ irqs: [irq] })).interrupts[0];
  }

  beforeAll(async () => {
    rig = await startMachine(kind);
    irqs = rig.interrupts;
  });

  afterEach(async () => {
    for (const h of open.splice(0)) {
      h.close();
      await h.reader.ended();
    }
  });

  afterAll(async () => {
    await rig.stop();
  });

  it("keeps an exclusive handler alone, lets shared ones share, and validates registrations", async () => {
    await handler(100, "solo");
    await failure(
      irqs.registerHandler({ irq: 100, name: "b", sharing: Sharing.SHARED }),
      Code.FAILED_PRECONDITION,
      Errno.EBUSY,
      "irq",
    );
    await failure(
      irqs.registerHandler({ irq: 100, name: "b", sharing: Sharing.EXCLUSIVE }),
      Code.FAILED_PRECONDITION,
      Errno.EBUSY,
      "irq",
    );
    const a = await handler(101, "a", "shared");
    const b = await handler(101, "b", "shared");
    await failure(
      irqs.registerHandler({ irq: 101, name: "c", sharing: Sharing.EXCLUSIVE }),
      Code.FAILED_PRECONDITION,
      Errno.EBUSY,
      "irq",
    );
    expect((await stats(101)).handlers).toEqual(["a", "b"]);

    // Every handler of a shared source gets each delivery; one claim is enough.
    expect((await irqs.raise({ irq: 101 })).delivered).toBe(true);
    const [da, db] = [await a.next(), await b.next()];
    expect(da.software && db.software).toBe(true);
    a.complete(da, { handled: false });
    b.complete(db, { handled: true });
    await irqs.raise({ irq: 101 });
    a.complete(await a.next(), { handled: false });
    b.complete(await b.next(), { handled: false });
    await expect.poll(async () => (await stats(101)).inService).toBe(false);
    const s = await stats(101);
    expect({ count: s.count, unhandled: s.unhandled }).toEqual({ count: 2n, unhandled: 1n });

    await failure(
      irqs.registerHandler({ irq: 256, name: "x", sharing: Sharing.SHARED }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "irq",
    );
    await failure(
      irqs.registerHandler({ irq: 102, name: "x" }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "sharing",
    );
    await failure(
      irqs.registerHandler({ irq: 102, name: "", sharing: Sharing.SHARED }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "name",
    );
    await failure(
      irqs.unregisterHandler({ handlerId: 999_999n }),
      Code.NOT_FOUND,
      Errno.ENOENT,
      "handler_id",
    );
  });

  it("latches a masked source as pending and delivers it once on unmask", async () => {
    const h = await handler(103, "masked");
    await irqs.mask({ irq: 103 });
    expect((await irqs.raise({ irq: 103 })).delivered).toBe(false);
    expect((await irqs.raise({ irq: 103 })).delivered).toBe(false);
    await h.reader.nothingFor(30);
    expect(await stats(103)).toMatchObject({ masked: true, pending: true, raises: 2n, coalesced: 1n });
    await irqs.unmask({ irq: 103 });
    h.complete(await h.next());
    await h.reader.nothingFor(30);
    expect(await stats(103)).toMatchObject({ masked: false, pending: false, count: 1n });
  });

  it("nests a higher priority on top of a lower one and holds lower ones until it ends", async () => {
    const low = await handler(104, "low");
    const high = await handler(105, "high");
    const later = await handler(106, "later");
    await irqs.setPriority({ irq: 104, priority: 10, targetCpu: 0 });
    await irqs.setPriority({ irq: 105, priority: 200, targetCpu: 0 });
    await irqs.setPriority({ irq: 106, priority: 10, targetCpu: 0 });

    await irqs.raise({ irq: 104 });
    const d104 = await low.next();
    expect(d104.nestingDepth).toBe(0);
    expect((await irqs.raise({ irq: 105 })).delivered).toBe(true);
    const d105 = await high.next();
    expect({ depth: d105.nestingDepth, priority: d105.priority }).toEqual({ depth: 1, priority: 200 });
    expect((await irqs.raise({ irq: 106 })).delivered).toBe(false);
    const { cpus } = await irqs.getStatistics({ irqs: [104] });
    expect(cpus[0].inService).toEqual([104, 105]);

    high.complete(d105);
    await later.reader.nothingFor(30);
    low.complete(d104);
    const d106 = await later.next();
    expect(d106.nestingDepth).toBe(0);
    later.complete(d106);
    expect((await stats(105)).nested).toBe(1n);
    expect((await irqs.getStatistics({ irqs: [104] })).cpus[0].maxNestingDepth).toBeGreaterThanOrEqual(2);

    // Retargeted, a source is delivered on its new CPU.
    await irqs.setPriority({ irq: 104, priority: 10, targetCpu: 1 });
    await irqs.raise({ irq: 104 });
    const moved = await low.next();
    expect(moved.cpu).toBe(1);
    low.complete(moved);

    await failure(
      irqs.setPriority({ irq: 104, priority: 256, targetCpu: 0 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "priority",
    );
    await failure(
      irqs.setPriority({ irq: 104, priority: 1, targetCpu: 2 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "target_cpu",
    );
    // A decrementer belongs to its CPU.
    await failure(
      irqs.setPriority({ irq: rig.devices.decrementers[0], priority: 1, targetCpu: 1 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "target_cpu",
    );
  });

  it("holds interrupts while a CPU is disabled, restores saved state, and acknowledges out of band", async () => {
    const h = await handler(107, "held");
    await irqs.disable({ cpus: [0] });
    expect((await irqs.raise({ irq: 107 })).delivered).toBe(false);
    expect((await irqs.disableSave({ cpu: 0 })).wasEnabled).toBe(false);
    await irqs.restore({ cpu: 0, enabled: false });
    await h.reader.nothingFor(30);
    await irqs.enable({});
    const d = await h.next();
    expect((await irqs.disableSave({ cpu: 0 })).wasEnabled).toBe(true);
    await irqs.restore({ cpu: 0, enabled: true });

    // Completed without EOI, the source stays in service until acknowledged.
    h.complete(d, { endOfInterrupt: false });
    await expect.poll(async () => (await stats(107)).count).toBe(1n);
    expect((await stats(107)).inService).toBe(true);
    await irqs.acknowledge({ irq: 107, cpu: 0 });
    expect((await stats(107)).inService).toBe(false);
    await failure(irqs.acknowledge({ irq: 107, cpu: 0 }), Code.FAILED_PRECONDITION, Errno.EINVAL, "irq");

    // Acknowledge may also overtake a completion still to come: the late completion is harmless.
    await irqs.raise({ irq: 107 });
    const overtaken = await h.next();
    await irqs.acknowledge({ irq: 107, cpu: 0 });
    h.complete(overtaken);
    await irqs.raise({ irq: 107 });
    h.complete(await h.next());

    await failure(irqs.enable({ cpus: [5] }), Code.INVALID_ARGUMENT, Errno.EINVAL, "cpus");
    await failure(irqs.disable({ cpus: [0, 9] }), Code.INVALID_ARGUMENT, Errno.EINVAL, "cpus");
    await failure(irqs.disableSave({ cpu: 2 }), Code.INVALID_ARGUMENT, Errno.EINVAL, "cpu");
    await failure(irqs.acknowledge({ irq: 300, cpu: 0 }), Code.INVALID_ARGUMENT, Errno.EINVAL, "irq");
  });

  it("masks a storming source, reports it, and lets Unmask clear it", async () => {
    const h = await handler(108, "stormy");
    await irqs.setStormThreshold({ irq: 108, raisesPerSecond: 5 });
    await irqs.raise({ irq: 108 });
    const first = await h.next();
    for (let i = 0; i < 7; i++) await irqs.raise({ irq: 108 });
    expect(await stats(108)).toMatchObject({
      stormMasked: true,
      masked: true,
      storms: 1n,
      stormThreshold: 5,
    });
    h.complete(first);
    await h.reader.nothingFor(30);
    await irqs.unmask({ irq: 108 });
    h.complete(await h.next());
    expect(await stats(108)).toMatchObject({ stormMasked: false, masked: false });

    await failure(
      irqs.setStormThreshold({ irq: 256, raisesPerSecond: 5 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "irq",
    );
  });

  it("counts interrupts on sources without handlers", async () => {
    const before = (await irqs.getStatistics({})).spurious;
    await irqs.raise({ irq: 109 });
    expect((await irqs.getStatistics({})).spurious).toBe(before + 1n);
    expect(await stats(109)).toMatchObject({ pending: true, masked: true, raises: 1n, count: 0n });
    // Unmasked with nobody to take it, it is delivered to no one and counted as unhandled.
    await irqs.unmask({ irq: 109 });
    expect(await stats(109)).toMatchObject({ pending: false, count: 1n, unhandled: 1n });
    await irqs.mask({ irq: 109 });
    const listed = (await irqs.getStatistics({})).interrupts.map((s) => s.irq);
    expect(listed).toContain(109);
    await failure(irqs.getStatistics({ irqs: [256] }), Code.INVALID_ARGUMENT, Errno.EINVAL, "irqs");
  });

  it("holds deliveries for a handler until its stream attaches, and ends the handler with its stream", async () => {
    const { handlerId } = await irqs.registerHandler({ irq: 110, name: "late", sharing: Sharing.EXCLUSIVE });
    await irqs.raise({ irq: 110 });
    const h = new HandlerClient(irqs, handlerId);
    open.push(h);
    const d = await h.next();
    expect(d.irq).toBe(110);
    h.complete(d);

    // A second stream for the same handler is refused; the first keeps working.
    const twin = new HandlerClient(irqs, handlerId);
    const ended = await twin.reader.ended();
    expect(ended.error).toBeInstanceOf(AstraError);
    expect((ended.error as AstraError).code).toBe(Code.ALREADY_EXISTS);
    expect((ended.error as AstraError).errno).toBe(Errno.EBUSY);
    await irqs.raise({ irq: 110 });
    h.complete(await h.next());

    // Closing the request side ends the stream cleanly and unregisters the handler.
    h.close();
    expect((await h.reader.ended()).error).toBeUndefined();
    expect((await stats(110)).handlers).toEqual([]);
    await failure(irqs.unregisterHandler({ handlerId }), Code.NOT_FOUND, Errno.ENOENT, "handler_id");

    // UnregisterHandler ends the stream (once attached: a delivery proves it).
    const gone = await handler(111, "unregistered");
    await irqs.raise({ irq: 111 });
    await gone.next();
    await irqs.unregisterHandler({ handlerId: gone.handlerId });
    expect((await gone.reader.ended()).error).toBeUndefined();

    // Cancelling the call unregisters too.
    const { handlerId: cancelledId } = await irqs.registerHandler({
      irq: 112,
      name: "cancelled",
      sharing: Sharing.EXCLUSIVE,
    });
    const cancel = new AbortController();
    const cancelled = new HandlerClient(irqs, cancelledId, { signal: cancel.signal });
    await irqs.raise({ irq: 112 });
    await cancelled.next();
    cancel.abort();
    await cancelled.reader.ended();
    await expect.poll(async () => (await stats(112)).handlers).toEqual([]);
  });

  it("replaces a handler whose owner registers again under its name, as a restarted driver does", async () => {
    // The ghost of a driver whose process died while an interrupt was in service: its stream is
    // still open as far as the machine knows.
    const ghost = await handler(113, "storage:ahci0");
    await irqs.raise({ irq: 113 });
    const stuck = await ghost.next();
    expect((await stats(113)).inService).toBe(true);
    // Anyone else still finds the source held.
    await failure(
      irqs.registerHandler({ irq: 113, name: "storage:other", sharing: Sharing.EXCLUSIVE }),
      Code.FAILED_PRECONDITION,
      Errno.EBUSY,
      "irq",
    );
    const fresh = await handler(113, "storage:ahci0");
    expect(fresh.handlerId).not.toBe(ghost.handlerId);
    // The ghost is gone: its stream ended, its interrupt left service, its ID names nothing.
    expect((await ghost.reader.ended()).error).toBeUndefined();
    const after = await stats(113);
    expect(after.handlers).toEqual(["storage:ahci0"]);
    expect(after.inService).toBe(false);
    await failure(irqs.unregisterHandler({ handlerId: ghost.handlerId }), Code.NOT_FOUND, Errno.ENOENT);
    // The new handler gets the source's interrupts.
    await irqs.raise({ irq: 113 });
    const d = await fresh.next();
    expect(d.irq).toBe(113);
    expect(d.deliveryId).not.toBe(stuck.deliveryId);
    fresh.complete(d);
    await expect.poll(async () => (await stats(113)).inService).toBe(false);
    // A name on another source is another handler.
    const elsewhere = await handler(114, "storage:ahci0");
    expect((await stats(113)).handlers).toEqual(["storage:ahci0"]);
    expect((await stats(114)).handlers).toEqual(["storage:ahci0"]);
    elsewhere.close();
  });

  it("fails a stream that breaks the protocol, and unregisters its handler", async () => {
    const expectFailure = async (
      reader: StreamReader<unknown>,
      code: Code,
      errno: Errno,
      argument: string,
    ) => {
      const { error } = await reader.ended();
      expect(error).toBeInstanceOf(AstraError);
      const err = error as AstraError;
      expect({ code: err.code, errno: err.errno, argument: err.detail.argument }).toEqual({
        code,
        errno,
        argument,
      });
    };
    await expectFailure(
      new HandlerClient(irqs, 987_654n).reader,
      Code.NOT_FOUND,
      Errno.ENOENT,
      "handler_id",
    );
    await expectFailure(
      new StreamReader(irqs.handlerStream((async function* () {
        yield { message: { case: "completion" as const, value: { deliveryId: 1n } } };
      })())),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "attach",
    );

    const bogus = await handler(113, "bogus");
    bogus.send({ message: { case: "completion", value: { deliveryId: 424_242n, endOfInterrupt: true } } });
    await expectFailure(bogus.reader, Code.INVALID_ARGUMENT, Errno.EINVAL, "completion.delivery_id");
    expect((await stats(113)).handlers).toEqual([]);

    const twice = await handler(114, "twice");
    twice.send({ message: { case: "attach", value: { handlerId: twice.handlerId } } });
    await expectFailure(twice.reader, Code.INVALID_ARGUMENT, Errno.EINVAL, "attach");
    expect((await stats(114)).handlers).toEqual([]);
  });
});

describe("the interrupt hub", () => {
  function capture(): { log: Logger; lines: { msg: string; fields?: Record<string, unknown> }[] } {
    const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
    const keep = (msg: string, fields?: Record<string, unknown>) => lines.push({ msg, fields });
    return { log: { debug: keep, info: keep, warn: keep, error: keep }, lines };
  }

  it("fires a CPU's decrementer from the host timer, again while DEC stays negative", async () => {
    const { log } = capture();
    const hub = new InterruptHub({ cpus: 2, log });
    hub.start();
    try {
      const irq = hub.controller.decrementerIrq(1);
      const session = hub.attach(hub.register(irq, "tick", "exclusive"));
      const ticks = new StreamReader(session.deliveries);
      // 2 ms of timebase.
      hub.setDecrementer(1, TIMEBASE_FREQUENCY / 500);
      const first = await ticks.next(1000);
      expect({ irq: first.irq, cpu: first.cpu }).toEqual({ irq, cpu: 1 });
      expect(hub.controller.decrementer(1)).toBeLessThan(0);
      // Level-like: ended while DEC is still negative, it comes back at once.
      session.complete({ deliveryId: first.deliveryId, handled: true, endOfInterrupt: true });
      const second = await ticks.next(1000);
      // Rewritten to a long count first, it stays quiet.
      hub.setDecrementer(1, 0x7fff_ffff);
      session.complete({ deliveryId: second.deliveryId, handled: true, endOfInterrupt: true });
      await ticks.nothingFor(50);
      session.end();
      await ticks.ended();
    } finally {
      hub.stop();
    }
  });

  it("logs storms and unhandled interrupts, one line per second per source", () => {
    const { log, lines } = capture();
    const hub = new InterruptHub({ cpus: 1, log });
    hub.raise(7);
    hub.raise(7);
    expect(lines.map((l) => [l.msg, l.fields?.irq])).toEqual([[
      "interrupt raised on a source without handlers",
      7,
    ]]);
    hub.register(8, "quiet", "exclusive");
    hub.setStormThreshold(8, 2);
    for (let i = 0; i < 4; i++) hub.raise(8);
    expect(lines.at(-1)).toEqual({
      msg: "interrupt storm: source masked",
      fields: { irq: 8, raises: 3, threshold: 2 },
    });
    hub.stop();
  });
});
