// The machine's trap path over its peers: the KernelSide the CPU run loop asks when a thread
// traps. A system call goes to the service that owns it (lib/linux's owner table) on that
// service's long-lived KernelCall stream; page faults and segment misses go to vmm; signals,
// ticks and scheduling to sched. A number nobody owns is answered ENOSYS here, with one trace
// span naming the call and a rate-limited log line.
//
// Nothing a peer does throws into the CPU loop. A system call whose peer fails answers an errno
// (kernel_call_owner.ts: EIO, EINTR for a sleeping call, ENOSYS for a missing stream); a fault vmm
// cannot resolve raises SIGBUS (memory_faults.ts); a signal that cannot be delivered because sched
// does not answer HandleSignal terminates the process (SIGKILL) rather than resuming a thread whose
// fault would only come back; a failed Tick keeps the CPU on its thread and a failed Schedule
// leaves it idle until the next RunThread.
import { SpanStatusCode, trace } from "@opentelemetry/api";
import {
  type Dispatch as DispatchMessage,
  SchedService,
  SignalMaskHow,
  SignalOutcome as Outcome,
} from "../../gen/astra/sched/v1/sched_pb.ts";
import { VfsService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import { VmmService } from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { readEnv } from "../../lib/config.ts";
import { Errno, errnoName, toAstraError } from "../../lib/errors.ts";
import { SIGKILL } from "../../lib/linux/signals.ts";
import { type SyscallOwner, syscallOwner } from "../../lib/linux/syscall_owners.ts";
import { syscallName } from "../../lib/linux/syscall_numbers.ts";
import { logger } from "../../lib/log.ts";
import type { Peers } from "../../lib/module.ts";
import { type Client, client } from "../../lib/rpc.ts";
import { TRACE_KERNEL_CALLS_VAR, traceparentOf } from "../../lib/tracing.ts";
import { failed } from "./kernel_call_owner.ts";
import type {
  Dispatch,
  FaultAccess,
  KernelCallOutcome,
  KernelSide,
  PageFaultOutcome,
  SegmentOutcome,
  SignalOutcome,
  TickOutcome,
  TrappedThread,
  UserMemory,
} from "./kernel_side.ts";
import { MemoryFaults } from "./memory_faults.ts";
import { RateLimitedLog } from "./rate_limited_log.ts";
import { SchedCalls } from "./sched_calls.ts";
import { StorageCalls } from "./storage_calls.ts";
import { VmmCalls } from "./vmm_calls.ts";

const NO_SIGNAL: SignalOutcome = { kind: "none" };
const KILLED: SignalOutcome = { kind: "terminate", signal: SIGKILL, waitStatus: SIGKILL };
const KEEP_RUNNING: TickOutcome = { preempt: false, next: undefined, signalPending: false };

export class PeerKernelSide implements KernelSide {
  readonly #sched: Client<typeof SchedService>;
  readonly #log = new RateLimitedLog(logger("machine"));
  readonly #tracer = trace.getTracer("machine");
  readonly #faults: MemoryFaults;
  readonly #schedCalls: SchedCalls;
  readonly #storageCalls: StorageCalls;
  readonly #vmmCalls: VmmCalls;

  /** A span per system call (TRACE_KERNEL_CALLS_VAR); off, a call costs no tracing at all. */
  readonly #traceCalls: boolean;

  constructor(peers: Peers, options: { traceKernelCalls?: boolean } = {}) {
    this.#traceCalls = options.traceKernelCalls ?? readEnv(TRACE_KERNEL_CALLS_VAR) === "1";
    this.#sched = client(SchedService, peers.sched, "machine");
    const vmm = client(VmmService, peers.vmm, "machine");
    this.#faults = new MemoryFaults(vmm, this.#sched, this.#log, this.#traceCalls);
    this.#schedCalls = new SchedCalls(this.#sched, this.#faults, this.#log);
    this.#storageCalls = new StorageCalls(
      client(VfsService, peers.storage, "machine"),
      this.#faults,
      this.#log,
    );
    this.#vmmCalls = new VmmCalls(vmm, this.#faults, this.#log);
  }

  systemCall(
    thread: TrappedThread,
    memory: UserMemory,
    number: number,
    args: readonly bigint[],
  ): Promise<KernelCallOutcome> {
    const owner = syscallOwner(number);
    // The machine's own calls (rt_sigreturn) never get here.
    if (owner === undefined || owner === "machine") {
      return Promise.resolve(this.#unimplemented(thread, number));
    }
    if (!this.#traceCalls) return this.#call(owner, thread, memory, number, args, "");
    return this.#traced(owner, thread, memory, number, args);
  }

  #call(
    owner: Exclude<SyscallOwner, "machine">,
    thread: TrappedThread,
    memory: UserMemory,
    number: number,
    args: readonly bigint[],
    traceparent: string,
  ): Promise<KernelCallOutcome> {
    switch (owner) {
      case "sched":
        return this.#schedCalls.call(thread, memory, number, args, traceparent);
      case "storage":
        return this.#storageCalls.call(thread, memory, number, args, traceparent);
      case "vmm":
        return this.#vmmCalls.call(thread, memory, number, args, traceparent);
    }
  }

  /**
   * A system call with its own trace: a `sys.<name>` span from the trap to the final answer (a
   * blocked call's included), its arguments and result as attributes, and its traceparent sent
   * along so that the owner's work for it is traced beneath.
   */
  async #traced(
    owner: Exclude<SyscallOwner, "machine">,
    thread: TrappedThread,
    memory: UserMemory,
    number: number,
    args: readonly bigint[],
  ): Promise<KernelCallOutcome> {
    const span = this.#tracer.startSpan(`sys.${syscallName(number) ?? number}`, {
      root: true,
      attributes: {
        "syscall.number": number,
        "syscall.owner": owner,
        "syscall.args": args.slice(0, 6).map((a) => `0x${BigInt.asUintN(64, a).toString(16)}`).join(" "),
        pid: thread.pid,
        tid: thread.tid,
      },
    });
    const finish = (outcome: KernelCallOutcome) => {
      if (outcome.kind === "error") {
        const errno = errnoName(outcome.errno);
        span.setAttribute("syscall.errno", errno);
        span.setStatus({ code: SpanStatusCode.ERROR, message: errno });
      } else {
        span.setAttribute(
          "syscall.result",
          outcome.kind === "return" ? `0x${outcome.value.toString(16)}` : outcome.kind,
        );
      }
      span.end();
      return outcome;
    };
    try {
      const outcome = await this.#call(owner, thread, memory, number, args, traceparentOf(span));
      if (outcome.kind !== "blocked") return finish(outcome);
      span.addEvent("blocked");
      return {
        kind: "blocked",
        done: outcome.done.then(finish, (error) => {
          span.end();
          throw error;
        }),
      };
    } catch (error) {
      span.end();
      throw error;
    }
  }

  pageFault(
    thread: TrappedThread,
    address: bigint,
    access: FaultAccess,
    cause: "not-mapped" | "protection" | "bad-real-address",
  ): Promise<PageFaultOutcome> {
    return this.#faults.pageFault(thread, address, access, cause);
  }

  /** Whatever the access: a segment is the same for all, and vmm has nothing per access to check. */
  segmentMiss(thread: TrappedThread, address: bigint, _access: FaultAccess): Promise<SegmentOutcome> {
    return this.#faults.segmentMiss(thread, address);
  }

  raiseSignal(thread: TrappedThread, signal: number, code: number, address: bigint): Promise<void> {
    return this.#faults.sendSignal(thread, signal, code, address);
  }

  async handleSignal(thread: TrappedThread): Promise<SignalOutcome> {
    try {
      const response = await this.#sched.handleSignal({ pid: thread.pid, tid: thread.tid });
      switch (response.outcome) {
        case Outcome.NONE:
          return NO_SIGNAL;
        case Outcome.HANDLER: {
          const delivery = response.delivery;
          if (!delivery) break;
          return {
            kind: "handler",
            delivery: {
              signal: delivery.signal,
              handler: delivery.handler,
              flags: delivery.flags,
              savedMask: delivery.savedMask,
              siginfo: delivery.siginfo,
              alternateStack: delivery.alternateStack,
              alternateStackSize: delivery.alternateStackSize,
            },
            morePending: response.morePending,
          };
        }
        case Outcome.TERMINATE:
          return { kind: "terminate", signal: response.signal, waitStatus: response.waitStatus };
        case Outcome.STOP:
          return { kind: "stop", signal: response.signal };
      }
      this.#log.error(
        "sched.HandleSignal:outcome",
        "sched answered HandleSignal with nothing to do; killing",
        {
          pid: thread.pid,
          tid: thread.tid,
          outcome: response.outcome,
        },
      );
    } catch (err) {
      this.#peerFailed("sched.HandleSignal", err, { pid: thread.pid, tid: thread.tid });
    }
    return KILLED;
  }

  async setSignalMask(thread: TrappedThread, mask: bigint): Promise<void> {
    try {
      await this.#sched.setSignalMask({ pid: thread.pid, tid: thread.tid, how: SignalMaskHow.SET, mask });
    } catch (err) {
      this.#peerFailed("sched.SetSignalMask", err, { pid: thread.pid, tid: thread.tid });
    }
  }

  async tick(cpu: number, nowNanos: bigint): Promise<TickOutcome> {
    try {
      const response = await this.#sched.tick({ cpu, nowNanos });
      return {
        preempt: response.preempt,
        next: dispatch(response.next),
        signalPending: response.signalPending,
      };
    } catch (err) {
      this.#peerFailed("sched.Tick", err, { cpu });
      return KEEP_RUNNING;
    }
  }

  async schedule(cpu: number): Promise<Dispatch | undefined> {
    try {
      return dispatch((await this.#sched.schedule({ cpu })).next);
    } catch (err) {
      this.#peerFailed("sched.Schedule", err, { cpu });
      return undefined;
    }
  }

  /**
   * Ends the KernelCall and page-fault streams: calls still in flight fail (EIO; EINTR for
   * sleeping ones), faults go unsupplied.
   */
  async close(): Promise<void> {
    await Promise.all([
      this.#schedCalls.close(),
      this.#storageCalls.close(),
      this.#vmmCalls.close(),
      this.#faults.close(),
    ]);
  }

  #unimplemented(thread: TrappedThread, number: number): KernelCallOutcome {
    const name = syscallName(number) ?? `${number}`;
    const span = this.#tracer.startSpan(`sys.${name}`, {
      attributes: { "syscall.number": number, "syscall.errno": "ENOSYS", pid: thread.pid, tid: thread.tid },
    });
    span.setStatus({ code: SpanStatusCode.ERROR, message: "ENOSYS" });
    span.end();
    this.#log.warn(`enosys:${number}`, "system call not implemented: ENOSYS", {
      call: name,
      number,
      pid: thread.pid,
    });
    return failed(Errno.ENOSYS);
  }

  #peerFailed(method: string, err: unknown, fields: Record<string, unknown>): void {
    this.#log.error(method, `${method} failed`, { ...fields, status: toAstraError(err).describe() });
  }
}

/** The machine's trap path over `peers`. */
export function peerKernelSide(peers: Peers): PeerKernelSide {
  return new PeerKernelSide(peers);
}

function dispatch(next: DispatchMessage | undefined): Dispatch | undefined {
  if (!next || next.tid <= 0) return undefined;
  return { tid: next.tid, pid: next.pid, timeSliceNanos: Number(next.timeSliceNanos) };
}
