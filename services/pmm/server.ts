// The pmm service's RPC surface: the frame allocator over the machine's firmware memory map and
// the kernel heap on frames taken from it (owner "pmm:heap").
//
// Heap memory effects. The heap (heap.ts) is synchronous and reaches guest memory through its
// PhysicalMemory interface; the real memory belongs to the machine, which pmm reaches only by
// asynchronous RPCs. Each heap RPC therefore runs as a journaled call, one at a time (the seed's
// heap spinlock):
//   1. prefetch: the bytes the call will check are read from the machine first. They are known
//      from the allocation being freed or resized (its red zones, or the whole slot or block
//      when krealloc may copy it), so a free costs one ReadPhysical.
//   2. run: the heap runs synchronously against a HeapMemoryJournal. Reads and checks are
//      answered from the prefetched bytes and the call's own earlier writes; writes are recorded.
//      A check of bytes nobody has read (the poison of the free object kmalloc picks, which only
//      the heap can choose) throws MissingBytes. Every check in the heap comes before the change
//      it guards (a failed check must leave the state unchanged), so the aborted run has done
//      only what the complete run does first anyway (its writes are kept), except for counting
//      a failed allocation, which is compensated below. Those bytes are read and the call runs
//      again; it picks the same object and now checks real memory.
//   3. flush: the writes are reduced to their final bytes, clipped to memory the heap still
//      holds (a slab freed by this call may have gone back to the frame allocator, and a frame
//      handed out meanwhile must not receive stale poison), merged into as few WritePhysical and
//      FillPhysical calls as the layout allows, and sent together before the call answers.
// A failed check (red zone, write after free, double free) is the heap's own error naming the
// allocation's owner and site; writes it made first (restored poison) are flushed with it. Writes
// that could not be flushed (the machine failed) are kept and sent before the next heap call, so
// the poison and red zones the heap relies on are never silently lost.
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { MemoryType as MachineMemoryType } from "../../gen/astra/machine/v1/devices_pb.ts";
import {
  type FramePlacement as PlacementMessage,
  FrameState,
  MemoryType,
  PmmService,
} from "../../gen/astra/pmm/v1/pmm_pb.ts";
import { AstraError, Code, Errno, invalidArgument, unavailable } from "../../lib/errors.ts";
import type { Peers, ServiceModule } from "../../lib/module.ts";
import { type Client, client } from "../../lib/rpc.ts";
import { bindService } from "../../lib/server.ts";
import type { BuddyStatistics } from "./buddy.ts";
import {
  FrameAllocator,
  type FrameCounts,
  type FramePlacement,
  type NodeStatistics,
  type OrderFragmentation,
} from "./frames.ts";
import {
  AllocationKind,
  type HeapAllocationInfo,
  type HeapFigures,
  KernelHeap,
  type PhysicalMemory,
} from "./heap.ts";
import { normalizeMemoryMap, PAGE_SIZE } from "./memmap.ts";
import { RED_ZONE_SIZE, type SlabCacheStatistics } from "./slab.ts";

/** Owner tags of pmm's own allocations; clients may not use or release them. */
const RESERVED_OWNER_PREFIX = "pmm:";
/** The machine contract's limit for one ReadPhysical or WritePhysical. */
const MAX_PHYSICAL_TRANSFER = 16 * 1024 * 1024;
/** Fills at least this long get a FillPhysical of their own rather than travelling as bytes. */
const FILL_CALL_MIN = 64 * 1024;
/** Runs of one heap call; each retry has read bytes the previous one lacked. */
const MAX_HEAP_ATTEMPTS = 8;
/** Granularity of reads for bytes a heap run missed. */
const CACHE_LINE = 64;

const hex = (n: number) => `0x${n.toString(16)}`;

function addressOf(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new AstraError(Code.OUT_OF_RANGE, Errno.EFAULT, `${field} 0x${value.toString(16)} is beyond RAM`, {
      argument: field,
    });
  }
  return Number(value);
}

function countOf(value: bigint, field: string): number {
  if (value === 0n) throw invalidArgument(field, `${field} must be at least 1`);
  if (value > 1n << 40n) throw invalidArgument(field, `${field} ${value} is beyond any machine's memory`);
  return Number(value);
}

/** A size, count, alignment or mark: the heap checks its bounds, this only keeps it exact. */
function numberOf(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw invalidArgument(field, `${field} ${value} is out of range`);
  }
  return Number(value);
}

