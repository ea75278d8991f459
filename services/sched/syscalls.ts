// The system calls sched owns, as the machine's trap path delivers them: the Linux ppc64 number,
// r3..r8 and the guest memory fetched so far. Each handler decodes its arguments exactly as Linux
// does (int arguments are the low 32 bits, sign-extended), reads what it needs through the
// GuestReader before changing anything, and answers what the machine does next: return a value or
// an errno with bytes to write, fetch memory, sleep (BLOCKED, then the real answer), switch to a
// new program (EXEC) or end the thread or the process.
import { AstraError, Code, Errno, invalidArgument } from "../../lib/errors.ts";
import { PATH_MAX } from "../../lib/linux/limits.ts";
import { SS_AUTODISARM, SS_DISABLE, SS_ONSTACK } from "../../lib/linux/signals.ts";
import { type SyscallName, syscallName, SYSCALLS } from "../../lib/linux/syscall_numbers.ts";
import {
  CLOCK_PROCESS_CPUTIME_ID,
  CLOCK_THREAD_CPUTIME_ID,
  clockResolution,
  decodeTimespec,
  encodeTimespec,
  encodeTimeval,
  readClock,
  resolveClock,
  TIMER_ABSTIME,
  TIMESPEC_SIZE,
} from "./clock.ts";
import {
  decodeFutexOperation,
  FUTEX_BITSET_MATCH_ANY,
  FUTEX_CMP_REQUEUE,
  FUTEX_REQUEUE,
  FUTEX_WAIT,
  FUTEX_WAIT_BITSET,
  FUTEX_WAKE,
  FUTEX_WAKE_BITSET,
  futexKey,
} from "./futex.ts";
import { badAddress, FetchNeeded, type GuestBytes, type GuestRange, GuestReader } from "./guest_memory.ts";
import type { SchedKernel, WaitResult } from "./kernel.ts";
import {
  decodeRlimit,
  decodeStackT,
  encodeCpuMask,
  encodeRlimit,
  encodeRusage,
  encodeStackT,
  encodeUtsname,
  RLIMIT_SIZE,
  STACK_T_SIZE,
  type SystemIdentity,
} from "./layouts.ts";
import { log } from "./log.ts";
import { COMMAND_NAME_MAX, commandName, type Process, type Thread } from "./processes.ts";
import {
  applySignalMask,
  decodeKernelSigaction,
  encodeKernelSigaction,
  KERNEL_SIGACTION_SIZE,
  UNBLOCKABLE_SIGNALS,
} from "./signals.ts";
import type { SleepEnd } from "./sleepers.ts";
import type { InitialRegisters } from "./stack.ts";
import { decodeWaitOptions, exitedStatus } from "./wait.ts";

/** A system call as the machine sends it. */
export interface SystemCall {
  cpu: number;
  pid: number;
  tid: number;
  number: number;
  /** r3..r8. */
  args: readonly bigint[];
}

/** What the machine does with the calling thread. */
export type CallOutcome =
  | { kind: "return"; value: bigint; outputs: GuestBytes[] }
  | { kind: "error"; errno: Errno; outputs: GuestBytes[] }
  | { kind: "fetch"; ranges: GuestRange[] }
  /** The thread sleeps; `completion` is the call's real outcome. */
  | { kind: "blocked"; completion: Promise<CallOutcome> }
  | { kind: "exec"; registers: InitialRegisters; spaceId: bigint }
  | { kind: "exit-thread" }
  | { kind: "exit-process"; waitStatus: number };

/** uname's answer: a Linux kernel on ppc64le, as the programs this system runs expect. */
export const SYSTEM_IDENTITY: SystemIdentity = {
  sysname: "Linux",
  nodename: "astralisp",
  release: "6.1.0",
  version: "#1 SMP AstraLisp OS",
  machine: "ppc64le",
  domainname: "(none)",
};

/** Per-call state kept across FETCH rounds (what a futex wait saw on its first arrival). */
export type CallState = Map<string, unknown>;

