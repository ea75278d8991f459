// Page faults, as the machine reports them: one at a time on HandlePageFault (sched's loader, tests)
// or many on the long-lived PageFaults stream (the machine's trap path, where a unary call per
// fault would cost a round trip each). Both check a request the same way and run the same fault
// (spaces.ts); the stream answers a failure with its error detail and goes on.
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  AccessType as ProtoAccess,
  FaultCause,
  FaultResult,
  type HandlePageFaultRequest,
  type HandlePageFaultResponseSchema,
  type PageFaultsRequest,
  type PageFaultsResponseSchema,
} from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { Channel, serveConcurrently } from "../../lib/channel.ts";
import { AstraError, Errno, toAstraError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { inTraceOf } from "../../lib/tracing.ts";
import type { AccessType } from "./aspace.ts";
import type { AddressSpaces } from "./spaces.ts";
import { memoryError, userNumber } from "./vma.ts";

type FaultReply = MessageInitShape<typeof HandlePageFaultResponseSchema>;
type StreamReply = MessageInitShape<typeof PageFaultsResponseSchema>;

const ACCESS: Partial<Record<ProtoAccess, AccessType>> = {
  [ProtoAccess.READ]: "read",
  [ProtoAccess.WRITE]: "write",
  [ProtoAccess.EXECUTE]: "execute",
};

/** Checks a fault the machine reported, resolves it, and encodes the outcome. */
export async function handlePageFault(
  spaces: AddressSpaces,
  cpus: number,
  req: HandlePageFaultRequest,
): Promise<FaultReply> {
  const access = ACCESS[req.access];
  if (!access) throw invalid("access", `access ${req.access} is not READ, WRITE or EXECUTE`);
  if (!(req.cause in FaultCause)) throw invalid("cause", `unknown fault cause ${req.cause}`);
  if (req.cause === FaultCause.NO_EXECUTE && access !== "execute") {
    throw invalid("cause", "a no-execute fault is an instruction fetch");
  }
  if (req.tid < 0) throw invalid("tid", `thread id ${req.tid} is negative`);
  if (req.cpu >= cpus) throw invalid("cpu", `CPU ${req.cpu} does not exist`);
  const outcome = await spaces.fault(req.spaceId, userNumber(req.address), access);
  if (outcome.result === FaultResult.MAPPED) {
    return {
      result: outcome.result,
      action: outcome.action,
      physicalAddress: BigInt(outcome.physical),
      flags: outcome.flags,
      detail: outcome.detail,
    };
  }
  return { result: outcome.result, signalAddress: req.address, detail: outcome.detail };
}

function invalid(argument: string, message: string): AstraError {
  return memoryError(Errno.EINVAL, argument, message);
}

/**
 * Serves a PageFaults stream: every fault is handled as it arrives (those of one address space
 * queue on it in arrival order, spaces.ts) and answered as it finishes, paired by call_id. A fault
 * never fails the stream: `handle`'s failure is its answer. `handle` sees a request without its
 * fault as one with every field unset, which fails its checks.
 */
export function servePageFaults(
  requests: AsyncIterable<PageFaultsRequest>,
  handle: (fault: HandlePageFaultRequest) => Promise<FaultReply>,
  log: Logger,
): AsyncIterable<StreamReply> {
  const replies = new Channel<StreamReply>();
  return serveConcurrently(requests, replies, async (request) => {
    const callId = request.callId;
    let reply: StreamReply;
    try {
      const handled = await inTraceOf(request.traceparent, () => handle(request.fault ?? noFault));
      reply = { callId, outcome: { case: "handled", value: handled } };
    } catch (error) {
      if (!(error instanceof AstraError)) log.error(`a page fault failed unexpectedly: ${error}`);
      reply = { callId, outcome: { case: "error", value: toAstraError(error, "vmm").detail } };
    }
    replies.push(reply);
  });
}

/** A fault request with nothing set (a stream request that carried none). */
const noFault: HandlePageFaultRequest = {
  $typeName: "astra.vmm.v1.HandlePageFaultRequest",
  spaceId: 0n,
  address: 0n,
  access: ProtoAccess.UNSPECIFIED,
  cause: FaultCause.UNSPECIFIED,
  tid: 0,
  cpu: 0,
};
