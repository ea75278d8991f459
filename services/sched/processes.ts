// The process table: PIDs and TIDs from one number space (as Linux allocates them), the process
// tree, process groups and sessions, credentials, and each process's threads with their signal
// state. It holds records and enforces the tree's rules (setpgid, setsid, reparenting, reaping);
// scheduling lives in runqueue.ts, the lifecycle that talks to peers in kernel.ts and fork_exec.ts.
import { AstraError, Code, Errno, invalidArgument } from "../../lib/errors.ts";
import { SS_DISABLE } from "../../lib/linux/signals.ts";
import { defaultResourceLimits, ResourceLimits } from "./rlimits.ts";
import { PendingSignals, SignalActionTable, type SignalSet } from "./signals.ts";

/** Linux's default pid_max: PIDs and TIDs are 1..PID_MAX - 1. */
export const PID_MAX = 32768;
/** After wrapping, allocation restarts above the PIDs daemons usually hold (kernel/pid.c). */
const RESERVED_PIDS = 300;
/** TASK_COMM_LEN - 1: the longest command name. */
export const COMMAND_NAME_MAX = 15;
/** The kernel as a parent: processes created with parent_pid 0 are its children. */
export const KERNEL_PID = 0;
export const INIT_PID = 1;

export interface Credentials {
  uid: number;
  gid: number;
  euid: number;
  egid: number;
  suid: number;
  sgid: number;
  groups: number[];
}

export const ROOT_CREDENTIALS: Readonly<Credentials> = Object.freeze({
  uid: 0,
  gid: 0,
  euid: 0,
  egid: 0,
  suid: 0,
  sgid: 0,
  groups: [],
});

/** struct rusage, in nanoseconds and counts. */
export interface Usage {
  userNanos: number;
  systemNanos: number;
  maxResidentKib: number;
  minorFaults: number;
  majorFaults: number;
  blockInputs: number;
  blockOutputs: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
}

export function emptyUsage(): Usage {
  return {
    userNanos: 0,
    systemNanos: 0,
    maxResidentKib: 0,
    minorFaults: 0,
    majorFaults: 0,
    blockInputs: 0,
    blockOutputs: 0,
    voluntarySwitches: 0,
    involuntarySwitches: 0,
  };
}

/** Sums two usages; the resident maximum is a maximum, as Linux accumulates it. */
export function addUsage(a: Usage, b: Usage): Usage {
  return {
    userNanos: a.userNanos + b.userNanos,
    systemNanos: a.systemNanos + b.systemNanos,
    maxResidentKib: Math.max(a.maxResidentKib, b.maxResidentKib),
    minorFaults: a.minorFaults + b.minorFaults,
    majorFaults: a.majorFaults + b.majorFaults,
    blockInputs: a.blockInputs + b.blockInputs,
    blockOutputs: a.blockOutputs + b.blockOutputs,
    voluntarySwitches: a.voluntarySwitches + b.voluntarySwitches,
    involuntarySwitches: a.involuntarySwitches + b.involuntarySwitches,
  };
}

/**
 * Where a thread is, apart from the CPU it may be on (the scheduler knows that): runnable covers
 * both waiting on a runqueue and running.
 */
export type ThreadRunState = "runnable" | "sleeping" | "blocked" | "stopped" | "exited";

/** What a blocked thread waits for (the contract's WaitObject). */
export interface WaitObject {
  kind: "futex" | "child" | "signal" | "io";
  pid: number;
  key: bigint;
}

export interface AlternateSignalStack {
  base: bigint;
  size: bigint;
  /** SS_DISABLE or 0, with SS_AUTODISARM kept as the program set it. */
  flags: number;
}

export class Thread {
  state: ThreadRunState = "runnable";
  blocked: SignalSet = 0n;
  readonly pending = new PendingSignals();
  /** set_tid_address / CLONE_CHILD_CLEARTID: zeroed and futex-woken when the thread exits. */
  clearChildTid = 0n;
  robustListHead = 0n;
  robustListLength = 0n;
  alternateStack: AlternateSignalStack = { base: 0n, size: 0n, flags: SS_DISABLE };
  /** rt_sigsuspend's saved mask: the frame of the handler it runs restores this one. */
  suspendSavedMask: SignalSet | null = null;
  /** When sleeping: the guest clock it wakes at. */
  wakeAtNanos = 0;
  waitObject: WaitObject | null = null;

  constructor(readonly tid: number, readonly process: Process) {}
}

export type ProcessLife = "new" | "live" | "zombie" | "dead";

