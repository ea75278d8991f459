// The machine's CPUs running guest threads over real guest memory and a real hashed page table,
// with a scripted kernel side: system calls and their results, page faults and segment misses
// resolved then retried, program interrupts turned into signals, garbage that never escapes the
// run loop, blocked calls, exec, exit, preemption and TLB invalidation.
import { afterEach, describe, expect, it } from "vitest";
import { Random } from "./cpu/generators.ts";
import {
  assemble,
  branch,
  CODE,
  DATA,
  GuestRig,
  ld,
  li,
  load32,
  mfcr,
  mr,
  NR_EXIT_GROUP,
  NR_REPORT,
  PAGE,
  sc,
  std,
  until,
} from "./guest-rig.ts";
import { PVR_POWER9 } from "../../services/machine/cpu/features.ts";
import type { KernelCallOutcome } from "../../services/machine/kernel_side.ts";

const SPACE = 7n;
const CR0_SO = 0x10000000n;

/** r0 = number; sc. */
const syscall = (number: number) => [li(0, number), sc()];
/** Reports r3..r8 to the test. */
const report = () => syscall(NR_REPORT);
const exitGroup = () => syscall(NR_EXIT_GROUP);

let rig: GuestRig;

afterEach(() => rig?.stop());

describe("system calls", () => {
  it("passes r0 and r3..r8 to the kernel side and returns r3 with CR0[SO] clear, or errno with it set", async () => {
    rig = new GuestRig();
    rig.kernel.syscalls.set(20, (_thread, _memory, args) => {
      expect(args).toEqual([5n, 6n, 7n, 8n, 9n, 10n]);
      return { kind: "return", value: 42n, signalPending: false };
    });
    rig.kernel.syscalls.set(21, () => ({ kind: "error", errno: 9, signalPending: false }));
    rig.code(SPACE, CODE, [
      li(3, 5),
      li(4, 6),
      li(5, 7),
      li(6, 8),
      li(7, 9),
      li(8, 10),
      ...syscall(20),
      mr(14, 3),
      mfcr(15),
      ...syscall(21),
      mr(5, 3),
      mfcr(6),
      mr(3, 14),
      mr(4, 15),
      ...report(),
      ...syscall(4000), // beyond the table: ENOSYS
      mr(3, 3),
      mfcr(4),
      ...report(),
      ...exitGroup(),
    ]);
    rig.thread(1, 1, SPACE, CODE);
    rig.run(0, 1);
    await until(() => rig.kernel.log.includes("schedule 0"), 5000, "the exit");
    expect(rig.cpus.threads.get(1)).toBeUndefined();
    const [first, second] = rig.kernel.reports;
    expect(first[0]).toBe(42n);
    expect(first[1] & CR0_SO).toBe(0n);
    expect(first[2]).toBe(9n);
    expect(first[3] & CR0_SO).toBe(CR0_SO);
    expect(second[0]).toBe(38n);
    expect(second[1] & CR0_SO).toBe(CR0_SO);
    expect(rig.cpus.counters(0).activity).toBe("idle");
    expect(rig.cpus.counters(0).traps).toBeGreaterThanOrEqual(5);
  });

  it("takes a blocked call's thread off the CPU and resumes it with the final outcome", async () => {
    rig = new GuestRig();
    const done = Promise.withResolvers<KernelCallOutcome>();
    rig.kernel.syscalls.set(162, () => ({ kind: "blocked", done: done.promise }));
    rig.code(SPACE, CODE, [li(14, 77), ...syscall(162), mr(4, 14), ...report(), ...exitGroup()]);
    rig.thread(1, 1, SPACE, CODE);
    rig.run(0, 1);
    await until(() => rig.cpus.counters(0).activity === "idle" && rig.kernel.log.includes("schedule 0"));
    const thread = rig.cpus.threads.get(1)!;
    expect(thread.cpu).toBe(-1);
    expect(thread.registers.pc).toBe(BigInt(CODE + 12));
    done.resolve({ kind: "return", value: 5n, signalPending: false });
    await until(() => thread.pending === undefined);
    expect(thread.registers.gprValue(3)).toBe(5n);
    rig.cpus.runThread(0, 1);
    await until(() => rig.kernel.reports.length === 1);
    expect(rig.kernel.reports[0].slice(0, 2)).toEqual([5n, 77n]);
  });

  it("starts the new program on exec: registers from the entry, the rest reset, a new space", async () => {
    rig = new GuestRig();
    const NEW_SPACE = 8n;
    const entry = CODE + 0x100;
    rig.code(NEW_SPACE, entry, [mr(4, 14), mr(5, 12), ...report(), ...exitGroup()]);
    rig.kernel.syscalls.set(11, () => ({
      kind: "exec",
      spaceId: NEW_SPACE,
      entry: {
        pc: BigInt(entry),
        r1: 0x2fff0000n,
        r3: 1n,
        r4: 2n,
        r5: 3n,
        r6: 4n,
        r7: 5n,
        r12: BigInt(entry),
      },
    }));
    rig.kernel.segmentHandler = (_thread, address) => rig.segment(NEW_SPACE, Number(address));
    rig.code(SPACE, CODE, [li(14, 99), ...syscall(11)]);
    rig.thread(1, 1, SPACE, CODE);
    rig.run(0, 1);
    await until(() => rig.kernel.reports.length === 1);
    expect(rig.kernel.reports[0]).toEqual([1n, 0n, BigInt(entry), 4n, 5n, 0n]);
    expect(rig.kernel.log.filter((l) => l.startsWith("segment"))).toEqual([
      `segment 0x${entry.toString(16)}`,
    ]);
  });
});

