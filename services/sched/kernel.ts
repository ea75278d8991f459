// The sched kernel: processes and threads (processes.ts) put together with the runqueues
// (runqueue.ts), sleeps (sleepers.ts) and timeouts (timers.ts), futexes, signals (signal_kernel.ts),
// fork and exec (fork_exec.ts), and the peers that hold the rest of a process: storage's
// descriptor table, vmm's address space and the machine's thread contexts. Every RPC and kernel
// call of sched ends up here; the process state machine only moves through these methods.
import type { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import type { VfsService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import type { VmmService } from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { AstraError, Code, Errno, failedPrecondition } from "../../lib/errors.ts";
import type { Client } from "../../lib/rpc.ts";
import { CACHE_BLOCK_SIZE } from "./auxv.ts";
import { type CpuTimes, GuestClock } from "./clock.ts";
import type { CpuDescription, LoadedProgram, LoaderPeers } from "./exec.ts";
import { type CloneRequest, type CreateProcessRequest, ForkExec } from "./fork_exec.ts";
import { futexKey, FutexTable } from "./futex.ts";
import { describe, log } from "./log.ts";
import {
  addUsage,
  emptyUsage,
  KERNEL_PID,
  type Process,
  ProcessTable,
  type Thread,
  type Usage,
  type WaitObject,
} from "./processes.ts";
import { mayAccessLimitsOf, type ResourceLimitPair, RLIMIT_NICE } from "./rlimits.ts";
import {
  type Dispatch,
  PRIORITY_REALTIME,
  Scheduler,
  type SchedulingParameters,
  type TickDecision,
} from "./runqueue.ts";
import { type KillRequest, type SignalDecision, SignalKernel } from "./signal_kernel.ts";
import type { SignalAction, SignalSet } from "./signals.ts";
import { type SleepEnd, type Sleeper, Sleepers, type SleepRequest } from "./sleepers.ts";
import type { RandomFill } from "./stack.ts";
import { type HostTimers, TimerQueue } from "./timers.ts";
import {
  checkChildren,
  ChildWaiters,
  CONTINUED_STATUS,
  exitedStatus,
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

export interface WaitResult {
  pid: number;
  waitStatus: number;
  usage: Usage;
}

export interface Counters {
  forks: number;
  execs: number;
  exits: number;
  signalsDelivered: number;
  kernelCalls: number;
}

function toUsage(runtimeNanos: number, voluntary: number, involuntary: number): Usage {
  return {
    ...emptyUsage(),
    userNanos: runtimeNanos,
    voluntarySwitches: voluntary,
    involuntarySwitches: involuntary,
  };
}

export class SchedKernel {
  readonly table = new ProcessTable();
  readonly scheduler: Scheduler;
  readonly futexes = new FutexTable();
  readonly clock: GuestClock;
  readonly timers: TimerQueue;
  readonly counters: Counters = { forks: 0, execs: 0, exits: 0, signalsDelivered: 0, kernelCalls: 0 };
  readonly #childWaiters = new ChildWaiters();
  readonly #sleepers: Sleepers;
  readonly #random: RandomFill;
  readonly #signals: SignalKernel;
  readonly #forkExec: ForkExec;
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
    this.#sleepers = new Sleepers(
      this.scheduler,
      this.timers,
      () => this.now(),
      (t) => this.#makeRunnable(t),
    );
    this.#signals = new SignalKernel({
      table: this.table,
      scheduler: this.scheduler,
      counters: this.counters,
      sleepers: this.#sleepers,
      childWaiters: this.#childWaiters,
      now: () => this.now(),
      processUsage: (process) => this.processUsage(process),
      terminate: (process, waitStatus, machineStopsThreads) =>
        this.terminate(process, waitStatus, machineStopsThreads),
      dispatchIdleCpus: () => this.#dispatchIdleCpus(),
    });
    this.#forkExec = new ForkExec({
      peers,
      table: this.table,
      scheduler: this.scheduler,
      counters: this.counters,
      random: this.#random,
      cpu: () => this.#cpu,
      now: () => this.now(),
      makeRunnable: (thread) => this.#makeRunnable(thread),
      retireThread: (thread, waitStatus) => this.#retireThread(thread, waitStatus),
      releaseAddressSpace: (process) => this.#releaseAddressSpace(process),
    });
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
  createProcess(request: CreateProcessRequest): Promise<{ pid: number; tid: number }> {
    return this.#forkExec.createProcess(request);
  }

  /** execve: the process runs a new program in a new address space. */
  exec(
    pid: number,
    tid: number,
    programPath: Uint8Array,
    argv: Uint8Array[],
    envp: Uint8Array[],
    fromKernelCall: boolean,
  ): Promise<{ registers: LoadedProgram["registers"]; spaceId: bigint }> {
    return this.#forkExec.exec(pid, tid, programPath, argv, envp, fromKernelCall);
  }

  /** fork, or clone: a copy-on-write child process, or a new thread sharing the address space. */
  clone(request: CloneRequest): Promise<{ pid: number; tid: number }> {
    return this.#forkExec.clone(request);
  }

  /** CreateThread RPC: a thread of a process starting as a copy of its first thread's context. */
  createThread(pid: number, parameters: SchedulingParameters, clearChildTid: bigint): Promise<number> {
    return this.#forkExec.createThread(pid, parameters, clearChildTid);
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
      const sleeper = this.#retireThread(thread, waitStatus);
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
    this.#signals.notifyParent(process, "exit");
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

  /**
   * A thread ends: it leaves the scheduler for good (its CPU time stays with its process), and a
   * sleep it was in ends with `waitStatus`. Returns that sleep.
   */
  #retireThread(thread: Thread, waitStatus: number): Sleeper | undefined {
    const process = thread.process;
    const sleeper = this.#sleepers.get(thread.tid);
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
    if (sleeper) this.#sleepers.end(sleeper, { kind: "exit", waitStatus });
    return sleeper;
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
    this.#retireThread(thread, process.waitStatus);
    return "thread";
  }

  /** Exit RPC: a process or one thread ends with a code, as exit_group/exit would. */
  async exit(pid: number, tid: number, wholeProcess: boolean, code: number): Promise<void> {
    const process = this.table.requireLive(pid);
    if (wholeProcess) {
      await this.#signals.killProcess(process, exitedStatus(code), 0);
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
    return this.#signals.kill(request);
  }

  /** Whether a thread has a signal to handle before it goes back to user mode. */
  signalPending(thread: Thread): boolean {
    return this.#signals.signalPending(thread);
  }

  /** process_handle_signal: what a thread returning to user mode does with its next signal. */
  handleSignal(pid: number, tid: number): Promise<SignalDecision> {
    return this.#signals.handleSignal(pid, tid);
  }

  /** rt_sigaction: the previous action; setting one that ignores discards what is pending. */
  setSignalAction(pid: number, signal: number, action: SignalAction | null): SignalAction {
    return this.#signals.setSignalAction(pid, signal, action);
  }

  /** rt_sigprocmask: the previous mask, and whether a signal became deliverable. */
  setSignalMask(pid: number, tid: number, apply: (current: SignalSet) => SignalSet): {
    previous: SignalSet;
    signalPending: boolean;
  } {
    return this.#signals.setSignalMask(pid, tid, apply);
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
    this.#sleepers.sleep(thread, request);
  }

  /** A kernel call that slept has been answered: its thread may run again. */
  resumeAfterCall(thread: Thread): void {
    if (thread.state === "runnable" && this.scheduler.has(thread.tid)) this.#makeRunnable(thread);
  }

  /** Wake RPC: a sleeping thread runs before its time; false when it was not sleeping. */
  wake(tid: number): boolean {
    const sleeper = this.#sleepers.get(tid);
    if (!sleeper || sleeper.state !== "sleeping") return false;
    this.#sleepers.end(sleeper, { kind: "woken" });
    return true;
  }

  /** Unblock RPC: one blocked thread, or the oldest threads blocked on an object. */
  unblock(target: { tid: number } | { object: WaitObject; max: number }): number[] {
    if ("tid" in target) {
      const sleeper = this.#sleepers.get(target.tid);
      if (!sleeper || sleeper.state !== "blocked") return [];
      this.#sleepers.end(sleeper, { kind: "woken" });
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
        this.#sleepers.end(sleeper, { kind: "woken" });
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
    if (sleeper) this.#sleepers.end(sleeper, { kind: "woken" });
  }

  isSleeping(tid: number): boolean {
    return this.#sleepers.has(tid);
  }
}
