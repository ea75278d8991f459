// vmm's hashed page table: the table in guest physical memory (allocated from pmm) that the
// machine's MMU walks. vmm is its only writer, as the hypervisor is on a pseries machine: it puts
// an entry in the primary PTEG of the page, or in the secondary one (H set) when the primary is
// full, and when both are full it evicts an entry that is not bolted and says which page lost its
// translation so that the TLBs can be shot down. The table is a cache of the address spaces' page
// tables: an evicted page simply faults again and is re-entered.
//
// An index (VSID → page → slot) and a shadow of every entry mean no operation ever scans or reads
// the table; each changed entry is written whole (16 big-endian bytes) through the writer, which
// in the embedded system writes guest memory directly and in the distributed one batches the
// writes into the machine's next message.
import { invalidArgument, resourceExhausted } from "../../lib/errors.ts";
import {
  abbreviatedVpn,
  encodeHpte,
  encodePageSize,
  encodePartitionTableEntry,
  HPTE_BYTES,
  HPTE_SW_BOLTED,
  HPTES_PER_GROUP,
  htabBytes,
  isSupportedPageShift,
  type PageShift,
  primaryHash,
  PTEG_BYTES,
  ptegIndex,
  SEGMENT_1T,
  SEGMENT_256M,
  segmentShift,
  type SegmentSize,
  vsidLimit,
  WIMG_MEMORY,
} from "../../lib/ppc/hpt.ts";

/** Where the table's bytes go: guest physical memory, directly or through the machine service. */
export interface HptWriter {
  write(address: number, bytes: Uint8Array): void;
}

/** One page to translate. */
export interface HpteMapping {
  /** The address-space context the entry serves; reported back when the entry is evicted. */
  owner: number;
  vsid: number;
  segmentSize: SegmentSize;
  /** The page's first effective address. */
  ea: number;
  /** The page size, which is also the segment's base page size. */
  pageShift: PageShift;
  /** The page's real address, aligned to the page size. */
  realAddress: number;
  /** pp0||pp1:2. */
  pp: number;
  noExecute: boolean;
  /** Storage attributes; ordinary coherent memory when absent. */
  wimg?: number;
  /** Virtual page class key; 0 when absent. */
  key?: number;
  /** Never evicted (for entries that must always translate). */
  bolted?: boolean;
}

/** A translation the table no longer holds. */
export interface RemovedEntry {
  owner: number;
  vsid: number;
  ea: number;
  pageShift: PageShift;
}

export interface HpteInsertResult {
  /** Index of the entry in the table (PTEG index * 8 + position). */
  slot: number;
  /** Real address of the entry. */
  address: number;
  secondary: boolean;
  /** An entry for the same page existed and was rewritten in place. */
  replaced: boolean;
  /** The entry displaced to make room, if both PTEGs were full. */
  evicted: RemovedEntry | null;
}

export interface HpteLocation {
  slot: number;
  address: number;
  secondary: boolean;
  owner: number;
  pageShift: PageShift;
  realAddress: number;
  bolted: boolean;
}

export interface HashPageTableStatistics {
  entries: number;
  capacity: number;
  inserts: number;
  replacements: number;
  secondaryInserts: number;
  evictions: number;
  removals: number;
}

const OCCUPIED = 1;
const BOLTED = 2;
const SECONDARY = 4;
const KEY_GRANULE = 4096;

/** The pages one VSID has in the table, keyed by segment offset / 4096. */
interface VsidPages {
  segmentSize: SegmentSize;
  /** A segment has one base page size, and every entry of it is of that size. */
  pageShift: PageShift;
  slots: Map<number, number>;
}

export class HashPageTable {
  readonly origin: number;
  readonly sizeField: number;
  readonly bytes: number;
  /** Number of HPTE slots. */
  readonly capacity: number;
  private readonly groups: number;
  private readonly shadow: Uint8Array;
  private readonly slotFlags: Uint8Array;
  private readonly slotOwner: Int32Array;
  private readonly slotVsid: Float64Array;
  private readonly slotEa: Float64Array;
  private readonly slotKey: Float64Array;
  private readonly slotPageShift: Uint8Array;
  private readonly slotReal: Float64Array;
  private readonly index = new Map<number, VsidPages>();
  private victimCursor = 0;
  private readonly counters = { inserts: 0, replacements: 0, secondaryInserts: 0, evictions: 0, removals: 0 };
  private entries = 0;

