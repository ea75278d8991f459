// The sched kernel with in-memory peers: process creation and its unwinding, the process
// lifecycle (exit, zombies, wait and its blocking), signals through Kill and HandleSignal, and
// dispatching to idle CPUs.
import { describe, expect, it } from "vitest";
import { AstraError, Errno } from "../../lib/errors.ts";
import { SYSCALLS } from "../../lib/linux/syscall_numbers.ts";
import { KernelCallAction } from "../../gen/astra/sched/v1/sched_pb.ts";
import {
  SA_SIGINFO,
  SEGV_MAPERR,
  SI_USER,
  SIGCHLD,
  SIGCONT,
  SIGKILL,
  SIGSEGV,
  SIGSTOP,
  SIGTERM,
  SIGUSR1,
} from "../../lib/linux/signals.ts";
import { signalBit } from "../../services/sched/signals.ts";
import { decodeWaitStatus, exitedStatus } from "../../services/sched/wait.ts";
import { encoder, settle, startRig } from "./kernel_rig.ts";

const NO_OPTIONS = { noHang: false, reportStopped: false, reportContinued: false };

async function errnoOf(work: Promise<unknown> | (() => unknown)): Promise<Errno> {
  try {
    await (typeof work === "function" ? work() : work);
  } catch (error) {
    expect(error).toBeInstanceOf(AstraError);
    return (error as AstraError).errno;
  }
  throw new Error("expected a failure");
}

describe("process creation", () => {
  it("creates PID 1 as the kernel's child with a fresh descriptor table and dispatches it", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    expect(pid).toBe(1);
    const process = rig.kernel.table.require(1);
    expect(process.ppid).toBe(0);
    expect(process.pgid).toBe(1);
    expect(process.sid).toBe(1);
    expect(process.name).toBe("prog");
    expect(process.executablePath).toBe("/prog");
    expect(process.credentials.euid).toBe(0);
    expect(rig.peers.attached.has(1)).toBe(true);
    expect(rig.peers.executables.get(1)).toBe("/prog");
    expect(rig.peers.count("machine.startCpu")).toBe(2);
    expect(rig.peers.dispatched).toEqual([{ cpu: 0, tid: 1 }]);
    expect(rig.kernel.processState(process)).toBe("running");
    expect(rig.kernel.counters.execs).toBe(1);
  });

  it("leaves no process, table, space or hold behind when the program cannot be loaded", async () => {
    const rig = await startRig();
    rig.peers.files.set("/text", encoder.encode("not a program"));
    const error = await rig.kernel.createProcess({
      parentPid: 0,
      programPath: encoder.encode("/text"),
      argv: [],
      envp: [],
      name: "",
      credentials: null,
    }).then(() => null, (e) => e as AstraError);
    expect(error?.errno).toBe(Errno.ENOEXEC);
    expect(error?.message).toMatch(/not an ELF file/);
    expect(rig.kernel.table.list()).toEqual([]);
    expect(rig.peers.attached.size).toBe(0);
    expect(rig.peers.spaces.size).toBe(0);
    expect(rig.peers.openFiles.size).toBe(0);
    // The PID was not kept: the next process still gets 1... or the next number, never a gap's worth.
    expect(await rig.spawn()).toBeLessThanOrEqual(2);
  });

  it("gives a second process the next idle CPU and queues a third", async () => {
    const rig = await startRig();
    await rig.spawn();
    await rig.spawn();
    await rig.spawn();
    expect(rig.peers.dispatched).toEqual([{ cpu: 0, tid: 1 }, { cpu: 1, tid: 2 }]);
    expect(rig.kernel.processState(rig.kernel.table.require(3))).toBe("ready");
  });
});

