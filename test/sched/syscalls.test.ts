// sched's system calls through the KernelCall stream, with the machine's side played by the test:
// argument decoding, FETCH rounds for the guest memory a call reads, the bytes it writes, calls that
// sleep (BLOCKED, then the answer) and execve's switch to a new program.
import { describe, expect, it } from "vitest";
import { KernelCallAction } from "../../gen/astra/sched/v1/sched_pb.ts";
import { Errno } from "../../lib/errors.ts";
import { SYSCALLS } from "../../lib/linux/syscall_numbers.ts";
import { STACK_TOP } from "../../services/sched/exec.ts";
import { FUTEX_PRIVATE_FLAG, FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAKE } from "../../services/sched/futex.ts";
import { RLIM_INFINITY } from "../../services/sched/rlimits.ts";
import { SA_RESTART, SA_SIGINFO, SIGUSR1, SIGUSR2 } from "../../lib/linux/signals.ts";
import { signalBit } from "../../services/sched/signals.ts";
import { TEXT_VADDR } from "./elf-image.ts";
import { encoder, type Rig, settle, startRig } from "./kernel_rig.ts";

/** Scratch guest memory: a page of the initial stack mapping, well below the arguments. */
const SCRATCH = STACK_TOP - 0x10000n;

function bytes64(...values: bigint[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  values.forEach((v, i) => new DataView(out.buffer).setBigUint64(i * 8, BigInt.asUintN(64, v), true));
  return out;
}

function read64(data: Uint8Array, offset = 0): bigint {
  return new DataView(data.buffer, data.byteOffset).getBigUint64(offset, true);
}

function poke(rig: Rig, pid: number, address: bigint, data: Uint8Array): void {
  rig.peers.write(rig.kernel.table.require(pid).spaceId, address, data);
}

async function call(rig: Rig, pid: number, number: number, args: bigint[] = [], tid = pid) {
  return rig.calls.result(await rig.calls.run({ pid, tid, number, args }));
}

describe("identity calls", () => {
  it("answers the ids, uname and the name prctl keeps", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    expect((await call(rig, pid, SYSCALLS.getpid)).value).toBe(BigInt(pid));
    expect((await call(rig, pid, SYSCALLS.getppid)).value).toBe(0n);
    expect((await call(rig, pid, SYSCALLS.gettid)).value).toBe(BigInt(pid));
    expect((await call(rig, pid, SYSCALLS.geteuid)).value).toBe(0n);
    expect((await call(rig, pid, SYSCALLS.getpgrp)).value).toBe(BigInt(pid));
    expect((await call(rig, pid, SYSCALLS.getgroups, [0n, 0n])).value).toBe(0n);
    rig.kernel.table.require(pid).credentials.groups = [4, 27];
    const groups = await call(rig, pid, SYSCALLS.getgroups, [8n, SCRATCH]);
    expect(groups.value).toBe(2n);
    expect(groups.outputs[0].data).toEqual(new Uint8Array([4, 0, 0, 0, 27, 0, 0, 0]));
    expect((await call(rig, pid, SYSCALLS.getgroups, [1n, SCRATCH])).errno).toBe(Errno.EINVAL);

    const uname = await call(rig, pid, SYSCALLS.uname, [SCRATCH]);
    const fields = Array.from({ length: 6 }, (_, i) => {
      const field = uname.outputs[0].data.subarray(i * 65, i * 65 + 65);
      return new TextDecoder().decode(field.subarray(0, field.indexOf(0)));
    });
    expect(fields[0]).toBe("Linux");
    expect(fields[4]).toBe("ppc64le");

    poke(rig, pid, SCRATCH, encoder.encode("worker-with-a-long-name\0"));
    expect((await call(rig, pid, SYSCALLS.prctl, [15n, SCRATCH])).value).toBe(0n);
    expect(rig.kernel.table.require(pid).name).toBe("worker-with-a-l");
    const name = await call(rig, pid, SYSCALLS.prctl, [16n, SCRATCH + 64n]);
    expect(new TextDecoder().decode(name.outputs[0].data)).toBe("worker-with-a-l\0");
    expect((await call(rig, pid, SYSCALLS.prctl, [4n, 1n])).errno).toBe(Errno.EINVAL);

    expect((await call(rig, pid, SYSCALLS.set_tid_address, [SCRATCH])).value).toBe(BigInt(pid));
    expect(rig.kernel.table.requireThread(pid).clearChildTid).toBe(SCRATCH);
    expect((await call(rig, pid, SYSCALLS.set_robust_list, [SCRATCH, 24n])).value).toBe(0n);
    expect((await call(rig, pid, SYSCALLS.set_robust_list, [SCRATCH, 16n])).errno).toBe(Errno.EINVAL);
    expect((await call(rig, pid, SYSCALLS.rseq, [SCRATCH, 32n, 0n, 0n])).errno).toBe(Errno.ENOSYS);
    expect((await call(rig, pid, 9999)).errno).toBe(Errno.ENOSYS);
    expect((await call(rig, pid + 77, SYSCALLS.getpid)).errno).toBe(Errno.ESRCH);
  });

  it("setsid fails for a group leader; setpgid and getsid follow Linux", async () => {
    const rig = await startRig();
    const parent = await rig.spawn();
    const child = await rig.spawn(parent);
    expect((await call(rig, parent, SYSCALLS.setsid)).errno).toBe(Errno.EPERM);
    expect((await call(rig, child, SYSCALLS.setsid)).value).toBe(BigInt(child));
    expect((await call(rig, child, SYSCALLS.getsid, [0n])).value).toBe(BigInt(child));
    expect((await call(rig, child, SYSCALLS.getpgid, [BigInt(parent)])).value).toBe(BigInt(parent));
    // The child exec'd (CreateProcess), so its parent may no longer move it.
    expect((await call(rig, parent, SYSCALLS.setpgid, [BigInt(child), 0n])).errno).toBe(Errno.EPERM);
  });
});

