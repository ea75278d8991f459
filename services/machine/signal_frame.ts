// The Linux ppc64 (64-bit, ELFv2) real-time signal frame, laid out exactly as
// arch/powerpc/kernel/signal_64.c builds it on the user stack (with CONFIG_PPC_TRANSACTIONAL_MEM,
// as distribution kernels are built, so a second ucontext follows the first):
//
//   struct rt_sigframe {                      offset
//     struct ucontext uc;                          0   (1696 bytes)
//     struct ucontext uc_transact;              1696   (TM state; not written without TM)
//     unsigned long _unused[2];                 3392
//     unsigned int tramp[7];                    3408   bctrl; addi r1,r1,128; li r0,172; sc; 0...
//     struct siginfo *pinfo;                    3440
//     void *puc;                                3448
//     struct siginfo info;                      3456   (128 bytes)
//     char abigap[512];                         3584   (the ELFv2 red zone: never written)
//   };                                          4096, 16-byte aligned
//
//   struct ucontext { uc_flags 0; uc_link 8; stack_t uc_stack 16 (ss_sp, ss_flags, ss_size);
//                     sigset_t uc_sigmask 40; sigset_t __unused[15]; struct sigcontext 168 }
//   struct sigcontext { _unused[4]; int signal 32; handler 40; oldmask 48; regs 56;
//                       gp_regs[48] 64; fp_regs[33] 448; v_regs 712; vmx_reserve[101] 720 }
//
// v_regs points at the first 16-byte boundary in vmx_reserve: VR0..31, VSCR (its word first, as
// stvx stores it in little-endian mode), VRSAVE (first word of the next quadword), then the low
// doublewords of VS0..31. Below the frame, a dummy caller frame of __SIGNAL_FRAMESIZE (128) bytes
// whose back chain holds the interrupted r1. Building and reading a frame is pure: the machine
// moves the bytes.
import { SA_ONSTACK, SA_SIGINFO, SIGINFO_SIZE, SS_DISABLE } from "../../lib/linux/signals.ts";
import { SYSCALLS } from "../../lib/linux/syscall_numbers.ts";
import type { SignalDelivery } from "./kernel_side.ts";
import { type RegisterFile, VSCR_BITS, VSR_BYTES } from "./registers.ts";
import type { KernelEntry } from "./threads.ts";

/** __SIGNAL_FRAMESIZE: the dummy caller frame below the signal frame. */
export const SIGNAL_FRAMESIZE = 128n;
export const RT_SIGFRAME_BYTES = 4096n;
/** The part of the frame written: everything below the red-zone gap. */
const FRAME_WRITTEN_BYTES = 3584;
export const UCONTEXT_BYTES = 1696;
/** v_regs: 34 quadwords of VMX state. */
export const VMX_AREA_BYTES = 34 * 16;
/** Then the low doublewords of VS0..31. */
export const VSX_AREA_BYTES = 32 * 8;

const UC_STACK = 16;
const UC_SIGMASK = 40;
const UC_MCONTEXT = 168;
const SC_SIGNAL = 32;
const SC_HANDLER = 40;
const SC_REGS = 56;
const SC_GP_REGS = 64;
const SC_FP_REGS = 448;
const SC_V_REGS = 712;
const SC_VMX_RESERVE = 720;
const FRAME_TRAMP = 3408;
const FRAME_PINFO = 3440;
const FRAME_PUC = 3448;
const FRAME_INFO = 3456;

// gp_regs indices (PT_* of asm/ptrace.h); 44 is the kernel's pt_regs.ppr.
const PT_NIP = 32;
const PT_MSR = 33;
const PT_ORIG_R3 = 34;
const PT_CTR = 35;
const PT_LNK = 36;
const PT_XER = 37;
const PT_CCR = 38;
const PT_SOFTE = 39;
const PT_TRAP = 40;
const PT_DAR = 41;
const PT_DSISR = 42;
const PT_RESULT = 43;
const PT_PPR = 44;