  /**
   * A table of 2^(18 + sizeField) bytes at real address `origin` (aligned to its size). The
   * memory is assumed to hold zeros (invalid entries); call clear() when it may not.
   */
  constructor(config: { origin: number; sizeField: number }, private readonly writer: HptWriter) {
    let bytes: number;
    try {
      bytes = htabBytes(config.sizeField);
    } catch (error) {
      throw invalidArgument("sizeField", (error as Error).message);
    }
    if (!Number.isSafeInteger(config.origin) || config.origin < 0 || config.origin % bytes !== 0) {
      throw invalidArgument(
        "origin",
        `HTABORG 0x${config.origin.toString(16)} is not aligned to the table size ${bytes}`,
      );
    }
    this.origin = config.origin;
    this.sizeField = config.sizeField;
    this.bytes = bytes;
    this.groups = bytes / PTEG_BYTES;
    this.capacity = bytes / HPTE_BYTES;
    this.shadow = new Uint8Array(bytes);
    this.slotFlags = new Uint8Array(this.capacity);
    this.slotOwner = new Int32Array(this.capacity);
    this.slotVsid = new Float64Array(this.capacity);
    this.slotEa = new Float64Array(this.capacity);
    this.slotKey = new Float64Array(this.capacity);
    this.slotPageShift = new Uint8Array(this.capacity);
    this.slotReal = new Float64Array(this.capacity);
  }

  /** The partition-table entry's first doubleword that points an MMU at this table (8 bytes). */
  partitionTableEntry(): Uint8Array {
    const bytes = new Uint8Array(8);
    encodePartitionTableEntry({ origin: this.origin, sizeField: this.sizeField, vrmaPageSize: 0 }, bytes);
    return bytes;
  }

  get size(): number {
    return this.entries;
  }

  get statistics(): HashPageTableStatistics {
    return { entries: this.entries, capacity: this.capacity, ...this.counters };
  }

  /** Invalidates every entry, writing the whole table. */
  clear(): void {
    this.shadow.fill(0);
    this.slotFlags.fill(0);
    this.index.clear();
    this.entries = 0;
    const chunk = 1 << 16;
    for (let offset = 0; offset < this.bytes; offset += chunk) {
      this.writer.write(this.origin + offset, new Uint8Array(Math.min(chunk, this.bytes - offset)));
    }
  }

  /**
   * Enters a translation. An entry for the same page is rewritten in place; otherwise the entry
   * goes into a free slot of the primary PTEG, else of the secondary one, else it evicts a
   * non-bolted entry of either. Throws RESOURCE_EXHAUSTED if all sixteen slots are bolted.
   */
  insert(mapping: HpteMapping): HpteInsertResult {
    const { large, arpn } = checkMapping(mapping);
    const segmentBytes = 2 ** segmentShift(mapping.segmentSize);
    const offset = mapping.ea % segmentBytes;
    const key = offset / KEY_GRANULE;
    const pages = this.index.get(mapping.vsid);
    if (pages && pages.segmentSize !== mapping.segmentSize) {
      throw invalidArgument(
        "segmentSize",
        `VSID ${mapping.vsid} is already used by a segment of the other size`,
      );
    }
    if (pages && pages.pageShift !== mapping.pageShift) {
      throw invalidArgument(
        "pageShift",
        `VSID ${mapping.vsid} already has 2^${pages.pageShift}-byte pages, not 2^${mapping.pageShift}`,
      );
    }
    const hash = primaryHash(mapping.vsid, mapping.segmentSize, Math.floor(offset / 2 ** mapping.pageShift));

    let slot = pages?.slots.get(key) ?? -1;
    let secondary: boolean;
    let replaced = false;
    let evicted: RemovedEntry | null = null;
    if (slot >= 0) {
      replaced = true;
      secondary = (this.slotFlags[slot] & SECONDARY) !== 0;
      this.counters.replacements++;
    } else {
      const primaryGroup = ptegIndex(hash, false, this.sizeField);
      const secondaryGroup = ptegIndex(hash, true, this.sizeField);
      slot = this.freeSlot(primaryGroup);
      secondary = false;
      if (slot < 0) {
        slot = this.freeSlot(secondaryGroup);
        secondary = slot >= 0;
      }
      if (slot < 0) {
        slot = this.victim(primaryGroup, secondaryGroup);
        secondary = Math.floor(slot / HPTES_PER_GROUP) === secondaryGroup;
        evicted = this.forget(slot);
        this.counters.evictions++;
      }
      if (secondary) this.counters.secondaryInserts++;
      this.counters.inserts++;
      this.entries++;
      this.remember(slot, mapping, key);
    }

    this.slotFlags[slot] = OCCUPIED | (mapping.bolted ? BOLTED : 0) | (secondary ? SECONDARY : 0);
    this.slotOwner[slot] = mapping.owner;
    this.slotEa[slot] = mapping.ea;
    this.slotPageShift[slot] = mapping.pageShift;
    this.slotReal[slot] = mapping.realAddress;
    encodeHpte(
      {
        valid: true,
        avpn: abbreviatedVpn(mapping.vsid, mapping.segmentSize, offset, mapping.pageShift),
        software: mapping.bolted ? HPTE_SW_BOLTED : 0,
        large,
        secondary,
        segmentSize: mapping.segmentSize,
        arpn,
        pp: mapping.pp,
        key: mapping.key ?? 0,
        referenced: false,
        changed: false,
        wimg: mapping.wimg ?? WIMG_MEMORY,
        noExecute: mapping.noExecute,
      },
      this.shadow,
      slot * HPTE_BYTES,
    );
    this.flush(slot);
    return { slot, address: this.addressOf(slot), secondary, replaced, evicted };
  }