export interface ProcessInit {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  credentials: Credentials;
  name: string;
  limits: ResourceLimits;
  actions: SignalActionTable;
  startNanos: number;
}

export class Process {
  readonly pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  credentials: Credentials;
  name: string;
  life: ProcessLife = "new";
  executablePath = "";
  argv: Uint8Array[] = [];
  envp: Uint8Array[] = [];
  readonly threads = new Map<number, Thread>();
  limits: ResourceLimits;
  actions: SignalActionTable;
  readonly pending = new PendingSignals();
  /** The wait status its parent sees once it is a zombie. */
  waitStatus = 0;
  /** Usage of its threads that have exited. */
  exitedThreadsUsage = emptyUsage();
  /** RUSAGE_CHILDREN: reaped children and their reaped descendants. */
  childrenUsage = emptyUsage();
  /** Its own usage, frozen when it became a zombie. */
  finalUsage: Usage | null = null;
  readonly startNanos: number;
  /** The vmm address space (0 before exec has made one). */
  spaceId = 0n;
  /** PF_FORKNOEXEC: a forked child that has not exec'd yet (setpgid by the parent is allowed). */
  forkedWithoutExec = false;
  /** Stopped by a stop signal until SIGCONT. */
  stopped = false;
  /** A stop or continue its parent has not been told of through wait yet. */
  stopToReport: number | null = null;
  continueToReport = false;
  /** exit_group or a fatal signal is tearing it down. */
  exiting = false;
  /**
   * A death decided while one of its threads runs on a CPU: the machine learns it from
   * signal_pending and HandleSignal answers TERMINATE with this status.
   */
  pendingDeath: { waitStatus: number; signal: number } | null = null;
  /** Storage holds a descriptor table for it (AttachProcess done, DetachProcess not yet). */
  descriptorsAttached = false;

  constructor(init: ProcessInit) {
    this.pid = init.pid;
    this.ppid = init.ppid;
    this.pgid = init.pgid;
    this.sid = init.sid;
    this.credentials = { ...init.credentials, groups: [...init.credentials.groups] };
    this.name = init.name;
    this.limits = init.limits;
    this.actions = init.actions;
    this.startNanos = init.startNanos;
  }

  /** The live threads in TID order (the main thread first). */
  liveThreads(): Thread[] {
    return [...this.threads.values()].filter((t) => t.state !== "exited");
  }

  get isZombieOrDead(): boolean {
    return this.life === "zombie" || this.life === "dead";
  }
}

export function noSuchProcess(pid: number, argument = "pid"): AstraError {
  return new AstraError(Code.NOT_FOUND, Errno.ESRCH, `no process ${pid}`, { argument });
}

export function noSuchThread(tid: number, argument = "tid"): AstraError {
  return new AstraError(Code.NOT_FOUND, Errno.ESRCH, `no thread ${tid}`, { argument });
}

function notPermitted(message: string, argument: string, errno = Errno.EPERM): AstraError {
  return new AstraError(Code.PERMISSION_DENIED, errno, message, { argument });
}

/** The command name Linux keeps: at most 15 bytes, cut on a byte boundary as the kernel does. */
export function commandName(name: string | Uint8Array): string {
  const bytes = typeof name === "string" ? new TextEncoder().encode(name) : name;
  const nul = bytes.indexOf(0);
  const cut = bytes.subarray(0, Math.min(nul < 0 ? bytes.length : nul, COMMAND_NAME_MAX));
  return new TextDecoder("utf-8", { fatal: false }).decode(cut);
}

/** The last component of a path, as the command name of an exec'd program. */
export function programBaseName(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1) || trimmed;
}

export interface NewProcess {
  /** KERNEL_PID for a child of the kernel. */
  parentPid: number;
  credentials?: Credentials;
  name: string;
  startNanos: number;
}

export interface ProcessFilter {
  life?: ProcessLife;
  parentPid?: number;
  pgid?: number;
}

export class ProcessTable {
  readonly #processes = new Map<number, Process>();
  readonly #threads = new Map<number, Thread>();
  /** Ids lent out for a while (the loader's temporary thread context). */
  readonly #reserved = new Set<number>();
  #lastId = 0;

  /** maxThreads sizes RLIMIT_NPROC and RLIMIT_SIGPENDING of the first process. */
  constructor(private readonly maxThreads = PID_MAX / 2) {}