/** The trampoline: the vDSO's, returning through rt_sigreturn. */
const TRAMPOLINE = [
  0x4e800421, // bctrl: calls the handler, LR = the next instruction
  0x38210080, // addi r1, r1, __SIGNAL_FRAMESIZE: pops the dummy caller frame
  0x38000000 | SYSCALLS.rt_sigreturn, // li r0, __NR_rt_sigreturn
  0x44000002, // sc
];
/** Where the handler returns to: the trampoline's instruction after its bctrl. */
const RETURN_OFFSET = 4;
/** The trampoline's return path: addi, li, sc. */
export const TRAMPOLINE_RETURN_BYTES = 4 * (TRAMPOLINE.length - 1);

/** Whether `words` (TRAMPOLINE_RETURN_BYTES of code) are a trampoline's return path. */
export function isTrampolineReturn(words: Uint8Array): boolean {
  const view = new DataView(words.buffer, words.byteOffset, words.byteLength);
  return TRAMPOLINE.slice(1).every((word, i) => view.getUint32(4 * i, true) === word);
}

/** MSR bits (asm/reg.h). */
export const MSR_SF = 1n << 63n;
export const MSR_VEC = 1n << 25n;
export const MSR_VSX = 1n << 23n;
export const MSR_FE0 = 1n << 11n;
export const MSR_FE1 = 1n << 8n;
/** The transaction state field: a frame claiming a transaction cannot be returned to without TM. */
export const MSR_TS_MASK = 3n << 33n;
/** A problem-state thread's MSR on Linux: SF EE PR FP ME IR DR RI LE, with VEC and VSX on. */
export const USER_MSR = 0x800000000280f033n;

/** The MSR of a thread with these registers. */
export function threadMsr(registers: RegisterFile): bigint {
  return registers.floatingPointExceptions ? USER_MSR | MSR_FE0 | MSR_FE1 : USER_MSR;
}

/** A signal frame ready to be written, and the handler's stack. */
export interface SignalFrame {
  /** The frame's address (16-byte aligned). */
  address: bigint;
  /** Its bytes below the red-zone gap, to write at `address`. */
  bytes: Uint8Array;
  /** The handler's r1: the dummy caller frame, whose first doubleword is `backChain`. */
  stackPointer: bigint;
  backChain: Uint8Array;
}

/**
 * The frame for delivering `delivery` to a thread with `registers`, which entered the kernel as
 * `entry` says. The frame goes below r1, or at the top of the alternate signal stack for an
 * SA_ONSTACK handler when the thread is not already on it.
 */
