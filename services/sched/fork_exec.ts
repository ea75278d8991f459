// Processes and threads that start, and programs that replace one: fork and clone (a copy-on-write
// child, or a thread sharing the address space), execve, and CreateProcess (fork and exec in one
// step). A failure before the new process or program is committed undoes what the peers were
// asked to do.
import { DescriptorInheritance } from "../../gen/astra/storage/v1/vfs_pb.ts";
import { AccessType, FaultCause } from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { AstraError, Code, Errno, failedPrecondition } from "../../lib/errors.ts";
import { SS_DISABLE } from "../../lib/linux/signals.ts";
import { type CpuDescription, entryRegisters, type LoadedProgram, loadProgram, PAGE_SIZE } from "./exec.ts";
import type { Counters, SchedPeers } from "./kernel.ts";
import { describe, log } from "./log.ts";
import {
  commandName,
  type Credentials,
  KERNEL_PID,
  type Process,
  type ProcessTable,
  programBaseName,
  type Thread,
} from "./processes.ts";
import { RLIMIT_STACK } from "./rlimits.ts";
import { PRIORITY_NORMAL, type Scheduler, type SchedulingParameters } from "./runqueue.ts";
import type { Sleeper } from "./sleepers.ts";
import type { RandomFill } from "./stack.ts";

export interface CreateProcessRequest {
  parentPid: number;
  programPath: Uint8Array;
  argv: Uint8Array[];
  envp: Uint8Array[];
  name: string;
  credentials: Credentials | null;
  /** A kernel child's umask (others inherit their parent's); unset: storage's default, 022. */
  umask?: number;
}

export interface CloneRequest {
  pid: number;
  tid: number;
  /** Share the address space: a new thread of the process (CLONE_VM with CLONE_THREAD). */
  thread: boolean;
  /** The child's stack pointer (0: the caller's) and thread pointer (r13) with CLONE_SETTLS. */
  stack: bigint;
  tls: bigint | null;
  /** CLONE_CHILD_SETTID: where the child's memory gets its TID; CLONE_CHILD_CLEARTID's address. */
  childSetTid: bigint;
  childClearTid: bigint;
}

/** What starting processes and programs needs from the rest of the sched kernel. */
export interface ForkExecHost {
  readonly peers: SchedPeers;
  readonly table: ProcessTable;
  readonly scheduler: Scheduler;
  readonly counters: Counters;
  readonly random: RandomFill;
  /** The CPU's features, for the loader. */
  cpu(): CpuDescription;
  now(): number;
  makeRunnable(thread: Thread): void;
  /** A thread ends; returns the sleep it was in (which ends with `waitStatus`). */
  retireThread(thread: Thread, waitStatus: number): Sleeper | undefined;
  releaseAddressSpace(process: Process): Promise<void>;
}

const encoder = new TextEncoder();

export class ForkExec {
  constructor(private readonly kernel: ForkExecHost) {}

