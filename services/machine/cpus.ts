// The machine's CPUs: a core per CPU (core.ts), the thread contexts they run (threads.ts), and
// what the MachineService asks of them — starting and stopping CPUs, dispatching threads, thread
// contexts, copies to and from a thread's memory, TLB invalidations. It also is the cores' host:
// it settles blocked system calls of threads off every CPU and drops threads and processes that
// ended, wherever they are.
import { AstraError, Code, Errno, failedPrecondition, invalidArgument } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { segmentShift, type SlbEntry } from "../../lib/ppc/hpt.ts";
import { Core, type CoreHost, type CpuActivity } from "./core.ts";
import type { KernelCallOutcome, KernelSide, UserAccess, UserFault } from "./kernel_side.ts";
import type { PhysicalMemory } from "./memory.ts";
import type { Mmu } from "./mmu.ts";
import { applyExecEntry, loadCpu, RegisterFile, saveCpu, setSystemCallResult } from "./registers.ts";
import { AddressSpaces, type SpaceBinding, ThreadContext, ThreadTable } from "./threads.ts";

const DEFAULT_SLICE_MILLIS = 4;
/** The time slice of a thread RunThread puts on a CPU: the scheduler's own choice comes with its dispatches. */
const DEFAULT_TIME_SLICE_NANOS = 10_000_000;
const ADDRESS_LIMIT = 1n << 53n;

export interface CpuComplexOptions {
  cpus: number;
  mmu: Mmu;
  physical: PhysicalMemory;
  log: Logger;
  /** The timebase in ticks (mftb). */
  timebase: () => number;
  /** Monotonic nanoseconds, the time tick() reports. */
  clockNanos: () => bigint;
  /** Makes the kernel side, when a thread is first put on a CPU; without it threads cannot run. */
  kernelSide?: () => KernelSide;
  /** Guest time between two yields to the event loop. */
  sliceMillis?: number;
  defaultTimeSliceNanos?: number;
}

/** A CPU at a glance, with its real counters. */
export interface CpuCounters {
  cpu: number;
  activity: CpuActivity;
  pid: number;
  tid: number;
  instructionsRetired: number;
  traps: number;
  /** Slow-path translations served by the MMU's TLB, and those that walked the page table. */
  tlbHits: number;
  tlbMisses: number;
  pageFaults: number;
  translatedBlocks: number;
  blockInvalidations: number;
}

/** A new thread context, as CreateThreadContext describes it. */
export interface ThreadSpec {
  pid: number;
  tid: number;
  /** 0 with copyFromTid: the source thread's space (a thread of the same process). */
  spaceId: bigint;
  /** Start from this thread's registers and segments (0: from zero). */
  copyFromTid: number;
  /** The registers, given the ones the thread starts from; unset keeps those. */
  registers?: (base: RegisterFile) => RegisterFile;
  /** Segments loaded over the ones the thread starts from. */
  segments: readonly SlbEntry[];
}

/** What an InvalidateTlb drops. */
export type TlbInvalidation =
  | { scope: "page"; vsid: number; ea: number; bytes: number }
  | { scope: "segment"; vsid: number }
  | { scope: "all" };

export class CpuComplex implements CoreHost {
  readonly cores: readonly Core[];
  readonly threads: ThreadTable;
  readonly mmu: Mmu;
  readonly log: Logger;
  #kernel: KernelSide | undefined;

  constructor(private readonly options: CpuComplexOptions) {
    this.mmu = options.mmu;
    this.log = options.log;
    const spaces = new AddressSpaces(options.mmu, options.physical, (binding) => this.spaceReleased(binding));
    this.threads = new ThreadTable(spaces);
    const coreOptions = {
      sliceMillis: options.sliceMillis ?? DEFAULT_SLICE_MILLIS,
      defaultTimeSliceNanos: options.defaultTimeSliceNanos ?? DEFAULT_TIME_SLICE_NANOS,
      timebase: options.timebase,
    };
    this.cores = Array.from(
      { length: options.cpus },
      (_, index) => new Core(index, this, options.physical, coreOptions),
    );
    options.physical.observeWrites((address, length) => this.physicalWritten(address, length));
  }

