// What the machine's CPUs need from the kernel side, whoever provides it: the trap path. The CPU
// run loop (cpus.ts) stops a thread at `sc`, at a fault or at the end of its time slice and asks
// the KernelSide; the machine's implementation over the peers (trap_path.ts) turns each question
// into a message to the service that owns the answer: sched, vmm or storage's VfsService.
import type { SlbEntry } from "../../lib/ppc/hpt.ts";

/** The thread a question is about, as the machine holds it. */
export interface TrappedThread {
  readonly cpu: number;
  readonly pid: number;
  readonly tid: number;
  /** The vmm address space the thread runs in. */
  readonly spaceId: bigint;
}

export type UserAccess = "read" | "write";

/**
 * The trapping thread's memory, translated by the MMU as its own accesses are. An access that
 * finds no translation does not fault by itself: it reports the first untranslatable address so
 * that the caller can ask vmm to fault the page in (copy_from_user does the same) and try again.
 * It stays usable until the call settles, `done` of a blocked call included: that call's outputs
 * (wait4's status, a timespec) are written when it completes.
 */
export interface UserMemory {
  /** The bytes; the caller may keep them until the call settles, so a view is fine. */
  read(address: bigint, length: number): Uint8Array | UserFault;
  /** Writes all of `data` or nothing. */
  write(address: bigint, data: Uint8Array): true | UserFault;
  /**
   * Loads the SLB entry vmm gave for a "no-segment" fault of a copy, as a segment miss of the
   * thread's own access would, so that the copy can try again.
   */
  loadSegment(entry: SlbEntry): void;
}

/** Where a user-memory access stopped. */
export interface UserFault {
  readonly fault: true;
  readonly address: bigint;
  readonly access: UserAccess;
  /** No SLB entry for the segment (ask for the segment), no HPTE, or an HPTE that forbids it. */
  readonly cause: "no-segment" | "not-mapped" | "protection" | "bad-real-address";
}

/** The register state a thread starts a new program with (execve); every other register is zero. */
export interface ThreadEntry {
  pc: bigint;
  r1: bigint;
  r3: bigint;
  r4: bigint;
  r5: bigint;
  r6: bigint;
  r7: bigint;
  r12: bigint;
}

/** How the thread goes on after a system call. */
export type KernelCallOutcome =
  /** r3 = value, CR0[SO] clear; resume. */
  | { kind: "return"; value: bigint; signalPending: boolean }
  /** r3 = errno, CR0[SO] set; resume. */
  | { kind: "error"; errno: number; signalPending: boolean }
  /**
   * The thread sleeps in the kernel: take it off the CPU and ask the scheduler for the next one.
   * `done` settles with the call's final outcome; sched then makes the thread runnable again.
   */
  | { kind: "blocked"; done: Promise<KernelCallOutcome> }
  /** execve succeeded: new address space, registers from `entry`, segments reloaded. */
  | { kind: "exec"; entry: ThreadEntry; spaceId: bigint }
  /** The thread ended: discard its context. */
  | { kind: "exit-thread" }
  /** The whole process ended: discard the context of every thread of the pid. */
  | { kind: "exit-process"; waitStatus: number };

export type FaultAccess = "read" | "write" | "execute";

/** What vmm made of a page fault. */
export type PageFaultOutcome =
  | { kind: "mapped" }
  /** The fault raised a signal (already sent, forced, to the thread): deliver signals. */
  | { kind: "signal"; signal: number };

export type SegmentOutcome = { kind: "segment"; entry: SlbEntry } | { kind: "signal"; signal: number };

/** A signal handler to enter, as sched's HandleSignal describes it. */
export interface SignalDelivery {
  signal: number;
  handler: bigint;
  /** SA_* bits (SA_SIGINFO, SA_ONSTACK, SA_RESTORER...). */
  flags: bigint;
  /** The mask rt_sigreturn restores (saved in the frame). */
  savedMask: bigint;
  /** siginfo_t, 128 bytes, Linux's little-endian layout. */
  siginfo: Uint8Array;
  alternateStack: bigint;
  alternateStackSize: bigint;
}

export type SignalOutcome =
  | { kind: "none" }
  | { kind: "handler"; delivery: SignalDelivery; morePending: boolean }
  | { kind: "terminate"; signal: number; waitStatus: number }
  | { kind: "stop"; signal: number };

/** The thread a CPU runs next, or none (the CPU idles until RunThread). */
export interface Dispatch {
  tid: number;
  pid: number;
  timeSliceNanos: number;
}

export interface TickOutcome {
  preempt: boolean;
  next: Dispatch | undefined;
  signalPending: boolean;
}

/** Program-interrupt causes, as the CPU reports them. */
export type ProgramCause = "illegal" | "privileged" | "trap" | "floating-point";

export interface KernelSide {
  /** A system call: r0 = number, r3..r8 = args. The call's guest writes are done when it settles. */
  systemCall(
    thread: TrappedThread,
    memory: UserMemory,
    number: number,
    args: readonly bigint[],
  ): Promise<KernelCallOutcome>;
  /** A data or instruction storage interrupt: vmm maps the page or the thread gets a signal. */
  pageFault(
    thread: TrappedThread,
    address: bigint,
    access: FaultAccess,
    cause: "not-mapped" | "protection" | "bad-real-address",
  ): Promise<PageFaultOutcome>;
  /** A segment miss: the SLB entry from vmm, or SIGSEGV when the address is in no segment. */
  segmentMiss(thread: TrappedThread, address: bigint, access: FaultAccess): Promise<SegmentOutcome>;
  /**
   * A synchronous signal the CPU raised for the thread (SIGILL, SIGTRAP, SIGFPE, SIGBUS for an
   * alignment interrupt), sent forced with its si_code and si_addr.
   */
  raiseSignal(thread: TrappedThread, signal: number, code: number, address: bigint): Promise<void>;
  /** The next deliverable signal of a thread returning to user mode. */
  handleSignal(thread: TrappedThread): Promise<SignalOutcome>;
  /** rt_sigreturn restores the blocked mask saved in the signal frame. */
  setSignalMask(thread: TrappedThread, mask: bigint): Promise<void>;
  /** The decrementer of a CPU fired. */
  tick(cpu: number, nowNanos: bigint): Promise<TickOutcome>;
  /** The CPU lost its thread (exit, block): what it runs next. */
  schedule(cpu: number): Promise<Dispatch | undefined>;
  /** Ends what the kernel side holds open (its streams) when the machine powers off. */
  close?(): Promise<void>;
}
