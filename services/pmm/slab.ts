// Slab caches (seed 1.3): fixed-size objects packed into slabs of 2^order pages taken from the
// buddy allocator, each slab on its cache's partial, full or empty list, with a per-slab free
// bitmap. Object metadata (requested size, owner, site, sequence, time) sits beside the bitmap,
// off-slab, so the guest memory of an object is entirely the caller's.
//
// Debugging works on the guest memory itself, as Linux's SLUB debugging does: a slab is laid
// out as [red zone][object][red zone] per slot; free objects hold the poison pattern
// 0x6b...0x6b 0xa5, checked when the object is handed out again (a write after free); red zones
// hold 0xbb and are checked when the object is freed (an overflow or underflow).
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { type BuddyAllocator, MAX_ORDER } from "./buddy.ts";
import { findSetBit, setBits, type TagTable } from "./frames.ts";
import type { PhysicalMemory } from "./heap.ts";
import { PAGE_SIZE } from "./memmap.ts";

/** Linux's POISON_FREE: the bytes of a free object. */
export const POISON_FREE = 0x6b;
/** Linux's POISON_END: the last byte of a free object. */
export const POISON_END = 0xa5;
/** Linux's SLUB_RED_ACTIVE: red zones around a live object. */
export const RED_ZONE_BYTE = 0xbb;
/** Red zone width on each side of an object (one machine word, as in SLUB). */
export const RED_ZONE_SIZE = 8;
/** Slabs aim at holding at least this many objects (fewer only for huge objects). */
const MIN_OBJECTS_PER_SLAB = 8;

export enum SlabList {
  EMPTY = 0,
  PARTIAL = 1,
  FULL = 2,
}

export interface SlabCacheConfig {
  name: string;
  objectSize: number;
  /** Power of two, at least 8. */
  alignment: number;
  /** Who created the cache; "" for the heap's own caches. */
  owner: string;
  /** Red zones and poisoning. */
  debug: boolean;
  /** Empty slabs kept for reuse; more are returned to the buddy allocator at once. */
  maxEmptySlabs: number;
}

export interface SlabCacheStatistics {
  name: string;
  owner: string;
  objectSize: number;
  alignment: number;
  slotSize: number;
  objectsPerSlab: number;
  slabPages: number;
  slabsFull: number;
  slabsPartial: number;
  slabsEmpty: number;
  objectsInUse: number;
  objectsFree: number;
  allocs: number;
  frees: number;
}

/** Where an address falls in a slab. */
export interface SlabPosition {
  slab: Slab;
  /** Slot index; -1 past the last slot (the slab's unused tail). */
  index: number;
  /** Offset from the object's start (negative in the left red zone). */
  offset: number;
}

/** One slab: 2^order pages of slots. Owned by its cache; exposed for lookups and listings. */
export class Slab {
  prev: Slab | null = null;
  next: Slab | null = null;
  list = SlabList.EMPTY;
  /** Bit set = slot free. */
  readonly freeBits: Uint32Array;
  inUse = 0;
  /** Every word of freeBits below this one is zero (no free slot). */
  searchWord = 0;
  readonly requested: Uint32Array;
  /** Owner and site of the slot's current allocation, or of its last one once freed. */
  readonly ownerIds: Uint32Array;
  readonly siteIds: Uint32Array;
  readonly sequence: Float64Array;
  readonly time: Float64Array;

  constructor(readonly cache: SlabCache, readonly base: number, objects: number) {
    this.freeBits = new Uint32Array(Math.ceil(objects / 32));
    setBits(this.freeBits, 0, objects);
    this.requested = new Uint32Array(objects);
    this.ownerIds = new Uint32Array(objects);
    this.siteIds = new Uint32Array(objects);
    this.sequence = new Float64Array(objects);
    this.time = new Float64Array(objects);
  }

  isFree(index: number): boolean {
    return (this.freeBits[index >>> 5] & (1 << (index & 31))) !== 0;
  }

  objectAddress(index: number): number {
    return this.base + index * this.cache.slotSize + this.cache.objectOffset;
  }
}

/** Page → slab, shared by all caches so kfree finds the cache of any object. */
export class SlabDirectory {
  readonly #pages = new Map<number, Slab>();