  // ---- the cores' host ----

  kernel(): KernelSide {
    if (this.#kernel === undefined) {
      if (this.options.kernelSide === undefined) {
        throw failedPrecondition("no kernel side is wired to the machine: it cannot run threads");
      }
      this.#kernel = this.options.kernelSide();
    }
    return this.#kernel;
  }

  clockNanos(): bigint {
    return this.options.clockNanos();
  }

  discardThread(thread: ThreadContext): void {
    const core = thread.cpu >= 0 ? this.cores[thread.cpu] : undefined;
    if (core?.thread === thread) core.drop();
    thread.pending = undefined;
    this.threads.remove(thread);
  }

  discardProcess(pid: number): void {
    for (const thread of this.threads.ofProcess(pid)) this.discardThread(thread);
  }

  /** Parks every thread of the process that is on a CPU between traps; those in the kernel stop on their way out. */
  stopProcess(pid: number): void {
    for (const thread of this.threads.ofProcess(pid)) {
      const core = thread.cpu >= 0 ? this.cores[thread.cpu] : undefined;
      if (core?.thread === thread && !core.waitingForKernel) core.park();
    }
  }

  followBlockedCall(thread: ThreadContext, done: Promise<KernelCallOutcome>): Promise<void> {
    return done.then(
      (outcome) => this.completeBlockedCall(thread, outcome),
      (error) => {
        if (!this.threads.holds(thread)) return;
        this.log.error("a blocked system call failed in the kernel side; the thread issues it again", {
          tid: thread.tid,
          error: error instanceof Error ? error.message : String(error),
        });
        thread.registers.pc -= 4n;
        thread.pending = undefined;
      },
    );
  }

  changeSpace(thread: ThreadContext, spaceId: bigint): void {
    const same = thread.spaceId === spaceId;
    this.threads.changeSpace(thread, spaceId);
    if (!same) return;
    // execve into the space the thread already had: what was cached of it is stale.
    const binding = this.threads.spaces.bind(spaceId);
    this.mmu.invalidateContext(binding.context);
    for (const core of this.coresBoundTo(binding.context)) core.flushTranslations();
  }

  /** The outcome of a blocked call, applied to the context of a thread off the CPU. */
  private completeBlockedCall(thread: ThreadContext, outcome: KernelCallOutcome): Promise<void> | void {
    if (!this.threads.holds(thread)) return;
    const registers = thread.registers;
    switch (outcome.kind) {
      case "return":
      case "error": {
        thread.entry.result = setSystemCallResult(registers, outcome);
        if (outcome.signalPending) thread.signalCheck = true;
        thread.pending = undefined;
        return;
      }
      case "blocked":
        thread.pending = this.followBlockedCall(thread, outcome.done);
        return thread.pending;
      case "exec":
        applyExecEntry(registers, outcome.entry);
        this.changeSpace(thread, outcome.spaceId);
        thread.entry.restartable = false;
        thread.pending = undefined;
        return;
      case "exit-thread":
        return this.discardThread(thread);
      case "exit-process":
        return this.discardProcess(thread.pid);
    }
  }

  private spaceReleased(binding: SpaceBinding): void {
    for (const core of this.coresBoundTo(binding.context)) core.bindSpace(null);
  }

  private coresBoundTo(context: number): Core[] {
    return this.cores.filter((core) => core.memory.context === context);
  }

  /** Guest physical memory changed outside the CPUs: instructions decoded from it are stale. */
  private physicalWritten(address: number, length: number): void {
    for (const core of this.cores) {
      for (const page of core.memory.takeCodePages(address, length)) {
        core.cpu.invalidateCode(page * 4096, 4096);
      }
    }
  }

  // ---- CPUs ----

  /** The core of a CPU number, or INVALID_ARGUMENT naming `argument`. */
  core(cpu: number, argument = "cpu"): Core {
    const core = this.cores[cpu];
    if (!Number.isInteger(cpu) || core === undefined) {
      throw invalidArgument(argument, `the machine has CPUs 0..${this.cores.length - 1}, not ${cpu}`);
    }
    return core;
  }

