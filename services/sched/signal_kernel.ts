// Signals between sched's processes: generating them (kill, tgkill, force_sig_fault; SIGCHLD to a
// parent), what generating one does at once (send_signal, complete_signal: job control, discarding
// ignored signals, waking the thread that takes it, killing the process when its default action
// is fatal) and what a thread returning to user mode does with its next one (get_signal). The
// semantics of sets, actions and queues are signals.ts's.
import { AstraError, Code, Errno, invalidArgument } from "../../lib/errors.ts";
import {
  CLD_CONTINUED,
  CLD_DUMPED,
  CLD_EXITED,
  CLD_KILLED,
  CLD_STOPPED,
  isValidSignal,
  SA_NOCLDSTOP,
  SA_NOCLDWAIT,
  SA_ONSTACK,
  SI_TKILL,
  SI_USER,
  SIGCHLD,
  SIGCONT,
  SIGKILL,
  signalName,
  SS_AUTODISARM,
  SS_DISABLE,
} from "../../lib/linux/signals.ts";
import type { Counters } from "./kernel.ts";
import { describe, log } from "./log.ts";
import {
  INIT_PID,
  KERNEL_PID,
  type Process,
  type ProcessTable,
  type Thread,
  type Usage,
} from "./processes.ts";
import { RLIMIT_SIGPENDING } from "./rlimits.ts";
import type { Scheduler } from "./runqueue.ts";
import {
  defaultAction,
  encodeSiginfo,
  hasSignal,
  ignoredOnArrival,
  nextDeliverableSignal,
  SIG_DFL,
  SIG_IGN,
  type SignalAction,
  signalBit,
  type SignalInfo,
  signalsCancelledBy,
  type SignalSet,
  takeNextSignal,
} from "./signals.ts";
import type { Sleepers } from "./sleepers.ts";
import { type ChildWaiters, decodeWaitStatus, killedStatus, stoppedStatus } from "./wait.ts";

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

/** What signals act on in the rest of the sched kernel. */
export interface SignalHost {
  readonly table: ProcessTable;
  readonly scheduler: Scheduler;
  readonly counters: Counters;
  readonly sleepers: Sleepers;
  readonly childWaiters: ChildWaiters;
  now(): number;
  processUsage(process: Process): Usage;
  terminate(process: Process, waitStatus: number, machineStopsThreads: boolean): Promise<void>;
  /** Puts runnable threads on idle CPUs. */
  dispatchIdleCpus(): void;
}

/** Clock ticks (USER_HZ) of a CPU time, as siginfo's si_utime carries them. */
function clockTicks(nanos: number): bigint {
  return BigInt(Math.floor(nanos / 10_000_000));
}

/** Drops the signals of `set` pending for a process or any of its threads. */
function discardPendingSignals(process: Process, set: SignalSet): void {
  process.pending.discard(set);
  for (const t of process.liveThreads()) t.pending.discard(set);
}

export class SignalKernel {
  constructor(private readonly kernel: SignalHost) {}