  /** fork + exec in one step: a new process running a program (PID 1 at boot, `astra run`). */
  async createProcess(request: CreateProcessRequest): Promise<{ pid: number; tid: number }> {
    const process = this.kernel.table.create({
      parentPid: request.parentPid,
      credentials: request.credentials ?? undefined,
      name: request.name || programBaseName(new TextDecoder().decode(request.programPath)),
      startNanos: this.kernel.now(),
    });
    const thread = process.threads.get(process.pid)!;
    let loaded: LoadedProgram | null = null;
    try {
      await this.kernel.peers.vfs.attachProcess(
        request.parentPid === KERNEL_PID
          ? {
            pid: process.pid,
            parentPid: KERNEL_PID,
            inheritance: DescriptorInheritance.NONE,
            workingDirectory: encoder.encode("/"),
            umask: request.umask,
            stdioOnConsole: true,
          }
          : { pid: process.pid, parentPid: request.parentPid, inheritance: DescriptorInheritance.COPY },
      );
      process.descriptorsAttached = true;
      loaded = await this.#load(process, thread.tid, false, request.programPath, request.argv, request.envp);
      this.#adoptProgram(process, loaded, request.programPath, request.argv, request.envp);
      if (request.name) process.name = commandName(request.name);
      await this.kernel.peers.vfs.execProcess({
        pid: process.pid,
        executable: encoder.encode(loaded.executablePath),
      });
    } catch (error) {
      if (loaded) {
        await this.kernel.peers.machine.deleteThreadContext({ tid: thread.tid }).catch(() => {});
        await this.kernel.releaseAddressSpace(process);
      }
      if (process.descriptorsAttached) {
        await this.kernel.peers.vfs.detachProcess({ pid: process.pid }).catch((e) =>
          log.warn("CreateProcess: detaching the failed process failed", {
            pid: process.pid,
            error: describe(e),
          })
        );
      }
      this.kernel.table.discard(process);
      throw error;
    }
    process.life = "live";
    this.kernel.counters.execs++;
    return this.#admit(thread, { priority: PRIORITY_NORMAL, nice: 0, affinity: null });
  }

