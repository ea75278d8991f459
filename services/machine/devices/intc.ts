// The machine's interrupt controller (seed 1.6), modelled on the POWER presentation layer: every
// source has a priority (0 lowest, 255 highest), a target CPU and a mask; a CPU accepts the most
// favoured pending source whose priority beats everything it already has in service, so a
// higher-priority interrupt nests on top of a lower one and the lower one carries on once the
// nested one ends. Delivery to software goes through handlers registered per source; the
// controller measures their time in service, counts what nobody claimed, and masks a source that
// storms. It also keeps the timebase (512 MHz, as on POWER9) and each CPU's decrementer, whose
// interrupt is an ordinary per-CPU source here.
import process from "node:process";
import {
  AstraError,
  Code,
  Errno,
  failedPrecondition,
  invalidArgument,
  notFound,
} from "../../../lib/errors.ts";

/** Timebase ticks per second: POWER9's 512 MHz. */
export const TIMEBASE_FREQUENCY = 512_000_000;
/** Interrupt sources are numbered 0..IRQ_COUNT-1. */
export const IRQ_COUNT = 256;
export const MAX_PRIORITY = 255;
export const DEFAULT_PRIORITY = 128;
/** Decrementers outrank devices by default: the scheduler tick must get through a busy disk. */
export const DEFAULT_DECREMENTER_PRIORITY = 192;
/** Raises per second, while unacknowledged, that make a storm. */
export const DEFAULT_STORM_THRESHOLD = 100_000;

const NANOS_PER_SECOND = 1_000_000_000n;
const TIMEBASE_PER_SECOND = BigInt(TIMEBASE_FREQUENCY);

/** Nanoseconds from an arbitrary origin that never goes backwards. */
export type MonotonicClock = () => bigint;

/** What a device needs of the controller: a line to pulse. */
export interface InterruptSink {
  raise(irq: number): void;
}

export type Sharing = "shared" | "exclusive";

/** One interrupt given to one handler. */
export interface InterruptDelivery {
  deliveryId: number;
  handlerId: number;
  irq: number;
  cpu: number;
  priority: number;
  /** Interrupts in service on the CPU under this one (0: not nested). */
  nestingDepth: number;
  /** The timebase when the source was raised. */
  timebase: bigint;
  /** Raised by software (`raise(irq, { software: true })`) rather than by a device. */
  software: boolean;
}

export interface HandlerRegistration {
  irq: number;
  /** Who handles it, for statistics and logs. */
  name: string;
  sharing: Sharing;
  /** Called for every delivery; the handler answers later with `complete`. */
  deliver: (delivery: InterruptDelivery) => void;
}

export interface CompletionOptions {
  /** Whether the interrupt came from this handler's device (shared sources). */
  handled: boolean;
  /** The source leaves service once every handler that took it has sent end of interrupt. */
  endOfInterrupt: boolean;
}

/** Things worth a log line: the machine service logs them. */
export type InterruptEvent =
  | { kind: "storm"; irq: number; raises: number; threshold: number }
  | { kind: "unhandled"; irq: number; cpu: number; handlers: string[] }
  | { kind: "spurious"; irq: number };

export interface InterruptControllerOptions {
  cpus: number;
  clock?: MonotonicClock;
  /** Host Unix time in nanoseconds, for "last delivery" figures people read. */
  wallClock?: () => bigint;
  defaultPriority?: number;
  decrementerPriority?: number;
  defaultStormThreshold?: number;
  onEvent?: (event: InterruptEvent) => void;
}

export interface InterruptStatistics {
  irq: number;
  handlers: string[];
  priority: number;
  targetCpu: number;
  masked: boolean;
  stormMasked: boolean;
  stormThreshold: number;
  pending: boolean;
  inService: boolean;
  /** Deliveries (handler callbacks or `acknowledge`). */
  count: number;
  /** Deliveries no handler claimed, or that had no handler. */
  unhandled: number;
  timeInHandlerNanos: bigint;
  maxTimeInHandlerNanos: bigint;
  lastDeliveryTimebase: bigint;
  lastDeliveryUnixNanos: bigint;
  nested: number;
  storms: number;
  raises: number;
  /** Raises that found the source already pending and merged into it. */
  coalesced: number;
}

