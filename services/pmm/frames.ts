// The physical frame allocator (seed 1.1): one bitmap per RAM region of the normalised memory
// map, with exact accounting per region and per NUMA node, contiguous runs, alignment, an upper
// address limit, NUMA preference with fallback, reservations, owner records and Linux's
// fragmentation indices.
//
// Addresses are numbers: every RAM region lies below 2^53 (checked at construction), and a
// number keeps the single-frame path free of BigInt. Frame indices inside a region are < 2^32,
// so bit arithmetic (>>> 5, & 31) is exact.
import { AstraError, Code, Errno, invalidArgument, outOfRange, resourceExhausted } from "../../lib/errors.ts";
import { FitStrategy, FrameState, MemoryType } from "../../gen/astra/pmm/v1/pmm_pb.ts";
import { isRam, type MemoryRegion, PAGE_SIZE } from "./memmap.ts";

export { FitStrategy, FrameState };

/** Largest buddy-style order (2^11 frames = 8 MiB), as in the heap's buddy allocator. */
export const MAX_ORDER = 11;

const MAX_REGION_FRAMES = 2 ** 32 - 32;

/**
 * The frame at physical address 0 is never handed out: 0 is the null address of the contract
 * (Krealloc of address 0 allocates), and on POWER real address 0 holds the exception vectors.
 */
export const NULL_PAGE_REASON = "null page (physical address 0 is never handed out)";

// ---------------------------------------------------------------------------------------------
// Bitmap primitives. Bit i of a bitmap is bit (i & 31) of word (i >>> 5). Scans go a word at a
// time and find the lowest interesting bit with x & -x and Math.clz32.

/** First index in [from, end) whose bit is clear, or `end`. */
export function findClearBit(bits: Uint32Array, from: number, end: number): number {
  if (from >= end) return end;
  let w = from >>> 5;
  let word = ~bits[w] & (-1 << (from & 31));
  if (word === 0) {
    const last = (end - 1) >>> 5;
    do {
      if (++w > last) return end;
      word = ~bits[w];
    } while (word === 0);
  }
  const i = w * 32 + 31 - Math.clz32(word & -word);
  return i < end ? i : end;
}

/** First index in [from, end) whose bit is set, or `end`. */
export function findSetBit(bits: Uint32Array, from: number, end: number): number {
  if (from >= end) return end;
  let w = from >>> 5;
  let word = bits[w] & (-1 << (from & 31));
  if (word === 0) {
    const last = (end - 1) >>> 5;
    do {
      if (++w > last) return end;
      word = bits[w];
    } while (word === 0);
  }
  const i = w * 32 + 31 - Math.clz32(word & -word);
  return i < end ? i : end;
}

/** Sets bits [from, end). */
export function setBits(bits: Uint32Array, from: number, end: number): void {
  if (from >= end) return;
  const first = from >>> 5;
  const last = (end - 1) >>> 5;
  const firstMask = -1 << (from & 31);
  const lastMask = -1 >>> (31 - ((end - 1) & 31));
  if (first === last) {
    bits[first] |= firstMask & lastMask;
    return;
  }
  bits[first] |= firstMask;
  if (last > first + 1) bits.fill(0xffffffff, first + 1, last);
  bits[last] |= lastMask;
}

/** Clears bits [from, end). */
export function clearBits(bits: Uint32Array, from: number, end: number): void {
  if (from >= end) return;
  const first = from >>> 5;
  const last = (end - 1) >>> 5;
  const firstMask = -1 << (from & 31);
  const lastMask = -1 >>> (31 - ((end - 1) & 31));
  if (first === last) {
    bits[first] &= ~(firstMask & lastMask);
    return;
  }
  bits[first] &= ~firstMask;
  if (last > first + 1) bits.fill(0, first + 1, last);
  bits[last] &= ~lastMask;
}

/** Number of set bits in [from, end). */
export function countSetBits(bits: Uint32Array, from: number, end: number): number {
  if (from >= end) return 0;
  const first = from >>> 5;
  const last = (end - 1) >>> 5;
  const firstMask = -1 << (from & 31);
  const lastMask = -1 >>> (31 - ((end - 1) & 31));
  if (first === last) return popcount32(bits[first] & firstMask & lastMask);
  let n = popcount32(bits[first] & firstMask) + popcount32(bits[last] & lastMask);
  for (let w = first + 1; w < last; w++) n += popcount32(bits[w]);
  return n;
}

function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

// ---------------------------------------------------------------------------------------------
// Fragmentation, exactly as Linux's mm/vmstat.c computes it from per-order free block counts.

export interface OrderFragmentation {
  order: number;
  /** Free blocks of exactly this order. */
  freeBlocks: number;
  /** unusable_free_index, in thousandths. */
  unusableFreeIndex: number;
  /** __fragmentation_index, in thousandths. */
  fragmentationIndex: number;
}

interface ContigPageInfo {
  freePages: number;
  freeBlocksTotal: number;
  freeBlocksSuitable: number;
}

// fill_contig_page_info(): free pages, free blocks, and how many blocks of `order` the blocks
// of that order or larger would make.
function contigPageInfo(order: number, freeBlocks: ArrayLike<number>): ContigPageInfo {
  let freePages = 0;
  let freeBlocksTotal = 0;
  let freeBlocksSuitable = 0;
  for (let o = 0; o < freeBlocks.length; o++) {
    const blocks = freeBlocks[o];
    freeBlocksTotal += blocks;
    freePages += blocks * 2 ** o;
    if (o >= order) freeBlocksSuitable += blocks * 2 ** (o - order);
  }
  return { freePages, freeBlocksTotal, freeBlocksSuitable };
}