describe("exit and wait", () => {
  it("exit_group makes a zombie, releases its peers' resources and wakes a waiting kernel", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    const spaceId = rig.kernel.table.require(pid).spaceId;
    const waiting = rig.kernel.wait(0, pid, NO_OPTIONS);
    let done = false;
    waiting.then(() => done = true);
    await settle();
    expect(done).toBe(false);

    const callId = await rig.calls.run({ pid, number: SYSCALLS.exit_group, args: [3n] });
    const reply = rig.calls.last(callId)!;
    expect(reply.action).toBe(KernelCallAction.EXIT_PROCESS);
    expect(reply.waitStatus).toBe(exitedStatus(3));
    const result = await waiting;
    expect(result.pid).toBe(pid);
    expect(decodeWaitStatus(result.waitStatus)).toEqual({ outcome: "exited", exitCode: 3, signal: 0 });
    expect(rig.kernel.table.get(pid)!.life).toBe("dead");
    expect(rig.peers.spaces.has(spaceId)).toBe(false);
    expect(rig.peers.attached.has(pid)).toBe(false);
    expect(rig.peers.openFiles.size).toBe(0);
    // The machine discards the context of a thread it stops itself.
    expect(rig.peers.count("machine.deleteThreadContext")).toBe(0);
    expect(await errnoOf(rig.kernel.wait(0, pid, NO_OPTIONS))).toBe(Errno.ECHILD);
  });

  it("wait with no_hang answers 0 while the child runs, ECHILD without children", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    expect((await rig.kernel.wait(0, -1, { ...NO_OPTIONS, noHang: true })).pid).toBe(0);
    expect(await errnoOf(rig.kernel.wait(pid, -1, NO_OPTIONS))).toBe(Errno.ECHILD);
    expect(await errnoOf(rig.kernel.wait(0, pid + 5, NO_OPTIONS))).toBe(Errno.ECHILD);
  });

  it("a blocked wait4 returns the child's PID and status once it exits; the parent sees SIGCHLD only if caught", async () => {
    const rig = await startRig();
    const parent = await rig.spawn();
    const child = await rig.spawn(parent);
    expect(rig.kernel.table.require(child).ppid).toBe(parent);
    const statusAddress = 0x7fff_ffff_0000n;
    const callId = await rig.calls.run({
      pid: parent,
      number: SYSCALLS.wait4,
      args: [-1n, statusAddress, 0n, 0n],
    });
    expect(rig.calls.last(callId)!.action).toBe(KernelCallAction.BLOCKED);
    expect(rig.kernel.threadState(rig.kernel.table.requireThread(parent))).toBe("blocked");

    await rig.calls.run({ pid: child, number: SYSCALLS.exit_group, args: [42n] });
    await settle();
    const result = rig.calls.result(callId);
    expect(result.value).toBe(BigInt(child));
    expect(result.outputs).toHaveLength(1);
    expect(result.outputs[0].address).toBe(statusAddress);
    expect(new DataView(result.outputs[0].data.buffer).getInt32(0, true)).toBe(42 << 8);
    // SIGCHLD's default action ignores it, so nothing is pending; the parent runs again.
    expect(rig.calls.last(callId)!.signalPending).toBe(false);
    expect(rig.kernel.threadState(rig.kernel.table.requireThread(parent))).not.toBe("blocked");
  });

  it("wait4 answers ECHILD without children and EINVAL for unknown options", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    expect(
      rig.calls.result(await rig.calls.run({ pid, number: SYSCALLS.wait4, args: [-1n, 0n, 0n, 0n] })).errno,
    )
      .toBe(Errno.ECHILD);
    expect(
      rig.calls.result(await rig.calls.run({ pid, number: SYSCALLS.wait4, args: [-1n, 0n, 0x100n, 0n] }))
        .errno,
    ).toBe(Errno.EINVAL);
  });

  it("reparents the children of an exiting process to init", async () => {
    const rig = await startRig();
    const init = await rig.spawn();
    const middle = await rig.spawn(init);
    const grandchild = await rig.spawn(middle);
    await rig.calls.run({ pid: middle, number: SYSCALLS.exit_group, args: [0n] });
    expect(rig.kernel.table.require(grandchild).ppid).toBe(init);
  });
});