/** MAX_ARG_STRLEN: 32 pages. */
const MAX_ARG_STRLEN = 32 * 4096;
/** execve's pointer-array bound (MAX_ARG_STRINGS is 0x7fffffff; the stack limit ends it far sooner). */
const MAX_ARG_POINTERS = 1 << 20;
/** getrandom hands out at most this much per call, as Linux may return fewer bytes than asked. */
const GETRANDOM_MAX = 1 << 20;
const GRND_NONBLOCK = 1;
const GRND_RANDOM = 2;
const GRND_INSECURE = 4;
const PR_SET_NAME = 15;
const PR_GET_NAME = 16;
const RUSAGE_SELF = 0;
const RUSAGE_CHILDREN = -1;
const RUSAGE_THREAD = 1;
/** sizeof(struct robust_list_head). */
const ROBUST_LIST_HEAD_SIZE = 24n;
const SIGSET_SIZE = 8n;
/** ppc64's MINSIGSTKSZ. */
const MIN_SIGNAL_STACK = 8192n;
const CLONE_VM = 0x00000100;
const CLONE_FS = 0x00000200;
const CLONE_FILES = 0x00000400;
const CLONE_SIGHAND = 0x00000800;
const CLONE_VFORK = 0x00004000;
const CLONE_THREAD = 0x00010000;
const CLONE_SYSVSEM = 0x00040000;
const CLONE_SETTLS = 0x00080000;
const CLONE_PARENT_SETTID = 0x00100000;
const CLONE_CHILD_CLEARTID = 0x00200000;
const CLONE_CHILD_SETTID = 0x01000000;
const CSIGNAL = 0xff;
const CLONE_SUPPORTED = CSIGNAL | CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_VFORK |
  CLONE_THREAD |
  CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID;

interface Context {
  kernel: SchedKernel;
  call: SystemCall;
  thread: Thread;
  process: Process;
  memory: GuestReader;
  state: CallState;
}

type Handler = (c: Context) => CallOutcome | Promise<CallOutcome>;

function ok(value: bigint | number, outputs: GuestBytes[] = []): CallOutcome {
  return { kind: "return", value: BigInt.asUintN(64, BigInt(value)), outputs };
}

function fail(errno: Errno, outputs: GuestBytes[] = []): CallOutcome {
  return { kind: "error", errno, outputs };
}

/** An argument as a C int: the low 32 bits, signed. */
function int(c: Context, index: number): number {
  return Number(BigInt.asIntN(32, c.call.args[index]));
}

function arg(c: Context, index: number): bigint {
  return c.call.args[index];
}

function u32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value >>> 0, true);
  return bytes;
}

function i32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, value, true);
  return bytes;
}

function u64(value: bigint): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
  return bytes;
}

/** An output at a guest pointer, left out when the pointer is NULL. */
function out(address: bigint, data: Uint8Array): GuestBytes[] {
  return address === 0n ? [] : [{ address, data }];
}

function einval(argument: string, message: string): AstraError {
  return invalidArgument(argument, message);
}

/** How a sleep in a call ends the call when nothing better was decided. */
function sleepOutcome(
  reason: SleepEnd,
  onWoken: () => CallOutcome,
  onTimeout: () => CallOutcome,
): CallOutcome {
  switch (reason.kind) {
    case "woken":
      return onWoken();
    case "timeout":
      return onTimeout();
    case "signal":
      return fail(Errno.EINTR);
    case "exit":
      return { kind: "exit-process", waitStatus: reason.waitStatus };
  }
}

// ---- identity and the process tree --------------------------------------------------------