  counters(cpu: number): CpuCounters {
    const core = this.core(cpu);
    const translation = core.cpu.translation;
    return {
      cpu,
      activity: core.activity,
      pid: core.thread?.pid ?? 0,
      tid: core.thread?.tid ?? 0,
      instructionsRetired: core.cpu.retired,
      traps: core.traps,
      tlbHits: core.memory.mmuTlbHits,
      tlbMisses: core.memory.mmuTlbMisses,
      pageFaults: core.pageFaults,
      translatedBlocks: Math.max(0, (translation?.regions ?? 0) - (translation?.invalidatedRegions ?? 0)),
      blockInvalidations: translation?.invalidatedRegions ?? 0,
    };
  }

  startCpu(cpu: number): void {
    this.core(cpu).start();
  }

  stopCpu(cpu: number): void {
    this.core(cpu).stop();
  }

  stopAll(): void {
    for (const core of this.cores) core.stop();
  }

  /** Stops every CPU and lets go of the kernel side. */
  async shutdown(): Promise<void> {
    this.stopAll();
    const kernel = this.#kernel;
    this.#kernel = undefined;
    await kernel?.close?.();
  }

  /** Puts a thread on an idle CPU. */
  runThread(cpu: number, tid: number): void {
    const core = this.core(cpu);
    const thread = this.threads.require(tid);
    if (!core.started) throw failedPrecondition(`CPU ${cpu} is stopped: StartCpu first`, Errno.EBUSY, "cpu");
    if (core.thread !== undefined) {
      throw failedPrecondition(`CPU ${cpu} is running TID ${core.thread.tid}`, Errno.EBUSY, "cpu");
    }
    if (thread.cpu >= 0) throw failedPrecondition(`TID ${tid} is on CPU ${thread.cpu}`, Errno.EBUSY, "tid");
    this.kernel();
    core.put(thread, 0);
  }

  /** A stopped CPU with no trap outstanding, or FAILED_PRECONDITION. */
  stoppedCore(cpu: number): Core {
    const core = this.core(cpu);
    if (core.started) throw failedPrecondition(`CPU ${cpu} is running: StopCpu first`, Errno.EBUSY, "cpu");
    if (core.waitingForKernel) {
      throw failedPrecondition(
        `CPU ${cpu} still waits for the kernel side to answer a trap`,
        Errno.EBUSY,
        "cpu",
      );
    }
    return core;
  }

  /** The registers a CPU holds: its thread's, live. */
  cpuRegisters(cpu: number): RegisterFile {
    const core = this.core(cpu);
    if (core.thread !== undefined && !core.holdsRegisters) return copyOf(core.thread.registers);
    const registers = new RegisterFile();
    saveCpu(core.cpu, registers);
    return registers;
  }

  /** Replaces the registers of a stopped CPU (its thread's, when one is on it). */
  setCpuRegisters(cpu: number, registers: RegisterFile): void {
    const core = this.stoppedCore(cpu);
    if (core.thread !== undefined && !core.holdsRegisters) core.thread.registers.copyFrom(registers);
    else loadCpu(registers, core.cpu);
  }

  /** The SLB of the space a CPU's thread runs in (empty without a thread). */
  cpuSegments(cpu: number): SlbEntry[] {
    const thread = this.core(cpu).thread;
    return thread === undefined ? [] : this.segmentsOf(thread);
  }

  /** Replaces the SLB of the space of a stopped CPU's thread. */
  setCpuSegments(cpu: number, segments: readonly SlbEntry[]): void {
    const core = this.stoppedCore(cpu);
    if (core.thread === undefined) {
      if (segments.length === 0) return;
      throw failedPrecondition(
        `CPU ${cpu} has no thread whose segments it could load`,
        Errno.EINVAL,
        "state.slb",
      );
    }
    this.replaceSegments(core.thread, segments);
  }

  // ---- thread contexts ----