describe("signals", () => {
  it("a fatal signal to a running process is reported by HandleSignal as TERMINATE", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    expect(
      rig.kernel.kill({ senderPid: 0, pid, tid: 0, signal: SIGTERM, forced: false, code: 0, address: 0n }),
    )
      .toBe(1);
    const thread = rig.kernel.table.requireThread(pid);
    expect(rig.kernel.signalPending(thread)).toBe(true);
    const decision = await rig.kernel.handleSignal(pid, pid);
    expect(decision).toEqual({ kind: "terminate", signal: SIGTERM, waitStatus: SIGTERM });
    expect(rig.kernel.table.require(pid).life).toBe("zombie");
    const waited = await rig.kernel.wait(0, pid, NO_OPTIONS);
    expect(decodeWaitStatus(waited.waitStatus)).toEqual({ outcome: "killed", exitCode: 0, signal: SIGTERM });
  });

  it("a caught signal is delivered to its handler with siginfo and the handler mask installed", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    rig.kernel.setSignalAction(pid, SIGUSR1, {
      handler: 0x10000100n,
      flags: SA_SIGINFO,
      restorer: 0n,
      mask: signalBit(SIGTERM),
    });
    rig.kernel.kill({ senderPid: 0, pid, tid: 0, signal: SIGUSR1, forced: false, code: 0, address: 0n });
    const decision = await rig.kernel.handleSignal(pid, pid);
    if (decision.kind !== "handler") throw new Error(`expected a handler, got ${decision.kind}`);
    expect(decision.signal).toBe(SIGUSR1);
    expect(decision.action.handler).toBe(0x10000100n);
    expect(decision.savedMask).toBe(0n);
    expect(decision.handlerMask).toBe(signalBit(SIGUSR1) | signalBit(SIGTERM));
    expect(rig.kernel.table.requireThread(pid).blocked).toBe(decision.handlerMask);
    const info = new DataView(decision.siginfo.buffer);
    expect(info.getInt32(0, true)).toBe(SIGUSR1);
    expect(info.getInt32(8, true)).toBe(SI_USER);
    expect(decision.morePending).toBe(false);
    expect(await rig.kernel.handleSignal(pid, pid)).toEqual({ kind: "none" });
  });

  it("a forced fault reaches a thread that blocks and ignores it, and dumps core by default", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    rig.kernel.setSignalAction(pid, SIGSEGV, { handler: 1n, flags: 0n, restorer: 0n, mask: 0n });
    rig.kernel.setSignalMask(pid, pid, () => signalBit(SIGSEGV));
    rig.kernel.kill({
      senderPid: 0,
      pid,
      tid: pid,
      signal: SIGSEGV,
      forced: true,
      code: SEGV_MAPERR,
      address: 0x42n,
    });
    const decision = await rig.kernel.handleSignal(pid, pid);
    expect(decision).toEqual({ kind: "terminate", signal: SIGSEGV, waitStatus: SIGSEGV | 0x80 });
  });

  it("SIGKILL ends a process sleeping in a system call at once: its call answers EXIT_PROCESS", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    const spaceId = rig.kernel.table.require(pid).spaceId;
    const request = 0x7fff_ffff_0000n;
    const timespec = new Uint8Array(16);
    new DataView(timespec.buffer).setBigInt64(0, 100n, true);
    rig.peers.write(spaceId, request, timespec);
    const callId = await rig.calls.run({ pid, number: SYSCALLS.nanosleep, args: [request, 0n] });
    expect(rig.calls.last(callId)!.action).toBe(KernelCallAction.BLOCKED);
    rig.kernel.kill({ senderPid: 0, pid, tid: 0, signal: SIGKILL, forced: false, code: 0, address: 0n });
    await settle();
    const reply = rig.calls.last(callId)!;
    expect(reply.action).toBe(KernelCallAction.EXIT_PROCESS);
    expect(reply.waitStatus).toBe(SIGKILL);
    expect(rig.kernel.table.require(pid).life).toBe("zombie");
  });

  it("a signal with a handler interrupts nanosleep with EINTR and the time left", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    const spaceId = rig.kernel.table.require(pid).spaceId;
    rig.kernel.setSignalAction(pid, SIGUSR1, { handler: 0x10000100n, flags: 0n, restorer: 0n, mask: 0n });
    const request = 0x7fff_ffff_0000n;
    const remaining = 0x7fff_ffff_0100n;
    const timespec = new Uint8Array(16);
    new DataView(timespec.buffer).setBigInt64(0, 10n, true);
    rig.peers.write(spaceId, request, timespec);
    const callId = await rig.calls.run({ pid, number: SYSCALLS.nanosleep, args: [request, remaining] });
    rig.advance(4e9);
    rig.kernel.kill({ senderPid: 0, pid, tid: 0, signal: SIGUSR1, forced: false, code: 0, address: 0n });
    await settle();
    const result = rig.calls.result(callId);
    expect(result.errno).toBe(Errno.EINTR);
    expect(result.outputs[0].address).toBe(remaining);
    expect(new DataView(result.outputs[0].data.buffer).getBigInt64(0, true)).toBe(6n);
    expect(rig.calls.last(callId)!.signalPending).toBe(true);
  });

  it("stop and continue: HandleSignal stops, wait reports it, SIGCONT resumes and is reported", async () => {
    const rig = await startRig();
    const parent = await rig.spawn();
    const child = await rig.spawn(parent);
    rig.kernel.kill({
      senderPid: 0,
      pid: child,
      tid: 0,
      signal: SIGSTOP,
      forced: false,
      code: 0,
      address: 0n,
    });
    expect(await rig.kernel.handleSignal(child, child)).toEqual({ kind: "stop", signal: SIGSTOP });
    const childThread = rig.kernel.table.requireThread(child);
    expect(rig.kernel.threadState(childThread)).toBe("stopped");
    const stopped = await rig.kernel.wait(parent, child, { ...NO_OPTIONS, reportStopped: true });
    expect(decodeWaitStatus(stopped.waitStatus)).toEqual({
      outcome: "stopped",
      exitCode: 0,
      signal: SIGSTOP,
    });
    // SIGCHLD (CLD_STOPPED) is ignored by default: nothing pending for the parent.
    expect(rig.kernel.table.require(parent).pending.signals & signalBit(SIGCHLD)).toBe(0n);
    rig.kernel.kill({
      senderPid: 0,
      pid: child,
      tid: 0,
      signal: SIGCONT,
      forced: false,
      code: 0,
      address: 0n,
    });
    expect(rig.kernel.threadState(childThread)).not.toBe("stopped");
    const continued = await rig.kernel.wait(parent, child, { ...NO_OPTIONS, reportContinued: true });
    expect(decodeWaitStatus(continued.waitStatus).outcome).toBe("continued");
  });

  it("checks kill's permissions and targets", async () => {
    const rig = await startRig();
    const root = await rig.spawn();
    const { pid: user } = await rig.kernel.createProcess({
      parentPid: 0,
      programPath: encoder.encode("/prog"),
      argv: [],
      envp: [],
      name: "user",
      credentials: { uid: 1000, gid: 1000, euid: 1000, egid: 1000, suid: 1000, sgid: 1000, groups: [] },
    });
    const kill = (senderPid: number, pid: number, signal = 0) => () =>
      rig.kernel.kill({ senderPid, pid, tid: 0, signal, forced: false, code: 0, address: 0n });
    expect(await errnoOf(kill(user, root))).toBe(Errno.EPERM);
    expect(kill(root, user)()).toBe(1);
    expect(await errnoOf(kill(root, 999))).toBe(Errno.ESRCH);
    expect(await errnoOf(kill(root, root, 65))).toBe(Errno.EINVAL);
    expect(kill(root, -1)()).toBe(1); // every process but init and the sender
  });
});

