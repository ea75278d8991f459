// The kernel heap (seed 1.3): kmalloc and friends over slab caches (requests of up to 256 bytes)
// and the buddy allocator (larger ones), with an ownership record per allocation, leak checks,
// pointer validation, defragmentation and release of everything an owner holds.
//
// The heap hands out guest physical memory; its debugging (red zones, poison) reads and writes
// that memory through PhysicalMemory. Addresses are numbers: physical memory lies below 2^53,
// and the hot path stays free of BigInt (the service converts the contract's uint64 at the edge).
import {
  AstraError,
  Code,
  Errno,
  failedPrecondition,
  invalidArgument,
  notFound,
  outOfRange,
} from "../../lib/errors.ts";
import { AllocationKind, PointerState } from "../../gen/astra/pmm/v1/pmm_pb.ts";
import { BuddyAllocator, type BuddyStatistics, type FrameSource, MAX_ORDER } from "./buddy.ts";
import { TagTable } from "./frames.ts";
import { PAGE_SIZE } from "./memmap.ts";
import {
  RED_ZONE_BYTE,
  RED_ZONE_SIZE,
  type Slab,
  SlabCache,
  type SlabCacheStatistics,
  SlabDirectory,
} from "./slab.ts";

export { AllocationKind, PointerState };

/**
 * Guest physical memory as the heap sees it. The machine provides the real one; tests use
 * SparsePhysicalMemory. Addresses are byte addresses below 2^53.
 */
export interface PhysicalMemory {
  /** A copy of `length` bytes at `address`. */
  read(address: number, length: number): Uint8Array;
  write(address: number, bytes: Uint8Array): void;
  fill(address: number, length: number, byte: number): void;
  /** Offset of the first byte of [address, address + length) that is not `byte`, or -1. */
  findMismatch(address: number, length: number, byte: number): number;
}

/** Largest kmalloc: one buddy block of the top order (8 MiB). */
export const MAX_BLOCK_SIZE = PAGE_SIZE << MAX_ORDER;
/** Requests up to this size go to the kmalloc slab caches; larger ones to the buddy allocator. */
export const SLAB_MAX_SIZE = 256;
/** Size classes of the kmalloc caches. */
export const KMALLOC_SIZES: readonly number[] = [8, 16, 32, 64, 128, 256];
/** Alignment of every kmalloc result. */
export const MIN_ALIGNMENT = 8;
// Freed buddy allocations remembered to name the owner of a double free.
const RECENT_FREES = 4096;

export interface HeapOptions {
  /** Red zones and poisoning (default on). */
  debug?: boolean;
  /** Milliseconds since the epoch, for allocation records (default Date.now). */
  now?: () => number;
  /** Wholly free buddy chunks kept before returning them to the frame allocator (default 1). */
  spareChunks?: number;
  /** Empty slabs each cache keeps (default 1). */
  maxEmptySlabs?: number;
}

export interface HeapAllocationInfo {
  address: number;
  /** Requested bytes. */
  size: number;
  /** Bytes of the object or block backing it. */
  usableSize: number;
  owner: string;
  site: string;
  /** Milliseconds since the epoch. */
  time: number;
  sequence: number;
  kind: AllocationKind;
  /** Slab cache name; "" for buddy blocks. */
  cache: string;
}

export interface PointerInfo {
  state: PointerState;
  /** For LIVE, INTERIOR and RED_ZONE. */
  allocation?: HeapAllocationInfo;
  /** From the allocation's start; negative in a left red zone. */
  offset: number;
}

export interface HeapFigures {
  heapBytes: number;
  allocatedBytes: number;
  buddyFreeBytes: number;
  largestFreeBlock: number;
  slabs: number;
  emptySlabs: number;
  fragmentationIndex: number;
}

export interface HeapStatistics {
  figures: HeapFigures;
  requestedBytes: number;
  liveAllocations: number;
  peakAllocatedBytes: number;
  allocs: number;
  frees: number;
  failedAllocs: number;
  errorsDetected: number;
  buddy: BuddyStatistics;
  caches: SlabCacheStatistics[];
}

export interface ReallocResult {
  address: number;
  size: number;
  moved: boolean;
}

export interface DefragmentResult {
  before: HeapFigures;
  after: HeapFigures;
  slabsReleased: number;
  framesReturned: number;
}

export interface OwnerRelease {
  allocations: number;
  bytes: number;
  cachesDestroyed: number;
  /** One description per allocation found with corrupted red zones (freed anyway). */
  corruptions: string[];
}

interface BlockRecord {
  address: number;
  size: number;
  order: number;
  alignment: number;
  owner: string;
  site: string;
  sequence: number;
  time: number;
}