/** Linux's unusable_free_index(order), in thousandths (1000 when nothing is free). */
export function unusableFreeIndex(order: number, freeBlocks: ArrayLike<number>): number {
  const info = contigPageInfo(order, freeBlocks);
  if (info.freePages === 0) return 1000;
  return Math.floor((info.freePages - info.freeBlocksSuitable * 2 ** order) * 1000 / info.freePages);
}

/**
 * Linux's __fragmentation_index(order), in thousandths: 0 when nothing is free or the order is
 * beyond MAX_ORDER, -1000 when a block of the order exists, otherwise
 * 1000 - (1000 + free_pages * 1000 / requested) / free_blocks_total in integer arithmetic
 * (which, as in Linux, can go below 0 for tiny free lists).
 */
export function fragmentationIndex(order: number, freeBlocks: ArrayLike<number>): number {
  if (order > MAX_ORDER) return 0;
  const info = contigPageInfo(order, freeBlocks);
  if (info.freeBlocksTotal === 0) return 0;
  if (info.freeBlocksSuitable > 0) return -1000;
  const requested = 2 ** order;
  return 1000 - Math.floor((1000 + Math.floor(info.freePages * 1000 / requested)) / info.freeBlocksTotal);
}

/** Both indices for every order 0..MAX_ORDER. */
export function orderFragmentation(freeBlocks: ArrayLike<number>): OrderFragmentation[] {
  const orders: OrderFragmentation[] = [];
  for (let order = 0; order <= MAX_ORDER; order++) {
    orders.push({
      order,
      freeBlocks: freeBlocks[order] ?? 0,
      unusableFreeIndex: unusableFreeIndex(order, freeBlocks),
      fragmentationIndex: fragmentationIndex(order, freeBlocks),
    });
  }
  return orders;
}

/**
 * Adds the free run of frames [start, end) to `counts` as a buddy allocator would hold it:
 * naturally aligned power-of-two blocks (frame numbers aligned to their size), at most MAX_ORDER.
 */
export function addBuddyBlocks(start: number, end: number, counts: number[]): void {
  let frame = start;
  while (frame < end) {
    let order = MAX_ORDER;
    while (order > 0 && (frame % 2 ** order !== 0 || frame + 2 ** order > end)) order--;
    counts[order]++;
    frame += 2 ** order;
  }
}

// ---------------------------------------------------------------------------------------------
// Owner and site tags.

/**
 * Interned tag strings with reference counts: a frame or heap record stores two small integers
 * instead of strings, and a tag disappears when nothing references it any more (process tags
 * come and go for the life of the system). Id 0 is the empty tag and is never counted.
 */
export class TagTable {
  #ids = new Map<string, number>();
  #names: string[] = [""];
  #refs: number[] = [0];
  #freeIds: number[] = [];
  // Callers tend to repeat the same tag: remember the last one to skip the map lookup.
  #lastTag = "";
  #lastId = 0;

  /** The tag's id, counting one more reference to it. */
  acquire(tag: string): number {
    if (tag === this.#lastTag) {
      if (tag !== "") this.#refs[this.#lastId]++;
      return this.#lastId;
    }
    if (tag === "") return 0;
    let id = this.#ids.get(tag);
    if (id === undefined) {
      id = this.#freeIds.pop() ?? this.#names.length;
      this.#ids.set(tag, id);
      this.#names[id] = tag;
      this.#refs[id] = 0;
    }
    this.#refs[id]++;
    this.#lastTag = tag;
    this.#lastId = id;
    return id;
  }

  /** Drops one reference; the id may be reused once none remain. */
  release(id: number): void {
    if (id === 0) return;
    if (--this.#refs[id] === 0) {
      if (id === this.#lastId) {
        this.#lastTag = "";
        this.#lastId = 0;
      }
      this.#ids.delete(this.#names[id]);
      this.#names[id] = "";
      this.#freeIds.push(id);
    }
  }

  /** The id of a tag that is referenced now, without adding a reference. */
  find(tag: string): number | undefined {
    return tag === "" ? 0 : this.#ids.get(tag);
  }

  name(id: number): string {
    return this.#names[id];
  }

  /** Tags currently referenced. */
  get size(): number {
    return this.#ids.size;
  }
}

// ---------------------------------------------------------------------------------------------
// The allocator.

export interface FramePlacement {
  /** Preferred NUMA node; unset: nodes in ascending order. */
  preferredNode?: number;
  /** Only the preferred node, no fallback. */
  strictNode?: boolean;
  /** Highest byte address the allocation may touch, inclusive (a DMA mask); 0 or unset: none. */
  maxAddress?: number;
}

export interface FrameRequest extends FramePlacement {
  /** The calling service and its tag, e.g. "vmm:pid 42". Required. */
  owner: string;
  /** Where in the caller the allocation was made. */
  site?: string;
}

export interface RunRequest extends FrameRequest {
  /** Frames in the run, at least 1. */
  count: number;
  /** Alignment of the first frame number, in frames (power of two); default 1. */
  alignment?: number;
  /** Default FIRST_FIT. */
  strategy?: FitStrategy;
}

export interface BulkRequest extends FrameRequest {
  /** Frames wanted, at least 1; all or nothing. */
  count: number;
}

export interface FrameCounts {
  total: number;
  free: number;
  used: number;
  reserved: number;
}