  find(address: number): Slab | undefined {
    return this.#pages.get(Math.floor(address / PAGE_SIZE));
  }

  register(slab: Slab, pages: number): void {
    const first = slab.base / PAGE_SIZE;
    for (let p = 0; p < pages; p++) this.#pages.set(first + p, slab);
  }

  unregister(slab: Slab, pages: number): void {
    const first = slab.base / PAGE_SIZE;
    for (let p = 0; p < pages; p++) this.#pages.delete(first + p);
  }
}

const hex = (n: number) => `0x${n.toString(16)}`;

export class SlabCache {
  readonly name: string;
  readonly owner: string;
  readonly objectSize: number;
  readonly alignment: number;
  readonly debug: boolean;
  /** Bytes from a slot's start to its object (the left red zone, padded to the alignment). */
  readonly objectOffset: number;
  readonly slotSize: number;
  readonly slabOrder: number;
  readonly objectsPerSlab: number;
  readonly #maxEmptySlabs: number;
  readonly #buddy: BuddyAllocator;
  readonly #memory: PhysicalMemory;
  readonly #directory: SlabDirectory;
  readonly #tags: TagTable;
  readonly #heads: (Slab | null)[] = [null, null, null];
  readonly #counts = [0, 0, 0];
  objectsInUse = 0;
  allocs = 0;
  frees = 0;
  errorsDetected = 0;

  constructor(
    config: SlabCacheConfig,
    buddy: BuddyAllocator,
    memory: PhysicalMemory,
    directory: SlabDirectory,
    tags: TagTable,
  ) {
    this.name = config.name;
    this.owner = config.owner;
    this.objectSize = config.objectSize;
    this.alignment = config.alignment;
    this.debug = config.debug;
    this.#maxEmptySlabs = config.maxEmptySlabs;
    this.#buddy = buddy;
    this.#memory = memory;
    this.#directory = directory;
    this.#tags = tags;
    const align = config.alignment;
    this.objectOffset = config.debug ? roundUp(RED_ZONE_SIZE, align) : 0;
    this.slotSize = roundUp(
      this.objectOffset + config.objectSize + (config.debug ? RED_ZONE_SIZE : 0),
      align,
    );
    const { order, objects } = chooseSlabOrder(this.slotSize);
    this.slabOrder = order;
    this.objectsPerSlab = objects;
  }

  get slabPages(): number {
    return 1 << this.slabOrder;
  }

