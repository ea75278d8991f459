// A thread's problem-state register file while it is off a CPU: what a context switch saves from
// the Cpu and loads back, what a signal frame records, and what the contract's Registers message
// carries. The layout follows the Cpu's (cpu/interpreter.ts): 64-bit registers as (low, high)
// int32 halves, the 64 VSRs as 16 little-endian bytes each.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Registers, RegistersSchema } from "../../gen/astra/machine/v1/cpu_pb.ts";
import { invalidArgument } from "../../lib/errors.ts";
import type { Cpu } from "./cpu/interpreter.ts";
import { toBigInt } from "./cpu/int64.ts";
import type { ThreadEntry } from "./kernel_side.ts";

/** PPR after reset: thread priority medium (4), in bits 11:13 of the high word. */
export const INITIAL_PPR_HIGH = 0x00100000;
/** VSCR[NJ] (non-Java mode): Linux starts every thread with it set. */
export const VSCR_NJ = 0x00010000;
/** The VSCR bits that exist: NJ and SAT. */
export const VSCR_BITS = 0x00010001;
/** CR0[SO]: a failed system call sets it. */
export const CR0_SO = 0x10000000;
export const VSR_COUNT = 64;
export const VSR_BYTES = 16;

/** The registers a RegisterFile keeps under the Cpu's names, in the Cpu's representation. */
type CpuWords = Pick<
  Cpu,
  | "lrLo"
  | "lrHi"
  | "ctrLo"
  | "ctrHi"
  | "tarLo"
  | "tarHi"
  | "dscrLo"
  | "dscrHi"
  | "pprLo"
  | "pprHi"
  | "amrLo"
  | "amrHi"
  | "xer"
  | "cr"
  | "fpscr"
  | "fpscrHigh"
  | "vscr"
  | "vrsave"
  | "floatingPointExceptions"
>;

export class RegisterFile implements CpuWords {
  /** r[n] is gpr[2n] (low word) and gpr[2n + 1] (high word). */
  readonly gpr = new Int32Array(64);
  pc = 0n;
  lrLo = 0;
  lrHi = 0;
  ctrLo = 0;
  ctrHi = 0;
  tarLo = 0;
  tarHi = 0;
  dscrLo = 0;
  dscrHi = 0;
  pprLo = 0;
  pprHi = INITIAL_PPR_HIGH;
  amrLo = 0;
  amrHi = 0;
  /** XER as mfxer reads it. */
  xer = 0;
  cr = 0;
  /** vs0..vs63, each its 128-bit value in little-endian byte order (the Cpu's vsrBytes). */
  readonly vsr = new Uint8Array(VSR_COUNT * VSR_BYTES);
  /** FPSCR bits 32:63 and 0:31. */
  fpscr = 0;
  fpscrHigh = 0;
  vscr = VSCR_NJ;
  vrsave = 0;
  /** MSR[FE0, FE1]: enabled floating-point exceptions interrupt (see Cpu.floatingPointExceptions). */
  floatingPointExceptions = true;

  /** rN as an unsigned 64-bit value. */
  gprValue(n: number): bigint {
    return readGpr(this.gpr, n);
  }

  setGpr(n: number, value: bigint): void {
    writeGpr(this.gpr, n, value);
  }

  get lr(): bigint {
    return toBigInt(this.lrLo, this.lrHi, false);
  }

  set lr(value: bigint) {
    [this.lrLo, this.lrHi] = halves(value);
  }

  get ctr(): bigint {
    return toBigInt(this.ctrLo, this.ctrHi, false);
  }

  set ctr(value: bigint) {
    [this.ctrLo, this.ctrHi] = halves(value);
  }

  get tar(): bigint {
    return toBigInt(this.tarLo, this.tarHi, false);
  }

  set tar(value: bigint) {
    [this.tarLo, this.tarHi] = halves(value);
  }

  get dscr(): bigint {
    return toBigInt(this.dscrLo, this.dscrHi, false);
  }

  set dscr(value: bigint) {
    [this.dscrLo, this.dscrHi] = halves(value);
  }

