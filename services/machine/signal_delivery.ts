// Signal delivery to the thread on a core, as Linux does it on the way back to user mode
// (arch/powerpc/kernel/signal.c, signal_64.c): sched names the next signal; a handler gets its
// frame written on the thread's stack and is entered, and a system call the signal interrupted
// restarts or fails with EINTR. rt_sigreturn, or a handler's return into the frame's trampoline
// on a stack that is not executable, restores the registers and mask the frame saved.
import { Errno } from "../../lib/errors.ts";
import { SA_RESTART, SI_KERNEL, SIGSEGV } from "../../lib/linux/signals.ts";
import { SYSCALLS } from "../../lib/linux/syscall_numbers.ts";
import type { Cpu } from "./cpu/interpreter.ts";
import { ERESTART_RESTARTBLOCK, ERESTARTNOHAND, ERESTARTNOINTR, ERESTARTSYS } from "./cpu_signals.ts";
import { type Answer, FAILED, GONE } from "./kernel_answer.ts";
import type { KernelSide, SignalDelivery, SignalOutcome } from "./kernel_side.ts";
import { CR0_SO, loadCpu, readGpr, type RegisterFile, saveCpu, writeGpr } from "./registers.ts";
import {
  buildSignalFrame,
  enterSignalHandler,
  isTrampolineReturn,
  MSR_TS_MASK,
  MSR_VSX,
  readSavedContext,
  restoreSavedContext,
  SIGNAL_FRAMESIZE,
  TRAMPOLINE_RETURN_BYTES,
  UCONTEXT_BYTES,
  VMX_AREA_BYTES,
  VSX_AREA_BYTES,
  vsxAreaAddress,
} from "./signal_frame.ts";
import { type SpaceBinding, type ThreadContext, TRAP_SYSTEM_CALL } from "./threads.ts";

/** Signal deliveries in a row before the loop lets the event loop in. */
const DELIVERIES_PER_YIELD = 64;

/** What signal delivery needs from the core its thread is on. */
export interface SignalCore {
  readonly cpu: Cpu;
  /** Registers to build and restore frames in. */
  readonly scratch: RegisterFile;
  readonly host: { discardProcess(pid: number): void; stopProcess(pid: number): void };
  ask<T>(
    thread: ThreadContext,
    what: string,
    question: (kernel: KernelSide) => Promise<T>,
  ): Promise<Answer<T>>;
  /** Copies from and to the thread's memory, faulting pages in: "fault" when they cannot be. */
  copyIn(thread: ThreadContext, address: bigint, length: number): Promise<Answer<Uint8Array | "fault">>;
  copyOut(thread: ThreadContext, address: bigint, data: Uint8Array): Promise<Answer<"ok" | "fault">>;
  /** Lets the event loop in; false when the thread left the CPU meanwhile. */
  yieldHere(): Promise<boolean>;
}

/**
 * Whether delivery goes on with an answer. When the kernel side failed, the signals are checked
 * again before the thread next runs.
 */
function answered<T>(thread: ThreadContext, answer: Answer<T>): answer is T {
  if (answer === FAILED) thread.signalCheck = true;
  return answer !== GONE && answer !== FAILED;
}

export class CoreSignals {
  constructor(private readonly core: SignalCore) {}

  /** A synchronous signal the CPU raised: sent forced, then delivered. */
  async raiseFault(
    thread: ThreadContext,
    signal: number,
    code: number,
    address: bigint,
    trap: number,
  ): Promise<void> {
    thread.entry.trap = trap;
    thread.entry.restartable = false;
    const sent = await this.core.ask(
      thread,
      "raise signal",
      (k) => k.raiseSignal(thread, signal, code, address),
    );
    if (sent === GONE || sent === FAILED) return;
    await this.deliver(thread);
  }

  /** Linux's signal delivery on the way back to user mode: until no signal is deliverable. */
  async deliver(thread: ThreadContext): Promise<void> {
    for (let delivered = 1;; delivered++) {
      const outcome = await this.core.ask(thread, "signal delivery", (k) => k.handleSignal(thread));
      if (!answered(thread, outcome)) return;
      this.restartSystemCall(thread, outcome);
      switch (outcome.kind) {
        case "none":
          return;
        case "terminate":
          return this.core.host.discardProcess(thread.pid);
        case "stop":
          return this.core.host.stopProcess(thread.pid);
        case "handler": {
          const entered = await this.enterHandler(thread, outcome.delivery);
          if (!answered(thread, entered)) return;
          if (entered === "fault") {
            const raised = await this.frameFailed(thread, outcome.delivery);
            if (!answered(thread, raised)) return;
            continue;
          }
          if (!outcome.morePending) return;
          if (delivered % DELIVERIES_PER_YIELD === 0 && !(await this.core.yieldHere())) return;
        }
      }
    }
  }

  /**
   * check_syscall_restart: a system call that failed with ERESTART* is restarted (pc back on the
   * sc, r3 as it came) or fails with EINTR, depending on the handler about to run.
   */
  private restartSystemCall(thread: ThreadContext, outcome: SignalOutcome): void {
    const entry = thread.entry;
    if (!entry.restartable) return;
    entry.restartable = false;
    const cpu = this.core.cpu;
    if ((cpu.cr & CR0_SO) === 0 || cpu.gpr[7] !== 0) return;
    const errno = cpu.gpr[6];
    const handler = outcome.kind === "handler" ? outcome.delivery : undefined;
    let restart: boolean;
    switch (errno) {
      case ERESTART_RESTARTBLOCK:
      case ERESTARTNOHAND:
        restart = handler === undefined;
        break;
      case ERESTARTSYS:
        restart = handler === undefined || (handler.flags & SA_RESTART) !== 0n;
        break;
      case ERESTARTNOINTR:
        restart = true;
        break;
      default:
        return;
    }
    if (!restart) {
      writeGpr(cpu.gpr, 3, BigInt(Errno.EINTR));
      return;
    }
    if (errno === ERESTART_RESTARTBLOCK) writeGpr(cpu.gpr, 0, BigInt(SYSCALLS.restart_syscall));
    else writeGpr(cpu.gpr, 3, entry.origR3);
    cpu.setPc64(cpu.pc64 - 4n);
  }