/** A heap address to free or resize: 0 is the null pointer, never an allocation. */
function heapAddressOf(value: bigint): number {
  if (value === 0n) {
    throw invalidArgument("address", "address 0 is the null pointer: nothing is allocated there");
  }
  return addressOf(value, "address");
}

function ownerOf(owner: string): string {
  if (!owner) {
    throw invalidArgument("owner", 'every allocation names its owner (service and tag, e.g. "vmm:pid 42")');
  }
  if (owner.startsWith(RESERVED_OWNER_PREFIX)) {
    throw invalidArgument("owner", `owner tags starting with ${RESERVED_OWNER_PREFIX} belong to pmm itself`);
  }
  return owner;
}

function placementOf(p: PlacementMessage | undefined): FramePlacement {
  if (!p) return {};
  const max = p.maxAddress;
  return {
    preferredNode: p.preferredNode,
    strictNode: p.strictNode,
    // A DMA mask beyond what a number holds exactly is no limit on a machine whose RAM lies below 2^53.
    maxAddress: max === 0n || max > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(max),
  };
}

const counts = (c: FrameCounts) => ({
  total: BigInt(c.total),
  free: BigInt(c.free),
  used: BigInt(c.used),
  reserved: BigInt(c.reserved),
});

const orders = (os: OrderFragmentation[]) =>
  os.map((o) => ({
    order: o.order,
    freeBlocks: BigInt(o.freeBlocks),
    unusableFreeIndex: o.unusableFreeIndex,
    fragmentationIndex: o.fragmentationIndex,
  }));

const figures = (f: HeapFigures) => ({
  heapBytes: BigInt(f.heapBytes),
  allocatedBytes: BigInt(f.allocatedBytes),
  buddyFreeBytes: BigInt(f.buddyFreeBytes),
  largestFreeBlock: BigInt(f.largestFreeBlock),
  slabs: BigInt(f.slabs),
  emptySlabs: BigInt(f.emptySlabs),
  fragmentationIndex: f.fragmentationIndex,
});

const allocation = (a: HeapAllocationInfo) => ({
  address: BigInt(a.address),
  size: BigInt(a.size),
  usableSize: BigInt(a.usableSize),
  owner: a.owner,
  site: a.site,
  timeUnixMillis: BigInt(Math.round(a.time)),
  sequence: BigInt(a.sequence),
  kind: a.kind,
  cache: a.cache,
});

const cacheStatistics = (c: SlabCacheStatistics) => ({
  name: c.name,
  owner: c.owner,
  objectSize: BigInt(c.objectSize),
  alignment: BigInt(c.alignment),
  slotSize: BigInt(c.slotSize),
  objectsPerSlab: BigInt(c.objectsPerSlab),
  slabPages: BigInt(c.slabPages),
  slabsFull: BigInt(c.slabsFull),
  slabsPartial: BigInt(c.slabsPartial),
  slabsEmpty: BigInt(c.slabsEmpty),
  objectsInUse: BigInt(c.objectsInUse),
  objectsFree: BigInt(c.objectsFree),
  allocs: BigInt(c.allocs),
  frees: BigInt(c.frees),
});

const buddyStatistics = (b: BuddyStatistics) => ({
  totalPages: BigInt(b.totalPages),
  freePages: BigInt(b.freePages),
  chunks: BigInt(b.chunks),
  orders: orders(b.orders),
});

// ---------------------------------------------------------------------------------------------
// Heap memory effects (see the top of the file).

/** A range of guest physical memory. */
export interface Span {
  address: number;
  length: number;
}

/** One machine call of a flush: bytes to write, or a byte to fill with. */
type MachineWrite = { address: number; bytes: Uint8Array } | {
  address: number;
  length: number;
  value: number;
};

// Guest memory contents known to the current heap call: bytes read from the machine, or written
// by the heap. A later layer covers an earlier one where they overlap.
interface Layer {
  address: number;
  length: number;
  /** The contents; undefined for a fill of `value`. */
  bytes?: Uint8Array;
  value: number;
  /** Written by the heap (and so to be flushed), rather than read from the machine. */
  written: boolean;
}

/** Thrown by the journal when the heap needs bytes that were not read from the machine. */
export class MissingBytes extends Error {
  constructor(readonly span: Span) {
    super(`heap memory ${hex(span.address)}+${span.length} was not read from the machine for this call`);
    this.name = "MissingBytes";
  }
}

