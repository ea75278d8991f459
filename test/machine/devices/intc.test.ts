import { describe, expect, it } from "vitest";
import {
  InterruptController,
  type InterruptDelivery,
  type InterruptEvent,
  IRQ_COUNT,
  TIMEBASE_FREQUENCY,
} from "../../../services/machine/devices/intc.ts";
import { AstraError, Errno } from "../../../lib/errors.ts";

/** A controller on a clock the test moves by hand. */
function rig(cpus = 2, options: { stormThreshold?: number } = {}) {
  const clock = { now: 1_000_000n };
  const events: InterruptEvent[] = [];
  const intc = new InterruptController({
    cpus,
    clock: () => clock.now,
    wallClock: () => 1_700_000_000_000_000_000n + clock.now,
    defaultStormThreshold: options.stormThreshold,
    onEvent: (e) => events.push(e),
  });
  return { intc, clock, events };
}

/** A handler that records deliveries and leaves completing them to the test. */
function recorder(
  intc: InterruptController,
  irq: number,
  name: string,
  sharing: "shared" | "exclusive" = "shared",
) {
  const deliveries: InterruptDelivery[] = [];
  const id = intc.register({ irq, name, sharing, deliver: (d) => deliveries.push(d) });
  return { id, deliveries };
}

function errorOf(fn: () => unknown): AstraError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AstraError);
    return e as AstraError;
  }
  throw new Error("expected an AstraError");
}

describe("interrupt controller: registration", () => {
  it("keeps an exclusive handler alone and lets shared handlers share", () => {
    const { intc } = rig();
    intc.register({ irq: 5, name: "disk", sharing: "exclusive", deliver: () => {} });
    expect(
      errorOf(() => intc.register({ irq: 5, name: "other", sharing: "shared", deliver: () => {} })).errno,
    )
      .toBe(Errno.EBUSY);
    expect(
      errorOf(() => intc.register({ irq: 5, name: "other", sharing: "exclusive", deliver: () => {} })).errno,
    )
      .toBe(Errno.EBUSY);

    intc.register({ irq: 6, name: "a", sharing: "shared", deliver: () => {} });
    intc.register({ irq: 6, name: "b", sharing: "shared", deliver: () => {} });
    expect(errorOf(() => intc.register({ irq: 6, name: "c", sharing: "exclusive", deliver: () => {} })).errno)
      .toBe(Errno.EBUSY);
    expect(intc.statistics([6])[0].handlers).toEqual(["a", "b"]);
  });

  it("unmasks a source with its first handler and masks it again with its last", () => {
    const { intc } = rig();
    expect(intc.statistics([9])[0].masked).toBe(true);
    const a = intc.register({ irq: 9, name: "a", sharing: "shared", deliver: () => {} });
    const b = intc.register({ irq: 9, name: "b", sharing: "shared", deliver: () => {} });
    expect(intc.statistics([9])[0].masked).toBe(false);
    intc.unregister(a);
    expect(intc.statistics([9])[0].masked).toBe(false);
    intc.unregister(b);
    expect(intc.statistics([9])[0].masked).toBe(true);
    expect(errorOf(() => intc.unregister(b)).errno).toBe(Errno.ENOENT);
  });

  it("refuses sources and CPUs that do not exist", () => {
    const { intc } = rig();
    expect(errorOf(() => intc.raise(IRQ_COUNT)).errno).toBe(Errno.EINVAL);
    expect(errorOf(() => intc.setPriority(3, 256, 0)).errno).toBe(Errno.EINVAL);
    expect(errorOf(() => intc.setPriority(3, 10, 2)).errno).toBe(Errno.EINVAL);
    expect(errorOf(() => intc.enable([7])).errno).toBe(Errno.EINVAL);
  });
});