export interface FrameCheck {
  address: number;
  state: FrameState;
  regionIndex: number;
  regionType: MemoryType;
  node: number;
  /** For ALLOCATED: the run the frame belongs to and its owner; otherwise 0 and "". */
  runAddress: number;
  runFrames: number;
  owner: string;
  site: string;
}

export interface FrameRun {
  address: number;
  frames: number;
  node: number;
  owner: string;
  site: string;
}

export interface Reservation {
  base: number;
  size: number;
  reason: string;
}

export interface ReserveResult {
  /** The range reserved, widened to frame boundaries. */
  base: number;
  size: number;
  newlyReservedFrames: number;
}

export interface NodeStatistics {
  node: number;
  frames: FrameCounts;
  largestFreeRun: number;
  orders: OrderFragmentation[];
}

export interface RegionStatistics {
  index: number;
  base: bigint;
  length: bigint;
  type: MemoryType;
  node: number;
  frames: FrameCounts;
  largestFreeRun: number;
}

export interface FrameStatistics {
  pageSize: number;
  frames: FrameCounts;
  nodes: NodeStatistics[];
  regions: RegionStatistics[];
  orders: OrderFragmentation[];
  allocCalls: number;
  freeCalls: number;
  failedAllocs: number;
  framesAllocated: number;
  framesFreed: number;
}

// One RAM region of the memory map. `inUse` has a bit per frame that is not free (allocated or
// reserved; padding bits past the end are set so scans never return them), `reservedBits` marks
// the reserved ones, and `runTail` marks every frame of a run but its first, which is how a run
// is told apart from neighbouring single frames and runs without any side table.
class FrameRegion {
  readonly inUse: Uint32Array;
  readonly reservedBits: Uint32Array;
  readonly runTail: Uint32Array;
  /** Owner and site tag ids, meaningful at the first frame of each allocated run. */
  readonly ownerIds: Uint32Array;
  readonly siteIds: Uint32Array;
  readonly endFrame: number;
  freeFrames: number;
  usedFrames = 0;
  reservedFrames: number;
  /** Every word below this one is full: scans for a free frame start here. */
  searchWord = 0;

  constructor(
    readonly mapIndex: number,
    readonly region: MemoryRegion,
    readonly firstFrame: number,
    readonly frameCount: number,
  ) {
    const words = Math.ceil(frameCount / 32);
    this.endFrame = firstFrame + frameCount;
    this.inUse = new Uint32Array(words);
    this.reservedBits = new Uint32Array(words);
    this.runTail = new Uint32Array(words);
    this.ownerIds = new Uint32Array(frameCount);
    this.siteIds = new Uint32Array(frameCount);
    setBits(this.inUse, frameCount, words * 32);
    if (region.type === MemoryType.USABLE) {
      this.freeFrames = frameCount;
      this.reservedFrames = 0;
    } else {
      setBits(this.inUse, 0, frameCount);
      setBits(this.reservedBits, 0, frameCount);
      this.freeFrames = 0;
      this.reservedFrames = frameCount;
    }
  }

  get node(): number {
    return this.region.node;
  }

  runLength(i: number): number {
    return findClearBit(this.runTail, i + 1, this.frameCount) - i;
  }

  runStart(i: number): number {
    while (i > 0 && (this.runTail[i >>> 5] & (1 << (i & 31))) !== 0) i--;
    return i;
  }

  largestFreeRun(): number {
    let largest = 0;
    let pos = this.searchWord * 32;
    while (pos < this.frameCount) {
      const start = findClearBit(this.inUse, pos, this.frameCount);
      if (start >= this.frameCount) break;
      const end = findSetBit(this.inUse, start, this.frameCount);
      if (end - start > largest) largest = end - start;
      pos = end;
    }
    return largest;
  }

  addFreeBlocks(counts: number[]): void {
    let pos = this.searchWord * 32;
    while (pos < this.frameCount) {
      const start = findClearBit(this.inUse, pos, this.frameCount);
      if (start >= this.frameCount) break;
      const end = findSetBit(this.inUse, start, this.frameCount);
      addBuddyBlocks(this.firstFrame + start, this.firstFrame + end, counts);
      pos = end;
    }
  }

  counts(): FrameCounts {
    return {
      total: this.frameCount,
      free: this.freeFrames,
      used: this.usedFrames,
      reserved: this.reservedFrames,
    };
  }
}

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * The frame allocator over a normalised memory map (see memmap.ts). USABLE regions start free
 * (but for the null page, see NULL_PAGE_REASON); RESERVED and ACPI regions are managed but
 * reserved; BAD and DEVICE regions are listed only.
 * Every method either succeeds or throws an AstraError leaving the state as it was.
 */
export class FrameAllocator {
  /** Owner and site tags of allocated runs. */
  readonly tags = new TagTable();
  readonly #map: readonly MemoryRegion[];
  readonly #regions: FrameRegion[] = [];
  readonly #nodes: number[];
  readonly #anyOrder: FrameRegion[][];
  readonly #preferOrder = new Map<number, FrameRegion[][]>();
  readonly #strictOrder = new Map<number, FrameRegion[][]>();
  readonly #reservations: Reservation[] = [];
  #lastRegion: FrameRegion;
  // Set by #findRun for best fit: the length of the free run chosen.
  #foundRunLength = 0;

  allocCalls = 0;
  freeCalls = 0;
  failedAllocs = 0;
  framesAllocated = 0;
  framesFreed = 0;

