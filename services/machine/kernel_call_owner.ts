// What the machine's side of each owning service's KernelCall stream has in common: the pending
// call (its thread, memory, request and how it settles), settling it exactly once, writing the
// call's outputs to guest memory before it returns, and the errno of a call whose stream failed.
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { KernelCallStream, type StreamedCall } from "./kernel_call_stream.ts";
import type { KernelCallOutcome, TrappedThread, UserMemory } from "./kernel_side.ts";
import type { RateLimitedLog } from "./rate_limited_log.ts";
import { copyAllToUser, type UserFaultHandler } from "./user_copy.ts";

export class PendingCall<Request, Response extends { callId: bigint }>
  implements StreamedCall<Request, Response> {
  resent = false;
  settled = false;
  /** The owner answered BLOCKED: `settle` now completes the blocked outcome's `done`. */
  blocked = false;

  constructor(
    private readonly owner: KernelCallOwner<Request, Response>,
    readonly id: number,
    readonly thread: TrappedThread,
    readonly memory: UserMemory,
    public request: Request,
    public settle: (outcome: KernelCallOutcome) => void,
  ) {}

  answer(response: Response): void {
    this.owner.answer(this, response);
  }

  lose(error: AstraError): void {
    this.owner.lose(this, error);
  }
}

/** The KernelCall method of an owning service's client. */
export interface KernelCallService<Request, Response> {
  kernelCall(requests: AsyncIterable<Request>, options: { signal: AbortSignal }): AsyncIterable<Response>;
}

export function failed(errno: Errno, signalPending = false): KernelCallOutcome {
  return { kind: "error", errno, signalPending };
}

export function returned(value: bigint, signalPending = false): KernelCallOutcome {
  return { kind: "return", value, signalPending };
}

/** The contracts' `oneof outcome { uint64 value; Errno error; }`. */
type ValueOrError =
  | { case: "value"; value: bigint }
  | { case: "error"; value: Errno }
  | { case: undefined; value?: undefined };

/** A call's value or errno as the thread's outcome. */
export function outcomeOf(outcome: ValueOrError, signalPending = false): KernelCallOutcome {
  return outcome.case === "error"
    ? failed(outcome.value, signalPending)
    : returned(outcome.value ?? 0n, signalPending);
}

/** Argument register i (r3 + i) as the unsigned 64-bit value the contracts carry. */
export function argument(args: readonly bigint[], i: number): bigint {
  return BigInt.asUintN(64, args[i] ?? 0n);
}

/** r3..r8. */
export function sixArguments(args: readonly bigint[]): bigint[] {
  return [
    argument(args, 0),
    argument(args, 1),
    argument(args, 2),
    argument(args, 3),
    argument(args, 4),
    argument(args, 5),
  ];
}

export abstract class KernelCallOwner<Request, Response extends { callId: bigint }> {
  protected readonly stream: KernelCallStream<Request, Response>;
  #nextId = 1;

  constructor(
    peer: string,
    service: KernelCallService<Request, Response>,
    protected readonly faults: UserFaultHandler,
    protected readonly log: RateLimitedLog,
  ) {
    this.stream = new KernelCallStream(
      peer,
      (requests, signal) => service.kernelCall(requests, { signal }),
      log,
    );
  }

  /** Applies a response with the call's id. */
  abstract answer(call: PendingCall<Request, Response>, response: Response): void;

  /**
   * The stream failed before the call's answer: the outcome is unknown, so the call fails with EIO
   * (as after a device error); a call that was asleep in the kernel (BLOCKED) was interrupted,
   * EINTR, which programs retry; a service without the stream never had the call, ENOSYS.
   */
  lose(call: PendingCall<Request, Response>, error: AstraError): void {
    const errno = error.code === Code.UNIMPLEMENTED ? Errno.ENOSYS : call.blocked ? Errno.EINTR : Errno.EIO;
    this.settle(call, failed(errno));
  }

  close(): Promise<void> {
    return this.stream.close();
  }

  /** Sends a new call, its request made with a call_id no call in flight has; settles with its outcome. */
  protected send(
    thread: TrappedThread,
    memory: UserMemory,
    request: (callId: bigint) => Request,
  ): Promise<KernelCallOutcome> {
    const id = this.#nextId++;
    const first = request(BigInt(id));
    return new Promise((settle) =>
      this.stream.send(new PendingCall(this, id, thread, memory, first, settle))
    );
  }

  /** The call's final outcome: it leaves the stream and settles, once. */
  protected settle(call: PendingCall<Request, Response>, outcome: KernelCallOutcome): void {
    if (call.settled) return;
    call.settled = true;
    this.stream.finish(call);
    call.settle(outcome);
  }

  /** Writes the call's outputs, then settles it with `outcome` (EFAULT if they could not be written). */
  protected settleAfterOutputs(
    call: PendingCall<Request, Response>,
    outputs: readonly { address: bigint; data: Uint8Array }[],
    outcome: KernelCallOutcome,
  ): void {
    if (outputs.length === 0) return this.settle(call, outcome);
    const written = copyAllToUser(this.faults, call.thread, call.memory, outputs);
    if (written instanceof Promise) {
      written.then(
        (errno) => this.settle(call, errno === 0 ? outcome : failed(errno)),
        () => this.settle(call, failed(Errno.EIO)),
      );
    } else {
      this.settle(call, written === 0 ? outcome : failed(written));
    }
  }
}
