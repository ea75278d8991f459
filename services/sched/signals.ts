// Linux signal semantics for ppc64, as pure logic: default actions, signal sets, the sigaction
// table, pending queues and the decision of what a thread does with its next signal. The numbers
// and codes are lib/linux/signals.ts's; the process model (which thread, which process group,
// permissions) lives with the callers. Everything here follows kernel/signal.c so that guests see
// Linux's behaviour.
import { Errno, invalidArgument } from "../../lib/errors.ts";
import {
  isValidSignal,
  NSIG,
  SA_EXPOSE_TAGBITS,
  SA_NOCLDSTOP,
  SA_NOCLDWAIT,
  SA_NODEFER,
  SA_ONSTACK,
  SA_RESETHAND,
  SA_RESTART,
  SA_RESTORER,
  SA_SIGINFO,
  SI_KERNEL,
  SI_SIGIO,
  SI_TIMER,
  SI_USER,
  SIGABRT,
  SIGBUS,
  SIGCHLD,
  SIGCONT,
  SIGFPE,
  SIGILL,
  SIGINFO_SIZE,
  SIGIO,
  SIGKILL,
  signalName,
  SIGQUIT,
  SIGRTMIN,
  SIGSEGV,
  SIGSTOP,
  SIGSYS,
  SIGTRAP,
  SIGTSTP,
  SIGTTIN,
  SIGTTOU,
  SIGURG,
  SIGWINCH,
  SIGXCPU,
  SIGXFSZ,
} from "../../lib/linux/signals.ts";

// vmm (spaces.ts, aspace.ts) imports these from here.
export { BUS_ADRERR, SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGSEGV } from "../../lib/linux/signals.ts";

/** A set of signals in sigset_t layout: bit (n - 1) is signal n. */
export type SignalSet = bigint;

export const EMPTY_SIGNAL_SET: SignalSet = 0n;
export const FULL_SIGNAL_SET: SignalSet = (1n << 64n) - 1n;

// sigaction handler values.
export const SIG_DFL = 0n;
export const SIG_IGN = 1n;

/** The flags Linux keeps; others are cleared so that a program can detect missing support. */
export const UAPI_SA_FLAGS = SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_ONSTACK | SA_RESTART |
  SA_NODEFER | SA_RESETHAND | SA_EXPOSE_TAGBITS | SA_RESTORER;

// rt_sigprocmask's `how`.
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
export const SIG_SETMASK = 2;

/** What SIG_DFL does with a signal (signal(7)). */
export type DefaultAction = "terminate" | "core" | "ignore" | "stop" | "continue";

function checkSignal(signal: number, argument = "signal"): void {
  if (!isValidSignal(signal)) throw invalidArgument(argument, `signal ${signal} is not in 1..${NSIG}`);
}

export function signalBit(signal: number): SignalSet {
  checkSignal(signal);
  return 1n << BigInt(signal - 1);
}

export function signalSetOf(...signals: number[]): SignalSet {
  return signals.reduce((set, s) => set | signalBit(s), EMPTY_SIGNAL_SET);
}

export function hasSignal(set: SignalSet, signal: number): boolean {
  return (set & signalBit(signal)) !== 0n;
}

/** The signals of a set, ascending. */
export function signalsIn(set: SignalSet): number[] {
  const out: number[] = [];
  for (let s = 1; s <= NSIG; s++) if ((set >> BigInt(s - 1)) & 1n) out.push(s);
  return out;
}

/** SIGKILL and SIGSTOP can be neither caught, blocked nor ignored. */
export const UNBLOCKABLE_SIGNALS = signalSetOf(SIGKILL, SIGSTOP);
/** Faults raised by the instruction stream; Linux delivers them before asynchronous signals. */
export const SYNCHRONOUS_SIGNALS = signalSetOf(SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGSYS);
export const STOP_SIGNALS = signalSetOf(SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU);

const CORE_SIGNALS = signalSetOf(
  SIGQUIT,
  SIGILL,
  SIGTRAP,
  SIGABRT,
  SIGBUS,
  SIGFPE,
  SIGSEGV,
  SIGXCPU,
  SIGXFSZ,
  SIGSYS,
);
const IGNORED_SIGNALS = signalSetOf(SIGCHLD, SIGURG, SIGWINCH);

