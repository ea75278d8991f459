// A thread's problem-state register file while it is off a CPU: what a context switch saves from
// the Cpu and loads back, what a signal frame records, and what the contract's Registers message
// carries. The layout follows the Cpu's (cpu/interpreter.ts): 64-bit registers as (low, high)
// int32 halves, the 64 VSRs as 16 little-endian bytes each.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Registers, RegistersSchema } from "../../gen/astra/machine/v1/cpu_pb.ts";
import { invalidArgument } from "../../lib/errors.ts";
import type { Cpu } from "./cpu/interpreter.ts";
import { toBigInt } from "./cpu/int64.ts";

/** PPR after reset: thread priority medium (4), in bits 11:13 of the high word. */
export const INITIAL_PPR_HIGH = 0x00100000;
/** VSCR[NJ] (non-Java mode): Linux starts every thread with it set. */
export const VSCR_NJ = 0x00010000;
/** The VSCR bits that exist: NJ and SAT. */
const VSCR_BITS = 0x00010001;
/** CR0[SO]: a failed system call sets it. */
export const CR0_SO = 0x10000000;
export const VSR_COUNT = 64;
export const VSR_BYTES = 16;

export class RegisterFile {
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
    return toBigInt(this.gpr[2 * n], this.gpr[2 * n + 1], false);
  }

  setGpr(n: number, value: bigint): void {
    this.gpr[2 * n] = Number(BigInt.asUintN(32, value)) | 0;
    this.gpr[2 * n + 1] = Number(BigInt.asUintN(32, value >> 32n)) | 0;
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
    this.lrLo = other.lrLo;
    this.lrHi = other.lrHi;
    this.ctrLo = other.ctrLo;
    this.ctrHi = other.ctrHi;
    this.tarLo = other.tarLo;
    this.tarHi = other.tarHi;
    this.dscrLo = other.dscrLo;
    this.dscrHi = other.dscrHi;
    this.pprLo = other.pprLo;
    this.pprHi = other.pprHi;
    this.amrLo = other.amrLo;
    this.amrHi = other.amrHi;
    this.xer = other.xer;
    this.cr = other.cr;
    this.fpscr = other.fpscr;
    this.fpscrHigh = other.fpscrHigh;
    this.vscr = other.vscr;
    this.vrsave = other.vrsave;
    this.floatingPointExceptions = other.floatingPointExceptions;
  }

  /** The state a new program starts in (execve): everything zero but the reset values of PPR and VSCR. */
  reset(): void {
    this.copyFrom(new RegisterFile());
  }
}

function halves(value: bigint): [number, number] {
  return [Number(BigInt.asUintN(32, value)) | 0, Number(BigInt.asUintN(32, value >> 32n)) | 0];
}

/** Copies the problem-state registers of a CPU into `target` (a thread leaves the CPU). */
export function saveCpu(cpu: Cpu, target: RegisterFile): void {
  target.gpr.set(cpu.gpr);
  target.vsr.set(cpu.vsrBytes);
  target.pc = cpu.pc64;
  target.lrLo = cpu.lrLo;
  target.lrHi = cpu.lrHi;
  target.ctrLo = cpu.ctrLo;
  target.ctrHi = cpu.ctrHi;
  target.tarLo = cpu.tarLo;
  target.tarHi = cpu.tarHi;
  target.dscrLo = cpu.dscrLo;
  target.dscrHi = cpu.dscrHi;
  target.pprLo = cpu.pprLo;
  target.pprHi = cpu.pprHi;
  target.amrLo = cpu.amrLo;
  target.amrHi = cpu.amrHi;
  target.xer = cpu.xer;
  target.cr = cpu.cr;
  target.fpscr = cpu.fpscr;
  target.fpscrHigh = cpu.fpscrHigh;
  target.vscr = cpu.vscr;
  target.vrsave = cpu.vrsave;
  target.floatingPointExceptions = cpu.floatingPointExceptions;
}

/**
 * Loads `source` into a CPU (a thread goes onto it). The load-and-reserve reservation is lost, as
 * a context switch's stcx. clears it on Linux.
 */
export function loadCpu(source: RegisterFile, cpu: Cpu): void {
  cpu.gpr.set(source.gpr);
  cpu.vsrBytes.set(source.vsr);
  cpu.setPc64(source.pc);
  cpu.lrLo = source.lrLo;
  cpu.lrHi = source.lrHi;
  cpu.ctrLo = source.ctrLo;
  cpu.ctrHi = source.ctrHi;
  cpu.tarLo = source.tarLo;
  cpu.tarHi = source.tarHi;
  cpu.dscrLo = source.dscrLo;
  cpu.dscrHi = source.dscrHi;
  cpu.pprLo = source.pprLo;
  cpu.pprHi = source.pprHi;
  cpu.amrLo = source.amrLo;
  cpu.amrHi = source.amrHi;
  cpu.xer = source.xer;
  cpu.cr = source.cr;
  cpu.fpscr = source.fpscr;
  cpu.fpscrHigh = source.fpscrHigh;
  cpu.vscr = source.vscr;
  cpu.vrsave = source.vrsave;
  cpu.floatingPointExceptions = source.floatingPointExceptions;
  cpu.reservationValid = false;
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
