// Signal delivery by the machine's CPUs: the Linux ppc64 rt signal frame built on the thread's
// stack (or its alternate stack), the handler entered as Linux enters it, rt_sigreturn restoring
// every register and the blocked mask (through the trampoline run as code, or on a stack that is
// not executable), system call restart, and frames that cannot be written or read.
import { afterEach, describe, expect, it } from "vitest";
import { Random } from "./cpu/generators.ts";
import {
  assemble,
  blr,
  CODE,
  GuestRig,
  li,
  mr,
  NR_EXIT_GROUP,
  NR_REPORT,
  PAGE,
  sc,
  STACK_TOP,
  until,
} from "./guest-rig.ts";
import { RegisterFile } from "../../services/machine/registers.ts";
import { MSR_FE0, MSR_FE1, MSR_VEC, MSR_VSX, USER_MSR } from "../../services/machine/signal_frame.ts";

const SPACE = 3n;
const HANDLER = CODE + 0x1000;
const SIGUSR1 = 10;
const SA_SIGINFO = 0x4n;
const SA_ONSTACK = 0x08000000n;
const SA_RESTART = 0x10000000n;
const SAVED_MASK = 0x1234n;

const syscall = (number: number) => [li(0, number), sc()];
const report = () => syscall(NR_REPORT);
const mflr = (rt: number) => assemble("mfspr", { RT: rt, SPR: 8 });
const mtlr = (rs: number) => assemble("mtspr", { SPR: 8, RS: rs });

/** A handler that reports its arguments, clobbers everything it can, and returns. */
function clobberingHandler(): number[] {
  const clobber: number[] = [];
  for (let n = 2; n <= 30; n++) clobber.push(li(n, -n));
  return [
    mflr(31),
    mr(7, 1),
    mflr(8),
    ...report(), // r3 signal, r4 siginfo, r5 ucontext, r6 frame, r7 r1, r8 LR
    mr(3, 12),
    ...report(),
    ...clobber,
    assemble("mtspr", { SPR: 9, RS: 3 }),
    assemble("mtcrf", { FXM: 0xff, RS: 4 }),
    assemble("xxlxor", { XT: 0, XA: 0, XB: 0 }),
    assemble("xxlxor", { XT: 31, XA: 31, XB: 31 }),
    assemble("xxlxor", { XT: 40, XA: 40, XB: 40 }),
    assemble("mtvscr", { VRB: 3 }),
    assemble("mtspr", { SPR: 256, RS: 5 }),
    mtlr(31),
    blr(),
  ];
}

/** Random registers for every field a signal frame saves (and the ones it does not touch). */
function randomRegisters(random: Random, registers: RegisterFile, sp: number): void {
  for (let n = 0; n < 32; n++) registers.setGpr(n, random.u64());
  registers.setGpr(1, BigInt(sp));
  registers.lr = random.u64();
  registers.ctr = random.u64();
  registers.xer = (1 << 31) | (1 << 29) | (1 << 18) | 0x45;
  registers.cr = random.next() | 0;
  for (let i = 0; i < registers.vsr.length; i++) registers.vsr[i] = random.below(256);
  registers.fpscr64 = 0x0000_0007_0000_0002n;
  registers.vscr = 0x00010001;
  registers.vrsave = random.next() | 0;
  registers.tar = random.u64();
  registers.dscr = 5n;
  registers.ppr = 0x000c_0000_0000_0000n;
}

function expectSameRegisters(actual: RegisterFile, expected: RegisterFile): void {
  for (let n = 1; n < 32; n++) expect(actual.gprValue(n), `r${n}`).toBe(expected.gprValue(n));
  expect(actual.lr).toBe(expected.lr);
  expect(actual.ctr).toBe(expected.ctr);
  expect(actual.xer).toBe(expected.xer);
  expect(actual.cr).toBe(expected.cr);
  expect(actual.vsr).toEqual(expected.vsr);
  expect(actual.fpscr64).toBe(expected.fpscr64);
  expect(actual.vscr).toBe(expected.vscr);
  expect(actual.vrsave).toBe(expected.vrsave);
  expect(actual.tar).toBe(expected.tar);
  expect(actual.dscr).toBe(expected.dscr);
  expect(actual.ppr).toBe(expected.ppr);
}

const u64 = (bytes: Uint8Array, at = 0) =>
  new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(at, true);

let rig: GuestRig;
afterEach(() => rig?.stop());

/** Maps stack pages on demand (executable or not); anything else is SIGSEGV. */
function stackOnDemand(executable: boolean): void {
  rig.kernel.pageFaultHandler = (_thread, address) => {
    if (address < BigInt(STACK_TOP - 64 * PAGE) || address >= BigInt(STACK_TOP)) {
      return { kind: "signal", signal: 11 };
    }
    rig.mapPage(SPACE, Number(address), { writable: true, executable });
    return { kind: "mapped" };
  };
}

