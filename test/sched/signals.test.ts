import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { AstraError, Errno } from "../../lib/errors.ts";
import {
  CLD_EXITED,
  SA_NODEFER,
  SA_RESETHAND,
  SA_RESTART,
  SA_SIGINFO,
  SA_UNSUPPORTED,
  SEGV_MAPERR,
  SI_KERNEL,
  SI_QUEUE,
  SI_TIMER,
  SI_TKILL,
  SI_USER,
  signalName,
} from "../../lib/linux/signals.ts";
import {
  actionIgnores,
  applySignalMask,
  decodeKernelSigaction,
  DEFAULT_SIGNAL_ACTION,
  defaultAction,
  EMPTY_SIGNAL_SET,
  encodeKernelSigaction,
  encodeSiginfo,
  FULL_SIGNAL_SET,
  hasSignal,
  ignoredOnArrival,
  nextDeliverableSignal,
  PendingSignals,
  SIG_BLOCK,
  SIG_DFL,
  SIG_IGN,
  SIG_SETMASK,
  SIG_UNBLOCK,
  type SignalAction,
  SignalActionTable,
  signalBit,
  signalsCancelledBy,
  signalSetOf,
  signalsIn,
  takeNextSignal,
} from "../../services/sched/signals.ts";

// Linux powerpc numbering and default actions, from signal(7) and asm/signal.h.
const LINUX_SIGNALS: Array<[string, number, string]> = [
  ["SIGHUP", 1, "terminate"],
  ["SIGINT", 2, "terminate"],
  ["SIGQUIT", 3, "core"],
  ["SIGILL", 4, "core"],
  ["SIGTRAP", 5, "core"],
  ["SIGABRT", 6, "core"],
  ["SIGBUS", 7, "core"],
  ["SIGFPE", 8, "core"],
  ["SIGKILL", 9, "terminate"],
  ["SIGUSR1", 10, "terminate"],
  ["SIGSEGV", 11, "core"],
  ["SIGUSR2", 12, "terminate"],
  ["SIGPIPE", 13, "terminate"],
  ["SIGALRM", 14, "terminate"],
  ["SIGTERM", 15, "terminate"],
  ["SIGSTKFLT", 16, "terminate"],
  ["SIGCHLD", 17, "ignore"],
  ["SIGCONT", 18, "continue"],
  ["SIGSTOP", 19, "stop"],
  ["SIGTSTP", 20, "stop"],
  ["SIGTTIN", 21, "stop"],
  ["SIGTTOU", 22, "stop"],
  ["SIGURG", 23, "ignore"],
  ["SIGXCPU", 24, "core"],
  ["SIGXFSZ", 25, "core"],
  ["SIGVTALRM", 26, "terminate"],
  ["SIGPROF", 27, "terminate"],
  ["SIGWINCH", 28, "ignore"],
  ["SIGIO", 29, "terminate"],
  ["SIGPWR", 30, "terminate"],
  ["SIGSYS", 31, "core"],
];

function errnoOf(fn: () => unknown): Errno | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AstraError);
    return (e as AstraError).errno;
  }
  return undefined;
}

const handlerAt = (address: bigint, flags = 0n, mask = EMPTY_SIGNAL_SET): SignalAction => ({
  handler: address,
  flags,
  restorer: 0n,
  mask,
});