  /**
   * Hands out an object; `requested` (≤ objectSize) bytes are the caller's, the rest of the slot
   * is red zone. A broken poison pattern in the chosen object is reported as a write after free
   * naming the object's previous owner; the pattern is restored, so a retry succeeds.
   */
  alloc(requested: number, owner: string, site: string, sequence: number, time: number): number {
    const slab = this.#heads[SlabList.PARTIAL] ?? this.#heads[SlabList.EMPTY] ?? this.#grow();
    const index = findSetBit(slab.freeBits, slab.searchWord * 32, this.objectsPerSlab);
    const address = slab.objectAddress(index);
    if (this.debug) {
      const damaged = this.#poisonMismatch(address);
      if (damaged >= 0) {
        this.errorsDetected++;
        const error = this.#corruption(
          "write after free",
          slab,
          index,
          address + damaged,
          `byte ${damaged} of the freed object changed after it was freed`,
        );
        this.#poison(address);
        throw error;
      }
      const end = slab.base + index * this.slotSize + this.slotSize;
      this.#memory.fill(address + requested, end - address - requested, RED_ZONE_BYTE);
    }
    slab.freeBits[index >>> 5] &= ~(1 << (index & 31));
    slab.searchWord = index >>> 5;
    this.#tags.release(slab.ownerIds[index]);
    this.#tags.release(slab.siteIds[index]);
    slab.ownerIds[index] = this.#tags.acquire(owner);
    slab.siteIds[index] = this.#tags.acquire(site);
    slab.requested[index] = requested;
    slab.sequence[index] = sequence;
    slab.time[index] = time;
    slab.inUse++;
    this.objectsInUse++;
    this.allocs++;
    if (slab.inUse === this.objectsPerSlab) this.#move(slab, SlabList.FULL);
    else if (slab.list === SlabList.EMPTY) this.#move(slab, SlabList.PARTIAL);
    return address;
  }

  /**
   * Frees the object in `slot`. A double free or a corrupted red zone throws (naming the
   * allocation) and frees nothing, unless `force` is set: then corruption is returned as a
   * description and the object is freed anyway (its owner is gone).
   */
  free(slab: Slab, index: number, force = false): string | undefined {
    const address = slab.objectAddress(index);
    if (slab.isFree(index)) {
      this.errorsDetected++;
      throw new AstraError(
        Code.FAILED_PRECONDITION,
        Errno.EINVAL,
        `double free of ${hex(address)} in cache ${this.name}: ${this.#describe(slab, index)}, already freed`,
        { argument: "address", facts: this.#facts(slab, index, address) },
      );
    }
    let corruption: string | undefined;
    if (this.debug) {
      const damage = this.#redZoneDamage(slab, index);
      if (damage) {
        this.errorsDetected++;
        const error = this.#corruption("red zone corrupted", slab, index, damage.address, damage.what);
        if (!force) throw error;
        corruption = error.message;
        // Restore the red zones so the slot is clean for its next owner.
        const end = slab.base + (index + 1) * this.slotSize;
        this.#memory.fill(address - this.objectOffset, this.objectOffset, RED_ZONE_BYTE);
        this.#memory.fill(address + this.objectSize, end - address - this.objectSize, RED_ZONE_BYTE);
      }
      this.#poison(address);
    }
    slab.freeBits[index >>> 5] |= 1 << (index & 31);
    if (index >>> 5 < slab.searchWord) slab.searchWord = index >>> 5;
    slab.inUse--;
    this.objectsInUse--;
    this.frees++;
    if (slab.inUse === 0) {
      if (this.#counts[SlabList.EMPTY] >= this.#maxEmptySlabs) this.#destroySlab(slab);
      else this.#move(slab, SlabList.EMPTY);
    } else if (slab.list === SlabList.FULL) {
      this.#move(slab, SlabList.PARTIAL);
    }
    return corruption;
  }

  /**
   * Changes the requested size of a live object in place (krealloc within the slot). Red zones
   * are checked first, so corruption is reported rather than hidden by the resize.
   */
  resize(slab: Slab, index: number, requested: number, owner: string, site: string): void {
    const address = slab.objectAddress(index);
    if (this.debug) {
      const damage = this.#redZoneDamage(slab, index);
      if (damage) {
        this.errorsDetected++;
        throw this.#corruption("red zone corrupted", slab, index, damage.address, damage.what);
      }
      const end = slab.base + (index + 1) * this.slotSize;
      this.#memory.fill(address + requested, end - address - requested, RED_ZONE_BYTE);
    }
    this.#tags.release(slab.ownerIds[index]);
    this.#tags.release(slab.siteIds[index]);
    slab.ownerIds[index] = this.#tags.acquire(owner);
    slab.siteIds[index] = this.#tags.acquire(site);
    slab.requested[index] = requested;
  }

  /** Throws the red-zone error a free would, without freeing (checks before a move). */
  checkRedZones(slab: Slab, index: number): void {
    if (!this.debug) return;
    const damage = this.#redZoneDamage(slab, index);
    if (damage) {
      this.errorsDetected++;
      throw this.#corruption("red zone corrupted", slab, index, damage.address, damage.what);
    }
  }

  /** Where `address` (inside one of this cache's slabs) falls. */
  position(slab: Slab, address: number): SlabPosition {
    const index = Math.floor((address - slab.base) / this.slotSize);
    if (index >= this.objectsPerSlab) return { slab, index: -1, offset: 0 };
    return { slab, index, offset: address - slab.base - index * this.slotSize - this.objectOffset };
  }

  /** Calls `visit` for every live object. */
  forEachLive(visit: (slab: Slab, index: number) => void): void {
    for (const list of [SlabList.PARTIAL, SlabList.FULL]) {
      for (let slab = this.#heads[list]; slab; slab = slab.next) {
        for (let i = 0; i < this.objectsPerSlab; i++) if (!slab.isFree(i)) visit(slab, i);
      }
    }
  }

  /** Returns every empty slab to the buddy allocator; answers how many. */
  releaseEmptySlabs(): number {
    let released = 0;
    for (let slab = this.#heads[SlabList.EMPTY]; slab; slab = this.#heads[SlabList.EMPTY]) {
      this.#destroySlab(slab);
      released++;
    }
    return released;
  }

  /** Slabs on each list. */
  get slabCounts(): { empty: number; partial: number; full: number } {
    return {
      empty: this.#counts[SlabList.EMPTY],
      partial: this.#counts[SlabList.PARTIAL],
      full: this.#counts[SlabList.FULL],
    };
  }

  statistics(): SlabCacheStatistics {
    const slabs = this.#counts[0] + this.#counts[1] + this.#counts[2];
    return {
      name: this.name,
      owner: this.owner,
      objectSize: this.objectSize,
      alignment: this.alignment,
      slotSize: this.slotSize,
      objectsPerSlab: this.objectsPerSlab,
      slabPages: this.slabPages,
      slabsFull: this.#counts[SlabList.FULL],
      slabsPartial: this.#counts[SlabList.PARTIAL],
      slabsEmpty: this.#counts[SlabList.EMPTY],
      objectsInUse: this.objectsInUse,
      objectsFree: slabs * this.objectsPerSlab - this.objectsInUse,
      allocs: this.allocs,
      frees: this.frees,
    };
  }

  /** Owner and site of a slot's (current or last) allocation. */
  ownerOf(slab: Slab, index: number): { owner: string; site: string } {
    return { owner: this.#tags.name(slab.ownerIds[index]), site: this.#tags.name(slab.siteIds[index]) };
  }

  /** Cross-checks lists, bitmaps and counters; returns the disagreements. */
  checkConsistency(): string[] {
    const problems: string[] = [];
    let inUse = 0;
    for (const list of [SlabList.EMPTY, SlabList.PARTIAL, SlabList.FULL]) {
      let n = 0;
      let prev: Slab | null = null;
      for (let slab = this.#heads[list]; slab; slab = slab.next) {
        n++;
        const where = `${this.name} slab ${hex(slab.base)}`;
        if (slab.prev !== prev) problems.push(`${where}: broken back link`);
        if (slab.list !== list) problems.push(`${where}: on list ${list}, marked ${slab.list}`);
        let used = 0;
        for (let i = 0; i < this.objectsPerSlab; i++) if (!slab.isFree(i)) used++;
        if (used !== slab.inUse) {
          problems.push(`${where}: ${used} objects in the bitmap, ${slab.inUse} counted`);
        }
        const expected = used === 0
          ? SlabList.EMPTY
          : used === this.objectsPerSlab
          ? SlabList.FULL
          : SlabList.PARTIAL;
        if (expected !== list) problems.push(`${where}: ${used} objects but on list ${SlabList[list]}`);
        for (let w = 0; w < slab.searchWord; w++) {
          if (slab.freeBits[w] !== 0) problems.push(`${where}: free slot below hint`);
        }
        inUse += used;
        prev = slab;
      }
      if (n !== this.#counts[list]) {
        problems.push(`${this.name}: ${n} slabs on ${SlabList[list]}, ${this.#counts[list]} counted`);
      }
    }
    if (inUse !== this.objectsInUse) {
      problems.push(`${this.name}: ${inUse} objects in use, ${this.objectsInUse} counted`);
    }
    if (this.#counts[SlabList.EMPTY] > this.#maxEmptySlabs) {
      problems.push(`${this.name}: too many empty slabs kept`);
    }
    return problems;
  }

  // --- internals -----------------------------------------------------------------------------

  #grow(): Slab {
    const base = this.#buddy.alloc(this.slabOrder);
    const slab = new Slab(this, base, this.objectsPerSlab);
    if (this.debug) {
      this.#memory.fill(base, PAGE_SIZE << this.slabOrder, RED_ZONE_BYTE);
      for (let i = 0; i < this.objectsPerSlab; i++) this.#poison(slab.objectAddress(i));
    }
    this.#directory.register(slab, this.slabPages);
    this.#link(slab, SlabList.EMPTY);
    return slab;
  }

  #destroySlab(slab: Slab): void {
    this.#unlink(slab);
    this.#directory.unregister(slab, this.slabPages);
    for (let i = 0; i < this.objectsPerSlab; i++) {
      this.#tags.release(slab.ownerIds[i]);
      this.#tags.release(slab.siteIds[i]);
    }
    this.#buddy.free(slab.base);
  }

  #poison(address: number): void {
    this.#memory.fill(address, this.objectSize - 1, POISON_FREE);
    this.#memory.fill(address + this.objectSize - 1, 1, POISON_END);
  }

  // Offset of the first byte of a free object that is not poison, or -1.
  #poisonMismatch(address: number): number {
    const body = this.#memory.findMismatch(address, this.objectSize - 1, POISON_FREE);
    if (body >= 0) return body;
    return this.#memory.findMismatch(address + this.objectSize - 1, 1, POISON_END) >= 0
      ? this.objectSize - 1
      : -1;
  }

  #redZoneDamage(slab: Slab, index: number): { address: number; what: string } | undefined {
    const address = slab.objectAddress(index);
    const left = this.#memory.findMismatch(address - this.objectOffset, this.objectOffset, RED_ZONE_BYTE);
    if (left >= 0) {
      return {
        address: address - this.objectOffset + left,
        what: `underflow: byte ${left - this.objectOffset} before the object was overwritten`,
      };
    }
    const requested = slab.requested[index];
    const end = slab.base + (index + 1) * this.slotSize;
    const right = this.#memory.findMismatch(address + requested, end - address - requested, RED_ZONE_BYTE);
    if (right >= 0) {
      return {
        address: address + requested + right,
        what: `overflow: byte ${requested + right} of a ${requested}-byte object was overwritten`,
      };
    }
    return undefined;
  }

  #describe(slab: Slab, index: number): string {
    const { owner, site } = this.ownerOf(slab, index);
    return `${slab.requested[index]} bytes allocated by ${owner || "nobody (never allocated)"}` +
      (site ? ` at ${site}` : "");
  }

  #facts(slab: Slab, index: number, address: number): Record<string, string> {
    const { owner, site } = this.ownerOf(slab, index);
    return {
      address: hex(address),
      size: String(slab.requested[index]),
      owner,
      site,
      cache: this.name,
      sequence: String(slab.sequence[index]),
    };
  }

  #corruption(kind: string, slab: Slab, index: number, at: number, what: string): AstraError {
    const address = slab.objectAddress(index);
    return new AstraError(
      Code.DATA_LOSS,
      Errno.EUCLEAN,
      `${kind} at ${hex(at)} in object ${hex(address)} of cache ${this.name} (${
        this.#describe(slab, index)
      }): ${what}`,
      { argument: "address", facts: { ...this.#facts(slab, index, address), corrupted_at: hex(at) } },
    );
  }

  #move(slab: Slab, list: SlabList): void {
    this.#unlink(slab);
    this.#link(slab, list);
  }

  #link(slab: Slab, list: SlabList): void {
    const head = this.#heads[list];
    slab.list = list;
    slab.prev = null;
    slab.next = head;
    if (head) head.prev = slab;
    this.#heads[list] = slab;
    this.#counts[list]++;
  }

  #unlink(slab: Slab): void {
    if (slab.prev) slab.prev.next = slab.next;
    else this.#heads[slab.list] = slab.next;
    if (slab.next) slab.next.prev = slab.prev;
    slab.prev = slab.next = null;
    this.#counts[slab.list]--;
  }
}

function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

// The smallest slab that holds MIN_OBJECTS_PER_SLAB slots; for slots too big for that, the
// order that wastes the least of the slab.
function chooseSlabOrder(slotSize: number): { order: number; objects: number } {
  let best = { order: -1, objects: 0, waste: Infinity };
  for (let order = 0; order <= MAX_ORDER; order++) {
    const bytes = PAGE_SIZE << order;
    const objects = Math.floor(bytes / slotSize);
    if (objects >= MIN_OBJECTS_PER_SLAB) return { order, objects };
    const waste = (bytes - objects * slotSize) / bytes;
    if (objects > 0 && waste < best.waste) best = { order, objects, waste };
  }
  if (best.order < 0) {
    throw new AstraError(
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      `a slot of ${slotSize} bytes does not fit the largest slab (${PAGE_SIZE << MAX_ORDER} bytes)`,
      { argument: "object_size" },
    );
  }
  return { order: best.order, objects: best.objects };
}