describe("faults", () => {
  it("maps a page on a fault and retries the instruction, loads and stores", async () => {
    rig = new GuestRig();
    rig.kernel.pageFaultHandler = (_thread, address, access) => {
      const real = rig.mapPage(SPACE, Number(address));
      if (access === "read") {
        const value = new Uint8Array(8);
        new DataView(value.buffer).setBigUint64(0, 0x1122334455667788n, true);
        rig.physical.write(real + (Number(address) % PAGE), value);
      }
      return { kind: "mapped" };
    };
    rig.code(SPACE, CODE, [
      ...load32(4, DATA),
      ld(5, 8, 4),
      li(6, 123),
      std(6, PAGE + 16, 4),
      mr(3, 5),
      ...report(),
      ...exitGroup(),
    ]);
    rig.thread(1, 1, SPACE, CODE, { segments: [rig.segment(SPACE, CODE), rig.segment(SPACE, DATA)] });
    rig.run(0, 1);
    await until(() => rig.kernel.reports.length === 1);
    expect(rig.kernel.reports[0][0]).toBe(0x1122334455667788n);
    expect(rig.kernel.log.filter((l) => l.startsWith("fault"))).toEqual([
      "fault read 0x20000008 not-mapped",
      "fault write 0x20001010 not-mapped",
    ]);
    expect(new DataView(rig.read(SPACE, DATA + PAGE + 16, 8).buffer).getBigUint64(0, true)).toBe(123n);
    expect(rig.cpus.counters(0).pageFaults).toBe(2);
  });

  it("retries a store after vmm lifts a protection fault (the cached read-only translation is dropped)", async () => {
    rig = new GuestRig();
    rig.mapPage(SPACE, DATA, { writable: false });
    rig.kernel.pageFaultHandler = (_thread, address) => {
      rig.mapPage(SPACE, Number(address), { writable: true });
      return { kind: "mapped" };
    };
    rig.code(SPACE, CODE, [
      ...load32(4, DATA),
      ld(5, 0, 4),
      li(6, 55),
      std(6, 0, 4),
      ld(3, 0, 4),
      ...report(),
      ...exitGroup(),
    ]);
    rig.thread(1, 1, SPACE, CODE, { segments: [rig.segment(SPACE, CODE), rig.segment(SPACE, DATA)] });
    rig.run(0, 1);
    await until(() => rig.kernel.reports.length === 1);
    expect(rig.kernel.reports[0][0]).toBe(55n);
    expect(rig.kernel.log.filter((l) => l.startsWith("fault"))).toEqual([
      "fault write 0x20000000 protection",
    ]);
  });

  it("asks vmm for the segment on a segment miss, loads it and retries", async () => {
    rig = new GuestRig();
    rig.mapPage(SPACE, DATA);
    rig.write(SPACE, DATA, new Uint8Array([7, 0, 0, 0, 0, 0, 0, 0]));
    rig.kernel.segmentHandler = (_thread, address) => rig.segment(SPACE, Number(address));
    const segments: number[][] = [];
    rig.kernel.syscalls.set(96, (thread) => {
      segments.push(rig.cpus.segmentsOf(rig.cpus.threads.get(thread.tid)!).map((s) => s.esid));
      return { kind: "exit-process", waitStatus: 0 };
    });
    rig.code(SPACE, CODE, [...load32(4, DATA), ld(3, 0, 4), ...report(), ...syscall(96)]);
    rig.thread(1, 1, SPACE, CODE);
    rig.run(0, 1);
    await until(() => segments.length === 1);
    expect(rig.kernel.reports[0][0]).toBe(7n);
    expect(segments[0]).toContain(DATA / 2 ** 28);
    expect(rig.kernel.log.filter((l) => l.startsWith("segment") || l.startsWith("fault"))).toEqual([
      "segment 0x20000000",
    ]);
  });

  it("raises SIGSEGV when vmm answers a fault with a signal, and the process terminates", async () => {
    rig = new GuestRig();
    rig.code(SPACE, CODE, [...load32(4, DATA), ld(3, 0, 4), ...report()]);
    rig.thread(5, 50, SPACE, CODE, { segments: [rig.segment(SPACE, CODE), rig.segment(SPACE, DATA)] });
    rig.run(0, 50);
    await until(() => rig.cpus.threads.get(50) === undefined);
    expect(rig.kernel.terminated).toEqual([5]);
    expect(rig.kernel.reports).toEqual([]);
  });
});