describe("fork, clone and exec", () => {
  it("fork copies the address space and the calling thread, returning 0 in the child", async () => {
    const rig = await startRig();
    const parent = await rig.spawn();
    const parentSpace = rig.kernel.table.require(parent).spaceId;
    const childTidAddress = 0x7fff_ffff_0000n;
    const { pid, tid } = await rig.kernel.clone({
      pid: parent,
      tid: parent,
      thread: false,
      stack: 0n,
      tls: null,
      childSetTid: childTidAddress,
      childClearTid: childTidAddress,
    });
    expect(tid).toBe(pid);
    const child = rig.kernel.table.require(pid);
    expect([child.ppid, child.pgid, child.forkedWithoutExec]).toEqual([parent, parent, true]);
    expect(child.spaceId).not.toBe(parentSpace);
    expect(rig.peers.spaces.get(child.spaceId)!.mappings.length).toBe(
      rig.peers.space(parentSpace).mappings.length,
    );
    const context = rig.peers.contexts.get(tid)!;
    expect(context.spaceId).toBe(child.spaceId);
    expect(context.registers.gprs[3]).toBe(0n);
    expect(context.registers.pc).toBe(rig.peers.contexts.get(parent)!.registers.pc);
    expect(new DataView(rig.peers.read(child.spaceId, childTidAddress, 4).buffer).getInt32(0, true)).toBe(
      tid,
    );
    expect(rig.peers.read(parentSpace, childTidAddress, 4)).toEqual(new Uint8Array(4));
    expect(rig.kernel.table.requireThread(tid).clearChildTid).toBe(childTidAddress);
    expect(rig.peers.attached.has(pid)).toBe(true);
    expect(rig.kernel.counters.forks).toBe(1);
    expect(rig.peers.dispatched.map((d) => d.tid)).toContain(tid);
  });

  it("a thread clone shares the space and starts on its own stack and thread pointer", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    const { pid: same, tid } = await rig.kernel.clone({
      pid,
      tid: pid,
      thread: true,
      stack: 0x7fff_0000_0000n,
      tls: 0x1234_0000n,
      childSetTid: 0n,
      childClearTid: 0x7fff_ffff_0000n,
    });
    expect(same).toBe(pid);
    expect(tid).not.toBe(pid);
    const context = rig.peers.contexts.get(tid)!;
    expect(context.spaceId).toBe(rig.kernel.table.require(pid).spaceId);
    expect([context.registers.gprs[1], context.registers.gprs[3], context.registers.gprs[13]])
      .toEqual([0x7fff_0000_0000n, 0n, 0x1234_0000n]);
    expect(rig.kernel.table.require(pid).liveThreads().map((t) => t.tid)).toEqual([pid, tid]);
  });

  it("a failed fork leaves no child behind", async () => {
    const rig = await startRig();
    const parent = await rig.spawn();
    rig.peers.failOn = "machine.createThreadContext";
    const error = await rig.kernel.clone({
      pid: parent,
      tid: parent,
      thread: false,
      stack: 0n,
      tls: null,
      childSetTid: 0n,
      childClearTid: 0n,
    }).then(() => null, (e) => e as AstraError);
    expect(error?.errno).toBe(Errno.EIO);
    expect(rig.kernel.table.list().map((p) => p.pid)).toEqual([parent]);
    expect(rig.peers.spaces.size).toBe(1);
    expect(rig.peers.attached).toEqual(new Set([parent]));
  });

  it("Exec by RPC replaces a thread's context with the new program's entry state", async () => {
    const rig = await startRig(1);
    const first = await rig.spawn();
    const second = await rig.spawn();
    const before = rig.kernel.table.require(second).spaceId;
    const { registers, spaceId } = await rig.kernel.exec(
      second,
      second,
      encoder.encode("/prog"),
      [encoder.encode("prog"), encoder.encode("again")],
      [],
      false,
    );
    expect(spaceId).not.toBe(before);
    expect(rig.peers.spaces.has(before)).toBe(false);
    expect(rig.peers.contexts.get(second)!.spaceId).toBe(spaceId);
    expect(rig.peers.contexts.get(second)!.registers.gprs[1]).toBe(registers.r1);
    expect(registers.r3).toBe(2n);
    // A thread running on a CPU execs through its own execve.
    expect(await errnoOf(rig.kernel.exec(first, first, encoder.encode("/prog"), [], [], false))).toBe(
      Errno.EBUSY,
    );
  });
});

