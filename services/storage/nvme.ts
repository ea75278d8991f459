// The NVMe driver (seed 2.2). It programs an NVMe 1.4 controller through its registers and keeps
// the admin and I/O queue pairs in DMA memory: commands are 64-byte submission entries written
// into a ring and announced with a tail doorbell; the controller posts 16-byte completion entries
// with phase tags and raises the queue's interrupt vector; the driver reaps them and writes the
// head doorbell. Data moves through PRP1/PRP2 and PRP lists over page runs of the driver's DMA
// pool. I/O is spread over several queue pairs (one per CPU by default), each batching whatever
// is waiting into one ring write and one doorbell, and reaping every completion an interrupt finds
// in one read; interrupt coalescing can be asked of the controller. Errors: a status without Do
// Not Retry is retried (up to 3 times); a command that outlives its timeout is first looked for
// in its completion queue (a lost interrupt), then aborted, and if that does not help the
// controller is reset; a fatal controller status resets it too. A reset recreates the queues and
// resubmits the commands that were in flight. Namespaces that come and go are reported through
// Asynchronous Event Requests and rescanned.
import { setImmediate } from "node:timers";
import { AstraError, Code, Errno, invalidArgument, notFound, outOfRange } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import type { IoEvents } from "./block.ts";
import { DmaPool } from "./dma.ts";
import {
  type ControllerInfo,
  type DeviceAccess,
  type DmaRegion,
  type Hardware,
  hardwareError,
  type InterruptRegistration,
  PAGE_BYTES,
  type PhysicalSegment,
  type PhysicalWrite,
  planReads,
  writeAccesses,
} from "./hardware.ts";

const log = logger("storage");

// ---- registers ----

const REG_CAP = 0x00;
const REG_VS = 0x08;
const REG_CC = 0x14;
const REG_CSTS = 0x1c;
const REG_AQA = 0x24;
const REG_ASQ = 0x28;
const REG_ACQ = 0x30;
const DOORBELL_BASE = 0x1000;

const CC_EN = 1;
const CC_IOSQES = 6 << 16;
const CC_IOCQES = 4 << 20;
const CC_SHN_NORMAL = 1 << 14;
const CSTS_RDY = 1;
const CSTS_CFS = 2;
const CSTS_SHST_MASK = 3 << 2;
const CSTS_SHST_COMPLETE = 2 << 2;

const SQE_BYTES = 64;
const CQE_BYTES = 16;

// ---- commands ----

const ADMIN_DELETE_IO_SQ = 0x00;
const ADMIN_CREATE_IO_SQ = 0x01;
const ADMIN_GET_LOG_PAGE = 0x02;
const ADMIN_DELETE_IO_CQ = 0x04;
const ADMIN_CREATE_IO_CQ = 0x05;
const ADMIN_IDENTIFY = 0x06;
const ADMIN_ABORT = 0x08;
const ADMIN_SET_FEATURES = 0x09;
const ADMIN_ASYNC_EVENT_REQUEST = 0x0c;
export const NVM_FLUSH = 0x00;
export const NVM_WRITE = 0x01;
export const NVM_READ = 0x02;

const CNS_NAMESPACE = 0x00;
const CNS_CONTROLLER = 0x01;
const CNS_ACTIVE_NAMESPACES = 0x02;
const FEATURE_NUMBER_OF_QUEUES = 0x07;
const FEATURE_INTERRUPT_COALESCING = 0x08;
const FEATURE_ASYNC_EVENT_CONFIG = 0x0b;
const AEC_NAMESPACE_ATTRIBUTE_NOTICES = 1 << 8;
const LOG_ERROR_INFORMATION = 0x01;
const LOG_CHANGED_NAMESPACES = 0x04;
const ASYNC_EVENT_TYPE_NOTICE = 2;
const ASYNC_NOTICE_NAMESPACE_CHANGED = 0;

// ---- statuses, as (status code type << 8) | status code ----

export const SC_SUCCESS = 0x000;
const SC_INVALID_OPCODE = 0x001;
const SC_INVALID_FIELD = 0x002;
const SC_ABORT_REQUESTED = 0x007;
const SC_INVALID_NAMESPACE = 0x00b;
const SC_LBA_OUT_OF_RANGE = 0x080;
const SC_NAMESPACE_NOT_READY = 0x082;
const SC_WRITE_FAULT = 0x280;
const SC_UNRECOVERED_READ_ERROR = 0x281;

const STATUS_NAMES: Record<number, string> = {
  0x000: "success",
  0x001: "invalid opcode",
  0x002: "invalid field",
  0x004: "data transfer error",
  0x006: "internal error",
  0x007: "abort requested",
  0x008: "aborted: submission queue deleted",
  0x00b: "invalid namespace",
  0x00c: "command sequence error",
  0x013: "invalid PRP offset",
  0x080: "LBA out of range",
  0x082: "namespace not ready",
  0x100: "completion queue invalid",
  0x101: "invalid queue identifier",
  0x102: "invalid queue size",
  0x105: "asynchronous event request limit exceeded",
  0x108: "invalid interrupt vector",
  0x109: "invalid log page",
  0x10c: "invalid queue deletion",
  0x280: "write fault",
  0x281: "unrecovered read error",
};

export function nvmeStatusName(status: number): string {
  return STATUS_NAMES[status] ?? `status 0x${status.toString(16)}`;
}

// ---- defaults ----

export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_ADMIN_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_RETRIES = 3;
const ADMIN_ENTRIES = 32;
const MAX_IO_QUEUE_ENTRIES = 1024;
/**
 * I/O queues asked of the controller (Set Features, Number of Queues): more than the driver
 * creates at first, so that CreateQueue can add some later.
 */
const QUEUES_REQUESTED = 64;
const MAX_PRP_LIST_ENTRIES = PAGE_BYTES / 8;
/** The watchdog's period at most. */
const WATCHDOG_PERIOD_MS = 50;
/**
 * A command older than this makes the watchdog look in its completion queue: its interrupt may
 * have been lost, or interrupt delivery may be disabled, and the driver then works by polling.
 */
const POLL_AFTER_MS = 20;
/** Raw commands whose outcome is kept for WaitCompletion. */
const MAX_RAW_OUTCOMES = 1024;

export interface NvmeDriverOptions {
  /** I/O queue pairs to create (default: one per CPU). */
  ioQueues?: number;
  /** Entries per I/O queue (default: the controller's maximum, at most 1024). */
  queueEntries?: number;
  /** A command not completed within this is looked for, aborted, then the controller reset. */
  commandTimeoutMs?: number;
  adminTimeoutMs?: number;
  /** Retries of a command that failed without Do Not Retry (default 3). */
  maxRetries?: number;
  /**
   * Interrupt Coalescing (Set Features 08h) for the I/O queues: an interrupt once `threshold`
   * completions (1..256) have gathered on a vector, or `timeMicros` (0..25500, in steps of 100)
   * after the first of them. Off by default: it trades latency at low queue depth, up to the
   * aggregation time, for fewer interrupts.
   */
  interruptCoalescing?: { threshold: number; timeMicros: number };
}

export interface NvmeCompletion {
  /** Command specific dword 0. */
  result: number;
  /** (status code type << 8) | status code. */
  status: number;
  statusCodeType: number;
  statusCode: number;
  doNotRetry: boolean;
  sqHead: number;
  sqId: number;
  cid: number;
  /** The 16 bytes as the controller wrote them. */
  entry: Uint8Array;
}

export interface CompletedCommand {
  completion: NvmeCompletion;
  /** The data buffer after completion, for commands that read it back. */
  data: Uint8Array | null;
  latencyMicros: number;
}

export interface IdentifyControllerData {
  vendorId: number;
  serial: string;
  model: string;
  firmware: string;
  /** 0: no limit. */
  maxTransferBytes: number;
  namespaceCount: number;
  submissionEntryBytes: number;
  completionEntryBytes: number;
  volatileWriteCache: boolean;
  raw: Uint8Array;
}

export interface LbaFormat {
  index: number;
  dataBytes: number;
  metadataBytes: number;
  inUse: boolean;
}

export interface NamespaceData {
  namespaceId: number;
  sizeBlocks: number;
  capacityBlocks: number;
  usedBlocks: number;
  blockBytes: number;
  lbaFormats: LbaFormat[];
  raw: Uint8Array;
}

export interface NvmeInitSummary {
  version: number;
  ioQueues: number;
  queueEntries: number;
  namespaces: number[];
}

export interface NvmeStatistics {
  commands: number;
  completions: number;
  interrupts: number;
  retries: number;
  timeouts: number;
  aborts: number;
  resets: number;
  errors: number;
  resubmitted: number;
  asyncEvents: number;
}

export interface NamespaceChange {
  added: NamespaceData[];
  removed: number[];
}

/** What a raw command carries: the entry itself, or its fields. */
export type RawCommand =
  | { entry: Uint8Array }
  | { opcode: number; namespaceId: number; commandDwords: number[] };

/**
 * A submission entry as its 16 dwords: a plain array is far cheaper to make than a typed one, and
 * it is written into the ring with the command id when the command goes in.
 */
type Sqe = number[];