export function buildSignalFrame(
  registers: RegisterFile,
  delivery: SignalDelivery,
  entry: KernelEntry,
): SignalFrame {
  const sp = registers.gprValue(1);
  const { alternateStack, alternateStackSize } = delivery;
  const onAlternateStack = alternateStackSize !== 0n && sp > alternateStack &&
    sp - alternateStack <= alternateStackSize;
  let top = sp;
  if ((delivery.flags & SA_ONSTACK) !== 0n && alternateStackSize !== 0n && !onAlternateStack) {
    top = alternateStack + alternateStackSize;
  }
  const address = BigInt.asUintN(64, top - RT_SIGFRAME_BYTES) & ~0xfn;
  const bytes = new Uint8Array(FRAME_WRITTEN_BYTES);
  const view = new DataView(bytes.buffer);
  const u64 = (at: number, value: bigint) => view.setBigUint64(at, BigInt.asUintN(64, value), true);

  // The ucontext.
  u64(UC_STACK, alternateStack);
  view.setInt32(UC_STACK + 8, alternateStackSize === 0n ? SS_DISABLE : 0, true);
  u64(UC_STACK + 16, alternateStackSize);
  u64(UC_SIGMASK, delivery.savedMask);
  const sc = UC_MCONTEXT;
  view.setInt32(sc + SC_SIGNAL, delivery.signal, true);
  u64(sc + SC_HANDLER, delivery.handler);
  u64(sc + SC_REGS, address + BigInt(sc + SC_GP_REGS));

  const gp = sc + SC_GP_REGS;
  for (let n = 0; n < 32; n++) u64(gp + 8 * n, registers.gprValue(n));
  u64(gp + 8 * PT_NIP, registers.pc);
  u64(gp + 8 * PT_MSR, threadMsr(registers) | MSR_VEC | MSR_VSX);
  u64(gp + 8 * PT_ORIG_R3, entry.origR3);
  u64(gp + 8 * PT_CTR, registers.ctr);
  u64(gp + 8 * PT_LNK, registers.lr);
  u64(gp + 8 * PT_XER, BigInt(registers.xer >>> 0));
  u64(gp + 8 * PT_CCR, BigInt(registers.cr >>> 0));
  u64(gp + 8 * PT_SOFTE, 1n);
  u64(gp + 8 * PT_TRAP, BigInt(entry.trap));
  u64(gp + 8 * PT_DAR, entry.dar);
  u64(gp + 8 * PT_DSISR, BigInt(entry.dsisr >>> 0));
  u64(gp + 8 * PT_RESULT, entry.result);
  u64(gp + 8 * PT_PPR, registers.ppr);

  const fp = sc + SC_FP_REGS;
  for (let n = 0; n < 32; n++) u64(fp + 8 * n, registers.vsrDoubleword(n, 0));
  u64(fp + 8 * 32, registers.fpscr64);

  const vRegs = vectorAreaOffset();
  u64(sc + SC_V_REGS, address + BigInt(vRegs));
  bytes.set(registers.vsr.subarray(32 * VSR_BYTES, 64 * VSR_BYTES), vRegs);
  view.setUint32(vRegs + 32 * 16, registers.vscr >>> 0, true);
  view.setUint32(vRegs + 33 * 16, registers.vrsave >>> 0, true);
  for (let n = 0; n < 32; n++) u64(vRegs + VMX_AREA_BYTES + 8 * n, registers.vsrDoubleword(n, 1));

  TRAMPOLINE.forEach((word, i) => view.setUint32(FRAME_TRAMP + 4 * i, word, true));
  u64(FRAME_PINFO, address + BigInt(FRAME_INFO));
  u64(FRAME_PUC, address);
  bytes.set(delivery.siginfo.subarray(0, SIGINFO_SIZE), FRAME_INFO);

  const stackPointer = BigInt.asUintN(64, address - SIGNAL_FRAMESIZE);
  const backChain = new Uint8Array(8);
  new DataView(backChain.buffer).setBigUint64(0, sp, true);
  return { address, bytes, stackPointer, backChain };
}

/** The offset of v_regs in the frame: the first quadword boundary in vmx_reserve. */
function vectorAreaOffset(): number {
  return (UC_MCONTEXT + SC_VMX_RESERVE + 15) & ~15;
}

/**
 * Enters the handler once its frame is written: r1 on the dummy frame, r3 the signal, r4/r5/r6
 * siginfo, ucontext and frame (SA_SIGINFO) or r4 the sigcontext, r12 and CTR the handler (ELFv2
 * global entry), LR the trampoline's return path, FPSCR clear so that the handler starts without
 * spurious exceptions.
 */
export function enterSignalHandler(
  registers: RegisterFile,
  frame: SignalFrame,
  delivery: SignalDelivery,
  entry: KernelEntry,
): void {
  registers.fpscr64 = 0n;
  registers.pc = delivery.handler;
  registers.ctr = delivery.handler;
  registers.setGpr(12, delivery.handler);
  registers.lr = frame.address + BigInt(FRAME_TRAMP + RETURN_OFFSET);
  registers.setGpr(1, frame.stackPointer);
  registers.setGpr(3, BigInt(delivery.signal));
  if ((delivery.flags & SA_SIGINFO) !== 0n) {
    registers.setGpr(4, frame.address + BigInt(FRAME_INFO));
    registers.setGpr(5, frame.address);
    registers.setGpr(6, frame.address);
  } else {
    registers.setGpr(4, frame.address + BigInt(UC_MCONTEXT));
  }
  entry.result = 0n;
}

