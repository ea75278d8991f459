// The system calls storage's VFS owns, on VfsService.KernelCall. The VFS never reads guest memory
// itself: the machine copies what each call reads before sending it (lib/linux's per-call table)
// and writes what it answers (data read, a struct stat, getcwd's path) before the thread resumes.
import {
  type KernelCallRequest,
  type KernelCallResponse,
  type VfsService,
} from "../../gen/astra/storage/v1/vfs_pb.ts";
import { Errno } from "../../lib/errors.ts";
import { VFS_KERNEL_CALLS } from "../../lib/linux/vfs_calls.ts";
import type { Client } from "../../lib/rpc.ts";
import { failed, KernelCallOwner, type PendingCall, returned, sixArguments } from "./kernel_call_owner.ts";
import type { KernelCallOutcome, TrappedThread, UserMemory } from "./kernel_side.ts";
import type { RateLimitedLog } from "./rate_limited_log.ts";
import type { UserFaultHandler } from "./user_copy.ts";
import { copyVfsInputs, type GuestBytes } from "./vfs_inputs.ts";

const NO_INPUTS: GuestBytes[] = [];

export class StorageCalls extends KernelCallOwner<KernelCallRequest, KernelCallResponse> {
  constructor(vfs: Client<typeof VfsService>, faults: UserFaultHandler, log: RateLimitedLog) {
    super("storage", vfs, faults, log);
  }

  /** A call of VFS_KERNEL_CALLS. */
  call(
    thread: TrappedThread,
    memory: UserMemory,
    number: number,
    args: readonly bigint[],
    traceparent: string,
  ): Promise<KernelCallOutcome> {
    const specs = VFS_KERNEL_CALLS.get(number)?.inputs ?? [];
    const inputs = specs.length === 0 ? NO_INPUTS : copyVfsInputs(this.faults, thread, memory, specs, args);
    return inputs instanceof Promise
      ? inputs.then((copied) => this.#send(thread, memory, number, args, copied, traceparent))
      : this.#send(thread, memory, number, args, inputs, traceparent);
  }

  answer(call: PendingCall<KernelCallRequest, KernelCallResponse>, response: KernelCallResponse): void {
    if (response.errno !== Errno.UNSPECIFIED) return this.settle(call, failed(response.errno));
    this.settleAfterOutputs(call, response.outputs, returned(BigInt.asUintN(64, response.result)));
  }

  #send(
    thread: TrappedThread,
    memory: UserMemory,
    number: number,
    args: readonly bigint[],
    inputs: GuestBytes[] | Errno,
    traceparent: string,
  ): Promise<KernelCallOutcome> {
    if (typeof inputs === "number") return Promise.resolve(failed(inputs));
    // A literal, complete message: `create` would walk the schema on every system call.
    return this.send(thread, memory, (callId) => ({
      $typeName: "astra.storage.v1.KernelCallRequest",
      callId,
      pid: thread.pid,
      tid: thread.tid,
      number,
      args: sixArguments(args),
      inputs: inputs.map((input) => ({ $typeName: "astra.storage.v1.GuestBuffer", ...input })),
      traceparent,
    }));
  }
}