describe("signal calls", () => {
  it("rt_sigaction fetches the new action and writes back the old one", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    const act = SCRATCH;
    const old = SCRATCH + 0x100n;
    poke(rig, pid, act, bytes64(0x10000100n, SA_SIGINFO | SA_RESTART, 0n, signalBit(SIGUSR2)));

    const request = { pid, number: SYSCALLS.rt_sigaction, args: [BigInt(SIGUSR1), act, old, 8n] };
    const callId = await rig.calls.send(request);
    const fetch = rig.calls.last(callId)!;
    expect(fetch.action).toBe(KernelCallAction.FETCH);
    expect(fetch.fetch).toEqual([{ address: act, length: 32n }]);
    const data = rig.peers.read(rig.kernel.table.require(pid).spaceId, act, 32);
    await rig.calls.send(request, [{ address: act, data }], callId);
    const first = rig.calls.result(callId);
    expect(first.value).toBe(0n);
    expect(first.outputs).toEqual([{ address: old, data: bytes64(0n, 0n, 0n, 0n) }]);

    const again = await call(rig, pid, SYSCALLS.rt_sigaction, [BigInt(SIGUSR1), 0n, old, 8n]);
    expect(again.outputs[0].data).toEqual(
      bytes64(0x10000100n, SA_SIGINFO | SA_RESTART, 0n, signalBit(SIGUSR2)),
    );
    expect((await call(rig, pid, SYSCALLS.rt_sigaction, [9n, act, 0n, 8n])).errno).toBe(Errno.EINVAL);
    expect((await call(rig, pid, SYSCALLS.rt_sigaction, [BigInt(SIGUSR1), 0n, old, 16n])).errno).toBe(
      Errno.EINVAL,
    );
  });

  it("rt_sigprocmask changes the mask; rt_sigpending shows blocked pending signals; an unblock reports them", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    rig.kernel.setSignalAction(pid, SIGUSR1, { handler: 0x10000100n, flags: 0n, restorer: 0n, mask: 0n });
    poke(rig, pid, SCRATCH, bytes64(signalBit(SIGUSR1) | signalBit(9)));
    const blocked = await call(rig, pid, SYSCALLS.rt_sigprocmask, [0n, SCRATCH, SCRATCH + 8n, 8n]);
    expect(read64(blocked.outputs[0].data)).toBe(0n);
    expect(rig.kernel.table.requireThread(pid).blocked).toBe(signalBit(SIGUSR1));

    const kill = await rig.calls.run({ pid, number: SYSCALLS.kill, args: [BigInt(pid), BigInt(SIGUSR1)] });
    expect(rig.calls.last(kill)!.signalPending).toBe(false);
    const pending = await call(rig, pid, SYSCALLS.rt_sigpending, [SCRATCH + 16n, 8n]);
    expect(read64(pending.outputs[0].data)).toBe(signalBit(SIGUSR1));

    const unblock = await rig.calls.run({
      pid,
      number: SYSCALLS.rt_sigprocmask,
      args: [1n, SCRATCH, 0n, 8n],
    });
    expect(rig.calls.last(unblock)!.signalPending).toBe(true);
    expect((await call(rig, pid, SYSCALLS.rt_sigprocmask, [7n, SCRATCH, 0n, 8n])).errno).toBe(Errno.EINVAL);
  });

  it("tgkill to itself leaves the signal pending for the thread", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    rig.kernel.setSignalAction(pid, SIGUSR1, { handler: 0x10000100n, flags: 0n, restorer: 0n, mask: 0n });
    const callId = await rig.calls.run({
      pid,
      number: SYSCALLS.tgkill,
      args: [BigInt(pid), BigInt(pid), BigInt(SIGUSR1)],
    });
    expect(rig.calls.result(callId).value).toBe(0n);
    expect(rig.calls.last(callId)!.signalPending).toBe(true);
    expect(rig.kernel.table.requireThread(pid).pending.signals).toBe(signalBit(SIGUSR1));
    expect((await call(rig, pid, SYSCALLS.tgkill, [BigInt(pid), 999n, 10n])).errno).toBe(Errno.ESRCH);
  });

  it("sigaltstack installs, reports and refuses a stack below MINSIGSTKSZ", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    poke(
      rig,
      pid,
      SCRATCH,
      new Uint8Array([...bytes64(0x20000000n), 0, 0, 0, 0, 0, 0, 0, 0, ...bytes64(65536n)]),
    );
    expect((await call(rig, pid, SYSCALLS.sigaltstack, [SCRATCH, 0n])).value).toBe(0n);
    const old = await call(rig, pid, SYSCALLS.sigaltstack, [0n, SCRATCH + 64n]);
    expect(read64(old.outputs[0].data, 0)).toBe(0x20000000n);
    expect(read64(old.outputs[0].data, 16)).toBe(65536n);
    poke(
      rig,
      pid,
      SCRATCH,
      new Uint8Array([...bytes64(0x20000000n), 0, 0, 0, 0, 0, 0, 0, 0, ...bytes64(1024n)]),
    );
    expect((await call(rig, pid, SYSCALLS.sigaltstack, [SCRATCH, 0n])).errno).toBe(Errno.ENOMEM);
  });
});

