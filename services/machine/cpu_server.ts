// MachineService's CPU side: the CPUs, thread contexts, a thread's memory, the MMU's page table
// and TLB. Decode, validate, call the machine's CPUs, encode; errors name the contract's fields.
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  CpuRunState,
  type CpuSummarySchema,
  type SegmentMapping,
  type SegmentMappingSchema,
  SegmentSize,
} from "../../gen/astra/machine/v1/cpu_pb.ts";
import { type MachineService, TlbScope } from "../../gen/astra/machine/v1/machine_pb.ts";
import { invalidArgument } from "../../lib/errors.ts";
import {
  isSupportedPageShift,
  SEGMENT_1T,
  SEGMENT_256M,
  segmentShift,
  type SlbEntry,
  vsidLimit,
} from "../../lib/ppc/hpt.ts";
import type { ServiceImpl } from "../../lib/rpc.ts";
import { PVR_POWER9 } from "./cpu/features.ts";
import type { CpuActivity } from "./core.ts";
import type { TlbInvalidation } from "./cpus.ts";
import { type Machine, MAX_PHYSICAL_TRANSFER, safeNumber } from "./machine.ts";
import { registersFromMessage, registersToMessage } from "./registers.ts";
import { MSR_FE0, MSR_FE1, threadMsr, USER_MSR } from "./signal_frame.ts";

type CpuMethods =
  | "listCpus"
  | "getCpuState"
  | "setCpuState"
  | "startCpu"
  | "stopCpu"
  | "createThreadContext"
  | "getThreadContext"
  | "setThreadContext"
  | "deleteThreadContext"
  | "runThread"
  | "readVirtual"
  | "writeVirtual"
  | "invalidateTlb"
  | "setPartitionTable";

/** SPR numbers GetCpuState reports. */
const SPR_DSISR = 18;
const SPR_DAR = 19;
const SPR_DEC = 22;
const SPR_TB = 268;
const SPR_PVR = 287;
const SPR_PIR = 1023;

const RUN_STATES: Record<CpuActivity, CpuRunState> = {
  stopped: CpuRunState.STOPPED,
  idle: CpuRunState.IDLE,
  running: CpuRunState.RUNNING,
  trapped: CpuRunState.TRAPPED,
};

const ADDRESS_LIMIT = 1n << 53n;

/** A CPU with its state and counters, for GetInfo, ListCpus and the CPU RPCs. */
export function cpuSummary(machine: Machine, cpu: number): MessageInitShape<typeof CpuSummarySchema> {
  const c = machine.cpus.counters(cpu);
  return {
    cpu,
    state: RUN_STATES[c.activity],
    numaNode: machine.nodeOfCpu(cpu),
    instructionsRetired: BigInt(c.instructionsRetired),
    pid: c.pid,
    tid: c.tid,
    traps: BigInt(c.traps),
    tlbHits: BigInt(c.tlbHits),
    tlbMisses: BigInt(c.tlbMisses),
    pageFaults: BigInt(c.pageFaults),
    translatedBlocks: BigInt(c.translatedBlocks),
    blockInvalidations: BigInt(c.blockInvalidations),
  };
}

export function cpuSummaries(machine: Machine): MessageInitShape<typeof CpuSummarySchema>[] {
  return machine.cpus.cores.map((_, cpu) => cpuSummary(machine, cpu));
}

function positive(value: number, field: string, what: string): number {
  if (value <= 0) throw invalidArgument(field, `${what} are positive, not ${value}`);
  return value;
}

function segmentOf(mapping: SegmentMapping, field: string): SlbEntry {
  let segmentSize: SlbEntry["segmentSize"];
  switch (mapping.segmentSize) {
    case SegmentSize.SEGMENT_SIZE_256M:
      segmentSize = SEGMENT_256M;
      break;
    case SegmentSize.SEGMENT_SIZE_1T:
      segmentSize = SEGMENT_1T;
      break;
    default:
      throw invalidArgument(
        `${field}.segment_size`,
        `a segment is 256 MB or 1 TB, not ${mapping.segmentSize}`,
      );
  }
  const esidLimit = 1n << BigInt(53 - segmentShift(segmentSize));
  if (mapping.esid >= esidLimit) {
    throw invalidArgument(`${field}.esid`, `ESID 0x${mapping.esid.toString(16)} lies beyond 2^53`);
  }
  if (mapping.vsid >= BigInt(vsidLimit(segmentSize))) {
    throw invalidArgument(
      `${field}.vsid`,
      `VSID 0x${mapping.vsid.toString(16)} is wider than the segment size allows`,
    );
  }
  if (!isSupportedPageShift(mapping.basePageShift)) {
    throw invalidArgument(
      `${field}.base_page_shift`,
      `base pages are 2^12, 2^16 or 2^24 bytes, not 2^${mapping.basePageShift}`,
    );
  }
  return {
    esid: Number(mapping.esid),
    vsid: Number(mapping.vsid),
    segmentSize,
    basePageShift: mapping.basePageShift,
    ks: false,
    kp: mapping.problemKey,
    noExecute: mapping.noExecute,
  };
}

