// The trap path's system calls to sched and vmm over their KernelCall streams: FETCH rounds,
// out-of-order answers, BLOCKED then RETURN, the endings of a program, ENOSYS for what nobody
// owns, and streams that fail, are retried once, and are reopened.
import { afterEach, describe, expect, it } from "vitest";
import { KernelCallAction, SignalOutcome as ProtoSignalOutcome } from "../../gen/astra/sched/v1/sched_pb.ts";
import { VfsService as StorageService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { SYSCALLS } from "../../lib/linux/syscall_numbers.ts";
import { pendingMethods } from "../../lib/server.ts";
import { initTracing, recentSpans } from "../../lib/tracing.ts";
import type { KernelCallOutcome } from "../../services/machine/kernel_side.ts";
import { startTrapRig, THREAD, type TrapRig } from "./trap_rig.ts";

let rig: TrapRig;

afterEach(async () => {
  await rig?.close();
});

const NO_ARGS = [0n, 0n, 0n, 0n, 0n, 0n];
const args = (...values: bigint[]) => [...values, ...NO_ARGS].slice(0, 6);
const returned = (value: bigint, signalPending = false): KernelCallOutcome => ({
  kind: "return",
  value,
  signalPending,
});
const errored = (errno: Errno): KernelCallOutcome => ({ kind: "error", errno, signalPending: false });

function returnReply(callId: bigint, value: bigint, extra: Record<string, unknown> = {}) {
  return { callId, action: KernelCallAction.RETURN, outcome: { case: "value" as const, value }, ...extra };
}

describe("sched's calls", () => {
  it("sends the registers and returns r3", async () => {
    rig = startTrapRig();
    rig.sched.kernelCalls.onRequest = (req, stream) => stream.reply(returnReply(req.callId, 41n));
    const outcome = await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.getppid, args(1n, 2n, 3n));
    expect(outcome).toEqual(returned(41n));
    const [request] = rig.sched.kernelCalls.requests;
    expect(request).toMatchObject({ number: SYSCALLS.getppid, cpu: 1, pid: 1, tid: 1, arg0: 1n, arg2: 3n });
  });

  it("passes errors and a pending signal on", async () => {
    rig = startTrapRig();
    rig.sched.kernelCalls.onRequest = (req, stream) =>
      stream.reply({
        callId: req.callId,
        action: KernelCallAction.RETURN,
        outcome: { case: "error", value: Errno.ESRCH },
        signalPending: true,
      });
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.kill, args(99n, 9n))).toEqual({
      kind: "error",
      errno: Errno.ESRCH,
      signalPending: true,
    });
  });

  it("reads what a FETCH asks for, faulting the page in, and sends the call again", async () => {
    rig = startTrapRig();
    const act = 0x10000n, old = 0x20000n;
    rig.vmm.region(0x10000n, 0x20000);
    const sigaction = Uint8Array.from({ length: 24 }, (_, i) => i + 1);
    rig.memory.poke(act, sigaction);
    rig.memory.evict(act, 24); // not translated yet: vmm must map it
    rig.sched.kernelCalls.onRequest = (req, stream) => {
      if (req.inputs.length === 0) {
        stream.reply({
          callId: req.callId,
          action: KernelCallAction.FETCH,
          fetch: [{ address: act, length: 24n }],
        });
        return;
      }
      expect(req.inputs[0].address).toBe(act);
      stream.reply(returnReply(req.callId, 0n, { outputs: [{ address: old, data: req.inputs[0].data }] }));
    };
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.rt_sigaction, args(2n, act, old, 8n)))
      .toEqual(returned(0n));
    expect(rig.sched.kernelCalls.requests.map((r) => r.callId)).toEqual([1n, 1n]);
    expect(rig.vmm.faults.map((f) => f.address)).toEqual([act, old]);
    expect(rig.memory.peek(old, 24)).toEqual(sigaction);
  });

  it("answers EFAULT itself for a range it cannot read, without a signal", async () => {
    rig = startTrapRig();
    rig.sched.kernelCalls.onRequest = (req, stream) =>
      stream.reply({
        callId: req.callId,
        action: KernelCallAction.FETCH,
        fetch: [{ address: 0x999000n, length: 16n }],
      });
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.nanosleep, args(0x999000n)))
      .toEqual(errored(Errno.EFAULT));
    expect(rig.sched.kernelCalls.requests).toHaveLength(1);
    expect(rig.sched.kills).toEqual([]);
  });

  it("pairs answers with calls by call_id, whatever their order", async () => {
    rig = startTrapRig();
    const held: bigint[] = [];
    rig.sched.kernelCalls.onRequest = (req, stream) => {
      if (req.number === SYSCALLS.wait4) held.push(req.callId);
      else {
        stream.reply(returnReply(req.callId, BigInt(req.number)));
        for (const id of held.splice(0)) stream.reply(returnReply(id, 1234n));
      }
    };
    const slow = rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.wait4, NO_ARGS);
    const fast = rig.kernel.systemCall({ ...THREAD, tid: 2 }, rig.memory, SYSCALLS.getpid, NO_ARGS);
    expect(await fast).toEqual(returned(BigInt(SYSCALLS.getpid)));
    expect(await slow).toEqual(returned(1234n));
    expect(rig.sched.kernelCalls.streams).toBe(1);
  });

  it("puts a BLOCKED thread to sleep and completes it with the later RETURN", async () => {
    rig = startTrapRig();
    const status = 0x30000n;
    rig.vmm.region(status, 4096);
    let wake = () => {};
    rig.sched.kernelCalls.onRequest = (req, stream) => {
      stream.reply({ callId: req.callId, action: KernelCallAction.BLOCKED });
      wake = () =>
        stream.reply(
          returnReply(req.callId, 77n, { outputs: [{ address: status, data: Uint8Array.of(0, 3) }] }),
        );
    };
    const outcome = await rig.kernel.systemCall(
      THREAD,
      rig.memory,
      SYSCALLS.wait4,
      args(0xffffffffffffffffn, status),
    );
    if (outcome.kind !== "blocked") throw new Error(`expected blocked, got ${outcome.kind}`);
    wake();
    expect(await outcome.done).toEqual(returned(77n));
    expect(rig.memory.peek(status, 2)).toEqual(Uint8Array.of(0, 3));
  });

  it("maps EXEC, EXIT_THREAD and EXIT_PROCESS", async () => {
    rig = startTrapRig();
    const entry = {
      pc: 0x10000100n,
      r1: 0x7fff0000n,
      r3: 1n,
      r4: 2n,
      r5: 3n,
      r6: 4n,
      r7: 0n,
      r12: 0x10000100n,
    };
    rig.sched.kernelCalls.onRequest = (req, stream) => {
      if (req.number === SYSCALLS.execve) {
        stream.reply({ callId: req.callId, action: KernelCallAction.EXEC, entry, spaceId: 9n });
      } else if (req.number === SYSCALLS.exit) {
        stream.reply({ callId: req.callId, action: KernelCallAction.EXIT_THREAD });
      } else {
        stream.reply({ callId: req.callId, action: KernelCallAction.EXIT_PROCESS, waitStatus: 0x300 });
      }
    };
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.execve, NO_ARGS))
      .toEqual({ kind: "exec", entry, spaceId: 9n });
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.exit, NO_ARGS)).toEqual({
      kind: "exit-thread",
    });
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.exit_group, args(3n)))
      .toEqual({ kind: "exit-process", waitStatus: 0x300 });
  });

  it("fails a call sched answers with no action", async () => {
    rig = startTrapRig();
    rig.sched.kernelCalls.onRequest = (req, stream) => stream.reply({ callId: req.callId });
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.getpid, NO_ARGS)).toEqual(
      errored(Errno.EIO),
    );
  });
});

