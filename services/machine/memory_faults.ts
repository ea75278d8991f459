// Faults of user memory, resolved by vmm: page faults and segment misses of the thread's own
// accesses (a fault vmm answers with a signal sends it, forced, to the thread through sched), and
// the faults system-call copies run into (resolved the same way, but a signal answer only fails
// the copy with EFAULT). Page faults travel on vmm's PageFaults stream (page_fault_stream.ts),
// segment misses, rarer, as GetSegment calls.
//
// When vmm cannot answer (a transport failure, an unknown address space after a vmm restart), the
// page cannot be supplied: the thread gets SIGBUS (BUS_ADRERR), as Linux gives for a page it
// cannot read in, and a copy fails with EIO. vmm's EFAULT means the address is not user memory at
// all: SIGSEGV (SEGV_MAPERR), and EFAULT for a copy.
import { SpanStatusCode, trace } from "@opentelemetry/api";
import {
  AccessType,
  FaultCause,
  FaultResult,
  type HandlePageFaultResponse,
  type Segment,
  type VmmService,
} from "../../gen/astra/vmm/v1/vmm_pb.ts";
import type { SchedService } from "../../gen/astra/sched/v1/sched_pb.ts";
import { Errno, toAstraError } from "../../lib/errors.ts";
import { BUS_ADRERR, SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGSEGV } from "../../lib/linux/signals.ts";
import {
  PAGE_SHIFT_16M,
  PAGE_SHIFT_4K,
  PAGE_SHIFT_64K,
  type PageShift,
  SEGMENT_1T,
  SEGMENT_256M,
  SEGMENT_SHIFT_1T,
  SEGMENT_SHIFT_256M,
  type SlbEntry,
} from "../../lib/ppc/hpt.ts";
import type { Client } from "../../lib/rpc.ts";
import { traceparentOf } from "../../lib/tracing.ts";
import type {
  FaultAccess,
  PageFaultOutcome,
  SegmentOutcome,
  TrappedThread,
  UserFault,
  UserMemory,
} from "./kernel_side.ts";
import { type FaultReport, PageFaultStream } from "./page_fault_stream.ts";
import type { RateLimitedLog } from "./rate_limited_log.ts";
import type { UserFaultHandler } from "./user_copy.ts";

const ACCESS: Readonly<Record<FaultAccess, AccessType>> = {
  read: AccessType.READ,
  write: AccessType.WRITE,
  execute: AccessType.EXECUTE,
};

const PAGE_SHIFTS: readonly number[] = [PAGE_SHIFT_4K, PAGE_SHIFT_64K, PAGE_SHIFT_16M];

/** The signal and si_code of each way vmm refuses a fault. */
const FAULT_SIGNALS: ReadonlyMap<FaultResult, { signal: number; code: number }> = new Map([
  [FaultResult.SIGSEGV_MAPERR, { signal: SIGSEGV, code: SEGV_MAPERR }],
  [FaultResult.SIGSEGV_ACCERR, { signal: SIGSEGV, code: SEGV_ACCERR }],
  [FaultResult.SIGBUS, { signal: SIGBUS, code: BUS_ADRERR }],
]);

/**
 * A fault that was not resolved: the signal it raises (with si_code and si_addr) and the errno a
 * copy that ran into it fails with (EFAULT when vmm refused the access, EIO when vmm could not be
 * asked).
 */
interface Refusal {
  signal: number;
  code: number;
  address: bigint;
  errno: Errno;
}

export class MemoryFaults implements UserFaultHandler {
  readonly #pageFaults: PageFaultStream;
  readonly #tracer = trace.getTracer("machine");

  constructor(
    private readonly vmm: Client<typeof VmmService>,
    private readonly sched: Client<typeof SchedService>,
    private readonly log: RateLimitedLog,
    /** A span per page fault, sent along so that vmm's work for it is traced beneath. */
    private readonly traceFaults = false,
  ) {
    this.#pageFaults = new PageFaultStream(vmm, log);
  }

  /** Ends the page-fault stream: faults still in flight go unsupplied. */
  close(): Promise<void> {
    return this.#pageFaults.close();
  }

  async pageFault(
    thread: TrappedThread,
    address: bigint,
    access: FaultAccess,
    cause: "not-mapped" | "protection" | "bad-real-address",
  ): Promise<PageFaultOutcome> {
    const refusal = await this.#resolvePage(thread, address, access, cause);
    if (!refusal) return { kind: "mapped" };
    await this.sendSignal(thread, refusal.signal, refusal.code, refusal.address);
    return { kind: "signal", signal: refusal.signal };
  }

  async segmentMiss(thread: TrappedThread, address: bigint): Promise<SegmentOutcome> {
    const found = await this.#segment(thread, address);
    if ("esid" in found) return { kind: "segment", entry: found };
    await this.sendSignal(thread, found.signal, found.code, found.address);
    return { kind: "signal", signal: found.signal };
  }

  async faultIn(thread: TrappedThread, memory: UserMemory, fault: UserFault): Promise<Errno | 0> {
    if (fault.cause === "no-segment") {
      const found = await this.#segment(thread, fault.address);
      if (!("esid" in found)) return found.errno;
      memory.loadSegment(found);
      return 0;
    }
    const refusal = await this.#resolvePage(thread, fault.address, fault.access, fault.cause);
    return refusal ? refusal.errno : 0;
  }