const identity: Partial<Record<SyscallName, Handler>> = {
  getpid: (c) => ok(c.process.pid),
  getppid: (c) => ok(c.process.ppid),
  gettid: (c) => ok(c.thread.tid),
  getuid: (c) => ok(c.process.credentials.uid),
  geteuid: (c) => ok(c.process.credentials.euid),
  getgid: (c) => ok(c.process.credentials.gid),
  getegid: (c) => ok(c.process.credentials.egid),
  getresuid: (c) => {
    const { uid, euid, suid } = c.process.credentials;
    return ok(0, [...out(arg(c, 0), u32(uid)), ...out(arg(c, 1), u32(euid)), ...out(arg(c, 2), u32(suid))]);
  },
  getresgid: (c) => {
    const { gid, egid, sgid } = c.process.credentials;
    return ok(0, [...out(arg(c, 0), u32(gid)), ...out(arg(c, 1), u32(egid)), ...out(arg(c, 2), u32(sgid))]);
  },
  getgroups: (c) => {
    const groups = c.process.credentials.groups;
    const size = int(c, 0);
    if (size < 0) throw einval("size", `getgroups size ${size} is negative`);
    if (size === 0) return ok(groups.length);
    if (size < groups.length) throw einval("size", `${size} entries cannot hold ${groups.length} groups`);
    const list = new Uint8Array(groups.length * 4);
    groups.forEach((gid, i) => new DataView(list.buffer).setUint32(i * 4, gid, true));
    return ok(groups.length, groups.length > 0 ? out(arg(c, 1), list) : []);
  },
  setpgid: (c) => {
    c.kernel.table.setProcessGroup(c.process.pid, int(c, 0), int(c, 1));
    return ok(0);
  },
  getpgid: (c) => ok(int(c, 0) === 0 ? c.process.pgid : c.kernel.table.require(int(c, 0)).pgid),
  getpgrp: (c) => ok(c.process.pgid),
  setsid: (c) => ok(c.kernel.table.setSession(c.process.pid)),
  getsid: (c) => ok(int(c, 0) === 0 ? c.process.sid : c.kernel.table.require(int(c, 0)).sid),
  set_tid_address: (c) => {
    c.thread.clearChildTid = arg(c, 0);
    return ok(c.thread.tid);
  },
  set_robust_list: (c) => {
    if (arg(c, 1) !== ROBUST_LIST_HEAD_SIZE) {
      throw einval("len", `robust list head size ${arg(c, 1)} is not 24`);
    }
    c.thread.robustListHead = arg(c, 0);
    c.thread.robustListLength = arg(c, 1);
    return ok(0);
  },
  get_robust_list: (c) => {
    const tid = int(c, 0);
    const thread = tid === 0 ? c.thread : c.kernel.table.requireThread(tid);
    return ok(0, [
      ...out(arg(c, 1), u64(thread.robustListHead)),
      ...out(arg(c, 2), u64(thread.robustListLength)),
    ]);
  },
  rseq: () => fail(Errno.ENOSYS),
  uname: (c) => ok(0, out(arg(c, 0), encodeUtsname(SYSTEM_IDENTITY))),
  prctl: (c) => {
    switch (int(c, 0)) {
      case PR_SET_NAME: {
        const address = arg(c, 1);
        const room = Number(4096n - (address % 4096n));
        const bytes = c.memory.read(address, Math.min(COMMAND_NAME_MAX + 1, room), "arg2");
        c.process.name = commandName(bytes);
        return ok(0);
      }
      case PR_GET_NAME: {
        const name = new Uint8Array(COMMAND_NAME_MAX + 1);
        name.set(new TextEncoder().encode(c.process.name).subarray(0, COMMAND_NAME_MAX));
        return ok(0, out(arg(c, 1), name));
      }
      default:
        return fail(Errno.EINVAL);
    }
  },
};

// ---- ending, waiting, creating --------------------------------------------------------------

