// An NVMe 1.4 controller at register level. Software brings it up as a driver does: CAP tells it
// the doorbell stride and page sizes, AQA/ASQ/ACQ place the admin queues in guest memory, CC.EN
// starts it and CSTS.RDY says it is ready. Commands are 64-byte submission entries read by DMA
// when a tail doorbell is written; data moves through PRP1/PRP2 and PRP lists (page-size aware);
// completions are 16-byte entries with phase tags posted to the completion queue, each queue with
// its own interrupt vector (MSI-X style, maskable through INTMS/INTMC), signalled once per burst
// of completions or as Interrupt Coalescing (Set Features 08h and 09h) aggregates them. Read data
// goes from the disk straight into guest memory. Namespaces are
// DiskImages with their own LBA format (512 B or 4 KiB); they can come and go at run time, which
// the controller reports through Asynchronous Event Requests and the Changed Namespace List.
// Controller reset (CC.EN 1→0) drops everything in flight; a fatal status (CSTS.CFS) can be
// injected; commands may be made to never complete (by the disk's faults) and then aborted.
import { setImmediate } from "node:timers";
import { alreadyExists, AstraError, Code, Errno, invalidArgument, notFound } from "../../../lib/errors.ts";
import type { PhysicalMemory } from "../memory.ts";
import { DiskImage, DiskMediaError } from "./diskimage.ts";
import type { InterruptSink } from "./intc.ts";
import type { MmioDevice } from "./mmio.ts";

// ---- registers ----

export const NVME_CAP = 0x00;
export const NVME_VS = 0x08;
export const NVME_INTMS = 0x0c;
export const NVME_INTMC = 0x10;
export const NVME_CC = 0x14;
export const NVME_CSTS = 0x1c;
export const NVME_NSSR = 0x20;
export const NVME_AQA = 0x24;
export const NVME_ASQ = 0x28;
export const NVME_ACQ = 0x30;
export const NVME_DOORBELLS = 0x1000;
export const NVME_VERSION = 0x0001_0400;

export const CC_EN = 1 << 0;
const CC_CSS_SHIFT = 4;
const CC_MPS_SHIFT = 7;
const CC_AMS_SHIFT = 11;
const CC_SHN_SHIFT = 14;
const CC_IOSQES_SHIFT = 16;
const CC_IOCQES_SHIFT = 20;
const CC_WRITABLE = 0x00ff_fff1;

export const CSTS_RDY = 1 << 0;
export const CSTS_CFS = 1 << 1;
const CSTS_SHST_SHIFT = 2;
export const SHST_NORMAL = 0;
export const SHST_OCCURRING = 1;
export const SHST_COMPLETE = 2;

/** Submission and completion queue entry sizes, log2 (64 and 16 bytes). */
export const SQ_ENTRY_LOG2 = 6;
export const CQ_ENTRY_LOG2 = 4;
const SQE_BYTES = 1 << SQ_ENTRY_LOG2;
const CQE_BYTES = 1 << CQ_ENTRY_LOG2;
const PAGE_MIN_LOG2 = 12;
/** MPSMIN 0 (4 KiB) .. MPSMAX 4 (64 KiB). */
const MPS_MAX = 4;
const IDENTIFY_BYTES = 4096;
const ERROR_LOG_ENTRIES = 64;
const ABORT_LIMIT = 4;
const ASYNC_EVENT_LIMIT = 4;

// ---- commands and statuses ----

export const ADMIN_DELETE_IO_SQ = 0x00;
export const ADMIN_CREATE_IO_SQ = 0x01;
export const ADMIN_GET_LOG_PAGE = 0x02;
export const ADMIN_DELETE_IO_CQ = 0x04;
export const ADMIN_CREATE_IO_CQ = 0x05;
export const ADMIN_IDENTIFY = 0x06;
export const ADMIN_ABORT = 0x08;
export const ADMIN_SET_FEATURES = 0x09;
export const ADMIN_GET_FEATURES = 0x0a;
export const ADMIN_ASYNC_EVENT_REQUEST = 0x0c;
export const NVM_FLUSH = 0x00;
export const NVM_WRITE = 0x01;
export const NVM_READ = 0x02;

export const CNS_NAMESPACE = 0x00;
export const CNS_CONTROLLER = 0x01;
export const CNS_ACTIVE_NAMESPACES = 0x02;
export const CNS_NAMESPACE_DESCRIPTORS = 0x03;

export const FEATURE_VOLATILE_WRITE_CACHE = 0x06;
export const FEATURE_NUMBER_OF_QUEUES = 0x07;
export const FEATURE_INTERRUPT_COALESCING = 0x08;
export const FEATURE_INTERRUPT_VECTOR_CONFIG = 0x09;
export const FEATURE_ASYNC_EVENT_CONFIG = 0x0b;
/** Interrupt Vector Configuration: Coalescing Disable. */
export const IVC_COALESCING_DISABLE = 1 << 16;

export const LOG_ERROR_INFORMATION = 0x01;
export const LOG_SMART_HEALTH = 0x02;
export const LOG_FIRMWARE_SLOT = 0x03;
export const LOG_CHANGED_NAMESPACES = 0x04;

/** Async event configuration bit: report namespace attribute changes. */
export const AEC_NAMESPACE_ATTRIBUTE_NOTICES = 1 << 8;
export const ASYNC_EVENT_TYPE_ERROR = 0;
export const ASYNC_EVENT_TYPE_NOTICE = 2;
export const ASYNC_NOTICE_NAMESPACE_CHANGED = 0x00;
export const ASYNC_ERROR_INVALID_DOORBELL = 0x00;
export const ASYNC_ERROR_INVALID_DOORBELL_VALUE = 0x01;

/** Status codes: (status code type << 8) | status code. */
export const SC_SUCCESS = 0x000;
export const SC_INVALID_OPCODE = 0x001;
export const SC_INVALID_FIELD = 0x002;
export const SC_DATA_TRANSFER_ERROR = 0x004;
export const SC_INTERNAL_ERROR = 0x006;
export const SC_ABORT_REQUESTED = 0x007;
export const SC_ABORTED_SQ_DELETION = 0x008;
export const SC_INVALID_NAMESPACE = 0x00b;
export const SC_COMMAND_SEQUENCE_ERROR = 0x00c;
export const SC_INVALID_PRP_OFFSET = 0x013;
export const SC_LBA_OUT_OF_RANGE = 0x080;
export const SC_NAMESPACE_NOT_READY = 0x082;
export const SC_COMPLETION_QUEUE_INVALID = 0x100;
export const SC_INVALID_QUEUE_ID = 0x101;
export const SC_INVALID_QUEUE_SIZE = 0x102;
export const SC_ASYNC_EVENT_LIMIT_EXCEEDED = 0x105;
export const SC_INVALID_INTERRUPT_VECTOR = 0x108;
export const SC_INVALID_LOG_PAGE = 0x109;
export const SC_INVALID_QUEUE_DELETION = 0x10c;
export const SC_FEATURE_NOT_SAVEABLE = 0x10d;
export const SC_WRITE_FAULT = 0x280;
export const SC_UNRECOVERED_READ_ERROR = 0x281;

/** Statuses a retry may cure: they complete without Do Not Retry. */
const RETRYABLE = new Set([
  SC_SUCCESS,
  SC_ABORT_REQUESTED,
  SC_ABORTED_SQ_DELETION,
  SC_DATA_TRANSFER_ERROR,
  SC_INTERNAL_ERROR,
  SC_WRITE_FAULT,
  SC_UNRECOVERED_READ_ERROR,
]);