  get ppr(): bigint {
    return toBigInt(this.pprLo, this.pprHi, false);
  }

  set ppr(value: bigint) {
    [this.pprLo, this.pprHi] = halves(value);
  }

  /** The 64-bit FPSCR. */
  get fpscr64(): bigint {
    return toBigInt(this.fpscr, this.fpscrHigh, false);
  }

  set fpscr64(value: bigint) {
    [this.fpscr, this.fpscrHigh] = halves(value);
  }

  /** Doubleword `d` (ISA numbering: 0 is the high-order one) of vs[n], unsigned. */
  vsrDoubleword(n: number, d: 0 | 1): bigint {
    const at = VSR_BYTES * n + (d === 0 ? 8 : 0);
    return new DataView(this.vsr.buffer).getBigUint64(at, true);
  }

  setVsrDoubleword(n: number, d: 0 | 1, value: bigint): void {
    const at = VSR_BYTES * n + (d === 0 ? 8 : 0);
    new DataView(this.vsr.buffer).setBigUint64(at, BigInt.asUintN(64, value), true);
  }

  copyFrom(other: RegisterFile): void {
    this.gpr.set(other.gpr);
    this.vsr.set(other.vsr);
    this.pc = other.pc;
    copyWords(this, other);
  }

  /** The state a new program starts in (execve): everything zero but the reset values of PPR and VSCR. */
  reset(): void {
    this.copyFrom(new RegisterFile());
  }
}

function halves(value: bigint): [number, number] {
  return [Number(BigInt.asUintN(32, value)) | 0, Number(BigInt.asUintN(32, value >> 32n)) | 0];
}

/** rN of a GPR array in the (low, high) word layout (the Cpu's and a RegisterFile's), unsigned. */
export function readGpr(gpr: Int32Array, n: number): bigint {
  return toBigInt(gpr[2 * n], gpr[2 * n + 1], false);
}

export function writeGpr(gpr: Int32Array, n: number, value: bigint): void {
  gpr[2 * n] = Number(BigInt.asUintN(32, value)) | 0;
  gpr[2 * n + 1] = Number(BigInt.asUintN(32, value >> 32n)) | 0;
}

// Spelled out rather than looped over by name: this runs at every context switch and trap.
function copyWords(to: CpuWords, from: CpuWords): void {
  to.lrLo = from.lrLo;
  to.lrHi = from.lrHi;
  to.ctrLo = from.ctrLo;
  to.ctrHi = from.ctrHi;
  to.tarLo = from.tarLo;
  to.tarHi = from.tarHi;
  to.dscrLo = from.dscrLo;
  to.dscrHi = from.dscrHi;
  to.pprLo = from.pprLo;
  to.pprHi = from.pprHi;
  to.amrLo = from.amrLo;
  to.amrHi = from.amrHi;
  to.xer = from.xer;
  to.cr = from.cr;
  to.fpscr = from.fpscr;
  to.fpscrHigh = from.fpscrHigh;
  to.vscr = from.vscr;
  to.vrsave = from.vrsave;
  to.floatingPointExceptions = from.floatingPointExceptions;
}

/** Copies the problem-state registers of a CPU into `target` (a thread leaves the CPU). */
export function saveCpu(cpu: Cpu, target: RegisterFile): void {
  target.gpr.set(cpu.gpr);
  target.vsr.set(cpu.vsrBytes);
  target.pc = cpu.pc64;
  copyWords(target, cpu);
}

/**
 * Loads `source` into a CPU (a thread goes onto it). The load-and-reserve reservation is lost, as
 * a context switch's stcx. clears it on Linux.
 */
export function loadCpu(source: RegisterFile, cpu: Cpu): void {
  cpu.gpr.set(source.gpr);
  cpu.vsrBytes.set(source.vsr);
  cpu.setPc64(source.pc);
  copyWords(cpu, source);
  cpu.reservationValid = false;
}

/** A register file set to the state execve starts a program in. */
export function applyExecEntry(registers: RegisterFile, entry: ThreadEntry): void {
  registers.reset();
  registers.pc = entry.pc;
  registers.setGpr(1, entry.r1);
  registers.setGpr(3, entry.r3);
  registers.setGpr(4, entry.r4);
  registers.setGpr(5, entry.r5);
  registers.setGpr(6, entry.r6);
  registers.setGpr(7, entry.r7);
  registers.setGpr(12, entry.r12);
}