const lifecycle: Partial<Record<SyscallName, Handler>> = {
  exit: async (c) => {
    const ended = await c.kernel.exitThread(c.thread, int(c, 0));
    return ended === "thread"
      ? { kind: "exit-thread" }
      : { kind: "exit-process", waitStatus: c.process.waitStatus };
  },
  exit_group: async (c) => {
    await c.kernel.terminate(c.process, exitedStatus(int(c, 0)), true);
    return { kind: "exit-process", waitStatus: c.process.waitStatus };
  },
  wait4: async (c) => {
    const pidSpec = int(c, 0);
    const statusAddress = arg(c, 1);
    const usageAddress = arg(c, 3);
    const options = decodeWaitOptions(int(c, 2));
    if (pidSpec === -0x80000000) return fail(Errno.ESRCH);
    const answer = (r: WaitResult) =>
      ok(
        r.pid,
        r.pid === 0
          ? []
          : [...out(statusAddress, i32(r.waitStatus)), ...out(usageAddress, encodeRusage(r.usage))],
      );
    const now = await c.kernel.wait(c.process.pid, pidSpec, { ...options, noHang: true });
    if (now.pid !== 0 || options.noHang) return answer(now);
    if (c.kernel.signalPending(c.thread)) return fail(Errno.EINTR);
    const stop = new AbortController();
    const slept = c.kernel.sleepInCall(c.thread, {
      state: "blocked",
      waitObject: { kind: "child", pid: c.process.pid, key: 0n },
      interruptible: true,
    });
    slept.then((reason) => stop.abort(reason));
    const completion = (async (): Promise<CallOutcome> => {
      try {
        const result = await c.kernel.wait(c.process.pid, pidSpec, options, stop.signal);
        c.kernel.wakeFromCall(c.thread.tid);
        return answer(result);
      } catch (error) {
        if (stop.signal.aborted) {
          return sleepOutcome(
            stop.signal.reason as SleepEnd,
            () => fail(Errno.EINTR),
            () => fail(Errno.EINTR),
          );
        }
        c.kernel.wakeFromCall(c.thread.tid);
        return fail(error instanceof AstraError ? error.errno : Errno.EIO);
      }
    })();
    return { kind: "blocked", completion };
  },
  execve: async (c) => {
    const path = c.memory.readString(
      arg(c, 0),
      PATH_MAX - 1,
      "filename",
      () => invalidArgument("filename", "the program path exceeds PATH_MAX", Errno.ENAMETOOLONG),
    );
    const argv = readStringArray(c.memory, arg(c, 1), "argv");
    const envp = readStringArray(c.memory, arg(c, 2), "envp");
    const { registers, spaceId } = await c.kernel.exec(c.process.pid, c.thread.tid, path, argv, envp, true);
    return { kind: "exec", registers, spaceId };
  },
  clone: (c) => cloneCall(c, int(c, 0) >>> 0, arg(c, 1), arg(c, 2), arg(c, 3), arg(c, 4)),
  fork: (c) => cloneCall(c, 17, 0n, 0n, 0n, 0n),
  vfork: (c) => cloneCall(c, 17, 0n, 0n, 0n, 0n),
};

/** argv or envp: the pointer array, then every string, each round fetching all that is missing. */
function readStringArray(memory: GuestReader, address: bigint, argument: string): Uint8Array[] {
  if (address === 0n) return [];
  const tooMany = () => invalidArgument(argument, `${argument} has too many entries`, Errno.E2BIG);
  const pointers = memory.readPointerArray(address, MAX_ARG_POINTERS, argument, tooMany);
  const missing: GuestRange[] = [];
  const strings = pointers.map((pointer) => {
    try {
      return memory.readString(
        pointer,
        MAX_ARG_STRLEN - 1,
        argument,
        () => invalidArgument(argument, `an ${argument} string exceeds MAX_ARG_STRLEN`, Errno.E2BIG),
      );
    } catch (error) {
      if (!(error instanceof FetchNeeded)) throw error;
      missing.push(...error.ranges);
      return new Uint8Array(0);
    }
  });
  if (missing.length > 0) throw new FetchNeeded(missing);
  return strings;
}

/** clone(flags, newsp, parent_tid, tls, child_tid): ppc64's argument order (CLONE_BACKWARDS). */
async function cloneCall(
  c: Context,
  flags: number,
  stack: bigint,
  parentTid: bigint,
  tls: bigint,
  childTid: bigint,
): Promise<CallOutcome> {
  if ((flags & ~CLONE_SUPPORTED) >>> 0 !== 0) {
    throw einval(
      "flags",
      `clone flags 0x${((flags & ~CLONE_SUPPORTED) >>> 0).toString(16)} are not supported`,
    );
  }
  const thread = (flags & CLONE_THREAD) !== 0;
  if (thread && (flags & (CLONE_VM | CLONE_SIGHAND)) !== (CLONE_VM | CLONE_SIGHAND)) {
    throw einval("flags", "CLONE_THREAD needs CLONE_VM and CLONE_SIGHAND");
  }
  if (!thread && (flags & CLONE_VM) !== 0) {
    throw new AstraError(
      Code.UNIMPLEMENTED,
      Errno.ENOSYS,
      "a process sharing its parent's memory (CLONE_VM without CLONE_THREAD, vfork's form) is not supported",
      { argument: "flags" },
    );
  }
  const child = await c.kernel.clone({
    pid: c.process.pid,
    tid: c.thread.tid,
    thread,
    stack,
    tls: (flags & CLONE_SETTLS) !== 0 ? tls : null,
    childSetTid: (flags & CLONE_CHILD_SETTID) !== 0 ? childTid : 0n,
    childClearTid: (flags & CLONE_CHILD_CLEARTID) !== 0 ? childTid : 0n,
  });
  const outputs = (flags & CLONE_PARENT_SETTID) !== 0 ? out(parentTid, i32(child.tid)) : [];
  return ok(child.tid, outputs);
}