describe("vmm's calls", () => {
  it("sends the registers with the address space and returns r3 or the errno", async () => {
    rig = startTrapRig();
    rig.vmm.kernelCalls.onRequest = (req, stream) =>
      stream.reply({
        callId: req.callId,
        outcome: req.number === SYSCALLS.brk
          ? { case: "value", value: 0x10020000n }
          : { case: "error", value: Errno.ENOMEM },
      });
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.brk, NO_ARGS)).toEqual(
      returned(0x10020000n),
    );
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.mmap, args(0n, 1n << 40n)))
      .toEqual(errored(Errno.ENOMEM));
    expect(rig.vmm.kernelCalls.requests[1]).toMatchObject({ spaceId: 7n, cpu: 1, args: args(0n, 1n << 40n) });
  });

  it("answers ENOSYS when no service serves the stream", async () => {
    rig = startTrapRig({ withoutVmm: true });
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.munmap, NO_ARGS)).toEqual(
      errored(Errno.ENOSYS),
    );
  });
});

describe("calls nobody owns", () => {
  it("answers ENOSYS with a span naming the call", async () => {
    await initTracing();
    rig = startTrapRig();
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.socket, NO_ARGS)).toEqual(
      errored(Errno.ENOSYS),
    );
    expect(await rig.kernel.systemCall(THREAD, rig.memory, 9999, NO_ARGS)).toEqual(errored(Errno.ENOSYS));
    const spans = recentSpans().filter((s) => s.name === "sys.socket" || s.name === "sys.9999");
    expect(spans.map((s) => s.name)).toEqual(["sys.socket", "sys.9999"]);
    expect(spans[0].attributes["syscall.errno"]).toBe("ENOSYS");
    expect(rig.sched.kernelCalls.streams).toBe(0);
  });
});