describe("limits and priorities", () => {
  async function userProcess(rig: Awaited<ReturnType<typeof startRig>>, uid: number) {
    const { pid } = await rig.kernel.createProcess({
      parentPid: 0,
      programPath: encoder.encode("/prog"),
      argv: [],
      envp: [],
      name: "",
      credentials: { uid, gid: uid, euid: uid, egid: uid, suid: uid, sgid: uid, groups: [] },
    });
    return pid;
  }

  it("lets a process lower its limits but raise a hard one only with privilege; others' only when ids match", async () => {
    const rig = await startRig();
    const root = await rig.spawn();
    const alice = await userProcess(rig, 1000);
    const bob = await userProcess(rig, 1001);
    const lower = [{ resource: 7, limit: { soft: 64n, hard: 128n } }];
    expect(rig.kernel.resourceLimits(alice, alice, lower)).toEqual([{ soft: 1024n, hard: 4096n }]);
    const raise = [{ resource: 7, limit: { soft: 64n, hard: 256n } }];
    expect(await errnoOf(() => rig.kernel.resourceLimits(alice, alice, raise))).toBe(Errno.EPERM);
    expect(await errnoOf(() => rig.kernel.resourceLimits(bob, alice, [{ resource: 7, limit: null }])))
      .toBe(Errno.EPERM);
    expect(rig.kernel.resourceLimits(root, alice, raise)).toEqual([{ soft: 64n, hard: 128n }]);
    expect(rig.kernel.resourceLimits(0, bob, [{ resource: 3, limit: null }])).toEqual([
      { soft: 8n << 20n, hard: (1n << 64n) - 1n },
    ]);
    // All or nothing: a bad second change leaves the first undone.
    const mixed = [{ resource: 7, limit: { soft: 1n, hard: 1n } }, { resource: 99, limit: null }];
    expect(await errnoOf(() => rig.kernel.resourceLimits(alice, alice, mixed))).toBe(Errno.EINVAL);
    expect(rig.kernel.table.require(alice).limits.get(7).soft).toBe(64n);
  });

  it("keeps the REALTIME class and lower nice values to privileged processes", async () => {
    const rig = await startRig();
    const root = await rig.spawn();
    const user = await userProcess(rig, 1000);
    expect(await errnoOf(() => rig.kernel.setPriority(user, 5, 0))).toBe(Errno.EPERM);
    expect(rig.kernel.setPriority(user, null, 5)).toMatchObject({ priority: 3, nice: 0 });
    expect(await errnoOf(() => rig.kernel.setPriority(user, null, 0))).toBe(Errno.EPERM);
    expect(rig.kernel.setPriority(root, 5, -20)).toMatchObject({ priority: 3, nice: 0 });
    expect(rig.kernel.scheduler.parameters(root)).toMatchObject({ priority: 5, nice: -20 });
  });
});

describe("scheduling", () => {
  it("a thread that sleeps frees its CPU for Schedule; Tick preempts after a time slice", async () => {
    const rig = await startRig(1);
    const a = await rig.spawn();
    const b = await rig.spawn();
    expect(rig.kernel.scheduler.current(0)).toEqual({ tid: a, pid: a });
    rig.time.millis += 11;
    const tick = rig.kernel.tick(0, rig.kernel.now());
    expect(tick.preempt).toBe(true);
    expect(tick.next?.tid).toBe(b);
    rig.kernel.sleep(rig.kernel.table.requireThread(b), {
      state: "sleeping",
      wakeAt: rig.kernel.now() + 5e6,
      inCall: false,
      interruptible: true,
    });
    expect(rig.kernel.schedule(0)?.tid).toBe(a);
    rig.advance(6e6);
    expect(rig.kernel.threadState(rig.kernel.table.requireThread(b))).toBe("runnable");
  });
});