  createThread(spec: ThreadSpec): ThreadContext {
    const source = spec.copyFromTid !== 0
      ? this.threads.require(spec.copyFromTid, "copy_from_tid")
      : undefined;
    const spaceId = spec.spaceId !== 0n ? spec.spaceId : source?.spaceId;
    if (spaceId === undefined) {
      throw invalidArgument("context.space_id", "a thread context names its address space");
    }
    const base = source !== undefined ? this.registersOf(source) : new RegisterFile();
    const registers = spec.registers?.(base) ?? base;
    const thread = new ThreadContext(spec.pid, spec.tid, spaceId);
    thread.registers.copyFrom(registers);
    this.threads.add(thread);
    const binding = this.threads.spaces.bind(spaceId);
    // Segments belong to the address space, not to the thread: a thread copied into another space
    // (fork) finds that space's segments through vmm, never the source's.
    const segments = spec.segments;
    for (const entry of segments) this.installSegment(binding, entry);
    // Segments of a space a CPU runs in may have been replaced: its cached translations go.
    if (segments.length > 0) {
      for (const core of this.coresBoundTo(binding.context)) {
        core.flushTranslations();
      }
    }
    return thread;
  }

  /** A thread's registers as they are now (live from its CPU when it is on one). */
  registersOf(thread: ThreadContext): RegisterFile {
    const core = thread.cpu >= 0 ? this.cores[thread.cpu] : undefined;
    if (core?.thread === thread && core.holdsRegisters) {
      const registers = new RegisterFile();
      saveCpu(core.cpu, registers);
      return registers;
    }
    return copyOf(thread.registers);
  }

  /** The segments of a thread: the SLB of its space. */
  segmentsOf(thread: ThreadContext): SlbEntry[] {
    const binding = this.threads.spaces.find(thread.spaceId);
    return binding === undefined ? [] : this.mmu.segments(binding.context);
  }

  /** Replaces the registers and/or segments of a thread that is not running. */
  setThread(
    tid: number,
    registers: ((base: RegisterFile) => RegisterFile) | undefined,
    segments?: readonly SlbEntry[],
  ) {
    const thread = this.threads.require(tid);
    const core = thread.cpu >= 0 ? this.cores[thread.cpu] : undefined;
    if (core?.started || core?.waitingForKernel) {
      throw failedPrecondition(`TID ${tid} is running on CPU ${thread.cpu}`, Errno.EBUSY, "tid");
    }
    if (registers !== undefined) {
      const next = registers(this.registersOf(thread));
      if (core?.thread === thread && core.holdsRegisters) loadCpu(next, core.cpu);
      else thread.registers.copyFrom(next);
    }
    if (segments !== undefined) this.replaceSegments(thread, segments);
  }

  deleteThread(tid: number): void {
    const thread = this.threads.require(tid);
    if (thread.cpu >= 0) throw failedPrecondition(`TID ${tid} is on CPU ${thread.cpu}`, Errno.EBUSY, "tid");
    this.discardThread(thread);
  }

  private replaceSegments(thread: ThreadContext, segments: readonly SlbEntry[]): void {
    const binding = this.threads.spaces.bind(thread.spaceId);
    for (const entry of this.mmu.segments(binding.context)) {
      this.mmu.removeSegment(binding.context, entry.esid, entry.segmentSize);
    }
    for (const entry of segments) this.installSegment(binding, entry);
    for (const core of this.coresBoundTo(binding.context)) core.flushTranslations();
  }

  private installSegment(binding: SpaceBinding, entry: SlbEntry): void {
    try {
      this.mmu.installSegment(binding.context, entry);
    } catch (error) {
      if (error instanceof RangeError) throw invalidArgument("segments", error.message);
      throw error;
    }
  }

  // ---- a thread's memory ----

  /** copy_from_user for a service: EFAULT names the first untranslatable address. */
  async readVirtual(tid: number, address: bigint, length: number): Promise<Uint8Array> {
    const thread = this.threads.require(tid);
    const memory = this.threads.spaces.bind(thread.spaceId).memory;
    for (let attempt = 0;; attempt++) {
      const bytes = memory.read(address, length);
      if (bytes instanceof Uint8Array) return bytes.slice();
      if (!await this.segmentFor(thread, bytes, attempt)) throw userFault(thread, bytes);
    }
  }