  /** A signal the kernel raises for the thread: delivered even if blocked or ignored. */
  async sendSignal(thread: TrappedThread, signal: number, code: number, address: bigint): Promise<void> {
    try {
      await this.sched.kill({
        senderPid: 0,
        pid: thread.pid,
        tid: thread.tid,
        signal,
        forced: true,
        code,
        address,
      });
    } catch (err) {
      this.log.error("sched.Kill", "a fault's signal could not be sent", {
        pid: thread.pid,
        tid: thread.tid,
        signal,
        status: toAstraError(err).describe(),
      });
    }
  }

  async #resolvePage(
    thread: TrappedThread,
    address: bigint,
    access: FaultAccess,
    cause: "not-mapped" | "protection" | "bad-real-address",
  ): Promise<Refusal | undefined> {
    // A translation to something that is not RAM is not vmm's to fix: the bus refuses it.
    if (cause === "bad-real-address") {
      return { signal: SIGBUS, code: BUS_ADRERR, address, errno: Errno.EFAULT };
    }
    const fault: FaultReport = {
      spaceId: thread.spaceId,
      address,
      access: ACCESS[access],
      cause: cause === "not-mapped"
        ? FaultCause.NOT_MAPPED
        : access === "execute"
        ? FaultCause.NO_EXECUTE
        : FaultCause.PROTECTION,
      tid: thread.tid,
      cpu: thread.cpu,
    };
    try {
      const response = this.traceFaults
        ? await this.#traced(thread, fault)
        : await this.#pageFaults.handle(fault, "");
      if (response.result === FaultResult.MAPPED) return undefined;
      const raised = FAULT_SIGNALS.get(response.result);
      if (raised) return { ...raised, address: response.signalAddress || address, errno: Errno.EFAULT };
      this.log.error("vmm.PageFaults:result", "vmm answered a page fault with no result", {
        result: response.result,
      });
    } catch (err) {
      return this.#unanswered(
        "vmm.PageFaults",
        "vmm could not resolve a page fault",
        thread,
        address,
        err,
      );
    }
    return unsupplied(address);
  }

  async #segment(
    thread: TrappedThread,
    address: bigint,
  ): Promise<SlbEntry | Refusal> {
    try {
      const { segment } = await this.vmm.getSegment({ spaceId: thread.spaceId, address });
      const entry = segment && slbEntry(segment);
      if (entry) return entry;
      this.log.error(
        "vmm.GetSegment:segment",
        "vmm answered a segment miss with no segment the MMU can load",
        {
          segmentShift: segment?.segmentShift,
          basePageShift: segment?.basePageShift,
        },
      );
    } catch (err) {
      return this.#unanswered("vmm.GetSegment", "vmm could not give a segment", thread, address, err);
    }
    return unsupplied(address);
  }

  async #traced(thread: TrappedThread, fault: FaultReport): Promise<HandlePageFaultResponse> {
    const span = this.#tracer.startSpan("vmm.HandlePageFault", {
      root: true,
      attributes: {
        "fault.address": `0x${fault.address.toString(16)}`,
        "fault.access": AccessType[fault.access],
        "fault.cause": FaultCause[fault.cause],
        pid: thread.pid,
        tid: thread.tid,
      },
    });
    try {
      const response = await this.#pageFaults.handle(fault, traceparentOf(span));
      span.setAttribute("fault.result", FaultResult[response.result] ?? response.result);
      return response;
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: toAstraError(error).describe() });
      throw error;
    } finally {
      span.end();
    }
  }

  /** vmm failed a fault: its EFAULT means no user memory is there, anything else goes unsupplied. */
  #unanswered(
    method: string,
    message: string,
    thread: TrappedThread,
    address: bigint,
    err: unknown,
  ): Refusal {
    const failure = toAstraError(err);
    if (failure.errno === Errno.EFAULT) {
      return { signal: SIGSEGV, code: SEGV_MAPERR, address, errno: Errno.EFAULT };
    }
    this.log.error(method, message, { spaceId: thread.spaceId, address, status: failure.describe() });
    return unsupplied(address);
  }
}

/** A page vmm could not supply. */
function unsupplied(address: bigint): Refusal {
  return { signal: SIGBUS, code: BUS_ADRERR, address, errno: Errno.EIO };
}

/** vmm's Segment as the MMU's SLB entry; undefined if it is not one the MMU can load. */
export function slbEntry(segment: Segment): SlbEntry | undefined {
  const segmentSize = segment.segmentShift === SEGMENT_SHIFT_256M
    ? SEGMENT_256M
    : segment.segmentShift === SEGMENT_SHIFT_1T
    ? SEGMENT_1T
    : undefined;
  if (segmentSize === undefined || !PAGE_SHIFTS.includes(segment.basePageShift)) return undefined;
  return {
    esid: Number(segment.esid),
    vsid: Number(segment.vsid),
    segmentSize,
    basePageShift: segment.basePageShift as PageShift,
    // User segments have both storage keys set, as Linux sets them; only Kp applies in problem state.
    ks: true,
    kp: segment.problemKey,
    noExecute: segment.noExecute,
  };
}