describe("signal numbers and default actions", () => {
  it("match Linux on powerpc for every standard signal", () => {
    for (const [name, number, action] of LINUX_SIGNALS) {
      expect(signalName(number)).toBe(name);
      expect(defaultAction(number)).toBe(action);
    }
  });

  it("treat real-time signals 32..64 as terminating, named from SIGRTMIN", () => {
    for (let s = 32; s <= 64; s++) expect(defaultAction(s)).toBe("terminate");
    expect(signalName(32)).toBe("SIGRTMIN");
    expect(signalName(34)).toBe("SIGRTMIN+2");
    expect(signalName(64)).toBe("SIGRTMIN+32");
  });

  it("use the sigset_t bit layout and refuse numbers outside 1..64", () => {
    expect(signalBit(1)).toBe(1n);
    expect(signalBit(9)).toBe(0x100n);
    expect(signalBit(64)).toBe(1n << 63n);
    expect(signalSetOf(2, 15)).toBe(0x4002n);
    expect(signalsIn(0x4002n | (1n << 63n))).toEqual([2, 15, 64]);
    expect(errnoOf(() => signalBit(0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => signalBit(65))).toBe(Errno.EINVAL);
  });
});

describe("signal masks", () => {
  it("block, unblock and set, never keeping SIGKILL or SIGSTOP blocked", () => {
    const base = signalSetOf(2, 10);
    expect(applySignalMask(base, SIG_BLOCK, signalSetOf(15, 9))).toBe(signalSetOf(2, 10, 15));
    expect(applySignalMask(base, SIG_UNBLOCK, signalSetOf(10, 15))).toBe(signalSetOf(2));
    expect(applySignalMask(base, SIG_SETMASK, FULL_SIGNAL_SET)).toBe(FULL_SIGNAL_SET & ~signalSetOf(9, 19));
    expect(errnoOf(() => applySignalMask(base, 3, 0n))).toBe(Errno.EINVAL);
  });

  it("keep every mask within 64 bits and free of SIGKILL/SIGSTOP", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: FULL_SIGNAL_SET }),
        fc.constantFrom(SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK),
        fc.bigInt({ min: 0n, max: FULL_SIGNAL_SET }),
        (current, how, set) => {
          const next = applySignalMask(current & ~signalSetOf(9, 19), how, set);
          expect(next & signalSetOf(9, 19)).toBe(0n);
          expect(next).toBeLessThanOrEqual(FULL_SIGNAL_SET);
          if (how === SIG_BLOCK) expect(next & set & ~signalSetOf(9, 19)).toBe(set & ~signalSetOf(9, 19));
          if (how === SIG_UNBLOCK) expect(next & set).toBe(0n);
        },
      ),
    );
  });
});

describe("the sigaction table", () => {
  it("refuses SIGKILL, SIGSTOP and out-of-range signals", () => {
    const table = new SignalActionTable();
    expect(errnoOf(() => table.set(9, handlerAt(0x1000n)))).toBe(Errno.EINVAL);
    expect(errnoOf(() => table.set(19, { ...DEFAULT_SIGNAL_ACTION, handler: SIG_IGN }))).toBe(Errno.EINVAL);
    expect(errnoOf(() => table.set(0, handlerAt(0x1000n)))).toBe(Errno.EINVAL);
    expect(errnoOf(() => table.get(65))).toBe(Errno.EINVAL);
  });

  it("returns the previous action, drops unknown flags and unblockable mask bits", () => {
    const table = new SignalActionTable();
    const first = table.set(
      10,
      handlerAt(0x1000n, SA_SIGINFO | SA_UNSUPPORTED | 0x100n, signalSetOf(9, 12, 19)),
    );
    expect(first.previous).toEqual(DEFAULT_SIGNAL_ACTION);
    expect(table.get(10)).toEqual(handlerAt(0x1000n, SA_SIGINFO, signalSetOf(12)));
    const second = table.set(10, handlerAt(0x2000n, SA_RESTART));
    expect(second.previous).toEqual(handlerAt(0x1000n, SA_SIGINFO, signalSetOf(12)));
  });

  it("says to discard pending instances when the new action ignores the signal", () => {
    const table = new SignalActionTable();
    expect(table.set(15, { ...DEFAULT_SIGNAL_ACTION, handler: SIG_IGN }).discardPending).toBe(true);
    expect(table.set(17, DEFAULT_SIGNAL_ACTION).discardPending).toBe(true); // SIGCHLD: ignored by default
    expect(table.set(15, DEFAULT_SIGNAL_ACTION).discardPending).toBe(false);
    expect(table.set(15, handlerAt(0x1000n)).discardPending).toBe(false);
  });

  it("keeps ignored signals ignored across exec and resets handlers; fork copies independently", () => {
    const table = new SignalActionTable();
    table.set(1, { ...DEFAULT_SIGNAL_ACTION, handler: SIG_IGN, flags: SA_RESTART, mask: signalSetOf(2) });
    table.set(2, handlerAt(0x1000n, SA_SIGINFO, signalSetOf(3)));
    const child = table.clone();
    table.resetForExec();
    expect(table.get(1)).toEqual({ ...DEFAULT_SIGNAL_ACTION, handler: SIG_IGN });
    expect(table.get(2)).toEqual(DEFAULT_SIGNAL_ACTION);
    expect(child.get(2)).toEqual(handlerAt(0x1000n, SA_SIGINFO, signalSetOf(3)));
  });

  it("encodes struct sigaction as handler, flags, restorer, mask in little-endian words", () => {
    const action = handlerAt(0x1000_2000_3000n, SA_SIGINFO | SA_RESTART, signalSetOf(2, 64));
    action.restorer = 0x4444n;
    const bytes = encodeKernelSigaction(action);
    const view = new DataView(bytes.buffer);
    expect(bytes.length).toBe(32);
    expect(view.getBigUint64(0, true)).toBe(0x1000_2000_3000n);
    expect(view.getBigUint64(8, true)).toBe(0x10000004n);
    expect(view.getBigUint64(16, true)).toBe(0x4444n);
    expect(view.getBigUint64(24, true)).toBe((1n << 63n) | 2n);
    expect(decodeKernelSigaction(bytes)).toEqual(action);
    expect(errnoOf(() => decodeKernelSigaction(bytes.slice(0, 31)))).toBe(Errno.EFAULT);
  });
});