  /** copy_to_user for a service: all or nothing. */
  async writeVirtual(tid: number, address: bigint, data: Uint8Array): Promise<void> {
    const thread = this.threads.require(tid);
    const memory = this.threads.spaces.bind(thread.spaceId).memory;
    for (let attempt = 0;; attempt++) {
      const written = memory.write(address, data);
      if (written === true) return;
      if (!await this.segmentFor(thread, written, attempt)) throw userFault(thread, written);
    }
  }

  /** Resolves a copy's segment miss through the kernel side (vmm), once; false when it cannot. */
  private async segmentFor(thread: ThreadContext, fault: UserFault, attempt: number): Promise<boolean> {
    if (fault.cause !== "no-segment" || attempt > 0 || this.options.kernelSide === undefined) return false;
    const outcome = await this.kernel().segmentMiss(thread, fault.address, fault.access);
    if (outcome.kind !== "segment") return false;
    const entry = outcome.entry;
    if (fault.address >> BigInt(segmentShift(entry.segmentSize)) !== BigInt(entry.esid)) return false;
    if (!this.threads.holds(thread)) return false;
    try {
      this.mmu.installSegment(this.threads.spaces.bind(thread.spaceId).context, entry);
    } catch (error) {
      if (error instanceof RangeError) return false;
      throw error;
    }
    return true;
  }

  // ---- translation ----

  /** Drops cached translations after an HPTE changed; returns the entries dropped. */
  invalidateTlb(invalidation: TlbInvalidation, cpus: readonly number[]): number {
    const cores = cpus.length === 0 ? this.cores : cpus.map((cpu) => this.core(cpu, "cpus"));
    switch (invalidation.scope) {
      case "page": {
        const { vsid, ea, bytes } = invalidation;
        let dropped = this.mmu.invalidateVirtualPage(vsid, ea, bytes);
        for (const core of cores) if (this.boundToVsid(core, vsid)) dropped += core.flushPages(ea, bytes);
        return dropped;
      }
      case "segment": {
        let dropped = this.mmu.invalidateVsid(invalidation.vsid);
        for (const core of cores) {
          if (this.boundToVsid(core, invalidation.vsid)) dropped += core.flushTranslations();
        }
        return dropped;
      }
      case "all": {
        let dropped = this.mmu.invalidateAll();
        for (const core of cores) dropped += core.flushTranslations();
        return dropped;
      }
    }
  }

  /** Points the MMU at a new hashed page table: nothing cached survives. */
  setHashTable(origin: number, sizeField: number): number {
    let dropped = this.mmu.invalidateAll();
    this.mmu.setHashTable(origin, sizeField);
    for (const core of this.cores) dropped += core.flushTranslations();
    return dropped;
  }

  private boundToVsid(core: Core, vsid: number): boolean {
    const context = core.memory.context;
    return context !== null && this.mmu.segments(context).some((entry) => entry.vsid === vsid);
  }
}

function copyOf(registers: RegisterFile): RegisterFile {
  const copy = new RegisterFile();
  copy.copyFrom(registers);
  return copy;
}

/** EFAULT for a copy that found no translation, naming the address. */
function userFault(thread: ThreadContext, fault: UserFault): AstraError {
  const access: UserAccess = fault.access;
  const address = `0x${fault.address.toString(16)}`;
  const why = fault.address >= ADDRESS_LIMIT
    ? "is beyond every user address"
    : fault.cause === "no-segment"
    ? "is in no segment"
    : fault.cause === "not-mapped"
    ? "is not mapped"
    : fault.cause === "protection"
    ? `does not allow a ${access}`
    : "is not backed by RAM";
  return new AstraError(Code.OUT_OF_RANGE, Errno.EFAULT, `address ${address} of TID ${thread.tid} ${why}`, {
    argument: "address",
    facts: { address, cause: fault.cause, access },
  });
}