function mismatchIn(bytes: Uint8Array, from: number, length: number, byte: number): number {
  for (let i = 0; i < length; i++) if (bytes[from + i] !== byte) return i;
  return -1;
}

/**
 * The heap's PhysicalMemory during one journaled call: answers from the bytes the call has read
 * and written, records writes, and throws MissingBytes for anything else. Outside a call it
 * refuses every access: the heap touches memory only inside its operations.
 */
export class HeapMemoryJournal implements PhysicalMemory {
  #layers: Layer[] = [];
  #open = false;

  begin(): void {
    this.#layers = [];
    this.#open = true;
  }

  end(): void {
    this.#layers = [];
    this.#open = false;
  }

  /** Bytes just read from the machine at `address`. */
  addMachineBytes(address: number, bytes: Uint8Array): void {
    this.#check();
    if (bytes.length) this.#layers.push({ address, length: bytes.length, bytes, value: 0, written: false });
  }

  read(address: number, length: number): Uint8Array {
    this.#check();
    return this.#resolve(address, length);
  }

  write(address: number, bytes: Uint8Array): void {
    this.#check();
    if (bytes.length) {
      this.#layers.push({ address, length: bytes.length, bytes: bytes.slice(), value: 0, written: true });
    }
  }

  fill(address: number, length: number, byte: number): void {
    this.#check();
    if (length > 0) this.#layers.push({ address, length, value: byte, written: true });
  }

  findMismatch(address: number, length: number, byte: number): number {
    this.#check();
    if (length <= 0) return -1;
    const end = address + length;
    // Most checks fall inside one layer (a red zone just read, a slab just poisoned).
    for (let i = this.#layers.length - 1; i >= 0; i--) {
      const l = this.#layers[i];
      if (l.address >= end || l.address + l.length <= address) continue;
      if (l.address > address || l.address + l.length < end) break;
      if (!l.bytes) return l.value === byte ? -1 : 0;
      return mismatchIn(l.bytes, address - l.address, length, byte);
    }
    return mismatchIn(this.#resolve(address, length), 0, length, byte);
  }

  /**
   * The final contents of every byte the call wrote, as machine calls: pieces of adjacent bytes
   * become one WritePhysical, long uniform fills a FillPhysical. `held` clips each piece to the
   * memory it may still be written to.
   */
  writes(held: (span: Span) => Span[]): MachineWrite[] {
    const pieces: { address: number; length: number; layer: Layer }[] = [];
    let claimed: Span[] = [];
    for (let i = this.#layers.length - 1; i >= 0; i--) {
      const layer = this.#layers[i];
      if (!layer.written) continue;
      const fresh = subtract({ address: layer.address, length: layer.length }, claimed);
      for (const span of fresh) {
        for (const part of held(span)) pieces.push({ ...part, layer });
      }
      claimed = union(claimed, fresh);
    }
    pieces.sort((a, b) => a.address - b.address);
    const calls: MachineWrite[] = [];
    let run: typeof pieces = [];
    let runLength = 0;
    const closeRun = () => {
      if (run.length === 1 && !run[0].layer.bytes) {
        calls.push({ address: run[0].address, length: run[0].length, value: run[0].layer.value });
      } else if (run.length) {
        const bytes = new Uint8Array(runLength);
        for (const p of run) {
          const at = p.address - run[0].address;
          const l = p.layer;
          if (l.bytes) {
            bytes.set(l.bytes.subarray(p.address - l.address, p.address - l.address + p.length), at);
          } else bytes.fill(l.value, at, at + p.length);
        }
        calls.push({ address: run[0].address, bytes });
      }
      run = [];
      runLength = 0;
    };
    for (const piece of pieces) {
      if (!piece.layer.bytes && piece.length >= FILL_CALL_MIN) {
        closeRun();
        calls.push({ address: piece.address, length: piece.length, value: piece.layer.value });
        continue;
      }
      const contiguous = run.length > 0 && run[0].address + runLength === piece.address;
      if (!contiguous || runLength + piece.length > MAX_PHYSICAL_TRANSFER) closeRun();
      run.push(piece);
      runLength += piece.length;
    }
    closeRun();
    return calls;
  }

  #check(): void {
    if (!this.#open) {
      throw new AstraError(Code.INTERNAL, Errno.EIO, "the heap touched guest memory outside a heap call");
    }
  }

