// The machine's CPUs on their own, for tests: real guest physical memory and a real hashed page
// table written with lib/ppc/hpt.ts, a CpuComplex running threads, and a scripted KernelSide that
// records what the CPUs ask. Guest code is hand-assembled instruction words.
import {
  abbreviatedVpn,
  encodeHpte,
  HPTE_BYTES,
  HPTES_PER_GROUP,
  primaryHash,
  PTEG_BYTES,
  ptegAddress,
  readWordBE,
  SEGMENT_256M,
  type SlbEntry,
  userPp,
  WIMG_MEMORY,
} from "../../lib/ppc/hpt.ts";
import { logger } from "../../lib/log.ts";
import { CpuComplex } from "../../services/machine/cpus.ts";
import { firmwareMemoryMap, MIB } from "../../services/machine/firmware.ts";
import type {
  Dispatch,
  FaultAccess,
  KernelCallOutcome,
  KernelSide,
  PageFaultOutcome,
  SegmentOutcome,
  SignalDelivery,
  SignalOutcome,
  TickOutcome,
  TrappedThread,
  UserMemory,
} from "../../services/machine/kernel_side.ts";
import { PhysicalMemory } from "../../services/machine/memory.ts";
import { Mmu } from "../../services/machine/mmu.ts";
import type { RegisterFile } from "../../services/machine/registers.ts";
import type { ThreadContext } from "../../services/machine/threads.ts";
import { assemble } from "./cpu/qemu-oracle.ts";

export { assemble };

export const HTAB_ORIGIN = 16 * MIB;
export const HTAB_SIZE_FIELD = 0;
export const CODE = 0x1000_0000;
export const DATA = 0x2000_0000;
export const STACK_TOP = 0x4000_0000;
export const PAGE = 4096;

/** System calls the test guests use to talk to the test. */
export const NR_REPORT = 99;
export const NR_EXIT_GROUP = 234;

export type SystemCallHandler = (
  thread: TrappedThread,
  memory: UserMemory,
  args: readonly bigint[],
) => KernelCallOutcome | Promise<KernelCallOutcome>;

/** A handler the fake's handleSignal enters for a raised or queued signal. */
export interface FakeAction {
  handler: bigint;
  flags: bigint;
  savedMask?: bigint;
  alternateStack?: bigint;
  alternateStackSize?: bigint;
}

/**
 * A KernelSide scripted by the test. System calls go to `syscalls` (ENOSYS otherwise); a raised
 * signal is queued and handleSignal enters its action from `actions`, or terminates the process.
 */
export class FakeKernel implements KernelSide {
  readonly syscalls = new Map<number, SystemCallHandler>();
  readonly actions = new Map<number, FakeAction>();
  /** Signals waiting for handleSignal, per TID. */
  readonly pendingSignals = new Map<number, number[]>();
  readonly log: string[] = [];
  readonly reports: bigint[][] = [];
  readonly raised: { tid: number; signal: number; code: number; address: bigint }[] = [];
  readonly masks: bigint[] = [];
  readonly terminated: number[] = [];
  /** The next answers of schedule(), per CPU; undefined when empty. */
  readonly dispatches: Dispatch[] = [];
  pageFaultHandler: (
    thread: TrappedThread,
    address: bigint,
    access: FaultAccess,
    cause: string,
  ) => PageFaultOutcome = () => ({ kind: "signal", signal: 11 });
  segmentHandler: (thread: TrappedThread, address: bigint) => SlbEntry | undefined = () => undefined;
  tickHandler: (cpu: number) => TickOutcome = () => ({
    preempt: false,
    next: undefined,
    signalPending: false,
  });

  constructor() {
    this.syscalls.set(NR_REPORT, (_thread, _memory, args) => {
      this.reports.push([...args]);
      return { kind: "return", value: 0n, signalPending: false };
    });
    this.syscalls.set(NR_EXIT_GROUP, () => ({ kind: "exit-process", waitStatus: 0 }));
  }