describe("interrupt controller: delivery", () => {
  it("delivers a shared interrupt to every handler and keeps it in service until all end it", () => {
    const { intc } = rig();
    const a = recorder(intc, 12, "a");
    const b = recorder(intc, 12, "b");
    expect(intc.raise(12)).toBe(true);
    expect(a.deliveries).toHaveLength(1);
    expect(b.deliveries).toHaveLength(1);
    expect(a.deliveries[0]).toMatchObject({ irq: 12, cpu: 0, nestingDepth: 0, software: false });

    intc.complete(a.deliveries[0].deliveryId, { handled: false, endOfInterrupt: true });
    expect(intc.statistics([12])[0].inService).toBe(true);
    // Raised again while in service: pending, delivered after the end of interrupt.
    expect(intc.raise(12)).toBe(false);
    intc.complete(b.deliveries[0].deliveryId, { handled: true, endOfInterrupt: true });
    expect(a.deliveries).toHaveLength(2);
    const stats = intc.statistics([12])[0];
    expect(stats.count).toBe(2);
    expect(stats.unhandled).toBe(0);
  });

  it("counts and reports an interrupt no handler claims", () => {
    const { intc, events } = rig();
    const a = recorder(intc, 20, "a");
    const b = recorder(intc, 20, "b");
    intc.raise(20);
    intc.complete(a.deliveries[0].deliveryId, { handled: false, endOfInterrupt: true });
    intc.complete(b.deliveries[0].deliveryId, { handled: false, endOfInterrupt: true });
    expect(intc.statistics([20])[0].unhandled).toBe(1);
    expect(events).toContainEqual({ kind: "unhandled", irq: 20, cpu: 0, handlers: ["a", "b"] });
  });

  it("counts a raise on a source without handlers as spurious, and it stays latched", () => {
    const { intc, events } = rig();
    expect(intc.raise(40)).toBe(false);
    expect(intc.spurious).toBe(1);
    expect(events).toContainEqual({ kind: "spurious", irq: 40 });
    expect(intc.statistics([40])[0].pending).toBe(true);
    const h = recorder(intc, 40, "late");
    expect(h.deliveries).toHaveLength(1);
  });

  it("latches a masked source as pending and delivers it once on unmask", () => {
    const { intc } = rig();
    const h = recorder(intc, 30, "x");
    intc.mask(30);
    intc.raise(30);
    intc.raise(30);
    expect(h.deliveries).toHaveLength(0);
    const stats = intc.statistics([30])[0];
    expect(stats.pending).toBe(true);
    expect(stats.coalesced).toBe(1);
    intc.unmask(30);
    expect(h.deliveries).toHaveLength(1);
    expect(intc.statistics([30])[0].pending).toBe(false);
  });

  it("routes a source to its target CPU", () => {
    const { intc } = rig(4);
    const h = recorder(intc, 50, "x");
    intc.setPriority(50, 90, 3);
    intc.raise(50);
    expect(h.deliveries[0].cpu).toBe(3);
    expect(intc.cpuStates()[3].inService).toEqual([50]);
    expect(intc.cpuStates()[0].inService).toEqual([]);
  });

  it("nests a higher priority on top of a lower one, holds lower ones, and resumes in order", () => {
    const { intc } = rig();
    const low = recorder(intc, 1, "low");
    const high = recorder(intc, 2, "high");
    const lower = recorder(intc, 3, "lower");
    const equal = recorder(intc, 4, "equal");
    intc.setPriority(1, 50, 0);
    intc.setPriority(2, 200, 0);
    intc.setPriority(3, 10, 0);
    intc.setPriority(4, 50, 0);

    intc.raise(1);
    expect(intc.raise(2)).toBe(true);
    expect(high.deliveries[0].nestingDepth).toBe(1);
    expect(intc.raise(3)).toBe(false);
    expect(intc.raise(4)).toBe(false);
    expect(intc.cpuStates()[0].inService).toEqual([1, 2]);

    intc.complete(high.deliveries[0].deliveryId, { handled: true, endOfInterrupt: true });
    // Back to the low one: nothing at or below its priority may run yet.
    expect(lower.deliveries).toHaveLength(0);
    expect(equal.deliveries).toHaveLength(0);
    intc.complete(low.deliveries[0].deliveryId, { handled: true, endOfInterrupt: true });
    // The waiting ones run highest first: 4 (priority 50), then 3 (10) once 4 has ended.
    expect(equal.deliveries).toHaveLength(1);
    expect(lower.deliveries).toHaveLength(0);
    intc.complete(equal.deliveries[0].deliveryId, { handled: true, endOfInterrupt: true });
    expect(lower.deliveries).toHaveLength(1);
    expect(intc.statistics([2])[0].nested).toBe(1);
    expect(intc.cpuStates()[0].maxNestingDepth).toBe(2);
  });

  it("keeps a source in service after a completion without EOI until acknowledged out of band", () => {
    const { intc } = rig();
    const h = recorder(intc, 7, "x");
    intc.raise(7);
    intc.complete(h.deliveries[0].deliveryId, { handled: true, endOfInterrupt: false });
    intc.raise(7);
    expect(h.deliveries).toHaveLength(1);
    expect(intc.endOfInterrupt(7, 0)).toBe(true);
    expect(h.deliveries).toHaveLength(2);
    expect(intc.endOfInterrupt(7, 1)).toBe(false);
  });

  it("lets a handler complete from inside its delivery callback", () => {
    const { intc } = rig();
    let seen = 0;
    intc.register({
      irq: 8,
      name: "inline",
      sharing: "exclusive",
      deliver: (d) => {
        seen++;
        intc.complete(d.deliveryId, { handled: true, endOfInterrupt: true });
      },
    });
    expect(intc.raise(8)).toBe(true);
    expect(intc.raise(8)).toBe(true);
    expect(seen).toBe(2);
    expect(intc.statistics([8])[0].inService).toBe(false);
  });
});