function segmentsOf(mappings: readonly SegmentMapping[], field: string): SlbEntry[] {
  return mappings.map((mapping, i) => segmentOf(mapping, `${field}[${i}]`));
}

function segmentMessage(entry: SlbEntry): MessageInitShape<typeof SegmentMappingSchema> {
  return {
    esid: BigInt(entry.esid),
    vsid: BigInt(entry.vsid),
    segmentSize: entry.segmentSize === SEGMENT_1T
      ? SegmentSize.SEGMENT_SIZE_1T
      : SegmentSize.SEGMENT_SIZE_256M,
    problemKey: entry.kp,
    noExecute: entry.noExecute,
    basePageShift: entry.basePageShift,
  };
}

function transferLength(value: bigint, field: string): number {
  if (value > BigInt(MAX_PHYSICAL_TRANSFER)) {
    throw invalidArgument(field, `at most ${MAX_PHYSICAL_TRANSFER} bytes per call, not ${value}`);
  }
  return Number(value);
}

function tlbInvalidation(scope: TlbScope, vsidValue: bigint, ea: bigint, pageShift: number): TlbInvalidation {
  if (scope === TlbScope.ALL) return { scope: "all" };
  if (vsidValue >= BigInt(vsidLimit(SEGMENT_256M))) {
    throw invalidArgument("vsid", `VSID 0x${vsidValue.toString(16)} is wider than 40 bits`);
  }
  const vsid = Number(vsidValue);
  if (scope === TlbScope.SEGMENT) return { scope: "segment", vsid };
  if (scope !== TlbScope.PAGE) {
    throw invalidArgument("scope", `an invalidation is PAGE, SEGMENT or ALL, not ${scope}`);
  }
  if (!isSupportedPageShift(pageShift)) {
    throw invalidArgument("page_shift", `pages are 2^12, 2^16 or 2^24 bytes, not 2^${pageShift}`);
  }
  const bytes = 2 ** pageShift;
  // Nothing is ever translated at or above 2^53: such a page has nothing cached.
  if (ea >= ADDRESS_LIMIT) return { scope: "page", vsid, ea: 0, bytes: 0 };
  const start = Number(ea) - (Number(ea) % bytes);
  return { scope: "page", vsid, ea: start, bytes };
}

