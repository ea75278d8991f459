// Busy polling for a service process. Between two service processes a message's round trip is
// mostly two wakeups: the receiver sleeps in epoll and its CPU goes idle, and on a virtual machine
// waking an idle vCPU costs tens of µs (here a getppid over gRPC took ~70 µs with idle CPUs and
// ~40 µs with busy ones). As Linux's SO_BUSY_POLL and a hypervisor's halt polling do, a thread of
// the lowest priority spins for a short window after each message the process sends or receives,
// so that a CPU is awake when the answer comes. It takes only CPU time nothing else wants, and
// parks once a window passes without traffic.
import { logger } from "./log.ts";

/** The spinning thread. Without the lowest priority it would compete with real work: it stops. */
const SPINNER = `
import os from "node:os";
self.onmessage = (e) => {
  try {
    os.setPriority(0, 19);
  } catch (err) {
    self.postMessage({ stopped: String(err) });
    self.close();
    return;
  }
  const until = new Float64Array(e.data, 0, 1);
  const parked = new Int32Array(e.data, 8, 1);
  const wakeups = new Int32Array(e.data, 12, 1);
  const now = () => performance.timeOrigin + performance.now();
  for (;;) {
    Atomics.add(wakeups, 0, 1);
    while (now() < until[0]);
    Atomics.store(parked, 0, 1);
    // A touch between the last look and parking must not be slept through.
    if (now() < until[0]) {
      Atomics.store(parked, 0, 0);
      continue;
    }
    Atomics.wait(parked, 0, 1);
  }
};
`;

export class BusyPoll {
  readonly #windowMs: number;
  /** Epoch ms until which the spinner spins. */
  readonly #until: Float64Array;
  /** 1 while the spinner sleeps. */
  readonly #parked: Int32Array;
  /** Times the spinner has started spinning. */
  readonly #wakeups: Int32Array;
  readonly #worker: Worker;
  #stopped = false;

  constructor(windowMicros: number) {
    this.#windowMs = windowMicros / 1000;
    const shared = new SharedArrayBuffer(16);
    this.#until = new Float64Array(shared, 0, 1);
    this.#parked = new Int32Array(shared, 8, 1);
    this.#wakeups = new Int32Array(shared, 12, 1);
    const url = URL.createObjectURL(new Blob([SPINNER], { type: "text/javascript" }));
    this.#worker = new Worker(url, { type: "module", name: "busy-poll" });
    this.#worker.onmessage = (e: MessageEvent<{ stopped: string }>) => {
      logger("busy-poll").warn("busy polling is off: its thread cannot take the lowest priority", {
        error: e.data.stopped,
      });
      this.stop();
    };
    this.#worker.postMessage(shared);
  }

  /** A message went out or came in: spin for the next window. */
  touch(): void {
    if (this.#stopped) return;
    this.#until[0] = performance.timeOrigin + performance.now() + this.#windowMs;
    if (Atomics.compareExchange(this.#parked, 0, 1, 0) === 1) Atomics.notify(this.#parked, 0);
  }

  get parked(): boolean {
    return Atomics.load(this.#parked, 0) === 1;
  }

  get wakeups(): number {
    return Atomics.load(this.#wakeups, 0);
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#worker.terminate();
  }
}

let active: BusyPoll | undefined;

/** Starts busy polling in this process with a window of `windowMicros` (0: off). */
export function startBusyPoll(windowMicros: number): void {
  if (active || windowMicros <= 0) return;
  active = new BusyPoll(windowMicros);
}

/** The HTTP/2 connections call this for every read and write. */
export function busyPollTouch(): void {
  active?.touch();
}
