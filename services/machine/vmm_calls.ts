// The memory system calls vmm owns (brk, mmap, munmap, mprotect, mremap, madvise), on
// VmmService.KernelCall: the raw registers go in, r3 or an errno comes back; vmm decodes Linux's
// flags itself and these calls read or write no guest memory.
import {
  type KernelCallRequest,
  type KernelCallResponse,
  type VmmService,
} from "../../gen/astra/vmm/v1/vmm_pb.ts";
import type { Client } from "../../lib/rpc.ts";
import { KernelCallOwner, outcomeOf, type PendingCall, sixArguments } from "./kernel_call_owner.ts";
import type { KernelCallOutcome, TrappedThread, UserMemory } from "./kernel_side.ts";
import type { RateLimitedLog } from "./rate_limited_log.ts";
import type { UserFaultHandler } from "./user_copy.ts";

export class VmmCalls extends KernelCallOwner<KernelCallRequest, KernelCallResponse> {
  constructor(vmm: Client<typeof VmmService>, faults: UserFaultHandler, log: RateLimitedLog) {
    super("vmm", vmm, faults, log);
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
      $typeName: "astra.vmm.v1.KernelCallRequest",
      callId,
      spaceId: thread.spaceId,
      pid: thread.pid,
      tid: thread.tid,
      cpu: thread.cpu,
      number,
      args: sixArguments(args),
      traceparent,
    }));
  }

  answer(call: PendingCall<KernelCallRequest, KernelCallResponse>, response: KernelCallResponse): void {
    this.settle(call, outcomeOf(response.outcome));
  }
}