  /**
   * Rewrites the protection of a page's entry, if the table holds one; returns whether it did. R
   * and C restart clear (the caller invalidates the TLB for the page, as after any change).
   */
  updateProtection(vsid: number, ea: number, pp: number, noExecute: boolean): boolean {
    if (!Number.isInteger(pp) || pp < 0 || pp > 7) {
      throw invalidArgument("pp", `PP ${pp} is not a 3-bit value`);
    }
    const slot = this.slotOf(vsid, ea);
    if (slot < 0) return false;
    const at = slot * HPTE_BYTES;
    const shadow = this.shadow;
    // pp0 is the top bit of byte 8; N and pp1:2 the low three bits of byte 15; R (byte 14) and C
    // (byte 15) are cleared.
    shadow[at + 8] = (shadow[at + 8] & 0x7f) | ((pp >> 2) << 7);
    shadow[at + 14] &= ~0x01;
    shadow[at + 15] = (shadow[at + 15] & 0x78) | (noExecute ? 4 : 0) | (pp & 3);
    this.flush(slot);
    return true;
  }

  /** Removes a page's entry, if the table holds one, and returns what it translated. */
  remove(vsid: number, ea: number): RemovedEntry | null {
    const slot = this.slotOf(vsid, ea);
    if (slot < 0) return null;
    const removed = this.forget(slot);
    this.shadow.fill(0, slot * HPTE_BYTES, (slot + 1) * HPTE_BYTES);
    this.flush(slot);
    this.counters.removals++;
    return removed;
  }

  /** Removes every entry of a VSID (its segment went away). */
  removeSegment(vsid: number): RemovedEntry[] {
    const pages = this.index.get(vsid);
    if (!pages) return [];
    const removed: RemovedEntry[] = [];
    for (const slot of [...pages.slots.values()]) {
      removed.push(this.forget(slot));
      this.shadow.fill(0, slot * HPTE_BYTES, (slot + 1) * HPTE_BYTES);
      this.flush(slot);
      this.counters.removals++;
    }
    return removed;
  }

  /** Where a page's entry is, or null if the table holds none. */
  lookup(vsid: number, ea: number): HpteLocation | null {
    const slot = this.slotOf(vsid, ea);
    if (slot < 0) return null;
    const flags = this.slotFlags[slot];
    return {
      slot,
      address: this.addressOf(slot),
      secondary: (flags & SECONDARY) !== 0,
      owner: this.slotOwner[slot],
      pageShift: this.slotPageShift[slot] as PageShift,
      realAddress: this.slotReal[slot],
      bolted: (flags & BOLTED) !== 0,
    };
  }