// ---- signals ---------------------------------------------------------------------------------

function checkSigsetSize(size: bigint): void {
  if (size !== SIGSET_SIZE) throw einval("sigsetsize", `sigset size ${size} is not 8`);
}

/** Sleeps until a signal arrives (pause, rt_sigsuspend); the call then fails with EINTR. */
function sleepUntilSignal(c: Context): CallOutcome {
  if (c.kernel.signalPending(c.thread)) return fail(Errno.EINTR);
  const slept = c.kernel.sleepInCall(c.thread, {
    state: "blocked",
    waitObject: { kind: "signal", pid: c.process.pid, key: 0n },
    interruptible: true,
  });
  return {
    kind: "blocked",
    completion: slept.then((reason) =>
      sleepOutcome(reason, () => fail(Errno.EINTR), () => fail(Errno.EINTR))
    ),
  };
}

/** kill, tkill and tgkill: `signal` from the calling process to a process (tid 0) or a thread. */
function sendSignal(c: Context, pid: number, tid: number, signal: number): CallOutcome {
  c.kernel.kill({ senderPid: c.process.pid, pid, tid, signal, forced: false, code: 0, address: 0n });
  return ok(0);
}

const signalCalls: Partial<Record<SyscallName, Handler>> = {
  kill: (c) => sendSignal(c, int(c, 0), 0, int(c, 1)),
  tkill: (c) => {
    const tid = int(c, 0);
    if (tid <= 0) throw einval("tid", `thread id ${tid} is not positive`);
    const target = c.kernel.table.requireThread(tid);
    return sendSignal(c, target.process.pid, tid, int(c, 1));
  },
  tgkill: (c) => {
    const tgid = int(c, 0);
    const tid = int(c, 1);
    if (tgid <= 0 || tid <= 0) throw einval("tid", `tgkill(${tgid}, ${tid}) needs positive ids`);
    return sendSignal(c, tgid, tid, int(c, 2));
  },
  rt_sigaction: (c) => {
    const signal = int(c, 0);
    const actAddress = arg(c, 1);
    const oldAddress = arg(c, 2);
    checkSigsetSize(arg(c, 3));
    const act = actAddress === 0n
      ? null
      : decodeKernelSigaction(c.memory.read(actAddress, KERNEL_SIGACTION_SIZE, "act"));
    const previous = c.kernel.setSignalAction(c.process.pid, signal, act);
    return ok(0, out(oldAddress, encodeKernelSigaction(previous)));
  },
  rt_sigprocmask: (c) => {
    const how = int(c, 0);
    const setAddress = arg(c, 1);
    const oldAddress = arg(c, 2);
    checkSigsetSize(arg(c, 3));
    const set = setAddress === 0n ? null : c.memory.readU64(setAddress, "set");
    const { previous } = c.kernel.setSignalMask(
      c.process.pid,
      c.thread.tid,
      (current) => set === null ? current : applySignalMask(current, how, set),
    );
    return ok(0, out(oldAddress, u64(previous)));
  },
  rt_sigpending: (c) => {
    const size = arg(c, 1);
    if (size > SIGSET_SIZE) throw einval("sigsetsize", `sigset size ${size} exceeds 8`);
    const pending = (c.thread.pending.signals | c.process.pending.signals) & c.thread.blocked;
    return ok(0, out(arg(c, 0), u64(pending).subarray(0, Number(size))));
  },
  rt_sigsuspend: (c) => {
    checkSigsetSize(arg(c, 1));
    const mask = c.memory.readU64(arg(c, 0), "mask");
    c.thread.suspendSavedMask = c.thread.blocked;
    c.thread.blocked = mask & ~UNBLOCKABLE_SIGNALS;
    return sleepUntilSignal(c);
  },
  pause: (c) => sleepUntilSignal(c),
  sigaltstack: (c) => {
    const newAddress = arg(c, 0);
    const oldAddress = arg(c, 1);
    const next = newAddress === 0n ? null : decodeStackT(c.memory.read(newAddress, STACK_T_SIZE, "ss"));
    const current = c.thread.alternateStack;
    const previous = encodeStackT({
      base: current.base,
      flags: (current.flags & SS_DISABLE) !== 0 ? SS_DISABLE : current.flags & SS_AUTODISARM,
      size: current.size,
    });
    if (next) {
      const mode = next.flags & ~SS_AUTODISARM;
      if (mode !== 0 && mode !== SS_ONSTACK && mode !== SS_DISABLE) {
        throw einval("ss", `sigaltstack flags 0x${next.flags.toString(16)} are not valid`);
      }
      if (mode === SS_DISABLE) {
        c.thread.alternateStack = { base: 0n, size: 0n, flags: SS_DISABLE };
      } else {
        if (next.size < MIN_SIGNAL_STACK) {
          throw invalidArgument(
            "ss",
            `an alternate stack of ${next.size} bytes is below MINSIGSTKSZ`,
            Errno.ENOMEM,
          );
        }
        c.thread.alternateStack = { base: next.base, size: next.size, flags: next.flags & SS_AUTODISARM };
      }
    }
    return ok(0, out(oldAddress, previous));
  },
};