interface Command {
  sqe: Sqe;
  cid: number;
  queueId: number;
  timeoutMs: number;
  /**
   * Set when the command goes into the ring; one still waiting for room gets it when the watchdog
   * first sees it (0 until then), which spares a clock read per command.
   */
  deadline: number;
  submittedAt: number;
  /** An Abort was sent for it after it timed out. */
  aborting: boolean;
  /** Given up on (an admin command that timed out): its command id stays taken until it completes. */
  abandoned: boolean;
  /**
   * Data to put in its DMA buffers before the entry: written with the entry and its doorbell, in
   * one batch, when the command goes into the ring (again, if it is resubmitted).
   */
  writes: PhysicalWrite[];
  /** Data to read back on completion: on success only, or always (raw commands). */
  readBack: PhysicalSegment[] | null;
  readBackAlways: boolean;
  /** Told the command id once the command is in the ring. */
  onSubmit: ((cid: number) => void) | null;
  resolve: (c: CompletedCommand) => void;
  reject: (e: unknown) => void;
}

interface QueuePair {
  id: number;
  entries: number;
  vector: number;
  sq: DmaRegion;
  cq: DmaRegion;
  /**
   * The driver's copy of the submission ring, which batches are written from: they go one at a
   * time, so a slot is only rewritten after the batch that carried it has been made.
   */
  ring: Uint8Array;
  ringView: DataView;
  sqTail: number;
  sqHead: number;
  cqHead: number;
  cqPhase: number;
  /** Completions consumed since the head doorbell was last written. */
  unacknowledged: number;
  /** Commands the queue may hold at once (see #capacityOf). */
  capacity: number;
  freeCids: number[];
  inflight: Map<number, Command>;
  pending: Command[];
  pumping: Promise<void> | null;
  reaping: Promise<void> | null;
  reapAgain: boolean;
  deferred: boolean;
  /** The controller has the queue: commands may be submitted and completions reaped. */
  live: boolean;
  /** New commands may be sent to it (false once it is being deleted). */
  accepting: boolean;
}

type State = "new" | "live" | "resetting" | "failed" | "closed";

function ascii(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s.replace(/[\0 ]+$/, "").trim();
}

function u64(view: DataView, offset: number): number {
  return view.getUint32(offset + 4, true) * 0x1_0000_0000 + view.getUint32(offset, true);
}

function timeoutError(what: string, facts: Record<string, string>): AstraError {
  return new AstraError(Code.DEADLINE_EXCEEDED, Errno.ETIMEDOUT, `${what} timed out`, { facts });
}

function isTimeout(err: unknown): boolean {
  return err instanceof AstraError && err.errno === Errno.ETIMEDOUT;
}

/** A failed NVMe status as the error a caller sees; media errors name the LBA in the facts. */
export function statusError(
  status: number,
  facts: Record<string, string>,
): AstraError {
  const name = nvmeStatusName(status);
  const all = { ...facts, status: `0x${status.toString(16).padStart(3, "0")}`, statusName: name };
  const where = facts.lba !== undefined ? ` at LBA ${facts.lba}` : "";
  switch (status) {
    case SC_UNRECOVERED_READ_ERROR:
    case SC_WRITE_FAULT:
      return new AstraError(Code.DATA_LOSS, Errno.EIO, `${name}${where}`, { argument: "lba", facts: all });
    case SC_LBA_OUT_OF_RANGE:
      return new AstraError(Code.OUT_OF_RANGE, Errno.ENXIO, `${name}${where}`, {
        argument: "lba",
        facts: all,
      });
    case SC_INVALID_NAMESPACE:
    case SC_NAMESPACE_NOT_READY:
      return new AstraError(Code.FAILED_PRECONDITION, Errno.ENODEV, `${name}: the namespace is gone`, {
        facts: all,
      });
    case SC_ABORT_REQUESTED:
      return timeoutError(`the command${where} (aborted after its timeout)`, all);
    case SC_INVALID_OPCODE:
    case SC_INVALID_FIELD:
      return new AstraError(Code.INVALID_ARGUMENT, Errno.EINVAL, name, { facts: all });
    default:
      return new AstraError(Code.DATA_LOSS, Errno.EIO, `${name}${where}`, { facts: all });
  }
}

/** PRP1 and PRP2 into an entry (dwords 6..9). */
function setPrps(sqe: Sqe, prp1: number, prp2: number): void {
  sqe[6] = prp1 % 0x1_0000_0000;
  sqe[7] = Math.floor(prp1 / 0x1_0000_0000);
  sqe[8] = prp2 % 0x1_0000_0000;
  sqe[9] = Math.floor(prp2 / 0x1_0000_0000);
}

function buildSqe(
  opcode: number,
  nsid: number,
  prp1: number,
  prp2: number,
  dwords: readonly number[],
): Sqe {
  const sqe: Sqe = [opcode & 0xff, nsid >>> 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  setPrps(sqe, prp1, prp2);
  for (let i = 0; i < dwords.length && i < 6; i++) sqe[10 + i] = dwords[i] >>> 0;
  return sqe;
}

/** A raw 64-byte entry as dwords. */
function sqeOf(entry: Uint8Array): Sqe {
  const v = new DataView(entry.buffer, entry.byteOffset, SQE_BYTES);
  return Array.from({ length: SQE_BYTES / 4 }, (_, i) => v.getUint32(i * 4, true));
}

/**
 * The completion entry at `offset` of a read of the completion queue (`view` over `bytes`). The
 * read is the driver's own, so the entry's bytes can stay a view of it.
 */
function parseCompletion(bytes: Uint8Array, view: DataView, offset: number): NvmeCompletion {
  const dw2 = view.getUint32(offset + 8, true);
  const dw3 = view.getUint32(offset + 12, true);
  const status = (dw3 >>> 17) & 0x7ff;
  return {
    result: view.getUint32(offset, true),
    status,
    statusCodeType: status >>> 8,
    statusCode: status & 0xff,
    doNotRetry: (dw3 >>> 31) === 1,
    sqHead: dw2 & 0xffff,
    sqId: dw2 >>> 16,
    cid: dw3 & 0xffff,
    entry: bytes.subarray(offset, offset + CQE_BYTES),
  };
}

/** Set Features 08h's dword 11: the aggregation threshold (0's based) and time (100 µs units). */
function coalescingValue(asked: NvmeDriverOptions["interruptCoalescing"]): number {
  if (!asked) return 0;
  const { threshold, timeMicros } = asked;
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > 256) {
    throw invalidArgument(
      "interruptCoalescing.threshold",
      `interrupt coalescing gathers 1..256 completions, not ${threshold}`,
    );
  }
  if (!Number.isFinite(timeMicros) || timeMicros < 0 || timeMicros > 25_500) {
    throw invalidArgument(
      "interruptCoalescing.timeMicros",
      `interrupt coalescing waits 0..25500 µs, not ${timeMicros}`,
    );
  }
  return (threshold - 1) | (Math.ceil(timeMicros / 100) << 8);
}

/** Completions consumed between head doorbell writes. */
function ackInterval(entries: number): number {
  return Math.max(1, Math.floor(entries / 4));
}

/**
 * Commands a queue pair holds at once: its size less one (a full ring), less the completion
 * entries the controller may still count as unconsumed because the head doorbell lags.
 */
function capacityOf(entries: number): number {
  return Math.max(1, entries - 1 - (ackInterval(entries) - 1));
}

/** The pages of a data buffer, in order (every run is page aligned and page sized). */
function pagesOf(runs: readonly DmaRegion[]): number[] {
  const pages: number[] = [];
  for (const r of runs) for (let a = r.address; a < r.address + r.bytes; a += PAGE_BYTES) pages.push(a);
  return pages;
}