  /** The 16 bytes vmm last wrote for a slot (the MMU may since have set R or C in memory). */
  entryBytes(slot: number): Uint8Array {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.capacity) {
      throw invalidArgument("slot", `slot ${slot} is outside the table's ${this.capacity} entries`);
    }
    return this.shadow.slice(slot * HPTE_BYTES, (slot + 1) * HPTE_BYTES);
  }

  private addressOf(slot: number): number {
    return this.origin + slot * HPTE_BYTES;
  }

  private slotOf(vsid: number, ea: number): number {
    const pages = this.index.get(vsid);
    if (!pages) return -1;
    const offset = ea % 2 ** segmentShift(pages.segmentSize);
    return pages.slots.get(offset / KEY_GRANULE) ?? -1;
  }

  private freeSlot(group: number): number {
    const first = group * HPTES_PER_GROUP;
    for (let slot = first; slot < first + HPTES_PER_GROUP; slot++) {
      if ((this.slotFlags[slot] & OCCUPIED) === 0) return slot;
    }
    return -1;
  }

  /** Round robin over the sixteen candidate slots, skipping bolted ones. */
  private victim(primaryGroup: number, secondaryGroup: number): number {
    for (let tries = 0; tries < 2 * HPTES_PER_GROUP; tries++) {
      const position = this.victimCursor++ % (2 * HPTES_PER_GROUP);
      const group = position < HPTES_PER_GROUP ? primaryGroup : secondaryGroup;
      const slot = group * HPTES_PER_GROUP + (position % HPTES_PER_GROUP);
      if ((this.slotFlags[slot] & BOLTED) === 0) return slot;
    }
    throw resourceExhausted(
      "hashed page table: both PTEGs of the page hold only bolted entries",
      { primaryGroup: String(primaryGroup), secondaryGroup: String(secondaryGroup) },
    );
  }

  private remember(slot: number, mapping: HpteMapping, key: number): void {
    let pages = this.index.get(mapping.vsid);
    if (!pages) {
      pages = { segmentSize: mapping.segmentSize, pageShift: mapping.pageShift, slots: new Map() };
      this.index.set(mapping.vsid, pages);
    }
    pages.slots.set(key, slot);
    this.slotVsid[slot] = mapping.vsid;
    this.slotKey[slot] = key;
  }

  /** Drops a slot from the index and returns what it translated. */
  private forget(slot: number): RemovedEntry {
    const vsid = this.slotVsid[slot];
    const pages = this.index.get(vsid);
    if (pages) {
      pages.slots.delete(this.slotKey[slot]);
      if (pages.slots.size === 0) this.index.delete(vsid);
    }
    this.slotFlags[slot] = 0;
    this.entries--;
    return {
      owner: this.slotOwner[slot],
      vsid,
      ea: this.slotEa[slot],
      pageShift: this.slotPageShift[slot] as PageShift,
    };
  }

  private flush(slot: number): void {
    const at = slot * HPTE_BYTES;
    this.writer.write(this.addressOf(slot), this.shadow.slice(at, at + HPTE_BYTES));
  }
}

function checkMapping(mapping: HpteMapping): { large: boolean; arpn: number } {
  if (!Number.isInteger(mapping.owner) || mapping.owner < 0 || mapping.owner > 0x7fffffff) {
    throw invalidArgument("owner", `owner context ${mapping.owner} is not a non-negative 31-bit integer`);
  }
  if (mapping.segmentSize !== SEGMENT_256M && mapping.segmentSize !== SEGMENT_1T) {
    throw invalidArgument("segmentSize", `segment size ${mapping.segmentSize} is not 0 (256 MB) or 1 (1 TB)`);
  }
  const limit = vsidLimit(mapping.segmentSize);
  if (!Number.isInteger(mapping.vsid) || mapping.vsid < 0 || mapping.vsid >= limit) {
    throw invalidArgument(
      "vsid",
      `VSID ${mapping.vsid} does not fit the segment size's ${Math.log2(limit)} bits`,
    );
  }
  if (!isSupportedPageShift(mapping.pageShift)) {
    throw invalidArgument("pageShift", `page shift ${mapping.pageShift} is not 12, 16 or 24`);
  }
  if (!Number.isSafeInteger(mapping.ea) || mapping.ea < 0 || mapping.ea % 2 ** mapping.pageShift !== 0) {
    throw invalidArgument("ea", `effective address ${mapping.ea} is not a page-aligned address below 2^53`);
  }
  if (!Number.isInteger(mapping.pp) || mapping.pp < 0 || mapping.pp > 7) {
    throw invalidArgument("pp", `PP ${mapping.pp} is not a 3-bit value`);
  }
  const wimg = mapping.wimg ?? WIMG_MEMORY;
  if (!Number.isInteger(wimg) || wimg < 0 || wimg > 15) {
    throw invalidArgument("wimg", `WIMG ${wimg} is not a 4-bit value`);
  }
  const key = mapping.key ?? 0;
  if (!Number.isInteger(key) || key < 0 || key > 31) {
    throw invalidArgument("key", `key ${key} is not a 5-bit value`);
  }
  try {
    return encodePageSize(mapping.pageShift, mapping.pageShift, mapping.realAddress);
  } catch (error) {
    throw invalidArgument("realAddress", (error as Error).message);
  }
}
