// One KernelCall stream from the machine: requests are handled concurrently and answered in any
// order. A call that needs guest memory is answered FETCH and comes back under the same call_id
// with the bytes; the stream keeps what every round brought (whether the machine resends earlier
// ranges or not) and the handler's per-call state. A call that sleeps is answered BLOCKED at once and
// again, with its real outcome, when it wakes; only then may its thread run again.
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  KernelCallAction,
  type KernelCallRequest,
  type KernelCallResponseSchema,
} from "../../gen/astra/sched/v1/sched_pb.ts";
import { Errno } from "../../lib/errors.ts";
import { inTraceOf } from "../../lib/tracing.ts";
import type { GuestBytes } from "./guest_memory.ts";
import type { SchedKernel } from "./kernel.ts";
import { log } from "./log.ts";
import { type CallOutcome, type CallState, runSystemCall } from "./syscalls.ts";

export type KernelCallReply = MessageInitShape<typeof KernelCallResponseSchema>;

interface CallInProgress {
  inputs: GuestBytes[];
  state: CallState;
}

export class KernelCallStream {
  readonly #calls = new Map<bigint, CallInProgress>();

  constructor(
    private readonly kernel: SchedKernel,
    private readonly reply: (response: KernelCallReply) => void,
  ) {}

  /** Handles one request; resolves once its last answer has been sent. */
  async handle(request: KernelCallRequest): Promise<void> {
    let call = this.#calls.get(request.callId);
    if (!call) {
      call = { inputs: [], state: new Map() };
      this.#calls.set(request.callId, call);
      this.kernel.counters.kernelCalls++;
    }
    for (const input of request.inputs) {
      const known = call.inputs.some((i) =>
        i.address === input.address && i.data.length === input.data.length
      );
      if (!known) call.inputs.push({ address: input.address, data: input.data });
    }
    const inputs = call.inputs, state = call.state;
    const outcome = await inTraceOf(request.traceparent, () =>
      runSystemCall(
        this.kernel,
        {
          cpu: request.cpu,
          pid: request.pid,
          tid: request.tid,
          number: request.number,
          args: [request.arg0, request.arg1, request.arg2, request.arg3, request.arg4, request.arg5],
        },
        inputs,
        state,
      ));
    if (outcome.kind === "fetch") {
      this.reply({
        callId: request.callId,
        action: KernelCallAction.FETCH,
        fetch: outcome.ranges.map((r) => ({ address: r.address, length: r.length })),
      });
      return;
    }
    this.#calls.delete(request.callId);
    if (outcome.kind !== "blocked") {
      this.reply(this.#answer(request, outcome));
      return;
    }
    this.reply({ callId: request.callId, action: KernelCallAction.BLOCKED });
    const final = await outcome.completion.catch((error): CallOutcome => {
      log.error("a sleeping system call failed", { callId: request.callId, error: String(error) });
      return { kind: "error", errno: Errno.EIO, outputs: [] };
    });
    this.reply(this.#answer(request, final));
    const thread = this.kernel.table.thread(request.tid);
    if (thread && (final.kind === "return" || final.kind === "error")) this.kernel.resumeAfterCall(thread);
  }

  #answer(request: KernelCallRequest, outcome: CallOutcome): KernelCallReply {
    const callId = request.callId;
    switch (outcome.kind) {
      case "return":
      case "error": {
        const thread = this.kernel.table.thread(request.tid);
        return {
          callId,
          action: KernelCallAction.RETURN,
          outcome: outcome.kind === "return"
            ? { case: "value", value: outcome.value }
            : { case: "error", value: outcome.errno },
          outputs: outcome.outputs.map((o) => ({ address: o.address, data: o.data })),
          signalPending: thread !== undefined && thread.state !== "exited" &&
            this.kernel.signalPending(thread),
        };
      }
      case "exec":
        return { callId, action: KernelCallAction.EXEC, entry: outcome.registers, spaceId: outcome.spaceId };
      case "exit-thread":
        return { callId, action: KernelCallAction.EXIT_THREAD };
      case "exit-process":
        return { callId, action: KernelCallAction.EXIT_PROCESS, waitStatus: outcome.waitStatus };
      case "fetch":
      case "blocked":
        throw new Error(`a ${outcome.kind} outcome is not a final answer`);
    }
  }
}