const hex = (n: number) => `0x${n.toString(16)}`;

export class KernelHeap {
  readonly buddy: BuddyAllocator;
  readonly #memory: PhysicalMemory;
  readonly #debug: boolean;
  readonly #now: () => number;
  readonly #maxEmptySlabs: number;
  readonly #tags = new TagTable();
  readonly #directory = new SlabDirectory();
  readonly #caches = new Map<string, SlabCache>();
  readonly #kmallocCaches: SlabCache[];
  readonly #blocks = new Map<number, BlockRecord>();
  readonly #recentlyFreed = new Map<number, BlockRecord>();
  // Insertion order of #recentlyFreed, a ring: the oldest entry is forgotten first.
  readonly #recentRing: (BlockRecord | undefined)[] = new Array(RECENT_FREES);
  #recentNext = 0;
  #sequence = 0;
  #allocs = 0;
  #frees = 0;
  #failedAllocs = 0;
  #errorsDetected = 0;
  #live = 0;
  #requestedBytes = 0;
  #allocatedBytes = 0;
  #peakAllocatedBytes = 0;

  /** seed heap_init: the heap starts empty and takes frames from `frames` as it grows. */
  constructor(frames: FrameSource, memory: PhysicalMemory, options: HeapOptions = {}) {
    this.buddy = new BuddyAllocator(frames, { spareChunks: options.spareChunks });
    this.#memory = memory;
    this.#debug = options.debug ?? true;
    this.#now = options.now ?? Date.now;
    this.#maxEmptySlabs = options.maxEmptySlabs ?? 1;
    this.#kmallocCaches = KMALLOC_SIZES.map((size) =>
      this.#newCache(`kmalloc-${size}`, size, MIN_ALIGNMENT, "")
    );
  }

  // --- allocation ----------------------------------------------------------------------------

  /** seed kmalloc: `size` bytes, 8-byte aligned; `zero` fills them with zeros. */
  kmalloc(size: number, owner: string, site = "", zero = false): number {
    checkSize(size, "size");
    checkOwner(owner);
    let address: number;
    try {
      address = this.#allocate(size, MIN_ALIGNMENT, owner, site);
    } catch (err) {
      address = this.#afterReclaim(err, () => this.#allocate(size, MIN_ALIGNMENT, owner, site));
    }
    if (zero) this.#memory.fill(address, size, 0);
    return address;
  }

  /** seed kcalloc: count * size zeroed bytes; an overflowing product is refused. */
  kcalloc(count: number, size: number, owner: string, site = ""): number {
    if (!Number.isSafeInteger(count) || count < 1) {
      throw invalidArgument("count", `count must be a positive integer, got ${count}`);
    }
    checkSize(size, "size");
    const total = count * size;
    if (total > MAX_BLOCK_SIZE) {
      throw invalidArgument(
        "count",
        `${count} * ${size} bytes exceeds the largest heap block (${MAX_BLOCK_SIZE} bytes)`,
        Errno.EOVERFLOW,
      );
    }
    return this.kmalloc(total, owner, site, true);
  }

  /**
   * seed kmalloc_aligned: `size` bytes at a multiple of `alignment` (a power of two up to the
   * largest buddy block). Small objects with alignments up to 256 bytes come from aligned slab
   * caches; the rest from buddy blocks, which are aligned to their own size.
   */
  kmallocAligned(size: number, alignment: number, owner: string, site = "", zero = false): number {
    checkSize(size, "size");
    if (
      !Number.isSafeInteger(alignment) || alignment < 1 || alignment > MAX_BLOCK_SIZE ||
      (alignment & (alignment - 1)) !== 0
    ) {
      throw invalidArgument(
        "alignment",
        `alignment must be a power of two up to ${MAX_BLOCK_SIZE}, got ${alignment}`,
      );
    }
    checkOwner(owner);
    const align = Math.max(alignment, MIN_ALIGNMENT);
    let address: number;
    try {
      address = this.#allocate(size, align, owner, site);
    } catch (err) {
      address = this.#afterReclaim(err, () => this.#allocate(size, align, owner, site));
    }
    if (zero) this.#memory.fill(address, size, 0);
    return address;
  }

  /**
   * seed krealloc: address 0 allocates, size 0 frees (answering address 0). The allocation stays
   * where it is when its object or block can hold the new size; otherwise the contents move to a
   * new allocation with the same alignment. The record takes the caller's owner and site.
   */
  krealloc(address: number, size: number, owner: string, site = ""): ReallocResult {
    if (size === 0) {
      if (address !== 0) this.kfree(address);
      return { address: 0, size: 0, moved: false };
    }
    if (address === 0) return { address: this.kmalloc(size, owner, site), size, moved: false };
    checkSize(size, "size");
    checkOwner(owner);
    checkAddress(address);
    const slab = this.#directory.find(address);
    if (slab) {
      const cache = slab.cache;
      const { index, offset } = cache.position(slab, address);
      if (index < 0 || offset !== 0 || slab.isFree(index)) throw this.#badPointer(address, "reallocate");
      const oldSize = slab.requested[index];
      if (size <= cache.objectSize) {
        cache.resize(slab, index, size, owner, site);
        this.#requestedBytes += size - oldSize;
        return { address, size, moved: false };
      }
      cache.checkRedZones(slab, index);
      return { address: this.#move(address, oldSize, size, cache.alignment, owner, site), size, moved: true };
    }
    const record = this.#blocks.get(address);
    if (!record) throw this.#badPointer(address, "reallocate");
    this.#checkBlockRedZone(record);
    if (size <= PAGE_SIZE << record.order && (size > SLAB_MAX_SIZE || record.alignment > SLAB_MAX_SIZE)) {
      this.#requestedBytes += size - record.size;
      record.size = size;
      record.owner = owner;
      record.site = site;
      this.#writeBlockRedZone(record);
      return { address, size, moved: false };
    }
    return {
      address: this.#move(address, record.size, size, record.alignment, owner, site),
      size,
      moved: true,
    };
  }

  /** seed kfree: frees an allocation by the address kmalloc returned; answers its size. */
  kfree(address: number): number {
    checkAddress(address);
    const slab = this.#directory.find(address);
    if (slab) {
      const { index, offset } = slab.cache.position(slab, address);
      if (index < 0 || offset !== 0) throw this.#badPointer(address, "free");
      const size = slab.requested[index];
      this.#freeSlabObject(slab, index);
      return size;
    }
    const record = this.#blocks.get(address);
    if (!record) throw this.#badPointer(address, "free");
    this.#checkBlockRedZone(record);
    this.#freeBlock(record);
    return record.size;
  }

  // --- named caches --------------------------------------------------------------------------

  /** Creates a named cache of `objectSize`-byte objects (alignment 0 means 8). */
  createCache(name: string, objectSize: number, alignment: number, owner: string): SlabCacheStatistics {
    if (typeof name !== "string" || name === "" || name.length > 64) {
      throw invalidArgument("name", "a cache name must be 1 to 64 characters");
    }
    if (name.startsWith("kmalloc-")) {
      throw invalidArgument("name", `cache names starting with "kmalloc-" belong to the heap`);
    }
    if (this.#caches.has(name)) {
      throw new AstraError(Code.ALREADY_EXISTS, Errno.EEXIST, `cache ${name} already exists`, {
        argument: "name",
      });
    }
    checkSize(objectSize, "object_size");
    const align = alignment === 0 ? MIN_ALIGNMENT : alignment;
    if (!Number.isSafeInteger(align) || align < 1 || align > MAX_BLOCK_SIZE || (align & (align - 1)) !== 0) {
      throw invalidArgument(
        "alignment",
        `alignment must be a power of two up to ${MAX_BLOCK_SIZE}, got ${alignment}`,
      );
    }
    checkOwner(owner);
    return this.#newCache(name, objectSize, Math.max(align, MIN_ALIGNMENT), owner).statistics();
  }

  /** Destroys an empty named cache; answers the pages given back to the buddy allocator. */
  destroyCache(name: string): number {
    const cache = this.#cache(name);
    if (cache.owner === "") {
      throw new AstraError(Code.PERMISSION_DENIED, Errno.EPERM, `cache ${name} belongs to the heap`, {
        argument: "name",
      });
    }
    if (cache.objectsInUse > 0) {
      throw failedPrecondition(
        `cache ${name} still has ${cache.objectsInUse} live objects: free them first`,
        Errno.EBUSY,
        "name",
      );
    }
    const pages = cache.releaseEmptySlabs() * cache.slabPages;
    this.#caches.delete(name);
    return pages;
  }

  /** One object from a cache, by name. */
  cacheAlloc(name: string, owner: string, site = "", zero = false): number {
    const cache = this.#cache(name);
    checkOwner(owner);
    let address: number;
    try {
      address = this.#allocateFrom(cache, cache.objectSize, owner, site);
    } catch (err) {
      address = this.#afterReclaim(err, () => this.#allocateFrom(cache, cache.objectSize, owner, site));
    }
    if (zero) this.#memory.fill(address, cache.objectSize, 0);
    return address;
  }

  /** Frees an object of the named cache (refused if the address belongs elsewhere). */
  cacheFree(name: string, address: number): void {
    const cache = this.#cache(name);
    checkAddress(address);
    const slab = this.#directory.find(address);
    if (!slab || slab.cache !== cache) {
      this.#errorsDetected++;
      throw invalidArgument(
        "address",
        `${hex(address)} is not an object of cache ${name}` +
          (slab ? ` (it belongs to ${slab.cache.name})` : ""),
      );
    }
    const { index, offset } = cache.position(slab, address);
    if (index < 0 || offset !== 0) throw this.#badPointer(address, "free");
    this.#freeSlabObject(slab, index);
  }

  // --- inspection ----------------------------------------------------------------------------

  /** seed heap_check_leaks, reference point: allocations after the mark have larger sequences. */
  mark(): { mark: number; time: number } {
    return { mark: this.#sequence, time: this.#now() };
  }

  /** seed heap_check_leaks: live allocations of `owner` and/or made after `sinceMark`, oldest first. */
  checkLeaks(filter: { owner?: string; sinceMark?: number } = {}): HeapAllocationInfo[] {
    const { owner, sinceMark } = filter;
    const found: HeapAllocationInfo[] = [];
    const ownerId = owner ? this.#tags.find(owner) : 0;
    if (ownerId !== undefined) {
      for (const cache of this.#caches.values()) {
        cache.forEachLive((slab, index) => {
          if (owner && slab.ownerIds[index] !== ownerId) return;
          if (sinceMark !== undefined && slab.sequence[index] <= sinceMark) return;
          found.push(this.#slabInfo(slab, index));
        });
      }
    }
    for (const record of this.#blocks.values()) {
      if (owner && record.owner !== owner) continue;
      if (sinceMark !== undefined && record.sequence <= sinceMark) continue;
      found.push(blockInfo(record));
    }
    return found.sort((a, b) => a.sequence - b.sequence);
  }

  /** seed heap_validate_pointer: what `address` is to the heap. */
  validatePointer(address: number): PointerInfo {
    if (!Number.isSafeInteger(address) || address < 0) return { state: PointerState.NOT_HEAP, offset: 0 };
    const slab = this.#directory.find(address);
    if (slab) {
      const { index, offset } = slab.cache.position(slab, address);
      if (index < 0 || slab.isFree(index)) return { state: PointerState.FREED, offset: 0 };
      const allocation = this.#slabInfo(slab, index);
      return { state: pointerState(offset, allocation.size), allocation, offset };
    }
    const block = this.buddy.blockAt(address);
    if (!block) return { state: PointerState.NOT_HEAP, offset: 0 };
    if (!block.allocated) return { state: PointerState.FREED, offset: 0 };
    const record = this.#blocks.get(block.address);
    if (!record) {
      throw new AstraError(
        Code.INTERNAL,
        Errno.EIO,
        `buddy block ${hex(block.address)} is allocated but unrecorded`,
      );
    }
    const offset = address - record.address;
    return { state: pointerState(offset, record.size), allocation: blockInfo(record), offset };
  }

  /** Live allocation count and byte totals, cheap enough for every call. */
  figures(): HeapFigures {
    let slabs = 0;
    let emptySlabs = 0;
    for (const cache of this.#caches.values()) {
      const counts = cache.slabCounts;
      slabs += counts.empty + counts.partial + counts.full;
      emptySlabs += counts.empty;
    }
    const largest = this.buddy.largestFreeOrder();
    return {
      heapBytes: this.buddy.totalPages * PAGE_SIZE,
      allocatedBytes: this.#allocatedBytes,
      buddyFreeBytes: this.buddy.freePages * PAGE_SIZE,
      largestFreeBlock: largest < 0 ? 0 : PAGE_SIZE << largest,
      slabs,
      emptySlabs,
      fragmentationIndex: this.buddy.statistics().orders[MAX_ORDER].fragmentationIndex,
    };
  }

  /** seed heap_get_statistics. */
  statistics(): HeapStatistics {
    const caches = [...this.#caches.values()];
    return {
      figures: this.figures(),
      requestedBytes: this.#requestedBytes,
      liveAllocations: this.#live,
      peakAllocatedBytes: this.#peakAllocatedBytes,
      allocs: this.#allocs,
      frees: this.#frees,
      failedAllocs: this.#failedAllocs,
      errorsDetected: this.#errorsDetected + caches.reduce((n, c) => n + c.errorsDetected, 0),
      buddy: this.buddy.statistics(),
      caches: caches.map((c) => c.statistics()),
    };
  }

  /**
   * seed heap_defragment: empty slabs go back to the buddy allocator (where they coalesce) and
   * wholly free chunks back to the frame allocator. Live allocations never move: callers and
   * devices hold their physical addresses.
   */
  defragment(): DefragmentResult {
    const before = this.figures();
    const slabsReleased = this.#releaseEmptySlabs();
    const framesReturned = this.buddy.releaseFreeChunks();
    return { before, after: this.figures(), slabsReleased, framesReturned };
  }

  /**
   * Frees every allocation `owner` holds and destroys its named caches once empty. Corrupted red
   * zones do not stop the release (the owner is gone); they are reported in the result.
   */
  releaseOwner(owner: string): OwnerRelease {
    checkOwner(owner);
    const result: OwnerRelease = { allocations: 0, bytes: 0, cachesDestroyed: 0, corruptions: [] };
    const ownerId = this.#tags.find(owner);
    if (ownerId !== undefined && ownerId !== 0) {
      for (const cache of this.#caches.values()) {
        const victims: [Slab, number][] = [];
        cache.forEachLive((slab, index) => {
          if (slab.ownerIds[index] === ownerId) victims.push([slab, index]);
        });
        for (const [slab, index] of victims) {
          result.bytes += slab.requested[index];
          result.allocations++;
          const corruption = this.#freeSlabObject(slab, index, true);
          if (corruption) result.corruptions.push(corruption);
        }
      }
    }
    for (const record of [...this.#blocks.values()]) {
      if (record.owner !== owner) continue;
      const damage = this.#blockRedZoneDamage(record);
      if (damage >= 0) {
        this.#errorsDetected++;
        result.corruptions.push(this.#blockCorruption(record, damage).message);
      }
      this.#freeBlock(record);
      result.bytes += record.size;
      result.allocations++;
    }
    for (const cache of [...this.#caches.values()]) {
      if (cache.owner === owner && cache.objectsInUse === 0) {
        cache.releaseEmptySlabs();
        this.#caches.delete(cache.name);
        result.cachesDestroyed++;
      }
    }
    return result;
  }

  /** Cross-checks the caches, the buddy allocator and the heap's own counters. */
  checkConsistency(): string[] {
    const problems = [...this.buddy.checkConsistency()];
    let live = 0;
    let allocated = 0;
    let requested = 0;
    for (const cache of this.#caches.values()) {
      problems.push(...cache.checkConsistency());
      cache.forEachLive((slab, index) => {
        live++;
        allocated += cache.objectSize;
        requested += slab.requested[index];
      });
    }
    for (const record of this.#blocks.values()) {
      live++;
      allocated += PAGE_SIZE << record.order;
      requested += record.size;
    }
    if (live !== this.#live) problems.push(`heap: ${live} live allocations, ${this.#live} counted`);
    if (allocated !== this.#allocatedBytes) {
      problems.push(`heap: ${allocated} bytes allocated, ${this.#allocatedBytes} counted`);
    }
    if (requested !== this.#requestedBytes) {
      problems.push(`heap: ${requested} bytes requested, ${this.#requestedBytes} counted`);
    }
    return problems;
  }

  // --- internals -----------------------------------------------------------------------------

  #newCache(name: string, objectSize: number, alignment: number, owner: string): SlabCache {
    const cache = new SlabCache(
      { name, objectSize, alignment, owner, debug: this.#debug, maxEmptySlabs: this.#maxEmptySlabs },
      this.buddy,
      this.#memory,
      this.#directory,
      this.#tags,
    );
    this.#caches.set(name, cache);
    return cache;
  }

  #cache(name: string): SlabCache {
    const cache = this.#caches.get(name);
    if (!cache) throw notFound("name", `no slab cache named ${name}`);
    return cache;
  }

  #allocate(size: number, alignment: number, owner: string, site: string): number {
    if (size <= SLAB_MAX_SIZE && alignment <= SLAB_MAX_SIZE) {
      const cache = alignment === MIN_ALIGNMENT
        ? this.#kmallocCaches[sizeClass(size)]
        : this.#alignedCache(size, alignment);
      return this.#allocateFrom(cache, size, owner, site);
    }
    const order = Math.max(orderFor(size), orderFor(alignment));
    const address = this.buddy.alloc(order);
    const record: BlockRecord = {
      address,
      size,
      order,
      alignment,
      owner,
      site,
      sequence: ++this.#sequence,
      time: this.#now(),
    };
    this.#blocks.set(address, record);
    this.#recentlyFreed.delete(address);
    this.#writeBlockRedZone(record);
    this.#counted(size, PAGE_SIZE << order);
    return address;
  }

  #allocateFrom(cache: SlabCache, size: number, owner: string, site: string): number {
    const address = cache.alloc(size, owner, site, this.#sequence + 1, this.#now());
    this.#sequence++;
    this.#counted(size, cache.objectSize);
    return address;
  }

  // Aligned kmalloc caches are made on first use: "kmalloc-64-align32" and so on.
  #alignedCache(size: number, alignment: number): SlabCache {
    const objectSize = KMALLOC_SIZES[sizeClass(size)];
    const name = `kmalloc-${objectSize}-align${alignment}`;
    return this.#caches.get(name) ?? this.#newCache(name, objectSize, alignment, "");
  }

  #counted(requested: number, allocated: number): void {
    this.#allocs++;
    this.#live++;
    this.#requestedBytes += requested;
    this.#allocatedBytes += allocated;
    if (this.#allocatedBytes > this.#peakAllocatedBytes) this.#peakAllocatedBytes = this.#allocatedBytes;
  }

  // After an exhausted allocation: give empty slabs back to the buddy allocator and try once
  // more if that freed anything. Any failure is counted.
  #afterReclaim(err: unknown, attempt: () => number): number {
    if (
      !(err instanceof AstraError) || err.code !== Code.RESOURCE_EXHAUSTED || this.#releaseEmptySlabs() === 0
    ) {
      this.#failedAllocs++;
      throw err;
    }
    try {
      return attempt();
    } catch (retryErr) {
      this.#failedAllocs++;
      throw retryErr;
    }
  }

  #releaseEmptySlabs(): number {
    let released = 0;
    for (const cache of this.#caches.values()) released += cache.releaseEmptySlabs();
    return released;
  }

  // Frees a slab object and updates the heap's figures; returns a corruption description when
  // `force` let a damaged object be freed anyway.
  #freeSlabObject(slab: Slab, index: number, force = false): string | undefined {
    const cache = slab.cache;
    const size = slab.requested[index];
    const corruption = cache.free(slab, index, force);
    this.#frees++;
    this.#live--;
    this.#requestedBytes -= size;
    this.#allocatedBytes -= cache.objectSize;
    return corruption;
  }

  #freeBlock(record: BlockRecord): void {
    this.buddy.free(record.address);
    this.#blocks.delete(record.address);
    const oldest = this.#recentRing[this.#recentNext];
    if (oldest && this.#recentlyFreed.get(oldest.address) === oldest) {
      this.#recentlyFreed.delete(oldest.address);
    }
    this.#recentRing[this.#recentNext] = record;
    this.#recentNext = (this.#recentNext + 1) % RECENT_FREES;
    this.#recentlyFreed.set(record.address, record);
    this.#frees++;
    this.#live--;
    this.#requestedBytes -= record.size;
    this.#allocatedBytes -= PAGE_SIZE << record.order;
  }

  // Allocates `newSize` bytes with `alignment`, copies what fits, frees the old allocation.
  #move(
    address: number,
    oldSize: number,
    newSize: number,
    alignment: number,
    owner: string,
    site: string,
  ): number {
    const target = alignment <= MIN_ALIGNMENT
      ? this.kmalloc(newSize, owner, site)
      : this.kmallocAligned(newSize, alignment, owner, site);
    this.#memory.write(target, this.#memory.read(address, Math.min(oldSize, newSize)));
    this.kfree(address);
    return target;
  }

  // Buddy blocks have no room before them; a red zone follows the object in the block's slack.
  #writeBlockRedZone(record: BlockRecord): void {
    if (!this.#debug) return;
    const zone = Math.min((PAGE_SIZE << record.order) - record.size, RED_ZONE_SIZE);
    if (zone > 0) this.#memory.fill(record.address + record.size, zone, RED_ZONE_BYTE);
  }

  #blockRedZoneDamage(record: BlockRecord): number {
    if (!this.#debug) return -1;
    const zone = Math.min((PAGE_SIZE << record.order) - record.size, RED_ZONE_SIZE);
    return zone > 0 ? this.#memory.findMismatch(record.address + record.size, zone, RED_ZONE_BYTE) : -1;
  }

  #checkBlockRedZone(record: BlockRecord): void {
    const damage = this.#blockRedZoneDamage(record);
    if (damage >= 0) {
      this.#errorsDetected++;
      throw this.#blockCorruption(record, damage);
    }
  }

  #blockCorruption(record: BlockRecord, damage: number): AstraError {
    const at = record.address + record.size + damage;
    return new AstraError(
      Code.DATA_LOSS,
      Errno.EUCLEAN,
      `red zone corrupted at ${hex(at)} after ${hex(record.address)} (${record.size} bytes allocated by ` +
        `${record.owner}${record.site ? ` at ${record.site}` : ""}): overflow: byte ${
          record.size + damage
        } ` +
        `of a ${record.size}-byte allocation was overwritten`,
      { argument: "address", facts: { ...recordFacts(record), corrupted_at: hex(at) } },
    );
  }

  #slabInfo(slab: Slab, index: number): HeapAllocationInfo {
    const { owner, site } = slab.cache.ownerOf(slab, index);
    return {
      address: slab.objectAddress(index),
      size: slab.requested[index],
      usableSize: slab.cache.objectSize,
      owner,
      site,
      time: slab.time[index],
      sequence: slab.sequence[index],
      kind: AllocationKind.SLAB,
      cache: slab.cache.name,
    };
  }

  // The error for freeing or reallocating an address that is not a live allocation's start.
  #badPointer(address: number, action: string): AstraError {
    this.#errorsDetected++;
    const info = this.validatePointer(address);
    const a = info.allocation;
    if (a) {
      const where = info.state === PointerState.INTERIOR ? `${info.offset} bytes into` : `in a red zone of`;
      return new AstraError(
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
        `cannot ${action} ${hex(address)}: it points ${where} the allocation at ${hex(a.address)} ` +
          `(${a.size} bytes allocated by ${a.owner}${a.site ? ` at ${a.site}` : ""}), not at its start`,
        { argument: "address", facts: infoFacts(a) },
      );
    }
    const slab = this.#directory.find(address);
    if (slab) {
      // A freed slab object still remembers its last owner.
      const { index, offset } = slab.cache.position(slab, address);
      const last = index >= 0 && offset === 0 ? slab.cache.ownerOf(slab, index) : undefined;
      if (last?.owner) {
        return new AstraError(
          Code.FAILED_PRECONDITION,
          Errno.EINVAL,
          `cannot ${action} ${hex(address)}: it was already freed (${
            slab.requested[index]
          } bytes allocated by ` +
            `${last.owner}${last.site ? ` at ${last.site}` : ""})`,
          {
            argument: "address",
            facts: { address: hex(address), owner: last.owner, site: last.site, cache: slab.cache.name },
          },
        );
      }
    }
    const recent = this.#recentlyFreed.get(address);
    if (recent) {
      return new AstraError(
        Code.FAILED_PRECONDITION,
        Errno.EINVAL,
        `double free of ${hex(address)}: ${recent.size} bytes allocated by ${recent.owner}` +
          `${recent.site ? ` at ${recent.site}` : ""}, already freed`,
        { argument: "address", facts: recordFacts(recent) },
      );
    }
    return invalidArgument(
      "address",
      `cannot ${action} ${hex(address)}: it was never allocated by the heap` +
        (info.state === PointerState.FREED ? " (it is free heap memory)" : ""),
    );
  }
}