  constructor(map: readonly MemoryRegion[]) {
    this.#map = map;
    map.forEach((region, index) => {
      if (!isRam(region.type) || region.frameCount === 0) return;
      if (index > 0 && map[index - 1].base + map[index - 1].length > region.base) {
        throw invalidArgument("memory_map", "memory map must be normalised (sorted and disjoint)");
      }
      if (region.base + region.length > BigInt(Number.MAX_SAFE_INTEGER) + 1n) {
        throw invalidArgument("memory_map", `RAM region at 0x${region.base.toString(16)} ends above 2^53`);
      }
      if (region.frameCount > MAX_REGION_FRAMES) {
        throw invalidArgument("memory_map", `RAM region at 0x${region.base.toString(16)} is too large`);
      }
      this.#regions.push(new FrameRegion(index, region, region.firstFrame, region.frameCount));
    });
    if (this.#regions.length === 0) {
      throw invalidArgument("memory_map", "the memory map has no RAM");
    }
    this.#lastRegion = this.#regions[0];
    this.#nodes = [...new Set(this.#regions.map((r) => r.node))].sort((a, b) => a - b);
    const byNode = (node: number) => this.#regions.filter((r) => r.node === node);
    this.#anyOrder = this.#nodes.map(byNode);
    for (const node of this.#nodes) {
      // Fallback goes to the nearest node ids first: the firmware map carries no distance table,
      // and machines number their nodes along the interconnect.
      const fallback = [...this.#nodes].sort((a, b) => Math.abs(a - node) - Math.abs(b - node) || a - b);
      this.#preferOrder.set(node, fallback.map(byNode));
      this.#strictOrder.set(node, [byNode(node)]);
    }
    const first = this.#regions[0];
    if (first.firstFrame === 0 && first.region.type === MemoryType.USABLE) {
      this.reserveRegion(0, PAGE_SIZE, NULL_PAGE_REASON);
    }
  }

  /** The normalised memory map, every type included. */
  get memoryMap(): readonly MemoryRegion[] {
    return this.#map;
  }

  /** NUMA nodes that have RAM, ascending. */
  get nodes(): readonly number[] {
    return this.#nodes;
  }

  /** ReserveRegion calls so far, in order. */
  get reservations(): readonly Reservation[] {
    return this.#reservations;
  }

  get freeCount(): number {
    let n = 0;
    for (const r of this.#regions) n += r.freeFrames;
    return n;
  }

  get totalCount(): number {
    let n = 0;
    for (const r of this.#regions) n += r.frameCount;
    return n;
  }

  // --- allocation ----------------------------------------------------------------------------

  /** seed pmm_alloc_frame: one frame; returns its physical address. */
  allocFrame(request: FrameRequest): number {
    this.allocCalls++;
    const groups = this.#placementOrder(request);
    const limit = frameLimit(request.maxAddress);
    const owner = checkOwner(request.owner);
    for (let g = 0; g < groups.length; g++) {
      const regions = groups[g];
      for (let r = 0; r < regions.length; r++) {
        const region = regions[r];
        if (region.freeFrames === 0 || region.firstFrame >= limit) continue;
        const end = limit >= region.endFrame ? region.frameCount : limit - region.firstFrame;
        const i = findClearBit(region.inUse, region.searchWord * 32, end);
        if (i >= end) continue;
        region.searchWord = i >>> 5;
        region.inUse[i >>> 5] |= 1 << (i & 31);
        region.ownerIds[i] = this.tags.acquire(owner);
        region.siteIds[i] = this.tags.acquire(request.site ?? "");
        region.freeFrames--;
        region.usedFrames++;
        this.framesAllocated++;
        return (region.firstFrame + i) * PAGE_SIZE;
      }
    }
    throw this.#exhausted(request, 1, 1, "no free frame");
  }

  /** seed pmm_alloc_frames: a physically contiguous run; returns the first frame's address. */
  allocFrames(request: RunRequest): number {
    this.allocCalls++;
    const count = request.count;
    if (!Number.isSafeInteger(count) || count < 1) {
      throw invalidArgument("count", `count must be a positive integer, got ${count}`);
    }
    const alignment = request.alignment ?? 1;
    if (!Number.isSafeInteger(alignment) || alignment < 1 || !isPowerOfTwo(alignment)) {
      throw invalidArgument(
        "alignment",
        `alignment must be a power of two number of frames, got ${alignment}`,
      );
    }
    const strategy = request.strategy ?? FitStrategy.FIRST_FIT;
    if (strategy !== FitStrategy.FIRST_FIT && strategy !== FitStrategy.BEST_FIT && strategy !== 0) {
      throw invalidArgument("strategy", `unknown fit strategy ${strategy}`);
    }
    const bestFit = strategy === FitStrategy.BEST_FIT;
    const groups = this.#placementOrder(request);
    const limit = frameLimit(request.maxAddress);
    const owner = checkOwner(request.owner);
    for (const regions of groups) {
      let chosen: FrameRegion | undefined;
      let chosenStart = -1;
      let chosenLength = Infinity;
      for (const region of regions) {
        if (region.firstFrame >= limit) continue;
        const end = limit >= region.endFrame ? region.frameCount : limit - region.firstFrame;
        const start = this.#findRun(region, count, alignment, end, bestFit);
        if (start < 0) continue;
        if (!bestFit) {
          chosen = region;
          chosenStart = start;
          break;
        }
        if (this.#foundRunLength < chosenLength) {
          chosen = region;
          chosenStart = start;
          chosenLength = this.#foundRunLength;
        }
      }
      if (chosen) {
        this.#take(chosen, chosenStart, count, owner, request.site ?? "");
        return (chosen.firstFrame + chosenStart) * PAGE_SIZE;
      }
    }
    throw this.#exhausted(
      request,
      count,
      alignment,
      `no free run of ${count} frames${alignment > 1 ? ` aligned to ${alignment} frames` : ""}`,
    );
  }

  /** N frames, not necessarily contiguous, all or nothing; addresses ascend within a node. */
  allocFramesBulk(request: BulkRequest): number[] {
    this.allocCalls++;
    const count = request.count;
    if (!Number.isSafeInteger(count) || count < 1) {
      throw invalidArgument("count", `count must be a positive integer, got ${count}`);
    }
    const groups = this.#placementOrder(request);
    const limit = frameLimit(request.maxAddress);
    const owner = checkOwner(request.owner);
    let available = 0;
    for (const regions of groups) {
      for (const region of regions) {
        if (region.firstFrame >= limit) continue;
        available += limit >= region.endFrame
          ? region.freeFrames
          : limit - region.firstFrame - countSetBits(region.inUse, 0, limit - region.firstFrame);
      }
    }
    if (available < count) {
      throw this.#exhausted(request, count, 1, `only ${available} free frames for ${count} requested`);
    }
    const addresses: number[] = [];
    for (const regions of groups) {
      for (const region of regions) {
        if (region.freeFrames === 0 || region.firstFrame >= limit) continue;
        const end = limit >= region.endFrame ? region.frameCount : limit - region.firstFrame;
        let i = region.searchWord * 32;
        while (addresses.length < count) {
          i = findClearBit(region.inUse, i, end);
          if (i >= end) break;
          this.#take(region, i, 1, owner, request.site ?? "");
          addresses.push((region.firstFrame + i) * PAGE_SIZE);
        }
        if (addresses.length === count) return addresses;
      }
    }
    throw new AstraError(Code.INTERNAL, Errno.EIO, "bulk allocation found fewer free frames than counted");
  }

  // --- freeing -------------------------------------------------------------------------------

  /** seed pmm_free_frame: frees a frame allocated as a single frame. */
  freeFrame(address: number): void {
    this.freeCalls++;
    const frame = frameNumber(address, "address");
    const region = this.#regionOf(frame, address, "address");
    const i = frame - region.firstFrame;
    const w = i >>> 5;
    const bit = 1 << (i & 31);
    if ((region.inUse[w] & bit) === 0) {
      throw notAllocated(address);
    }
    if ((region.reservedBits[w] & bit) !== 0) {
      throw reservedFrame(address);
    }
    if ((region.runTail[w] & bit) !== 0) {
      throw this.#insideRun(region, i, address);
    }
    if (i + 1 < region.frameCount && (region.runTail[(i + 1) >>> 5] & (1 << ((i + 1) & 31))) !== 0) {
      throw new AstraError(
        Code.FAILED_PRECONDITION,
        Errno.EINVAL,
        `frame ${hex(address)} starts a run of ${region.runLength(i)} frames: free it with FreeFrames`,
        { argument: "address" },
      );
    }
    region.inUse[w] &= ~bit;
    this.tags.release(region.ownerIds[i]);
    this.tags.release(region.siteIds[i]);
    region.freeFrames++;
    region.usedFrames--;
    this.framesFreed++;
    if (w < region.searchWord) region.searchWord = w;
  }

  /** seed pmm_free_frames: frees a run exactly as it was allocated. */
  freeFrames(address: number, count: number): void {
    this.freeCalls++;
    const frame = frameNumber(address, "address");
    if (!Number.isSafeInteger(count) || count < 1) {
      throw invalidArgument("count", `count must be a positive integer, got ${count}`);
    }
    const region = this.#regionOf(frame, address, "address");
    const i = frame - region.firstFrame;
    if (i + count > region.frameCount) {
      throw new AstraError(
        Code.OUT_OF_RANGE,
        Errno.EFAULT,
        `run of ${count} frames at ${hex(address)} crosses the end of its region at ` +
          hex(region.endFrame * PAGE_SIZE),
        { argument: "count" },
      );
    }
    const w = i >>> 5;
    const bit = 1 << (i & 31);
    if ((region.inUse[w] & bit) === 0) throw notAllocated(address);
    if ((region.reservedBits[w] & bit) !== 0) throw reservedFrame(address);
    if ((region.runTail[w] & bit) !== 0) throw this.#insideRun(region, i, address);
    const length = region.runLength(i);
    if (length !== count) {
      throw invalidArgument(
        "count",
        length === 1
          ? `frame ${hex(address)} was allocated as a single frame, not as a run of ${count}`
          : `the run at ${hex(address)} has ${length} frames, not ${count}`,
      );
    }
    this.#release(region, i, count);
  }

  /** Frees every run the owner holds; returns what was freed. */
  releaseOwner(owner: string): { runs: number; frames: number } {
    const id = this.tags.find(checkOwner(owner));
    let runs = 0;
    let frames = 0;
    if (id === undefined) return { runs, frames };
    for (const region of this.#regions) {
      this.#forEachRunHead(region, (i) => {
        if (region.ownerIds[i] !== id) return;
        const length = region.runLength(i);
        this.#release(region, i, length);
        runs++;
        frames += length;
      });
    }
    return { runs, frames };
  }