export function cpuMethods(machine: Machine): Pick<ServiceImpl<typeof MachineService>, CpuMethods> {
  const cpus = machine.cpus;

  return {
    listCpus: () => ({ cpus: cpuSummaries(machine) }),

    getCpuState: (req) => {
      const core = cpus.core(req.cpu);
      const registers = cpus.cpuRegisters(req.cpu);
      const entry = core.thread?.entry;
      const spr = (number: number, value: bigint) => ({ number, value });
      return {
        summary: cpuSummary(machine, req.cpu),
        state: {
          registers: registersToMessage(registers),
          msr: threadMsr(registers),
          sprs: [
            spr(SPR_DSISR, BigInt((entry?.dsisr ?? 0) >>> 0)),
            spr(SPR_DAR, entry?.dar ?? 0n),
            spr(SPR_DEC, BigInt.asUintN(64, BigInt(machine.interrupts.controller.decrementer(req.cpu)))),
            spr(SPR_TB, machine.timebase),
            spr(SPR_PVR, BigInt(PVR_POWER9)),
            spr(SPR_PIR, BigInt(req.cpu)),
          ],
          reservationValid: core.cpu.reservationValid,
          reservationAddress: BigInt(core.cpu.reservationAddress),
          slb: cpus.cpuSegments(req.cpu).map(segmentMessage),
        },
      };
    },

    setCpuState: (req) => {
      const state = req.state;
      if (state === undefined) {
        throw invalidArgument("state", "SetCpuState replaces a state: state is required");
      }
      // An MSR of 0 (no problem-state MSR is) keeps the MSR; otherwise only FE0/FE1 may change.
      if (state.msr !== 0n && (state.msr & ~(MSR_FE0 | MSR_FE1)) !== USER_MSR) {
        throw invalidArgument(
          "state.msr",
          `the CPU runs problem state with MSR 0x${USER_MSR.toString(16)} (FE0/FE1 free), not 0x${
            state.msr.toString(16)
          }`,
        );
      }
      if (state.reservationValid && state.reservationAddress >= ADDRESS_LIMIT) {
        throw invalidArgument("state.reservation_address", "a reservation lies below 2^53");
      }
      let decrementer: number | undefined, dar: bigint | undefined, dsisr: number | undefined;
      for (const { number, value } of state.sprs) {
        switch (number) {
          case SPR_DEC:
            decrementer = Number(BigInt.asIntN(32, value));
            break;
          case SPR_DAR:
            dar = value;
            break;
          case SPR_DSISR:
            dsisr = Number(value & 0xffffffffn) | 0;
            break;
          case SPR_PVR:
          case SPR_PIR:
          case SPR_TB:
            // Read-only: setting them to what they read is a no-op.
            break;
          default:
            throw invalidArgument(
              "state.sprs",
              `SPR ${number} is not one SetCpuState sets (DEC, DAR, DSISR)`,
            );
        }
      }
      const slb = segmentsOf(state.slb, "state.slb");
      // The request is valid: only now does the CPU's state matter (FAILED_PRECONDITION).
      const core = cpus.stoppedCore(req.cpu);
      const current = cpus.cpuRegisters(req.cpu);
      const registers = state.registers === undefined
        ? current
        : registersFromMessage(state.registers, current, "state.registers");
      if (state.msr !== 0n) registers.floatingPointExceptions = (state.msr & (MSR_FE0 | MSR_FE1)) !== 0n;
      cpus.setCpuSegments(req.cpu, slb);
      cpus.setCpuRegisters(req.cpu, registers);
      core.cpu.reservationValid = state.reservationValid;
      if (state.reservationValid) core.cpu.reservationAddress = Number(state.reservationAddress);
      if (decrementer !== undefined) machine.interrupts.setDecrementer(req.cpu, decrementer);
      const entry = core.thread?.entry;
      if (entry !== undefined && dar !== undefined) entry.dar = dar;
      if (entry !== undefined && dsisr !== undefined) entry.dsisr = dsisr;
      return {};
    },

    startCpu: (req) => {
      cpus.startCpu(req.cpu);
      return { summary: cpuSummary(machine, req.cpu) };
    },

    stopCpu: (req) => {
      cpus.stopCpu(req.cpu);
      return { summary: cpuSummary(machine, req.cpu) };
    },

    createThreadContext: (req) => {
      const context = req.context;
      if (context === undefined) throw invalidArgument("context", "the thread's context is required");
      if (req.copyFromTid < 0) {
        throw invalidArgument("copy_from_tid", `TIDs are positive, not ${req.copyFromTid}`);
      }
      const registers = context.registers;
      cpus.createThread({
        pid: positive(context.pid, "context.pid", "PIDs"),
        tid: positive(context.tid, "context.tid", "TIDs"),
        spaceId: context.spaceId,
        copyFromTid: req.copyFromTid,
        registers: registers === undefined
          ? undefined
          : (base) => registersFromMessage(registers, base, "context.registers"),
        segments: segmentsOf(context.segments, "context.segments"),
      });
      return {};
    },

    getThreadContext: (req) => {
      const thread = cpus.threads.require(positive(req.tid, "tid", "TIDs"));
      return {
        context: {
          pid: thread.pid,
          tid: thread.tid,
          registers: registersToMessage(cpus.registersOf(thread)),
          segments: cpus.segmentsOf(thread).map(segmentMessage),
          spaceId: thread.spaceId,
        },
        cpu: thread.cpu,
      };
    },

    setThreadContext: (req) => {
      const tid = positive(req.tid, "tid", "TIDs");
      if (!req.replaceSegments && req.segments.length > 0) {
        throw invalidArgument("segments", "segments are replaced only with replace_segments set");
      }
      const registers = req.registers;
      cpus.setThread(
        tid,
        registers === undefined ? undefined : (base) => registersFromMessage(registers, base, "registers"),
        req.replaceSegments ? segmentsOf(req.segments, "segments") : undefined,
      );
      return {};
    },

    deleteThreadContext: (req) => {
      cpus.deleteThread(positive(req.tid, "tid", "TIDs"));
      return {};
    },

    runThread: (req) => {
      cpus.runThread(req.cpu, positive(req.tid, "tid", "TIDs"));
      return {};
    },

    readVirtual: async (req) => ({
      data: await cpus.readVirtual(
        positive(req.tid, "tid", "TIDs"),
        req.address,
        transferLength(req.length, "length"),
      ),
    }),

    writeVirtual: async (req) => {
      transferLength(BigInt(req.data.length), "data");
      await cpus.writeVirtual(positive(req.tid, "tid", "TIDs"), req.address, req.data);
      return {};
    },

    invalidateTlb: (req) => {
      const invalidation = tlbInvalidation(req.scope, req.vsid, req.effectiveAddress, req.pageShift);
      return { entriesInvalidated: BigInt(cpus.invalidateTlb(invalidation, req.cpus)) };
    },

    setPartitionTable: (req) => ({
      entriesInvalidated: BigInt(
        machine.setPartitionTable(safeNumber(req.htabOrigin, "htab_origin"), req.htabSize),
      ),
    }),
  };
}