describe("program interrupts", () => {
  const cases: [string, number, number, number][] = [
    ["an illegal instruction", 0x00000000, 4, 1],
    ["a privileged SPR", assemble("mfspr", { RT: 3, SPR: 26 }), 4, 5],
    ["a trap", assemble("twi", { TO: 31, RA: 0, SI: 0 }), 5, 1],
  ];
  it.each(cases)(
    "turns %s into a forced signal with its si_code and si_addr",
    async (_name, word, signal, code) => {
      rig = new GuestRig();
      rig.code(SPACE, CODE, [li(3, 1), word, ...report()]);
      rig.thread(1, 1, SPACE, CODE);
      rig.run(0, 1);
      await until(() => rig.cpus.threads.get(1) === undefined);
      expect(rig.kernel.raised).toEqual([{ tid: 1, signal, code, address: BigInt(CODE + 4) }]);
    },
  );

  it("emulates mfpvr as Linux does", async () => {
    rig = new GuestRig();
    rig.code(SPACE, CODE, [assemble("mfspr", { RT: 3, SPR: 287 }), ...report(), ...exitGroup()]);
    rig.thread(1, 1, SPACE, CODE);
    rig.run(0, 1);
    await until(() => rig.kernel.reports.length === 1);
    expect(rig.kernel.reports[0][0]).toBe(BigInt(PVR_POWER9));
  });

  it("raises SIGBUS with the address for an alignment interrupt (lmw in little-endian mode)", async () => {
    rig = new GuestRig();
    rig.code(SPACE, CODE, [...load32(4, DATA + 8), assemble("lmw", { RT: 28, D: 0, RA0: 4 })]);
    rig.thread(1, 1, SPACE, CODE);
    rig.run(0, 1);
    await until(() => rig.cpus.threads.get(1) === undefined);
    expect(rig.kernel.raised).toEqual([{ tid: 1, signal: 7, code: 1, address: BigInt(DATA + 8) }]);
  });

  it("never lets garbage escape the run loop: every failure becomes a signal", async () => {
    rig = new GuestRig({ timeSliceNanos: 1_000_000 });
    // A thread still running at the end of its slice is killed.
    rig.kernel.tickHandler = () => ({ preempt: false, next: undefined, signalPending: true });
    const random = new Random(1234);
    const kernel = rig.kernel;
    const originalHandle = kernel.handleSignal.bind(kernel);
    kernel.handleSignal = (thread) => {
      if ((kernel.pendingSignals.get(thread.tid) ?? []).length === 0) kernel.queue(thread.tid, 9);
      return originalHandle(thread);
    };
    for (let round = 0; round < 30; round++) {
      const space = BigInt(100 + round);
      const words = Array.from({ length: PAGE / 4 }, () => random.next() | 0);
      rig.code(space, CODE, words);
      const tid = 1000 + round;
      rig.thread(tid, tid, space, CODE + 4 * random.below(PAGE / 4), {
        setup: (registers) => {
          for (let n = 2; n < 32; n++) registers.setGpr(n, random.u64());
          registers.cr = random.next() | 0;
        },
      });
      rig.run(0, tid);
      await until(() => rig.cpus.threads.get(tid) === undefined, 5000, `thread ${tid} to end`);
      expect(rig.cpus.cores[0].started).toBe(true);
    }
  });
});

