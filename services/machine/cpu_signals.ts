// What Linux makes of a problem-state thread's interrupts (arch/powerpc/kernel/traps.c): the
// signal, its si_code and the DSISR a storage interrupt records; and the errors with which a
// system call asks to be restarted.
import {
  FPE_FLTDIV,
  FPE_FLTINV,
  FPE_FLTOVF,
  FPE_FLTRES,
  FPE_FLTUND,
  FPE_FLTUNK,
  ILL_ILLOPC,
  ILL_PRVOPC,
  SIGFPE,
  SIGILL,
  SIGTRAP,
  TRAP_BRKPT,
} from "../../lib/linux/signals.ts";
import type { AccessKind, FaultCause } from "./cpu/access.ts";
import type { ProgramReason } from "./cpu/interpreter.ts";

/** Errors a system call returns only to be restarted or turned into EINTR (linux/errno.h). */
export const ERESTARTSYS = 512;
export const ERESTARTNOINTR = 513;
export const ERESTARTNOHAND = 514;
export const ERESTART_RESTARTBLOCK = 516;

// FPSCR exception and enable bits (bits 32:63).
const FPSCR_VX = 0x20000000;
const FPSCR_OX = 0x10000000;
const FPSCR_UX = 0x08000000;
const FPSCR_ZX = 0x04000000;
const FPSCR_XX = 0x02000000;
const FPSCR_VE = 0x80;
const FPSCR_OE = 0x40;
const FPSCR_UE = 0x20;
const FPSCR_ZE = 0x10;
const FPSCR_XE = 0x08;

// DSISR bits of a data storage interrupt.
const DSISR_NOHPTE = 0x40000000;
const DSISR_PROTFAULT = 0x08000000;
const DSISR_ISSTORE = 0x02000000;

export interface RaisedSignal {
  signal: number;
  code: number;
}

/** parse_fpe: the si_code of an enabled floating-point exception, from the FPSCR. */
export function floatingPointCode(fpscr: number): number {
  if ((fpscr & FPSCR_VE) && (fpscr & FPSCR_VX)) return FPE_FLTINV;
  if ((fpscr & FPSCR_OE) && (fpscr & FPSCR_OX)) return FPE_FLTOVF;
  if ((fpscr & FPSCR_UE) && (fpscr & FPSCR_UX)) return FPE_FLTUND;
  if ((fpscr & FPSCR_ZE) && (fpscr & FPSCR_ZX)) return FPE_FLTDIV;
  if ((fpscr & FPSCR_XE) && (fpscr & FPSCR_XX)) return FPE_FLTRES;
  return FPE_FLTUNK;
}

/** The signal a program interrupt raises; si_addr is the instruction's address. */
export function programSignal(reason: ProgramReason, fpscr: number): RaisedSignal {
  switch (reason) {
    case "illegal-instruction":
      return { signal: SIGILL, code: ILL_ILLOPC };
    case "privileged-instruction":
      return { signal: SIGILL, code: ILL_PRVOPC };
    case "trap":
      return { signal: SIGTRAP, code: TRAP_BRKPT };
    case "floating-point":
      return { signal: SIGFPE, code: floatingPointCode(fpscr) };
  }
}

/** The DSISR a data storage interrupt records (0 for instruction fetches and segment misses). */
export function storageDsisr(access: AccessKind, cause: FaultCause): number {
  if (access === "execute" || cause === "no-segment") return 0;
  const store = access === "write" ? DSISR_ISSTORE : 0;
  return (cause === "protection" ? DSISR_PROTFAULT : DSISR_NOHPTE) | store;
}

/** mfspr rT, PVR: privileged on POWER, emulated by Linux for user programs (and by qemu-user). */
const MFPVR = (31 << 26) | ((287 & 31) << 16) | ((287 >> 5) << 11) | (339 << 1);
const RT_FIELD = 31 << 21;

/** The target register of an mfpvr instruction word, or −1 when the word is something else. */
export function mfpvrTarget(word: number): number {
  return (word & ~RT_FIELD) === MFPVR ? (word >>> 21) & 31 : -1;
}