  // The bytes of [address, address + length) from the newest layers down, or MissingBytes
  // naming the smallest range that covers what no layer holds.
  #resolve(address: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let gaps: Span[] = [{ address, length }];
    for (let i = this.#layers.length - 1; i >= 0 && gaps.length > 0; i--) {
      const l = this.#layers[i];
      const next: Span[] = [];
      for (const gap of gaps) {
        const start = Math.max(gap.address, l.address);
        const end = Math.min(gap.address + gap.length, l.address + l.length);
        if (start >= end) {
          next.push(gap);
          continue;
        }
        if (l.bytes) out.set(l.bytes.subarray(start - l.address, end - l.address), start - address);
        else out.fill(l.value, start - address, end - address);
        if (gap.address < start) next.push({ address: gap.address, length: start - gap.address });
        if (end < gap.address + gap.length) {
          next.push({ address: end, length: gap.address + gap.length - end });
        }
      }
      gaps = next;
    }
    if (gaps.length > 0) {
      const first = gaps[0].address;
      const last = gaps[gaps.length - 1];
      throw new MissingBytes({ address: first, length: last.address + last.length - first });
    }
    return out;
  }
}

// `span` minus the sorted, disjoint `taken` spans, ascending.
function subtract(span: Span, taken: readonly Span[]): Span[] {
  const out: Span[] = [];
  let at = span.address;
  const end = span.address + span.length;
  for (const t of taken) {
    const tEnd = t.address + t.length;
    if (tEnd <= at) continue;
    if (t.address >= end) break;
    if (t.address > at) out.push({ address: at, length: t.address - at });
    at = Math.max(at, tEnd);
    if (at >= end) break;
  }
  if (at < end) out.push({ address: at, length: end - at });
  return out;
}

// Sorted, disjoint spans covering both inputs (each sorted and disjoint).
function union(a: readonly Span[], b: readonly Span[]): Span[] {
  const all = [...a, ...b].sort((x, y) => x.address - y.address);
  const out: Span[] = [];
  for (const s of all) {
    const last = out[out.length - 1];
    if (last && s.address <= last.address + last.length) {
      last.length = Math.max(last.length, s.address + s.length - last.address);
    } else {
      out.push({ ...s });
    }
  }
  return out;
}

/**
 * Spans to read, merged where they lie less than a page apart (holes and non-RAM ranges are whole
 * frames, so the bytes between two heap spans that close are RAM) and cut at the transfer limit.
 */
export function readPlan(spans: readonly Span[]): Span[] {
  const sorted = spans.filter((s) => s.length > 0).sort((a, b) => a.address - b.address);
  const out: Span[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    const end = s.address + s.length;
    if (
      last && s.address - (last.address + last.length) < PAGE_SIZE &&
      end - last.address <= MAX_PHYSICAL_TRANSFER
    ) {
      last.length = Math.max(last.length, end - last.address);
    } else {
      for (let at = s.address; at < end; at += MAX_PHYSICAL_TRANSFER) {
        out.push({ address: at, length: Math.min(MAX_PHYSICAL_TRANSFER, end - at) });
      }
    }
  }
  return out;
}

/**
 * A missed span widened to whole 64-byte lines and one byte beyond, within the page of its last
 * byte (which is heap RAM): a check of an object's poison body is followed by one of its last
 * byte, and both then come from one read.
 */
function widened(span: Span): Span {
  const end = span.address + span.length;
  const pageEnd = (Math.floor((end - 1) / PAGE_SIZE) + 1) * PAGE_SIZE;
  const start = span.address - (span.address % CACHE_LINE);
  const stop = Math.min(Math.ceil((end + 1) / CACHE_LINE) * CACHE_LINE, pageEnd);
  return { address: start, length: Math.max(stop, end) - start };
}

/** Runs the previous call to completion before the next starts. */
class Serial {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.catch(() => {});
    return result;
  }
}

/** Slot layout of a slab cache, from its statistics (fixed for the cache's life). */
interface SlotGeometry {
  /** Bytes from a slot's start to its object: the left red zone, padded to the alignment. */
  objectOffset: number;
  slotSize: number;
}

/** The kernel heap over the machine's memory: journaled calls, one at a time. */
class MachineHeap {
  readonly heap: KernelHeap;
  readonly #journal = new HeapMemoryJournal();
  readonly #serial = new Serial();
  readonly #machine: Client<typeof MachineService>;
  readonly #geometry = new Map<string, SlotGeometry>();
  // Writes of an earlier call the machine did not take; sent before anything else.
  #unflushed: MachineWrite[] = [];
  // Failed allocations the heap counted for runs aborted by MissingBytes (not real failures).
  #abortedRunFailures = 0;
  // The heap's failed-allocation counter as last read. Only a run that throws can advance it,
  // so it is read after those alone (statistics() walks every cache).
  #failedSeen = 0;