  // --- reservation and queries ---------------------------------------------------------------

  /**
   * seed pmm_reserve_region: reserves every frame [base, base + size) touches. The range must be
   * RAM without holes; frames reserved already stay so; any allocated frame refuses the call.
   */
  reserveRegion(base: number, size: number, reason: string): ReserveResult {
    if (!Number.isSafeInteger(base) || base < 0) {
      throw invalidArgument("base", `base must be a non-negative integer, got ${base}`);
    }
    if (!Number.isSafeInteger(size) || size < 1 || !Number.isSafeInteger(base + size)) {
      throw invalidArgument("size", `size must be a positive integer, got ${size}`);
    }
    const first = Math.floor(base / PAGE_SIZE);
    const end = Math.ceil((base + size) / PAGE_SIZE);
    const parts: { region: FrameRegion; from: number; to: number }[] = [];
    let frame = first;
    while (frame < end) {
      const region = this.#findRegion(frame);
      if (!region) {
        throw new AstraError(
          Code.OUT_OF_RANGE,
          Errno.EFAULT,
          `reservation ${hex(base)}+${hex(size)} reaches ${hex(frame * PAGE_SIZE)}, ${this.#notRam(frame)}`,
          { argument: frame === first ? "base" : "size" },
        );
      }
      const to = Math.min(end, region.endFrame);
      parts.push({ region, from: frame - region.firstFrame, to: to - region.firstFrame });
      frame = to;
    }
    for (const { region, from, to } of parts) {
      const allocated = findAllocated(region, from, to);
      if (allocated >= 0) {
        const start = region.runStart(allocated);
        const owner = this.tags.name(region.ownerIds[start]);
        throw new AstraError(
          Code.FAILED_PRECONDITION,
          Errno.EBUSY,
          `reservation ${hex(base)}+${hex(size)} overlaps frame ${
            hex((region.firstFrame + allocated) * PAGE_SIZE)
          }, ` +
            `allocated to ${owner || "an unnamed owner"}`,
          {
            argument: "base",
            facts: {
              frame: hex((region.firstFrame + allocated) * PAGE_SIZE),
              owner,
              site: this.tags.name(region.siteIds[start]),
            },
          },
        );
      }
    }
    let newly = 0;
    for (const { region, from, to } of parts) {
      const fresh = to - from - countSetBits(region.inUse, from, to);
      setBits(region.inUse, from, to);
      setBits(region.reservedBits, from, to);
      region.freeFrames -= fresh;
      region.reservedFrames += fresh;
      newly += fresh;
    }
    this.#reservations.push({ base, size, reason });
    return { base: first * PAGE_SIZE, size: (end - first) * PAGE_SIZE, newlyReservedFrames: newly };
  }