/**
 * A system call's return to user mode: r3 is the value, or the errno with CR0[SO] set. Returns
 * what the kernel keeps as the call's result (the errno negated).
 */
export function setSystemCallResult(
  target: { readonly gpr: Int32Array; cr: number },
  outcome: { kind: "return"; value: bigint } | { kind: "error"; errno: number },
): bigint {
  const failed = outcome.kind === "error";
  const value = failed ? BigInt(outcome.errno) : outcome.value;
  writeGpr(target.gpr, 3, value);
  target.cr = failed ? target.cr | CR0_SO : target.cr & ~CR0_SO;
  return failed ? -value : value;
}

/** The contract's Registers: VSRs most significant byte first. */
export function registersToMessage(source: RegisterFile): MessageInitShape<typeof RegistersSchema> {
  const vsrs: Uint8Array[] = [];
  for (let n = 0; n < VSR_COUNT; n++) {
    vsrs.push(source.vsr.slice(VSR_BYTES * n, VSR_BYTES * (n + 1)).reverse());
  }
  return {
    gprs: Array.from({ length: 32 }, (_, n) => source.gprValue(n)),
    pc: source.pc,
    lr: source.lr,
    ctr: source.ctr,
    xer: BigInt(source.xer >>> 0),
    cr: source.cr >>> 0,
    fpscr: source.fpscr64,
    vsrs,
    vscr: source.vscr >>> 0,
    vrsave: source.vrsave >>> 0,
    tar: source.tar,
    dscr: source.dscr,
    ppr: source.ppr,
  };
}

/**
 * A register file from the contract's Registers, over `base` for what the message cannot say
 * (AMR, the floating-point exception mode). INVALID_ARGUMENT names a malformed field: GPRs and
 * VSRs come as exactly 32 and 64 entries (an empty list means all zero), a VSR as 16 bytes,
 * XER and VSCR with only their defined bits.
 */
export function registersFromMessage(message: Registers, base: RegisterFile, field: string): RegisterFile {
  const out = new RegisterFile();
  out.copyFrom(base);
  const { gprs, vsrs } = message;
  if (gprs.length !== 0 && gprs.length !== 32) {
    throw invalidArgument(`${field}.gprs`, `a register file has 32 GPRs, not ${gprs.length}`);
  }
  if (vsrs.length !== 0 && vsrs.length !== VSR_COUNT) {
    throw invalidArgument(`${field}.vsrs`, `a register file has 64 VSRs, not ${vsrs.length}`);
  }
  const badVsr = vsrs.findIndex((v) => v.length !== VSR_BYTES);
  if (badVsr >= 0) {
    throw invalidArgument(`${field}.vsrs`, `vs${badVsr} has ${vsrs[badVsr].length} bytes, not 16`);
  }
  if (message.xer >> 32n !== 0n) {
    throw invalidArgument(`${field}.xer`, `XER 0x${message.xer.toString(16)} has bits beyond the low word`);
  }
  if ((message.vscr & ~VSCR_BITS) !== 0) {
    throw invalidArgument(
      `${field}.vscr`,
      `VSCR 0x${message.vscr.toString(16)} sets bits other than NJ and SAT`,
    );
  }
  out.gpr.fill(0);
  gprs.forEach((value, n) => out.setGpr(n, value));
  out.vsr.fill(0);
  vsrs.forEach((bytes, n) => out.vsr.set(bytes.slice().reverse(), VSR_BYTES * n));
  out.pc = message.pc;
  out.lr = message.lr;
  out.ctr = message.ctr;
  out.xer = Number(message.xer) | 0;
  out.cr = message.cr | 0;
  out.fpscr64 = message.fpscr;
  out.vscr = message.vscr;
  out.vrsave = message.vrsave | 0;
  out.tar = message.tar;
  out.dscr = message.dscr;
  out.ppr = message.ppr;
  return out;
}