function checkSize(size: number, argument: string): void {
  if (!Number.isSafeInteger(size) || size < 1 || size > MAX_BLOCK_SIZE) {
    throw invalidArgument(argument, `${argument} must be 1 to ${MAX_BLOCK_SIZE} bytes, got ${size}`);
  }
}

function checkOwner(owner: string): void {
  if (typeof owner !== "string" || owner === "") {
    throw invalidArgument("owner", "every allocation must name its owner");
  }
}

function checkAddress(address: number): void {
  if (!Number.isSafeInteger(address) || address < 0) {
    throw outOfRange("address", `${address} is not a physical address`, Errno.EFAULT);
  }
}

// Index into KMALLOC_SIZES of the smallest class holding `size` (1..256).
function sizeClass(size: number): number {
  return size <= 8 ? 0 : 29 - Math.clz32(size - 1);
}

// Smallest buddy order whose block holds `bytes`.
function orderFor(bytes: number): number {
  const pages = Math.ceil(bytes / PAGE_SIZE);
  return pages <= 1 ? 0 : 32 - Math.clz32(pages - 1);
}

function pointerState(offset: number, size: number): PointerState {
  if (offset === 0) return PointerState.LIVE;
  return offset > 0 && offset < size ? PointerState.INTERIOR : PointerState.RED_ZONE;
}