export interface CpuInterruptState {
  cpu: number;
  enabled: boolean;
  /** IRQs in service on the CPU, innermost last. */
  inService: number[];
  maxNestingDepth: number;
}

interface Handler {
  id: number;
  irq: number;
  name: string;
  sharing: Sharing;
  deliver: (delivery: InterruptDelivery) => void;
  /** Deliveries given to this handler and not yet completed. */
  open: Set<number>;
}

/** One acceptance of a source by a CPU: it stays in service until ended. */
interface ServiceEntry {
  irq: number;
  cpu: number;
  priority: number;
  /** Handlers that have not sent end of interrupt yet. */
  awaitingEoi: Set<number>;
  /** Deliveries not yet completed. */
  open: Set<number>;
  handled: boolean;
  handlerNames: string[];
  /** Accepted by `acknowledge`: only `endOfInterrupt` ends it. */
  polled: boolean;
}

interface OpenDelivery {
  id: number;
  handlerId: number;
  entry: ServiceEntry;
  deliveredAt: bigint;
}

interface Source {
  irq: number;
  priority: number;
  targetCpu: number;
  /** Decrementer sources belong to their CPU and cannot be retargeted. */
  pinned: boolean;
  masked: boolean;
  stormMasked: boolean;
  stormThreshold: number;
  pending: boolean;
  pendingTimebase: bigint;
  pendingSoftware: boolean;
  handlers: Handler[];
  stormWindowStart: bigint;
  stormWindowRaises: number;
  stats: {
    count: number;
    unhandled: number;
    timeInHandler: bigint;
    maxTimeInHandler: bigint;
    lastDeliveryTimebase: bigint;
    lastDeliveryUnixNanos: bigint;
    nested: number;
    storms: number;
    raises: number;
    coalesced: number;
  };
}

interface Cpu {
  enabled: boolean;
  /** In acceptance order; the CPU's current priority is the highest among them. */
  inService: ServiceEntry[];
  maxNestingDepth: number;
  /** The decrementer as last written, and the timebase at that moment. */
  decrementerValue: bigint;
  decrementerSetAt: bigint;
}

function defaultClock(): bigint {
  return process.hrtime.bigint();
}

function defaultWallClock(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

function checkPriority(priority: number): void {
  if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
    throw invalidArgument("priority", `priority ${priority} is not in 0..${MAX_PRIORITY}`);
  }
}

export class InterruptController implements InterruptSink {
  readonly cpuCount: number;
  readonly #clock: MonotonicClock;
  readonly #wallClock: () => bigint;
  readonly #epoch: bigint;
  readonly #onEvent: (event: InterruptEvent) => void;
  readonly #sources: Source[] = [];
  readonly #cpus: Cpu[] = [];
  readonly #handlers = new Map<number, Handler>();
  readonly #deliveries = new Map<number, OpenDelivery>();
  /** Sources with `pending` set, so presentation scans only those. */
  readonly #pending = new Set<Source>();
  #nextHandlerId = 1;
  #nextDeliveryId = 1;
  #spurious = 0;
  #dispatching = false;
  #dispatchAgain = false;