// ---- limits and usage ------------------------------------------------------------------------

function limitsCall(c: Context, targetPid: number, resource: number, newAddress: bigint, oldAddress: bigint) {
  const limit = newAddress === 0n ? null : decodeRlimit(c.memory.read(newAddress, RLIMIT_SIZE, "new_limit"));
  const [previous] = c.kernel.resourceLimits(c.process.pid, targetPid === 0 ? c.process.pid : targetPid, [
    { resource, limit },
  ]);
  return ok(0, out(oldAddress, encodeRlimit(previous)));
}

const limitCalls: Partial<Record<SyscallName, Handler>> = {
  prlimit64: (c) => limitsCall(c, int(c, 0), int(c, 1), arg(c, 2), arg(c, 3)),
  getrlimit: (c) => limitsCall(c, 0, int(c, 0), 0n, arg(c, 1)),
  ugetrlimit: (c) => limitsCall(c, 0, int(c, 0), 0n, arg(c, 1)),
  setrlimit: (c) => limitsCall(c, 0, int(c, 0), arg(c, 1), 0n),
  getrusage: (c) => {
    const who = int(c, 0);
    let usage;
    if (who === RUSAGE_SELF) usage = c.kernel.processUsage(c.process);
    else if (who === RUSAGE_CHILDREN) usage = c.process.childrenUsage;
    else if (who === RUSAGE_THREAD) usage = c.kernel.threadUsage(c.thread);
    else throw einval("who", `getrusage who ${who} is not RUSAGE_SELF, RUSAGE_CHILDREN or RUSAGE_THREAD`);
    return ok(0, out(arg(c, 1), encodeRusage(usage)));
  },
};

// ---- scheduling, time, randomness --------------------------------------------------------

/** Sleeps until a monotonic deadline; EINTR writes the time left to `remaining` if given. */
function sleepUntil(c: Context, wakeAt: number, remaining: bigint): CallOutcome {
  const now = c.kernel.now();
  if (wakeAt <= now) return ok(0);
  if (c.kernel.signalPending(c.thread)) {
    return fail(Errno.EINTR, out(remaining, encodeTimespec(BigInt(wakeAt - now))));
  }
  const slept = c.kernel.sleepInCall(c.thread, { state: "sleeping", wakeAt, interruptible: true });
  const completion = slept.then((reason): CallOutcome => {
    if (reason.kind === "signal") {
      const left = Math.max(0, wakeAt - c.kernel.now());
      return fail(Errno.EINTR, out(remaining, encodeTimespec(BigInt(left))));
    }
    return sleepOutcome(reason, () => ok(0), () => ok(0));
  });
  return { kind: "blocked", completion };
}

/** A clock's reading in nanoseconds for the calling thread. */
function clockNow(c: Context, clockId: number): bigint {
  return readClock(resolveClock(clockId, c.process.pid, c.thread.tid), c.kernel.clock, c.kernel.cpuTimes);
}