  /** A PID or TID not used by any process, thread, group or session, as alloc_pid picks it. */
  allocateId(): number {
    for (let attempts = 0; attempts < PID_MAX; attempts++) {
      let id = this.#lastId + 1;
      if (id >= PID_MAX) id = RESERVED_PIDS;
      this.#lastId = id;
      if (!this.#idInUse(id)) return id;
    }
    throw new AstraError(Code.RESOURCE_EXHAUSTED, Errno.EAGAIN, `all ${PID_MAX - 1} process ids are in use`);
  }

  /** An id no process or thread will get until it is released. */
  reserveId(): number {
    const id = this.allocateId();
    this.#reserved.add(id);
    return id;
  }

  releaseId(id: number): void {
    this.#reserved.delete(id);
  }

  #idInUse(id: number): boolean {
    if (this.#threads.has(id) || this.#reserved.has(id)) return true;
    const process = this.#processes.get(id);
    if (process && process.life !== "dead") return true;
    for (const p of this.#processes.values()) {
      if (p.life !== "dead" && (p.pgid === id || p.sid === id)) return true;
    }
    return false;
  }

  /**
   * A new process in state NEW with its main thread (TID = PID). A child of a process inherits
   * its group, session, limits and signal actions (fork's copies); a child of the kernel starts
   * a session and group of its own with the default limits and actions.
   */
  create(request: NewProcess): Process {
    const parent = request.parentPid === KERNEL_PID
      ? null
      : this.requireLive(request.parentPid, "parent_pid");
    const pid = this.allocateId();
    const process = new Process({
      pid,
      ppid: request.parentPid,
      pgid: parent?.pgid ?? pid,
      sid: parent?.sid ?? pid,
      credentials: request.credentials ?? parent?.credentials ?? ROOT_CREDENTIALS,
      name: commandName(request.name),
      limits: parent?.limits.clone() ?? new ResourceLimits(defaultResourceLimits(this.maxThreads)),
      actions: parent?.actions.clone() ?? new SignalActionTable(),
      startNanos: request.startNanos,
    });
    this.#processes.set(pid, process);
    this.#attachThread(new Thread(pid, process));
    return process;
  }

  /** A new thread of a live process with its own TID. */
  addThread(process: Process): Thread {
    if (process.isZombieOrDead) throw noSuchProcess(process.pid);
    const thread = new Thread(this.allocateId(), process);
    this.#attachThread(thread);
    return thread;
  }

  #attachThread(thread: Thread): void {
    thread.process.threads.set(thread.tid, thread);
    this.#threads.set(thread.tid, thread);
  }

  /** Forgets an exited thread's TID (the record stays with its process for usage). */
  releaseThread(thread: Thread): void {
    this.#threads.delete(thread.tid);
  }

  /** Drops a process that never ran (a failed CreateProcess): its PID is free again. */
  discard(process: Process): void {
    for (const thread of process.threads.values()) this.#threads.delete(thread.tid);
    this.#processes.delete(process.pid);
  }

  get(pid: number): Process | undefined {
    return this.#processes.get(pid);
  }

  /** A process that is not DEAD (zombies included), or ESRCH. */
  require(pid: number, argument = "pid"): Process {
    const process = this.#processes.get(pid);
    if (!process || process.life === "dead") throw noSuchProcess(pid, argument);
    return process;
  }

  /** A process that is neither a zombie nor dead, or ESRCH. */
  requireLive(pid: number, argument = "pid"): Process {
    const process = this.require(pid, argument);
    if (process.life === "zombie") throw noSuchProcess(pid, argument);
    return process;
  }

  thread(tid: number): Thread | undefined {
    return this.#threads.get(tid);
  }

  requireThread(tid: number, argument = "tid"): Thread {
    const thread = this.#threads.get(tid);
    if (!thread || thread.state === "exited") throw noSuchThread(tid, argument);
    return thread;
  }

  /** A thread of a given process (tgkill's check), or ESRCH. */
  requireThreadOf(pid: number, tid: number): Thread {
    const thread = this.requireThread(tid);
    if (thread.process.pid !== pid) {
      throw new AstraError(Code.NOT_FOUND, Errno.ESRCH, `thread ${tid} is not in process ${pid}`, {
        argument: "tid",
      });
    }
    return thread;
  }