  systemCall(thread: TrappedThread, memory: UserMemory, number: number, args: readonly bigint[]) {
    this.log.push(`sc ${number}`);
    const handler = this.syscalls.get(number);
    if (!handler) {
      return Promise.resolve<KernelCallOutcome>({ kind: "error", errno: 38, signalPending: false });
    }
    return Promise.resolve(handler(thread, memory, args));
  }

  pageFault(
    thread: TrappedThread,
    address: bigint,
    access: FaultAccess,
    cause: string,
  ): Promise<PageFaultOutcome> {
    this.log.push(`fault ${access} 0x${address.toString(16)} ${cause}`);
    const outcome = this.pageFaultHandler(thread, address, access, cause);
    if (outcome.kind === "signal") this.queue(thread.tid, outcome.signal);
    return Promise.resolve(outcome);
  }

  segmentMiss(thread: TrappedThread, address: bigint): Promise<SegmentOutcome> {
    this.log.push(`segment 0x${address.toString(16)}`);
    const entry = this.segmentHandler(thread, address);
    if (entry) return Promise.resolve({ kind: "segment", entry });
    this.queue(thread.tid, 11);
    return Promise.resolve({ kind: "signal", signal: 11 });
  }

  raiseSignal(thread: TrappedThread, signal: number, code: number, address: bigint): Promise<void> {
    this.log.push(`raise ${signal}`);
    this.raised.push({ tid: thread.tid, signal, code, address });
    this.queue(thread.tid, signal);
    return Promise.resolve();
  }

  queue(tid: number, signal: number): void {
    const list = this.pendingSignals.get(tid) ?? [];
    list.push(signal);
    this.pendingSignals.set(tid, list);
  }

  handleSignal(thread: TrappedThread): Promise<SignalOutcome> {
    const list = this.pendingSignals.get(thread.tid) ?? [];
    const signal = list.shift();
    if (signal === undefined) return Promise.resolve({ kind: "none" });
    this.log.push(`deliver ${signal}`);
    const action = this.actions.get(signal);
    if (!action) {
      this.terminated.push(thread.pid);
      return Promise.resolve({ kind: "terminate", signal, waitStatus: signal });
    }
    const siginfo = new Uint8Array(128);
    new DataView(siginfo.buffer).setInt32(0, signal, true);
    const delivery: SignalDelivery = {
      signal,
      handler: action.handler,
      flags: action.flags,
      savedMask: action.savedMask ?? 0n,
      siginfo,
      alternateStack: action.alternateStack ?? 0n,
      alternateStackSize: action.alternateStackSize ?? 0n,
    };
    return Promise.resolve({ kind: "handler", delivery, morePending: list.length > 0 });
  }

  setSignalMask(_thread: TrappedThread, mask: bigint): Promise<void> {
    this.masks.push(mask);
    return Promise.resolve();
  }

  tick(cpu: number): Promise<TickOutcome> {
    this.log.push(`tick ${cpu}`);
    return Promise.resolve(this.tickHandler(cpu));
  }

  schedule(cpu: number): Promise<Dispatch | undefined> {
    this.log.push(`schedule ${cpu}`);
    return Promise.resolve(this.dispatches.shift());
  }
}

/** Guest memory, an HPT, the CPUs and a fake kernel side. */
export class GuestRig {
  readonly physical: PhysicalMemory;
  readonly mmu: Mmu;
  readonly cpus: CpuComplex;
  readonly kernel: FakeKernel;
  /** Effective page → real page, per space, as mapPage wrote them. */
  readonly pages = new Map<bigint, Map<number, number>>();
  private nextFrame = 32 * MIB;