  constructor(frames: FrameAllocator, machine: Client<typeof MachineService>) {
    this.#machine = machine;
    this.heap = new KernelHeap(frames, this.#journal);
  }

  /** The heap's failed allocations, without runs that were only waiting for memory contents. */
  failedAllocs(counted: number): number {
    return counted - this.#abortedRunFailures;
  }

  /**
   * Runs `operation` as one heap call: reads what `prefetch` names, runs, reads what the run
   * missed and runs again, then flushes the writes. Calls run one at a time.
   */
  call<T>(prefetch: () => Span[], operation: (heap: KernelHeap) => T): Promise<T> {
    return this.#serial.run(async () => {
      await this.#flush(this.#unflushed);
      this.#journal.begin();
      try {
        await this.#read(prefetch());
        for (let attempt = 1;; attempt++) {
          let result: T;
          try {
            result = operation(this.heap);
          } catch (err) {
            const failed = this.heap.statistics().failedAllocs;
            if (err instanceof MissingBytes) this.#abortedRunFailures += failed - this.#failedSeen;
            this.#failedSeen = failed;
            if (!(err instanceof MissingBytes)) {
              await this.#flushJournal();
              throw err;
            }
            if (attempt >= MAX_HEAP_ATTEMPTS) {
              await this.#flushJournal();
              throw new AstraError(
                Code.INTERNAL,
                Errno.EIO,
                `heap call still needed unread memory after ${attempt} runs: ${err.message}`,
              );
            }
            await this.#read([widened(err.span)]);
            continue;
          }
          await this.#flushJournal();
          return result;
        }
      } finally {
        this.#journal.end();
      }
    });
  }

  /** Machine bytes a free or resize of the allocation checks (and, with `contents`, copies). */
  spansOf(address: number, contents: boolean): Span[] {
    const info = this.heap.validatePointer(address).allocation;
    if (!info || info.address !== address) return [];
    return this.#allocationSpans(info, contents);
  }

  /** Machine bytes releasing every allocation of `owner` checks. */
  ownerSpans(owner: string): Span[] {
    return this.heap.checkLeaks({ owner }).flatMap((info) => this.#allocationSpans(info, false));
  }

  /** Forgets slot layouts: a destroyed cache's name may come back with another layout. */
  forgetCaches(): void {
    this.#geometry.clear();
  }

  #allocationSpans(info: HeapAllocationInfo, contents: boolean): Span[] {
    if (info.kind === AllocationKind.SLAB) {
      const g = this.#slotGeometry(info.cache);
      return g ? [{ address: info.address - g.objectOffset, length: g.slotSize }] : [];
    }
    const zone = Math.min(info.usableSize - info.size, RED_ZONE_SIZE);
    return contents
      ? [{ address: info.address, length: info.size + zone }]
      : [{ address: info.address + info.size, length: zone }];
  }

  #slotGeometry(cache: string): SlotGeometry | undefined {
    if (!this.#geometry.has(cache)) {
      for (const c of this.heap.statistics().caches) {
        // The heap runs with debugging on: a left red zone, padded to the alignment, leads each slot.
        const objectOffset = Math.ceil(RED_ZONE_SIZE / c.alignment) * c.alignment;
        this.#geometry.set(c.name, { objectOffset, slotSize: c.slotSize });
      }
    }
    return this.#geometry.get(cache);
  }

  async #read(spans: Span[]): Promise<void> {
    const plan = readPlan(spans);
    const replies = await Promise.all(
      plan.map((s) => this.#machine.readPhysical({ address: BigInt(s.address), length: BigInt(s.length) })),
    );
    plan.forEach((s, i) => this.#journal.addMachineBytes(s.address, replies[i].data));
  }

  async #flushJournal(): Promise<void> {
    await this.#flush(this.#journal.writes((span) => this.#heldParts(span)));
  }

  async #flush(writes: MachineWrite[]): Promise<void> {
    this.#unflushed = writes;
    if (writes.length === 0) return;
    await Promise.all(
      writes.map((w) =>
        "bytes" in w
          ? this.#machine.writePhysical({ address: BigInt(w.address), data: w.bytes })
          : this.#machine.fillPhysical({
            address: BigInt(w.address),
            length: BigInt(w.length),
            value: w.value,
          })
      ),
    );
    this.#unflushed = [];
  }

  // The parts of `span` inside chunks the heap holds now.
  #heldParts(span: Span): Span[] {
    const parts: Span[] = [];
    const end = span.address + span.length;
    let at = span.address;
    while (at < end) {
      const block = this.heap.buddy.blockAt(at);
      if (!block) {
        at = (Math.floor(at / PAGE_SIZE) + 1) * PAGE_SIZE;
        continue;
      }
      const stop = Math.min(end, block.address + (PAGE_SIZE << block.order));
      const last = parts[parts.length - 1];
      if (last && last.address + last.length === at) last.length += stop - at;
      else parts.push({ address: at, length: stop - at });
      at = stop;
    }
    return parts;
  }
}