function blockInfo(record: BlockRecord): HeapAllocationInfo {
  return {
    address: record.address,
    size: record.size,
    usableSize: PAGE_SIZE << record.order,
    owner: record.owner,
    site: record.site,
    time: record.time,
    sequence: record.sequence,
    kind: AllocationKind.BUDDY,
    cache: "",
  };
}

function recordFacts(record: BlockRecord): Record<string, string> {
  return {
    address: hex(record.address),
    size: String(record.size),
    owner: record.owner,
    site: record.site,
    sequence: String(record.sequence),
  };
}

function infoFacts(info: HeapAllocationInfo): Record<string, string> {
  return {
    address: hex(info.address),
    size: String(info.size),
    owner: info.owner,
    site: info.site,
    sequence: String(info.sequence),
  };
}

// First index in bytes[from, to) that is not `byte`, or -1; compares four bytes at a time
// through `words`, a view of the same buffer.
function mismatchIn(bytes: Uint8Array, words: Uint32Array, from: number, to: number, byte: number): number {
  let i = from;
  while (i < to && (i & 3) !== 0) {
    if (bytes[i] !== byte) return i;
    i++;
  }
  const wordEnd = to & ~3;
  if (i < wordEnd) {
    const pattern = (byte * 0x01010101) >>> 0;
    for (let w = i >>> 2; w < wordEnd >>> 2; w++) {
      if (words[w] !== pattern) {
        i = w * 4;
        while (bytes[i] === byte) i++;
        return i;
      }
    }
    i = wordEnd;
  }
  for (; i < to; i++) if (bytes[i] !== byte) return i;
  return -1;
}