  /** Loads a program for a process, into the context of thread `tid`. */
  #load(
    process: Process,
    tid: number,
    temporaryContext: boolean,
    programPath: Uint8Array,
    argv: Uint8Array[],
    envp: Uint8Array[],
  ): Promise<LoadedProgram> {
    return loadProgram(this.kernel.peers, this.kernel.cpu(), this.kernel.random, {
      pid: process.pid,
      tid,
      temporaryContext,
      programPath,
      argv,
      envp,
      credentials: process.credentials,
      stackLimit: process.limits.get(RLIMIT_STACK).soft,
    });
  }

  #adoptProgram(
    process: Process,
    loaded: LoadedProgram,
    programPath: Uint8Array,
    argv: Uint8Array[],
    envp: Uint8Array[],
  ): void {
    process.spaceId = loaded.spaceId;
    process.executablePath = loaded.executablePath;
    process.argv = argv.map((a) => a.slice());
    process.envp = envp.map((e) => e.slice());
    process.name = commandName(programBaseName(new TextDecoder().decode(programPath)));
  }

  /**
   * execve: the process runs a new program in a new address space. With `fromKernelCall` the
   * calling thread is trapped in execve and the machine switches it (KERNEL_CALL_ACTION_EXEC);
   * otherwise its context is replaced here. Other threads end. Nothing changes if loading fails.
   */
  async exec(
    pid: number,
    tid: number,
    programPath: Uint8Array,
    argv: Uint8Array[],
    envp: Uint8Array[],
    fromKernelCall: boolean,
  ): Promise<{ registers: LoadedProgram["registers"]; spaceId: bigint }> {
    const process = this.kernel.table.requireLive(pid);
    const thread = this.kernel.table.requireThreadOf(pid, tid);
    if (!fromKernelCall && this.kernel.scheduler.runningOn(tid) !== null) {
      throw failedPrecondition(
        `thread ${tid} is running; it execs through its own execve`,
        Errno.EBUSY,
        "tid",
      );
    }
    const scratch = this.kernel.table.reserveId();
    let loaded: LoadedProgram;
    try {
      loaded = await this.#load(process, scratch, true, programPath, argv, envp);
    } finally {
      this.kernel.table.releaseId(scratch);
    }
    if (!fromKernelCall) {
      try {
        await this.kernel.peers.machine.deleteThreadContext({ tid });
        await this.kernel.peers.machine.createThreadContext({
          context: { pid, tid, registers: entryRegisters(loaded.registers), spaceId: loaded.spaceId },
        });
      } catch (error) {
        await this.kernel.peers.vmm.destroyAddressSpace({ spaceId: loaded.spaceId }).catch(() => {});
        throw error;
      }
    }
    // The point of no return (de_thread, exec_mmap, flush_signal_handlers).
    for (const other of process.liveThreads()) {
      if (other !== thread) await this.#endThreadForExec(other);
    }
    await this.kernel.releaseAddressSpace(process);
    this.#adoptProgram(process, loaded, programPath, argv, envp);
    process.actions.resetForExec();
    process.forkedWithoutExec = false;
    thread.alternateStack = { base: 0n, size: 0n, flags: SS_DISABLE };
    thread.clearChildTid = 0n;
    thread.robustListHead = 0n;
    thread.robustListLength = 0n;
    await this.kernel.peers.vfs.execProcess({ pid, executable: encoder.encode(loaded.executablePath) });
    this.kernel.counters.execs++;
    return { registers: loaded.registers, spaceId: loaded.spaceId };
  }

  async #endThreadForExec(thread: Thread): Promise<void> {
    const running = this.kernel.scheduler.runningOn(thread.tid) !== null;
    const wasAsleep = this.kernel.retireThread(thread, 0) !== undefined;
    if (wasAsleep) return;
    if (!running) {
      await this.kernel.peers.machine.deleteThreadContext({ tid: thread.tid }).catch((e) =>
        log.warn("exec: discarding another thread's context failed", { tid: thread.tid, error: describe(e) })
      );
    }
  }

  /** fork, or clone: a copy-on-write child process, or a new thread sharing the address space. */
  async clone(request: CloneRequest): Promise<{ pid: number; tid: number }> {
    const parent = this.kernel.table.requireLive(request.pid);
    const parentThread = this.kernel.table.requireThreadOf(request.pid, request.tid);
    if (parent.spaceId === 0n) {
      throw failedPrecondition(`process ${parent.pid} has no address space to copy`, Errno.EINVAL, "pid");
    }
    const parameters = this.kernel.scheduler.parameters(parentThread.tid);
    if (request.thread) return this.#cloneThread(parent, parentThread, request, parameters);
    const child = this.kernel.table.create({
      parentPid: parent.pid,
      name: parent.name,
      startNanos: this.kernel.now(),
    });
    const childThread = child.threads.get(child.pid)!;
    child.forkedWithoutExec = true;
    child.executablePath = parent.executablePath;
    child.argv = parent.argv;
    child.envp = parent.envp;
    childThread.blocked = parentThread.blocked;
    childThread.alternateStack = { ...parentThread.alternateStack };
    childThread.clearChildTid = request.childClearTid;
    const undo: Array<() => Promise<unknown>> = [];
    try {
      await this.kernel.peers.vfs.attachProcess({
        pid: child.pid,
        parentPid: parent.pid,
        inheritance: DescriptorInheritance.COPY,
      });
      child.descriptorsAttached = true;
      undo.push(() => this.kernel.peers.vfs.detachProcess({ pid: child.pid }));
      const { childSpaceId } = await this.kernel.peers.vmm.forkAddressSpace({
        parentSpaceId: parent.spaceId,
        childPid: child.pid,
      });
      undo.push(() => this.kernel.peers.vmm.destroyAddressSpace({ spaceId: childSpaceId }));
      await this.#startCopiedThread(child.pid, childThread.tid, parentThread.tid, childSpaceId, request);
      undo.push(() => this.kernel.peers.machine.deleteThreadContext({ tid: childThread.tid }));
      if (request.childSetTid !== 0n) {
        await this.#writeTid(childThread.tid, childSpaceId, request.childSetTid);
      }
      child.spaceId = childSpaceId;
    } catch (error) {
      for (const step of undo.reverse()) await step().catch(() => {});
      this.kernel.table.discard(child);
      throw error;
    }
    child.life = "live";
    this.kernel.counters.forks++;
    return this.#admit(childThread, parameters);
  }

  async #cloneThread(
    process: Process,
    parentThread: Thread,
    request: CloneRequest,
    parameters: SchedulingParameters,
  ): Promise<{ pid: number; tid: number }> {
    const thread = this.kernel.table.addThread(process);
    thread.blocked = parentThread.blocked;
    thread.clearChildTid = request.childClearTid;
    try {
      await this.#startCopiedThread(process.pid, thread.tid, parentThread.tid, process.spaceId, request);
      if (request.childSetTid !== 0n) await this.#writeTid(thread.tid, process.spaceId, request.childSetTid);
    } catch (error) {
      this.#discardNewThread(thread);
      throw error;
    }
    return this.#admit(thread, parameters);
  }

  /** A new thread joins the scheduler, runnable. */
  #admit(thread: Thread, parameters: SchedulingParameters): { pid: number; tid: number } {
    const pid = thread.process.pid;
    this.kernel.scheduler.add(thread.tid, pid, parameters);
    this.kernel.makeRunnable(thread);
    return { pid, tid: thread.tid };
  }

  /** A thread that could not be started goes, leaving no trace in its process. */
  #discardNewThread(thread: Thread): void {
    thread.state = "exited";
    this.kernel.table.releaseThread(thread);
    thread.process.threads.delete(thread.tid);
  }

  /** A thread context copied from the caller's, returning 0 from clone, on its own stack and TLS. */
  async #startCopiedThread(
    pid: number,
    tid: number,
    fromTid: number,
    spaceId: bigint,
    request: CloneRequest,
  ): Promise<void> {
    await this.kernel.peers.machine.createThreadContext({
      context: { pid, tid, spaceId },
      copyFromTid: fromTid,
    });
    const { context } = await this.kernel.peers.machine.getThreadContext({ tid });
    const registers = context?.registers;
    if (!registers || registers.gprs.length !== 32) {
      throw new AstraError(Code.INTERNAL, Errno.EIO, `the machine gave thread ${tid} no register file`);
    }
    registers.gprs[3] = 0n;
    if (request.stack !== 0n) registers.gprs[1] = request.stack;
    if (request.tls !== null) registers.gprs[13] = request.tls;
    await this.kernel.peers.machine.setThreadContext({ tid, registers });
  }

  /** Stores a TID (pid_t, 4 bytes) in a thread's memory, breaking copy-on-write first. */
  async #writeTid(tid: number, spaceId: bigint, address: bigint): Promise<void> {
    await this.kernel.peers.vmm.handlePageFault({
      spaceId,
      address: address - (address % PAGE_SIZE),
      access: AccessType.WRITE,
      cause: FaultCause.PROTECTION,
      tid,
      cpu: 0,
    });
    const data = new Uint8Array(4);
    new DataView(data.buffer).setInt32(0, tid, true);
    await this.kernel.peers.machine.writeVirtual({ tid, address, data });
  }

  /** CreateThread RPC: a thread of a process starting as a copy of its first thread's context. */
  async createThread(pid: number, parameters: SchedulingParameters, clearChildTid: bigint): Promise<number> {
    const process = this.kernel.table.requireLive(pid);
    const first = process.liveThreads()[0];
    if (!first || process.spaceId === 0n) {
      throw failedPrecondition(
        `process ${pid} has no running program to add a thread to`,
        Errno.EINVAL,
        "pid",
      );
    }
    const thread = this.kernel.table.addThread(process);
    thread.clearChildTid = clearChildTid;
    try {
      this.kernel.scheduler.add(thread.tid, pid, parameters);
      await this.kernel.peers.machine.createThreadContext({
        context: { pid, tid: thread.tid, spaceId: process.spaceId },
        copyFromTid: first.tid,
      });
    } catch (error) {
      if (this.kernel.scheduler.has(thread.tid)) this.kernel.scheduler.remove(thread.tid, this.kernel.now());
      this.#discardNewThread(thread);
      throw error;
    }
    this.kernel.makeRunnable(thread);
    return thread.tid;
  }
}