  constructor(options: { cpus?: number; timeSliceNanos?: number; kernel?: FakeKernel | null } = {}) {
    this.physical = new PhysicalMemory(firmwareMemoryMap({ memoryBytes: 128 * MIB, numaNodes: 1 }));
    this.mmu = new Mmu(this.physical);
    this.kernel = options.kernel ?? new FakeKernel();
    const kernel = this.kernel;
    this.cpus = new CpuComplex({
      cpus: options.cpus ?? 1,
      mmu: this.mmu,
      physical: this.physical,
      log: logger("machine-test"),
      timebase: () => Math.floor(performance.now() * 512_000),
      clockNanos: () => BigInt(Math.round(performance.now() * 1e6)),
      kernelSide: options.kernel === null ? undefined : () => kernel,
      defaultTimeSliceNanos: options.timeSliceNanos,
    });
    this.cpus.setHashTable(HTAB_ORIGIN, HTAB_SIZE_FIELD);
  }

  /** The segment of `ea` in a space: VSID derived from the space and the ESID. */
  segment(spaceId: bigint, ea: number): SlbEntry {
    const esid = Math.floor(ea / 2 ** 28);
    return {
      esid,
      vsid: Number(spaceId) * 0x1001 + esid * 0x101,
      segmentSize: SEGMENT_256M,
      basePageShift: 12,
      ks: false,
      kp: true,
      noExecute: false,
    };
  }

  /** Writes an HPTE mapping the page of `ea` to a new frame (or `real`); returns the real address. */
  mapPage(
    spaceId: bigint,
    ea: number,
    options: { writable?: boolean; executable?: boolean; real?: number } = {},
  ): number {
    const page = ea - (ea % PAGE);
    const existing = this.pages.get(spaceId)?.get(page);
    const real = options.real ?? existing ?? this.allocateFrame();
    const { vsid } = this.segment(spaceId, page);
    const offset = page % 2 ** 28;
    const hash = primaryHash(vsid, SEGMENT_256M, offset / PAGE);
    const avpn = abbreviatedVpn(vsid, SEGMENT_256M, offset, 12);
    const { group, slot, secondary } = this.freeSlot(hash, avpn);
    const hpte = new Uint8Array(HPTE_BYTES);
    encodeHpte({
      valid: true,
      avpn,
      software: 0,
      large: false,
      secondary,
      segmentSize: SEGMENT_256M,
      arpn: real / PAGE,
      pp: userPp(options.writable ?? true),
      key: 0,
      referenced: false,
      changed: false,
      wimg: WIMG_MEMORY,
      noExecute: !(options.executable ?? true),
    }, hpte);
    this.physical.write(group + slot * HPTE_BYTES, hpte);
    let pages = this.pages.get(spaceId);
    if (!pages) this.pages.set(spaceId, pages = new Map());
    pages.set(page, real);
    return real;
  }

  /** The slot already holding `avpn`, or a free one: primary PTEG first, then the secondary. */
  private freeSlot(hash: number, avpn: number): { group: number; slot: number; secondary: boolean } {
    let free: { group: number; slot: number; secondary: boolean } | undefined;
    for (const secondary of [false, true]) {
      const group = ptegAddress(HTAB_ORIGIN, HTAB_SIZE_FIELD, hash, secondary);
      const bytes = this.physical.read(group, PTEG_BYTES);
      for (let slot = 0; slot < HPTES_PER_GROUP; slot++) {
        const v0 = readWordBE(bytes, slot * HPTE_BYTES);
        const v1 = readWordBE(bytes, slot * HPTE_BYTES + 4);
        const valid = (v1 & 1) !== 0;
        if (
          valid && ((v1 >>> 1) & 1) === Number(secondary) &&
          Math.floor(((v0 & 0xfffff) * 2 ** 32 + v1) / 128) === avpn
        ) {
          return { group, slot, secondary };
        }
        if (!valid) free ??= { group, slot, secondary };
      }
    }
    if (!free) throw new Error("both PTEGs are full");
    return free;
  }