describe("limits, time and randomness", () => {
  it("prlimit64 reads and lowers limits; raising a hard limit needs privilege", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    const stack = await call(rig, pid, SYSCALLS.prlimit64, [0n, 3n, 0n, SCRATCH]);
    expect(read64(stack.outputs[0].data, 0)).toBe(8n * 1024n * 1024n);
    expect(read64(stack.outputs[0].data, 8)).toBe(RLIM_INFINITY);
    poke(rig, pid, SCRATCH, bytes64(256n, 512n));
    expect((await call(rig, pid, SYSCALLS.setrlimit, [7n, SCRATCH])).value).toBe(0n);
    const files = await call(rig, pid, SYSCALLS.getrlimit, [7n, SCRATCH + 32n]);
    expect(read64(files.outputs[0].data, 8)).toBe(512n);
    expect((await call(rig, pid, SYSCALLS.getrlimit, [99n, SCRATCH])).errno).toBe(Errno.EINVAL);
    expect((await call(rig, pid, SYSCALLS.prlimit64, [12345n, 3n, 0n, SCRATCH])).errno).toBe(Errno.ESRCH);
  });

  it("clock_gettime reads the guest's clocks; bad clocks are EINVAL", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    rig.time.millis = 2500;
    const monotonic = await call(rig, pid, SYSCALLS.clock_gettime, [1n, SCRATCH]);
    const view = new DataView(monotonic.outputs[0].data.buffer);
    // The machine's uptime at start (1 ms in the fake) plus the 2.5 s that passed.
    expect(view.getBigInt64(0, true)).toBe(2n);
    expect(view.getBigInt64(8, true)).toBe(501_000_000n);
    const realtime = await call(rig, pid, SYSCALLS.clock_gettime, [0n, SCRATCH]);
    expect(new DataView(realtime.outputs[0].data.buffer).getBigInt64(0, true)).toBe(1_700_000_002n);
    expect((await call(rig, pid, SYSCALLS.clock_gettime, [99n, SCRATCH])).errno).toBe(Errno.EINVAL);
    const resolution = await call(rig, pid, SYSCALLS.clock_getres, [1n, SCRATCH]);
    expect(new DataView(resolution.outputs[0].data.buffer).getBigInt64(8, true)).toBe(1n);
    expect((await call(rig, pid, SYSCALLS.time, [0n])).value).toBe(1_700_000_002n);
    const timeval = await call(rig, pid, SYSCALLS.gettimeofday, [SCRATCH, 0n]);
    expect(new DataView(timeval.outputs[0].data.buffer).getBigInt64(8, true)).toBe(500_000n);
  });

  it("nanosleep blocks until the time has passed, then returns and the thread runs again", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    poke(rig, pid, SCRATCH, bytes64(0n, 5_000_000n));
    const callId = await rig.calls.run({ pid, number: SYSCALLS.nanosleep, args: [SCRATCH, 0n] });
    expect(rig.calls.last(callId)!.action).toBe(KernelCallAction.BLOCKED);
    const thread = rig.kernel.table.requireThread(pid);
    expect(rig.kernel.threadState(thread)).toBe("sleeping");
    expect(rig.kernel.schedule(0)).toBeNull();
    rig.advance(4e6);
    await settle();
    expect(rig.calls.last(callId)!.action).toBe(KernelCallAction.BLOCKED);
    rig.advance(2e6);
    await settle();
    expect(rig.calls.result(callId).value).toBe(0n);
    expect(rig.kernel.threadState(thread)).toBe("running");

    poke(rig, pid, SCRATCH, bytes64(0n, 1_000_000_000n));
    expect((await call(rig, pid, SYSCALLS.nanosleep, [SCRATCH, 0n])).errno).toBe(Errno.EINVAL);
  });

  it("sched_getaffinity, getrandom and getrusage write what Linux writes", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    const mask = await call(rig, pid, SYSCALLS.sched_getaffinity, [0n, 128n, SCRATCH]);
    expect(mask.value).toBe(8n);
    expect(mask.outputs[0].data).toEqual(new Uint8Array([3, 0, 0, 0, 0, 0, 0, 0]));
    expect((await call(rig, pid, SYSCALLS.sched_getaffinity, [0n, 4n, SCRATCH])).errno).toBe(Errno.EINVAL);
    const random = await call(rig, pid, SYSCALLS.getrandom, [SCRATCH, 16n, 0n]);
    expect(random.value).toBe(16n);
    expect(random.outputs[0].data).toEqual(new Uint8Array(16).fill(7));
    expect((await call(rig, pid, SYSCALLS.getrandom, [SCRATCH, 16n, 6n])).errno).toBe(Errno.EINVAL);
    const usage = await call(rig, pid, SYSCALLS.getrusage, [0n, SCRATCH]);
    expect(usage.outputs[0].data.length).toBe(144);
    expect((await call(rig, pid, SYSCALLS.getrusage, [5n, SCRATCH])).errno).toBe(Errno.EINVAL);
  });
});

