// The threads the machine runs: one context per TID (its process, registers, address space, the
// CPU it is on) and the address spaces they live in. sched names threads by TID and creates their
// contexts; vmm names address spaces by space_id. Each space the machine has met gets an MMU
// context of its own, whose SLB holds the space's segments: every thread of the space shares it,
// as threads of a process share their segments on Linux. A space's context is dropped with the
// last thread that runs in it.
import { alreadyExists, Errno, notFound } from "../../lib/errors.ts";
import type { TrappedThread } from "./kernel_side.ts";
import type { PhysicalMemory } from "./memory.ts";
import type { AddressTranslator, Mmu } from "./mmu.ts";
import { RegisterFile } from "./registers.ts";
import { SpaceMemory } from "./user_memory.ts";

/** Interrupt vectors, as a signal frame's `trap` records how the thread entered the kernel. */
export const TRAP_DATA_STORAGE = 0x300;
export const TRAP_DATA_SEGMENT = 0x380;
export const TRAP_INSTRUCTION_STORAGE = 0x400;
export const TRAP_INSTRUCTION_SEGMENT = 0x480;
export const TRAP_ALIGNMENT = 0x600;
export const TRAP_PROGRAM = 0x700;
export const TRAP_DECREMENTER = 0x900;
export const TRAP_SYSTEM_CALL = 0xc00;
export const TRAP_FACILITY_UNAVAILABLE = 0xf60;

/** How a thread last entered the kernel: what its signal frame records and syscall restart needs. */
export interface KernelEntry {
  trap: number;
  /** The faulting address and DSISR of a storage interrupt. */
  dar: bigint;
  dsisr: number;
  /** r3 as the system call received it: a restarted call gets it back. */
  origR3: bigint;
  /** The system call's result as the kernel produced it (negative errno on failure). */
  result: bigint;
  /** A system call whose ERESTART* error may still restart it (Linux: trap is 0xc00, not norestart). */
  restartable: boolean;
}

export class ThreadContext implements TrappedThread {
  /** The registers while the thread is off a CPU (on one, the Cpu holds them). */
  readonly registers = new RegisterFile();
  /** The CPU it is on, or −1. */
  cpu = -1;
  /** A blocked system call's completion, until its outcome is applied to the context. */
  pending: Promise<void> | undefined;
  /** Signals may be deliverable: ask the kernel side before the thread runs user code again. */
  signalCheck = false;
  readonly entry: KernelEntry = {
    trap: 0,
    dar: 0n,
    dsisr: 0,
    origR3: 0n,
    result: 0n,
    restartable: false,
  };

  constructor(readonly pid: number, readonly tid: number, public spaceId: bigint) {}
}

/** An address space as the machine translates it. */
export interface SpaceBinding {
  readonly spaceId: bigint;
  /** The MMU context holding its SLB. */
  readonly context: number;
  readonly translator: AddressTranslator;
  /** Its memory as the kernel side copies to and from it. */
  readonly memory: SpaceMemory;
}

/** Told when a space's MMU context is dropped, so that CPUs bound to it let go. */
export type SpaceReleased = (binding: SpaceBinding) => void;

export class AddressSpaces {
  private readonly bindings = new Map<bigint, SpaceBinding>();
  private nextContext = 1;

  constructor(
    private readonly mmu: Mmu,
    private readonly physical: PhysicalMemory,
    private readonly released: SpaceReleased,
  ) {}

  /** The binding of a space, made on first use. */
  bind(spaceId: bigint): SpaceBinding {
    let binding = this.bindings.get(spaceId);
    if (!binding) {
      const context = this.nextContext++;
      binding = {
        spaceId,
        context,
        translator: this.mmu.translator(context),
        memory: new SpaceMemory(this.mmu, context, this.physical),
      };
      this.bindings.set(spaceId, binding);
    }
    return binding;
  }

  /** The binding of a space the machine already knows, if any. */
  find(spaceId: bigint): SpaceBinding | undefined {
    return this.bindings.get(spaceId);
  }

  /** Every known space: a TLB invalidation looks for the ones that map a VSID. */
  all(): IterableIterator<SpaceBinding> {
    return this.bindings.values();
  }

  /** Drops a space's context: its SLB and cached translations. */
  release(spaceId: bigint): void {
    const binding = this.bindings.get(spaceId);
    if (!binding) return;
    this.bindings.delete(spaceId);
    this.released(binding);
    this.mmu.removeContext(binding.context);
  }
}

export class ThreadTable {
  private readonly threads = new Map<number, ThreadContext>();
  /** Threads per space, to drop a space with its last thread. */
  private readonly threadsPerSpace = new Map<bigint, number>();

  constructor(readonly spaces: AddressSpaces) {}

  get size(): number {
    return this.threads.size;
  }

  get(tid: number): ThreadContext | undefined {
    return this.threads.get(tid);
  }

  /** The context of `tid`, or NOT_FOUND (ESRCH) naming `argument`. */
  require(tid: number, argument = "tid"): ThreadContext {
    const thread = this.threads.get(tid);
    if (!thread) throw notFound(argument, `no thread context for TID ${tid}`, Errno.ESRCH);
    return thread;
  }

  /** Whether `thread` is still the live context of its TID (not discarded meanwhile). */
  holds(thread: ThreadContext): boolean {
    return this.threads.get(thread.tid) === thread;
  }

  add(thread: ThreadContext): void {
    if (this.threads.has(thread.tid)) {
      throw alreadyExists("context.tid", `TID ${thread.tid} already has a thread context`);
    }
    this.threads.set(thread.tid, thread);
    this.retain(thread.spaceId);
  }

  remove(thread: ThreadContext): void {
    if (!this.holds(thread)) return;
    this.threads.delete(thread.tid);
    this.releaseSpace(thread.spaceId);
  }

  /** Moves a thread to another address space (execve). */
  changeSpace(thread: ThreadContext, spaceId: bigint): void {
    if (thread.spaceId === spaceId) return;
    const previous = thread.spaceId;
    thread.spaceId = spaceId;
    if (!this.holds(thread)) return;
    this.retain(spaceId);
    this.releaseSpace(previous);
  }

  /** How many threads run in a space. */
  threadsIn(spaceId: bigint): number {
    return this.threadsPerSpace.get(spaceId) ?? 0;
  }

  ofProcess(pid: number): ThreadContext[] {
    return [...this.threads.values()].filter((t) => t.pid === pid);
  }

  private retain(spaceId: bigint): void {
    this.threadsPerSpace.set(spaceId, (this.threadsPerSpace.get(spaceId) ?? 0) + 1);
  }

  private releaseSpace(spaceId: bigint): void {
    const left = (this.threadsPerSpace.get(spaceId) ?? 1) - 1;
    if (left > 0) {
      this.threadsPerSpace.set(spaceId, left);
      return;
    }
    this.threadsPerSpace.delete(spaceId);
    this.spaces.release(spaceId);
  }
}