  /** seed pmm_check_frame: the state of the frame at a frame-aligned address. */
  checkFrame(address: number): FrameCheck {
    const frame = frameNumber(address, "address");
    const region = this.#findRegion(frame);
    if (!region) {
      const index = this.#mapIndexOf(frame);
      if (index < 0) {
        throw outOfRange("address", `${hex(address)} is not in the memory map (a hole)`, Errno.EFAULT);
      }
      const r = this.#map[index];
      return {
        address,
        state: FrameState.UNAVAILABLE,
        regionIndex: index,
        regionType: r.type,
        node: r.node,
        runAddress: 0,
        runFrames: 0,
        owner: "",
        site: "",
      };
    }
    const i = frame - region.firstFrame;
    const bit = 1 << (i & 31);
    const check: FrameCheck = {
      address,
      state: FrameState.FREE,
      regionIndex: region.mapIndex,
      regionType: region.region.type,
      node: region.node,
      runAddress: 0,
      runFrames: 0,
      owner: "",
      site: "",
    };
    if ((region.reservedBits[i >>> 5] & bit) !== 0) {
      check.state = FrameState.RESERVED;
    } else if ((region.inUse[i >>> 5] & bit) !== 0) {
      const start = region.runStart(i);
      check.state = FrameState.ALLOCATED;
      check.runAddress = (region.firstFrame + start) * PAGE_SIZE;
      check.runFrames = region.runLength(start);
      check.owner = this.tags.name(region.ownerIds[start]);
      check.site = this.tags.name(region.siteIds[start]);
    }
    return check;
  }

  /** NUMA node of the RAM frame at `address`. */
  nodeOf(address: number): number {
    const frame = frameNumber(address, "address");
    return this.#regionOf(frame, address, "address").node;
  }