describe("interrupt controller: enable, disable and polling", () => {
  it("holds interrupts while a CPU is disabled and restores the saved state", () => {
    const { intc } = rig();
    const h = recorder(intc, 11, "x");
    expect(intc.disableSave(0)).toBe(true);
    expect(intc.disableSave(0)).toBe(false);
    intc.raise(11);
    expect(h.deliveries).toHaveLength(0);
    intc.restore(0, false);
    expect(h.deliveries).toHaveLength(0);
    intc.restore(0, true);
    expect(h.deliveries).toHaveLength(1);

    intc.disable();
    expect(intc.cpuStates().map((c) => c.enabled)).toEqual([false, false]);
    intc.enable([1]);
    expect(intc.cpuStates().map((c) => c.enabled)).toEqual([false, true]);
  });

  it("acknowledge takes the most favoured pending source and EOI lets the next one in", () => {
    const { intc } = rig();
    recorder(intc, 60, "a");
    recorder(intc, 61, "b");
    intc.setPriority(60, 20, 0);
    intc.setPriority(61, 120, 0);
    intc.disable([0]);
    intc.raise(60);
    intc.raise(61);
    expect(intc.acknowledge(0)).toBe(61);
    expect(intc.acknowledge(0)).toBe(null);
    intc.endOfInterrupt(61, 0);
    expect(intc.acknowledge(0)).toBe(60);
    expect(intc.cpuStates()[0].inService).toEqual([60]);
    expect(intc.statistics([60, 61]).map((s) => s.count)).toEqual([1, 1]);
  });
});