describe("rt signal frames", () => {
  it.each([
    ["an executable stack (the trampoline runs as code)", true],
    ["a stack that is not executable (the trampoline's return is emulated)", false],
  ])(
    "delivers a signal and restores every register and the mask on rt_sigreturn, on %s",
    async (_name, executable) => {
      rig = new GuestRig();
      stackOnDemand(executable);
      const sp = STACK_TOP - 0x1008;
      const initial = new RegisterFile();
      randomRegisters(new Random(99), initial, sp);
      initial.pc = BigInt(CODE);
      let snapshot: RegisterFile | undefined;
      rig.kernel.syscalls.set(98, (thread) => {
        snapshot = rig.cpus.registersOf(rig.cpus.threads.get(thread.tid)!);
        return { kind: "exit-process", waitStatus: 0 };
      });
      rig.code(SPACE, CODE, syscall(98));
      rig.code(SPACE, HANDLER, clobberingHandler());
      rig.kernel.actions.set(SIGUSR1, { handler: BigInt(HANDLER), flags: SA_SIGINFO, savedMask: SAVED_MASK });
      const thread = rig.thread(1, 1, SPACE, CODE, { sp, setup: (registers) => registers.copyFrom(initial) });
      rig.kernel.queue(1, SIGUSR1);
      thread.signalCheck = true;
      rig.run(0, 1);
      await until(() => snapshot !== undefined, 5000, `the snapshot (${rig.kernel.log.join(", ")})`);

      const frame = (BigInt(sp) - 4096n) & ~15n;
      const [entry, handlerR12] = rig.kernel.reports;
      expect(entry).toEqual([BigInt(SIGUSR1), frame + 3456n, frame, frame, frame - 128n, frame + 3412n]);
      expect(handlerR12[0]).toBe(BigInt(HANDLER));
      expectSameRegisters(snapshot!, initial);
      expect(rig.kernel.masks).toEqual([SAVED_MASK]);
      expect(rig.kernel.log.filter((line) => line.startsWith("fault execute"))).toEqual([]);

      // The frame as Linux lays it out.
      const at = (offset: bigint, length: number) => rig.read(SPACE, Number(frame + offset), length);
      expect(u64(at(40n, 8))).toBe(SAVED_MASK);
      expect(new DataView(at(168n + 32n, 4).buffer).getInt32(0, true)).toBe(SIGUSR1);
      expect(u64(at(168n + 40n, 8))).toBe(BigInt(HANDLER));
      const gp = 168n + 64n;
      expect(u64(at(gp + 32n * 8n, 8))).toBe(BigInt(CODE));
      expect(u64(at(gp + 33n * 8n, 8))).toBe(USER_MSR | MSR_FE0 | MSR_FE1 | MSR_VEC | MSR_VSX);
      expect(u64(at(gp + 5n * 8n, 8))).toBe(initial.gprValue(5));
      expect(u64(at(168n + 712n, 8))).toBe(frame + 896n);
      expect(at(896n + 16n * 3n, 16)).toEqual(initial.vsr.subarray(16 * 35, 16 * 36));
      expect(new DataView(at(3456n, 4).buffer).getInt32(0, true)).toBe(SIGUSR1);
      expect(u64(rig.read(SPACE, Number(frame - 128n), 8))).toBe(BigInt(sp));
      expect(Array.from(new Uint32Array(at(3408n, 16).slice().buffer))).toEqual([
        0x4e800421,
        0x38210080,
        0x380000ac,
        0x44000002,
      ]);
    },
  );

  it("passes the sigcontext in r4 without SA_SIGINFO and puts the frame on the alternate stack with SA_ONSTACK", async () => {
    rig = new GuestRig();
    const ALT = 0x3800_0000;
    const ALT_SIZE = 0x4000;
    rig.kernel.pageFaultHandler = (_thread, address) => {
      rig.mapPage(SPACE, Number(address), { writable: true, executable: false });
      return { kind: "mapped" };
    };
    rig.code(SPACE, CODE, [...syscall(NR_EXIT_GROUP)]);
    rig.code(SPACE, HANDLER, [mr(5, 1), ...report(), blr()]);
    rig.kernel.actions.set(SIGUSR1, {
      handler: BigInt(HANDLER),
      flags: SA_ONSTACK,
      alternateStack: BigInt(ALT),
      alternateStackSize: BigInt(ALT_SIZE),
    });
    const thread = rig.thread(1, 1, SPACE, CODE, {
      segments: [rig.segment(SPACE, CODE), rig.segment(SPACE, STACK_TOP - 1), rig.segment(SPACE, ALT)],
    });
    rig.kernel.queue(1, SIGUSR1);
    thread.signalCheck = true;
    rig.run(0, 1);
    await until(() => rig.cpus.threads.get(1) === undefined);
    const frame = BigInt(ALT + ALT_SIZE - 4096);
    expect(rig.kernel.reports[0].slice(0, 3)).toEqual([BigInt(SIGUSR1), frame + 168n, frame - 128n]);
    const stack = rig.read(SPACE, Number(frame) + 16, 24);
    expect([u64(stack), new DataView(stack.buffer).getInt32(8, true), u64(stack, 16)]).toEqual([
      BigInt(ALT),
      0,
      BigInt(ALT_SIZE),
    ]);
  });

  it("raises SIGSEGV (SI_KERNEL) for an rt_sigreturn whose frame cannot be read", async () => {
    rig = new GuestRig();
    rig.code(SPACE, CODE, [li(1, 0x100), ...syscall(172)]);
    rig.thread(1, 1, SPACE, CODE);
    rig.run(0, 1);
    await until(() => rig.cpus.threads.get(1) === undefined);
    expect(rig.kernel.raised).toEqual([{ tid: 1, signal: 11, code: 0x80, address: 0n }]);
  });

  it("blocks SIGSEGV and forces it when its own handler's frame cannot be written", async () => {
    rig = new GuestRig();
    rig.code(SPACE, CODE, [li(1, 0x1000), ...syscall(NR_EXIT_GROUP)]);
    rig.kernel.actions.set(11, { handler: BigInt(HANDLER), flags: SA_SIGINFO, savedMask: 4n });
    const raise = rig.kernel.raiseSignal.bind(rig.kernel);
    // A forced signal that is blocked reverts to its default action (sched's job, played here).
    rig.kernel.raiseSignal = (thread, signal, code, address) => {
      const mask = rig.kernel.masks.at(-1) ?? 0n;
      if ((mask & (1n << BigInt(signal - 1))) !== 0n) rig.kernel.actions.delete(signal);
      return raise(thread, signal, code, address);
    };
    const thread = rig.thread(1, 1, SPACE, CODE, { sp: 0x1000 });
    rig.kernel.queue(1, 11);
    thread.signalCheck = true;
    rig.run(0, 1);
    await until(() => rig.cpus.threads.get(1) === undefined);
    expect(rig.kernel.masks).toEqual([4n | (1n << 10n)]);
    expect(rig.kernel.raised.at(-1)).toEqual({ tid: 1, signal: 11, code: 0x80, address: 0n });
    expect(rig.kernel.terminated).toEqual([1]);
  });
});

