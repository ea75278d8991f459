// The machine's page faults on VmmService.PageFaults: one long-lived stream instead of a unary
// HandlePageFault per fault (a round trip each over gRPC). Faults are multiplexed by call_id on a
// KernelCallStream, which reopens the stream after a failure and gives back the faults a failed
// stream had not answered (a vmm restart fails them, it never leaves a thread waiting).
import {
  type AccessType,
  type FaultCause,
  type HandlePageFaultResponse,
  type PageFaultsRequest,
  type PageFaultsResponse,
  type VmmService,
} from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import type { Client } from "../../lib/rpc.ts";
import { KernelCallStream, type StreamedCall } from "./kernel_call_stream.ts";
import type { RateLimitedLog } from "./rate_limited_log.ts";

/** HandlePageFault's fields. */
export interface FaultReport {
  spaceId: bigint;
  address: bigint;
  access: AccessType;
  cause: FaultCause;
  tid: number;
  cpu: number;
}

export class PageFaultStream {
  readonly #stream: KernelCallStream<PageFaultsRequest, PageFaultsResponse>;
  #nextId = 1;

  constructor(vmm: Client<typeof VmmService>, log: RateLimitedLog) {
    this.#stream = new KernelCallStream(
      "vmm page-fault",
      (requests, signal) => vmm.pageFaults(requests, { signal }),
      log,
    );
  }

  /**
   * HandlePageFault on the stream: vmm's response, or its failure thrown as an AstraError with
   * vmm's detail (the stream carries no status code: UNKNOWN), or the stream's own failure.
   */
  handle(fault: FaultReport, traceparent: string): Promise<HandlePageFaultResponse> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const stream = this.#stream;
      const call: StreamedCall<PageFaultsRequest, PageFaultsResponse> = {
        id,
        // A literal, complete message: `create` would walk the schema on every fault.
        request: {
          $typeName: "astra.vmm.v1.PageFaultsRequest",
          callId: BigInt(id),
          fault: { $typeName: "astra.vmm.v1.HandlePageFaultRequest", ...fault },
          traceparent,
        },
        resent: false,
        answer(response) {
          stream.finish(call);
          const outcome = response.outcome;
          if (outcome.case === "handled") resolve(outcome.value);
          else if (outcome.case === "error") reject(AstraError.fromDetail(Code.UNKNOWN, outcome.value));
          else reject(new AstraError(Code.UNKNOWN, Errno.EIO, "vmm answered a page fault with no outcome"));
        },
        lose: reject,
      };
      stream.send(call);
    });
  }

  /** Ends the stream: faults still in flight fail (CANCELLED). */
  close(): Promise<void> {
    return this.#stream.close();
  }
}