  /** Allocated runs, optionally only one owner's, in address order. */
  listRuns(filter: { owner?: string } = {}): FrameRun[] {
    const id = filter.owner === undefined ? undefined : this.tags.find(filter.owner);
    const runs: FrameRun[] = [];
    if (filter.owner !== undefined && id === undefined) return runs;
    for (const region of this.#regions) {
      this.#forEachRunHead(region, (i) => {
        if (id !== undefined && region.ownerIds[i] !== id) return;
        runs.push({
          address: (region.firstFrame + i) * PAGE_SIZE,
          frames: region.runLength(i),
          node: region.node,
          owner: this.tags.name(region.ownerIds[i]),
          site: this.tags.name(region.siteIds[i]),
        });
      });
    }
    return runs;
  }

  /** seed pmm_get_statistics. Scans the bitmaps (cost: one pass over them). */
  statistics(): FrameStatistics {
    const total = { total: 0, free: 0, used: 0, reserved: 0 };
    const allBlocks = new Array<number>(MAX_ORDER + 1).fill(0);
    const regions: RegionStatistics[] = [];
    const nodes: NodeStatistics[] = [];
    for (const node of this.#nodes) {
      const counts = { total: 0, free: 0, used: 0, reserved: 0 };
      const blocks = new Array<number>(MAX_ORDER + 1).fill(0);
      let largest = 0;
      for (const region of this.#regions) {
        if (region.node !== node) continue;
        const c = region.counts();
        addCounts(counts, c);
        const largestHere = region.largestFreeRun();
        largest = Math.max(largest, largestHere);
        region.addFreeBlocks(blocks);
        regions.push({
          index: region.mapIndex,
          base: region.region.base,
          length: region.region.length,
          type: region.region.type,
          node,
          frames: c,
          largestFreeRun: largestHere,
        });
      }
      addCounts(total, counts);
      blocks.forEach((n, o) => (allBlocks[o] += n));
      nodes.push({ node, frames: counts, largestFreeRun: largest, orders: orderFragmentation(blocks) });
    }
    regions.sort((a, b) => a.index - b.index);
    return {
      pageSize: PAGE_SIZE,
      frames: total,
      nodes,
      regions,
      orders: orderFragmentation(allBlocks),
      allocCalls: this.allocCalls,
      freeCalls: this.freeCalls,
      failedAllocs: this.failedAllocs,
      framesAllocated: this.framesAllocated,
      framesFreed: this.framesFreed,
    };
  }

  /**
   * Cross-checks the bitmaps against the counters and each other; returns the disagreements
   * (none in a healthy allocator). For tests and for a service self-check.
   */
  checkConsistency(): string[] {
    const problems: string[] = [];
    for (const region of this.#regions) {
      const where = `region ${region.mapIndex}`;
      const n = region.frameCount;
      const inUse = countSetBits(region.inUse, 0, n);
      const reserved = countSetBits(region.reservedBits, 0, n);
      if (n - inUse !== region.freeFrames) {
        problems.push(`${where}: ${n - inUse} clear bits, ${region.freeFrames} free`);
      }
      if (reserved !== region.reservedFrames) {
        problems.push(`${where}: ${reserved} reserved bits, ${region.reservedFrames} reserved`);
      }
      if (inUse - reserved !== region.usedFrames) {
        problems.push(`${where}: ${inUse - reserved} allocated bits, ${region.usedFrames} used`);
      }
      if (region.freeFrames + region.usedFrames + region.reservedFrames !== n) {
        problems.push(`${where}: free + used + reserved != ${n}`);
      }
      const words = region.inUse.length;
      for (let w = 0; w < words; w++) {
        if ((region.reservedBits[w] & ~region.inUse[w]) !== 0) {
          problems.push(`${where}: reserved frame not in use`);
        }
        if ((region.runTail[w] & ~region.inUse[w]) !== 0) problems.push(`${where}: run tail frame is free`);
        if ((region.runTail[w] & region.reservedBits[w]) !== 0) {
          problems.push(`${where}: run tail frame reserved`);
        }
        if (w < region.searchWord && region.inUse[w] !== 0xffffffff) {
          problems.push(`${where}: free frame below hint`);
        }
      }
      if ((region.runTail[0] & 1) !== 0) problems.push(`${where}: run tail at the region's first frame`);
    }
    return problems;
  }

  // --- internals -----------------------------------------------------------------------------

  #placementOrder(placement: FramePlacement): FrameRegion[][] {
    const node = placement.preferredNode;
    if (node === undefined) return this.#anyOrder;
    const order = (placement.strictNode ? this.#strictOrder : this.#preferOrder).get(node);
    if (!order) {
      throw invalidArgument(
        "preferred_node",
        `no NUMA node ${node} with RAM (nodes: ${this.#nodes.join(", ")})`,
        Errno.ENODEV,
      );
    }
    return order;
  }

  // Start (relative to the region) of a run of `count` free frames whose absolute frame number
  // is a multiple of `alignment`, ending by `end`; -1 if none. First fit returns the lowest;
  // best fit the one inside the shortest free run, stopping early at an exact fit.
  #findRun(region: FrameRegion, count: number, alignment: number, end: number, bestFit: boolean): number {
    if (region.freeFrames < count) return -1;
    const bits = region.inUse;
    const base = region.firstFrame;
    let pos = region.searchWord * 32;
    let bestStart = -1;
    let bestLength = Infinity;
    while (pos < end) {
      const start = findClearBit(bits, pos, end);
      if (start >= end) break;
      const stop = findSetBit(bits, start, end);
      const aligned = alignment === 1 ? start : Math.ceil((base + start) / alignment) * alignment - base;
      if (aligned + count <= stop) {
        if (!bestFit) return aligned;
        if (stop - start < bestLength) {
          bestLength = stop - start;
          bestStart = aligned;
          if (bestLength === count) break;
        }
      }
      pos = stop;
    }
    this.#foundRunLength = bestLength;
    return bestStart;
  }

  #take(region: FrameRegion, i: number, count: number, owner: string, site: string): void {
    setBits(region.inUse, i, i + count);
    setBits(region.runTail, i + 1, i + count);
    region.ownerIds[i] = this.tags.acquire(owner);
    region.siteIds[i] = this.tags.acquire(site);
    region.freeFrames -= count;
    region.usedFrames += count;
    this.framesAllocated += count;
  }

  #release(region: FrameRegion, i: number, count: number): void {
    clearBits(region.inUse, i, i + count);
    clearBits(region.runTail, i + 1, i + count);
    this.tags.release(region.ownerIds[i]);
    this.tags.release(region.siteIds[i]);
    region.freeFrames += count;
    region.usedFrames -= count;
    this.framesFreed += count;
    if (i >>> 5 < region.searchWord) region.searchWord = i >>> 5;
  }

  #forEachRunHead(region: FrameRegion, visit: (i: number) => void): void {
    const words = region.inUse.length;
    for (let w = 0; w < words; w++) {
      let heads = region.inUse[w] & ~region.reservedBits[w] & ~region.runTail[w];
      while (heads !== 0) {
        const low = heads & -heads;
        heads ^= low;
        const i = w * 32 + 31 - Math.clz32(low);
        if (i < region.frameCount) visit(i);
      }
    }
  }

  #findRegion(frame: number): FrameRegion | undefined {
    const last = this.#lastRegion;
    if (frame >= last.firstFrame && frame < last.endFrame) return last;
    const regions = this.#regions;
    let low = 0;
    let high = regions.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const r = regions[mid];
      if (frame < r.firstFrame) high = mid - 1;
      else if (frame >= r.endFrame) low = mid + 1;
      else return (this.#lastRegion = r);
    }
    return undefined;
  }

  #regionOf(frame: number, address: number, argument: string): FrameRegion {
    const region = this.#findRegion(frame);
    if (region) return region;
    throw outOfRange(argument, `${hex(address)} is ${this.#notRam(frame)}`, Errno.EFAULT);
  }

  #mapIndexOf(frame: number): number {
    return this.#map.findIndex((r) => frame >= r.firstFrame && frame < r.firstFrame + r.frameCount);
  }

  #notRam(frame: number): string {
    const index = this.#mapIndexOf(frame);
    return index < 0
      ? "not in the memory map (a hole)"
      : `in a ${MemoryType[this.#map[index].type]} region, not RAM pmm manages`;
  }

  #insideRun(region: FrameRegion, i: number, address: number): AstraError {
    const start = region.runStart(i);
    return new AstraError(
      Code.FAILED_PRECONDITION,
      Errno.EINVAL,
      `frame ${hex(address)} is inside the run of ${region.runLength(start)} frames at ` +
        `${hex((region.firstFrame + start) * PAGE_SIZE)}: free the whole run from its start`,
      { argument: "address" },
    );
  }

  #exhausted(request: FramePlacement, count: number, alignment: number, what: string): AstraError {
    this.failedAllocs++;
    const facts: Record<string, string> = { requested_frames: String(count) };
    if (alignment > 1) facts.alignment_frames = String(alignment);
    if (request.maxAddress) facts.max_address = hex(request.maxAddress);
    if (request.preferredNode !== undefined) facts.preferred_node = String(request.preferredNode);
    const summary: string[] = [];
    for (const node of this.#nodes) {
      let free = 0;
      let total = 0;
      let largest = 0;
      for (const r of this.#regions) {
        if (r.node !== node) continue;
        free += r.freeFrames;
        total += r.frameCount;
        largest = Math.max(largest, r.largestFreeRun());
      }
      facts[`node${node}.free_frames`] = String(free);
      facts[`node${node}.total_frames`] = String(total);
      facts[`node${node}.largest_free_run`] = String(largest);
      summary.push(`node ${node}: ${free} free of ${total}, largest run ${largest}`);
    }
    const where = request.preferredNode === undefined
      ? "on any node"
      : request.strictNode
      ? `on node ${request.preferredNode}`
      : `on node ${request.preferredNode} or its fallbacks`;
    const limit = request.maxAddress ? ` below ${hex(request.maxAddress)}` : "";
    return resourceExhausted(
      `out of physical memory: ${what}${limit} ${where} (${summary.join("; ")})`,
      facts,
    );
  }
}