describe("system call restart", () => {
  it.each([
    ["restarts an ERESTARTSYS call after an SA_RESTART handler", SA_RESTART, [7n, 7n], 1n],
    ["fails an ERESTARTSYS call with EINTR for a handler without SA_RESTART", 0n, [7n], 4n],
  ])("%s", async (_name, flags, calls, result) => {
    rig = new GuestRig();
    stackOnDemand(false);
    const seen: bigint[] = [];
    rig.kernel.syscalls.set(50, (thread, _memory, args) => {
      seen.push(args[0]);
      if (seen.length > 1) return { kind: "return", value: 1n, signalPending: false };
      rig.kernel.queue(thread.tid, SIGUSR1);
      return { kind: "error", errno: 512, signalPending: true };
    });
    rig.kernel.actions.set(SIGUSR1, { handler: BigInt(HANDLER), flags });
    rig.code(SPACE, HANDLER, [blr()]);
    rig.code(SPACE, CODE, [li(3, 7), ...syscall(50), ...report(), ...syscall(NR_EXIT_GROUP)]);
    rig.thread(1, 1, SPACE, CODE);
    rig.run(0, 1);
    await until(() => rig.cpus.threads.get(1) === undefined);
    expect(seen).toEqual(calls);
    expect(rig.kernel.reports[0][0]).toBe(result);
  });

  it("restarts an ERESTARTNOHAND call transparently when no handler runs", async () => {
    rig = new GuestRig();
    let calls = 0;
    rig.kernel.syscalls.set(50, () => {
      calls++;
      return calls === 1
        ? { kind: "error", errno: 514, signalPending: true }
        : { kind: "return", value: 3n, signalPending: false };
    });
    rig.code(SPACE, CODE, [li(3, 7), ...syscall(50), ...report(), ...syscall(NR_EXIT_GROUP)]);
    rig.thread(1, 1, SPACE, CODE);
    rig.run(0, 1);
    await until(() => rig.cpus.threads.get(1) === undefined);
    expect(calls).toBe(2);
    expect(rig.kernel.reports[0][0]).toBe(3n);
  });
});