describe("stream failures", () => {
  const unavailable = () => new AstraError(Code.UNAVAILABLE, Errno.EAGAIN, "sched restarting");

  it("fails the calls in flight with EIO and opens a new stream for the next call", async () => {
    rig = startTrapRig();
    rig.sched.kernelCalls.onRequest = (req, stream) => {
      if (stream.index === 1 && req.number === SYSCALLS.getpid) stream.reply(returnReply(req.callId, 1n));
      else if (stream.index === 1) stream.fail(unavailable());
      else stream.reply(returnReply(req.callId, 2n));
    };
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.getpid, NO_ARGS)).toEqual(returned(1n));
    // Answered before on this stream: the peer may have run it, so it is not repeated.
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.getuid, NO_ARGS)).toEqual(
      errored(Errno.EIO),
    );
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.getuid, NO_ARGS)).toEqual(returned(2n));
    expect(rig.sched.kernelCalls.streams).toBe(2);
  });

  it("sends once more, on a fresh stream, the calls of a stream that never answered", async () => {
    rig = startTrapRig();
    rig.sched.kernelCalls.onRequest = (req, stream) => {
      if (stream.index === 1) stream.fail(unavailable());
      else stream.reply(returnReply(req.callId, 5n));
    };
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.getppid, NO_ARGS)).toEqual(returned(5n));
    expect(rig.sched.kernelCalls.streams).toBe(2);
  });

  it("gives up after that one retry", async () => {
    rig = startTrapRig();
    rig.sched.kernelCalls.onRequest = (_req, stream) => stream.fail(unavailable());
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.getppid, NO_ARGS)).toEqual(
      errored(Errno.EIO),
    );
    expect(rig.sched.kernelCalls.streams).toBe(2);
  });

  it("interrupts a sleeping call (EINTR) when its stream fails", async () => {
    rig = startTrapRig();
    let fail = () => {};
    rig.sched.kernelCalls.onRequest = (req, stream) => {
      stream.reply({ callId: req.callId, action: KernelCallAction.BLOCKED });
      fail = () => stream.fail(unavailable());
    };
    const outcome = await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.futex, NO_ARGS);
    if (outcome.kind !== "blocked") throw new Error(`expected blocked, got ${outcome.kind}`);
    fail();
    expect(await outcome.done).toEqual(errored(Errno.EINTR));
  });

  it("ends sleeping calls at close", async () => {
    rig = startTrapRig();
    rig.sched.kernelCalls.onRequest = (req, stream) =>
      stream.reply({ callId: req.callId, action: KernelCallAction.BLOCKED });
    const outcome = await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.nanosleep, NO_ARGS);
    if (outcome.kind !== "blocked") throw new Error(`expected blocked, got ${outcome.kind}`);
    await rig.kernel.close();
    expect(await outcome.done).toEqual(errored(Errno.EINTR));
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.getpid, NO_ARGS)).toEqual(
      errored(Errno.EIO),
    );
  });

  it("fails a storage call whose stream fails before answering, after the retry", async () => {
    let streams = 0;
    rig = startTrapRig({
      storage: {
        ...pendingMethods(StorageService, "the trap path's tests"),
        kernelCall: () => {
          streams++;
          throw new AstraError(Code.UNAVAILABLE, Errno.EAGAIN, "storage is mounting");
        },
      },
    });
    expect(await rig.kernel.systemCall(THREAD, rig.memory, SYSCALLS.close, args(3n))).toEqual(
      errored(Errno.EIO),
    );
    expect(streams).toBe(2);
  });
});