  /** Builds the signal frame on the thread's stack and enters the handler. */
  private async enterHandler(
    thread: ThreadContext,
    delivery: SignalDelivery,
  ): Promise<Answer<"entered" | "fault">> {
    const { cpu, scratch: registers } = this.core;
    saveCpu(cpu, registers);
    const frame = buildSignalFrame(registers, delivery, thread.entry);
    const written = await this.core.copyOut(thread, frame.address, frame.bytes);
    if (written !== "ok") return written;
    const chained = await this.core.copyOut(thread, frame.stackPointer, frame.backChain);
    if (chained !== "ok") return chained;
    saveCpu(cpu, registers);
    enterSignalHandler(registers, frame, delivery, thread.entry);
    loadCpu(registers, cpu);
    return "entered";
  }

  /**
   * A frame that could not be written: force_sigsegv. A SIGSEGV handler that cannot be entered
   * must not be tried again: SIGSEGV blocked and forced reverts to its default action.
   */
  private async frameFailed(thread: ThreadContext, delivery: SignalDelivery): Promise<Answer<void>> {
    if (delivery.signal === SIGSEGV) {
      const masked = await this.core.ask(
        thread,
        "signal mask",
        (k) => k.setSignalMask(thread, delivery.savedMask | (1n << BigInt(SIGSEGV - 1))),
      );
      if (masked === GONE || masked === FAILED) return masked;
    }
    return this.core.ask(thread, "raise signal", (k) => k.raiseSignal(thread, SIGSEGV, SI_KERNEL, 0n));
  }

  /** Whether the instructions at `address` are a signal frame trampoline's return path. */
  atTrampoline(binding: SpaceBinding, address: bigint): boolean {
    const words = binding.memory.read(address, TRAMPOLINE_RETURN_BYTES);
    return words instanceof Uint8Array && isTrampolineReturn(words);
  }

  /**
   * The handler returned into its frame's trampoline on a stack that is not executable: do what
   * the trampoline (or the vDSO's, on Linux) does — pop the dummy frame and rt_sigreturn.
   */
  returnThroughTrampoline(thread: ThreadContext, address: bigint): Promise<void> {
    const cpu = this.core.cpu;
    const sp = readGpr(cpu.gpr, 1);
    writeGpr(cpu.gpr, 1, sp + SIGNAL_FRAMESIZE);
    writeGpr(cpu.gpr, 0, BigInt(SYSCALLS.rt_sigreturn));
    cpu.setPc64(address + BigInt(TRAMPOLINE_RETURN_BYTES));
    thread.entry.trap = TRAP_SYSTEM_CALL;
    return this.rtSigreturn(thread, () => {
      writeGpr(cpu.gpr, 1, sp);
      cpu.setPc64(address);
    });
  }

  /**
   * rt_sigreturn: the registers and blocked mask of the ucontext at r1. A bad frame: SIGSEGV.
   * `retry` puts the thread back where it returns from again when the kernel side failed.
   */
  async rtSigreturn(thread: ThreadContext, retry: () => void): Promise<void> {
    const cpu = this.core.cpu;
    thread.entry.restartable = false;
    /** Part of the frame, or undefined when rt_sigreturn ends here. */
    const read = async (address: bigint, length: number): Promise<Uint8Array | undefined> => {
      const bytes = await this.core.copyIn(thread, address, length);
      if (bytes === FAILED) retry();
      else if (bytes === "fault") await this.badFrame(thread);
      else if (bytes !== GONE) return bytes;
      return undefined;
    };
    const uc = await read(readGpr(cpu.gpr, 1), UCONTEXT_BYTES);
    if (uc === undefined) return;
    const saved = readSavedContext(uc);
    const masked = await this.core.ask(thread, "signal mask", (k) => k.setSignalMask(thread, saved.mask));
    if (masked === GONE) return;
    if (masked === FAILED) return retry();
    // A transaction in the frame: there is no TM to return into.
    if ((saved.msr & MSR_TS_MASK) !== 0n) return this.badFrame(thread);
    const vmx = saved.vectorArea === 0n ? null : await read(saved.vectorArea, VMX_AREA_BYTES);
    if (vmx === undefined) return;
    const vsx = (saved.msr & MSR_VSX) === 0n ? null : await read(vsxAreaAddress(saved), VSX_AREA_BYTES);
    if (vsx === undefined) return;
    const registers = this.core.scratch;
    saveCpu(cpu, registers);
    restoreSavedContext(uc, saved, vmx, vsx, registers, thread.entry);
    loadCpu(registers, cpu);
    // The restored mask may unblock a pending signal.
    await this.deliver(thread);
  }

  private badFrame(thread: ThreadContext): Promise<void> {
    return this.raiseFault(thread, SIGSEGV, SI_KERNEL, 0n, TRAP_SYSTEM_CALL);
  }
}