const MEMORY_CHUNK = 1 << 16;

interface MemoryChunk {
  bytes: Uint8Array;
  /** The same buffer, for word-at-a-time comparison. */
  words: Uint32Array;
}

/**
 * In-process guest physical memory of `size` bytes, allocated in 64 KiB chunks on first write
 * (untouched memory reads as zero), for tests and benchmarks of the heap without a machine.
 */
export class SparsePhysicalMemory implements PhysicalMemory {
  readonly #chunks = new Map<number, MemoryChunk>();
  // Heap traffic stays in a few chunks: the last one used skips the map lookup.
  #lastIndex = -1;
  #last: MemoryChunk | undefined;

  constructor(readonly size: number) {}

  /** Bytes backed by chunks so far. */
  get residentBytes(): number {
    return this.#chunks.size * MEMORY_CHUNK;
  }

  read(address: number, length: number): Uint8Array {
    this.#check(address, length);
    const out = new Uint8Array(length);
    for (let done = 0; done < length;) {
      const at = address + done;
      const offset = at % MEMORY_CHUNK;
      const n = Math.min(length - done, MEMORY_CHUNK - offset);
      const chunk = this.#chunk(at, false);
      if (chunk) out.set(chunk.bytes.subarray(offset, offset + n), done);
      done += n;
    }
    return out;
  }

