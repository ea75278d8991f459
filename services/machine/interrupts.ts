// The interrupt controller as the machine's services see it: handlers registered by name, each
// with a queue of its deliveries that its HandlerStream drains; completions from the stream; the
// log lines the contract promises (storms, interrupts nobody handled); and the host timer that
// makes the per-CPU decrementers fire while any of them counts down.
import process from "node:process";
import { Channel } from "../../lib/channel.ts";
import { AstraError, Code, Errno, failedPrecondition, invalidArgument } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import {
  type CpuInterruptState,
  InterruptController,
  type InterruptDelivery,
  type InterruptEvent,
  type InterruptStatistics,
  type Sharing,
} from "./devices/intc.ts";

/** At most one log line per second for each kind of event on each IRQ; the rest are counted. */
const LOG_INTERVAL_MS = 1000;

interface Endpoint {
  handlerId: number;
  irq: number;
  name: string;
  /** Deliveries not yet sent on the handler's stream (they wait for it to attach). */
  deliveries: Channel<InterruptDelivery>;
  /** Deliveries given to the handler that it has not completed. */
  outstanding: Set<number>;
  attached: boolean;
}

export interface HandlerCompletion {
  deliveryId: number;
  handled: boolean;
  endOfInterrupt: boolean;
}

/** One handler's stream: its deliveries, and where its completions go. */
export interface HandlerSession {
  readonly deliveries: AsyncIterable<InterruptDelivery>;
  complete(completion: HandlerCompletion): void;
  /** The stream ended: the handler is unregistered. */
  end(): void;
}

export class InterruptHub {
  readonly controller: InterruptController;
  readonly #log: Logger;
  readonly #endpoints = new Map<number, Endpoint>();
  readonly #lastLogged = new Map<string, { at: number; suppressed: number }>();
  readonly #firstDecrementerIrq: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer fires, in host nanoseconds (process.hrtime), while one is armed. */
  #timerDeadline = 0n;
  #running = false;

  constructor(options: { cpus: number; log: Logger }) {
    this.#log = options.log;
    this.controller = new InterruptController({ cpus: options.cpus, onEvent: (e) => this.#logEvent(e) });
    this.#firstDecrementerIrq = this.controller.decrementerIrq(0);
  }

  /** Starts the decrementer timer (at power-on). */
  start(): void {
    this.#running = true;
    this.#armTimer();
  }

  /** Stops the timer and unregisters every handler, ending their streams (at power-off). */
  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const handlerId of [...this.#endpoints.keys()]) this.unregister(handlerId);
  }

  // ---- handlers and their streams ----

  /**
   * A new handler. One with the name of a handler already on the source replaces it: a driver
   * whose process died and came back registers again under its own name, possibly before the
   * machine has seen its previous incarnation's stream end (a connection that vanishes without a
   * goodbye is only noticed when the transport gives up on it), and must not find its IRQ held by
   * its own ghost.
   */
  register(irq: number, name: string, sharing: Sharing): number {
    for (const stale of this.#endpoints.values()) {
      if (stale.irq !== irq || stale.name !== name) continue;
      this.#log.warn("interrupt handler replaced by a new registration under its name", {
        irq,
        name,
        handlerId: stale.handlerId,
        attached: stale.attached,
      });
      this.unregister(stale.handlerId);
    }
    const outstanding = new Set<number>();
    const deliveries = new Channel<InterruptDelivery>();
    const handlerId = this.controller.register({
      irq,
      name,
      sharing,
      deliver: (delivery) => {
        outstanding.add(delivery.deliveryId);
        deliveries.push(delivery);
      },
    });
    this.#endpoints.set(handlerId, { handlerId, irq, name, deliveries, outstanding, attached: false });
    return handlerId;
  }

  /** Removes a handler: its stream ends, and what it had in service is completed. */
  unregister(handlerId: number): void {
    this.controller.unregister(handlerId);
    const endpoint = this.#endpoints.get(handlerId);
    this.#endpoints.delete(handlerId);
    endpoint?.deliveries.close();
    if (endpoint) this.#serviceEnded(endpoint.irq);
  }

  /** Opens a handler's stream; a handler has one at a time. */
  attach(handlerId: number): HandlerSession {
    const endpoint = this.#endpoints.get(handlerId);
    if (!endpoint) {
      throw new AstraError(Code.NOT_FOUND, Errno.ENOENT, `no interrupt handler ${handlerId}`, {
        argument: "handler_id",
      });
    }
    if (endpoint.attached) {
      throw new AstraError(
        Code.ALREADY_EXISTS,
        Errno.EBUSY,
        `interrupt handler ${handlerId} (${endpoint.name}) already has a stream`,
        { argument: "handler_id" },
      );
    }
    endpoint.attached = true;
    return {
      deliveries: endpoint.deliveries,
      complete: (completion) => this.#complete(endpoint, completion),
      end: () => {
        if (this.#endpoints.get(handlerId) === endpoint) this.unregister(handlerId);
      },
    };
  }

  #complete(endpoint: Endpoint, completion: HandlerCompletion): void {
    if (!endpoint.outstanding.delete(completion.deliveryId)) {
      throw invalidArgument(
        "completion.delivery_id",
        `delivery ${completion.deliveryId} was not given to handler ${endpoint.handlerId} (${endpoint.name}) ` +
          "or is already completed",
      );
    }
    try {
      this.controller.complete(completion.deliveryId, {
        handled: completion.handled,
        endOfInterrupt: completion.endOfInterrupt,
      });
    } catch (err) {
      // Acknowledge (or the handler going) ended the delivery first: nothing is left to complete.
      if (!(err instanceof AstraError && err.code === Code.NOT_FOUND)) throw err;
    }
    this.#serviceEnded(endpoint.irq);
  }