export interface NvmeOptions {
  memory: PhysicalMemory;
  interrupts: InterruptSink;
  /** The IRQ of each interrupt vector; vector 0 serves the admin completion queue. */
  vectors: number[];
  /** I/O queue pairs the controller can hold (default 64). */
  maxIoQueues?: number;
  /** Largest queue, in entries (CAP.MQES + 1; default 4096). */
  maxQueueEntries?: number;
  /** CAP.DSTRD: doorbells are 4 << stride bytes apart (default 0). */
  doorbellStride?: number;
  /** MDTS: the largest transfer is 2^mdts minimum pages (default 8: 1 MiB). */
  maxTransferLog2?: number;
  /** Namespace IDs run 1..maxNamespaces (Identify NN; default 16). */
  maxNamespaces?: number;
  /** Namespaces present at power-on: no change events for them. */
  namespaces?: { nsid: number; disk: DiskImage }[];
  serial?: string;
  model?: string;
  firmware?: string;
}

export interface NvmeStatistics {
  adminCommands: number;
  ioCommands: number;
  commandErrors: number;
  completionsPosted: number;
  interruptsRaised: number;
  controllerResets: number;
  /** Why the last CC.EN 0→1 left the controller not ready, if it did. */
  lastEnableError: string | null;
}

interface SubmissionQueue {
  id: number;
  base: number;
  size: number;
  head: number;
  tail: number;
  cqid: number;
  inflight: Map<number, Inflight>;
}

interface CompletionEntry {
  dw0: number;
  sqid: number;
  cid: number;
  status: number;
}

interface CompletionQueue {
  id: number;
  base: number;
  size: number;
  /** Where the controller posts next. */
  tail: number;
  /** As last written by the host's head doorbell. */
  head: number;
  phase: number;
  vector: number;
  interruptsEnabled: boolean;
  sqs: Set<number>;
  /** Completions waiting for room in a full queue. */
  backlog: CompletionEntry[];
}

interface Vector {
  /** Entries were posted, and the vector signals for them at the end of this pass. */
  signalDue: boolean;
  /** Entries held back by interrupt coalescing since the vector last signalled. */
  aggregated: number;
  /** When the aggregation time of the held-back entries runs out (performance.now()). */
  deadline: number;
  /** Counts the vector's signals: an aggregation time of an earlier round is over. */
  round: number;
  /** Interrupt Vector Configuration's Coalescing Disable. */
  coalescingDisabled: boolean;
}

interface Inflight {
  sq: SubmissionQueue;
  cid: number;
  nsid: number;
  generation: number;
  done: boolean;
}

interface Command {
  opcode: number;
  fuse: number;
  psdt: number;
  cid: number;
  nsid: number;
  prp1: number;
  prp2: number;
  cdw10: number;
  cdw11: number;
  cdw12: number;
  cdw13: number;
}

interface Result {
  status: number;
  dw0?: number;
  /** For the error log: the LBA at fault. */
  lba?: number;
}

interface AsyncEvent {
  type: number;
  info: number;
  logPage: number;
}

class NvmeStatus extends Error {
  constructor(readonly status: number) {
    super(`NVMe status 0x${status.toString(16)}`);
  }
}

function u64(low: number, high: number): number {
  return (high >>> 0) * 0x1_0000_0000 + (low >>> 0);
}

function putAscii(out: Uint8Array, offset: number, length: number, text: string): void {
  const padded = text.padEnd(length, " ").slice(0, length);
  for (let i = 0; i < length; i++) out[offset + i] = padded.charCodeAt(i) & 0x7f;
}

function putU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value % 0x1_0000_0000, true);
  view.setUint32(offset + 4, Math.floor(value / 0x1_0000_0000), true);
}

export class NvmeController implements MmioDevice {
  readonly mmioSize: number;
  readonly #memory: PhysicalMemory;
  readonly #interrupts: InterruptSink;
  readonly #vectors: number[];
  readonly #maxIoQueues: number;
  readonly #mqes: number;
  readonly #dstrd: number;
  readonly #mdts: number;
  readonly #maxNamespaces: number;
  readonly #identity: { serial: string; model: string; firmware: string };
  readonly #startedAt = performance.now();

  #cc = 0;
  #csts = 0;
  #aqa = 0;
  #asq = [0, 0];
  #acq = [0, 0];
  #intms = 0;
  /** Vectors with a completion posted while masked. */
  #pendingVectors = 0;
  readonly #vectorStates: Vector[];
  #generation = 0;
  readonly #cqe = new Uint8Array(CQE_BYTES);
  readonly #cqeView = new DataView(this.#cqe.buffer);
  #sqs = new Map<number, SubmissionQueue>();
  #cqs = new Map<number, CompletionQueue>();
  readonly #namespaces = new Map<number, DiskImage>();
  /** Device work under way: commands on their disks, a shutdown's flush. */
  #busy = 0;
  /** idle() callers, woken whenever some of that work ends. */
  #idleWaiters: (() => void)[] = [];
  /** Every disk ever attached: commands stalled on one may still be in flight. */
  readonly #disks = new Set<DiskImage>();

  // Features, back to their defaults on every reset.
  #allocatedSqs = 0;
  #allocatedCqs = 0;
  #volatileWriteCache = true;
  #asyncEventConfig = 0;
  /** Interrupt Coalescing: the aggregation threshold (0's based) in bits 7:0, the time (100 µs units) in 15:8. */
  #coalescing = 0;

  #asyncRequests: Inflight[] = [];
  #queuedEvents: AsyncEvent[] = [];
  /** Event log pages reported and not yet read: their events stay masked until then. */
  readonly #maskedEventLogs = new Set<number>();
  readonly #changedNamespaces = new Set<number>();
  #errorLog: Uint8Array[] = [];
  #errorCount = 0;

