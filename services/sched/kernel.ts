// The sched kernel: processes and threads (processes.ts) put together with the runqueues
// (runqueue.ts), sleeps and timeouts (timers.ts), futexes, signals and the loader, and the peers
// that hold the rest of a process: storage's descriptor table, vmm's address space and the
// machine's thread contexts. Every RPC and kernel call of sched ends up here; the process state
// machine only moves through these methods.
import type { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { DescriptorInheritance, type VfsService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import { AccessType, FaultCause, type VmmService } from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { AstraError, Code, Errno, failedPrecondition, invalidArgument } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import type { Client } from "../../lib/rpc.ts";
import { CACHE_BLOCK_SIZE } from "./auxv.ts";
import { type CpuTimes, GuestClock } from "./clock.ts";
import {
  type CpuDescription,
  entryRegisters,
  type LoadedProgram,
  type LoaderPeers,
  loadProgram,
  PAGE_SIZE,
} from "./exec.ts";
import { futexKey, FutexTable } from "./futex.ts";
import {
  addUsage,
  commandName,
  type Credentials,
  emptyUsage,
  INIT_PID,
  KERNEL_PID,
  type Process,
  ProcessTable,
  programBaseName,
  SS_AUTODISARM,
  SS_DISABLE,
  type Thread,
  type Usage,
  type WaitObject,
} from "./processes.ts";
import {
  mayAccessLimitsOf,
  type ResourceLimitPair,
  RLIMIT_NICE,
  RLIMIT_SIGPENDING,
  RLIMIT_STACK,
} from "./rlimits.ts";
import {
  type Dispatch,
  PRIORITY_NORMAL,
  PRIORITY_REALTIME,
  Scheduler,
  type SchedulingParameters,
  type TickDecision,
} from "./runqueue.ts";
import {
  CLD_CONTINUED,
  CLD_DUMPED,
  CLD_EXITED,
  CLD_KILLED,
  CLD_STOPPED,
  defaultAction,
  encodeSiginfo,
  hasSignal,
  ignoredOnArrival,
  isValidSignal,
  nextDeliverableSignal,
  SA_NOCLDSTOP,
  SA_NOCLDWAIT,
  SA_ONSTACK,
  SI_TKILL,
  SI_USER,
  SIG_DFL,
  SIG_IGN,
  SIGCHLD,
  SIGCONT,
  SIGKILL,
  type SignalAction,
  signalBit,
  type SignalInfo,
  signalName,
  signalsCancelledBy,
  type SignalSet,
  takeNextSignal,
} from "./signals.ts";
import type { RandomFill } from "./stack.ts";
import { type HostTimers, TimerQueue } from "./timers.ts";
import {
  checkChildren,
  ChildWaiters,
  CONTINUED_STATUS,
  decodeWaitStatus,
  exitedStatus,
  killedStatus,
  noChildren,
  stoppedStatus,
  type WaitOptions,
} from "./wait.ts";

/** The peers sched calls. */
export interface SchedPeers {
  vmm: LoaderPeers["vmm"] & Pick<Client<typeof VmmService>, "forkAddressSpace">;
  machine:
    & LoaderPeers["machine"]
    & Pick<
      Client<typeof MachineService>,
      "getInfo" | "startCpu" | "runThread" | "getThreadContext" | "setThreadContext"
    >;
  vfs:
    & LoaderPeers["vfs"]
    & Pick<Client<typeof VfsService>, "attachProcess" | "execProcess" | "detachProcess">;
}

export interface KernelOptions {
  cpus: number;
  timeSliceNanos?: number;
  clock?: GuestClock;
  hostTimers?: HostTimers;
  random?: RandomFill;
}

/** How a sleep ended. */
export type SleepEnd =
  | { kind: "woken" }
  | { kind: "timeout" }
  | { kind: "signal" }
  /** The process died while the thread slept: its kernel call answers EXIT_PROCESS. */
  | { kind: "exit"; waitStatus: number };

export interface SleepRequest {
  state: "sleeping" | "blocked";
  waitObject?: WaitObject | null;
  /** Monotonic nanoseconds at which the sleep ends with "timeout". */
  wakeAt?: number | null;
  /** The thread sleeps inside a sched kernel call: the call, not sched, makes it runnable again. */
  inCall: boolean;
  /** A deliverable signal ends it (EINTR); storage's I/O waits are not sched's to cut short. */
  interruptible: boolean;
  onEnd?: (reason: SleepEnd) => void;
}

interface Sleeper extends SleepRequest {
  thread: Thread;
  timer: number | null;
}

export interface WaitResult {
  pid: number;
  waitStatus: number;
  usage: Usage;
}

export type SignalDecision =
  | { kind: "none" }
  | {
    kind: "handler";
    signal: number;
    action: SignalAction;
    handlerMask: SignalSet;
    savedMask: SignalSet;
    siginfo: Uint8Array;
    alternateStack: bigint;
    alternateStackSize: bigint;
    morePending: boolean;
  }
  | { kind: "terminate"; signal: number; waitStatus: number }
  | { kind: "stop"; signal: number };

export interface KillRequest {
  senderPid: number;
  pid: number;
  tid: number;
  signal: number;
  forced: boolean;
  code: number;
  address: bigint;
}

export interface CreateProcessRequest {
  parentPid: number;
  programPath: Uint8Array;
  argv: Uint8Array[];
  envp: Uint8Array[];
  name: string;
  credentials: Credentials | null;
}

export interface Counters {
  forks: number;
  execs: number;
  exits: number;
  signalsDelivered: number;
  kernelCalls: number;
}

export interface CloneRequest {
  pid: number;
  tid: number;
  /** Share the address space: a new thread of the process (CLONE_VM with CLONE_THREAD). */
  thread: boolean;
  /** The child's stack pointer (0: the caller's) and thread pointer (r13) with CLONE_SETTLS. */
  stack: bigint;
  tls: bigint | null;
  /** CLONE_CHILD_SETTID: where the child's memory gets its TID; CLONE_CHILD_CLEARTID's address. */
  childSetTid: bigint;
  childClearTid: bigint;
}

const log = logger("sched");
const encoder = new TextEncoder();

function describe(error: unknown): string {
  return error instanceof AstraError ? error.describe() : String(error);
}

function toUsage(runtimeNanos: number, voluntary: number, involuntary: number): Usage {
  return {
    ...emptyUsage(),
    userNanos: runtimeNanos,
    voluntarySwitches: voluntary,
    involuntarySwitches: involuntary,
  };
}

/** Clock ticks (USER_HZ) of a CPU time, as siginfo's si_utime carries them. */
function clockTicks(nanos: number): bigint {
  return BigInt(Math.floor(nanos / 10_000_000));
}

export class SchedKernel {
  readonly table = new ProcessTable();
  readonly scheduler: Scheduler;
  readonly futexes = new FutexTable();
  readonly clock: GuestClock;
  readonly timers: TimerQueue;
  readonly counters: Counters = { forks: 0, execs: 0, exits: 0, signalsDelivered: 0, kernelCalls: 0 };
  readonly #childWaiters = new ChildWaiters();
  readonly #sleepers = new Map<number, Sleeper>();
  readonly #random: RandomFill;
  #cpu: CpuDescription = {
    hwcap: 0,
    hwcap2: 0,
    platform: "power9",
    dcacheBlockSize: CACHE_BLOCK_SIZE,
    icacheBlockSize: CACHE_BLOCK_SIZE,
  };
  #cpusStarted = false;

  constructor(private readonly peers: SchedPeers, options: KernelOptions) {
    this.scheduler = new Scheduler(options.cpus, options.timeSliceNanos);
    this.clock = options.clock ?? new GuestClock();
    this.timers = new TimerQueue(() => this.clock.monotonicNanos(), options.hostTimers);
    this.#random = options.random ?? ((target) => crypto.getRandomValues(target));
  }

  /** scheduler_init: the CPU's features and clock from the machine, then every CPU started. */
  async start(): Promise<void> {
    const info = await this.peers.machine.getInfo({});
    this.#cpu = {
      hwcap: Number(info.hwcap & 0xffffffffn),
      hwcap2: Number(info.hwcap2 & 0xffffffffn),
      platform: info.platform || "power9",
      dcacheBlockSize: info.dcacheBlockBytes || CACHE_BLOCK_SIZE,
      icacheBlockSize: info.icacheBlockBytes || CACHE_BLOCK_SIZE,
    };
    this.clock.syncTo(Number(info.uptimeNanos));
    for (let cpu = 0; cpu < this.scheduler.cpuCount; cpu++) await this.peers.machine.startCpu({ cpu });
    this.#cpusStarted = true;
    this.#dispatchIdleCpus();
  }

  stop(): void {
    this.timers.stop();
  }

  get cpuDescription(): CpuDescription {
    return { ...this.#cpu };
  }

  now(): number {
    return this.clock.monotonicNanos();
  }

  /** Fills a buffer with random bytes (AT_RANDOM, getrandom). */
  random(target: Uint8Array): void {
    this.#random(target);
  }

  // ---- processes -------------------------------------------------------------------------

  /** fork + exec in one step: a new process running a program (PID 1 at boot, `astra run`). */
  async createProcess(request: CreateProcessRequest): Promise<{ pid: number; tid: number }> {
    const process = this.table.create({
      parentPid: request.parentPid,
      credentials: request.credentials ?? undefined,
      name: request.name || programBaseName(new TextDecoder().decode(request.programPath)),
      startNanos: this.now(),
    });
    const thread = process.threads.get(process.pid)!;
    let loaded: LoadedProgram | null = null;
    try {
      await this.peers.vfs.attachProcess(
        request.parentPid === KERNEL_PID
          ? {
            pid: process.pid,
            parentPid: KERNEL_PID,
            inheritance: DescriptorInheritance.NONE,
            workingDirectory: encoder.encode("/"),
            stdioOnConsole: true,
          }
          : { pid: process.pid, parentPid: request.parentPid, inheritance: DescriptorInheritance.COPY },
      );
      process.descriptorsAttached = true;
      loaded = await loadProgram(this.peers, this.#cpu, this.#random, {
        pid: process.pid,
        tid: thread.tid,
        temporaryContext: false,
        programPath: request.programPath,
        argv: request.argv,
        envp: request.envp,
        credentials: process.credentials,
        stackLimit: process.limits.get(RLIMIT_STACK).soft,
      });
      this.#adoptProgram(process, loaded, request.programPath, request.argv, request.envp);
      if (request.name) process.name = commandName(request.name);
      await this.peers.vfs.execProcess({
        pid: process.pid,
        executable: encoder.encode(loaded.executablePath),
      });
    } catch (error) {
      if (loaded) {
        await this.peers.machine.deleteThreadContext({ tid: thread.tid }).catch(() => {});
        await this.#releaseAddressSpace(process);
      }
      if (process.descriptorsAttached) {
        await this.peers.vfs.detachProcess({ pid: process.pid }).catch((e) =>
          log.warn("CreateProcess: detaching the failed process failed", {
            pid: process.pid,
            error: describe(e),
          })
        );
      }
      this.table.discard(process);
      throw error;
    }
    process.life = "live";
    this.counters.execs++;
    this.scheduler.add(thread.tid, process.pid, { priority: PRIORITY_NORMAL, nice: 0, affinity: null });
    this.#makeRunnable(thread);
    return { pid: process.pid, tid: thread.tid };
  }

  #adoptProgram(
    process: Process,
    loaded: LoadedProgram,
    programPath: Uint8Array,
    argv: Uint8Array[],
    envp: Uint8Array[],
  ): void {
    process.spaceId = loaded.spaceId;
    process.executablePath = loaded.executablePath;
    process.argv = argv.map((a) => a.slice());
    process.envp = envp.map((e) => e.slice());
    process.name = commandName(programBaseName(new TextDecoder().decode(programPath)));
  }

  /**
   * execve: the process runs a new program in a new address space. With `fromKernelCall` the
   * calling thread is trapped in execve and the machine switches it (KERNEL_CALL_ACTION_EXEC);
   * otherwise its context is replaced here. Other threads end. Nothing changes if loading fails.
   */
  async exec(
    pid: number,
    tid: number,
    programPath: Uint8Array,
    argv: Uint8Array[],
    envp: Uint8Array[],
    fromKernelCall: boolean,
  ): Promise<{ registers: LoadedProgram["registers"]; spaceId: bigint }> {
    const process = this.table.requireLive(pid);
    const thread = this.table.requireThreadOf(pid, tid);
    if (!fromKernelCall && this.scheduler.runningOn(tid) !== null) {
      throw failedPrecondition(
        `thread ${tid} is running; it execs through its own execve`,
        Errno.EBUSY,
        "tid",
      );
    }
    const scratch = this.table.reserveId();
    let loaded: LoadedProgram;
    try {
      loaded = await loadProgram(this.peers, this.#cpu, this.#random, {
        pid,
        tid: scratch,
        temporaryContext: true,
        programPath,
        argv,
        envp,
        credentials: process.credentials,
        stackLimit: process.limits.get(RLIMIT_STACK).soft,
      });
    } finally {
      this.table.releaseId(scratch);
    }
    if (!fromKernelCall) {
      try {
        await this.peers.machine.deleteThreadContext({ tid });
        await this.peers.machine.createThreadContext({
          context: { pid, tid, registers: entryRegisters(loaded.registers), spaceId: loaded.spaceId },
        });
      } catch (error) {
        await this.peers.vmm.destroyAddressSpace({ spaceId: loaded.spaceId }).catch(() => {});
        throw error;
      }
    }
    // The point of no return (de_thread, exec_mmap, flush_signal_handlers).
    for (const other of process.liveThreads()) {
      if (other !== thread) await this.#endThreadForExec(other);
    }
    await this.#releaseAddressSpace(process);
    this.#adoptProgram(process, loaded, programPath, argv, envp);
    process.actions.resetForExec();
    process.forkedWithoutExec = false;
    thread.alternateStack = { base: 0n, size: 0n, flags: SS_DISABLE };
    thread.clearChildTid = 0n;
    thread.robustListHead = 0n;
    thread.robustListLength = 0n;
    await this.peers.vfs.execProcess({ pid, executable: encoder.encode(loaded.executablePath) });
    this.counters.execs++;
    return { registers: loaded.registers, spaceId: loaded.spaceId };
  }

  async #endThreadForExec(thread: Thread): Promise<void> {
    const sleeper = this.#sleepers.get(thread.tid);
    const running = this.scheduler.runningOn(thread.tid) !== null;
    this.#retireThread(thread);
    if (sleeper) return this.#endSleep(sleeper, { kind: "exit", waitStatus: 0 });
    if (!running) {
      await this.peers.machine.deleteThreadContext({ tid: thread.tid }).catch((e) =>
        log.warn("exec: discarding another thread's context failed", { tid: thread.tid, error: describe(e) })
      );
    }
  }

  /** fork, or clone: a copy-on-write child process, or a new thread sharing the address space. */
  async clone(request: CloneRequest): Promise<{ pid: number; tid: number }> {
    const parent = this.table.requireLive(request.pid);
    const parentThread = this.table.requireThreadOf(request.pid, request.tid);
    if (parent.spaceId === 0n) {
      throw failedPrecondition(`process ${parent.pid} has no address space to copy`, Errno.EINVAL, "pid");
    }
    const parameters = this.scheduler.parameters(parentThread.tid);
    if (request.thread) return this.#cloneThread(parent, parentThread, request, parameters);
    const child = this.table.create({ parentPid: parent.pid, name: parent.name, startNanos: this.now() });
    const childThread = child.threads.get(child.pid)!;
    child.forkedWithoutExec = true;
    child.executablePath = parent.executablePath;
    child.argv = parent.argv;
    child.envp = parent.envp;
    childThread.blocked = parentThread.blocked;
    childThread.alternateStack = { ...parentThread.alternateStack };
    childThread.clearChildTid = request.childClearTid;
    const undo: Array<() => Promise<unknown>> = [];
    try {
      await this.peers.vfs.attachProcess({
        pid: child.pid,
        parentPid: parent.pid,
        inheritance: DescriptorInheritance.COPY,
      });
      child.descriptorsAttached = true;
      undo.push(() => this.peers.vfs.detachProcess({ pid: child.pid }));
      const { childSpaceId } = await this.peers.vmm.forkAddressSpace({
        parentSpaceId: parent.spaceId,
        childPid: child.pid,
      });
      undo.push(() => this.peers.vmm.destroyAddressSpace({ spaceId: childSpaceId }));
      await this.#startCopiedThread(child.pid, childThread.tid, parentThread.tid, childSpaceId, request);
      undo.push(() => this.peers.machine.deleteThreadContext({ tid: childThread.tid }));
      if (request.childSetTid !== 0n) {
        await this.#writeTid(childThread.tid, childSpaceId, request.childSetTid);
      }
      child.spaceId = childSpaceId;
    } catch (error) {
      for (const step of undo.reverse()) await step().catch(() => {});
      this.table.discard(child);
      throw error;
    }
    child.life = "live";
    this.counters.forks++;
    this.scheduler.add(childThread.tid, child.pid, parameters);
    this.#makeRunnable(childThread);
    return { pid: child.pid, tid: childThread.tid };
  }

  async #cloneThread(
    process: Process,
    parentThread: Thread,
    request: CloneRequest,
    parameters: SchedulingParameters,
  ): Promise<{ pid: number; tid: number }> {
    const thread = this.table.addThread(process);
    thread.blocked = parentThread.blocked;
    thread.clearChildTid = request.childClearTid;
    try {
      await this.#startCopiedThread(process.pid, thread.tid, parentThread.tid, process.spaceId, request);
      if (request.childSetTid !== 0n) await this.#writeTid(thread.tid, process.spaceId, request.childSetTid);
    } catch (error) {
      thread.state = "exited";
      this.table.releaseThread(thread);
      process.threads.delete(thread.tid);
      throw error;
    }
    this.scheduler.add(thread.tid, process.pid, parameters);
    this.#makeRunnable(thread);
    return { pid: process.pid, tid: thread.tid };
  }

  /** A thread context copied from the caller's, returning 0 from clone, on its own stack and TLS. */
  async #startCopiedThread(
    pid: number,
    tid: number,
    fromTid: number,
    spaceId: bigint,
    request: CloneRequest,
  ): Promise<void> {
    await this.peers.machine.createThreadContext({ context: { pid, tid, spaceId }, copyFromTid: fromTid });
    const { context } = await this.peers.machine.getThreadContext({ tid });
    const registers = context?.registers;
    if (!registers || registers.gprs.length !== 32) {
      throw new AstraError(Code.INTERNAL, Errno.EIO, `the machine gave thread ${tid} no register file`);
    }
    registers.gprs[3] = 0n;
    if (request.stack !== 0n) registers.gprs[1] = request.stack;
    if (request.tls !== null) registers.gprs[13] = request.tls;
    await this.peers.machine.setThreadContext({ tid, registers });
  }

  /** Stores a TID (pid_t, 4 bytes) in a thread's memory, breaking copy-on-write first. */
  async #writeTid(tid: number, spaceId: bigint, address: bigint): Promise<void> {
    await this.peers.vmm.handlePageFault({
      spaceId,
      address: address - (address % PAGE_SIZE),
      access: AccessType.WRITE,
      cause: FaultCause.PROTECTION,
      tid,
      cpu: 0,
    });
    const data = new Uint8Array(4);
    new DataView(data.buffer).setInt32(0, tid, true);
    await this.peers.machine.writeVirtual({ tid, address, data });
  }

  /**
   * exit_group, a fatal signal, or the last thread's exit: the process becomes a zombie, its
   * threads end, its descriptors and address space go, and its parent hears of it. The machine
   * discards the contexts of threads it runs or that were answered EXIT_PROCESS; sched deletes
   * the others' when the machine takes no part (`machineStopsThreads` false).
   */
  async terminate(process: Process, waitStatus: number, machineStopsThreads: boolean): Promise<void> {
    if (process.exiting || process.isZombieOrDead) return;
    process.exiting = true;
    process.waitStatus = waitStatus;
    const threads = process.liveThreads();
    const inCall = threads.filter((t) => this.#sleepers.get(t.tid)?.inCall);
    const machineDiscards = machineStopsThreads || inCall.length > 0;
    const orphaned: number[] = [];
    for (const thread of threads) {
      const sleeper = this.#sleepers.get(thread.tid);
      this.#retireThread(thread);
      if (sleeper) this.#endSleep(sleeper, { kind: "exit", waitStatus });
      if (!machineDiscards && !sleeper?.inCall) orphaned.push(thread.tid);
    }
    process.finalUsage = process.exitedThreadsUsage;
    process.life = "zombie";
    process.pendingDeath = null;
    this.counters.exits++;
    for (const tid of orphaned) {
      await this.peers.machine.deleteThreadContext({ tid }).catch((e) =>
        log.warn("discarding an ended thread's context failed", { tid, error: describe(e) })
      );
    }
    if (process.descriptorsAttached) {
      process.descriptorsAttached = false;
      await this.peers.vfs.detachProcess({ pid: process.pid }).catch((e) =>
        log.warn("closing an ended process's descriptors failed", { pid: process.pid, error: describe(e) })
      );
    }
    await this.#releaseAddressSpace(process);
    const { newParent, moved } = this.table.reparentChildren(process);
    if (moved.some((c) => c.life === "zombie")) this.#childWaiters.notify(newParent);
    this.#notifyParent(process, "exit");
  }

  /** Destroys a process's address space (vmm then drops its hold on the executable). */
  async #releaseAddressSpace(process: Process): Promise<void> {
    const spaceId = process.spaceId;
    process.spaceId = 0n;
    if (spaceId === 0n) return;
    this.futexes.forgetSpace(spaceId);
    await this.peers.vmm.destroyAddressSpace({ spaceId }).catch((e) =>
      log.warn("destroying an address space failed", { pid: process.pid, error: describe(e) })
    );
  }

  /** A thread leaves the scheduler for good; its CPU time stays with its process. */
  #retireThread(thread: Thread): void {
    const process = thread.process;
    if (this.scheduler.has(thread.tid)) {
      const a = this.scheduler.accounting(thread.tid, this.now());
      process.exitedThreadsUsage = addUsage(
        process.exitedThreadsUsage,
        toUsage(a.runtimeNanos, a.voluntarySwitches, a.involuntarySwitches),
      );
      this.scheduler.remove(thread.tid, this.now());
    }
    thread.state = "exited";
    this.table.releaseThread(thread);
  }

  /**
   * exit: one thread ends. Its clear_child_tid word is zeroed and futex-woken (pthread_join);
   * the last thread's exit ends the process. Returns whether the process ended.
   */
  async exitThread(thread: Thread, code: number): Promise<"thread" | "process"> {
    const process = thread.process;
    if (process.exiting) return "process";
    if (process.liveThreads().length <= 1) {
      await this.terminate(process, exitedStatus(code), true);
      return "process";
    }
    if (thread.clearChildTid !== 0n) {
      await this.peers.machine.writeVirtual({
        tid: thread.tid,
        address: thread.clearChildTid,
        data: new Uint8Array(4),
      })
        .then(() => this.futexes.wake(futexKey(process.spaceId, thread.clearChildTid), 1))
        .catch((e) => log.debug("clear_child_tid not written", { tid: thread.tid, error: describe(e) }));
    }
    const sleeper = this.#sleepers.get(thread.tid);
    this.#retireThread(thread);
    if (sleeper) this.#endSleep(sleeper, { kind: "exit", waitStatus: process.waitStatus });
    return "thread";
  }

  /** Exit RPC: a process or one thread ends with a code, as exit_group/exit would. */
  async exit(pid: number, tid: number, wholeProcess: boolean, code: number): Promise<void> {
    const process = this.table.requireLive(pid);
    if (wholeProcess) {
      await this.#kill(process, exitedStatus(code), 0);
      return;
    }
    const thread = this.table.requireThreadOf(pid, tid);
    const cpu = this.scheduler.runningOn(tid);
    if (cpu !== null) {
      throw failedPrecondition(
        `thread ${tid} is running on CPU ${cpu}; a running thread ends through its own exit call`,
        Errno.EBUSY,
        "tid",
      );
    }
    const sleeper = this.#sleepers.get(tid);
    if ((await this.exitThread(thread, code)) === "thread" && !sleeper?.inCall) {
      await this.peers.machine.deleteThreadContext({ tid }).catch(() => {});
    }
  }

  /**
   * Ends a process that must die now (SIGKILL, a fatal default action, Exit): at once when none of
   * its threads runs outside sched, else by telling the machine through signal_pending.
   */
  async #kill(process: Process, waitStatus: number, signal: number): Promise<void> {
    if (process.exiting || process.isZombieOrDead) return;
    const threads = process.liveThreads();
    const running = threads.some((t) => this.scheduler.runningOn(t.tid) !== null);
    const inCall = threads.some((t) => this.#sleepers.get(t.tid)?.inCall);
    if (running && !inCall) {
      process.pendingDeath = { waitStatus, signal };
      return;
    }
    await this.terminate(process, waitStatus, false);
  }

  /** Tells the parent (SIGCHLD, waiters) that a child exited, stopped or continued. */
  #notifyParent(child: Process, event: "exit" | "stop" | "continue"): void {
    const parent = child.ppid === KERNEL_PID ? null : this.table.get(child.ppid);
    if (parent && parent.life === "live") {
      const action = parent.actions.get(SIGCHLD);
      const status = decodeWaitStatus(child.waitStatus);
      const usage = child.finalUsage ?? this.processUsage(child);
      let code: number;
      let value: number;
      if (event === "exit") {
        code = status.outcome === "exited"
          ? CLD_EXITED
          : status.outcome === "dumped"
          ? CLD_DUMPED
          : CLD_KILLED;
        value = status.outcome === "exited" ? status.exitCode : status.signal;
      } else {
        code = event === "stop" ? CLD_STOPPED : CLD_CONTINUED;
        value = event === "stop" ? child.stopToReport ?? 0 : SIGCONT;
      }
      const autoReap = event === "exit" &&
        (action.handler === SIG_IGN || (action.flags & SA_NOCLDWAIT) !== 0n);
      const quiet = event !== "exit" && (action.flags & SA_NOCLDSTOP) !== 0n;
      if (!autoReap && !quiet) {
        this.#generate(parent, null, {
          signal: SIGCHLD,
          code,
          pid: child.pid,
          uid: child.credentials.uid,
          status: value,
          userTime: clockTicks(usage.userNanos),
          systemTime: clockTicks(usage.systemNanos),
        }, false);
      }
      if (autoReap) this.table.reap(child);
    }
    this.#childWaiters.notify(child.ppid);
  }

  /** wait4: the first matching child with news, reaping a zombie; blocks unless no_hang. */
  async wait(
    callerPid: number,
    pidSpec: number,
    options: WaitOptions,
    abort?: AbortSignal,
  ): Promise<WaitResult> {
    for (;;) {
      const callerPgid = callerPid === KERNEL_PID ? 0 : this.table.require(callerPid, "caller_pid").pgid;
      const check = checkChildren(this.table, callerPid, callerPgid, pidSpec, options);
      if (check.kind === "no-children") throw noChildren(callerPid, pidSpec);
      if (check.kind === "found") {
        const child = check.child;
        if (check.event === "exit") {
          const usage = addUsage(child.finalUsage ?? emptyUsage(), child.childrenUsage);
          this.table.reap(child);
          return { pid: child.pid, waitStatus: child.waitStatus, usage };
        }
        const usage = this.processUsage(child);
        if (check.event === "stop") {
          const signal = child.stopToReport!;
          child.stopToReport = null;
          return { pid: child.pid, waitStatus: stoppedStatus(signal), usage };
        }
        child.continueToReport = false;
        return { pid: child.pid, waitStatus: CONTINUED_STATUS, usage };
      }
      if (options.noHang) return { pid: 0, waitStatus: 0, usage: emptyUsage() };
      await this.#childWaiters.next(callerPid, abort);
    }
  }

  /** RUSAGE_SELF: the exited threads' usage plus the live threads'. */
  processUsage(process: Process): Usage {
    if (process.finalUsage) return process.finalUsage;
    let usage = process.exitedThreadsUsage;
    for (const thread of process.liveThreads()) usage = addUsage(usage, this.threadUsage(thread));
    return usage;
  }

  threadUsage(thread: Thread): Usage {
    if (!this.scheduler.has(thread.tid)) return emptyUsage();
    const a = this.scheduler.accounting(thread.tid, this.now());
    return toUsage(a.runtimeNanos, a.voluntarySwitches, a.involuntarySwitches);
  }

  readonly cpuTimes: CpuTimes = {
    threadNanos: (tid) => BigInt(this.threadUsage(this.table.requireThread(tid)).userNanos),
    processNanos: (pid) => BigInt(this.processUsage(this.table.require(pid)).userNanos),
  };

  // ---- signals ---------------------------------------------------------------------------

  /** kill, tgkill and force_sig_fault. Returns how many processes (or threads) got the signal. */
  kill(request: KillRequest): number {
    const { signal } = request;
    if (signal !== 0 && !isValidSignal(signal)) {
      throw invalidArgument("signal", `signal ${signal} is not 0..64`);
    }
    const sender = request.senderPid === KERNEL_PID
      ? null
      : this.table.require(request.senderPid, "sender_pid");
    if (request.forced) {
      if (!isValidSignal(signal)) throw invalidArgument("signal", "a forced signal needs a signal number");
      const thread = this.table.requireThreadOf(request.pid, request.tid);
      this.#force(thread, { signal, code: request.code, address: request.address });
      return 1;
    }
    if (request.tid !== 0) {
      if (request.pid <= 0) {
        throw invalidArgument("pid", `tgkill needs a thread group id, not ${request.pid}`);
      }
      const thread = this.table.requireThreadOf(request.pid, request.tid);
      this.#checkMayKill(sender, thread.process, signal);
      if (signal !== 0) {
        this.#generateChecked(thread.process, thread, {
          signal,
          code: SI_TKILL,
          pid: request.senderPid,
          uid: sender?.credentials.uid ?? 0,
        });
      }
      return 1;
    }
    const targets = this.#killTargets(sender, request.pid);
    let signalled = 0;
    let denied: AstraError | null = null;
    for (const target of targets) {
      try {
        this.#checkMayKill(sender, target, signal);
      } catch (error) {
        denied = error as AstraError;
        continue;
      }
      if (signal !== 0 && target.life !== "zombie") {
        const info = { signal, code: SI_USER, pid: request.senderPid, uid: sender?.credentials.uid ?? 0 };
        if (targets.length === 1) this.#generateChecked(target, null, info);
        else this.#generate(target, null, info, false);
      }
      signalled++;
    }
    if (signalled === 0 && denied) throw denied;
    return signalled;
  }

  #killTargets(sender: Process | null, pid: number): Process[] {
    if (pid > 0) return [this.table.require(pid)];
    if (pid === 0) {
      if (!sender) throw invalidArgument("pid", "the kernel has no process group to signal");
      return this.#nonEmpty(this.table.groupMembers(sender.pgid), pid);
    }
    if (pid === -1) {
      return this.#nonEmpty(
        this.table.list({ life: "live" }).filter((p) => p.pid !== INIT_PID && p !== sender),
        pid,
      );
    }
    return this.#nonEmpty(this.table.groupMembers(-pid), pid);
  }

  #nonEmpty(processes: Process[], pid: number): Process[] {
    if (processes.length === 0) {
      throw new AstraError(Code.NOT_FOUND, Errno.ESRCH, `no process matches pid ${pid}`, { argument: "pid" });
    }
    return processes;
  }

  /** kill_ok_by_cred: the kernel and root may signal anyone, others their own processes. */
  #checkMayKill(sender: Process | null, target: Process, signal: number): void {
    if (!sender || sender.credentials.euid === 0) return;
    const s = sender.credentials;
    const t = target.credentials;
    if (s.euid === t.uid || s.euid === t.suid || s.uid === t.uid || s.uid === t.suid) return;
    if (signal === SIGCONT && sender.sid === target.sid) return;
    throw new AstraError(
      Code.PERMISSION_DENIED,
      Errno.EPERM,
      `process ${sender.pid} may not signal process ${target.pid}`,
      { argument: "pid" },
    );
  }

  #generateChecked(process: Process, thread: Thread | null, info: SignalInfo): void {
    if (this.#generate(process, thread, info, false) === "rejected") {
      throw new AstraError(
        Code.RESOURCE_EXHAUSTED,
        Errno.EAGAIN,
        `${signalName(info.signal)} cannot be queued: RLIMIT_SIGPENDING of process ${process.pid} is reached`,
        { argument: "signal" },
      );
    }
  }

  /** force_sig_fault: the signal reaches the thread even if blocked or ignored. */
  #force(thread: Thread, info: SignalInfo): void {
    const process = thread.process;
    const action = process.actions.get(info.signal);
    if (action.handler === SIG_IGN || hasSignal(thread.blocked, info.signal)) {
      thread.blocked &= ~signalBit(info.signal);
      if (action.handler === SIG_IGN) process.actions.set(info.signal, { ...action, handler: SIG_DFL });
    }
    this.#generate(process, thread, info, true);
  }

  /**
   * Generates a signal for a process (thread null) or one of its threads, as send_signal and
   * complete_signal do: stop/continue side effects, dropping ignored signals, queueing, then
   * waking the thread that will take it, or killing the process when the default action is fatal.
   */
  #generate(
    process: Process,
    thread: Thread | null,
    info: SignalInfo,
    forced: boolean,
  ): "queued" | "ignored" | "rejected" {
    const signal = info.signal;
    if (process.exiting || process.isZombieOrDead) return "ignored";
    if (signal === SIGCONT || signal === SIGKILL) this.#continue(process, signal === SIGCONT);
    const cancelled = signalsCancelledBy(signal);
    if (cancelled !== 0n) {
      process.pending.discard(cancelled);
      for (const t of process.liveThreads()) t.pending.discard(cancelled);
    }
    const action = process.actions.get(signal);
    const receiver = thread ?? process.liveThreads()[0];
    if (!receiver) return "ignored";
    if (!forced && ignoredOnArrival(signal, action, receiver.blocked)) return "ignored";
    const pending = thread ? thread.pending : process.pending;
    const result = pending.enqueue(info, this.#sigpendingRoom(process));
    if (result === "rejected") return "rejected";
    const taker = thread ?? process.liveThreads().find((t) => !hasSignal(t.blocked, signal));
    if (!taker) return "queued";
    const fallback = defaultAction(signal);
    // No SIGNAL_UNKILLABLE: a program CreateProcess starts is an ordinary process even as PID 1,
    // as qemu-user runs it (a raise(SIGTERM) or abort() ends it); that protection belongs to a
    // booted /sbin/init.
    const fatal = action.handler === SIG_DFL && (fallback === "terminate" || fallback === "core") &&
      !hasSignal(taker.blocked, signal);
    if (fatal) {
      // The whole group dies (complete_signal's fast path); HandleSignal reports the signal.
      const status = killedStatus(signal, fallback === "core");
      this.#kill(process, status, signal).catch((e) =>
        log.error("killing a process failed", { pid: process.pid, error: describe(e) })
      );
      return "queued";
    }
    const sleeper = this.#sleepers.get(taker.tid);
    if (sleeper?.interruptible && !(process.stopped && signal !== SIGCONT)) {
      this.#endSleep(sleeper, { kind: "signal" });
    }
    return "queued";
  }

  /** Whether one more counted real-time signal fits RLIMIT_SIGPENDING of the process. */
  #sigpendingRoom(process: Process): boolean {
    let queued = process.pending.countedEntries;
    for (const t of process.liveThreads()) queued += t.pending.countedEntries;
    return BigInt(queued) < process.limits.get(RLIMIT_SIGPENDING).soft;
  }

  /** Whether a thread has a signal to handle before it goes back to user mode. */
  signalPending(thread: Thread): boolean {
    const process = thread.process;
    if (process.pendingDeath) return true;
    return nextDeliverableSignal(thread.pending.signals | process.pending.signals, thread.blocked) !== 0;
  }

  /** process_handle_signal: what a thread returning to user mode does with its next signal. */
  async handleSignal(pid: number, tid: number): Promise<SignalDecision> {
    const thread = this.table.requireThreadOf(pid, tid);
    const process = thread.process;
    if (process.pendingDeath) {
      const { waitStatus, signal } = process.pendingDeath;
      await this.terminate(process, waitStatus, true);
      return { kind: "terminate", signal, waitStatus };
    }
    const decision = takeNextSignal({
      threadPending: thread.pending,
      processPending: process.pending,
      blocked: thread.blocked,
      actions: process.actions,
      orphanedProcessGroup: this.table.isOrphanedGroup(process.pgid),
    });
    switch (decision.kind) {
      case "none":
        // rt_sigsuspend woken by a signal no handler takes: its mask is restored here.
        if (thread.suspendSavedMask !== null) thread.blocked = thread.suspendSavedMask;
        thread.suspendSavedMask = null;
        return { kind: "none" };
      case "handler": {
        const savedMask = thread.suspendSavedMask ?? decision.savedMask;
        thread.suspendSavedMask = null;
        thread.blocked = decision.handlerMask;
        const stack = thread.alternateStack;
        const stackEnabled = (stack.flags & SS_DISABLE) === 0;
        if (
          stackEnabled && (decision.action.flags & SA_ONSTACK) !== 0n && (stack.flags & SS_AUTODISARM) !== 0
        ) {
          thread.alternateStack = { base: 0n, size: 0n, flags: SS_DISABLE };
        }
        this.counters.signalsDelivered++;
        return {
          kind: "handler",
          signal: decision.signal,
          action: decision.action,
          handlerMask: decision.handlerMask,
          savedMask,
          siginfo: encodeSiginfo(decision.info),
          alternateStack: stackEnabled ? stack.base : 0n,
          alternateStackSize: stackEnabled ? stack.size : 0n,
          morePending: this.signalPending(thread),
        };
      }
      case "terminate": {
        const waitStatus = killedStatus(decision.signal, decision.dumpsCore);
        this.counters.signalsDelivered++;
        await this.terminate(process, waitStatus, true);
        return { kind: "terminate", signal: decision.signal, waitStatus };
      }
      case "stop":
        this.counters.signalsDelivered++;
        this.#stop(process, decision.signal);
        return { kind: "stop", signal: decision.signal };
    }
  }

  /** A stop signal's default action: every thread stops until SIGCONT; the parent is told. */
  #stop(process: Process, signal: number): void {
    if (process.stopped) return;
    process.stopped = true;
    process.stopToReport = signal;
    process.continueToReport = false;
    process.waitStatus = stoppedStatus(signal);
    const now = this.now();
    for (const thread of process.liveThreads()) {
      if (thread.state !== "runnable") continue;
      thread.state = "stopped";
      this.scheduler.leave(thread.tid, now);
    }
    this.#notifyParent(process, "stop");
  }

  /** SIGCONT (reported to the parent) or SIGKILL (not) resumes a stopped process. */
  #continue(process: Process, report: boolean): void {
    if (!process.stopped) return;
    process.stopped = false;
    process.stopToReport = null;
    for (const thread of process.liveThreads()) {
      if (thread.state === "stopped") {
        thread.state = "runnable";
        this.scheduler.makeRunnable(thread.tid);
      }
    }
    this.#dispatchIdleCpus();
    if (report) {
      process.continueToReport = true;
      this.#notifyParent(process, "continue");
    }
  }

  /** rt_sigaction: the previous action; setting one that ignores discards what is pending. */
  setSignalAction(pid: number, signal: number, action: SignalAction | null): SignalAction {
    const process = this.table.requireLive(pid);
    if (!action) return process.actions.get(signal);
    const { previous, discardPending } = process.actions.set(signal, action);
    if (discardPending) {
      const bit = signalBit(signal);
      process.pending.discard(bit);
      for (const t of process.liveThreads()) t.pending.discard(bit);
    }
    return previous;
  }

  /** rt_sigprocmask: the previous mask, and whether a signal became deliverable. */
  setSignalMask(pid: number, tid: number, apply: (current: SignalSet) => SignalSet): {
    previous: SignalSet;
    signalPending: boolean;
  } {
    const thread = this.table.requireThreadOf(pid, tid);
    const previous = thread.blocked;
    thread.blocked = apply(previous);
    return { previous, signalPending: this.signalPending(thread) };
  }

  // ---- limits and priorities ------------------------------------------------------------------

  /**
   * prlimit64: `callerPid` (the kernel: 0) reads or changes limits of `pid`. A null limit only
   * reads. All or nothing; returns the limits before, in the order asked.
   */
  resourceLimits(
    callerPid: number,
    pid: number,
    changes: ReadonlyArray<{ resource: number; limit: ResourceLimitPair | null }>,
  ): ResourceLimitPair[] {
    const target = this.table.requireLive(pid);
    let privileged = true;
    if (callerPid !== KERNEL_PID) {
      const caller = this.table.requireLive(callerPid, "caller_pid");
      privileged = caller.credentials.euid === 0;
      const ids = (p: Process) => ({ pid: p.pid, ...p.credentials });
      if (!mayAccessLimitsOf(ids(caller), ids(target), privileged)) {
        throw new AstraError(
          Code.PERMISSION_DENIED,
          Errno.EPERM,
          `process ${callerPid} may not use the limits of process ${pid}`,
          { argument: "pid" },
        );
      }
    }
    const limits = target.limits.clone();
    const previous = changes.map(({ resource, limit }) =>
      limit ? limits.set(resource, limit, privileged) : limits.get(resource)
    );
    target.limits = limits;
    return previous;
  }

  /**
   * setpriority for a thread: without privilege, no REALTIME class and no nice below the current
   * one beyond RLIMIT_NICE's ceiling (20 - rlim_cur). A null priority keeps the class.
   */
  setPriority(tid: number, priority: number | null, nice: number): SchedulingParameters {
    const thread = this.table.requireThread(tid);
    const current = this.scheduler.parameters(tid);
    const next = priority ?? current.priority;
    const process = thread.process;
    if (process.credentials.euid !== 0) {
      if (next === PRIORITY_REALTIME && current.priority !== PRIORITY_REALTIME) {
        throw new AstraError(Code.PERMISSION_DENIED, Errno.EPERM, "the REALTIME class needs privilege", {
          argument: "priority",
        });
      }
      const ceiling = 20n - process.limits.get(RLIMIT_NICE).soft;
      if (nice < current.nice && BigInt(nice) < ceiling) {
        throw new AstraError(
          Code.PERMISSION_DENIED,
          Errno.EPERM,
          `lowering nice to ${nice} needs privilege or RLIMIT_NICE room`,
          { argument: "nice" },
        );
      }
    }
    return this.scheduler.setPriority(tid, next, nice);
  }

  // ---- sleeping and blocking ---------------------------------------------------------------

  /** Takes a thread off its CPU or runqueue until the sleep ends. */
  sleep(thread: Thread, request: SleepRequest): void {
    if (thread.state !== "runnable" || this.#sleepers.has(thread.tid)) {
      throw failedPrecondition(`thread ${thread.tid} is ${thread.state}, not runnable`, Errno.EINVAL, "tid");
    }
    thread.state = request.state;
    thread.waitObject = request.waitObject ?? null;
    thread.wakeAtNanos = request.wakeAt ?? 0;
    this.scheduler.leave(thread.tid, this.now());
    const sleeper: Sleeper = { ...request, thread, timer: null };
    if (request.wakeAt !== null && request.wakeAt !== undefined) {
      sleeper.timer = this.timers.add(request.wakeAt, () => this.#endSleep(sleeper, { kind: "timeout" }));
    }
    this.#sleepers.set(thread.tid, sleeper);
  }

  /** Ends a thread's sleep; a sleep outside a kernel call makes the thread runnable at once. */
  #endSleep(sleeper: Sleeper, reason: SleepEnd): void {
    if (this.#sleepers.get(sleeper.thread.tid) !== sleeper) return;
    this.#sleepers.delete(sleeper.thread.tid);
    if (sleeper.timer !== null) this.timers.cancel(sleeper.timer);
    const thread = sleeper.thread;
    thread.waitObject = null;
    thread.wakeAtNanos = 0;
    if (reason.kind !== "exit" && thread.state !== "exited") {
      thread.state = thread.process.stopped ? "stopped" : "runnable";
      if (!sleeper.inCall && thread.state === "runnable") this.#makeRunnable(thread);
    }
    sleeper.onEnd?.(reason);
  }

  /** A kernel call that slept has been answered: its thread may run again. */
  resumeAfterCall(thread: Thread): void {
    if (thread.state === "runnable" && this.scheduler.has(thread.tid)) this.#makeRunnable(thread);
  }

  /** Wake RPC: a sleeping thread runs before its time; false when it was not sleeping. */
  wake(tid: number): boolean {
    const sleeper = this.#sleepers.get(tid);
    if (!sleeper || sleeper.state !== "sleeping") return false;
    this.#endSleep(sleeper, { kind: "woken" });
    return true;
  }

  /** Unblock RPC: one blocked thread, or the oldest threads blocked on an object. */
  unblock(target: { tid: number } | { object: WaitObject; max: number }): number[] {
    if ("tid" in target) {
      const sleeper = this.#sleepers.get(target.tid);
      if (!sleeper || sleeper.state !== "blocked") return [];
      this.#endSleep(sleeper, { kind: "woken" });
      return [target.tid];
    }
    const { object, max } = target;
    const woken: number[] = [];
    const process = this.table.get(object.pid);
    if (object.kind === "futex" && process && process.spaceId !== 0n) {
      woken.push(...this.futexes.wake(futexKey(process.spaceId, object.key), max > 0 ? max : Infinity));
    }
    for (const sleeper of [...this.#sleepers.values()]) {
      if (max > 0 && woken.length >= max) break;
      const w = sleeper.thread.waitObject;
      if (sleeper.state !== "blocked" || !w) continue;
      if (w.kind === object.kind && w.pid === object.pid && w.key === object.key) {
        woken.push(sleeper.thread.tid);
        this.#endSleep(sleeper, { kind: "woken" });
      }
    }
    return woken;
  }

  // ---- scheduling --------------------------------------------------------------------------

  #makeRunnable(thread: Thread): void {
    this.scheduler.makeRunnable(thread.tid);
    this.#dispatchIdleCpus();
  }

  /** Puts runnable threads on idle CPUs (machine.RunThread). */
  #dispatchIdleCpus(): void {
    if (!this.#cpusStarted) return;
    for (const { cpu, dispatch } of this.scheduler.claimIdle(this.now())) {
      this.peers.machine.runThread({ cpu, tid: dispatch.tid }).catch((error) => {
        log.warn("the machine refused a dispatch", { cpu, tid: dispatch.tid, error: describe(error) });
        this.scheduler.unclaim(cpu, dispatch.tid);
      });
    }
  }

  /** Schedule RPC: what a CPU whose thread left runs next. */
  schedule(cpu: number): Dispatch | null {
    const next = this.scheduler.schedule(cpu, this.now());
    this.#dispatchIdleCpus();
    return next;
  }

  /** Tick RPC: time passes on a CPU; sleepers whose time came wake up. */
  tick(cpu: number, nowNanos: number): TickDecision & { signalPending: boolean } {
    this.clock.observe(nowNanos);
    this.timers.runDue();
    const decision = this.scheduler.tick(cpu, this.now());
    this.#dispatchIdleCpus();
    const next = decision.next ? this.table.thread(decision.next.tid) : undefined;
    return { ...decision, signalPending: next ? this.signalPending(next) : false };
  }

  yield(cpu: number, tid: number): Dispatch | null {
    const next = this.scheduler.yield(cpu, tid, this.now());
    this.#dispatchIdleCpus();
    return next;
  }

  /** CreateThread RPC: a thread of a process starting as a copy of its first thread's context. */
  async createThread(pid: number, parameters: SchedulingParameters, clearChildTid: bigint): Promise<number> {
    const process = this.table.requireLive(pid);
    const first = process.liveThreads()[0];
    if (!first || process.spaceId === 0n) {
      throw failedPrecondition(
        `process ${pid} has no running program to add a thread to`,
        Errno.EINVAL,
        "pid",
      );
    }
    const thread = this.table.addThread(process);
    thread.clearChildTid = clearChildTid;
    try {
      this.scheduler.add(thread.tid, pid, parameters);
      await this.peers.machine.createThreadContext({
        context: { pid, tid: thread.tid, spaceId: process.spaceId },
        copyFromTid: first.tid,
      });
    } catch (error) {
      if (this.scheduler.has(thread.tid)) this.scheduler.remove(thread.tid, this.now());
      thread.state = "exited";
      this.table.releaseThread(thread);
      process.threads.delete(thread.tid);
      throw error;
    }
    this.#makeRunnable(thread);
    return thread.tid;
  }

  // ---- what the contract reports -----------------------------------------------------------

  /** Where a thread is, RUNNING told apart from RUNNABLE by the scheduler. */
  threadState(thread: Thread): "runnable" | "running" | "sleeping" | "blocked" | "stopped" | "exited" {
    if (thread.state === "runnable" && this.scheduler.runningOn(thread.tid) !== null) return "running";
    return thread.state;
  }

  /** The contract's process state: NEW, READY, RUNNING, BLOCKED from its threads, ZOMBIE, DEAD. */
  processState(process: Process): "new" | "ready" | "running" | "blocked" | "zombie" | "dead" {
    if (process.life !== "live") return process.life;
    const states = process.liveThreads().map((t) => this.threadState(t));
    if (states.includes("running")) return "running";
    if (states.includes("runnable")) return "ready";
    return "blocked";
  }

  // ---- kernel calls ------------------------------------------------------------------------

  /** The thread a kernel call comes from: it must be a live thread of the calling process. */
  callingThread(pid: number, tid: number): Thread {
    return this.table.requireThreadOf(pid, tid);
  }

  /** Makes the calling thread of a kernel call sleep until `settle` is called or it is cut short. */
  sleepInCall(thread: Thread, request: Omit<SleepRequest, "inCall" | "onEnd">): Promise<SleepEnd> {
    return new Promise((resolve) => this.sleep(thread, { ...request, inCall: true, onEnd: resolve }));
  }

  /** Ends the in-call sleep of a thread with "woken" (a futex wake). */
  wakeFromCall(tid: number): void {
    const sleeper = this.#sleepers.get(tid);
    if (sleeper) this.#endSleep(sleeper, { kind: "woken" });
  }

  isSleeping(tid: number): boolean {
    return this.#sleepers.has(tid);
  }
}