  /** Processes by ascending PID. */
  list(filter: ProcessFilter = {}): Process[] {
    return [...this.#processes.values()]
      .filter((p) =>
        (filter.life === undefined || p.life === filter.life) &&
        (filter.parentPid === undefined || p.ppid === filter.parentPid) &&
        (filter.pgid === undefined || p.pgid === filter.pgid)
      )
      .sort((a, b) => a.pid - b.pid);
  }

  /** The children of a process (or of the kernel) that have not been reaped. */
  childrenOf(pid: number): Process[] {
    return this.list({ parentPid: pid }).filter((p) => p.life !== "dead");
  }

  /** Live members of a process group (signals to a group skip zombies). */
  groupMembers(pgid: number): Process[] {
    return this.list({ pgid }).filter((p) => p.life === "live" || p.life === "new");
  }

  threadCount(): number {
    let n = 0;
    for (const thread of this.#threads.values()) if (thread.state !== "exited") n++;
    return n;
  }

  /**
   * The children of an exiting process go to init (PID 1), or to the kernel when init itself is
   * the one exiting or is gone. Returns the new parent and the children moved.
   */
  reparentChildren(process: Process): { newParent: number; moved: Process[] } {
    const init = this.#processes.get(INIT_PID);
    const newParent = process.pid !== INIT_PID && init?.life === "live" ? INIT_PID : KERNEL_PID;
    const moved = this.childrenOf(process.pid);
    for (const child of moved) child.ppid = newParent;
    return { newParent, moved };
  }

  /** DetachFromParent: the process becomes a child of init. */
  detachFromParent(pid: number): number {
    const process = this.requireLive(pid);
    if (process.pid === INIT_PID) throw invalidArgument("pid", "init has no parent to detach from");
    const init = this.#processes.get(INIT_PID);
    if (!init || init.life !== "live") {
      throw new AstraError(Code.FAILED_PRECONDITION, Errno.ESRCH, "there is no init (PID 1) to adopt it", {
        argument: "pid",
      });
    }
    process.ppid = INIT_PID;
    return INIT_PID;
  }

  /** wait4 reaped a zombie: it is DEAD and its usage goes to its parent's RUSAGE_CHILDREN. */
  reap(child: Process): void {
    const parent = this.#processes.get(child.ppid);
    if (parent) {
      parent.childrenUsage = addUsage(
        parent.childrenUsage,
        addUsage(child.finalUsage ?? emptyUsage(), child.childrenUsage),
      );
    }
    child.life = "dead";
  }

  /**
   * setpgid (kernel/sys.c): `callerPid` moves `pid` (0: itself) into group `pgid` (0: a group led
   * by pid). The kernel (caller 0) may move any process, within its session.
   */
  setProcessGroup(callerPid: number, pid: number, pgid: number): number {
    if (pgid < 0) throw invalidArgument("pgid", `process group ${pgid} is negative`);
    const caller = callerPid === KERNEL_PID ? null : this.requireLive(callerPid, "caller_pid");
    const targetPid = pid === 0 ? callerPid : pid;
    if (targetPid === KERNEL_PID) throw invalidArgument("pid", "the kernel has no process group");
    const target = this.requireLive(targetPid);
    const group = pgid === 0 ? target.pid : pgid;
    if (caller && target !== caller) {
      if (target.ppid !== caller.pid) throw noSuchProcess(targetPid);
      if (target.sid !== caller.sid) {
        throw notPermitted(`process ${targetPid} is in another session`, "pid");
      }
      if (!target.forkedWithoutExec) {
        throw notPermitted(`process ${targetPid} has already exec'd`, "pid", Errno.EACCES);
      }
    }
    if (target.sid === target.pid) {
      throw notPermitted(`process ${targetPid} leads its session`, "pid");
    }
    if (group !== target.pid) {
      const inSession = this.groupMembers(group).some((p) => p.sid === target.sid);
      if (!inSession) {
        throw notPermitted(`no process group ${group} in session ${target.sid}`, "pgid");
      }
    }
    target.pgid = group;
    return group;
  }

  /** setsid: a process that leads no group becomes leader of a new session and group. */
  setSession(pid: number): number {
    const process = this.requireLive(pid);
    const leadsGroup = [...this.#processes.values()].some((p) => p.life !== "dead" && p.pgid === process.pid);
    if (leadsGroup) {
      throw notPermitted(`process ${pid} already leads process group ${pid}`, "pid");
    }
    process.sid = process.pid;
    process.pgid = process.pid;
    return process.sid;
  }

  /** Whether a group has no member whose parent is in another group of the same session. */
  isOrphanedGroup(pgid: number): boolean {
    return !this.groupMembers(pgid).some((p) => {
      const parent = this.#processes.get(p.ppid);
      return parent !== undefined && parent.life === "live" && parent.pgid !== pgid &&
        parent.sid === p.sid;
    });
  }

  /** Processes in any state but DEAD, and zombies among them. */
  counts(): { processes: number; zombies: number } {
    let processes = 0;
    let zombies = 0;
    for (const p of this.#processes.values()) {
      if (p.life === "dead") continue;
      processes++;
      if (p.life === "zombie") zombies++;
    }
    return { processes, zombies };
  }
}