export function defaultAction(signal: number): DefaultAction {
  const bit = signalBit(signal);
  if (bit & CORE_SIGNALS) return "core";
  if (bit & IGNORED_SIGNALS) return "ignore";
  if (bit & STOP_SIGNALS) return "stop";
  if (signal === SIGCONT) return "continue";
  return "terminate";
}

/** rt_sigprocmask: the new blocked set. SIGKILL and SIGSTOP never stay blocked. */
export function applySignalMask(current: SignalSet, how: number, set: SignalSet): SignalSet {
  let next: SignalSet;
  switch (how) {
    case SIG_BLOCK:
      next = current | set;
      break;
    case SIG_UNBLOCK:
      next = current & ~set;
      break;
    case SIG_SETMASK:
      next = set;
      break;
    default:
      throw invalidArgument("how", `rt_sigprocmask how ${how} is not SIG_BLOCK, SIG_UNBLOCK or SIG_SETMASK`);
  }
  return next & FULL_SIGNAL_SET & ~UNBLOCKABLE_SIGNALS;
}

/** struct sigaction as the ppc64 kernel stores it. handler is SIG_DFL, SIG_IGN or an address. */
export interface SignalAction {
  handler: bigint;
  flags: bigint;
  restorer: bigint;
  mask: SignalSet;
}

export const DEFAULT_SIGNAL_ACTION: Readonly<SignalAction> = Object.freeze({
  handler: SIG_DFL,
  flags: 0n,
  restorer: 0n,
  mask: EMPTY_SIGNAL_SET,
});

/** sizeof(struct sigaction) for rt_sigaction on ppc64: handler, flags, restorer, mask. */
export const KERNEL_SIGACTION_SIZE = 32;

export function decodeKernelSigaction(bytes: Uint8Array): SignalAction {
  if (bytes.length < KERNEL_SIGACTION_SIZE) {
    throw invalidArgument(
      "act",
      `struct sigaction needs ${KERNEL_SIGACTION_SIZE} bytes, got ${bytes.length}`,
      Errno.EFAULT,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, KERNEL_SIGACTION_SIZE);
  return {
    handler: view.getBigUint64(0, true),
    flags: view.getBigUint64(8, true),
    restorer: view.getBigUint64(16, true),
    mask: view.getBigUint64(24, true),
  };
}

export function encodeKernelSigaction(action: SignalAction): Uint8Array {
  const bytes = new Uint8Array(KERNEL_SIGACTION_SIZE);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, action.handler, true);
  view.setBigUint64(8, action.flags, true);
  view.setBigUint64(16, action.restorer, true);
  view.setBigUint64(24, action.mask, true);
  return bytes;
}

/** Whether an action discards the signal: SIG_IGN, or SIG_DFL for a signal ignored by default. */
export function actionIgnores(signal: number, action: SignalAction): boolean {
  return action.handler === SIG_IGN || (action.handler === SIG_DFL && defaultAction(signal) === "ignore");
}

/** The per-process table of signal actions (shared by its threads). */
export class SignalActionTable {
  readonly #actions: SignalAction[];