// Consecutive frame addresses as runs, for zeroing them with one call each.
function frameRuns(addresses: readonly number[]): Span[] {
  const sorted = [...addresses].sort((a, b) => a - b);
  const runs: Span[] = [];
  for (const address of sorted) {
    const last = runs[runs.length - 1];
    if (last && last.address + last.length === address) last.length += PAGE_SIZE;
    else runs.push({ address, length: PAGE_SIZE });
  }
  return runs;
}

export function createPmm(peers: Peers): ServiceModule {
  const machine = client(MachineService, peers.machine, "pmm");
  let frames: FrameAllocator | undefined;
  let heap: MachineHeap | undefined;
  const notReady = () => unavailable("pmm is still booting: it has not read the machine's memory map yet");
  const allocator = () => {
    if (!frames) throw notReady();
    return frames;
  };
  const kernelHeap = () => {
    if (!heap) throw notReady();
    return heap;
  };
  const zero = (spans: Span[]) =>
    Promise.all(
      spans.map((s) =>
        machine.fillPhysical({ address: BigInt(s.address), length: BigInt(s.length), value: 0 })
      ),
    );
  // Frames of pmm's own owners (the heap's chunks) are freed only by pmm. An address checkFrame
  // refuses is left to the free, which refuses it with the same status and counts the call.
  const checkFreeable = (f: FrameAllocator, address: number) => {
    let check;
    try {
      check = f.checkFrame(address);
    } catch {
      return;
    }
    if (check.state === FrameState.ALLOCATED && check.owner.startsWith(RESERVED_OWNER_PREFIX)) {
      throw new AstraError(
        Code.PERMISSION_DENIED,
        Errno.EPERM,
        `frame ${hex(address)} belongs to ${check.owner} (run of ${check.runFrames} frames at ` +
          `${hex(check.runAddress)}): pmm frees its own frames`,
        { argument: "address" },
      );
    }
  };

  const bound = bindService("pmm", PmmService, {
    async allocFrame(req) {
      const f = allocator();
      const address = f.allocFrame({
        owner: ownerOf(req.owner),
        site: req.site,
        ...placementOf(req.placement),
      });
      if (req.zero) await zero([{ address, length: PAGE_SIZE }]);
      return { address: BigInt(address), node: f.nodeOf(address) };
    },
    async allocFrames(req) {
      const f = allocator();
      const count = countOf(req.count, "count");
      const address = f.allocFrames({
        owner: ownerOf(req.owner),
        site: req.site,
        count,
        alignment: req.alignment === 0n ? undefined : Number(req.alignment),
        strategy: req.strategy || undefined,
        ...placementOf(req.placement),
      });
      if (req.zero) await zero([{ address, length: count * PAGE_SIZE }]);
      return { address: BigInt(address), count: BigInt(count), node: f.nodeOf(address) };
    },
    async allocFramesBulk(req) {
      const addresses = allocator().allocFramesBulk({
        owner: ownerOf(req.owner),
        site: req.site,
        count: countOf(req.count, "count"),
        ...placementOf(req.placement),
      });
      if (req.zero) await zero(frameRuns(addresses));
      return { addresses: addresses.map(BigInt) };
    },
    freeFrame(req) {
      const f = allocator();
      const address = addressOf(req.address, "address");
      checkFreeable(f, address);
      f.freeFrame(address);
      return {};
    },
    freeFrames(req) {
      const f = allocator();
      const address = addressOf(req.address, "address");
      const count = countOf(req.count, "count");
      checkFreeable(f, address);
      f.freeFrames(address, count);
      return {};
    },
    reserveRegion(req) {
      if (!req.reason) throw invalidArgument("reason", "a reservation says what it is for");
      const r = allocator().reserveRegion(
        addressOf(req.base, "base"),
        addressOf(req.size, "size"),
        req.reason,
      );
      return {
        base: BigInt(r.base),
        size: BigInt(r.size),
        newlyReservedFrames: BigInt(r.newlyReservedFrames),
      };
    },
    checkFrame(req) {
      const c = allocator().checkFrame(addressOf(req.address, "address"));
      return {
        state: c.state,
        regionType: c.regionType,
        regionIndex: c.regionIndex,
        node: c.node,
        runAddress: BigInt(c.runAddress),
        runFrames: BigInt(c.runFrames),
        owner: c.owner,
        site: c.site,
      };
    },
    getStatistics() {
      const s = allocator().statistics();
      return {
        pageSize: BigInt(s.pageSize),
        frames: counts(s.frames),
        nodes: s.nodes.map((n: NodeStatistics) => ({
          node: n.node,
          frames: counts(n.frames),
          largestFreeRun: BigInt(n.largestFreeRun),
          orders: orders(n.orders),
        })),
        regions: s.regions.map((r) => ({
          index: r.index,
          base: r.base,
          length: r.length,
          type: r.type,
          node: r.node,
          frames: counts(r.frames),
          largestFreeRun: BigInt(r.largestFreeRun),
        })),
        orders: orders(s.orders),
        allocCalls: BigInt(s.allocCalls),
        freeCalls: BigInt(s.freeCalls),
        failedAllocs: BigInt(s.failedAllocs),
        framesAllocated: BigInt(s.framesAllocated),
        framesFreed: BigInt(s.framesFreed),
      };
    },
    getFreeCount: () => ({ freeFrames: BigInt(allocator().freeCount) }),
    getTotalCount: () => ({ totalFrames: BigInt(allocator().totalCount) }),
    getMemoryMap() {
      const f = allocator();
      return {
        pageSize: BigInt(PAGE_SIZE),
        regions: f.memoryMap.map((r) => ({ base: r.base, length: r.length, type: r.type, node: r.node })),
        reservations: f.reservations.map((r) => ({
          base: BigInt(r.base),
          size: BigInt(r.size),
          reason: r.reason,
        })),
      };
    },

    async kmalloc(req) {
      const size = numberOf(req.size, "size");
      const owner = ownerOf(req.owner);
      const address = await kernelHeap().call(() => [], (h) => h.kmalloc(size, owner, req.site, req.zero));
      return { address: BigInt(address), size: req.size };
    },
    async kfree(req) {
      const address = heapAddressOf(req.address);
      const h = kernelHeap();
      const size = await h.call(() => h.spansOf(address, false), (k) => k.kfree(address));
      return { size: BigInt(size) };
    },
    async krealloc(req) {
      const size = numberOf(req.size, "size");
      const address = addressOf(req.address, "address");
      const owner = size === 0 ? req.owner : ownerOf(req.owner);
      const h = kernelHeap();
      const r = await h.call(
        () => address === 0 ? [] : h.spansOf(address, true),
        (k) => k.krealloc(address, size, owner, req.site),
      );
      return { address: BigInt(r.address), size: BigInt(r.size), moved: r.moved };
    },
    async kcalloc(req) {
      const count = numberOf(req.count, "count");
      const size = numberOf(req.size, "size");
      const owner = ownerOf(req.owner);
      const address = await kernelHeap().call(() => [], (h) => h.kcalloc(count, size, owner, req.site));
      return { address: BigInt(address), size: BigInt(count * size) };
    },
    async kmallocAligned(req) {
      const size = numberOf(req.size, "size");
      const alignment = numberOf(req.alignment, "alignment");
      const owner = ownerOf(req.owner);
      const address = await kernelHeap().call(
        () => [],
        (h) => h.kmallocAligned(size, alignment, owner, req.site, req.zero),
      );
      return { address: BigInt(address), size: req.size };
    },
    async getHeapStatistics() {
      const h = kernelHeap();
      const s = await h.call(() => [], (k) => k.statistics());
      return {
        figures: figures(s.figures),
        requestedBytes: BigInt(s.requestedBytes),
        liveAllocations: BigInt(s.liveAllocations),
        peakAllocatedBytes: BigInt(s.peakAllocatedBytes),
        allocs: BigInt(s.allocs),
        frees: BigInt(s.frees),
        failedAllocs: BigInt(h.failedAllocs(s.failedAllocs)),
        errorsDetected: BigInt(s.errorsDetected),
        buddy: buddyStatistics(s.buddy),
        caches: s.caches.map(cacheStatistics),
      };
    },
    async checkLeaks(req) {
      const f = allocator();
      const sinceMark = req.sinceMark === undefined ? undefined : numberOf(req.sinceMark, "since_mark");
      const leaks = await kernelHeap().call(
        () => [],
        (h) => h.checkLeaks({ owner: req.owner || undefined, sinceMark }),
      );
      return {
        allocations: leaks.map(allocation),
        totalBytes: BigInt(leaks.reduce((n, a) => n + a.size, 0)),
        frameRuns: req.owner
          ? f.listRuns({ owner: req.owner }).map((r) => ({
            address: BigInt(r.address),
            frames: BigInt(r.frames),
            node: r.node,
            owner: r.owner,
            site: r.site,
          }))
          : [],
      };
    },
    async markHeap() {
      const m = await kernelHeap().call(() => [], (h) => h.mark());
      return { mark: BigInt(m.mark), timeUnixMillis: BigInt(Math.round(m.time)) };
    },
    async validatePointer(req) {
      const address = req.address > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(req.address);
      const p = await kernelHeap().call(() => [], (h) => h.validatePointer(address));
      return {
        state: p.state,
        allocation: p.allocation ? allocation(p.allocation) : undefined,
        offset: BigInt(p.offset),
      };
    },
    async defragment() {
      const d = await kernelHeap().call(() => [], (h) => h.defragment());
      return {
        before: figures(d.before),
        after: figures(d.after),
        slabsReleased: BigInt(d.slabsReleased),
        framesReturned: BigInt(d.framesReturned),
      };
    },
    async createCache(req) {
      const objectSize = numberOf(req.objectSize, "object_size");
      const alignment = numberOf(req.alignment, "alignment");
      const owner = ownerOf(req.owner);
      const cache = await kernelHeap().call(
        () => [],
        (h) => h.createCache(req.name, objectSize, alignment, owner),
      );
      return { cache: cacheStatistics(cache) };
    },
    async destroyCache(req) {
      const h = kernelHeap();
      const pages = await h.call(() => [], (k) => {
        const released = k.destroyCache(req.name);
        h.forgetCaches();
        return released;
      });
      return { pagesReleased: BigInt(pages) };
    },
    async cacheAlloc(req) {
      const owner = ownerOf(req.owner);
      const address = await kernelHeap().call(
        () => [],
        (h) => h.cacheAlloc(req.name, owner, req.site, req.zero),
      );
      return { address: BigInt(address) };
    },
    async cacheFree(req) {
      const address = heapAddressOf(req.address);
      const h = kernelHeap();
      await h.call(() => h.spansOf(address, false), (k) => k.cacheFree(req.name, address));
      return {};
    },
    async releaseOwner(req) {
      const owner = ownerOf(req.owner);
      const f = allocator();
      const h = kernelHeap();
      const { released, runs } = await h.call(() => h.ownerSpans(owner), (k) => {
        const released = k.releaseOwner(owner);
        if (released.cachesDestroyed > 0) h.forgetCaches();
        return { released, runs: f.releaseOwner(owner) };
      });
      return {
        heapAllocationsFreed: BigInt(released.allocations),
        heapBytesFreed: BigInt(released.bytes),
        frameRunsFreed: BigInt(runs.runs),
        framesFreed: BigInt(runs.frames),
        cachesDestroyed: BigInt(released.cachesDestroyed),
        corruptions: released.corruptions,
      };
    },
  });

  return {
    name: "pmm",
    bound: [bound],
    async start() {
      const map = await machine.getMemoryMap({}, { timeoutMs: 10_000 });
      const regions = normalizeMemoryMap(map.regions.map((r) => ({
        base: r.base,
        length: r.length,
        // Both contracts number memory types as the multiboot map does; match them by name.
        type: MemoryType[MachineMemoryType[r.type] as keyof typeof MemoryType],
        node: r.numaNode,
      })));
      frames = new FrameAllocator(regions);
      heap = new MachineHeap(frames, machine);
      const s = frames.statistics().frames;
      return `${s.total} frames of ${PAGE_SIZE} B in ${regions.length} regions: ${s.free} free, ` +
        `${s.reserved} reserved, ${frames.nodes.length} NUMA node(s); kernel heap on demand`;
    },
    stop: () => Promise.resolve(),
  };
}
