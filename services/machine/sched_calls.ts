// The system calls sched owns, on SchedService.KernelCall. sched reads guest memory by asking for
// it: a FETCH response names ranges, the machine reads them (faulting pages in) and sends the same
// call_id again with them as inputs. RETURN writes `outputs` and resumes the thread; BLOCKED puts
// it to sleep until a later RETURN with the same call_id; EXEC, EXIT_THREAD and EXIT_PROCESS end
// its current program.
import { create } from "@bufbuild/protobuf";
import {
  GuestMemorySchema,
  type GuestRange,
  KernelCallAction,
  type KernelCallRequest,
  type KernelCallResponse,
  type SchedService,
} from "../../gen/astra/sched/v1/sched_pb.ts";
import { Errno } from "../../lib/errors.ts";
import { MAX_IO_BYTES } from "../../lib/linux/vfs_calls.ts";
import type { Client } from "../../lib/rpc.ts";
import { argument, failed, KernelCallOwner, outcomeOf, type PendingCall } from "./kernel_call_owner.ts";
import type { KernelCallOutcome, TrappedThread, UserMemory } from "./kernel_side.ts";
import type { RateLimitedLog } from "./rate_limited_log.ts";
import { copyFromUser, type UserFaultHandler } from "./user_copy.ts";

type Call = PendingCall<KernelCallRequest, KernelCallResponse>;

const EXIT_THREAD: KernelCallOutcome = { kind: "exit-thread" };

export class SchedCalls extends KernelCallOwner<KernelCallRequest, KernelCallResponse> {
  constructor(sched: Client<typeof SchedService>, faults: UserFaultHandler, log: RateLimitedLog) {
    super("sched", sched, faults, log);
  }

  call(
    thread: TrappedThread,
    memory: UserMemory,
    number: number,
    args: readonly bigint[],
    traceparent: string,
  ): Promise<KernelCallOutcome> {
    // A literal, complete message: `create` would walk the schema on every system call.
    return this.send(thread, memory, (callId) => ({
      $typeName: "astra.sched.v1.KernelCallRequest",
      callId,
      cpu: thread.cpu,
      pid: thread.pid,
      tid: thread.tid,
      number,
      arg0: argument(args, 0),
      arg1: argument(args, 1),
      arg2: argument(args, 2),
      arg3: argument(args, 3),
      arg4: argument(args, 4),
      arg5: argument(args, 5),
      inputs: [],
      traceparent,
    }));
  }

  answer(call: Call, response: KernelCallResponse): void {
    switch (response.action) {
      case KernelCallAction.RETURN:
        return this.settleAfterOutputs(
          call,
          response.outputs,
          outcomeOf(response.outcome, response.signalPending),
        );
      case KernelCallAction.FETCH:
        this.#fetch(call, response.fetch).catch((err) => this.#protocolError(call, response, String(err)));
        return;
      case KernelCallAction.BLOCKED:
        return this.#block(call);
      case KernelCallAction.EXEC: {
        const entry = response.entry;
        if (!entry) return this.#protocolError(call, response, "EXEC without an entry");
        return this.settle(call, {
          kind: "exec",
          entry: {
            pc: entry.pc,
            r1: entry.r1,
            r3: entry.r3,
            r4: entry.r4,
            r5: entry.r5,
            r6: entry.r6,
            r7: entry.r7,
            r12: entry.r12,
          },
          spaceId: response.spaceId,
        });
      }
      case KernelCallAction.EXIT_THREAD:
        return this.settle(call, EXIT_THREAD);
      case KernelCallAction.EXIT_PROCESS:
        return this.settle(call, { kind: "exit-process", waitStatus: response.waitStatus });
      default:
        return this.#protocolError(call, response, "no action");
    }
  }

  /** Reads the ranges sched asked for and sends the call again with them. */
  async #fetch(call: Call, ranges: readonly GuestRange[]): Promise<void> {
    for (const range of ranges) {
      // Nothing sched reads is this large; a range beyond what a message carries is unreadable.
      const data = range.length > BigInt(MAX_IO_BYTES)
        ? Errno.EFAULT
        : await copyFromUser(this.faults, call.thread, call.memory, range.address, Number(range.length));
      if (typeof data === "number") return this.settle(call, failed(data));
      // The previous round was received (its FETCH came back), so its message is free to reuse.
      call.request.inputs.push(create(GuestMemorySchema, { address: range.address, data }));
    }
    if (!call.settled) this.stream.resend(call);
  }

  #block(call: Call): void {
    if (call.blocked || call.settled) return;
    call.blocked = true;
    const wake = call.settle;
    const done = new Promise<KernelCallOutcome>((settle) => (call.settle = settle));
    wake({ kind: "blocked", done });
  }

  #protocolError(call: Call, response: KernelCallResponse, what: string): void {
    this.log.error("sched:protocol", "sched answered a kernel call the machine cannot apply", {
      what,
      action: response.action,
      number: call.request.number,
    });
    this.settle(call, failed(Errno.EIO));
  }
}