  /** kill, tgkill and force_sig_fault. Returns how many processes (or threads) got the signal. */
  kill(request: KillRequest): number {
    const { signal } = request;
    if (signal !== 0 && !isValidSignal(signal)) {
      throw invalidArgument("signal", `signal ${signal} is not 0..64`);
    }
    const sender = request.senderPid === KERNEL_PID
      ? null
      : this.kernel.table.require(request.senderPid, "sender_pid");
    if (request.forced) {
      if (!isValidSignal(signal)) throw invalidArgument("signal", "a forced signal needs a signal number");
      const thread = this.kernel.table.requireThreadOf(request.pid, request.tid);
      this.#force(thread, { signal, code: request.code, address: request.address });
      return 1;
    }
    if (request.tid !== 0) {
      if (request.pid <= 0) {
        throw invalidArgument("pid", `tgkill needs a thread group id, not ${request.pid}`);
      }
      const thread = this.kernel.table.requireThreadOf(request.pid, request.tid);
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
    if (pid > 0) return [this.kernel.table.require(pid)];
    if (pid === 0) {
      if (!sender) throw invalidArgument("pid", "the kernel has no process group to signal");
      return this.#nonEmpty(this.kernel.table.groupMembers(sender.pgid), pid);
    }
    if (pid === -1) {
      return this.#nonEmpty(
        this.kernel.table.list({ life: "live" }).filter((p) => p.pid !== INIT_PID && p !== sender),
        pid,
      );
    }
    return this.#nonEmpty(this.kernel.table.groupMembers(-pid), pid);
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
    if (cancelled !== 0n) discardPendingSignals(process, cancelled);
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
      this.killProcess(process, status, signal).catch((e) =>
        log.error("killing a process failed", { pid: process.pid, error: describe(e) })
      );
      return "queued";
    }
    const sleeper = this.kernel.sleepers.get(taker.tid);
    if (sleeper?.interruptible && !(process.stopped && signal !== SIGCONT)) {
      this.kernel.sleepers.end(sleeper, { kind: "signal" });
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
    const thread = this.kernel.table.requireThreadOf(pid, tid);
    const process = thread.process;
    if (process.pendingDeath) {
      const { waitStatus, signal } = process.pendingDeath;
      await this.kernel.terminate(process, waitStatus, true);
      return { kind: "terminate", signal, waitStatus };
    }
    const decision = takeNextSignal({
      threadPending: thread.pending,
      processPending: process.pending,
      blocked: thread.blocked,
      actions: process.actions,
      orphanedProcessGroup: this.kernel.table.isOrphanedGroup(process.pgid),
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
        this.kernel.counters.signalsDelivered++;
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
        this.kernel.counters.signalsDelivered++;
        await this.kernel.terminate(process, waitStatus, true);
        return { kind: "terminate", signal: decision.signal, waitStatus };
      }
      case "stop":
        this.kernel.counters.signalsDelivered++;
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
    const now = this.kernel.now();
    for (const thread of process.liveThreads()) {
      if (thread.state !== "runnable") continue;
      thread.state = "stopped";
      this.kernel.scheduler.leave(thread.tid, now);
    }
    this.notifyParent(process, "stop");
  }

  /** SIGCONT (reported to the parent) or SIGKILL (not) resumes a stopped process. */
  #continue(process: Process, report: boolean): void {
    if (!process.stopped) return;
    process.stopped = false;
    process.stopToReport = null;
    for (const thread of process.liveThreads()) {
      if (thread.state === "stopped") {
        thread.state = "runnable";
        this.kernel.scheduler.makeRunnable(thread.tid);
      }
    }
    this.kernel.dispatchIdleCpus();
    if (report) {
      process.continueToReport = true;
      this.notifyParent(process, "continue");
    }
  }

  /** rt_sigaction: the previous action; setting one that ignores discards what is pending. */
  setSignalAction(pid: number, signal: number, action: SignalAction | null): SignalAction {
    const process = this.kernel.table.requireLive(pid);
    if (!action) return process.actions.get(signal);
    const { previous, discardPending } = process.actions.set(signal, action);
    if (discardPending) discardPendingSignals(process, signalBit(signal));
    return previous;
  }

  /** rt_sigprocmask: the previous mask, and whether a signal became deliverable. */
  setSignalMask(pid: number, tid: number, apply: (current: SignalSet) => SignalSet): {
    previous: SignalSet;
    signalPending: boolean;
  } {
    const thread = this.kernel.table.requireThreadOf(pid, tid);
    const previous = thread.blocked;
    thread.blocked = apply(previous);
    return { previous, signalPending: this.signalPending(thread) };
  }

  /**
   * Ends a process that must die now (SIGKILL, a fatal default action, Exit): at once when none of
   * its threads runs outside sched, else by telling the machine through signal_pending.
   */
  async killProcess(process: Process, waitStatus: number, signal: number): Promise<void> {
    if (process.exiting || process.isZombieOrDead) return;
    const threads = process.liveThreads();
    const running = threads.some((t) => this.kernel.scheduler.runningOn(t.tid) !== null);
    const inCall = threads.some((t) => this.kernel.sleepers.get(t.tid)?.inCall);
    if (running && !inCall) {
      process.pendingDeath = { waitStatus, signal };
      return;
    }
    await this.kernel.terminate(process, waitStatus, false);
  }

  /** Tells the parent (SIGCHLD, waiters) that a child exited, stopped or continued. */
  notifyParent(child: Process, event: "exit" | "stop" | "continue"): void {
    const parent = child.ppid === KERNEL_PID ? null : this.kernel.table.get(child.ppid);
    if (parent && parent.life === "live") {
      const action = parent.actions.get(SIGCHLD);
      const status = decodeWaitStatus(child.waitStatus);
      const usage = child.finalUsage ?? this.kernel.processUsage(child);
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
      if (autoReap) this.kernel.table.reap(child);
    }
    this.kernel.childWaiters.notify(child.ppid);
  }
}