  readonly #smart = {
    bytesRead: 0,
    bytesWritten: 0,
    hostReads: 0,
    hostWrites: 0,
    mediaErrors: 0,
  };
  readonly #stats: NvmeStatistics = {
    adminCommands: 0,
    ioCommands: 0,
    commandErrors: 0,
    completionsPosted: 0,
    interruptsRaised: 0,
    controllerResets: 0,
    lastEnableError: null,
  };

  constructor(options: NvmeOptions) {
    if (options.vectors.length < 1 || options.vectors.length > 2048) {
      throw invalidArgument(
        "vectors",
        `an NVMe controller needs 1..2048 interrupt vectors, not ${options.vectors.length}`,
      );
    }
    this.#maxIoQueues = options.maxIoQueues ?? 64;
    const maxEntries = options.maxQueueEntries ?? 4096;
    this.#dstrd = options.doorbellStride ?? 0;
    this.#mdts = options.maxTransferLog2 ?? 8;
    this.#maxNamespaces = options.maxNamespaces ?? 16;
    if (!Number.isInteger(this.#maxIoQueues) || this.#maxIoQueues < 1 || this.#maxIoQueues > 65535) {
      throw invalidArgument("maxIoQueues", `I/O queues must be 1..65535, not ${this.#maxIoQueues}`);
    }
    if (!Number.isInteger(maxEntries) || maxEntries < 2 || maxEntries > 65536) {
      throw invalidArgument("maxQueueEntries", `queue entries must be 2..65536, not ${maxEntries}`);
    }
    if (!Number.isInteger(this.#dstrd) || this.#dstrd < 0 || this.#dstrd > 15) {
      throw invalidArgument("doorbellStride", `CAP.DSTRD is 0..15, not ${this.#dstrd}`);
    }
    if (!Number.isInteger(this.#mdts) || this.#mdts < 1 || this.#mdts > 12) {
      throw invalidArgument("maxTransferLog2", `MDTS must be 1..12, not ${this.#mdts}`);
    }
    if (!Number.isInteger(this.#maxNamespaces) || this.#maxNamespaces < 1 || this.#maxNamespaces > 1024) {
      throw invalidArgument("maxNamespaces", `namespaces must be 1..1024, not ${this.#maxNamespaces}`);
    }
    this.#memory = options.memory;
    this.#interrupts = options.interrupts;
    this.#vectors = [...options.vectors];
    this.#vectorStates = this.#vectors.map(() => ({
      signalDue: false,
      aggregated: 0,
      deadline: 0,
      round: 0,
      coalescingDisabled: false,
    }));
    this.#mqes = maxEntries - 1;
    this.#identity = {
      serial: options.serial ?? "ASTRA-NVME-0001",
      model: options.model ?? "AstraLisp NVMe SSD",
      firmware: options.firmware ?? "1.0",
    };
    const doorbellBytes = 2 * (this.#maxIoQueues + 1) * (4 << this.#dstrd);
    this.mmioSize = NVME_DOORBELLS + Math.ceil(doorbellBytes / 4096) * 4096;
    this.#resetFeatures();
    for (const { nsid, disk } of options.namespaces ?? []) this.#plug(nsid, disk);
  }

  // ---- namespaces and faults ----

  /** Attaches a disk as namespace `nsid` at run time: a namespace-attribute notice follows. */
  attachNamespace(nsid: number, disk: DiskImage): void {
    this.#plug(nsid, disk);
    this.#namespaceChanged(nsid);
  }

  #plug(nsid: number, disk: DiskImage): void {
    this.#checkNsid(nsid);
    if (this.#namespaces.has(nsid)) {
      throw alreadyExists("namespaceId", `NVMe namespace ${nsid} is already attached`, Errno.EBUSY);
    }
    this.#namespaces.set(nsid, disk);
    this.#disks.add(disk);
  }

  /**
   * Detaches namespace `nsid`: cleanly (its cache flushed first) or, with `surprise`, at once,
   * failing its commands in flight. Returns the disk.
   */
  async detachNamespace(nsid: number, options: { surprise?: boolean } = {}): Promise<DiskImage> {
    this.#checkNsid(nsid);
    const disk = this.#namespaces.get(nsid);
    if (!disk) throw notFound("namespaceId", `NVMe namespace ${nsid} is not attached`, Errno.ENODEV);
    if (options.surprise) disk.surpriseRemove();
    else await disk.flush();
    if (this.#namespaces.get(nsid) === disk) {
      this.#namespaces.delete(nsid);
      this.#namespaceChanged(nsid);
    }
    return disk;
  }

  namespace(nsid: number): DiskImage | null {
    return this.#namespaces.get(nsid) ?? null;
  }

  namespaceIds(): number[] {
    return [...this.#namespaces.keys()].sort((a, b) => a - b);
  }

  /** The controller fails fatally (CSTS.CFS): it stops processing until a controller reset. */
  injectFatal(): void {
    this.#csts |= CSTS_CFS;
    this.#generation++;
  }

  statistics(): NvmeStatistics {
    return { ...this.#stats };
  }

  /** Resolves once every command in flight has completed, except those stalled on a disk fault. */
  async idle(): Promise<void> {
    while (this.#busy > this.#stalledOnDisks()) {
      await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    }
  }

  #stalledOnDisks(): number {
    let n = 0;
    for (const disk of this.#disks) n += disk.stalledCommands;
    return n;
  }

  // ---- registers ----

  readRegister(offset: number): number {
    switch (offset) {
      case NVME_CAP:
        // MQES, CQR (contiguous queues required), TO = 10 s in 500 ms units.
        return (this.#mqes | (1 << 16) | (20 << 24)) >>> 0;
      case NVME_CAP + 4:
        // DSTRD, CSS = NVM command set, MPSMIN = 0, MPSMAX.
        return (this.#dstrd | (1 << 5) | (MPS_MAX << 20)) >>> 0;
      case NVME_VS:
        return NVME_VERSION;
      case NVME_INTMS:
      case NVME_INTMC:
        return this.#intms >>> 0;
      case NVME_CC:
        return this.#cc >>> 0;
      case NVME_CSTS:
        return this.#csts >>> 0;
      case NVME_AQA:
        return this.#aqa >>> 0;
      case NVME_ASQ:
        return this.#asq[0];
      case NVME_ASQ + 4:
        return this.#asq[1];
      case NVME_ACQ:
        return this.#acq[0];
      case NVME_ACQ + 4:
        return this.#acq[1];
      default:
        // NSSR (not supported), CMB and boot-partition registers, and doorbells read as zero.
        return 0;
    }
  }

  writeRegister(offset: number, value: number, mask: number): void {
    const bits = (value & mask) >>> 0;
    const merge = (old: number) => ((old & ~mask) | bits) >>> 0;
    if (offset >= NVME_DOORBELLS) {
      if (mask === 0xffff_ffff) this.#doorbell(offset, bits);
      return;
    }
    switch (offset) {
      case NVME_INTMS:
        this.#intms = (this.#intms | bits) >>> 0;
        return;
      case NVME_INTMC: {
        const unmasked = this.#intms & bits;
        this.#intms = (this.#intms & ~bits) >>> 0;
        const due = this.#pendingVectors & unmasked;
        this.#pendingVectors = (this.#pendingVectors & ~due) >>> 0;
        for (let v = 0; v < 32; v++) if (due & (1 << v)) this.#raise(v);
        return;
      }
      case NVME_CC:
        this.#writeCc(merge(this.#cc) & CC_WRITABLE);
        return;
      case NVME_AQA:
        this.#aqa = merge(this.#aqa) & 0x0fff_0fff;
        return;
      case NVME_ASQ:
        this.#asq[0] = (merge(this.#asq[0]) & ~0xfff) >>> 0;
        return;
      case NVME_ASQ + 4:
        this.#asq[1] = merge(this.#asq[1]);
        return;
      case NVME_ACQ:
        this.#acq[0] = (merge(this.#acq[0]) & ~0xfff) >>> 0;
        return;
      case NVME_ACQ + 4:
        this.#acq[1] = merge(this.#acq[1]);
        return;
      default:
        return;
    }
  }

  get #pageSize(): number {
    return 1 << (PAGE_MIN_LOG2 + ((this.#cc >>> CC_MPS_SHIFT) & 0xf));
  }

  #writeCc(cc: number): void {
    const old = this.#cc;
    this.#cc = cc;
    if ((old & CC_EN) && !(cc & CC_EN)) {
      this.#reset();
      return;
    }
    if (!(old & CC_EN) && (cc & CC_EN)) this.#enable();
    const shn = (cc >>> CC_SHN_SHIFT) & 3;
    const oldShn = (old >>> CC_SHN_SHIFT) & 3;
    if (shn !== 0 && oldShn === 0 && (cc & CC_EN)) this.#shutdown();
  }

  #enable(): void {
    const cc = this.#cc;
    const asqs = (this.#aqa & 0xfff) + 1;
    const acqs = ((this.#aqa >>> 16) & 0xfff) + 1;
    const mps = (cc >>> CC_MPS_SHIFT) & 0xf;
    let problem: string | null = null;
    if (this.#csts & CSTS_CFS) problem = "the controller is in fatal status; reset it first";
    else if (((cc >>> CC_CSS_SHIFT) & 7) !== 0) problem = "CC.CSS selects a command set other than NVM";
    else if (mps > MPS_MAX) problem = `CC.MPS ${mps} is above MPSMAX ${MPS_MAX}`;
    else if (((cc >>> CC_AMS_SHIFT) & 7) !== 0) {
      problem = "CC.AMS selects an arbitration other than round robin";
    } else if (((cc >>> CC_IOSQES_SHIFT) & 0xf) !== SQ_ENTRY_LOG2) {
      problem = "CC.IOSQES is not 6 (64-byte entries)";
    } else if (((cc >>> CC_IOCQES_SHIFT) & 0xf) !== CQ_ENTRY_LOG2) {
      problem = "CC.IOCQES is not 4 (16-byte entries)";
    } else if (asqs < 2 || acqs < 2) problem = "AQA gives an admin queue of fewer than 2 entries";
    else if (asqs > this.#mqes + 1 || acqs > this.#mqes + 1) {
      problem = "AQA gives an admin queue above CAP.MQES";
    }
    const asq = u64(this.#asq[0], this.#asq[1]);
    const acq = u64(this.#acq[0], this.#acq[1]);
    if (!problem && (asq % this.#pageSize !== 0 || acq % this.#pageSize !== 0)) {
      problem = "ASQ or ACQ is not aligned to the memory page size";
    }
    if (problem) {
      // As real controllers do, an unusable configuration leaves CSTS.RDY clear.
      this.#stats.lastEnableError = problem;
      return;
    }
    this.#stats.lastEnableError = null;
    this.#cqs.set(0, {
      id: 0,
      base: acq,
      size: acqs,
      tail: 0,
      head: 0,
      phase: 1,
      vector: 0,
      interruptsEnabled: true,
      sqs: new Set([0]),
      backlog: [],
    });
    this.#sqs.set(0, { id: 0, base: asq, size: asqs, head: 0, tail: 0, cqid: 0, inflight: new Map() });
    this.#csts = (this.#csts & ~(3 << CSTS_SHST_SHIFT)) | CSTS_RDY;
  }

  #reset(): void {
    this.#stats.controllerResets++;
    this.#generation++;
    this.#sqs = new Map();
    this.#cqs = new Map();
    this.#csts = 0;
    this.#intms = 0;
    this.#pendingVectors = 0;
    this.#asyncRequests = [];
    this.#queuedEvents = [];
    this.#maskedEventLogs.clear();
    this.#resetFeatures();
  }

  #resetFeatures(): void {
    this.#allocatedSqs = this.#maxIoQueues;
    this.#allocatedCqs = this.#maxIoQueues;
    this.#volatileWriteCache = true;
    this.#asyncEventConfig = 0;
    this.#coalescing = 0;
    this.#vectorStates.forEach((v, vector) => {
      v.aggregated = 0;
      v.round++;
      // The admin completion queue's vector is never coalesced.
      v.coalescingDisabled = vector === 0;
    });
  }

  #shutdown(): void {
    this.#csts = (this.#csts & ~(3 << CSTS_SHST_SHIFT)) | (SHST_OCCURRING << CSTS_SHST_SHIFT);
    const generation = this.#generation;
    const disks = [...this.#namespaces.values()].filter((d) => !d.removed);
    this.#track(Promise.allSettled(disks.map((d) => d.flush())), () => {
      if (this.#generation !== generation) return;
      this.#csts = (this.#csts & ~(3 << CSTS_SHST_SHIFT)) | (SHST_COMPLETE << CSTS_SHST_SHIFT);
    });
  }

  // ---- doorbells ----

  #doorbell(offset: number, value: number): void {
    if (!(this.#csts & CSTS_RDY) || (this.#csts & CSTS_CFS)) return;
    const stride = 4 << this.#dstrd;
    const relative = offset - NVME_DOORBELLS;
    if (relative % stride !== 0) return;
    const index = relative / stride;
    const qid = index >> 1;
    if (index & 1) {
      const cq = this.#cqs.get(qid);
      if (!cq) {
        return this.#asyncEvent(ASYNC_EVENT_TYPE_ERROR, ASYNC_ERROR_INVALID_DOORBELL, LOG_ERROR_INFORMATION);
      }
      if (value >= cq.size) {
        return this.#asyncEvent(
          ASYNC_EVENT_TYPE_ERROR,
          ASYNC_ERROR_INVALID_DOORBELL_VALUE,
          LOG_ERROR_INFORMATION,
        );
      }
      cq.head = value;
      while (cq.backlog.length > 0 && !this.#cqFull(cq)) this.#writeCqe(cq, cq.backlog.shift()!);
      // Entries the host has not consumed yet keep its interrupt asserted.
      if (cq.tail !== cq.head) this.#interrupt(cq);
      else if (this.#caughtUp(cq.vector)) {
        // The host has consumed everything on the vector: what coalescing held back needs no
        // interrupt of its own, and aggregation starts over (as the specification allows).
        const v = this.#vectorStates[cq.vector];
        v.aggregated = 0;
        v.round++;
      }
      return;
    }
    const sq = this.#sqs.get(qid);
    if (!sq) {
      return this.#asyncEvent(ASYNC_EVENT_TYPE_ERROR, ASYNC_ERROR_INVALID_DOORBELL, LOG_ERROR_INFORMATION);
    }
    if (value >= sq.size) {
      return this.#asyncEvent(
        ASYNC_EVENT_TYPE_ERROR,
        ASYNC_ERROR_INVALID_DOORBELL_VALUE,
        LOG_ERROR_INFORMATION,
      );
    }
    sq.tail = value;
    this.#drain(sq);
  }

  /**
   * Fetches every entry between head and tail and starts it. The entries up to the end of the
   * ring come in one read, as a controller fetches a burst of them.
   */
  #drain(sq: SubmissionQueue): void {
    const generation = this.#generation;
    while (sq.head !== sq.tail && this.#sqs.get(sq.id) === sq && this.#generation === generation) {
      const burst = (sq.tail > sq.head ? sq.tail : sq.size) - sq.head;
      let raw: Uint8Array;
      try {
        raw = this.#memory.read(sq.base + sq.head * SQE_BYTES, burst * SQE_BYTES);
      } catch {
        // A submission queue the controller cannot read is a fatal condition.
        this.injectFatal();
        return;
      }
      const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let i = 0; i < burst; i++) {
        // A command of the burst may have deleted the queue or reset the controller.
        if (this.#sqs.get(sq.id) !== sq || this.#generation !== generation) return;
        sq.head = (sq.head + 1) % sq.size;
        const command = this.#parse(v, i * SQE_BYTES);
        const inflight: Inflight = { sq, cid: command.cid, nsid: command.nsid, generation, done: false };
        sq.inflight.set(command.cid, inflight);
        this.#start(inflight, command);
      }
    }
  }

  #parse(v: DataView, at: number): Command {
    const dw0 = v.getUint32(at, true);
    return {
      opcode: dw0 & 0xff,
      fuse: (dw0 >>> 8) & 3,
      psdt: (dw0 >>> 14) & 3,
      cid: dw0 >>> 16,
      nsid: v.getUint32(at + 4, true),
      prp1: u64(v.getUint32(at + 24, true), v.getUint32(at + 28, true)),
      prp2: u64(v.getUint32(at + 32, true), v.getUint32(at + 36, true)),
      cdw10: v.getUint32(at + 40, true),
      cdw11: v.getUint32(at + 44, true),
      cdw12: v.getUint32(at + 48, true),
      cdw13: v.getUint32(at + 52, true),
    };
  }

  #start(inflight: Inflight, command: Command): void {
    const admin = inflight.sq.id === 0;
    if (admin) this.#stats.adminCommands++;
    else this.#stats.ioCommands++;
    let result: Result | Promise<Result> | null;
    try {
      if (command.fuse !== 0 || command.psdt !== 0) {
        result = { status: SC_INVALID_FIELD };
      } else {
        result = admin ? this.#admin(inflight, command) : this.#io(command);
      }
    } catch (err) {
      result = this.#failure(err);
    }
    // null: the command stays outstanding (an Asynchronous Event Request).
    if (result === null) return;
    if (result instanceof Promise) {
      this.#track(
        result,
        (r) => this.#finish(inflight, r),
        (err) => this.#finish(inflight, this.#failure(err)),
      );
    } else {
      this.#finish(inflight, result);
    }
  }

  /** Counts `work` as under way until it settles, then hands on its outcome. */
  #track<T>(work: Promise<T>, done: (value: T) => void, failed: (err: unknown) => void = () => {}): void {
    this.#busy++;
    work.then((value) => {
      this.#ended();
      done(value);
    }, (err) => {
      this.#ended();
      failed(err);
    });
  }

  #ended(): void {
    this.#busy--;
    if (this.#idleWaiters.length === 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }

  #failure(err: unknown): Result {
    if (err instanceof NvmeStatus) return { status: err.status };
    if (err instanceof DiskMediaError) {
      this.#smart.mediaErrors++;
      return { status: err.operation === "read" ? SC_UNRECOVERED_READ_ERROR : SC_WRITE_FAULT, lba: err.lba };
    }
    if (err instanceof AstraError && err.errno === Errno.EFAULT) return { status: SC_DATA_TRANSFER_ERROR };
    if (err instanceof AstraError && err.errno === Errno.ENODEV) return { status: SC_NAMESPACE_NOT_READY };
    return { status: SC_INTERNAL_ERROR };
  }

  /** Completes a command once: late results of aborted or reset commands are dropped. */
  #finish(inflight: Inflight, result: Result): void {
    if (inflight.done || inflight.generation !== this.#generation) return;
    inflight.done = true;
    const sq = inflight.sq;
    if (sq.inflight.get(inflight.cid) === inflight) sq.inflight.delete(inflight.cid);
    if (this.#sqs.get(sq.id) !== sq) return;
    if (result.status !== SC_SUCCESS) {
      this.#stats.commandErrors++;
      if (result.status !== SC_ABORT_REQUESTED && result.status !== SC_ABORTED_SQ_DELETION) {
        this.#logError(sq.id, inflight.cid, result.status, inflight.nsid, result.lba ?? 0);
      }
    }
    this.#post(sq, { dw0: result.dw0 ?? 0, sqid: sq.id, cid: inflight.cid, status: result.status });
  }

  // ---- completions and interrupts ----

  #cqFull(cq: CompletionQueue): boolean {
    return (cq.tail + 1) % cq.size === cq.head;
  }

  #post(sq: SubmissionQueue, entry: CompletionEntry): void {
    const cq = this.#cqs.get(sq.cqid);
    if (!cq) return;
    // The SQ head is read when the entry is written, so it is current even for a backlogged one.
    if (cq.backlog.length > 0 || this.#cqFull(cq)) cq.backlog.push(entry);
    else this.#writeCqe(cq, entry);
  }

  #writeCqe(cq: CompletionQueue, entry: CompletionEntry): void {
    const sq = this.#sqs.get(entry.sqid);
    // Built in one scratch entry: memory.write copies it before returning.
    const v = this.#cqeView;
    const dnr = RETRYABLE.has(entry.status) ? 0 : 1;
    v.setUint32(0, entry.dw0 >>> 0, true);
    v.setUint32(8, ((sq?.head ?? 0) | (entry.sqid << 16)) >>> 0, true);
    v.setUint32(
      12,
      (entry.cid | (cq.phase << 16) | ((entry.status & 0x7ff) << 17) | (dnr << 31)) >>> 0,
      true,
    );
    try {
      this.#memory.write(cq.base + cq.tail * CQE_BYTES, this.#cqe);
    } catch {
      // A completion that cannot be posted is the very definition of a fatal controller error.
      this.injectFatal();
      return;
    }
    this.#stats.completionsPosted++;
    cq.tail++;
    if (cq.tail === cq.size) {
      cq.tail = 0;
      cq.phase ^= 1;
    }
    this.#posted(cq, entry.status);
  }

  /**
   * An entry went into `cq`. Its vector signals once for every entry posted in this pass over
   * finished commands (as QEMU's controller does), not once per entry: a burst of completions is
   * one message, not a storm of them. With interrupt coalescing on, entries are held back until
   * the aggregation threshold is reached or the aggregation time runs out, except those of
   * failed commands (the specification recommends not delaying them).
   */
  #posted(cq: CompletionQueue, status: number): void {
    if (!cq.interruptsEnabled) return;
    const v = this.#vectorStates[cq.vector];
    const threshold = (this.#coalescing & 0xff) + 1;
    const time = this.#coalescing >>> 8;
    // Either field at 0 turns coalescing off.
    if (status === SC_SUCCESS && threshold > 1 && time > 0 && !v.coalescingDisabled) {
      v.aggregated++;
      if (v.aggregated < threshold) {
        if (v.aggregated === 1) this.#aggregate(cq.vector, time * 0.1);
        return;
      }
    }
    if (v.signalDue) return;
    v.signalDue = true;
    const generation = this.#generation;
    queueMicrotask(() => {
      v.signalDue = false;
      // A reset in between took the entries with it.
      if (this.#generation === generation) this.#signal(cq.vector);
    });
  }

  /** Signals the vector once its held-back entries have waited `ms`, unless it signals before. */
  #aggregate(vector: number, ms: number): void {
    const v = this.#vectorStates[vector];
    v.deadline = performance.now() + ms;
    const round = v.round;
    const check = () => {
      if (v.round !== round) return;
      const left = v.deadline - performance.now();
      if (left <= 0) this.#signal(vector);
      // A timer fires a millisecond or more late: the last stretch is waited out turn by turn.
      else if (left > 3) setTimeout(check, left - 3);
      else setImmediate(check);
    };
    check();
  }

  /** Whether every completion queue on `vector` has had all its entries consumed. */
  #caughtUp(vector: number): boolean {
    for (const cq of this.#cqs.values()) if (cq.vector === vector && cq.tail !== cq.head) return false;
    return true;
  }

  #interrupt(cq: CompletionQueue): void {
    if (cq.interruptsEnabled) this.#signal(cq.vector);
  }

  /** The vector's interrupt, now: whatever it held back goes with it. */
  #signal(vector: number): void {
    const v = this.#vectorStates[vector];
    v.aggregated = 0;
    v.round++;
    if (vector < 32 && (this.#intms & (1 << vector))) {
      this.#pendingVectors = (this.#pendingVectors | (1 << vector)) >>> 0;
      return;
    }
    this.#raise(vector);
  }

  #raise(vector: number): void {
    this.#stats.interruptsRaised++;
    this.#interrupts.raise(this.#vectors[vector]);
  }

  // ---- admin commands ----

  #admin(inflight: Inflight, c: Command): Result | null {
    switch (c.opcode) {
      case ADMIN_IDENTIFY:
        return this.#identify(c);
      case ADMIN_GET_LOG_PAGE:
        return this.#getLogPage(c);
      case ADMIN_CREATE_IO_CQ:
        return this.#createCq(c);
      case ADMIN_CREATE_IO_SQ:
        return this.#createSq(c);
      case ADMIN_DELETE_IO_SQ:
        return this.#deleteSq(c);
      case ADMIN_DELETE_IO_CQ:
        return this.#deleteCq(c);
      case ADMIN_ABORT:
        return this.#abort(c);
      case ADMIN_SET_FEATURES:
        return this.#setFeatures(c);
      case ADMIN_GET_FEATURES:
        return this.#getFeatures(c);
      case ADMIN_ASYNC_EVENT_REQUEST:
        if (this.#asyncRequests.length >= ASYNC_EVENT_LIMIT) return { status: SC_ASYNC_EVENT_LIMIT_EXCEEDED };
        this.#asyncRequests.push(inflight);
        this.#deliverEvents();
        return null;
      default:
        return { status: SC_INVALID_OPCODE };
    }
  }

  #identify(c: Command): Result {
    const cns = c.cdw10 & 0xff;
    const out = new Uint8Array(IDENTIFY_BYTES);
    const v = new DataView(out.buffer);
    switch (cns) {
      case CNS_NAMESPACE: {
        if (c.nsid === 0 || c.nsid > this.#maxNamespaces) return { status: SC_INVALID_NAMESPACE };
        const disk = this.#namespaces.get(c.nsid);
        // An inactive namespace ID identifies as all zeroes.
        if (disk) {
          putU64(v, 0, disk.lbaCount);
          putU64(v, 8, disk.lbaCount);
          putU64(v, 16, disk.lbaCount);
          out[25] = 1; // two LBA formats
          out[26] = disk.lbaSize === 512 ? 0 : 1;
          out.set(this.#eui64(c.nsid), 120);
          v.setUint32(128, 9 << 16, true);
          v.setUint32(132, 12 << 16, true);
        }
        break;
      }
      case CNS_CONTROLLER:
        this.#identifyController(out, v);
        break;
      case CNS_ACTIVE_NAMESPACES: {
        if (c.nsid >= 0xffff_fffe) return { status: SC_INVALID_NAMESPACE };
        const ids = this.namespaceIds().filter((id) => id > c.nsid).slice(0, IDENTIFY_BYTES / 4);
        ids.forEach((id, i) => v.setUint32(i * 4, id, true));
        break;
      }
      case CNS_NAMESPACE_DESCRIPTORS: {
        if (!this.#namespaces.has(c.nsid)) return { status: SC_INVALID_NAMESPACE };
        out[0] = 1; // NIDT: IEEE EUI-64
        out[1] = 8;
        out.set(this.#eui64(c.nsid), 4);
        break;
      }
      default:
        return { status: SC_INVALID_FIELD };
    }
    this.#toHost(c, out);
    return { status: SC_SUCCESS };
  }

  #identifyController(out: Uint8Array, v: DataView): void {
    putAscii(out, 4, 20, this.#identity.serial);
    putAscii(out, 24, 40, this.#identity.model);
    putAscii(out, 64, 8, this.#identity.firmware);
    out[72] = 6; // recommended arbitration burst
    out[77] = this.#mdts;
    v.setUint16(78, 1, true); // controller ID
    v.setUint32(80, NVME_VERSION, true);
    v.setUint32(92, 1 << 8, true); // OAES: namespace attribute notices
    out[258] = ABORT_LIMIT - 1;
    out[259] = ASYNC_EVENT_LIMIT - 1;
    out[260] = 0x03; // one firmware slot, read-only
    out[261] = 0x04; // Get Log Page takes NUMDU and an offset
    out[262] = ERROR_LOG_ENTRIES - 1;
    v.setUint16(266, 343, true); // warning temperature, K
    v.setUint16(268, 373, true); // critical temperature, K
    out[512] = (SQ_ENTRY_LOG2 << 4) | SQ_ENTRY_LOG2;
    out[513] = (CQ_ENTRY_LOG2 << 4) | CQ_ENTRY_LOG2;
    v.setUint32(516, this.#maxNamespaces, true);
    out[525] = 0x07; // volatile write cache present; flush to every namespace supported
    // SUBNQN: NUL-terminated, NUL-padded.
    const nqn = `nqn.2024-01.org.astralisp:nvme:${this.#identity.serial}`.slice(0, 255);
    for (let i = 0; i < nqn.length; i++) out[768 + i] = nqn.charCodeAt(i) & 0x7f;
    v.setUint16(2048, 2500, true); // power state 0: 25 W
  }

  #eui64(nsid: number): Uint8Array {
    const eui = new Uint8Array(8);
    eui.set([0x41, 0x53, 0x54, 0x52]); // "ASTR"
    new DataView(eui.buffer).setUint32(4, nsid, false);
    return eui;
  }

  #getLogPage(c: Command): Result {
    const lid = c.cdw10 & 0xff;
    const retainEvent = (c.cdw10 & (1 << 15)) !== 0;
    const dwords = ((c.cdw11 & 0xffff) * 0x1_0000 + (c.cdw10 >>> 16)) + 1;
    const offset = u64(c.cdw12, c.cdw13);
    if (offset % 4 !== 0) return { status: SC_INVALID_FIELD };
    let page: Uint8Array;
    switch (lid) {
      case LOG_ERROR_INFORMATION:
        page = new Uint8Array(ERROR_LOG_ENTRIES * 64);
        this.#errorLog.forEach((entry, i) => page.set(entry, i * 64));
        break;
      case LOG_SMART_HEALTH:
        page = this.#smartLog();
        break;
      case LOG_FIRMWARE_SLOT:
        page = new Uint8Array(512);
        page[0] = 1; // slot 1 active
        putAscii(page, 8, 8, this.#identity.firmware);
        break;
      case LOG_CHANGED_NAMESPACES: {
        page = new Uint8Array(4096);
        const v = new DataView(page.buffer);
        const ids = [...this.#changedNamespaces].sort((a, b) => a - b);
        if (ids.length > 1024) v.setUint32(0, 0xffff_ffff, true);
        else ids.forEach((id, i) => v.setUint32(i * 4, id, true));
        if (!retainEvent) this.#changedNamespaces.clear();
        break;
      }
      default:
        return { status: SC_INVALID_LOG_PAGE };
    }
    const out = new Uint8Array(dwords * 4);
    if (offset < page.length) out.set(page.subarray(offset, Math.min(page.length, offset + out.length)));
    this.#toHost(c, out);
    if (!retainEvent && this.#maskedEventLogs.delete(lid)) this.#deliverEvents();
    return { status: SC_SUCCESS };
  }

  #smartLog(): Uint8Array {
    const page = new Uint8Array(512);
    const v = new DataView(page.buffer);
    v.setUint16(1, 313, true); // composite temperature, K
    page[3] = 100; // available spare, %
    page[4] = 10; // spare threshold, %
    // Data units are thousands of 512-byte units, rounded up.
    putU64(v, 32, Math.ceil(this.#smart.bytesRead / 512_000));
    putU64(v, 48, Math.ceil(this.#smart.bytesWritten / 512_000));
    putU64(v, 64, this.#smart.hostReads);
    putU64(v, 80, this.#smart.hostWrites);
    putU64(v, 112, 1);
    putU64(v, 128, Math.floor((performance.now() - this.#startedAt) / 3_600_000));
    putU64(v, 160, this.#smart.mediaErrors);
    putU64(v, 176, this.#errorCount);
    return page;
  }

  #logError(sqid: number, cid: number, status: number, nsid: number, lba: number): void {
    this.#errorCount++;
    const entry = new Uint8Array(64);
    const v = new DataView(entry.buffer);
    putU64(v, 0, this.#errorCount);
    v.setUint16(8, sqid, true);
    v.setUint16(10, cid, true);
    v.setUint16(12, (status & 0x7ff) << 1, true);
    v.setUint16(14, 0xffff, true); // no parameter location
    putU64(v, 16, lba);
    v.setUint32(24, nsid, true);
    this.#errorLog.unshift(entry);
    if (this.#errorLog.length > ERROR_LOG_ENTRIES) this.#errorLog.pop();
  }

  #createCq(c: Command): Result {
    const qid = c.cdw10 & 0xffff;
    const size = (c.cdw10 >>> 16) + 1;
    const contiguous = (c.cdw11 & 1) !== 0;
    const interruptsEnabled = (c.cdw11 & 2) !== 0;
    const vector = c.cdw11 >>> 16;
    if (qid === 0 || qid > this.#allocatedCqs || this.#cqs.has(qid)) return { status: SC_INVALID_QUEUE_ID };
    if (size < 2 || size > this.#mqes + 1) return { status: SC_INVALID_QUEUE_SIZE };
    if (!contiguous) return { status: SC_INVALID_FIELD };
    if (vector >= this.#vectors.length) return { status: SC_INVALID_INTERRUPT_VECTOR };
    if (c.prp1 % this.#pageSize !== 0) return { status: SC_INVALID_PRP_OFFSET };
    this.#cqs.set(qid, {
      id: qid,
      base: c.prp1,
      size,
      tail: 0,
      head: 0,
      phase: 1,
      vector,
      interruptsEnabled,
      sqs: new Set(),
      backlog: [],
    });
    return { status: SC_SUCCESS };
  }

  #createSq(c: Command): Result {
    const qid = c.cdw10 & 0xffff;
    const size = (c.cdw10 >>> 16) + 1;
    const contiguous = (c.cdw11 & 1) !== 0;
    const cqid = c.cdw11 >>> 16;
    if (qid === 0 || qid > this.#allocatedSqs || this.#sqs.has(qid)) return { status: SC_INVALID_QUEUE_ID };
    if (size < 2 || size > this.#mqes + 1) return { status: SC_INVALID_QUEUE_SIZE };
    if (!contiguous) return { status: SC_INVALID_FIELD };
    const cq = this.#cqs.get(cqid);
    if (cqid === 0 || !cq) return { status: SC_COMPLETION_QUEUE_INVALID };
    if (c.prp1 % this.#pageSize !== 0) return { status: SC_INVALID_PRP_OFFSET };
    this.#sqs.set(qid, { id: qid, base: c.prp1, size, head: 0, tail: 0, cqid, inflight: new Map() });
    cq.sqs.add(qid);
    return { status: SC_SUCCESS };
  }

  #deleteSq(c: Command): Result {
    const qid = c.cdw10 & 0xffff;
    const sq = this.#sqs.get(qid);
    if (qid === 0 || !sq) return { status: SC_INVALID_QUEUE_ID };
    // Commands still outstanding complete as aborted before the queue goes.
    for (const inflight of [...sq.inflight.values()]) {
      this.#finish(inflight, { status: SC_ABORTED_SQ_DELETION });
    }
    this.#sqs.delete(qid);
    this.#cqs.get(sq.cqid)?.sqs.delete(qid);
    return { status: SC_SUCCESS };
  }

  #deleteCq(c: Command): Result {
    const qid = c.cdw10 & 0xffff;
    const cq = this.#cqs.get(qid);
    if (qid === 0 || !cq) return { status: SC_INVALID_QUEUE_ID };
    if (cq.sqs.size > 0) return { status: SC_INVALID_QUEUE_DELETION };
    this.#cqs.delete(qid);
    return { status: SC_SUCCESS };
  }

  #abort(c: Command): Result {
    const sqid = c.cdw10 & 0xffff;
    const cid = c.cdw10 >>> 16;
    const target = this.#sqs.get(sqid)?.inflight.get(cid);
    if (!target || target.done) return { status: SC_SUCCESS, dw0: 1 };
    this.#asyncRequests = this.#asyncRequests.filter((r) => r !== target);
    this.#finish(target, { status: SC_ABORT_REQUESTED });
    return { status: SC_SUCCESS, dw0: 0 };
  }

  #setFeatures(c: Command): Result {
    const fid = c.cdw10 & 0xff;
    if (c.cdw10 & 0x8000_0000) return { status: SC_FEATURE_NOT_SAVEABLE };
    switch (fid) {
      case FEATURE_NUMBER_OF_QUEUES: {
        const nsqr = c.cdw11 & 0xffff;
        const ncqr = c.cdw11 >>> 16;
        if (nsqr === 0xffff || ncqr === 0xffff) return { status: SC_INVALID_FIELD };
        if (this.#sqs.size > 1 || this.#cqs.size > 1) return { status: SC_COMMAND_SEQUENCE_ERROR };
        this.#allocatedSqs = Math.min(nsqr + 1, this.#maxIoQueues);
        this.#allocatedCqs = Math.min(ncqr + 1, this.#maxIoQueues);
        return { status: SC_SUCCESS, dw0: this.#queuesValue() };
      }
      case FEATURE_VOLATILE_WRITE_CACHE:
        this.#volatileWriteCache = (c.cdw11 & 1) !== 0;
        return { status: SC_SUCCESS };
      case FEATURE_ASYNC_EVENT_CONFIG:
        this.#asyncEventConfig = c.cdw11 & 0x3ff;
        return { status: SC_SUCCESS };
      case FEATURE_INTERRUPT_COALESCING:
        this.#coalescing = c.cdw11 & 0xffff;
        return { status: SC_SUCCESS };
      case FEATURE_INTERRUPT_VECTOR_CONFIG: {
        const vector = c.cdw11 & 0xffff;
        const disable = (c.cdw11 & IVC_COALESCING_DISABLE) !== 0;
        // The admin completion queue's vector cannot be coalesced.
        if (vector >= this.#vectors.length || (vector === 0 && !disable)) return { status: SC_INVALID_FIELD };
        this.#vectorStates[vector].coalescingDisabled = disable;
        return { status: SC_SUCCESS };
      }
      default:
        return { status: SC_INVALID_FIELD };
    }
  }

  #getFeatures(c: Command): Result {
    const fid = c.cdw10 & 0xff;
    const select = (c.cdw10 >>> 8) & 7;
    if (select === 3) {
      // Supported capabilities: every feature here is changeable, none saveable or per-namespace.
      const known = fid === FEATURE_NUMBER_OF_QUEUES || fid === FEATURE_VOLATILE_WRITE_CACHE ||
        fid === FEATURE_ASYNC_EVENT_CONFIG || fid === FEATURE_INTERRUPT_COALESCING ||
        fid === FEATURE_INTERRUPT_VECTOR_CONFIG;
      return known ? { status: SC_SUCCESS, dw0: 1 << 2 } : { status: SC_INVALID_FIELD };
    }
    if (select > 3) return { status: SC_INVALID_FIELD };
    const current = select === 0;
    switch (fid) {
      case FEATURE_NUMBER_OF_QUEUES:
        return {
          status: SC_SUCCESS,
          dw0: current ? this.#queuesValue() : ((this.#maxIoQueues - 1) * 0x1_0000 + this.#maxIoQueues - 1),
        };
      case FEATURE_VOLATILE_WRITE_CACHE:
        return { status: SC_SUCCESS, dw0: current ? (this.#volatileWriteCache ? 1 : 0) : 1 };
      case FEATURE_ASYNC_EVENT_CONFIG:
        return { status: SC_SUCCESS, dw0: current ? this.#asyncEventConfig : 0 };
      case FEATURE_INTERRUPT_COALESCING:
        return { status: SC_SUCCESS, dw0: current ? this.#coalescing : 0 };
      case FEATURE_INTERRUPT_VECTOR_CONFIG: {
        const vector = c.cdw11 & 0xffff;
        if (vector >= this.#vectors.length) return { status: SC_INVALID_FIELD };
        const disabled = current ? this.#vectorStates[vector].coalescingDisabled : vector === 0;
        return { status: SC_SUCCESS, dw0: (vector | (disabled ? IVC_COALESCING_DISABLE : 0)) >>> 0 };
      }
      default:
        return { status: SC_INVALID_FIELD };
    }
  }

  #queuesValue(): number {
    return ((this.#allocatedCqs - 1) * 0x1_0000 + (this.#allocatedSqs - 1)) >>> 0;
  }

  // ---- asynchronous events ----

  #namespaceChanged(nsid: number): void {
    this.#changedNamespaces.add(nsid);
    if (this.#asyncEventConfig & AEC_NAMESPACE_ATTRIBUTE_NOTICES) {
      this.#asyncEvent(ASYNC_EVENT_TYPE_NOTICE, ASYNC_NOTICE_NAMESPACE_CHANGED, LOG_CHANGED_NAMESPACES);
    }
  }

  #asyncEvent(type: number, info: number, logPage: number): void {
    if (this.#maskedEventLogs.has(logPage) || this.#queuedEvents.some((e) => e.logPage === logPage)) return;
    this.#queuedEvents.push({ type, info, logPage });
    this.#deliverEvents();
  }

  #deliverEvents(): void {
    while (this.#queuedEvents.length > 0 && this.#asyncRequests.length > 0) {
      const event = this.#queuedEvents.shift()!;
      const request = this.#asyncRequests.shift()!;
      // The event stays masked until the host reads its log page.
      this.#maskedEventLogs.add(event.logPage);
      this.#finish(request, {
        status: SC_SUCCESS,
        dw0: event.type | (event.info << 8) | (event.logPage << 16),
      });
    }
  }

  // ---- I/O commands ----

  #io(c: Command): Result | Promise<Result> {
    if (c.opcode === NVM_FLUSH) {
      if (c.nsid === 0xffff_ffff) {
        const disks = [...this.#namespaces.values()];
        return Promise.all(disks.map((d) => d.flush())).then(() => ({ status: SC_SUCCESS }));
      }
      const disk = this.#namespaces.get(c.nsid);
      if (!disk) return { status: SC_INVALID_NAMESPACE };
      return disk.flush().then(() => ({ status: SC_SUCCESS }));
    }
    if (c.opcode !== NVM_READ && c.opcode !== NVM_WRITE) return { status: SC_INVALID_OPCODE };
    const disk = this.#namespaces.get(c.nsid);
    if (!disk) return { status: SC_INVALID_NAMESPACE };
    const slba = u64(c.cdw10, c.cdw11);
    const blocks = (c.cdw12 & 0xffff) + 1;
    const fua = (c.cdw12 & (1 << 30)) !== 0;
    const bytes = blocks * disk.lbaSize;
    if (bytes > (1 << this.#mdts) * (1 << PAGE_MIN_LOG2)) return { status: SC_INVALID_FIELD };
    if (slba + blocks > disk.lbaCount) return { status: SC_LBA_OUT_OF_RANGE };
    const segments = this.#prpSegments(c.prp1, c.prp2, bytes);
    if (c.opcode === NVM_WRITE) {
      const data = this.#gather(segments, bytes);
      this.#smart.hostWrites++;
      this.#smart.bytesWritten += bytes;
      return disk.write(slba, data, { fua: fua || !this.#volatileWriteCache }).then(() => ({
        status: SC_SUCCESS,
      }));
    }
    this.#smart.hostReads++;
    this.#smart.bytesRead += bytes;
    // The blocks go straight into the host's buffers, before the command can complete; a failed
    // or stalled read leaves them alone.
    const targets: Uint8Array[] = [];
    for (const s of segments) targets.push(...this.#memory.dmaViews(s.address, s.length));
    const read = disk.readInto(slba, blocks, targets);
    for (const s of segments) this.#memory.written(s.address, s.length);
    return read.then(() => ({ status: SC_SUCCESS }));
  }

  // ---- data pointers ----

  /** The memory regions PRP1/PRP2 (and PRP lists) describe for a transfer of `bytes`. */
  #prpSegments(prp1: number, prp2: number, bytes: number): { address: number; length: number }[] {
    const page = this.#pageSize;
    const offset = prp1 % page;
    if (offset % 4 !== 0) throw new NvmeStatus(SC_INVALID_PRP_OFFSET);
    const segments = [{ address: prp1, length: Math.min(bytes, page - offset) }];
    let remaining = bytes - segments[0].length;
    if (remaining === 0) return segments;
    if (remaining <= page) {
      if (prp2 % page !== 0) throw new NvmeStatus(SC_INVALID_PRP_OFFSET);
      segments.push({ address: prp2, length: remaining });
      return segments;
    }
    if (prp2 % 8 !== 0) throw new NvmeStatus(SC_INVALID_PRP_OFFSET);
    let list = prp2;
    while (remaining > 0) {
      const needed = Math.ceil(remaining / page);
      const slots = (page - (list % page)) / 8;
      const take = Math.min(needed, slots);
      const raw = this.#memory.read(list, take * 8);
      const v = new DataView(raw.buffer);
      const chained = needed > slots;
      const dataEntries = chained ? take - 1 : take;
      for (let i = 0; i < dataEntries; i++) {
        const address = u64(v.getUint32(i * 8, true), v.getUint32(i * 8 + 4, true));
        if (address % page !== 0) throw new NvmeStatus(SC_INVALID_PRP_OFFSET);
        const length = Math.min(page, remaining);
        segments.push({ address, length });
        remaining -= length;
      }
      if (chained) {
        list = u64(v.getUint32((take - 1) * 8, true), v.getUint32((take - 1) * 8 + 4, true));
        if (list % 8 !== 0) throw new NvmeStatus(SC_INVALID_PRP_OFFSET);
      }
    }
    return segments;
  }

  #gather(segments: { address: number; length: number }[], bytes: number): Uint8Array {
    if (segments.length === 1) return this.#memory.read(segments[0].address, bytes);
    const data = new Uint8Array(bytes);
    let done = 0;
    for (const s of segments) {
      data.set(this.#memory.read(s.address, s.length), done);
      done += s.length;
    }
    return data;
  }

  #scatter(segments: { address: number; length: number }[], data: Uint8Array): void {
    let done = 0;
    for (const s of segments) {
      this.#memory.write(s.address, data.subarray(done, done + s.length));
      done += s.length;
    }
  }

  /** Copies a controller-to-host data structure through PRP1/PRP2. */
  #toHost(c: Command, data: Uint8Array): void {
    this.#scatter(this.#prpSegments(c.prp1, c.prp2, data.length), data);
  }

  #checkNsid(nsid: number): void {
    if (!Number.isInteger(nsid) || nsid < 1 || nsid > this.#maxNamespaces) {
      throw new AstraError(
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
        `NVMe namespace IDs are 1..${this.#maxNamespaces}, not ${nsid}`,
        { argument: "namespaceId" },
      );
    }
  }
}