  // ---- the controller's operations ----

  /** End of interrupt for a source on a CPU, out of band. */
  acknowledge(irq: number, cpu: number): void {
    if (!this.controller.endOfInterrupt(irq, cpu)) {
      throw failedPrecondition(`IRQ ${irq} is not in service on CPU ${cpu}`, Errno.EINVAL, "irq");
    }
    this.#serviceEnded(irq);
  }

  mask(irq: number): void {
    this.controller.mask(irq);
  }

  unmask(irq: number): void {
    this.controller.unmask(irq);
  }

  enable(cpus: number[] | undefined): void {
    this.controller.enable(this.#checkCpus(cpus));
  }

  disable(cpus: number[] | undefined): void {
    this.controller.disable(this.#checkCpus(cpus));
  }

  /** The whole list is checked first, so a bad CPU in it changes no CPU at all. */
  #checkCpus(cpus: number[] | undefined): number[] | undefined {
    const bad = cpus?.find((cpu) => !Number.isInteger(cpu) || cpu < 0 || cpu >= this.controller.cpuCount);
    if (bad !== undefined) {
      throw invalidArgument("cpus", `no CPU ${bad} (the machine has ${this.controller.cpuCount})`);
    }
    return cpus;
  }

  disableSave(cpu: number): boolean {
    return this.controller.disableSave(cpu);
  }

  restore(cpu: number, enabled: boolean): void {
    this.controller.restore(cpu, enabled);
  }

  /** A software interrupt; whether it was delivered at once. */
  raise(irq: number): boolean {
    return this.controller.raise(irq, { software: true });
  }

  setPriority(irq: number, priority: number, targetCpu: number): void {
    this.controller.setPriority(irq, priority, targetCpu);
  }

  setStormThreshold(irq: number, raisesPerSecond: number): void {
    this.controller.setStormThreshold(irq, raisesPerSecond);
  }

  /** mtspr DEC on a CPU: the timer is re-armed for the new expiry. */
  setDecrementer(cpu: number, value: number): void {
    this.controller.setDecrementer(cpu, value);
    this.#armTimer();
  }

  statistics(irqs: number[] | undefined): InterruptStatistics[] {
    return this.controller.statistics(irqs);
  }

  cpuStates(): CpuInterruptState[] {
    return this.controller.cpuStates();
  }

  get spurious(): number {
    return this.controller.spurious;
  }

  /** Raises of every source since power-on. */
  get raises(): number {
    return this.controller.statistics().reduce((sum, s) => sum + s.raises, 0);
  }

  // ---- decrementers ----

  /**
   * A source left service. Only a decrementer leaving service (or a DEC write) can bring the next
   * expiry closer; everything else only makes decrementers pending or in service, after which an
   * armed timer at worst fires for nothing.
   */
  #serviceEnded(irq: number): void {
    if (irq >= this.#firstDecrementerIrq) this.#armTimer();
  }

  /**
   * Arms the host timer for the next decrementer to pass zero, unless one already fires by then.
   * A timer that fires early (a DEC rewritten to a later expiry) just polls and re-arms.
   */
  #armTimer(): void {
    if (!this.#running) return;
    const nanos = this.controller.nanosUntilNextDecrementer();
    if (nanos === null) return;
    const deadline = process.hrtime.bigint() + nanos;
    if (this.#timer !== undefined && this.#timerDeadline <= deadline) return;
    clearTimeout(this.#timer);
    this.#timerDeadline = deadline;
    // Rounded up: a timer that fires before DEC passes zero would find nothing to raise.
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.controller.pollTimers();
      this.#armTimer();
    }, Math.ceil(Number(nanos) / 1e6));
    // The machine's timer alone never keeps its process alive.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  // ---- logging ----

  #logEvent(event: InterruptEvent): void {
    const key = `${event.kind}:${event.irq}`;
    const now = performance.now();
    const last = this.#lastLogged.get(key);
    if (last && now - last.at < LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.#lastLogged.set(key, { at: now, suppressed: 0 });
    const also = suppressed > 0 ? { suppressed } : {};
    switch (event.kind) {
      case "storm":
        this.#log.warn("interrupt storm: source masked", {
          irq: event.irq,
          raises: event.raises,
          threshold: event.threshold,
          ...also,
        });
        return;
      case "unhandled":
        this.#log.warn("interrupt not handled", {
          irq: event.irq,
          cpu: event.cpu,
          handlers: event.handlers,
          ...also,
        });
        return;
      case "spurious":
        this.#log.warn("interrupt raised on a source without handlers", { irq: event.irq, ...also });
        return;
    }
  }
}