describe("futex", () => {
  async function twoThreads(rig: Rig): Promise<{ pid: number; other: number }> {
    const pid = await rig.spawn();
    const other = await rig.kernel.createThread(pid, { priority: 3, nice: 0, affinity: null }, 0n);
    return { pid, other };
  }

  it("FUTEX_WAIT sleeps while the word holds the value until FUTEX_WAKE", async () => {
    const rig = await startRig();
    const { pid, other } = await twoThreads(rig);
    poke(rig, pid, SCRATCH, new Uint8Array([5, 0, 0, 0]));
    const wait = await rig.calls.run({
      pid,
      tid: other,
      number: SYSCALLS.futex,
      args: [SCRATCH, BigInt(FUTEX_WAIT | FUTEX_PRIVATE_FLAG), 5n, 0n],
    });
    expect(rig.calls.last(wait)!.action).toBe(KernelCallAction.BLOCKED);
    expect(rig.kernel.futexes.waiters(`${rig.kernel.table.require(pid).spaceId}:${SCRATCH}`)).toBe(1);
    const wake = await call(rig, pid, SYSCALLS.futex, [SCRATCH, BigInt(FUTEX_WAKE | FUTEX_PRIVATE_FLAG), 1n]);
    expect(wake.value).toBe(1n);
    await settle();
    expect(rig.calls.result(wait).value).toBe(0n);
    expect(rig.kernel.threadState(rig.kernel.table.requireThread(other))).toMatch(/running|runnable/);
  });

  it("answers EAGAIN when the word changed, EINVAL when unaligned, ETIMEDOUT when the timeout passes", async () => {
    const rig = await startRig();
    const { pid, other } = await twoThreads(rig);
    poke(rig, pid, SCRATCH, new Uint8Array([5, 0, 0, 0]));
    expect((await call(rig, pid, SYSCALLS.futex, [SCRATCH, 0n, 6n, 0n])).errno).toBe(Errno.EAGAIN);
    expect((await call(rig, pid, SYSCALLS.futex, [SCRATCH + 2n, 0n, 5n, 0n])).errno).toBe(Errno.EINVAL);
    poke(rig, pid, SCRATCH + 16n, bytes64(0n, 3_000_000n));
    const wait = await rig.calls.run({
      pid,
      tid: other,
      number: SYSCALLS.futex,
      args: [SCRATCH, 0n, 5n, SCRATCH + 16n],
    });
    expect(rig.calls.last(wait)!.action).toBe(KernelCallAction.BLOCKED);
    rig.advance(4e6);
    await settle();
    expect(rig.calls.result(wait).errno).toBe(Errno.ETIMEDOUT);
    expect(rig.kernel.futexes.waiters(`${rig.kernel.table.require(pid).spaceId}:${SCRATCH}`)).toBe(0);
    // FUTEX_WAIT_BITSET's absolute timeout in the past times out at once; a zero bitset is EINVAL.
    poke(rig, pid, SCRATCH + 16n, bytes64(0n, 0n));
    expect(
      (await call(rig, pid, SYSCALLS.futex, [
        SCRATCH,
        BigInt(FUTEX_WAIT_BITSET),
        5n,
        SCRATCH + 16n,
        0n,
        0xffffffffn,
      ])).errno,
    )
      .toBe(Errno.ETIMEDOUT);
    expect((await call(rig, pid, SYSCALLS.futex, [SCRATCH, BigInt(FUTEX_WAIT_BITSET), 5n, 0n, 0n, 0n])).errno)
      .toBe(Errno.EINVAL);
  });

  it("a wake between the machine's read of the word and the wait is not lost: EAGAIN", async () => {
    const rig = await startRig();
    const { pid, other } = await twoThreads(rig);
    poke(rig, pid, SCRATCH, new Uint8Array([5, 0, 0, 0]));
    const request = { pid, tid: other, number: SYSCALLS.futex, args: [SCRATCH, 0n, 5n, 0n] };
    const wait = await rig.calls.send(request);
    expect(rig.calls.last(wait)!.action).toBe(KernelCallAction.FETCH);
    await call(rig, pid, SYSCALLS.futex, [SCRATCH, BigInt(FUTEX_WAKE), 1n]);
    await rig.calls.send(request, [{ address: SCRATCH, data: new Uint8Array([5, 0, 0, 0]) }], wait);
    expect(rig.calls.result(wait).errno).toBe(Errno.EAGAIN);
  });
});

