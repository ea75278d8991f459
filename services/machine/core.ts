// One CPU of the machine running guest threads: its interpreter (with the block translator), its
// memory and software TLB, and the run loop that executes the thread on it in slices and turns
// each stop into a question for the kernel side — a system call, a page fault or segment miss, a
// program, alignment or facility interrupt (a signal), the end of the time slice (a tick) — then
// applies the answer; signals are delivered by signal_delivery.ts. Everything runs in one
// JavaScript thread with the services in embedded mode, so the loop yields to the event loop every
// few milliseconds of guest time.
//
// A thread leaves the CPU when it blocks in the kernel, is preempted, stops, exits or is parked
// by StopCpu; its registers are then saved in its context. Answers that arrive for a thread that
// left meanwhile (another thread's exit_group took it, say) are dropped: `epoch` counts the
// changes of thread on the core. A kernel side that fails (a peer down) is logged and the trap is
// tried again after a pause, the thread's state untouched.
import { setImmediate } from "node:timers";
import { Errno } from "../../lib/errors.ts";
import {
  BUS_ADRALN,
  ILL_ILLOPC,
  SEGV_ACCERR,
  SEGV_MAPERR,
  SIGBUS,
  SIGILL,
  SIGSEGV,
} from "../../lib/linux/signals.ts";
import { SYSCALLS } from "../../lib/linux/syscall_numbers.ts";
import type { Logger } from "../../lib/log.ts";
import { segmentShift, type SlbEntry } from "../../lib/ppc/hpt.ts";
import { formatInstruction } from "./cpu/disassemble.ts";
import { PVR_POWER9 } from "./cpu/features.ts";
import { Cpu, StopReason } from "./cpu/interpreter.ts";
import { mfpvrTarget, programSignal, storageDsisr } from "./cpu_signals.ts";
import { type Answer, FAILED, GONE } from "./kernel_answer.ts";
import type { Dispatch, KernelCallOutcome, KernelSide, ThreadEntry, UserFault } from "./kernel_side.ts";
import type { PhysicalMemory } from "./memory.ts";
import type { Mmu } from "./mmu.ts";
import {
  applyExecEntry,
  loadCpu,
  readGpr,
  RegisterFile,
  saveCpu,
  setSystemCallResult,
  writeGpr,
} from "./registers.ts";
import { CoreSignals } from "./signal_delivery.ts";
import {
  type SpaceBinding,
  type ThreadContext,
  type ThreadTable,
  TRAP_ALIGNMENT,
  TRAP_DATA_SEGMENT,
  TRAP_DATA_STORAGE,
  TRAP_DECREMENTER,
  TRAP_FACILITY_UNAVAILABLE,
  TRAP_INSTRUCTION_SEGMENT,
  TRAP_INSTRUCTION_STORAGE,
  TRAP_PROGRAM,
  TRAP_SYSTEM_CALL,
} from "./threads.ts";
import { CoreMemory } from "./user_memory.ts";

/** What a CPU is doing, as CpuRunState names it. */
export type CpuActivity = "stopped" | "idle" | "running" | "trapped";

/** What a core needs from the machine's set of CPUs. */
export interface CoreHost {
  readonly threads: ThreadTable;
  readonly mmu: Mmu;
  readonly log: Logger;
  /** The kernel side; throws when none is wired. */
  kernel(): KernelSide;
  /** Monotonic nanoseconds, for tick(). */
  clockNanos(): bigint;
  /** A thread ended: drop its context, wherever it is. */
  discardThread(thread: ThreadContext): void;
  /** A process ended: drop the context of every thread of `pid`. */
  discardProcess(pid: number): void;
  /** A process stopped: take its threads off their CPUs. */
  stopProcess(pid: number): void;
  /** Applies the outcome of a blocked call, once `done` settles, to its thread off the CPU; resolves then. */
  followBlockedCall(thread: ThreadContext, done: Promise<KernelCallOutcome>): Promise<void>;
  /** execve moved a thread to `spaceId`. */
  changeSpace(thread: ThreadContext, spaceId: bigint): void;
}

export interface CoreOptions {
  /** Guest time between two yields to the event loop. */
  sliceMillis: number;
  /** The time slice of a thread put on the CPU without one (RunThread). */
  defaultTimeSliceNanos: number;
  /** The timebase in ticks (mftb). */
  timebase: () => number;
  tlbEntries?: number;
}