  allocateFrame(): number {
    const frame = this.nextFrame;
    this.nextFrame += PAGE;
    return frame;
  }

  /** Writes bytes at effective addresses of a space, mapping pages as needed. */
  write(
    spaceId: bigint,
    ea: number,
    data: Uint8Array,
    options: { writable?: boolean; executable?: boolean } = {},
  ) {
    for (let done = 0; done < data.length;) {
      const at = ea + done;
      const real = this.pages.get(spaceId)?.get(at - (at % PAGE)) ?? this.mapPage(spaceId, at, options);
      const n = Math.min(PAGE - (at % PAGE), data.length - done);
      this.physical.write(real + (at % PAGE), data.subarray(done, done + n));
      done += n;
    }
  }

  /** Writes instruction words at `ea`. */
  code(spaceId: bigint, ea: number, words: readonly number[], options: { executable?: boolean } = {}): void {
    const bytes = new Uint8Array(4 * words.length);
    const view = new DataView(bytes.buffer);
    words.forEach((word, i) => view.setUint32(4 * i, word >>> 0, true));
    this.write(spaceId, ea, bytes, { writable: false, executable: options.executable ?? true });
  }

  read(spaceId: bigint, ea: number, length: number): Uint8Array {
    const real = this.pages.get(spaceId)?.get(ea - (ea % PAGE));
    if (real === undefined) throw new Error(`0x${ea.toString(16)} is not mapped`);
    return this.physical.read(real + (ea % PAGE), length);
  }

  /** A thread with its code and stack segments loaded, at `pc` with r1 = `sp`. */
  thread(
    pid: number,
    tid: number,
    spaceId: bigint,
    pc: number,
    options: { sp?: number; segments?: SlbEntry[]; setup?: (registers: RegisterFile) => void } = {},
  ): ThreadContext {
    const sp = options.sp ?? STACK_TOP - 4096;
    return this.cpus.createThread({
      pid,
      tid,
      spaceId,
      copyFromTid: 0,
      registers: (base) => {
        base.pc = BigInt(pc);
        base.setGpr(1, BigInt(sp));
        options.setup?.(base);
        return base;
      },
      segments: options.segments ?? [this.segment(spaceId, CODE), this.segment(spaceId, sp - 1)],
    });
  }

  /** Starts a CPU and puts the thread on it. */
  run(cpu: number, tid: number): void {
    if (!this.cpus.cores[cpu].started) this.cpus.startCpu(cpu);
    this.cpus.runThread(cpu, tid);
  }

  stop(): void {
    this.cpus.stopAll();
  }
}

/** Waits until `condition` holds, failing after `timeoutMs`. */
export async function until(
  condition: () => boolean,
  timeoutMs = 5000,
  what = "the condition",
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

// A few encodings the guests use, over the ISA table's assembler.
export const li = (rt: number, value: number) => assemble("addi", { RT: rt, RA0: 0, SI: value });
export const mr = (ra: number, rs: number) => assemble("or", { RA: ra, RS: rs, RB: rs });
export const sc = () => assemble("sc", {});
export const mfcr = (rt: number) => assemble("mfcr", { RT: rt });
export const blr = () => assemble("bclr", { BO: 20, BI: 0 });
/** b to `target` from `from`. */
export const branch = (from: number, target: number) => assemble("b", { LI: target - from });
export const ld = (rt: number, ds: number, ra: number) => assemble("ld", { RT: rt, DS: ds, RA0: ra });
export const std = (rs: number, ds: number, ra: number) => assemble("std", { RS: rs, DS: ds, RA0: ra });
/** Loads a 32-bit unsigned constant into rt (lis + ori). */
export const load32 = (rt: number, value: number) => [
  assemble("addis", { RT: rt, RA0: 0, SI: (value >>> 16) << 16 >> 16 }),
  assemble("ori", { RA: rt, RS: rt, UI: value & 0xffff }),
];