const timeCalls: Partial<Record<SyscallName, Handler>> = {
  sched_yield: (c) => {
    c.kernel.scheduler.yieldLater(c.thread.tid);
    return ok(0);
  },
  sched_getaffinity: (c) => {
    const pid = int(c, 0);
    const thread = pid === 0 ? c.thread : c.kernel.table.requireThread(pid);
    const mask = encodeCpuMask(
      c.kernel.scheduler.affinityOf(thread.tid),
      c.kernel.scheduler.cpuCount,
      arg(c, 1),
    );
    return ok(mask.length, out(arg(c, 2), mask));
  },
  clock_gettime: (c) => ok(0, out(arg(c, 1), encodeTimespec(clockNow(c, int(c, 0))))),
  clock_getres: (c) => ok(0, out(arg(c, 1), encodeTimespec(clockResolution(int(c, 0))))),
  gettimeofday: (c) => {
    const now = c.kernel.clock.realtimeNanos();
    return ok(0, [...out(arg(c, 0), encodeTimeval(now)), ...out(arg(c, 1), new Uint8Array(8))]);
  },
  time: (c) => {
    const seconds = c.kernel.clock.realtimeNanos() / 1_000_000_000n;
    return ok(seconds, out(arg(c, 0), u64(seconds)));
  },
  nanosleep: (c) => {
    const duration = decodeTimespec(c.memory.read(arg(c, 0), TIMESPEC_SIZE, "req"), "req", true);
    return sleepUntil(c, c.kernel.now() + Number(duration), arg(c, 1));
  },
  clock_nanosleep: (c) => {
    const clockId = int(c, 0);
    const flags = int(c, 1);
    if (clockId === CLOCK_THREAD_CPUTIME_ID || clockId === CLOCK_PROCESS_CPUTIME_ID) {
      throw einval("clockid", "sleeping on a CPU-time clock is not supported");
    }
    const target = resolveClock(clockId, c.process.pid, c.thread.tid);
    const request = decodeTimespec(c.memory.read(arg(c, 2), TIMESPEC_SIZE, "request"), "request", true);
    const now = c.kernel.now();
    if ((flags & TIMER_ABSTIME) === 0) return sleepUntil(c, now + Number(request), arg(c, 3));
    const left = request - readClock(target, c.kernel.clock, c.kernel.cpuTimes);
    return sleepUntil(c, now + Number(left > 0n ? left : 0n), 0n);
  },
  getrandom: (c) => {
    const flags = int(c, 2) >>> 0;
    if (
      (flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE)) !== 0 ||
      (flags & (GRND_RANDOM | GRND_INSECURE)) === (GRND_RANDOM | GRND_INSECURE)
    ) {
      throw einval("flags", `getrandom flags 0x${flags.toString(16)} are not valid`);
    }
    const length = arg(c, 1) < BigInt(GETRANDOM_MAX) ? Number(arg(c, 1)) : GETRANDOM_MAX;
    if (length > 0 && arg(c, 0) === 0n) throw badAddress(0n, "buf");
    const bytes = new Uint8Array(length);
    c.kernel.random(bytes);
    return ok(length, out(arg(c, 0), bytes));
  },
  futex: (c) => futexCall(c),
};

// ---- futex -------------------------------------------------------------------------------------