const INITIAL_BUDGET = 100_000;
const MIN_BUDGET = 10_000;
const MAX_BUDGET = 50_000_000;
/** The same fault at the same place, with no instruction completed in between, this many times: SIGSEGV. */
const MAX_REPEATED_FAULTS = 4;
const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    Deno.unrefTimer(timer);
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class Core {
  readonly cpu: Cpu;
  readonly memory: CoreMemory;
  /** Started (StartCpu) and not stopped since. */
  started = false;
  /** The thread on the CPU. */
  thread: ThreadContext | undefined;
  /** System calls, faults, program interrupts and ticks taken to the kernel side. */
  traps = 0;
  /** Page faults taken to vmm. */
  pageFaults = 0;
  /** The thread's registers are in the Cpu (not until its blocked call has completed). */
  private loaded = false;
  /** Waiting for the kernel side to answer a trap of the thread. */
  private inKernel = false;
  private epoch = 0;
  /** Ends the wait for the kernel side in progress with GONE: the thread left the CPU. */
  private interruptWait: ((gone: typeof GONE) => void) | undefined;
  /** The CPU lost its thread and must ask the scheduler for the next. */
  private needsSchedule = false;
  private looping = false;
  private timeSliceNanos: number;
  private sliceEndsAt = Infinity;
  /**
   * When the last run of guest code ended (performance.now()): the slice and the event-loop yield
   * are checked against it rather than a fresh clock read per stop, which system calls feel.
   */
  private ranUntil = 0;
  /** Why the last run of guest code stopped. */
  private lastStop: StopReason | -1 = -1;
  private budget = INITIAL_BUDGET;
  private backoffMillis = 0;
  private readonly scratch = new RegisterFile();
  private lastFault = { address: -1n, access: "", retired: -1, repeats: 0 };
  private readonly signals: CoreSignals;

  constructor(
    readonly index: number,
    private readonly host: CoreHost,
    physical: PhysicalMemory,
    private readonly options: CoreOptions,
  ) {
    this.memory = new CoreMemory(host.mmu, physical, options.tlbEntries);
    this.cpu = new Cpu(this.memory, options.timebase);
    this.cpu.enableTranslation();
    this.timeSliceNanos = options.defaultTimeSliceNanos;
    this.signals = new CoreSignals({
      cpu: this.cpu,
      scratch: this.scratch,
      host,
      ask: (thread, what, question) => this.ask(thread, what, question),
      copyIn: (thread, address, length) => this.copyIn(thread, address, length),
      copyOut: (thread, address, data) => this.copyOut(thread, address, data),
      yieldHere: async () => {
        const epoch = this.epoch;
        await yieldToEventLoop();
        return epoch === this.epoch;
      },
    });
  }

  get activity(): CpuActivity {
    if (!this.started) return "stopped";
    if (this.thread === undefined) return "idle";
    return this.inKernel || this.thread.pending !== undefined ? "trapped" : "running";
  }

  /** The thread's registers live in the Cpu (rather than in its context). */
  get holdsRegisters(): boolean {
    return this.thread !== undefined && this.loaded;
  }

  /** Waiting for the kernel side on behalf of its thread. */
  get waitingForKernel(): boolean {
    return this.inKernel;
  }

  start(): void {
    this.started = true;
    this.wake();
  }

  /** Stops at the next instruction boundary (now, between slices); an outstanding trap completes first. */
  stop(): void {
    this.started = false;
  }

  /** Puts a thread on the CPU (RunThread, the scheduler's dispatch). */
  put(thread: ThreadContext, timeSliceNanos: number): void {
    this.thread = thread;
    thread.cpu = this.index;
    this.loaded = false;
    this.needsSchedule = false;
    this.changeThread();
    this.timeSliceNanos = timeSliceNanos > 0 ? timeSliceNanos : this.options.defaultTimeSliceNanos;
    this.wake();
  }

  /** The thread on the CPU is gone (its process ended): forget it and ask for the next. */
  drop(): void {
    if (this.thread === undefined) return;
    this.thread.cpu = -1;
    this.thread = undefined;
    this.loaded = false;
    this.changeThread();
    this.needsSchedule = true;
    this.wake();
  }

  /** Takes the thread off the CPU with its registers saved (a stop signal); asks for the next. */
  park(): void {
    if (this.thread === undefined) return;
    this.release(this.thread);
    this.needsSchedule = true;
    this.wake();
  }

  /** Loads a space's translations: a different space empties the TLB and the decoded code. */
  bindSpace(binding: SpaceBinding | null): void {
    if (this.memory.bind(binding?.translator ?? null)) this.cpu.invalidateAllCode();
  }

  /** Drops the software TLB and every decoded instruction (a table or address space changed). */
  flushTranslations(): number {
    const dropped = this.memory.tlb.flush();
    this.memory.forgetCode();
    this.cpu.invalidateAllCode();
    return dropped;
  }

  /** Drops the software TLB entries and decoded code of [ea, ea + bytes). */
  flushPages(ea: number, bytes: number): number {
    let dropped = 0;
    for (let page = ea - (ea % 4096); page < ea + bytes; page += 4096) {
      if (this.memory.tlb.flushPage(page)) dropped++;
    }
    this.cpu.invalidateCode(ea, bytes);
    return dropped;
  }

  private wake(): void {
    if (this.looping || !this.started) return;
    this.looping = true;
    setImmediate(() => this.loop());
  }

  private async loop(): Promise<void> {
    let lastYield = performance.now();
    try {
      while (this.started) {
        const thread = this.thread;
        if (thread === undefined) {
          if (!this.needsSchedule) break;
          await this.scheduleNext();
          continue;
        }
        if (!this.loaded || thread.signalCheck) {
          await this.prepare(thread);
          continue;
        }
        await this.step(thread);
        if (this.ranUntil - lastYield >= this.options.sliceMillis) {
          await yieldToEventLoop();
          lastYield = this.ranUntil = performance.now();
        }
      }
    } catch (error) {
      // Every guest-caused failure is a signal; reaching here is a machine bug. The CPU stops
      // rather than spin on it, its state left for GetCpuState.
      this.host.log.error("CPU stopped: its run loop failed", { cpu: this.index, error: describe(error) });
      this.started = false;
    } finally {
      this.looping = false;
    }
  }

  /** Makes the thread ready to run: its blocked call completed, its registers loaded, signals delivered. */
  private async prepare(thread: ThreadContext): Promise<void> {
    const epoch = this.epoch;
    while (thread.pending !== undefined) {
      await this.whileHere(thread.pending);
      this.interruptWait = undefined;
      if (epoch !== this.epoch) return;
    }
    if (!this.loaded) {
      loadCpu(thread.registers, this.cpu);
      this.bindSpace(this.host.threads.spaces.bind(thread.spaceId));
      this.loaded = true;
      this.sliceEndsAt = performance.now() + this.timeSliceNanos / 1e6;
      this.lastFault.retired = -1;
      if (!thread.signalCheck) thread.entry.restartable = false;
    }
    if (thread.signalCheck) {
      thread.signalCheck = false;
      await this.signals.deliver(thread);
    }
  }

  /** Runs one slice of the thread and handles why it stopped. */
  private async step(thread: ThreadContext): Promise<void> {
    const stop = this.execute();
    switch (stop) {
      case StopReason.Budget:
        break;
      case StopReason.SystemCall:
        await this.onSystemCall(thread);
        break;
      case StopReason.PageFault:
        await this.onStorageFault(thread);
        break;
      case StopReason.Program:
        await this.onProgram(thread);
        break;
      case StopReason.Alignment:
        thread.entry.dar = this.cpu.faultAddress;
        await this.signals.raiseFault(thread, SIGBUS, BUS_ADRALN, this.cpu.faultAddress, TRAP_ALIGNMENT);
        break;
      case StopReason.FacilityUnavailable:
        // The guest runs with FP, VMX, VSX and quad precision enabled: transactional memory stays
        // off, as on a kernel that does not enable it.
        this.logInterrupt(thread, "facility unavailable", { facility: this.cpu.unavailableFacility });
        await this.signals.raiseFault(thread, SIGILL, ILL_ILLOPC, this.cpu.pc64, TRAP_FACILITY_UNAVAILABLE);
        break;
      default:
        await this.signals.raiseFault(thread, SIGILL, ILL_ILLOPC, this.cpu.pc64, TRAP_PROGRAM);
    }
    if (this.thread === thread && this.loaded && this.ranUntil >= this.sliceEndsAt) {
      await this.tick(thread);
    }
  }

  /** cpu.run with a budget sized for a few milliseconds; −1 when the CPU failed internally. */
  private execute(): StopReason | -1 {
    const cpu = this.cpu;
    // Only a run that follows another budget stop is timed for the budget: nothing but the loop
    // happened since that one ended, so its end is this one's start without reading the clock.
    const timed = this.lastStop === StopReason.Budget, started = this.ranUntil, before = cpu.retired;
    let stop: StopReason;
    try {
      stop = cpu.run(this.budget);
    } catch (error) {
      this.host.log.error("CPU failed executing an instruction; the thread gets SIGILL", {
        cpu: this.index,
        tid: this.thread?.tid,
        pc: `0x${cpu.pc64.toString(16)}`,
        error: describe(error),
      });
      this.lastStop = -1;
      return -1;
    }
    this.ranUntil = performance.now();
    this.lastStop = stop;
    const elapsed = this.ranUntil - started;
    if (timed && stop === StopReason.Budget && elapsed > 0.2) {
      const rate = (cpu.retired - before) / elapsed;
      const target = Math.round(rate * this.options.sliceMillis);
      this.budget = Math.min(MAX_BUDGET, Math.max(MIN_BUDGET, Math.round((this.budget + target) / 2)));
    }
    return stop;
  }

  /** Asks the kernel side on behalf of the thread; GONE if it left the CPU meanwhile, FAILED after a pause. */
  private async ask<T>(
    thread: ThreadContext,
    what: string,
    question: (kernel: KernelSide) => Promise<T>,
  ): Promise<Answer<T>> {
    const epoch = this.epoch;
    this.inKernel = true;
    try {
      const answer = await this.whileHere(question(this.host.kernel()));
      this.backoffMillis = 0;
      return epoch === this.epoch ? answer : GONE;
    } catch (error) {
      if (epoch !== this.epoch) return GONE;
      await this.backOff("the kernel side failed; trying again", { tid: thread.tid, what }, error);
      return epoch === this.epoch ? FAILED : GONE;
    } finally {
      this.interruptWait = undefined;
      this.inKernel = false;
    }
  }

  /** Logs a failed question to the kernel side and pauses, longer each time, before it is asked again. */
  private async backOff(message: string, fields: Record<string, unknown>, error: unknown): Promise<void> {
    this.backoffMillis = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, this.backoffMillis * 2));
    this.host.log.error(message, {
      cpu: this.index,
      ...fields,
      retryMillis: this.backoffMillis,
      error: describe(error),
    });
    await this.whileHere(sleep(this.backoffMillis));
  }

  // ---- system calls ----

  private async onSystemCall(thread: ThreadContext): Promise<void> {
    const cpu = this.cpu;
    this.traps++;
    if (cpu.systemCallVectored) {
      // scv's facility is off (AT_HWCAP2 does not advertise it): a facility unavailable interrupt.
      cpu.setPc64(cpu.pc64 - 4n);
      return this.signals.raiseFault(thread, SIGILL, ILL_ILLOPC, cpu.pc64, TRAP_FACILITY_UNAVAILABLE);
    }
    const entry = thread.entry;
    const g = cpu.gpr;
    entry.trap = TRAP_SYSTEM_CALL;
    entry.origR3 = readGpr(g, 3);
    entry.restartable = true;
    // r0 is unsigned long: numbers beyond the table are ENOSYS.
    if (g[1] !== 0 || g[0] < 0) {
      return this.completeSystemCall(thread, { kind: "error", errno: Errno.ENOSYS, signalPending: false });
    }
    const number = g[0];
    if (number === SYSCALLS.rt_sigreturn) {
      return this.signals.rtSigreturn(thread, () => cpu.setPc64(cpu.pc64 - 4n));
    }
    const args = [readGpr(g, 3), readGpr(g, 4), readGpr(g, 5), readGpr(g, 6), readGpr(g, 7), readGpr(g, 8)];
    const memory = this.host.threads.spaces.bind(thread.spaceId).memory;
    const outcome = await this.ask(
      thread,
      `system call ${number}`,
      (kernel) => kernel.systemCall(thread, memory, number, args),
    );
    if (outcome === GONE) return;
    // Issued again when the thread runs on.
    if (outcome === FAILED) return cpu.setPc64(cpu.pc64 - 4n);
    await this.completeSystemCall(thread, outcome);
  }

  private async completeSystemCall(thread: ThreadContext, outcome: KernelCallOutcome): Promise<void> {
    switch (outcome.kind) {
      case "return":
      case "error": {
        thread.entry.result = setSystemCallResult(this.cpu, outcome);
        if (outcome.signalPending) await this.signals.deliver(thread);
        // Past its signal check the call can no longer restart (unless that check is still to come).
        if (!thread.signalCheck) thread.entry.restartable = false;
        return;
      }
      case "blocked":
        this.release(thread);
        this.needsSchedule = true;
        thread.pending = this.host.followBlockedCall(thread, outcome.done);
        return;
      case "exec":
        return this.exec(thread, outcome.entry, outcome.spaceId);
      case "exit-thread":
        return this.host.discardThread(thread);
      case "exit-process":
        return this.host.discardProcess(thread.pid);
    }
  }

  /** execve: the new program's registers (all others reset), its address space, nothing cached. */
  private exec(thread: ThreadContext, entry: ThreadEntry, spaceId: bigint): void {
    const registers = this.scratch;
    applyExecEntry(registers, entry);
    loadCpu(registers, this.cpu);
    this.host.changeSpace(thread, spaceId);
    this.bindSpace(this.host.threads.spaces.bind(spaceId));
    // The same space may hold a new image: nothing decoded or translated survives.
    this.flushTranslations();
    thread.entry.restartable = false;
  }

  // ---- storage and program interrupts ----

  private async onStorageFault(thread: ThreadContext): Promise<void> {
    const cpu = this.cpu;
    const address = cpu.faultAddress, access = cpu.faultAccess, cause = cpu.faultCause;
    this.traps++;
    const entry = thread.entry;
    const segment = cause === "no-segment";
    entry.trap = access === "execute"
      ? (segment ? TRAP_INSTRUCTION_SEGMENT : TRAP_INSTRUCTION_STORAGE)
      : (segment ? TRAP_DATA_SEGMENT : TRAP_DATA_STORAGE);
    entry.dar = address;
    entry.dsisr = storageDsisr(access, cause);
    entry.restartable = false;
    if (this.repeatedFault(address, access)) {
      this.host.log.warn("a fault the kernel side resolved keeps recurring; the thread gets SIGSEGV", {
        cpu: this.index,
        tid: thread.tid,
        address: `0x${address.toString(16)}`,
        access,
        cause,
      });
      const code = cause === "protection" ? SEGV_ACCERR : SEGV_MAPERR;
      return this.signals.raiseFault(thread, SIGSEGV, code, address, entry.trap);
    }
    const binding = this.host.threads.spaces.bind(thread.spaceId);
    if (segment) {
      const outcome = await this.ask(thread, "segment miss", (k) => k.segmentMiss(thread, address, access));
      if (outcome === GONE) return;
      if (outcome === FAILED) {
        this.lastFault.retired = -1;
        return;
      }
      if (outcome.kind === "segment") {
        if (!this.loadSegment(thread, binding, outcome.entry, address)) {
          await this.signals.raiseFault(thread, SIGSEGV, SEGV_MAPERR, address, entry.trap);
        }
        return;
      }
      return this.signals.deliver(thread);
    }
    if (access === "execute" && cause === "protection" && this.signals.atTrampoline(binding, address)) {
      return this.signals.returnThroughTrampoline(thread, address);
    }
    this.pageFaults++;
    const outcome = await this.ask(thread, "page fault", (k) => k.pageFault(thread, address, access, cause));
    if (outcome === GONE) return;
    // The instruction faults again and asks again; that is no sign of a fault vmm cannot resolve.
    if (outcome === FAILED) {
      this.lastFault.retired = -1;
      return;
    }
    if (outcome.kind === "mapped") {
      // A protection fault left a cached translation that forbids the access.
      if (address < 1n << 53n) {
        this.host.mmu.invalidatePage(binding.context, Number(address));
        this.memory.tlb.flushPage(Number(address));
      }
      return;
    }
    await this.signals.deliver(thread);
  }

  /** The same fault again with no instruction completed since: the kernel side's answer did not help. */
  private repeatedFault(address: bigint, access: string): boolean {
    const last = this.lastFault, retired = this.cpu.retired;
    if (last.address === address && last.access === access && last.retired === retired) {
      if (++last.repeats >= MAX_REPEATED_FAULTS) {
        last.retired = -1;
        return true;
      }
      return false;
    }
    last.address = address;
    last.access = access;
    last.retired = retired;
    last.repeats = 0;
    return false;
  }

  /** Installs the SLB entry vmm gave for a segment miss at `address`; false if it does not cover it. */
  private loadSegment(
    thread: ThreadContext,
    binding: SpaceBinding,
    entry: SlbEntry,
    address: bigint,
  ): boolean {
    const shift = BigInt(segmentShift(entry.segmentSize));
    if (address >> shift !== BigInt(entry.esid)) {
      this.host.log.warn("vmm answered a segment miss with a segment that does not hold the address", {
        tid: thread.tid,
        address: `0x${address.toString(16)}`,
        esid: entry.esid,
      });
      return false;
    }
    try {
      this.host.mmu.installSegment(binding.context, entry);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      this.host.log.warn("vmm answered a segment miss with an invalid SLB entry", {
        tid: thread.tid,
        error: error.message,
      });
      return false;
    }
    return true;
  }

  private async onProgram(thread: ThreadContext): Promise<void> {
    const cpu = this.cpu;
    this.traps++;
    const pc = cpu.pc64;
    const target = cpu.programReason === "privileged-instruction" ? mfpvrTarget(cpu.stopInstruction) : -1;
    if (target >= 0) {
      writeGpr(cpu.gpr, target, BigInt(PVR_POWER9));
      cpu.setPc64(pc + 4n);
      return;
    }
    const { signal, code } = programSignal(cpu.programReason, cpu.fpscr);
    this.logInterrupt(thread, "program interrupt", { reason: cpu.programReason, signal });
    await this.signals.raiseFault(thread, signal, code, pc, TRAP_PROGRAM);
  }

  /** Why a thread is about to get a signal from its own instruction, for whoever debugs it. */
  private logInterrupt(thread: ThreadContext, what: string, fields: Record<string, unknown>): void {
    const pc = this.cpu.pc64;
    this.host.log.debug(what, {
      pid: thread.pid,
      tid: thread.tid,
      pc: `0x${pc.toString(16)}`,
      instruction: formatInstruction(this.cpu.stopInstruction, pc),
      ...fields,
    });
  }

  // ---- the time slice ----

  private async tick(thread: ThreadContext): Promise<void> {
    this.traps++;
    const outcome = await this.ask(thread, "tick", (k) => k.tick(this.index, this.host.clockNanos()));
    if (outcome === GONE) return;
    if (outcome === FAILED) {
      this.sliceEndsAt = performance.now() + this.timeSliceNanos / 1e6;
      return;
    }
    const next = outcome.next;
    if (outcome.preempt && next?.tid !== thread.tid) {
      if (outcome.signalPending) thread.signalCheck = true;
      this.release(thread);
      this.dispatch(next);
      return;
    }
    if (next !== undefined && next.timeSliceNanos > 0) this.timeSliceNanos = next.timeSliceNanos;
    this.sliceEndsAt = performance.now() + this.timeSliceNanos / 1e6;
    if (outcome.signalPending) {
      thread.entry.trap = TRAP_DECREMENTER;
      thread.entry.restartable = false;
      await this.signals.deliver(thread);
    }
  }

  // ---- changing threads ----

  /** Saves the thread's registers and takes it off the CPU. */
  private release(thread: ThreadContext): void {
    if (this.loaded) saveCpu(this.cpu, thread.registers);
    thread.cpu = -1;
    this.thread = undefined;
    this.loaded = false;
    this.changeThread();
  }

  /** A new epoch: answers for the previous thread are dropped, and a wait for one ends now. */
  private changeThread(): void {
    this.epoch++;
    this.lastStop = -1;
    const interrupt = this.interruptWait;
    this.interruptWait = undefined;
    interrupt?.(GONE);
  }

  /** `promise`, or GONE as soon as the thread leaves the CPU. */
  private whileHere<T>(promise: Promise<T>): Promise<T | typeof GONE> {
    const wait = Promise.withResolvers<T | typeof GONE>();
    this.interruptWait = wait.resolve;
    promise.then(wait.resolve, wait.reject);
    return wait.promise;
  }

  /** Runs what the scheduler chose, if it is a thread the machine can run. */
  private dispatch(next: Dispatch | undefined): void {
    if (next === undefined) return;
    const thread = this.host.threads.get(next.tid);
    if (thread === undefined || thread.pid !== next.pid || thread.cpu >= 0) {
      this.host.log.warn("the scheduler chose a thread the CPU cannot run; the CPU idles", {
        cpu: this.index,
        tid: next.tid,
        pid: next.pid,
        reason: thread === undefined
          ? "no such thread context"
          : thread.pid !== next.pid
          ? `the thread belongs to process ${thread.pid}`
          : `the thread is on CPU ${thread.cpu}`,
      });
      return;
    }
    this.put(thread, next.timeSliceNanos);
  }

  private async scheduleNext(): Promise<void> {
    this.needsSchedule = false;
    let next: Dispatch | undefined;
    try {
      next = await this.host.kernel().schedule(this.index);
      this.backoffMillis = 0;
    } catch (error) {
      await this.backOff("the scheduler could not be asked for the next thread; trying again", {}, error);
      this.interruptWait = undefined;
      if (this.thread === undefined) this.needsSchedule = true;
      return;
    }
    if (this.thread !== undefined) {
      // RunThread put a thread here while the scheduler was choosing.
      if (next !== undefined && next.tid !== this.thread.tid) {
        this.host.log.warn("the scheduler chose a thread for a CPU that RunThread had filled", {
          cpu: this.index,
          chosen: next.tid,
          running: this.thread.tid,
        });
      }
      return;
    }
    this.dispatch(next);
  }

  // ---- copies to and from the thread's memory, faulting pages in ----

  private async copyIn(
    thread: ThreadContext,
    address: bigint,
    length: number,
  ): Promise<Answer<Uint8Array | "fault">> {
    const memory = this.host.threads.spaces.bind(thread.spaceId).memory;
    for (let attempt = 0;; attempt++) {
      const bytes = memory.read(address, length);
      if (bytes instanceof Uint8Array) return bytes.slice();
      if (attempt === MAX_REPEATED_FAULTS) return "fault";
      const resolved = await this.faultIn(thread, bytes);
      if (resolved !== "ok") return resolved;
    }
  }

  private async copyOut(
    thread: ThreadContext,
    address: bigint,
    data: Uint8Array,
  ): Promise<Answer<"ok" | "fault">> {
    const memory = this.host.threads.spaces.bind(thread.spaceId).memory;
    for (let attempt = 0;; attempt++) {
      const written = memory.write(address, data);
      if (written === true) return "ok";
      if (attempt === MAX_REPEATED_FAULTS) return "fault";
      const resolved = await this.faultIn(thread, written);
      if (resolved !== "ok") return resolved;
    }
  }

  /** Resolves a copy's fault through vmm: "fault" when vmm answers with a signal. */
  private async faultIn(thread: ThreadContext, fault: UserFault): Promise<Answer<"ok" | "fault">> {
    const binding = this.host.threads.spaces.bind(thread.spaceId);
    if (fault.cause === "no-segment") {
      const outcome = await this.ask(
        thread,
        "segment miss",
        (k) => k.segmentMiss(thread, fault.address, fault.access),
      );
      if (outcome === GONE || outcome === FAILED) return outcome;
      if (outcome.kind === "signal") return "fault";
      return this.loadSegment(thread, binding, outcome.entry, fault.address) ? "ok" : "fault";
    }
    const cause = fault.cause;
    this.pageFaults++;
    const outcome = await this.ask(
      thread,
      "page fault",
      (k) => k.pageFault(thread, fault.address, fault.access, cause),
    );
    if (outcome === GONE || outcome === FAILED) return outcome;
    if (outcome.kind === "signal") return "fault";
    if (fault.address < 1n << 53n) this.host.mmu.invalidatePage(binding.context, Number(fault.address));
    return "ok";
  }
}