  write(address: number, bytes: Uint8Array): void {
    this.#check(address, bytes.length);
    for (let done = 0; done < bytes.length;) {
      const at = address + done;
      const offset = at % MEMORY_CHUNK;
      const n = Math.min(bytes.length - done, MEMORY_CHUNK - offset);
      this.#chunk(at, true)!.bytes.set(bytes.subarray(done, done + n), offset);
      done += n;
    }
  }

  fill(address: number, length: number, byte: number): void {
    this.#check(address, length);
    for (let done = 0; done < length;) {
      const at = address + done;
      const offset = at % MEMORY_CHUNK;
      const n = Math.min(length - done, MEMORY_CHUNK - offset);
      // Zeros need no chunk: untouched memory reads as zero.
      const chunk = this.#chunk(at, byte !== 0);
      if (chunk) chunk.bytes.fill(byte, offset, offset + n);
      done += n;
    }
  }

  findMismatch(address: number, length: number, byte: number): number {
    this.#check(address, length);
    for (let done = 0; done < length;) {
      const at = address + done;
      const offset = at % MEMORY_CHUNK;
      const n = Math.min(length - done, MEMORY_CHUNK - offset);
      const chunk = this.#chunk(at, false);
      if (!chunk) {
        if (byte !== 0) return done;
      } else {
        const i = mismatchIn(chunk.bytes, chunk.words, offset, offset + n, byte);
        if (i >= 0) return done + i - offset;
      }
      done += n;
    }
    return -1;
  }

  #chunk(address: number, create: boolean): MemoryChunk | undefined {
    const index = Math.floor(address / MEMORY_CHUNK);
    if (index === this.#lastIndex) return this.#last;
    let chunk = this.#chunks.get(index);
    if (!chunk) {
      if (!create) return undefined;
      const bytes = new Uint8Array(MEMORY_CHUNK);
      chunk = { bytes, words: new Uint32Array(bytes.buffer) };
      this.#chunks.set(index, chunk);
    }
    this.#lastIndex = index;
    this.#last = chunk;
    return chunk;
  }

  #check(address: number, length: number): void {
    if (!Number.isSafeInteger(address) || address < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw outOfRange("address", `invalid physical access ${address}+${length}`, Errno.EFAULT);
    }
    if (address + length > this.size) {
      throw outOfRange(
        "address",
        `physical access ${hex(address)}+${length} beyond the ${this.size}-byte memory`,
        Errno.EFAULT,
      );
    }
  }
}