describe("pending signals", () => {
  it("merge a standard signal sent twice and keep the first sender's info", () => {
    const pending = new PendingSignals();
    expect(pending.enqueue({ signal: 10, code: SI_USER, pid: 5, uid: 1 }, true)).toBe("marked");
    expect(pending.enqueue({ signal: 10, code: SI_USER, pid: 6, uid: 1 }, true)).toBe("merged");
    expect(pending.signals).toBe(signalSetOf(10));
    expect(pending.dequeue(10)?.info.pid).toBe(5);
    expect(pending.dequeue(10)).toBeNull();
    expect(pending.signals).toBe(0n);
  });

  it("queue every real-time instance in order and count them", () => {
    const pending = new PendingSignals();
    for (const value of [1n, 2n, 3n]) {
      expect(pending.enqueue({ signal: 40, code: SI_QUEUE, pid: 7, value }, true)).toBe("queued");
    }
    expect(pending.countedEntries).toBe(3);
    expect(pending.dequeue(40)?.info.value).toBe(1n);
    expect(pending.dequeue(40)).toEqual({
      info: { signal: 40, code: SI_QUEUE, pid: 7, value: 2n },
      counted: true,
    });
    expect(hasSignal(pending.signals, 40)).toBe(true);
    pending.dequeue(40);
    expect(hasSignal(pending.signals, 40)).toBe(false);
  });

  it("over RLIMIT_SIGPENDING: kill() still marks the signal without info, sigqueue and tgkill get refused", () => {
    const pending = new PendingSignals();
    expect(pending.enqueue({ signal: 35, code: SI_QUEUE, pid: 7, value: 9n }, false)).toBe("rejected");
    expect(pending.enqueue({ signal: 35, code: SI_TKILL, pid: 7 }, false)).toBe("rejected");
    expect(pending.signals).toBe(0n);
    expect(pending.enqueue({ signal: 35, code: SI_USER, pid: 7, uid: 3 }, false)).toBe("marked");
    expect(pending.enqueue({ signal: 36, code: SI_KERNEL }, false)).toBe("marked");
    expect(pending.countedEntries).toBe(0);
    expect(pending.dequeue(35)).toEqual({
      info: { signal: 35, code: SI_USER, pid: 0, uid: 0 },
      counted: false,
    });
  });

  it("discard signals of a set and report the counted entries released", () => {
    const pending = new PendingSignals();
    pending.enqueue({ signal: 40, code: SI_QUEUE }, true);
    pending.enqueue({ signal: 40, code: SI_QUEUE }, true);
    pending.enqueue({ signal: 15, code: SI_USER }, true);
    pending.enqueue({ signal: 2, code: SI_USER }, true);
    expect(pending.discard(signalSetOf(40, 15))).toBe(2);
    expect(pending.signals).toBe(signalSetOf(2));
    expect(pending.dequeue(40)).toBeNull();
  });

  it("cancel stops on SIGCONT and SIGCONT on a stop signal", () => {
    expect(signalsCancelledBy(18)).toBe(signalSetOf(19, 20, 21, 22));
    expect(signalsCancelledBy(20)).toBe(signalSetOf(18));
    expect(signalsCancelledBy(15)).toBe(0n);
  });

  it("drop an ignored signal on arrival unless it is blocked", () => {
    const ignore = { ...DEFAULT_SIGNAL_ACTION, handler: SIG_IGN };
    expect(ignoredOnArrival(15, ignore, 0n)).toBe(true);
    expect(ignoredOnArrival(15, ignore, signalSetOf(15))).toBe(false);
    expect(ignoredOnArrival(28, DEFAULT_SIGNAL_ACTION, 0n)).toBe(true);
    expect(ignoredOnArrival(15, DEFAULT_SIGNAL_ACTION, 0n)).toBe(false);
    expect(actionIgnores(17, handlerAt(0x1000n))).toBe(false);
  });
});