describe("exit and execve", () => {
  it("exit of one thread of two ends only that thread; the last exit ends the process", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    const other = await rig.kernel.createThread(pid, { priority: 3, nice: 0, affinity: null }, 0n);
    const first = await rig.calls.run({ pid, tid: other, number: SYSCALLS.exit, args: [0n] });
    expect(rig.calls.last(first)!.action).toBe(KernelCallAction.EXIT_THREAD);
    expect(rig.kernel.table.require(pid).liveThreads().map((t) => t.tid)).toEqual([pid]);
    const last = await rig.calls.run({ pid, number: SYSCALLS.exit, args: [9n] });
    expect(rig.calls.last(last)!).toMatchObject({
      action: KernelCallAction.EXIT_PROCESS,
      waitStatus: 9 << 8,
    });
  });

  it("execve reads its path and arguments in FETCH rounds and answers EXEC with the new space", async () => {
    const rig = await startRig();
    const pid = await rig.spawn();
    const before = rig.kernel.table.require(pid).spaceId;
    const path = SCRATCH;
    const argvArray = SCRATCH + 0x100n;
    const strings = SCRATCH + 0x200n;
    poke(rig, pid, path, encoder.encode("/prog\0"));
    poke(rig, pid, strings, encoder.encode("prog\0second\0X=1\0"));
    poke(rig, pid, argvArray, bytes64(strings, strings + 5n, 0n, strings + 12n, 0n));
    const callId = await rig.calls.run({
      pid,
      number: SYSCALLS.execve,
      args: [path, argvArray, argvArray + 24n],
    });
    const reply = rig.calls.last(callId)!;
    expect(reply.action).toBe(KernelCallAction.EXEC);
    expect(reply.entry!.pc).toBe(TEXT_VADDR + 0x180n);
    expect(reply.entry!.r3).toBe(2n);
    expect(reply.spaceId).not.toBe(before);
    expect(rig.peers.spaces.has(before)).toBe(false);
    expect(rig.peers.spaces.has(reply.spaceId!)).toBe(true);
    const process = rig.kernel.table.require(pid);
    expect(process.spaceId).toBe(reply.spaceId);
    expect(process.argv.map((a) => new TextDecoder().decode(a))).toEqual(["prog", "second"]);
    expect(process.envp.map((a) => new TextDecoder().decode(a))).toEqual(["X=1"]);
    // The machine keeps the caller's context; only the loader's temporary one came and went.
    expect(rig.peers.contexts.has(pid)).toBe(true);
    expect(rig.peers.contexts.size).toBe(1);

    poke(rig, pid, path, encoder.encode("/missing\0"));
    expect((await call(rig, pid, SYSCALLS.execve, [path, argvArray, 0n])).errno).toBe(Errno.ENOENT);
    expect(rig.kernel.table.require(pid).spaceId).toBe(reply.spaceId);
  });
});