describe("a failing kernel side", () => {
  it("issues a system call again after a pause when the kernel side throws", async () => {
    rig = new GuestRig();
    let attempts = 0;
    rig.kernel.syscalls.set(20, () => {
      if (++attempts === 1) throw new Error("sched is down");
      return { kind: "return", value: 8n, signalPending: false };
    });
    rig.code(SPACE, CODE, [li(3, 1), ...syscall(20), ...report(), ...exitGroup()]);
    rig.thread(1, 1, SPACE, CODE);
    rig.run(0, 1);
    await until(() => rig.kernel.reports.length === 1);
    expect(attempts).toBe(2);
    expect(rig.kernel.reports[0][0]).toBe(8n);
  });
});

describe("threads and processes", () => {
  it("discards every thread of a process on exit_group, including one running on another CPU", async () => {
    rig = new GuestRig({ cpus: 2 });
    rig.code(SPACE, CODE, [branch(CODE, CODE)]);
    rig.code(SPACE, CODE + 0x100, [li(3, 1), ...exitGroup()]);
    rig.thread(3, 30, SPACE, CODE);
    rig.thread(3, 31, SPACE, CODE + 0x100);
    rig.run(0, 30);
    await until(() => rig.cpus.counters(0).instructionsRetired > 1000);
    rig.run(1, 31);
    await until(() => rig.cpus.threads.size === 0);
    await until(() => rig.kernel.log.includes("schedule 0") && rig.kernel.log.includes("schedule 1"));
    expect(rig.cpus.counters(0).activity).toBe("idle");
    expect(rig.cpus.counters(1).activity).toBe("idle");
    // The space's context went with its last thread.
    expect(rig.cpus.cores.every((core) => core.memory.context === null)).toBe(true);
  });

  it("switches threads on a preempting tick and keeps each one's registers", async () => {
    rig = new GuestRig({ timeSliceNanos: 500_000 });
    const COUNTER = DATA;
    // r14 counts to 3 in each thread; the threads increment a shared counter and spin in between.
    const body = (id: number) => [
      li(14, 0),
      li(15, id),
      ...load32(4, COUNTER),
      // loop: spin ~200k iterations, then bump r14 and the counter
      ...load32(16, 200_000),
      assemble("mtspr", { SPR: 9, RS: 16 }),
      assemble("bc", { BO: 16, BI: 0, BD: 0 }), // bdnz .
      assemble("addi", { RT: 14, RA0: 14, SI: 1 }),
      ld(5, 0, 4),
      assemble("addi", { RT: 5, RA0: 5, SI: 1 }),
      std(5, 0, 4),
      assemble("cmpi", { BF: 0, L10: 1, RA: 14, SI: 3 }),
      assemble("bc", { BO: 4, BI: 2, BD: -36 }), // bne loop
      mr(3, 14),
      mr(4, 15),
      ...report(),
      ...syscall(1),
    ];
    rig.kernel.syscalls.set(1, () => ({ kind: "exit-thread" }));
    rig.code(SPACE, CODE, body(1));
    rig.code(SPACE, CODE + 0x200, body(2));
    rig.mapPage(SPACE, COUNTER);
    const segments = [rig.segment(SPACE, CODE), rig.segment(SPACE, DATA), rig.segment(SPACE, 0x2fff0000)];
    rig.thread(1, 1, SPACE, CODE, { segments });
    rig.thread(1, 2, SPACE, CODE + 0x200, { segments });
    let other = 2;
    rig.kernel.tickHandler = (cpu) => {
      const current = rig.cpus.cores[cpu].thread!.tid;
      const next = rig.cpus.threads.get(other);
      other = current;
      return next
        ? { preempt: true, next: { tid: next.tid, pid: 1, timeSliceNanos: 500_000 }, signalPending: false }
        : {
          preempt: false,
          next: undefined,
          signalPending: false,
        };
    };
    rig.run(0, 1);
    await until(() => rig.kernel.reports.length === 2, 10_000, "both threads to finish");
    expect(rig.kernel.reports.map((r) => r.slice(0, 2)).sort()).toEqual([[3n, 1n], [3n, 2n]]);
    expect(new DataView(rig.read(SPACE, COUNTER, 8).buffer).getBigUint64(0, true)).toBe(6n);
    expect(rig.kernel.log.filter((l) => l === "tick 0").length).toBeGreaterThan(0);
  });
});