describe("delivery decisions", () => {
  it("deliver synchronous faults before lower-numbered asynchronous signals", () => {
    expect(nextDeliverableSignal(signalSetOf(2, 11), 0n)).toBe(11);
    expect(nextDeliverableSignal(signalSetOf(2, 15), 0n)).toBe(2);
    expect(nextDeliverableSignal(signalSetOf(2, 11), signalSetOf(11))).toBe(2);
    expect(nextDeliverableSignal(signalSetOf(2), signalSetOf(2))).toBe(0);
    expect(nextDeliverableSignal(signalSetOf(4, 8, 64), 0n)).toBe(4);
  });

  it("pick the lowest deliverable signal, preferring synchronous ones (property)", () => {
    const sync = signalSetOf(4, 5, 7, 8, 11, 31);
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: FULL_SIGNAL_SET }),
        fc.bigInt({ min: 0n, max: FULL_SIGNAL_SET }),
        (p, b) => {
          const chosen = nextDeliverableSignal(p, b);
          const deliverable = signalsIn(p & ~b);
          const syncOnes = deliverable.filter((s) => hasSignal(sync, s));
          expect(chosen).toBe(syncOnes[0] ?? deliverable[0] ?? 0);
        },
      ),
    );
  });

  function context(overrides: Partial<Parameters<typeof takeNextSignal>[0]> = {}) {
    return {
      threadPending: new PendingSignals(),
      processPending: new PendingSignals(),
      blocked: EMPTY_SIGNAL_SET,
      actions: new SignalActionTable(),
      ...overrides,
    };
  }

  it("run a handler with the action's mask plus the signal, and save the old mask", () => {
    const ctx = context({ blocked: signalSetOf(3) });
    ctx.actions.set(10, handlerAt(0x1000n, SA_SIGINFO, signalSetOf(12)));
    ctx.processPending.enqueue({ signal: 10, code: SI_USER, pid: 4, uid: 0 }, true);
    const decision = takeNextSignal(ctx);
    expect(decision).toEqual({
      kind: "handler",
      signal: 10,
      info: { signal: 10, code: SI_USER, pid: 4, uid: 0 },
      action: handlerAt(0x1000n, SA_SIGINFO, signalSetOf(12)),
      handlerMask: signalSetOf(3, 10, 12),
      savedMask: signalSetOf(3),
    });
    expect(ctx.processPending.signals).toBe(0n);
  });

  it("leave the signal unblocked with SA_NODEFER and reset the action with SA_RESETHAND", () => {
    const ctx = context();
    ctx.actions.set(10, handlerAt(0x1000n, SA_NODEFER | SA_RESETHAND));
    ctx.threadPending.enqueue({ signal: 10, code: SI_TKILL }, true);
    const decision = takeNextSignal(ctx);
    expect(decision.kind === "handler" && decision.handlerMask).toBe(0n);
    expect(ctx.actions.get(10)).toEqual({
      ...handlerAt(0x1000n, SA_NODEFER | SA_RESETHAND),
      handler: SIG_DFL,
    });
  });

  it("take the thread's own signals before the process's", () => {
    const ctx = context();
    ctx.actions.set(2, handlerAt(0x2000n));
    ctx.actions.set(10, handlerAt(0x1000n));
    ctx.processPending.enqueue({ signal: 2, code: SI_USER }, true);
    ctx.threadPending.enqueue({ signal: 10, code: SI_TKILL }, true);
    expect(takeNextSignal(ctx)).toMatchObject({ kind: "handler", signal: 10 });
    expect(takeNextSignal(ctx)).toMatchObject({ kind: "handler", signal: 2 });
    expect(takeNextSignal(ctx)).toEqual({ kind: "none" });
  });

  it("consume ignored signals and SIGCONT silently, then terminate on a default SIGSEGV with core", () => {
    let released = 0;
    const ctx = context({ releaseCounted: () => released++ });
    ctx.actions.set(15, { ...DEFAULT_SIGNAL_ACTION, handler: SIG_IGN });
    ctx.processPending.enqueue({ signal: 15, code: SI_USER }, true);
    ctx.processPending.enqueue({ signal: 17, code: CLD_EXITED }, true);
    ctx.processPending.enqueue({ signal: 18, code: SI_USER }, true);
    ctx.processPending.enqueue({ signal: 40, code: SI_QUEUE }, true);
    ctx.actions.set(40, { ...DEFAULT_SIGNAL_ACTION, handler: SIG_IGN });
    ctx.threadPending.enqueue({ signal: 11, code: SEGV_MAPERR, address: 0x10n }, true);
    expect(takeNextSignal(ctx)).toEqual({
      kind: "terminate",
      signal: 11,
      info: { signal: 11, code: SEGV_MAPERR, address: 0x10n },
      dumpsCore: true,
    });
    expect(takeNextSignal(ctx)).toEqual({ kind: "none" });
    expect(released).toBe(1);
  });

  it("stop on SIGTSTP except in an orphaned process group; SIGSTOP stops regardless", () => {
    const ctx = context({ orphanedProcessGroup: true });
    ctx.processPending.enqueue({ signal: 20, code: SI_USER }, true);
    expect(takeNextSignal(ctx)).toEqual({ kind: "none" });
    ctx.processPending.enqueue({ signal: 19, code: SI_USER }, true);
    expect(takeNextSignal(ctx)).toMatchObject({ kind: "stop", signal: 19 });
    const normal = context();
    normal.processPending.enqueue({ signal: 20, code: SI_USER }, true);
    expect(takeNextSignal(normal)).toMatchObject({ kind: "stop", signal: 20 });
  });

  it("spare init from default actions except SIGKILL", () => {
    const ctx = context({ isInit: true });
    ctx.processPending.enqueue({ signal: 15, code: SI_USER }, true);
    expect(takeNextSignal(ctx)).toEqual({ kind: "none" });
    ctx.processPending.enqueue({ signal: 9, code: SI_USER }, true);
    expect(takeNextSignal(ctx)).toMatchObject({ kind: "terminate", signal: 9, dumpsCore: false });
  });

  it("leave blocked signals pending", () => {
    const ctx = context({ blocked: signalSetOf(15) });
    ctx.processPending.enqueue({ signal: 15, code: SI_USER }, true);
    expect(takeNextSignal(ctx)).toEqual({ kind: "none" });
    expect(ctx.processPending.signals).toBe(signalSetOf(15));
  });
});