/** What rt_sigreturn learns from the ucontext before it restores registers. */
export interface SavedContext {
  /** The blocked mask to restore. */
  mask: bigint;
  /** The saved MSR: VEC and VSX say which vector state the frame holds. */
  msr: bigint;
  /** v_regs: where the vector registers were saved, or 0. */
  vectorArea: bigint;
}

/** The mask, MSR and v_regs of a ucontext (UCONTEXT_BYTES bytes at r1). */
export function readSavedContext(uc: Uint8Array): SavedContext {
  const view = new DataView(uc.buffer, uc.byteOffset, uc.byteLength);
  return {
    mask: view.getBigUint64(UC_SIGMASK, true),
    msr: view.getBigUint64(UC_MCONTEXT + SC_GP_REGS + 8 * PT_MSR, true),
    vectorArea: view.getBigUint64(UC_MCONTEXT + SC_V_REGS, true),
  };
}

/** Where rt_sigreturn reads VSX state: after the VMX area (at 0 + its size when v_regs is NULL). */
export function vsxAreaAddress(saved: SavedContext): bigint {
  return BigInt.asUintN(64, saved.vectorArea + BigInt(VMX_AREA_BYTES));
}

/**
 * restore_sigcontext: the registers a ucontext saved, into `target`. `vmx` is the VMX_AREA_BYTES
 * at v_regs (null when v_regs is NULL), `vsx` the VSX_AREA_BYTES after it (null unless the saved
 * MSR has VSX). Vector state the frame does not hold is zeroed, as Linux does for a thread that
 * has used it. The floating-point exception mode is the thread's own, not the frame's.
 */
export function restoreSavedContext(
  uc: Uint8Array,
  saved: SavedContext,
  vmx: Uint8Array | null,
  vsx: Uint8Array | null,
  target: RegisterFile,
  entry: KernelEntry,
): void {
  const view = new DataView(uc.buffer, uc.byteOffset, uc.byteLength);
  const gp = UC_MCONTEXT + SC_GP_REGS;
  const reg = (index: number) => view.getBigUint64(gp + 8 * index, true);
  for (let n = 0; n < 32; n++) target.setGpr(n, reg(n));
  target.pc = reg(PT_NIP);
  entry.origR3 = reg(PT_ORIG_R3);
  target.ctr = reg(PT_CTR);
  target.lr = reg(PT_LNK);
  target.xer = Number(reg(PT_XER) & 0xffffffffn) | 0;
  target.cr = Number(reg(PT_CCR) & 0xffffffffn) | 0;
  entry.dar = reg(PT_DAR);
  entry.dsisr = Number(reg(PT_DSISR) & 0xffffffffn) | 0;
  entry.result = reg(PT_RESULT);
  entry.restartable = false;

  const vectors = target.vsr.subarray(32 * VSR_BYTES, 64 * VSR_BYTES);
  if (vmx !== null && (saved.msr & MSR_VEC) !== 0n) {
    const vmxView = new DataView(vmx.buffer, vmx.byteOffset, vmx.byteLength);
    vectors.set(vmx.subarray(0, 32 * 16));
    target.vscr = vmxView.getUint32(32 * 16, true) & VSCR_BITS;
  } else {
    vectors.fill(0);
    target.vscr = 0;
  }
  target.vrsave = vmx === null ? 0 : new DataView(vmx.buffer, vmx.byteOffset).getUint32(33 * 16, true) | 0;

  const fp = UC_MCONTEXT + SC_FP_REGS;
  for (let n = 0; n < 32; n++) target.setVsrDoubleword(n, 0, view.getBigUint64(fp + 8 * n, true));
  target.fpscr64 = view.getBigUint64(fp + 8 * 32, true);
  const vsxView = vsx === null ? null : new DataView(vsx.buffer, vsx.byteOffset, vsx.byteLength);
  for (let n = 0; n < 32; n++) {
    target.setVsrDoubleword(n, 1, vsxView === null ? 0n : vsxView.getBigUint64(8 * n, true));
  }
}