describe("translations", () => {
  it("sees a remapped page after InvalidateTlb, and new code after a physical write", async () => {
    rig = new GuestRig();
    const FUNCTION = CODE + 0x2000;
    rig.code(SPACE, FUNCTION, [li(3, 1), assemble("bclr", { BO: 20, BI: 0 })]);
    rig.mapPage(SPACE, DATA);
    rig.write(SPACE, DATA, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
    rig.kernel.syscalls.set(97, () => {
      // Remap DATA to a new frame holding 2, as vmm would, then invalidate the page's translation.
      const { vsid } = rig.segment(SPACE, DATA);
      const real = rig.mapPage(SPACE, DATA, { real: rig.allocateFrame() });
      rig.physical.write(real, new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0]));
      rig.cpus.invalidateTlb({ scope: "page", vsid, ea: DATA, bytes: PAGE }, []);
      // And replace the function's code in physical memory.
      const code = rig.pages.get(SPACE)!.get(FUNCTION)!;
      const word = new Uint8Array(4);
      new DataView(word.buffer).setUint32(0, li(3, 2) >>> 0, true);
      rig.physical.write(code, word);
      return { kind: "return", value: 0n, signalPending: false };
    });
    const call = (
      at: number,
    ) => [
      ...load32(12, FUNCTION),
      assemble("mtspr", { SPR: 9, RS: 12 }),
      assemble("bcctr", { BO: 20, BI: 0 }, ["LK"]),
      mr(at, 3),
    ];
    rig.code(SPACE, CODE, [
      ...load32(4, DATA),
      ld(14, 0, 4),
      ...call(15),
      ...syscall(97),
      ld(5, 0, 4),
      ...call(6),
      mr(3, 14),
      mr(4, 15),
      ...report(),
      ...exitGroup(),
    ]);
    rig.thread(1, 1, SPACE, CODE, { segments: [rig.segment(SPACE, CODE), rig.segment(SPACE, DATA)] });
    rig.run(0, 1);
    await until(() => rig.kernel.reports.length === 1);
    expect(rig.kernel.reports[0].slice(0, 4)).toEqual([1n, 1n, 2n, 2n]);
  });
});