/** The segments of `runs` that hold the first `bytes` of a buffer. */
function segmentsOf(runs: readonly DmaRegion[], bytes: number): PhysicalSegment[] {
  const out: PhysicalSegment[] = [];
  let left = bytes;
  for (const r of runs) {
    if (left <= 0) break;
    const n = Math.min(left, r.bytes);
    out.push({ address: r.address, length: n });
    left -= n;
  }
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A data buffer in DMA memory with the PRP entries that describe it. */
interface DataBuffer {
  runs: DmaRegion[];
  listPages: DmaRegion[];
  prp1: number;
  prp2: number;
  bytes: number;
  /** What must be in its memory before the command runs: the data going out, and the PRP list. */
  writes: PhysicalWrite[];
}

export class NvmeDriver {
  readonly name: string;
  /** The controller number in block device names (nvme<index>n<nsid>). */
  readonly index: number;
  /** Called when namespaces appear or disappear at run time. */
  onNamespacesChanged: ((change: NamespaceChange) => void) | null = null;

  readonly #hw: Hardware;
  readonly #info: ControllerInfo;
  readonly #pool: DmaPool;
  readonly #options: Required<Omit<NvmeDriverOptions, "interruptCoalescing">>;
  /** Set Features 08h's dword 11 for the options' coalescing; 0: none asked for. */
  readonly #coalescing: number;
  #state: State = "new";
  #doorbellStride = 4;
  #maxEntries = 2;
  #readyTimeoutMs = 10_000;
  #version = 0;
  #queueEntries = 0;
  #queuesAllocated = 0;
  #controller: IdentifyControllerData | null = null;
  #maxTransferBytes = 0;
  readonly #queues = new Map<number, QueuePair>();
  #ioQueues: QueuePair[] = [];
  readonly #namespaces = new Map<number, NamespaceData>();
  readonly #lines: InterruptRegistration[] = [];
  readonly #raw = new Map<string, Promise<CompletedCommand>>();
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #watching = false;
  #resetting: Promise<number> | null = null;
  readonly #stats: NvmeStatistics = {
    commands: 0,
    completions: 0,
    interrupts: 0,
    retries: 0,
    timeouts: 0,
    aborts: 0,
    resets: 0,
    errors: 0,
    resubmitted: 0,
    asyncEvents: 0,
  };

  constructor(hw: Hardware, info: ControllerInfo, options: NvmeDriverOptions = {}) {
    if (info.kind !== "nvme") throw invalidArgument("controller", `${info.name} is not an NVMe controller`);
    if (info.irqs.length === 0) throw invalidArgument("controller", `${info.name} has no interrupt vectors`);
    this.#hw = hw;
    this.#info = info;
    this.name = info.name;
    this.index = Number(/\d+$/.exec(info.name)?.[0] ?? 0);
    this.#pool = new DmaPool(hw, `storage:${info.name}`);
    this.#options = {
      ioQueues: options.ioQueues ?? 0,
      queueEntries: options.queueEntries ?? 0,
      commandTimeoutMs: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
      adminTimeoutMs: options.adminTimeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS,
      maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
    };
    this.#coalescing = coalescingValue(options.interruptCoalescing);
  }

  get version(): number {
    return this.#version;
  }

  get queueEntries(): number {
    return this.#queueEntries;
  }

  /** Commands the I/O queues hold at once, all together. */
  get ioCapacity(): number {
    let n = 0;
    for (const q of this.#queues.values()) if (q.id !== 0 && q.accepting) n += q.capacity;
    return n;
  }

  /** The I/O queue ids in use. */
  get ioQueueIds(): number[] {
    return [...this.#queues.keys()].filter((id) => id !== 0).sort((a, b) => a - b);
  }

  get controllerData(): IdentifyControllerData | null {
    return this.#controller;
  }

  get live(): boolean {
    return this.#state === "live";
  }

  namespaces(): NamespaceData[] {
    return [...this.#namespaces.values()].sort((a, b) => a.namespaceId - b.namespaceId);
  }

  namespace(nsid: number): NamespaceData {
    const ns = this.#namespaces.get(nsid);
    if (!ns) throw notFound("namespace_id", `${this.name} has no active namespace ${nsid}`, Errno.ENODEV);
    return ns;
  }

  statistics(): NvmeStatistics {
    return { ...this.#stats };
  }

  /** Commands queued and in flight on each queue, for status displays. */
  queueDepths(): { queueId: number; inflight: number; pending: number; entries: number }[] {
    return [...this.#queues.values()].map((q) => ({
      queueId: q.id,
      inflight: q.inflight.size,
      pending: q.pending.length,
      entries: q.entries,
    }));
  }

  // ---- seed 2.2 nvme_init ----

  /**
   * Resets the controller, brings it up with an admin queue pair, identifies it, asks for the
   * I/O queues, creates them, arms asynchronous events and enumerates the namespaces.
   */
  async init(): Promise<NvmeInitSummary> {
    if (this.#state !== "new") throw invalidArgument("controller", `${this.name} is already initialised`);
    const capLow = await this.#reg(REG_CAP);
    const capHigh = await this.#reg(REG_CAP + 4);
    this.#maxEntries = (capLow & 0xffff) + 1;
    this.#readyTimeoutMs = Math.max(500, ((capLow >>> 24) & 0xff) * 500);
    this.#doorbellStride = 4 << (capHigh & 0xf);
    const mpsMin = (capHigh >>> 16) & 0xf;
    if (mpsMin !== 0) {
      throw hardwareError(
        `${this.name}: the controller's smallest page is ${4096 << mpsMin} bytes, not 4 KiB`,
      );
    }
    if (!(capLow & (1 << 16))) {
      log.debug("controller does not require contiguous queues", { name: this.name });
    }
    this.#version = await this.#reg(REG_VS);
    await this.#disable();
    // Whatever a previous incarnation of this driver held is free to take again.
    await this.#hw.releaseDma(this.#pool.owner);
    const cpus = Math.max(1, await this.#hw.cpuCount());
    for (let vector = 0; vector < this.#info.irqs.length; vector++) {
      const irq = this.#info.irqs[vector];
      this.#lines.push(
        await this.#hw.registerInterrupt(
          irq,
          `storage:${this.name} v${vector}`,
          () => this.handleInterrupt(vector),
        ),
      );
      if (vector > 0) {
        await this.#hw.routeInterrupt(irq, (vector - 1) % cpus).catch((err) =>
          log.debug("interrupt routing refused", { irq, error: String(err) })
        );
      }
    }
    const admin = await this.#newQueue(0, Math.min(ADMIN_ENTRIES, this.#maxEntries), 0);
    await this.#enable(admin);
    this.#state = "live";
    this.#startWatchdog();

    this.#controller = await this.identifyController();
    this.#maxTransferBytes = this.#controller.maxTransferBytes;
    const wanted = this.#options.ioQueues || cpus;
    this.#queueEntries = Math.max(
      2,
      Math.min(this.#options.queueEntries || MAX_IO_QUEUE_ENTRIES, this.#maxEntries, MAX_IO_QUEUE_ENTRIES),
    );
    this.#queuesAllocated = await this.#setQueueCount(Math.max(wanted, QUEUES_REQUESTED));
    await this.#setCoalescing();
    const count = Math.min(wanted, this.#queuesAllocated);
    for (let qid = 1; qid <= count; qid++) {
      await this.#createIoQueue(qid, this.#queueEntries, this.#vectorFor(qid));
    }
    await this.#armAsyncEvents();
    for (const ns of await this.enumerateNamespaces()) this.#namespaces.set(ns.namespaceId, ns);
    return {
      version: this.#version,
      ioQueues: count,
      queueEntries: this.#queueEntries,
      namespaces: [...this.#namespaces.keys()].sort((a, b) => a - b),
    };
  }

  // ---- identify ----

  /** seed 2.2 nvme_identify_controller. */
  async identifyController(): Promise<IdentifyControllerData> {
    const raw = await this.#adminData(ADMIN_IDENTIFY, 0, [CNS_CONTROLLER]);
    const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const mdts = raw[77];
    return {
      vendorId: v.getUint16(0, true),
      serial: ascii(raw.subarray(4, 24)),
      model: ascii(raw.subarray(24, 64)),
      firmware: ascii(raw.subarray(64, 72)),
      maxTransferBytes: mdts === 0 ? 0 : 2 ** mdts * PAGE_BYTES,
      namespaceCount: v.getUint32(516, true),
      submissionEntryBytes: 1 << (raw[512] & 0xf),
      completionEntryBytes: 1 << (raw[513] & 0xf),
      volatileWriteCache: (raw[525] & 1) !== 0,
      raw,
    };
  }

  /** seed 2.2 nvme_identify_namespace. An inactive namespace id has zero size. */
  async identifyNamespace(nsid: number): Promise<NamespaceData> {
    if (!Number.isInteger(nsid) || nsid < 1 || nsid >= 0xffff_ffff) {
      throw invalidArgument("namespace_id", `namespace ids are 1..0xfffffffe, not ${nsid}`);
    }
    const raw = await this.#adminData(ADMIN_IDENTIFY, nsid, [CNS_NAMESPACE]);
    const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const formats = raw[25] + 1;
    const current = raw[26] & 0xf;
    const lbaFormats: LbaFormat[] = [];
    for (let i = 0; i < formats && i < 16; i++) {
      const f = v.getUint32(128 + i * 4, true);
      lbaFormats.push({
        index: i,
        dataBytes: 2 ** ((f >>> 16) & 0xff),
        metadataBytes: f & 0xffff,
        inUse: i === current,
      });
    }
    return {
      namespaceId: nsid,
      sizeBlocks: u64(v, 0),
      capacityBlocks: u64(v, 8),
      usedBlocks: u64(v, 16),
      blockBytes: lbaFormats[current]?.dataBytes ?? 512,
      lbaFormats,
      raw,
    };
  }

  /** seed 2.2 nvme_enumerate_namespaces: the active namespace list, each identified. */
  async enumerateNamespaces(): Promise<NamespaceData[]> {
    const ids: number[] = [];
    let after = 0;
    for (;;) {
      const raw = await this.#adminData(ADMIN_IDENTIFY, after, [CNS_ACTIVE_NAMESPACES]);
      const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      let n = 0;
      for (; n < 1024; n++) {
        const id = v.getUint32(n * 4, true);
        if (id === 0) break;
        ids.push(id);
      }
      if (n < 1024) break;
      after = ids[ids.length - 1];
    }
    const out: NamespaceData[] = [];
    for (const id of ids) {
      const ns = await this.identifyNamespace(id);
      if (ns.sizeBlocks > 0) out.push(ns);
    }
    return out;
  }

  // ---- seed 2.2 nvme_create_queue / nvme_delete_queue ----

  /** Creates an I/O completion queue and its submission queue; returns their addresses. */
  async createQueue(
    qid: number,
    entries: number,
    vector: number,
  ): Promise<{ submissionQueue: number; completionQueue: number }> {
    this.#checkLive();
    if (!Number.isInteger(qid) || qid < 1 || qid > 65535) {
      throw invalidArgument("queue_id", `I/O queue ids are 1..65535, not ${qid}`);
    }
    if (qid > this.#queuesAllocated) {
      throw invalidArgument(
        "queue_id",
        `${this.name} granted ${this.#queuesAllocated} I/O queues; queue ${qid} is beyond them`,
      );
    }
    if (this.#queues.has(qid)) {
      throw invalidArgument("queue_id", `I/O queue ${qid} already exists`, Errno.EEXIST);
    }
    const size = entries || this.#queueEntries;
    if (!Number.isInteger(size) || size < 2 || size > this.#maxEntries) {
      throw invalidArgument("entries", `queues hold 2..${this.#maxEntries} entries, not ${entries}`);
    }
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.#info.irqs.length) {
      throw invalidArgument(
        "vector",
        `${this.name} has vectors 0..${this.#info.irqs.length - 1}, not ${vector}`,
      );
    }
    const q = await this.#createIoQueue(qid, size, vector);
    return { submissionQueue: q.sq.address, completionQueue: q.cq.address };
  }

  /**
   * Deletes an I/O submission queue and then its completion queue. Commands still waiting for
   * it move to the other queues; those in flight complete as aborted and are retried elsewhere.
   */
  async deleteQueue(qid: number): Promise<void> {
    this.#checkLive();
    const q = this.#queues.get(qid);
    if (qid === 0 || !q) throw notFound("queue_id", `${this.name} has no I/O queue ${qid}`);
    if (this.ioQueueIds.length === 1) {
      throw invalidArgument("queue_id", `queue ${qid} is ${this.name}'s last I/O queue`, Errno.EBUSY);
    }
    q.accepting = false;
    this.#refreshIoQueues();
    for (const cmd of q.pending.splice(0)) this.#enqueue(this.#pickQueue(), cmd);
    // The queue keeps reaping until its commands are gone, the aborted ones included.
    try {
      await q.pumping;
      await this.#adminCheck(ADMIN_DELETE_IO_SQ, 0, [qid]);
      await this.#reap(q);
      q.live = false;
      await q.pumping;
      await this.#adminCheck(ADMIN_DELETE_IO_CQ, 0, [qid]);
    } finally {
      this.#queues.delete(qid);
      this.#refreshIoQueues();
      q.live = false;
    }
    for (const cmd of q.inflight.values()) {
      cmd.reject(hardwareError(`${this.name}: queue ${qid} was deleted with the command in flight`));
    }
    this.#pool.free(q.sq);
    this.#pool.free(q.cq);
  }

  // ---- seed 2.2 nvme_read / nvme_write ----

  /** Reads `count` logical blocks; `queueId` 0 lets the driver choose the queue. */
  async read(
    nsid: number,
    lba: number,
    count: number,
    options: { queueId?: number; events?: IoEvents } = {},
  ): Promise<Uint8Array> {
    const ns = this.namespace(nsid);
    this.#checkRange(ns, lba, count);
    const pieces = this.#split(ns, lba, count);
    if (pieces.length === 1) return (await this.#transfer(ns, NVM_READ, lba, count, null, false, options))!;
    const parts = await Promise.all(
      pieces.map((p) => this.#transfer(ns, NVM_READ, p.lba, p.count, null, false, options)),
    );
    return concat(parts as Uint8Array[]);
  }

  /** Writes whole logical blocks; with `fua` the data is on stable media when this resolves. */
  async write(
    nsid: number,
    lba: number,
    data: Uint8Array,
    options: { fua?: boolean; queueId?: number; events?: IoEvents } = {},
  ): Promise<number> {
    const ns = this.namespace(nsid);
    if (data.length === 0 || data.length % ns.blockBytes !== 0) {
      throw invalidArgument("data", `a write is a whole number of ${ns.blockBytes}-byte blocks`);
    }
    const count = data.length / ns.blockBytes;
    this.#checkRange(ns, lba, count);
    const pieces = this.#split(ns, lba, count);
    await Promise.all(pieces.map((p) =>
      this.#transfer(
        ns,
        NVM_WRITE,
        p.lba,
        p.count,
        data.subarray((p.lba - lba) * ns.blockBytes, (p.lba - lba + p.count) * ns.blockBytes),
        options.fua ?? false,
        options,
      )
    ));
    return count;
  }

  /** Makes every completed write to the namespace stable. */
  async flush(nsid: number, options: { events?: IoEvents } = {}): Promise<void> {
    const ns = this.namespace(nsid);
    await this.#withRetries(
      ns,
      0,
      0,
      () => this.#execute(this.#ioQueue(0), buildSqe(NVM_FLUSH, nsid, 0, 0, []), {}),
      options.events,
    );
  }

  // ---- seed 2.2 nvme_submit_command / nvme_wait_completion ----

  /**
   * Submits a raw command on a queue (0: admin). The driver sets the command id and, when a
   * transfer is asked for, PRP1/PRP2 over a DMA buffer holding `payload`. Returns the command id.
   */
  async submitCommand(
    queueId: number,
    command: RawCommand,
    payload: Uint8Array,
    transferBytes: number,
  ): Promise<number> {
    this.#checkLive();
    const q = this.#queues.get(queueId);
    if (!q) throw notFound("queue_id", `${this.name} has no queue ${queueId}`);
    const bytes = Math.max(transferBytes, payload.length);
    const buffer = bytes > 0 ? await this.#buffer(bytes, payload.length > 0 ? payload : null) : null;
    let sqe: Sqe;
    if ("entry" in command) {
      if (command.entry.length !== SQE_BYTES) {
        throw invalidArgument("command", `a submission entry is 64 bytes, not ${command.entry.length}`);
      }
      sqe = sqeOf(command.entry);
      if (buffer) setPrps(sqe, buffer.prp1, buffer.prp2);
    } else {
      sqe = buildSqe(
        command.opcode & 0xff,
        command.namespaceId,
        buffer?.prp1 ?? 0,
        buffer?.prp2 ?? 0,
        command.commandDwords,
      );
    }
    let submitted!: (cid: number) => void;
    const cidKnown = new Promise<number>((resolve) => submitted = resolve);
    const done = this.#execute(q, sqe, {
      writes: buffer?.writes,
      readBack: buffer ? segmentsOf(buffer.runs, bytes) : null,
      readBackAlways: true,
      onSubmit: submitted,
    }).finally(() => {
      if (buffer) this.#freeBuffer(buffer);
    });
    // Reported by waitCompletion; until then the rejection is only parked.
    done.catch(() => {});
    const cid = await Promise.race([cidKnown, done.then((c) => c.completion.cid)]);
    this.#raw.set(`${queueId}:${cid}`, done);
    // Outcomes nobody waits for are forgotten, oldest first.
    if (this.#raw.size > MAX_RAW_OUTCOMES) this.#raw.delete(this.#raw.keys().next().value!);
    return cid;
  }

  /** Waits for a raw command's completion, up to `timeoutMs` (the command itself keeps running). */
  async waitCompletion(queueId: number, cid: number, timeoutMs: number): Promise<CompletedCommand> {
    const key = `${queueId}:${cid}`;
    const done = this.#raw.get(key);
    if (!done) throw notFound("command_id", `no raw command ${cid} was submitted on queue ${queueId}`);
    const limit = timeoutMs > 0 ? timeoutMs : this.#options.commandTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      done.then((value) => ({ value }), (error: unknown) => ({ error })),
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), limit)),
    ]);
    clearTimeout(timer);
    // Still running: the caller may wait again.
    if (outcome === null) {
      throw timeoutError(`command ${cid} on queue ${queueId}`, { queue: String(queueId) });
    }
    this.#raw.delete(key);
    if ("error" in outcome) throw outcome.error;
    return outcome.value;
  }

  // ---- seed 2.2 nvme_handle_interrupt ----

  /** Reaps the completion queues on an interrupt vector. */
  async handleInterrupt(vector: number): Promise<boolean> {
    this.#stats.interrupts++;
    const queues = [...this.#queues.values()].filter((q) => q.vector === vector && q.live);
    await Promise.all(queues.map((q) => this.#reap(q)));
    return queues.length > 0;
  }

  // ---- seed 2.2 nvme_reset_controller ----

  /**
   * CC.EN 1 → 0 → 1, then the queues are created again and every command that was in flight is
   * submitted again. Resolves with the number of commands resubmitted.
   */
  resetController(reason = "requested"): Promise<number> {
    if (this.#state === "closed") return Promise.reject(this.#closedError());
    this.#resetting ??= this.#reset(reason).finally(() => {
      this.#resetting = null;
    });
    return this.#resetting;
  }

  /** Shuts the controller down cleanly (CC.SHN) and gives back its memory and interrupts. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    const wasLive = this.#state === "live";
    this.#state = "closed";
    clearInterval(this.#watchdog);
    for (const q of this.#queues.values()) {
      for (const cmd of [...q.pending, ...q.inflight.values()]) cmd.reject(this.#closedError());
      q.pending = [];
      q.live = false;
    }
    if (wasLive) {
      try {
        const cc = await this.#reg(REG_CC);
        await this.#setReg(REG_CC, (cc & ~(3 << 14)) | CC_SHN_NORMAL);
        await this.#waitFor(
          (csts) => (csts & CSTS_SHST_MASK) === CSTS_SHST_COMPLETE,
          this.#readyTimeoutMs,
          "shutdown",
        );
      } catch (err) {
        log.warn("NVMe shutdown did not complete", { name: this.name, error: String(err) });
      }
    }
    await Promise.allSettled(this.#lines.map((l) => l.unregister()));
    this.#lines.length = 0;
    await this.#pool.destroy();
  }

  // ---- internals: data ----

  #checkLive(): void {
    if (this.#state === "closed") throw this.#closedError();
    if (this.#state === "failed") {
      throw hardwareError(`${this.name}: the controller failed and could not be reset`);
    }
  }

  #closedError(): AstraError {
    return new AstraError(Code.FAILED_PRECONDITION, Errno.ENODEV, `${this.name} is shut down`);
  }

  #checkRange(ns: NamespaceData, lba: number, count: number): void {
    if (!Number.isSafeInteger(lba) || lba < 0) throw invalidArgument("lba", `bad LBA ${lba}`);
    if (!Number.isInteger(count) || count < 1) {
      throw invalidArgument("count", `at least one block, not ${count}`);
    }
    if (lba + count > ns.sizeBlocks) {
      throw outOfRange(
        "lba",
        `blocks ${lba}..${lba + count - 1} lie beyond namespace ${ns.namespaceId}'s ${ns.sizeBlocks} blocks`,
        Errno.ENXIO,
      );
    }
  }

  /** Splits a transfer into commands the controller accepts (MDTS, and 65536 blocks at most). */
  #split(ns: NamespaceData, lba: number, count: number): { lba: number; count: number }[] {
    const byTransfer = this.#maxTransferBytes > 0
      ? Math.floor(this.#maxTransferBytes / ns.blockBytes)
      : 65536;
    const most = Math.max(1, Math.min(65536, byTransfer));
    const out = [];
    for (let done = 0; done < count; done += most) {
      out.push({ lba: lba + done, count: Math.min(most, count - done) });
    }
    return out;
  }

  /**
   * A DMA buffer of `bytes` for `data`, with PRP1/PRP2 (and a PRP list) describing it; at once,
   * without a promise, when the pool has room. Nothing is written yet: the data and the list go
   * with the command's submission entry.
   */
  #buffer(bytes: number, data: Uint8Array | null): DataBuffer | Promise<DataBuffer> {
    const runs = this.#pool.takeRuns(bytes);
    if (runs) return this.#describe(runs, bytes, data);
    return this.#pool.allocRuns(bytes).then((grown) => this.#describe(grown, bytes, data));
  }

  #describe(runs: DmaRegion[], bytes: number, data: Uint8Array | null): DataBuffer | Promise<DataBuffer> {
    const pages = pagesOf(runs).slice(0, Math.ceil(bytes / PAGE_BYTES));
    const buffer: DataBuffer = { runs, listPages: [], prp1: pages[0], prp2: 0, bytes, writes: [] };
    if (data) {
      let at = 0;
      for (const seg of segmentsOf(runs, data.length)) {
        buffer.writes.push({ address: seg.address, data: data.subarray(at, at + seg.length) });
        at += seg.length;
      }
    }
    if (pages.length === 2) {
      buffer.prp2 = pages[1];
    } else if (pages.length > 2) {
      const listBytes = this.#listPages(pages.length - 1) * PAGE_BYTES;
      const list = this.#pool.takeRuns(listBytes);
      if (!list || list.length !== 1) {
        if (list) this.#pool.freeAll(list);
        return this.#pool.alloc(listBytes).then(
          (region) => this.#withList(buffer, pages, region),
          (err) => {
            this.#freeBuffer(buffer);
            throw err;
          },
        );
      }
      return this.#withList(buffer, pages, list[0]);
    }
    return buffer;
  }

  /** PRP list pages for `entries` entries: 512 a page, the last slot chaining to the next page. */
  #listPages(entries: number): number {
    let pages = 1;
    while (pages * (MAX_PRP_LIST_ENTRIES - 1) + 1 < entries) pages++;
    return pages;
  }

  /** Fills a PRP list (in `region`) with every page after the first, to be written with the data. */
  #withList(buffer: DataBuffer, pages: number[], region: DmaRegion): DataBuffer {
    buffer.listPages.push(region);
    const entries = pages.slice(1);
    const listCount = this.#listPages(entries.length);
    const bytesOut = new Uint8Array(listCount * PAGE_BYTES);
    const v = new DataView(bytesOut.buffer);
    let e = 0;
    for (let page = 0; page < listCount; page++) {
      const last = page === listCount - 1;
      const slots = last ? MAX_PRP_LIST_ENTRIES : MAX_PRP_LIST_ENTRIES - 1;
      for (let s = 0; s < slots && e < entries.length; s++, e++) {
        const at = page * PAGE_BYTES + s * 8;
        v.setUint32(at, entries[e] % 0x1_0000_0000, true);
        v.setUint32(at + 4, Math.floor(entries[e] / 0x1_0000_0000), true);
      }
      if (!last) {
        const next = region.address + (page + 1) * PAGE_BYTES;
        const at = page * PAGE_BYTES + (MAX_PRP_LIST_ENTRIES - 1) * 8;
        v.setUint32(at, next % 0x1_0000_0000, true);
        v.setUint32(at + 4, Math.floor(next / 0x1_0000_0000), true);
      }
    }
    buffer.prp2 = region.address;
    buffer.writes.push({ address: region.address, data: bytesOut });
    return buffer;
  }

  #freeBuffer(buffer: DataBuffer): void {
    this.#pool.freeAll(buffer.runs);
    this.#pool.freeAll(buffer.listPages);
  }

  async #transfer(
    ns: NamespaceData,
    opcode: number,
    lba: number,
    count: number,
    data: Uint8Array | null,
    fua: boolean,
    options: { queueId?: number; events?: IoEvents },
  ): Promise<Uint8Array | null> {
    const bytes = count * ns.blockBytes;
    const pending = this.#buffer(bytes, data);
    const buffer = pending instanceof Promise ? await pending : pending;
    try {
      const sqe = buildSqe(opcode, ns.namespaceId, buffer.prp1, buffer.prp2, [
        lba % 0x1_0000_0000,
        Math.floor(lba / 0x1_0000_0000),
        ((count - 1) | (fua ? 1 << 30 : 0)) >>> 0,
      ]);
      const readBack = opcode === NVM_READ ? segmentsOf(buffer.runs, bytes) : null;
      const done = await this.#withRetries(
        ns,
        lba,
        count,
        () => this.#execute(this.#ioQueue(options.queueId ?? 0), sqe, { writes: buffer.writes, readBack }),
        options.events,
      );
      return done.data;
    } finally {
      this.#freeBuffer(buffer);
    }
  }

  /** Runs a command until it succeeds, fails for good, or has been retried `maxRetries` times. */
  async #withRetries(
    ns: NamespaceData,
    lba: number,
    count: number,
    run: () => Promise<CompletedCommand>,
    events?: IoEvents,
  ): Promise<CompletedCommand> {
    const facts = () => ({
      controller: this.name,
      namespace: String(ns.namespaceId),
      lba: String(lba),
      count: String(count),
    });
    for (let attempt = 0;; attempt++) {
      let failure: AstraError;
      let retryable: boolean;
      try {
        const done = await run();
        if (done.completion.status === SC_SUCCESS) return done;
        failure = statusError(done.completion.status, facts());
        retryable = !done.completion.doNotRetry;
      } catch (err) {
        if (!isTimeout(err)) throw err;
        failure = timeoutError(`${this.name}: the command at LBA ${lba}`, facts());
        retryable = true;
      }
      if (failure.errno === Errno.ETIMEDOUT) events?.timeout();
      if (!retryable || attempt >= this.#options.maxRetries || this.#state === "closed") {
        this.#stats.errors++;
        failure.detail.facts.attempts = String(attempt + 1);
        throw failure;
      }
      this.#stats.retries++;
      events?.retry();
    }
  }

  // ---- internals: queues ----

  #vectorFor(qid: number): number {
    const vectors = this.#info.irqs.length;
    if (vectors === 1) return 0;
    return qid < vectors ? qid : 1 + ((qid - 1) % (vectors - 1));
  }

  #sqDoorbell(qid: number): number {
    return this.#info.mmioBase + DOORBELL_BASE + 2 * qid * this.#doorbellStride;
  }

  #cqDoorbell(qid: number): number {
    return this.#info.mmioBase + DOORBELL_BASE + (2 * qid + 1) * this.#doorbellStride;
  }

  async #newQueue(id: number, entries: number, vector: number): Promise<QueuePair> {
    const sq = await this.#pool.alloc(entries * SQE_BYTES);
    const cq = await this.#pool.alloc(entries * CQE_BYTES);
    await Promise.all([
      this.#hw.fillPhysical(sq.address, sq.bytes, 0),
      this.#hw.fillPhysical(cq.address, cq.bytes, 0),
    ]);
    const ring = new Uint8Array(entries * SQE_BYTES);
    const q: QueuePair = {
      id,
      entries,
      vector,
      sq,
      cq,
      ring,
      ringView: new DataView(ring.buffer),
      sqTail: 0,
      sqHead: 0,
      cqHead: 0,
      cqPhase: 1,
      unacknowledged: 0,
      capacity: capacityOf(entries),
      freeCids: Array.from({ length: entries - 1 }, (_, i) => entries - 2 - i),
      inflight: new Map(),
      pending: [],
      pumping: null,
      reaping: null,
      reapAgain: false,
      deferred: false,
      live: true,
      accepting: true,
    };
    this.#queues.set(id, q);
    this.#refreshIoQueues();
    return q;
  }

  async #createIoQueue(qid: number, entries: number, vector: number): Promise<QueuePair> {
    const q = await this.#newQueue(qid, entries, vector);
    q.live = false;
    try {
      await this.#createOnController(q);
    } catch (err) {
      this.#queues.delete(qid);
      this.#refreshIoQueues();
      this.#pool.free(q.sq);
      this.#pool.free(q.cq);
      throw err;
    }
    q.live = true;
    this.#pump(q);
    return q;
  }

  async #createOnController(q: QueuePair): Promise<void> {
    await this.#adminCheck(ADMIN_CREATE_IO_CQ, 0, [
      ((q.entries - 1) << 16) | q.id,
      ((q.vector << 16) | 3) >>> 0,
    ], {
      prp1: q.cq.address,
    });
    await this.#adminCheck(
      ADMIN_CREATE_IO_SQ,
      0,
      [((q.entries - 1) << 16) | q.id, ((q.id << 16) | 1) >>> 0],
      {
        prp1: q.sq.address,
      },
    );
  }

  async #setQueueCount(wanted: number): Promise<number> {
    const done = await this.#adminCheck(ADMIN_SET_FEATURES, 0, [
      FEATURE_NUMBER_OF_QUEUES,
      (((wanted - 1) << 16) | (wanted - 1)) >>> 0,
    ]);
    const sqs = (done.completion.result & 0xffff) + 1;
    const cqs = (done.completion.result >>> 16) + 1;
    return Math.min(sqs, cqs);
  }

  /**
   * Interrupt Coalescing as the options ask, on a controller fresh from a reset (which turns it
   * off). A controller that refuses it still works, with an interrupt per burst of completions.
   */
  async #setCoalescing(): Promise<void> {
    if (this.#coalescing === 0) return;
    const done = await this.#admin(ADMIN_SET_FEATURES, 0, [FEATURE_INTERRUPT_COALESCING, this.#coalescing]);
    if (done.completion.status !== SC_SUCCESS) {
      log.warn("NVMe interrupt coalescing refused", {
        name: this.name,
        status: nvmeStatusName(done.completion.status),
      });
    }
  }

  /** The queue a command goes to: the one asked for, else the least busy. */
  #ioQueue(queueId: number): QueuePair {
    if (queueId !== 0) {
      const q = this.#queues.get(queueId);
      if (!q || !q.accepting) throw notFound("queue_id", `${this.name} has no I/O queue ${queueId}`);
      return q;
    }
    return this.#pickQueue();
  }

  /**
   * The queue for a command the caller did not place. The storage service submits from one
   * thread, as one CPU would, so its commands go to one queue (the first with room) and batch
   * there; the others take what overflows, and commands placed on them explicitly.
   */
  #pickQueue(): QueuePair {
    let best: QueuePair | null = null;
    let bestLoad = Infinity;
    for (const q of this.#ioQueues) {
      if (!q.accepting) continue;
      const load = q.inflight.size + q.pending.length;
      if (load < q.capacity) return q;
      if (load < bestLoad) {
        best = q;
        bestLoad = load;
      }
    }
    if (!best) throw hardwareError(`${this.name} has no usable I/O queue`);
    return best;
  }

  /** The I/O queues new commands may go to, kept as a list for #pickQueue. */
  #refreshIoQueues(): void {
    this.#ioQueues = [...this.#queues.values()].filter((q) => q.id !== 0 && q.accepting).sort((a, b) =>
      a.id - b.id
    );
  }

  // ---- internals: submission and completion ----

  /** Queues a command on `q` and resolves with its completion (whatever its status). */
  #execute(
    q: QueuePair,
    sqe: Sqe,
    options: {
      writes?: PhysicalWrite[];
      readBack?: PhysicalSegment[] | null;
      readBackAlways?: boolean;
      timeoutMs?: number;
      onSubmit?: (cid: number) => void;
    },
  ): Promise<CompletedCommand> {
    this.#checkLive();
    return new Promise<CompletedCommand>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ??
        (q.id === 0 ? this.#options.adminTimeoutMs : this.#options.commandTimeoutMs);
      const cmd: Command = {
        sqe,
        cid: -1,
        queueId: q.id,
        timeoutMs,
        deadline: 0,
        submittedAt: 0,
        aborting: false,
        abandoned: false,
        writes: options.writes ?? [],
        readBack: options.readBack ?? null,
        readBackAlways: options.readBackAlways ?? false,
        onSubmit: options.onSubmit ?? null,
        resolve,
        reject,
      };
      this.#stats.commands++;
      this.#enqueue(q, cmd);
    });
  }

  #enqueue(q: QueuePair, cmd: Command): void {
    cmd.queueId = q.id;
    q.pending.push(cmd);
    if (q.id === 0) this.#pump(q);
    else if (!q.deferred) {
      // Whatever else is submitted meanwhile goes in the same batch: on an idle queue, what the
      // callers woken with this one submit in their same round of microtasks (a completion wakes
      // many at once); on a busy one, everything until the end of this turn of the event loop
      // (a timer would wait a millisecond or more when nothing else is runnable).
      q.deferred = true;
      const pump = () => {
        q.deferred = false;
        this.#pump(q);
      };
      if (q.inflight.size === 0) queueMicrotask(pump);
      else setImmediate(pump);
    }
  }

  #canSubmit(q: QueuePair): boolean {
    if (!q.live) return false;
    return this.#state === "live" || (q.id === 0 && this.#state === "resetting");
  }

  #pump(q: QueuePair): void {
    if (q.pumping || !this.#canSubmit(q)) return;
    if (q.pending.length === 0 || q.inflight.size >= q.capacity) return;
    let failed = false;
    q.pumping = this.#submitBatches(q).catch((err) => {
      // The commands in the ring time out and recover through the watchdog, which also pumps again.
      failed = true;
      log.warn("NVMe submission failed", { name: this.name, queue: q.id, error: String(err) });
    }).finally(() => {
      q.pumping = null;
      if (!failed && q.pending.length > 0) this.#pump(q);
    });
  }

  /**
   * Puts everything waiting into the ring in one go: the commands' data and PRP lists, their
   * entries and the tail doorbell travel as one batch of accesses, in that order.
   */
  async #submitBatches(q: QueuePair): Promise<void> {
    while (this.#canSubmit(q) && q.pending.length > 0 && q.inflight.size < q.capacity) {
      const n = Math.min(q.pending.length, q.capacity - q.inflight.size);
      const batch = q.pending.splice(0, n);
      const first = q.sqTail;
      const now = performance.now();
      const data: PhysicalWrite[] = [];
      for (let i = 0; i < n; i++) {
        const cmd = batch[i];
        const cid = q.freeCids.pop()!;
        cmd.cid = cid;
        cmd.queueId = q.id;
        cmd.submittedAt = now;
        cmd.deadline = now + cmd.timeoutMs;
        cmd.aborting = false;
        q.inflight.set(cid, cmd);
        const at = ((first + i) % q.entries) * SQE_BYTES;
        q.ringView.setUint32(at, ((cmd.sqe[0] & 0xffff) | (cid << 16)) >>> 0, true);
        for (let d = 1; d < SQE_BYTES / 4; d++) q.ringView.setUint32(at + d * 4, cmd.sqe[d], true);
        for (const w of cmd.writes) data.push(w);
        cmd.onSubmit?.(cid);
      }
      const firstSpan = Math.min(n, q.entries - first);
      q.sqTail = (first + n) % q.entries;
      const accesses = data.length > 0 ? writeAccesses(data) : [];
      accesses.push({
        op: "write-physical",
        address: q.sq.address + first * SQE_BYTES,
        data: q.ring.subarray(first * SQE_BYTES, (first + firstSpan) * SQE_BYTES),
      });
      if (firstSpan < n) {
        accesses.push({
          op: "write-physical",
          address: q.sq.address,
          data: q.ring.subarray(0, (n - firstSpan) * SQE_BYTES),
        });
      }
      accesses.push({ op: "write32", address: this.#sqDoorbell(q.id), value: q.sqTail });
      await this.#hw.access(accesses);
    }
  }

  #reap(q: QueuePair): Promise<void> {
    if (q.reaping) {
      q.reapAgain = true;
      return q.reaping;
    }
    const run = async () => {
      do {
        q.reapAgain = false;
        await this.#reapOnce(q);
      } while (q.reapAgain && q.live);
    };
    q.reaping = run().finally(() => {
      q.reaping = null;
    });
    return q.reaping;
  }

  /** Consumes every new completion entry, writes the head doorbell, and finishes the commands. */
  async #reapOnce(q: QueuePair): Promise<void> {
    const done: { cmd: Command; completion: NvmeCompletion }[] = [];
    let consumed = 0;
    for (;;) {
      const bound = q.inflight.size;
      if (bound === 0) break;
      const n = Math.min(bound, q.entries - q.cqHead);
      const bytes = await this.#hw.readPhysical(q.cq.address + q.cqHead * CQE_BYTES, n * CQE_BYTES);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      let i = 0;
      for (; i < n; i++) {
        if (((view.getUint32(i * CQE_BYTES + 12, true) >>> 16) & 1) !== q.cqPhase) break;
        const completion = parseCompletion(bytes, view, i * CQE_BYTES);
        q.cqHead++;
        if (q.cqHead === q.entries) {
          q.cqHead = 0;
          q.cqPhase ^= 1;
        }
        q.sqHead = completion.sqHead;
        consumed++;
        const cmd = q.inflight.get(completion.cid);
        if (!cmd) {
          log.warn("NVMe completion for no command", { name: this.name, queue: q.id, cid: completion.cid });
          continue;
        }
        q.inflight.delete(completion.cid);
        q.freeCids.push(completion.cid);
        if (!cmd.abandoned) done.push({ cmd, completion });
      }
      if (i < n) break;
    }
    if (consumed === 0) return;
    this.#stats.completions += consumed;
    q.unacknowledged += consumed;
    // The head doorbell tells the controller that completion entries are free again; with the
    // queue's capacity kept below its size it is written every quarter of the ring, after the
    // finished commands' data is read, in the same batch. Under interrupt coalescing it also
    // tells the controller that the host has caught up (so what it held back needs no interrupt
    // of its own): then it is written every time.
    let doorbell: DeviceAccess | null = null;
    if (q.unacknowledged >= ackInterval(q.entries) || q.id === 0 || this.#coalescing !== 0) {
      q.unacknowledged = 0;
      doorbell = { op: "write32", address: this.#cqDoorbell(q.id), value: q.cqHead };
    }
    await this.#finish(done, doorbell);
    if (q.pending.length > 0) this.#pump(q);
  }

  /**
   * Reads back the data of the finished commands (merged where buffers are neighbours), with
   * `after` (the head doorbell) in the same batch, then settles them.
   */
  async #finish(
    done: { cmd: Command; completion: NvmeCompletion }[],
    after: DeviceAccess | null,
  ): Promise<void> {
    const segments: PhysicalSegment[] = [];
    const owners: { index: number; first: number; count: number }[] = [];
    done.forEach(({ cmd, completion }, index) => {
      if (!cmd.readBack || (completion.status !== SC_SUCCESS && !cmd.readBackAlways)) return;
      owners.push({ index, first: segments.length, count: cmd.readBack.length });
      segments.push(...cmd.readBack);
    });
    const data: (Uint8Array | null)[] = done.map(() => null);
    const failed = new Set<number>();
    const plan = planReads(segments);
    const accesses = after ? [...plan.accesses, after] : plan.accesses;
    let doorbellFailure: unknown = null;
    if (accesses.length > 0) {
      try {
        const parts = plan.assemble(await this.#hw.access(accesses));
        for (const o of owners) data[o.index] = concat(parts.slice(o.first, o.first + o.count));
      } catch (err) {
        // The batch stops at the access that failed, so the data may be unread: those commands
        // fail; the others finished on the controller and are settled below. The reaper hears
        // of it when the doorbell may not have been written.
        for (const o of owners) {
          failed.add(o.index);
          done[o.index].cmd.reject(err);
        }
        if (after) doorbellFailure = err;
      }
    }
    const now = performance.now();
    done.forEach(({ cmd, completion }, i) => {
      if (failed.has(i)) return;
      cmd.resolve({ completion, data: data[i], latencyMicros: Math.round((now - cmd.submittedAt) * 1000) });
    });
    if (doorbellFailure) throw doorbellFailure;
  }

  // ---- internals: admin commands ----

  /** An admin command; resolves with its completion whatever the status. */
  #admin(
    opcode: number,
    nsid: number,
    dwords: number[],
    options: { prp1?: number; readBack?: PhysicalSegment[] | null; timeoutMs?: number } = {},
  ): Promise<CompletedCommand> {
    const q = this.#queues.get(0);
    if (!q) throw hardwareError(`${this.name} has no admin queue`);
    return this.#execute(q, buildSqe(opcode, nsid, options.prp1 ?? 0, 0, dwords), options);
  }

  /** An admin command that must succeed. */
  async #adminCheck(
    opcode: number,
    nsid: number,
    dwords: number[],
    options: { prp1?: number } = {},
  ): Promise<CompletedCommand> {
    const done = await this.#admin(opcode, nsid, dwords, options);
    if (done.completion.status !== SC_SUCCESS) {
      throw statusError(done.completion.status, {
        controller: this.name,
        opcode: `0x${opcode.toString(16)}`,
      });
    }
    return done;
  }

  /** An admin command that returns a 4 KiB data structure. */
  async #adminData(opcode: number, nsid: number, dwords: number[]): Promise<Uint8Array> {
    const page = await this.#pool.alloc(PAGE_BYTES);
    try {
      const done = await this.#admin(opcode, nsid, dwords, {
        prp1: page.address,
        readBack: [{ address: page.address, length: PAGE_BYTES }],
      });
      if (done.completion.status !== SC_SUCCESS) {
        throw statusError(done.completion.status, {
          controller: this.name,
          opcode: `0x${opcode.toString(16)}`,
          namespace: String(nsid),
        });
      }
      return done.data!.slice();
    } finally {
      this.#pool.free(page);
    }
  }

  async #armAsyncEvents(): Promise<void> {
    await this.#adminCheck(ADMIN_SET_FEATURES, 0, [
      FEATURE_ASYNC_EVENT_CONFIG,
      AEC_NAMESPACE_ATTRIBUTE_NOTICES,
    ]);
    this.#submitAsyncEventRequest();
  }

  /** One Asynchronous Event Request stays outstanding; each event is handled and the request renewed. */
  #submitAsyncEventRequest(): void {
    if (this.#state !== "live" && this.#state !== "resetting") return;
    this.#admin(ADMIN_ASYNC_EVENT_REQUEST, 0, [], { timeoutMs: Infinity }).then(
      (done) => {
        if (done.completion.status !== SC_SUCCESS) {
          log.debug("asynchronous event request ended", {
            name: this.name,
            status: nvmeStatusName(done.completion.status),
          });
          return;
        }
        this.#stats.asyncEvents++;
        this.#submitAsyncEventRequest();
        this.#asyncEvent(done.completion.result).catch((err) =>
          log.warn("NVMe asynchronous event handling failed", { name: this.name, error: String(err) })
        );
      },
      (err) => log.debug("asynchronous event request dropped", { name: this.name, error: String(err) }),
    );
  }

  async #asyncEvent(dw0: number): Promise<void> {
    const type = dw0 & 7;
    const info = (dw0 >>> 8) & 0xff;
    const logPage = (dw0 >>> 16) & 0xff;
    if (type === ASYNC_EVENT_TYPE_NOTICE && info === ASYNC_NOTICE_NAMESPACE_CHANGED) {
      const raw = await this.#adminData(ADMIN_GET_LOG_PAGE, 0xffff_ffff, [
        (LOG_CHANGED_NAMESPACES | ((1024 - 1) << 16)) >>> 0,
        0,
      ]);
      const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const changed: number[] = [];
      if (v.getUint32(0, true) === 0xffff_ffff) {
        // More than 1024 changed: look at every namespace.
        changed.push(...this.#namespaces.keys());
        for (const ns of await this.enumerateNamespaces()) changed.push(ns.namespaceId);
      } else {
        for (let i = 0; i < 1024; i++) {
          const id = v.getUint32(i * 4, true);
          if (id === 0) break;
          changed.push(id);
        }
      }
      await this.#rescan([...new Set(changed)]);
      return;
    }
    // Other events (errors, health) stay masked until their log page is read.
    const page = logPage === 0 ? LOG_ERROR_INFORMATION : logPage;
    log.warn("NVMe asynchronous event", { name: this.name, type, info, logPage: page });
    await this.#adminData(ADMIN_GET_LOG_PAGE, 0xffff_ffff, [(page | ((1024 - 1) << 16)) >>> 0, 0]).catch(() =>
      null
    );
  }

  async #rescan(ids: number[]): Promise<void> {
    const change: NamespaceChange = { added: [], removed: [] };
    for (const id of ids) {
      const ns = await this.identifyNamespace(id);
      const known = this.#namespaces.get(id);
      if (ns.sizeBlocks > 0) {
        this.#namespaces.set(id, ns);
        if (!known || known.sizeBlocks !== ns.sizeBlocks || known.blockBytes !== ns.blockBytes) {
          if (known) change.removed.push(id);
          change.added.push(ns);
        }
      } else if (known) {
        this.#namespaces.delete(id);
        change.removed.push(id);
      }
    }
    if (change.added.length + change.removed.length > 0) {
      log.info("NVMe namespaces changed", {
        name: this.name,
        added: change.added.map((n) => n.namespaceId),
        removed: change.removed,
      });
      this.onNamespacesChanged?.(change);
    }
  }

  // ---- internals: registers and the controller's state ----

  #reg(offset: number): Promise<number> {
    return this.#hw.read32(this.#info.mmioBase + offset);
  }

  #setReg(offset: number, value: number): Promise<void> {
    return this.#hw.write32(this.#info.mmioBase + offset, value >>> 0);
  }

  async #waitFor(test: (csts: number) => boolean, timeoutMs: number, what: string): Promise<number> {
    const end = performance.now() + timeoutMs;
    for (let spin = 0;; spin++) {
      const csts = await this.#reg(REG_CSTS);
      if (test(csts)) return csts;
      if (performance.now() > end) {
        throw hardwareError(
          `${this.name}: ${what} did not happen within ${timeoutMs} ms (CSTS 0x${csts.toString(16)})`,
        );
      }
      await new Promise((r) => setTimeout(r, spin < 10 ? 0 : 1));
    }
  }

  async #disable(): Promise<void> {
    const cc = await this.#reg(REG_CC);
    if (cc & CC_EN) await this.#setReg(REG_CC, cc & ~CC_EN);
    await this.#waitFor((csts) => (csts & CSTS_RDY) === 0, this.#readyTimeoutMs, "disabling the controller");
  }

  async #enable(admin: QueuePair): Promise<void> {
    await this.#setReg(REG_AQA, ((admin.entries - 1) << 16) | (admin.entries - 1));
    await this.#setReg(REG_ASQ, admin.sq.address % 0x1_0000_0000);
    await this.#setReg(REG_ASQ + 4, Math.floor(admin.sq.address / 0x1_0000_0000));
    await this.#setReg(REG_ACQ, admin.cq.address % 0x1_0000_0000);
    await this.#setReg(REG_ACQ + 4, Math.floor(admin.cq.address / 0x1_0000_0000));
    await this.#setReg(REG_CC, CC_EN | CC_IOSQES | CC_IOCQES);
    const csts = await this.#waitFor(
      (s) => (s & (CSTS_RDY | CSTS_CFS)) !== 0,
      this.#readyTimeoutMs,
      "enabling the controller",
    );
    if (csts & CSTS_CFS) throw hardwareError(`${this.name}: the controller reports a fatal status on enable`);
  }

  async #reset(reason: string): Promise<number> {
    this.#checkLive();
    this.#state = "resetting";
    this.#stats.resets++;
    log.warn("resetting NVMe controller", { name: this.name, reason });
    const carried: Command[] = [];
    const admin = this.#queues.get(0)!;
    try {
      for (const q of this.#queues.values()) {
        q.live = false;
        await q.pumping;
        await q.reaping?.catch(() => {});
      }
      for (const q of this.#queues.values()) {
        if (q.id === 0) continue;
        for (const cmd of q.inflight.values()) {
          if (cmd.abandoned) continue;
          if (cmd.aborting) {
            // It already outlived its timeout once: it fails rather than hanging the queue again.
            cmd.reject(timeoutError(`${this.name}: the command`, { controller: this.name }));
          } else {
            carried.push(cmd);
          }
        }
        carried.push(...q.pending);
        q.pending = [];
        q.inflight.clear();
      }
      for (const cmd of admin.inflight.values()) {
        if (!cmd.abandoned) {
          cmd.reject(hardwareError(`${this.name}: the controller was reset under the command`));
        }
      }
      const adminWaiting = admin.pending.splice(0);
      admin.inflight.clear();
      await this.#disable();
      for (const q of this.#queues.values()) await this.#rewind(q);
      await this.#enable(admin);
      admin.live = true;
      for (const cmd of adminWaiting) this.#enqueue(admin, cmd);
      this.#queuesAllocated = await this.#setQueueCount(Math.max(...this.ioQueueIds, QUEUES_REQUESTED));
      await this.#setCoalescing();
      for (const q of this.#queues.values()) if (q.id !== 0) await this.#createOnController(q);
      this.#state = "live";
      for (const q of this.#queues.values()) q.live = true;
      await this.#armAsyncEvents();
    } catch (err) {
      this.#state = "failed";
      log.error("NVMe controller reset failed", { name: this.name, error: String(err) });
      const failure = hardwareError(
        `${this.name}: the controller failed and could not be reset: ${String(err)}`,
      );
      for (const cmd of carried) cmd.reject(failure);
      for (const q of this.#queues.values()) {
        for (const cmd of q.pending) cmd.reject(failure);
        q.pending = [];
      }
      throw failure;
    }
    for (const cmd of carried) this.#enqueue(this.#queues.get(cmd.queueId) ?? this.#pickQueue(), cmd);
    // Requests that arrived during the reset waited on their queues.
    for (const q of this.#queues.values()) this.#pump(q);
    this.#stats.resubmitted += carried.length;
    return carried.length;
  }

  /** A queue as a reset leaves it: empty rings, the phase back at 1, every command id free. */
  async #rewind(q: QueuePair): Promise<void> {
    q.sqTail = 0;
    q.sqHead = 0;
    q.cqHead = 0;
    q.cqPhase = 1;
    q.unacknowledged = 0;
    q.freeCids = Array.from({ length: q.entries - 1 }, (_, i) => q.entries - 2 - i);
    q.inflight.clear();
    // Old entries with the phase bit set would read as new ones.
    await this.#hw.fillPhysical(q.cq.address, q.cq.bytes, 0);
  }

  // ---- internals: timeouts ----

  #startWatchdog(): void {
    const period = Math.max(5, Math.min(WATCHDOG_PERIOD_MS, Math.floor(this.#options.commandTimeoutMs / 4)));
    const watchdog = setInterval(() => this.#watch(), period);
    Deno.unrefTimer(watchdog);
    this.#watchdog = watchdog;
  }

  async #watch(): Promise<void> {
    if (this.#watching) return;
    if (this.#state === "resetting") {
      // The reset's own admin commands must complete even without interrupts.
      const admin = this.#queues.get(0);
      if (admin?.live && admin.inflight.size > 0) await this.#reap(admin).catch(() => {});
      return;
    }
    if (this.#state !== "live") return;
    this.#watching = true;
    try {
      const now = performance.now();
      const expired: { q: QueuePair; cmd: Command }[] = [];
      for (const q of this.#queues.values()) {
        // Commands that never reached the controller (its queue stayed full) time out as they are.
        q.pending = q.pending.filter((cmd) => {
          if (cmd.deadline === 0) cmd.deadline = now + cmd.timeoutMs;
          if (cmd.deadline > now) return true;
          this.#stats.timeouts++;
          cmd.reject(
            timeoutError(`${this.name}: a command waiting for queue ${q.id}`, { controller: this.name }),
          );
          return false;
        });
        if (q.pending.length > 0) this.#pump(q);
        let stale = false;
        for (const cmd of q.inflight.values()) {
          if (now - cmd.submittedAt >= POLL_AFTER_MS && !cmd.abandoned) stale = true;
        }
        if (!stale) continue;
        // A lost interrupt looks like a timeout: look in the completion queue first.
        if (q.live) await this.#reap(q);
        for (const cmd of q.inflight.values()) {
          if (cmd.deadline <= performance.now() && !cmd.abandoned) expired.push({ q, cmd });
        }
      }
      if (expired.length === 0) return;
      const csts = await this.#reg(REG_CSTS);
      if ((csts & CSTS_CFS) || !(csts & CSTS_RDY)) {
        await this.resetController(`controller status 0x${csts.toString(16)} with commands overdue`);
        return;
      }
      for (const { q, cmd } of expired) {
        if (q.id === 0) {
          this.#stats.timeouts++;
          cmd.abandoned = true;
          cmd.reject(
            timeoutError(`${this.name}: admin command ${cmd.sqe[0] & 0xff}`, { controller: this.name }),
          );
          continue;
        }
        if (cmd.aborting) {
          await this.resetController(`command ${cmd.cid} on queue ${q.id} ignored its abort`);
          return;
        }
        this.#stats.timeouts++;
        this.#stats.aborts++;
        cmd.aborting = true;
        cmd.deadline = performance.now() + this.#options.adminTimeoutMs;
        this.#admin(ADMIN_ABORT, 0, [((cmd.cid << 16) | q.id) >>> 0]).catch((err) =>
          log.debug("abort not delivered", { name: this.name, error: String(err) })
        );
      }
    } catch (err) {
      log.warn("NVMe watchdog failed", { name: this.name, error: String(err) });
    } finally {
      this.#watching = false;
    }
  }
}