describe("siginfo_t", () => {
  const view = (bytes: Uint8Array) => new DataView(bytes.buffer);

  it("uses the kill layout for kill(): pid at 16, uid at 20", () => {
    const bytes = encodeSiginfo({ signal: 15, code: SI_USER, pid: 42, uid: 1000 });
    expect(bytes.length).toBe(128);
    expect([view(bytes).getInt32(0, true), view(bytes).getInt32(8, true)]).toEqual([15, SI_USER]);
    expect([view(bytes).getInt32(16, true), view(bytes).getUint32(20, true)]).toEqual([42, 1000]);
  });

  it("uses the rt layout for sigqueue and tgkill: the value at 24", () => {
    const bytes = encodeSiginfo({ signal: 40, code: SI_QUEUE, pid: 42, uid: 7, value: -1n });
    expect(view(bytes).getInt32(8, true)).toBe(-1);
    expect(view(bytes).getBigUint64(24, true)).toBe((1n << 64n) - 1n);
    const tkill = encodeSiginfo({ signal: 10, code: SI_TKILL, pid: 3, uid: 4 });
    expect([view(tkill).getInt32(16, true), view(tkill).getUint32(20, true)]).toEqual([3, 4]);
  });

  it("uses the fault layout for SIGSEGV: the address at 16", () => {
    const bytes = encodeSiginfo({ signal: 11, code: SEGV_MAPERR, address: 0xdead_beef_0000n });
    expect(view(bytes).getBigUint64(16, true)).toBe(0xdead_beef_0000n);
  });

  it("uses the chld layout for SIGCHLD: status at 24, user and system time at 32 and 40", () => {
    const bytes = encodeSiginfo({
      signal: 17,
      code: CLD_EXITED,
      pid: 9,
      uid: 0,
      status: 3,
      userTime: 12n,
      systemTime: 34n,
    });
    expect(view(bytes).getInt32(16, true)).toBe(9);
    expect(view(bytes).getInt32(24, true)).toBe(3);
    expect(view(bytes).getBigInt64(32, true)).toBe(12n);
    expect(view(bytes).getBigInt64(40, true)).toBe(34n);
  });

  it("uses the sys layout for SIGSYS: call address, syscall number and arch", () => {
    const bytes = encodeSiginfo({ signal: 31, code: 1, address: 0x1000n, syscall: 999, arch: 0xc0000015 });
    expect(view(bytes).getBigUint64(16, true)).toBe(0x1000n);
    expect(view(bytes).getInt32(24, true)).toBe(999);
    expect(view(bytes).getUint32(28, true)).toBe(0xc0000015);
  });

  it("uses the timer layout for SI_TIMER and the poll layout for SIGIO's POLL_* codes", () => {
    const timer = encodeSiginfo({ signal: 14, code: SI_TIMER, timerId: 3, overrun: 2, value: 5n });
    expect([view(timer).getInt32(16, true), view(timer).getInt32(20, true)]).toEqual([3, 2]);
    expect(view(timer).getBigUint64(24, true)).toBe(5n);
    const poll = encodeSiginfo({ signal: 29, code: 1, band: 0x41n, fd: 7, pid: 99 });
    expect(view(poll).getBigInt64(16, true)).toBe(0x41n);
    expect(view(poll).getInt32(24, true)).toBe(7);
  });

  it("does not put a SIGCHLD status into a kill() siginfo", () => {
    const bytes = encodeSiginfo({ signal: 17, code: SI_USER, pid: 9, status: 3 });
    expect(view(bytes).getInt32(24, true)).toBe(0);
  });
});

describe("handler values", () => {
  it("are SIG_DFL 0 and SIG_IGN 1 as in the kernel's struct", () => {
    expect([SIG_DFL, SIG_IGN]).toEqual([0n, 1n]);
    expect(
      decodeKernelSigaction(encodeKernelSigaction({ ...DEFAULT_SIGNAL_ACTION, handler: SIG_IGN })).handler,
    )
      .toBe(1n);
  });
});