function futexCall(c: Context): CallOutcome {
  const address = arg(c, 0);
  const op = decodeFutexOperation(int(c, 1));
  const value = int(c, 2) >>> 0;
  if (address % 4n !== 0n) {
    throw einval("uaddr", `futex word 0x${address.toString(16)} is not 4-byte aligned`);
  }
  const key = futexKey(c.process.spaceId, address);
  const futexes = c.kernel.futexes;
  switch (op.command) {
    case FUTEX_WAIT:
    case FUTEX_WAIT_BITSET: {
      // A wake between the machine's read of the word and this wait would be lost: remember how
      // many wakes the futex had when the call first arrived, and fail with EAGAIN if that moved.
      if (!c.state.has("wakes")) c.state.set("wakes", futexes.wakeCount(key));
      const bitset = op.command === FUTEX_WAIT
        ? FUTEX_BITSET_MATCH_ANY
        : Number(BigInt.asUintN(32, arg(c, 5)));
      if (bitset === 0) throw einval("val3", "a futex wait needs a non-zero bitset");
      const timeoutAddress = arg(c, 3);
      const reads = [{ address, length: 4, argument: "uaddr" }];
      if (timeoutAddress !== 0n) {
        reads.push({ address: timeoutAddress, length: TIMESPEC_SIZE, argument: "timeout" });
      }
      const [word, timeoutBytes] = c.memory.readAll(reads);
      if (new DataView(word.buffer, word.byteOffset, 4).getUint32(0, true) !== value) {
        return fail(Errno.EAGAIN);
      }
      if (futexes.wakeCount(key) !== c.state.get("wakes")) return fail(Errno.EAGAIN);
      let wakeAt: number | null = null;
      if (timeoutAddress !== 0n) {
        const now = c.kernel.now();
        if (op.command === FUTEX_WAIT) {
          wakeAt = now + Number(decodeTimespec(timeoutBytes, "timeout", true));
        } else {
          const deadline = decodeTimespec(timeoutBytes, "timeout", false);
          const clockNowNanos = op.realtime ? c.kernel.clock.realtimeNanos() : BigInt(now);
          wakeAt = now + Number(deadline - clockNowNanos);
        }
        if (wakeAt <= now) return fail(Errno.ETIMEDOUT);
      }
      if (c.kernel.signalPending(c.thread)) return fail(Errno.EINTR);
      const tid = c.thread.tid;
      const waiter = futexes.wait(key, tid, bitset, () => c.kernel.wakeFromCall(tid));
      const slept = c.kernel.sleepInCall(c.thread, {
        state: "blocked",
        waitObject: { kind: "futex", pid: c.process.pid, key: address },
        wakeAt,
        interruptible: true,
      });
      const completion = slept.then((reason) => {
        if (reason.kind !== "woken") futexes.cancel(waiter);
        return sleepOutcome(reason, () => ok(0), () => fail(Errno.ETIMEDOUT));
      });
      return { kind: "blocked", completion };
    }
    case FUTEX_WAKE:
    case FUTEX_WAKE_BITSET: {
      const bitset = op.command === FUTEX_WAKE
        ? FUTEX_BITSET_MATCH_ANY
        : Number(BigInt.asUintN(32, arg(c, 5)));
      // Linux wakes at least one waiter even for a count of 0 or less.
      return ok(futexes.wake(key, Math.max(1, int(c, 2)), bitset).length);
    }
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE: {
      const wakeCount = int(c, 2);
      const requeueCount = int(c, 3);
      if (wakeCount < 0 || requeueCount < 0) throw einval("val", "futex requeue counts must not be negative");
      const target = arg(c, 4);
      if (target % 4n !== 0n) {
        throw einval("uaddr2", `futex word 0x${target.toString(16)} is not 4-byte aligned`);
      }
      if (op.command === FUTEX_CMP_REQUEUE) {
        const expected = Number(BigInt.asUintN(32, arg(c, 5)));
        if (c.memory.readU32(address, "uaddr") !== expected) return fail(Errno.EAGAIN);
      }
      return ok(futexes.requeue(key, futexKey(c.process.spaceId, target), wakeCount, requeueCount));
    }
    default:
      return fail(Errno.ENOSYS);
  }
}

const HANDLERS: ReadonlyMap<number, Handler> = new Map(
  (Object.entries({ ...identity, ...lifecycle, ...signalCalls, ...limitCalls, ...timeCalls }) as Array<
    [SyscallName, Handler]
  >).map(([name, handler]) => [SYSCALLS[name], handler]),
);

/** The system call numbers sched answers. */
export function handledCalls(): number[] {
  return [...HANDLERS.keys()];
}

/** Runs one system call against the kernel with the guest memory fetched so far. */
export async function runSystemCall(
  kernel: SchedKernel,
  call: SystemCall,
  inputs: readonly GuestBytes[],
  state: CallState,
): Promise<CallOutcome> {
  const handler = HANDLERS.get(call.number);
  if (!handler) {
    log.info("system call not implemented", { call: syscallName(call.number) ?? call.number, pid: call.pid });
    return fail(Errno.ENOSYS);
  }
  try {
    const thread = kernel.callingThread(call.pid, call.tid);
    return await handler({
      kernel,
      call,
      thread,
      process: thread.process,
      memory: new GuestReader(inputs),
      state,
    });
  } catch (error) {
    if (error instanceof FetchNeeded) return { kind: "fetch", ranges: error.ranges };
    if (error instanceof AstraError) return fail(error.errno);
    log.error("system call failed unexpectedly", {
      call: syscallName(call.number) ?? call.number,
      pid: call.pid,
      error: String(error),
    });
    return fail(Errno.EIO);
  }
}