  constructor(options: InterruptControllerOptions) {
    const cpus = options.cpus;
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > IRQ_COUNT / 2) {
      throw invalidArgument("cpus", `the interrupt controller serves 1..${IRQ_COUNT / 2} CPUs, not ${cpus}`);
    }
    const defaultPriority = options.defaultPriority ?? DEFAULT_PRIORITY;
    const decrementerPriority = options.decrementerPriority ?? DEFAULT_DECREMENTER_PRIORITY;
    const stormThreshold = options.defaultStormThreshold ?? DEFAULT_STORM_THRESHOLD;
    checkPriority(defaultPriority);
    checkPriority(decrementerPriority);
    this.cpuCount = cpus;
    this.#clock = options.clock ?? defaultClock;
    this.#wallClock = options.wallClock ?? defaultWallClock;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#epoch = this.#clock();
    const firstDecrementer = IRQ_COUNT - cpus;
    for (let irq = 0; irq < IRQ_COUNT; irq++) {
      const decrementerCpu = irq - firstDecrementer;
      const pinned = decrementerCpu >= 0;
      this.#sources.push({
        irq,
        priority: pinned ? decrementerPriority : defaultPriority,
        targetCpu: pinned ? decrementerCpu : 0,
        pinned,
        masked: true,
        stormMasked: false,
        stormThreshold,
        pending: false,
        pendingTimebase: 0n,
        pendingSoftware: false,
        handlers: [],
        stormWindowStart: 0n,
        stormWindowRaises: 0,
        stats: {
          count: 0,
          unhandled: 0,
          timeInHandler: 0n,
          maxTimeInHandler: 0n,
          lastDeliveryTimebase: 0n,
          lastDeliveryUnixNanos: 0n,
          nested: 0,
          storms: 0,
          raises: 0,
          coalesced: 0,
        },
      });
    }
    for (let cpu = 0; cpu < cpus; cpu++) {
      // DEC starts at its largest positive value: the first tick comes ~4 s after power-on
      // unless the kernel programs it sooner, as on a real machine.
      this.#cpus.push({
        enabled: true,
        inService: [],
        maxNestingDepth: 0,
        decrementerValue: 0x7fff_ffffn,
        decrementerSetAt: 0n,
      });
    }
  }

  // ---- timebase and decrementers ----

  /** Timebase ticks since power-on. */
  timebase(): bigint {
    return ((this.#clock() - this.#epoch) * TIMEBASE_PER_SECOND) / NANOS_PER_SECOND;
  }

  /** The source number of a CPU's decrementer interrupt (the last `cpus` sources). */
  decrementerIrq(cpu: number): number {
    this.#cpu(cpu);
    return IRQ_COUNT - this.cpuCount + cpu;
  }

  /** mtspr DEC: the decrementer counts down from `value` (a signed 32-bit quantity). */
  setDecrementer(cpu: number, value: number): void {
    const c = this.#cpu(cpu);
    c.decrementerValue = BigInt.asIntN(32, BigInt(Math.trunc(value)));
    c.decrementerSetAt = this.timebase();
  }

  /** mfspr DEC: the current value, signed; negative once it has passed zero. */
  decrementer(cpu: number): number {
    const c = this.#cpu(cpu);
    return Number(BigInt.asIntN(32, c.decrementerValue - (this.timebase() - c.decrementerSetAt)));
  }

  /**
   * Raises the decrementer interrupt of every CPU whose DEC is negative and whose decrementer
   * source is neither pending nor in service. The exception is level-like, as on POWER: until
   * the kernel writes a positive DEC, every poll after the end of interrupt raises it again.
   * Returns the CPUs raised.
   */
  pollTimers(): number[] {
    const fired: number[] = [];
    for (let cpu = 0; cpu < this.cpuCount; cpu++) {
      const source = this.#sources[this.decrementerIrq(cpu)];
      if (source.pending || this.#inServiceOn(source.irq, cpu)) continue;
      if (this.decrementer(cpu) < 0) {
        this.raise(source.irq);
        fired.push(cpu);
      }
    }
    return fired;
  }

  /**
   * Nanoseconds until the next decrementer passes zero (0: one already has and waits to be
   * raised), or null when every decrementer interrupt is already pending or in service.
   */
  nanosUntilNextDecrementer(): bigint | null {
    let soonest: bigint | null = null;
    for (let cpu = 0; cpu < this.cpuCount; cpu++) {
      const source = this.#sources[this.decrementerIrq(cpu)];
      if (source.pending || this.#inServiceOn(source.irq, cpu)) continue;
      const value = BigInt(this.decrementer(cpu));
      // DEC raises when it goes from 0 to -1: value + 1 ticks from now.
      const nanos = value < 0n ? 0n : ((value + 1n) * NANOS_PER_SECOND + TIMEBASE_PER_SECOND - 1n) /
        TIMEBASE_PER_SECOND;
      if (soonest === null || nanos < soonest) soonest = nanos;
    }
    return soonest;
  }

  // ---- handlers ----

  /** interrupt_register: returns the handler id. The source is unmasked by its first handler. */
  register(registration: HandlerRegistration): number {
    const source = this.#source(registration.irq);
    if (registration.sharing !== "shared" && registration.sharing !== "exclusive") {
      throw invalidArgument(
        "sharing",
        `sharing must be "shared" or "exclusive", not ${registration.sharing}`,
      );
    }
    if (!registration.name) throw invalidArgument("name", "a handler needs a name");
    const exclusiveHolder = source.handlers.find((h) => h.sharing === "exclusive");
    if (exclusiveHolder) {
      throw failedPrecondition(
        `IRQ ${source.irq} is held exclusively by ${exclusiveHolder.name}`,
        Errno.EBUSY,
        "irq",
      );
    }
    if (registration.sharing === "exclusive" && source.handlers.length > 0) {
      throw failedPrecondition(
        `IRQ ${source.irq} already has handlers (${source.handlers.map((h) => h.name).join(", ")}); ` +
          "an exclusive handler must be alone",
        Errno.EBUSY,
        "irq",
      );
    }
    const handler: Handler = {
      id: this.#nextHandlerId++,
      irq: source.irq,
      name: registration.name,
      sharing: registration.sharing,
      deliver: registration.deliver,
      open: new Set(),
    };
    this.#handlers.set(handler.id, handler);
    source.handlers.push(handler);
    if (source.handlers.length === 1) source.masked = source.stormMasked;
    this.#dispatch();
    return handler.id;
  }

  /**
   * interrupt_unregister: the handler's open deliveries are completed (as handled, ending its
   * part of the interrupt); the source is masked when its last handler goes.
   */
  unregister(handlerId: number): void {
    const handler = this.#handler(handlerId);
    for (const deliveryId of [...handler.open]) {
      this.complete(deliveryId, { handled: true, endOfInterrupt: true });
    }
    for (const cpu of this.#cpus) {
      for (const entry of cpu.inService) {
        if (entry.irq === handler.irq) entry.awaitingEoi.delete(handler.id);
      }
    }
    this.#handlers.delete(handler.id);
    const source = this.#sources[handler.irq];
    source.handlers = source.handlers.filter((h) => h !== handler);
    if (source.handlers.length === 0) source.masked = true;
    this.#retireFinishedEntries();
    this.#dispatch();
  }

  /** A handler finished with one delivery. */
  complete(deliveryId: number, options: CompletionOptions): void {
    const delivery = this.#deliveries.get(deliveryId);
    if (!delivery) throw notFound("deliveryId", `no open interrupt delivery ${deliveryId}`);
    this.#deliveries.delete(deliveryId);
    const entry = delivery.entry;
    const source = this.#sources[entry.irq];
    const elapsed = this.#clock() - delivery.deliveredAt;
    source.stats.timeInHandler += elapsed;
    if (elapsed > source.stats.maxTimeInHandler) source.stats.maxTimeInHandler = elapsed;
    this.#handlers.get(delivery.handlerId)?.open.delete(deliveryId);
    entry.open.delete(deliveryId);
    if (options.handled) entry.handled = true;
    if (entry.open.size === 0 && !entry.handled) this.#countUnhandled(entry);
    if (options.endOfInterrupt) entry.awaitingEoi.delete(delivery.handlerId);
    this.#retireFinishedEntries();
    this.#dispatch();
  }

  // ---- the presentation layer ----

  /**
   * A device (or software) raises a source. Returns whether it was delivered at once. A source
   * raised while already pending is delivered once; raised while in service, it is delivered
   * again after its end of interrupt.
   */
  raise(irq: number, options: { software?: boolean } = {}): boolean {
    const source = this.#source(irq);
    source.stats.raises++;
    if (source.handlers.length === 0) {
      this.#spurious++;
      this.#onEvent({ kind: "spurious", irq });
    }
    const unacknowledged = source.pending || this.#inServiceAnywhere(irq);
    if (unacknowledged) this.#countStormRaise(source);
    if (source.pending) {
      source.stats.coalesced++;
      return false;
    }
    source.pending = true;
    this.#pending.add(source);
    source.pendingTimebase = this.timebase();
    source.pendingSoftware = options.software ?? false;
    this.#dispatch();
    return !source.pending;
  }

  /**
   * XIRR-style acceptance for a CPU that polls: takes the most favoured pending source the CPU
   * may take now (ignoring whether the CPU has interrupts enabled) and puts it in service without
   * calling handlers. Returns its IRQ, or null. End it with `endOfInterrupt`.
   */
  acknowledge(cpu: number): number | null {
    const c = this.#cpu(cpu);
    const source = this.#presentable(cpu, c);
    if (!source) return null;
    this.#accept(source, cpu, c, false);
    return source.irq;
  }

  /**
   * interrupt_acknowledge (end of interrupt): the source leaves service on the CPU; any of its
   * deliveries still open are closed. Returns whether it was in service there.
   */
  endOfInterrupt(irq: number, cpu: number): boolean {
    this.#source(irq);
    const c = this.#cpu(cpu);
    const index = c.inService.findLastIndex((e) => e.irq === irq);
    if (index < 0) return false;
    const entry = c.inService[index];
    for (const deliveryId of [...entry.open]) {
      const delivery = this.#deliveries.get(deliveryId)!;
      this.#deliveries.delete(deliveryId);
      this.#handlers.get(delivery.handlerId)?.open.delete(deliveryId);
      const elapsed = this.#clock() - delivery.deliveredAt;
      const stats = this.#sources[irq].stats;
      stats.timeInHandler += elapsed;
      if (elapsed > stats.maxTimeInHandler) stats.maxTimeInHandler = elapsed;
    }
    c.inService.splice(index, 1);
    this.#dispatch();
    return true;
  }

  /** interrupt_mask: the source still latches as pending but is not delivered. */
  mask(irq: number): void {
    this.#source(irq).masked = true;
  }

  /** interrupt_unmask: delivers the source again and clears a storm mask. */
  unmask(irq: number): void {
    const source = this.#source(irq);
    source.masked = false;
    source.stormMasked = false;
    source.stormWindowRaises = 0;
    source.stormWindowStart = this.#clock();
    this.#dispatch();
  }

  /** interrupt_enable on the CPUs given (all when omitted). */
  enable(cpus?: number[]): void {
    for (const cpu of cpus ?? this.#allCpus()) this.#cpu(cpu).enabled = true;
    this.#dispatch();
  }

  /** interrupt_disable: interrupts wait as pending. */
  disable(cpus?: number[]): void {
    for (const cpu of cpus ?? this.#allCpus()) this.#cpu(cpu).enabled = false;
  }

  /** interrupt_disable_save: disables the CPU and returns whether it was enabled. */
  disableSave(cpu: number): boolean {
    const c = this.#cpu(cpu);
    const was = c.enabled;
    c.enabled = false;
    return was;
  }

  /** interrupt_restore: puts back a state returned by disableSave. */
  restore(cpu: number, enabled: boolean): void {
    this.#cpu(cpu).enabled = enabled;
    if (enabled) this.#dispatch();
  }

  setPriority(irq: number, priority: number, targetCpu: number): void {
    const source = this.#source(irq);
    checkPriority(priority);
    this.#cpu(targetCpu);
    if (source.pinned && targetCpu !== source.targetCpu) {
      throw invalidArgument(
        "targetCpu",
        `IRQ ${irq} is CPU ${source.targetCpu}'s decrementer and cannot move to CPU ${targetCpu}`,
      );
    }
    source.priority = priority;
    source.targetCpu = targetCpu;
    this.#dispatch();
  }

  /** Raises per second while unacknowledged that count as a storm; 0 turns detection off. */
  setStormThreshold(irq: number, raisesPerSecond: number): void {
    const source = this.#source(irq);
    if (!Number.isInteger(raisesPerSecond) || raisesPerSecond < 0) {
      throw invalidArgument(
        "raisesPerSecond",
        `a storm threshold must be a whole number >= 0, not ${raisesPerSecond}`,
      );
    }
    source.stormThreshold = raisesPerSecond;
  }

  // ---- statistics ----

  /** interrupt_get_statistics: the sources asked for, or every source with a handler or a raise. */
  statistics(irqs?: number[]): InterruptStatistics[] {
    const chosen = irqs
      ? irqs.map((irq) => this.#source(irq))
      : this.#sources.filter((s) => s.handlers.length > 0 || s.stats.raises > 0);
    return chosen.map((s) => ({
      irq: s.irq,
      handlers: s.handlers.map((h) => h.name),
      priority: s.priority,
      targetCpu: s.targetCpu,
      masked: s.masked,
      stormMasked: s.stormMasked,
      stormThreshold: s.stormThreshold,
      pending: s.pending,
      inService: this.#inServiceAnywhere(s.irq),
      count: s.stats.count,
      unhandled: s.stats.unhandled,
      timeInHandlerNanos: s.stats.timeInHandler,
      maxTimeInHandlerNanos: s.stats.maxTimeInHandler,
      lastDeliveryTimebase: s.stats.lastDeliveryTimebase,
      lastDeliveryUnixNanos: s.stats.lastDeliveryUnixNanos,
      nested: s.stats.nested,
      storms: s.stats.storms,
      raises: s.stats.raises,
      coalesced: s.stats.coalesced,
    }));
  }

  cpuStates(): CpuInterruptState[] {
    return this.#cpus.map((c, cpu) => ({
      cpu,
      enabled: c.enabled,
      inService: c.inService.map((e) => e.irq),
      maxNestingDepth: c.maxNestingDepth,
    }));
  }

  /** Raises of sources that had no handler at all. */
  get spurious(): number {
    return this.#spurious;
  }

  // ---- internals ----

  #allCpus(): number[] {
    return this.#cpus.map((_, cpu) => cpu);
  }

  #source(irq: number): Source {
    if (!Number.isInteger(irq) || irq < 0 || irq >= IRQ_COUNT) {
      throw invalidArgument("irq", `IRQ ${irq} is not in 0..${IRQ_COUNT - 1}`);
    }
    return this.#sources[irq];
  }

  #cpu(cpu: number): Cpu {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.cpuCount) {
      throw new AstraError(
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
        `no CPU ${cpu} (the machine has ${this.cpuCount})`,
        {
          argument: "cpu",
        },
      );
    }
    return this.#cpus[cpu];
  }

  #handler(handlerId: number): Handler {
    const handler = this.#handlers.get(handlerId);
    if (!handler) throw notFound("handlerId", `no interrupt handler ${handlerId}`);
    return handler;
  }

  #inServiceOn(irq: number, cpu: number): boolean {
    return this.#cpus[cpu].inService.some((e) => e.irq === irq);
  }

  #inServiceAnywhere(irq: number): boolean {
    return this.#cpus.some((c) => c.inService.some((e) => e.irq === irq));
  }

  #countStormRaise(source: Source): void {
    if (source.stormThreshold === 0 || source.stormMasked) return;
    const now = this.#clock();
    if (now - source.stormWindowStart >= NANOS_PER_SECOND) {
      source.stormWindowStart = now;
      source.stormWindowRaises = 0;
    }
    source.stormWindowRaises++;
    if (source.stormWindowRaises > source.stormThreshold) {
      source.masked = true;
      source.stormMasked = true;
      source.stats.storms++;
      this.#onEvent({
        kind: "storm",
        irq: source.irq,
        raises: source.stormWindowRaises,
        threshold: source.stormThreshold,
      });
    }
  }

  #countUnhandled(entry: ServiceEntry): void {
    this.#sources[entry.irq].stats.unhandled++;
    this.#onEvent({ kind: "unhandled", irq: entry.irq, cpu: entry.cpu, handlers: entry.handlerNames });
  }

  /** The most favoured pending unmasked source for the CPU that beats its current priority. */
  #presentable(cpu: number, c: Cpu): Source | null {
    let current = -1;
    for (const entry of c.inService) if (entry.priority > current) current = entry.priority;
    let best: Source | null = null;
    for (const source of this.#pending) {
      if (source.masked || source.targetCpu !== cpu) continue;
      if (source.priority <= current) continue;
      if (this.#inServiceOn(source.irq, cpu)) continue;
      if (!best || source.priority > best.priority) best = source;
    }
    return best;
  }

  #accept(source: Source, cpu: number, c: Cpu, callHandlers: boolean): ServiceEntry {
    const nestingDepth = c.inService.length;
    const entry: ServiceEntry = {
      irq: source.irq,
      cpu,
      priority: source.priority,
      awaitingEoi: new Set(),
      open: new Set(),
      handled: false,
      handlerNames: source.handlers.map((h) => h.name),
      polled: !callHandlers,
    };
    source.pending = false;
    this.#pending.delete(source);
    c.inService.push(entry);
    if (c.inService.length > c.maxNestingDepth) c.maxNestingDepth = c.inService.length;
    const stats = source.stats;
    stats.count++;
    if (nestingDepth > 0) stats.nested++;
    stats.lastDeliveryTimebase = this.timebase();
    stats.lastDeliveryUnixNanos = this.#wallClock();
    if (!callHandlers) {
      entry.handled = true;
      return entry;
    }
    if (source.handlers.length === 0) {
      // Nobody to end it: count it, log it, and take it out of service at once.
      this.#countUnhandled(entry);
      c.inService.pop();
      return entry;
    }
    const now = this.#clock();
    const deliveries: InterruptDelivery[] = [];
    for (const handler of source.handlers) {
      const id = this.#nextDeliveryId++;
      entry.open.add(id);
      entry.awaitingEoi.add(handler.id);
      handler.open.add(id);
      this.#deliveries.set(id, { id, handlerId: handler.id, entry, deliveredAt: now });
      deliveries.push({
        deliveryId: id,
        handlerId: handler.id,
        irq: source.irq,
        cpu,
        priority: source.priority,
        nestingDepth,
        timebase: source.pendingTimebase,
        software: source.pendingSoftware,
      });
    }
    // Handlers are called after the bookkeeping: one may complete (or raise) from inside.
    for (let i = 0; i < deliveries.length; i++) {
      const handler = this.#handlers.get(deliveries[i].handlerId);
      if (handler && this.#deliveries.has(deliveries[i].deliveryId)) handler.deliver(deliveries[i]);
    }
    return entry;
  }

  #retireFinishedEntries(): void {
    for (const c of this.#cpus) {
      c.inService = c.inService.filter((e) => e.polled || e.awaitingEoi.size > 0 || e.open.size > 0);
    }
  }

  /** Delivers everything deliverable; re-entrant calls from handlers fold into the running loop. */
  #dispatch(): void {
    if (this.#dispatching) {
      this.#dispatchAgain = true;
      return;
    }
    this.#dispatching = true;
    try {
      do {
        this.#dispatchAgain = false;
        for (let cpu = 0; cpu < this.cpuCount; cpu++) {
          const c = this.#cpus[cpu];
          for (;;) {
            if (!c.enabled) break;
            const source = this.#presentable(cpu, c);
            if (!source) break;
            this.#accept(source, cpu, c, true);
          }
        }
      } while (this.#dispatchAgain);
    } finally {
      this.#dispatching = false;
    }
  }
}