describe("interrupt controller: statistics and storms", () => {
  it("measures time in handler, last delivery and counts", () => {
    const { intc, clock } = rig();
    const h = recorder(intc, 15, "timed");
    intc.raise(15);
    const deliveredAt = clock.now;
    clock.now += 5_000n;
    intc.complete(h.deliveries[0].deliveryId, { handled: true, endOfInterrupt: true });
    intc.raise(15);
    clock.now += 1_000n;
    intc.complete(h.deliveries[1].deliveryId, { handled: true, endOfInterrupt: true });
    const s = intc.statistics([15])[0];
    expect(s.count).toBe(2);
    expect(s.timeInHandlerNanos).toBe(6_000n);
    expect(s.maxTimeInHandlerNanos).toBe(5_000n);
    expect(s.lastDeliveryUnixNanos).toBe(1_700_000_000_000_000_000n + deliveredAt + 5_000n);
    expect(s.lastDeliveryTimebase).toBe(((deliveredAt + 5_000n - 1_000_000n) * 512n) / 1000n);
  });

  it("masks a source that storms while unacknowledged, reports it, and unmask clears it", () => {
    const { intc, clock, events } = rig(1, { stormThreshold: 10 });
    const h = recorder(intc, 33, "noisy");
    intc.raise(33); // delivered and left in service
    for (let i = 0; i < 10; i++) intc.raise(33);
    expect(intc.statistics([33])[0].stormMasked).toBe(false);
    intc.raise(33);
    const s = intc.statistics([33])[0];
    expect(s.stormMasked).toBe(true);
    expect(s.masked).toBe(true);
    expect(s.storms).toBe(1);
    expect(events).toContainEqual({ kind: "storm", irq: 33, raises: 11, threshold: 10 });

    intc.complete(h.deliveries[0].deliveryId, { handled: true, endOfInterrupt: true });
    expect(h.deliveries).toHaveLength(1);
    intc.unmask(33);
    expect(intc.statistics([33])[0].stormMasked).toBe(false);
    expect(h.deliveries).toHaveLength(2);

    // The same number of raises spread over more than a second is no storm.
    for (let i = 0; i < 8; i++) intc.raise(33);
    clock.now += 1_500_000_000n;
    for (let i = 0; i < 8; i++) intc.raise(33);
    expect(intc.statistics([33])[0].storms).toBe(1);
  });

  it("never storm-masks a source whose detection is off", () => {
    const { intc } = rig(1, { stormThreshold: 3 });
    recorder(intc, 34, "x");
    intc.setStormThreshold(34, 0);
    for (let i = 0; i < 100; i++) intc.raise(34);
    expect(intc.statistics([34])[0].storms).toBe(0);
  });
});

describe("interrupt controller: timebase and decrementers", () => {
  it("runs the timebase at 512 MHz from the injected clock", () => {
    const { intc, clock } = rig();
    expect(intc.timebase()).toBe(0n);
    clock.now += 1_000_000_000n;
    expect(intc.timebase()).toBe(BigInt(TIMEBASE_FREQUENCY));
    clock.now += 1_000n;
    expect(intc.timebase()).toBe(512_000_512n);
  });

  it("counts DEC down, raises the CPU's decrementer at zero, and keeps raising until rewritten", () => {
    const { intc, clock } = rig(2);
    const irq1 = intc.decrementerIrq(1);
    expect(irq1).toBe(IRQ_COUNT - 1);
    const h = recorder(intc, irq1, "tick");
    expect(errorOf(() => intc.setPriority(irq1, 100, 0)).errno).toBe(Errno.EINVAL);

    intc.setDecrementer(1, 1023);
    clock.now += 1_000n; // 512 ticks
    expect(intc.decrementer(1)).toBe(511);
    expect(intc.pollTimers()).toEqual([]);
    // DEC raises once it goes from 0 to -1: 512 more ticks is 1000 ns.
    expect(intc.nanosUntilNextDecrementer()).toBe(1_000n);
    clock.now += 1_000n;
    expect(intc.decrementer(1)).toBe(-1);
    expect(intc.pollTimers()).toEqual([1]);
    expect(h.deliveries[0].cpu).toBe(1);
    // In service: polling again does not raise it twice.
    expect(intc.pollTimers()).toEqual([]);
    intc.complete(h.deliveries[0].deliveryId, { handled: true, endOfInterrupt: true });
    expect(intc.pollTimers()).toEqual([1]);
    intc.complete(h.deliveries[1].deliveryId, { handled: true, endOfInterrupt: true });
    intc.setDecrementer(1, 1_000_000);
    expect(intc.pollTimers()).toEqual([]);
    expect(h.deliveries).toHaveLength(2);
  });
});
