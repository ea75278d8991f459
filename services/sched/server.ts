// The sched service's RPC surface: each handler decodes and validates its request, calls the
// kernel (kernel.ts) and encodes the answer. KernelCall, the machine's trap-path stream, is served
// by call_stream.ts.
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import {
  ChildOutcome,
  type Credentials as ProtoCredentials,
  ExitScope,
  ProcessState,
  Resource,
  ResourceUsageScope,
  SchedService,
  type SignalAction as ProtoSignalAction,
  SignalDisposition,
  SignalMaskHow,
  SignalOutcome,
  ThreadPriority,
  ThreadState,
  type WaitObject as ProtoWaitObject,
  WaitObjectKind,
} from "../../gen/astra/sched/v1/sched_pb.ts";
import { VfsService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import { VmmService } from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { Channel, serveConcurrently } from "../../lib/channel.ts";
import { invalidArgument } from "../../lib/errors.ts";
import type { Peers, ServiceModule, SystemConfig } from "../../lib/module.ts";
import { client } from "../../lib/rpc.ts";
import { bindService } from "../../lib/server.ts";
import { type KernelCallReply, KernelCallStream } from "./call_stream.ts";
import { SchedKernel } from "./kernel.ts";
import { type Credentials, type Process, type Thread, type Usage, type WaitObject } from "./processes.ts";
import { isValidResource, RLIM_NLIMITS } from "./rlimits.ts";
import { checkNice, checkPriority, type Dispatch, PRIORITY_NORMAL } from "./runqueue.ts";
import {
  applySignalMask,
  SIG_BLOCK,
  SIG_DFL,
  SIG_IGN,
  SIG_SETMASK,
  SIG_UNBLOCK,
  type SignalAction,
} from "./signals.ts";
import { decodeWaitStatus } from "./wait.ts";

const PROCESS_STATES = {
  new: ProcessState.NEW,
  ready: ProcessState.READY,
  running: ProcessState.RUNNING,
  blocked: ProcessState.BLOCKED,
  zombie: ProcessState.ZOMBIE,
  dead: ProcessState.DEAD,
} as const;

const THREAD_STATES = {
  runnable: ThreadState.RUNNABLE,
  running: ThreadState.RUNNING,
  sleeping: ThreadState.SLEEPING,
  blocked: ThreadState.BLOCKED,
  stopped: ThreadState.STOPPED,
  exited: ThreadState.EXITED,
} as const;

const WAIT_KINDS: ReadonlyMap<WaitObjectKind, WaitObject["kind"]> = new Map([
  [WaitObjectKind.FUTEX, "futex"],
  [WaitObjectKind.CHILD, "child"],
  [WaitObjectKind.SIGNAL, "signal"],
  [WaitObjectKind.IO, "io"],
]);

const MASK_HOWS: ReadonlyMap<SignalMaskHow, number> = new Map([
  [SignalMaskHow.BLOCK, SIG_BLOCK],
  [SignalMaskHow.UNBLOCK, SIG_UNBLOCK],
  [SignalMaskHow.SET, SIG_SETMASK],
]);

const CHILD_OUTCOMES = {
  exited: ChildOutcome.EXITED,
  killed: ChildOutcome.KILLED,
  dumped: ChildOutcome.DUMPED,
  stopped: ChildOutcome.STOPPED,
  continued: ChildOutcome.CONTINUED,
} as const;

function encodeUsage(usage: Usage) {
  return {
    userTimeNanos: BigInt(Math.floor(usage.userNanos)),
    systemTimeNanos: BigInt(Math.floor(usage.systemNanos)),
    maxResidentKib: BigInt(usage.maxResidentKib),
    minorFaults: BigInt(usage.minorFaults),
    majorFaults: BigInt(usage.majorFaults),
    blockInputs: BigInt(usage.blockInputs),
    blockOutputs: BigInt(usage.blockOutputs),
    voluntaryContextSwitches: BigInt(usage.voluntarySwitches),
    involuntaryContextSwitches: BigInt(usage.involuntarySwitches),
  };
}

function encodeDispatch(dispatch: Dispatch | null) {
  return dispatch
    ? { tid: dispatch.tid, pid: dispatch.pid, timeSliceNanos: BigInt(dispatch.timeSliceNanos) }
    : { tid: 0, pid: 0, timeSliceNanos: 0n };
}

function encodeAction(action: SignalAction) {
  const disposition = action.handler === SIG_DFL
    ? SignalDisposition.DEFAULT
    : action.handler === SIG_IGN
    ? SignalDisposition.IGNORE
    : SignalDisposition.HANDLER;
  return {
    disposition,
    handler: disposition === SignalDisposition.HANDLER ? action.handler : 0n,
    flags: action.flags,
    restorer: action.restorer,
    mask: action.mask,
  };
}

function decodeAction(action: ProtoSignalAction): SignalAction {
  let handler: bigint;
  switch (action.disposition) {
    case SignalDisposition.DEFAULT:
      handler = SIG_DFL;
      break;
    case SignalDisposition.IGNORE:
      handler = SIG_IGN;
      break;
    case SignalDisposition.HANDLER:
      if (action.handler <= SIG_IGN) {
        throw invalidArgument("action.handler", `0x${action.handler.toString(16)} is not a handler address`);
      }
      handler = action.handler;
      break;
    default:
      throw invalidArgument("action.disposition", "a signal action is DEFAULT, IGNORE or HANDLER");
  }
  return { handler, flags: action.flags, restorer: action.restorer, mask: action.mask };
}

function decodeCredentials(credentials: ProtoCredentials | undefined): Credentials | null {
  if (!credentials) return null;
  return { ...credentials, groups: [...credentials.groups] };
}

function rlimitOf(resource: Resource): number {
  const rlimit = resource - 1;
  if (!isValidResource(rlimit)) throw invalidArgument("resource", `resource ${resource} is not an RLIMIT`);
  return rlimit;
}

function decodeWaitObject(object: ProtoWaitObject | undefined): WaitObject {
  const kind = object ? WAIT_KINDS.get(object.kind) : undefined;
  if (!object || !kind) {
    throw invalidArgument("wait_object", "a wait object names a FUTEX, CHILD, SIGNAL or IO");
  }
  return { kind, pid: object.pid, key: object.key };
}

function priorityOf(priority: ThreadPriority, fallback: number): number {
  if (priority === ThreadPriority.UNSPECIFIED) return fallback;
  checkPriority(priority);
  return priority;
}

/** A umask is permission bits only, as umask(2) keeps them. */
function checkUmask(umask: number): number {
  if (umask > 0o777) throw invalidArgument("umask", `a umask is 0..0777, not 0${umask.toString(8)}`);
  return umask;
}

export function createSched(peers: Peers, config: SystemConfig): ServiceModule {
  const kernel = new SchedKernel({
    vmm: client(VmmService, peers.vmm, "sched"),
    machine: client(MachineService, peers.machine, "sched"),
    vfs: client(VfsService, peers.storage, "sched"),
  }, { cpus: config.cpus });
  const table = kernel.table;
  const scheduler = kernel.scheduler;

  const encodeThread = (thread: Thread) => {
    const known = scheduler.has(thread.tid);
    const parameters = known ? scheduler.parameters(thread.tid) : null;
    const accounting = known ? scheduler.accounting(thread.tid, kernel.now()) : null;
    const w = thread.waitObject;
    return {
      tid: thread.tid,
      pid: thread.process.pid,
      state: THREAD_STATES[kernel.threadState(thread)],
      priority: parameters?.priority ?? PRIORITY_NORMAL,
      nice: parameters?.nice ?? 0,
      cpu: known ? scheduler.lastCpu(thread.tid) : 0,
      affinity: known ? scheduler.affinityOf(thread.tid) : [],
      cpuTimeNanos: BigInt(Math.floor(accounting?.runtimeNanos ?? 0)),
      contextSwitches: BigInt((accounting?.voluntarySwitches ?? 0) + (accounting?.involuntarySwitches ?? 0)),
      blockedSignals: thread.blocked,
      pendingSignals: thread.pending.signals,
      wakeAtNanos: BigInt(thread.wakeAtNanos),
      waitObject: w
        ? { kind: [...WAIT_KINDS].find(([, k]) => k === w.kind)![0], pid: w.pid, key: w.key }
        : undefined,
      clearChildTid: thread.clearChildTid,
    };
  };

  const encodeProcess = (process: Process) => ({
    pid: process.pid,
    ppid: process.ppid,
    pgid: process.pgid,
    sid: process.sid,
    credentials: process.credentials,
    state: PROCESS_STATES[kernel.processState(process)],
    name: process.name,
    executablePath: process.executablePath,
    argv: process.argv,
    envp: process.envp,
    threads: process.liveThreads().map(encodeThread),
    limits: process.limits.all().map((l, rlimit) => ({ resource: rlimit + 1, soft: l.soft, hard: l.hard })),
    usage: encodeUsage(kernel.processUsage(process)),
    childrenUsage: encodeUsage(process.childrenUsage),
    pendingSignals: process.pending.signals,
    waitStatus: process.isZombieOrDead ? process.waitStatus : 0,
    startTimeNanos: BigInt(process.startNanos),
  });

  const bound = bindService("sched", SchedService, {
    createProcess: async (req) => {
      if (!req.programPath) throw invalidArgument("program_path", "a process needs a program to run");
      return await kernel.createProcess({
        parentPid: req.parentPid,
        programPath: new TextEncoder().encode(req.programPath),
        argv: req.argv,
        envp: req.envp,
        name: req.name,
        credentials: decodeCredentials(req.credentials),
        umask: req.umask === undefined ? undefined : checkUmask(req.umask),
      });
    },
    fork: async (req) => {
      const child = await kernel.clone({
        pid: req.pid,
        tid: req.tid,
        thread: false,
        stack: 0n,
        tls: null,
        childSetTid: 0n,
        childClearTid: 0n,
      });
      return { childPid: child.pid, childTid: child.tid };
    },
    exec: async (req) => {
      if (!req.programPath) throw invalidArgument("program_path", "exec needs a program to run");
      const { registers } = await kernel.exec(
        req.pid,
        req.tid,
        new TextEncoder().encode(req.programPath),
        req.argv,
        req.envp,
        false,
      );
      return { entry: registers };
    },
    exit: async (req) => {
      if (req.scope !== ExitScope.THREAD && req.scope !== ExitScope.PROCESS) {
        throw invalidArgument("scope", "an exit ends a THREAD or the whole PROCESS");
      }
      await kernel.exit(req.pid, req.tid, req.scope === ExitScope.PROCESS, req.exitCode);
      return {};
    },
    wait: async (req, ctx) => {
      const result = await kernel.wait(req.callerPid, req.pid, {
        noHang: req.noHang,
        reportStopped: req.reportStopped,
        reportContinued: req.reportContinued,
      }, ctx.signal);
      if (result.pid === 0) return { pid: 0 };
      const status = decodeWaitStatus(result.waitStatus);
      return {
        pid: result.pid,
        waitStatus: result.waitStatus,
        outcome: CHILD_OUTCOMES[status.outcome],
        exitCode: status.exitCode,
        signal: status.signal,
        usage: encodeUsage(result.usage),
      };
    },
    kill: (req) => ({
      signalled: kernel.kill({
        senderPid: req.senderPid,
        pid: req.pid,
        tid: req.tid,
        signal: req.signal,
        forced: req.forced,
        code: req.code,
        address: req.address,
      }),
    }),
    getProcess: (req) => ({ process: encodeProcess(table.require(req.pid)) }),
    listProcesses: (req) => ({
      processes: table.list({
        parentPid: req.parentPid === 0 ? undefined : req.parentPid,
        pgid: req.pgid === 0 ? undefined : req.pgid,
      }).filter((p) =>
        req.state === ProcessState.UNSPECIFIED || PROCESS_STATES[kernel.processState(p)] === req.state
      )
        .map(encodeProcess),
    }),
    getCurrentProcess: (req) => {
      const current = scheduler.current(req.cpu);
      return { process: current ? encodeProcess(table.require(current.pid)) : undefined };
    },
    handleSignal: async (req) => {
      const decision = await kernel.handleSignal(req.pid, req.tid);
      switch (decision.kind) {
        case "none":
          return { outcome: SignalOutcome.NONE };
        case "handler":
          return {
            outcome: SignalOutcome.HANDLER,
            delivery: {
              signal: decision.signal,
              handler: decision.action.handler,
              flags: decision.action.flags,
              handlerMask: decision.handlerMask,
              savedMask: decision.savedMask,
              siginfo: decision.siginfo,
              alternateStack: decision.alternateStack,
              alternateStackSize: decision.alternateStackSize,
            },
            signal: decision.signal,
            morePending: decision.morePending,
          };
        case "terminate":
          return {
            outcome: SignalOutcome.TERMINATE,
            signal: decision.signal,
            waitStatus: decision.waitStatus,
          };
        case "stop":
          return { outcome: SignalOutcome.STOP, signal: decision.signal };
      }
    },
    setSignalAction: (req) => ({
      previous: encodeAction(
        kernel.setSignalAction(req.pid, req.signal, req.action ? decodeAction(req.action) : null),
      ),
    }),
    setSignalMask: (req) => {
      const how = MASK_HOWS.get(req.how);
      if (how === undefined) throw invalidArgument("how", "a mask change is BLOCK, UNBLOCK or SET");
      const result = kernel.setSignalMask(
        req.pid,
        req.tid,
        (current) => applySignalMask(current, how, req.mask),
      );
      return { previous: result.previous, signalPending: result.signalPending };
    },
    getSignalMask: (req) => {
      const thread = table.requireThreadOf(req.pid, req.tid);
      return { blocked: thread.blocked, pending: thread.pending.signals | thread.process.pending.signals };
    },
    setResourceLimits: (req) => {
      const previous = kernel.resourceLimits(
        req.callerPid,
        req.pid === 0 ? req.callerPid : req.pid,
        req.limits.map((l) => ({ resource: rlimitOf(l.resource), limit: { soft: l.soft, hard: l.hard } })),
      );
      return { previous: previous.map((l, i) => ({ resource: req.limits[i].resource, ...l })) };
    },
    getResourceLimits: (req) => {
      const process = table.require(req.pid);
      const resources = req.resources.length > 0
        ? req.resources
        : Array.from({ length: RLIM_NLIMITS }, (_, r) => (r + 1) as Resource);
      return {
        limits: resources.map((resource) => ({ resource, ...process.limits.get(rlimitOf(resource)) })),
      };
    },
    getResourceUsage: (req) => {
      const process = table.require(req.pid);
      switch (req.scope) {
        case ResourceUsageScope.PROCESS:
          return { usage: encodeUsage(kernel.processUsage(process)) };
        case ResourceUsageScope.CHILDREN:
          return { usage: encodeUsage(process.childrenUsage) };
        case ResourceUsageScope.THREAD:
          return { usage: encodeUsage(kernel.threadUsage(table.requireThreadOf(req.pid, req.tid))) };
        default:
          throw invalidArgument("scope", "usage is of the PROCESS, its CHILDREN or one THREAD");
      }
    },
    detachFromParent: (req) => ({ ppid: table.detachFromParent(req.pid) }),
    setProcessGroup: (req) => ({ pgid: table.setProcessGroup(req.callerPid, req.pid, req.pgid) }),
    setSession: (req) => ({ sid: table.setSession(req.pid) }),

    createThread: async (req) => {
      checkNice(req.nice);
      const affinity = req.affinity.length > 0 ? scheduler.onlineCpus(req.affinity) : null;
      const tid = await kernel.createThread(req.pid, {
        priority: priorityOf(req.priority, PRIORITY_NORMAL),
        nice: req.nice,
        affinity,
      }, req.clearChildTid);
      return { tid };
    },
    removeThread: async (req) => {
      const thread = table.requireThread(req.tid);
      await kernel.exit(thread.process.pid, req.tid, false, 0);
      return {};
    },
    yield: (req) => ({ next: encodeDispatch(kernel.yield(req.cpu, req.tid)) }),
    tick: (req) => {
      const decision = kernel.tick(req.cpu, Number(req.nowNanos));
      return {
        preempt: decision.preempt,
        next: encodeDispatch(decision.next),
        signalPending: decision.signalPending,
      };
    },
    schedule: (req) => ({ next: encodeDispatch(kernel.schedule(req.cpu)) }),
    setPriority: (req) => {
      checkNice(req.nice);
      const priority = req.priority === ThreadPriority.UNSPECIFIED
        ? null
        : priorityOf(req.priority, PRIORITY_NORMAL);
      const previous = kernel.setPriority(req.tid, priority, req.nice);
      return { previousPriority: previous.priority, previousNice: previous.nice };
    },
    setAffinity: (req) => {
      table.requireThread(req.tid);
      return { cpus: scheduler.setAffinity(req.tid, req.cpus) };
    },
    sleep: (req) => {
      const thread = table.requireThread(req.tid);
      const wakeAt = kernel.now() + Number(req.durationNanos);
      kernel.sleep(thread, { state: "sleeping", wakeAt, inCall: false, interruptible: true });
      return { wakeAtNanos: BigInt(wakeAt) };
    },
    wake: (req) => {
      table.requireThread(req.tid);
      return { woken: kernel.wake(req.tid) };
    },
    block: (req) => {
      const thread = table.requireThread(req.tid);
      const waitObject = decodeWaitObject(req.waitObject);
      kernel.sleep(thread, {
        state: "blocked",
        waitObject,
        inCall: false,
        interruptible: waitObject.kind !== "io",
      });
      return {};
    },
    unblock: (req) => {
      switch (req.target.case) {
        case "tid":
          table.requireThread(req.target.value);
          return { wokenTids: kernel.unblock({ tid: req.target.value }) };
        case "waitObject":
          return {
            wokenTids: kernel.unblock({ object: decodeWaitObject(req.target.value), max: req.maxThreads }),
          };
        default:
          throw invalidArgument("target", "unblock names a thread or a wait object");
      }
    },
    getCurrentThread: (req) => {
      const current = scheduler.current(req.cpu);
      const thread = current ? table.thread(current.tid) : undefined;
      return { thread: thread ? encodeThread(thread) : undefined };
    },
    loadBalance: () => ({ migrations: scheduler.loadBalance() }),
    getStatistics: () => {
      const counts = table.counts();
      return {
        cpus: scheduler.statistics(kernel.now()).map((c) => ({
          cpu: c.cpu,
          runnableByPriority: c.runnableByPriority,
          load: BigInt(c.load),
          contextSwitches: BigInt(c.contextSwitches),
          ticks: BigInt(c.ticks),
          idleTicks: BigInt(c.idleTicks),
          migrations: BigInt(c.migrations),
          currentTid: c.currentTid,
        })),
        processes: BigInt(counts.processes),
        zombies: BigInt(counts.zombies),
        threads: BigInt(table.threadCount()),
        forks: BigInt(kernel.counters.forks),
        execs: BigInt(kernel.counters.execs),
        exits: BigInt(kernel.counters.exits),
        signalsDelivered: BigInt(kernel.counters.signalsDelivered),
        kernelCalls: BigInt(kernel.counters.kernelCalls),
      };
    },

    kernelCall: (requests) => {
      const replies = new Channel<KernelCallReply>();
      const stream = new KernelCallStream(kernel, (reply) => replies.push(reply));
      return serveConcurrently(requests, replies, (request) => stream.handle(request));
    },
  });

  return {
    name: "sched",
    bound: [bound],
    start: async () => {
      await kernel.start();
      const cpu = kernel.cpuDescription;
      return `${config.cpus} CPUs started with per-CPU runqueues, platform ${cpu.platform}, ` +
        `AT_HWCAP 0x${cpu.hwcap.toString(16)}, AT_HWCAP2 0x${cpu.hwcap2.toString(16)}; no processes yet`;
    },
    stop: () => {
      kernel.stop();
      return Promise.resolve();
    },
  };
}