function checkOwner(owner: string): string {
  if (typeof owner !== "string" || owner === "") {
    throw invalidArgument("owner", "every allocation must name its owner");
  }
  return owner;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n));
}

// Exclusive frame bound for an inclusive highest byte address; Infinity for no limit.
function frameLimit(maxAddress: number | undefined): number {
  if (maxAddress === undefined || maxAddress === 0) return Infinity;
  if (!(maxAddress > 0)) {
    throw invalidArgument("max_address", `max_address must be positive, got ${maxAddress}`);
  }
  return Math.floor((maxAddress + 1) / PAGE_SIZE);
}

function frameNumber(address: number, argument: string): number {
  if (!Number.isSafeInteger(address) || address < 0) {
    throw outOfRange(argument, `${address} is not a physical address pmm manages`, Errno.EFAULT);
  }
  if (address % PAGE_SIZE !== 0) {
    throw invalidArgument(argument, `${hex(address)} is not aligned to a ${PAGE_SIZE}-byte frame`);
  }
  return address / PAGE_SIZE;
}

// First frame in [from, to) that is allocated (in use, not reserved), or -1.
function findAllocated(region: FrameRegion, from: number, to: number): number {
  for (let i = from; i < to;) {
    const w = i >>> 5;
    let word = region.inUse[w] & ~region.reservedBits[w] & (-1 << (i & 31));
    const wordEnd = w * 32 + 32;
    if (to < wordEnd) word &= -1 >>> (31 - ((to - 1) & 31));
    if (word !== 0) return w * 32 + 31 - Math.clz32(word & -word);
    i = wordEnd;
  }
  return -1;
}

function addCounts(into: FrameCounts, c: FrameCounts): void {
  into.total += c.total;
  into.free += c.free;
  into.used += c.used;
  into.reserved += c.reserved;
}

function notAllocated(address: number): AstraError {
  return new AstraError(
    Code.FAILED_PRECONDITION,
    Errno.EINVAL,
    `frame ${hex(address)} is not allocated (double free, or never allocated)`,
    { argument: "address" },
  );
}

function reservedFrame(address: number): AstraError {
  return new AstraError(
    Code.FAILED_PRECONDITION,
    Errno.EPERM,
    `frame ${hex(address)} is reserved, not allocated: reserved frames are never freed`,
    { argument: "address" },
  );
}