describe("signals and scheduling", () => {
  it("maps HandleSignal's outcomes, and kills when sched cannot say", async () => {
    const siginfo = new Uint8Array(128).fill(1);
    let next: Record<string, unknown> = { outcome: ProtoSignalOutcome.NONE };
    rig = startTrapRig({ sched: { handleSignal: () => next } });
    expect(await rig.kernel.handleSignal(THREAD)).toEqual({ kind: "none" });
    next = {
      outcome: ProtoSignalOutcome.HANDLER,
      delivery: { signal: 10, handler: 0x1000n, flags: 4n, savedMask: 2n, siginfo, alternateStack: 0n },
      morePending: true,
    };
    expect(await rig.kernel.handleSignal(THREAD)).toEqual({
      kind: "handler",
      delivery: {
        signal: 10,
        handler: 0x1000n,
        flags: 4n,
        savedMask: 2n,
        siginfo,
        alternateStack: 0n,
        alternateStackSize: 0n,
      },
      morePending: true,
    });
    next = { outcome: ProtoSignalOutcome.TERMINATE, signal: 11, waitStatus: 0x8b };
    expect(await rig.kernel.handleSignal(THREAD)).toEqual({
      kind: "terminate",
      signal: 11,
      waitStatus: 0x8b,
    });
    next = { outcome: ProtoSignalOutcome.STOP, signal: 19 };
    expect(await rig.kernel.handleSignal(THREAD)).toEqual({ kind: "stop", signal: 19 });
    rig.sched.failure = new AstraError(Code.UNAVAILABLE, Errno.EAGAIN, "down");
    next = {};
    expect(await rig.kernel.handleSignal(THREAD)).toEqual({ kind: "terminate", signal: 9, waitStatus: 9 });
  });

  it("maps Tick and Schedule, and keeps the CPU as it is when sched fails", async () => {
    rig = startTrapRig({
      sched: {
        tick: (req) => ({
          preempt: true,
          next: { tid: 5, pid: 4, timeSliceNanos: 1_000_000n },
          signalPending: req.cpu === 1,
        }),
        schedule: (req) => (req.cpu === 0 ? {} : { next: { tid: 6, pid: 6, timeSliceNanos: 2n } }),
      },
    });
    expect(await rig.kernel.tick(1, 10n)).toEqual({
      preempt: true,
      next: { tid: 5, pid: 4, timeSliceNanos: 1_000_000 },
      signalPending: true,
    });
    expect(await rig.kernel.schedule(0)).toBeUndefined();
    expect(await rig.kernel.schedule(1)).toEqual({ tid: 6, pid: 6, timeSliceNanos: 2 });
    await rig.close();
    rig = startTrapRig();
    expect(await rig.kernel.tick(0, 1n)).toEqual({ preempt: false, next: undefined, signalPending: false });
    expect(await rig.kernel.schedule(0)).toBeUndefined();
    await expect(rig.kernel.setSignalMask(THREAD, 1n)).resolves.toBeUndefined();
  });

  it("sends a CPU's signal forced, with its code and address", async () => {
    rig = startTrapRig();
    await rig.kernel.raiseSignal(THREAD, 4, 1, 0x10000040n);
    expect(rig.sched.kills).toMatchObject([
      { senderPid: 0, pid: 1, tid: 1, signal: 4, forced: true, code: 1, address: 0x10000040n },
    ]);
  });
});