  constructor(actions?: readonly SignalAction[]) {
    this.#actions = Array.from(
      { length: NSIG + 1 },
      (_, i) => ({ ...(actions?.[i] ?? DEFAULT_SIGNAL_ACTION) }),
    );
  }

  get(signal: number): SignalAction {
    checkSignal(signal);
    return { ...this.#actions[signal] };
  }

  /**
   * rt_sigaction with a new action. Returns the previous action and whether pending instances of
   * the signal must now be discarded (POSIX: setting an action that ignores a pending signal
   * discards it, in every thread).
   */
  set(signal: number, action: SignalAction): { previous: SignalAction; discardPending: boolean } {
    checkSignal(signal);
    if (signal === SIGKILL || signal === SIGSTOP) {
      throw invalidArgument("signal", `the action of ${signalName(signal)} cannot be changed`);
    }
    const previous = { ...this.#actions[signal] };
    const next: SignalAction = {
      handler: action.handler,
      flags: action.flags & UAPI_SA_FLAGS,
      restorer: action.restorer,
      mask: action.mask & ~UNBLOCKABLE_SIGNALS,
    };
    this.#actions[signal] = next;
    return { previous, discardPending: actionIgnores(signal, next) };
  }

  /** fork: the child starts with a copy. */
  clone(): SignalActionTable {
    return new SignalActionTable(this.#actions);
  }

  /** execve: handlers become SIG_DFL (the old code is gone); ignored signals stay ignored. */
  resetForExec(): void {
    for (let s = 1; s <= NSIG; s++) {
      const handler = this.#actions[s].handler === SIG_IGN ? SIG_IGN : SIG_DFL;
      this.#actions[s] = { ...DEFAULT_SIGNAL_ACTION, handler };
    }
  }
}

/** siginfo_t contents; which fields apply follows the signal and si_code, as in Linux. */
export interface SignalInfo {
  signal: number;
  code: number;
  errno?: number;
  /** Sender (kill, tgkill, sigqueue) or child (SIGCHLD). */
  pid?: number;
  uid?: number;
  /** sigqueue's and a timer's value. */
  value?: bigint;
  /** SIGCHLD: exit code or signal, and the child's CPU times in clock ticks. */
  status?: number;
  userTime?: bigint;
  systemTime?: bigint;
  /** Faults: the address at fault; SIGSYS: the address of the system call instruction. */
  address?: bigint;
  /** SIGPOLL: the poll band and descriptor. */
  band?: bigint;
  fd?: number;
  /** SIGSYS: the system call number and AUDIT_ARCH_* value. */
  syscall?: number;
  arch?: number;
  /** POSIX timers: timer id and overrun count. */
  timerId?: number;
  overrun?: number;
}

type SiginfoLayout = "kill" | "rt" | "timer" | "poll" | "fault" | "child" | "sys";

/** Per-signal si_code ranges with their own layout (uapi asm-generic/siginfo.h NSIG*). */
const SIGNAL_CODE_LAYOUTS: ReadonlyMap<number, { limit: number; layout: SiginfoLayout }> = new Map([
  [SIGILL, { limit: 11, layout: "fault" }],
  [SIGFPE, { limit: 15, layout: "fault" }],
  [SIGSEGV, { limit: 9, layout: "fault" }],
  [SIGBUS, { limit: 5, layout: "fault" }],
  [SIGTRAP, { limit: 6, layout: "fault" }],
  [SIGCHLD, { limit: 6, layout: "child" }],
  [SIGIO, { limit: 6, layout: "poll" }],
  [SIGSYS, { limit: 2, layout: "sys" }],
]);
const NSIGPOLL = 6;

/** Which union member of siginfo_t applies (kernel/signal.c siginfo_layout). */
function siginfoLayout(signal: number, code: number): SiginfoLayout {
  if (code > SI_USER && code < SI_KERNEL) {
    const specific = SIGNAL_CODE_LAYOUTS.get(signal);
    if (specific && code <= specific.limit) return specific.layout;
    return code <= NSIGPOLL ? "poll" : "kill";
  }
  if (code === SI_TIMER) return "timer";
  if (code === SI_SIGIO) return "poll";
  return code < 0 ? "rt" : "kill";
}

/** siginfo_t as the guest sees it: 128 bytes, little-endian ppc64 layout. */
export function encodeSiginfo(info: SignalInfo): Uint8Array {
  checkSignal(info.signal);
  const bytes = new Uint8Array(SIGINFO_SIZE);
  const view = new DataView(bytes.buffer);
  view.setInt32(0, info.signal, true);
  view.setInt32(4, info.errno ?? 0, true);
  view.setInt32(8, info.code, true);
  // The union starts at offset 16, after 4 bytes of padding that align it to 8.
  switch (siginfoLayout(info.signal, info.code)) {
    case "kill":
      view.setInt32(16, info.pid ?? 0, true);
      view.setUint32(20, info.uid ?? 0, true);
      break;
    case "rt":
      view.setInt32(16, info.pid ?? 0, true);
      view.setUint32(20, info.uid ?? 0, true);
      view.setBigUint64(24, BigInt.asUintN(64, info.value ?? 0n), true);
      break;
    case "timer":
      view.setInt32(16, info.timerId ?? 0, true);
      view.setInt32(20, info.overrun ?? 0, true);
      view.setBigUint64(24, BigInt.asUintN(64, info.value ?? 0n), true);
      break;
    case "poll":
      view.setBigInt64(16, BigInt.asIntN(64, info.band ?? 0n), true);
      view.setInt32(24, info.fd ?? 0, true);
      break;
    case "fault":
      view.setBigUint64(16, BigInt.asUintN(64, info.address ?? 0n), true);
      break;
    case "child":
      view.setInt32(16, info.pid ?? 0, true);
      view.setUint32(20, info.uid ?? 0, true);
      view.setInt32(24, info.status ?? 0, true);
      view.setBigInt64(32, BigInt.asIntN(64, info.userTime ?? 0n), true);
      view.setBigInt64(40, BigInt.asIntN(64, info.systemTime ?? 0n), true);
      break;
    case "sys":
      view.setBigUint64(16, BigInt.asUintN(64, info.address ?? 0n), true);
      view.setInt32(24, info.syscall ?? 0, true);
      view.setUint32(28, info.arch ?? 0, true);
      break;
  }
  return bytes;
}

/** What enqueueing a signal did. */
export type EnqueueResult =
  /** A real-time signal was queued with its info; it counts against RLIMIT_SIGPENDING. */
  | "queued"
  /** The signal is now pending without a counted queue entry. */
  | "marked"
  /** A standard signal that was already pending: the new one merges into it. */
  | "merged"
  /** A queued real-time signal over RLIMIT_SIGPENDING: the sender gets EAGAIN. */
  | "rejected";

interface PendingEntry {
  info: SignalInfo;
  /** Counted against RLIMIT_SIGPENDING. */
  counted: boolean;
}

/** One pending set with its queue (a thread's own, or its process's shared one). */
export class PendingSignals {
  #set: SignalSet = EMPTY_SIGNAL_SET;
  readonly #queues = new Map<number, PendingEntry[]>();

  get signals(): SignalSet {
    return this.#set;
  }

  /** How many queued entries count against RLIMIT_SIGPENDING. */
  get countedEntries(): number {
    let n = 0;
    for (const queue of this.#queues.values()) for (const e of queue) if (e.counted) n++;
    return n;
  }

  /**
   * Makes a signal pending. Standard signals do not queue: one instance is pending at most.
   * Real-time signals queue every instance, in order; `withinLimit` says whether the sender's
   * RLIMIT_SIGPENDING allows one more. Over the limit, Linux still marks a kill() (SI_USER) or
   * kernel (SI_KERNEL) signal pending, losing its info, but refuses sigqueue and tgkill.
   */
  enqueue(info: SignalInfo, withinLimit: boolean): EnqueueResult {
    const signal = info.signal;
    const bit = signalBit(signal);
    if (signal < SIGRTMIN) {
      if (this.#set & bit) return "merged";
      this.#set |= bit;
      this.#queues.set(signal, [{ info: { ...info }, counted: false }]);
      return "marked";
    }
    const queue = this.#queues.get(signal) ?? [];
    let result: EnqueueResult;
    if (withinLimit) {
      queue.push({ info: { ...info }, counted: true });
      result = "queued";
    } else if (info.code === SI_USER || info.code === SI_KERNEL) {
      queue.push({ info: { signal, code: SI_USER, pid: 0, uid: 0 }, counted: false });
      result = "marked";
    } else {
      return "rejected";
    }
    this.#queues.set(signal, queue);
    this.#set |= bit;
    return result;
  }

  /** Removes the oldest instance of a pending signal. */
  dequeue(signal: number): { info: SignalInfo; counted: boolean } | null {
    const queue = this.#queues.get(signal);
    if (!queue || queue.length === 0) return null;
    const entry = queue.shift()!;
    if (queue.length === 0) {
      this.#queues.delete(signal);
      this.#set &= ~signalBit(signal);
    }
    return { info: entry.info, counted: entry.counted };
  }

  /** Drops every instance of the signals in a set; returns how many counted entries went. */
  discard(set: SignalSet): number {
    let released = 0;
    for (const signal of signalsIn(set & this.#set)) {
      for (const e of this.#queues.get(signal) ?? []) if (e.counted) released++;
      this.#queues.delete(signal);
    }
    this.#set &= ~set;
    return released;
  }
}

/**
 * The pending signals a newly generated signal cancels (kernel/signal.c prepare_signal): SIGCONT
 * cancels pending stop signals, and a stop signal cancels a pending SIGCONT.
 */
export function signalsCancelledBy(signal: number): SignalSet {
  if (signal === SIGCONT) return STOP_SIGNALS;
  if (hasSignal(STOP_SIGNALS, signal)) return signalBit(SIGCONT);
  return EMPTY_SIGNAL_SET;
}

/**
 * Whether a generated signal is dropped on arrival because its action ignores it. A blocked
 * signal is kept: its action may change before it is unblocked.
 */
export function ignoredOnArrival(signal: number, action: SignalAction, blocked: SignalSet): boolean {
  return !hasSignal(blocked, signal) && actionIgnores(signal, action);
}

/**
 * The next signal to deliver from a pending set: the lowest-numbered deliverable synchronous
 * signal if any (a fault must reach its handler before anything else), else the lowest-numbered
 * deliverable one; 0 when none.
 */
export function nextDeliverableSignal(pending: SignalSet, blocked: SignalSet): number {
  let deliverable = pending & ~blocked & FULL_SIGNAL_SET;
  if (deliverable === 0n) return 0;
  if (deliverable & SYNCHRONOUS_SIGNALS) deliverable &= SYNCHRONOUS_SIGNALS;
  let signal = 1;
  while (((deliverable >> BigInt(signal - 1)) & 1n) === 0n) signal++;
  return signal;
}

/** What a thread returning to user mode does about its signals. */
export type DeliveryDecision =
  | { kind: "none" }
  | {
    kind: "handler";
    signal: number;
    info: SignalInfo;
    /** The action as it was when the signal was taken (SA_RESETHAND resets the table after). */
    action: SignalAction;
    /** The blocked set while the handler runs. */
    handlerMask: SignalSet;
    /** The blocked set before, saved in the frame for rt_sigreturn. */
    savedMask: SignalSet;
  }
  | { kind: "terminate"; signal: number; info: SignalInfo; dumpsCore: boolean }
  | { kind: "stop"; signal: number; info: SignalInfo };

export interface DeliveryContext {
  /** Signals pending for this thread alone; taken before the process's. */
  threadPending: PendingSignals;
  processPending: PendingSignals;
  blocked: SignalSet;
  actions: SignalActionTable;
  /** PID 1 gets no default action except from SIGKILL and SIGSTOP (Linux's SIGNAL_UNKILLABLE). */
  isInit?: boolean;
  /** An orphaned process group is not stopped by terminal stop signals (SIGTSTP, SIGTTIN, SIGTTOU). */
  orphanedProcessGroup?: boolean;
  /** Called for every counted queue entry consumed, to give back RLIMIT_SIGPENDING room. */
  releaseCounted?: () => void;
}

/**
 * Dequeues pending signals until one needs action (kernel/signal.c get_signal): ignored ones and
 * SIGCONT's default are consumed silently. For a handler, SA_RESETHAND is applied to the table;
 * installing handlerMask as the thread's blocked set is the caller's job.
 */
export function takeNextSignal(context: DeliveryContext): DeliveryDecision {
  const { threadPending, processPending, blocked, actions } = context;
  for (;;) {
    let source = threadPending;
    let signal = nextDeliverableSignal(threadPending.signals, blocked);
    if (signal === 0) {
      source = processPending;
      signal = nextDeliverableSignal(processPending.signals, blocked);
    }
    if (signal === 0) return { kind: "none" };
    const taken = source.dequeue(signal)!;
    if (taken.counted) context.releaseCounted?.();
    const action = actions.get(signal);
    if (action.handler === SIG_IGN) continue;
    if (action.handler !== SIG_DFL) {
      // Linux resets only the handler; flags and mask stay visible to a later rt_sigaction.
      if (action.flags & SA_RESETHAND) actions.set(signal, { ...action, handler: SIG_DFL });
      let handlerMask = blocked | action.mask;
      if (!(action.flags & SA_NODEFER)) handlerMask |= signalBit(signal);
      return {
        kind: "handler",
        signal,
        info: taken.info,
        action,
        handlerMask: handlerMask & ~UNBLOCKABLE_SIGNALS,
        savedMask: blocked,
      };
    }
    const fallback = defaultAction(signal);
    if (fallback === "ignore" || fallback === "continue") continue;
    if (context.isInit && signal !== SIGKILL && signal !== SIGSTOP) continue;
    if (fallback === "stop") {
      if (signal !== SIGSTOP && context.orphanedProcessGroup) continue;
      return { kind: "stop", signal, info: taken.info };
    }
    return { kind: "terminate", signal, info: taken.info, dumpsCore: fallback === "core" };
  }
}
