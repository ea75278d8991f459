// The CPU's software TLB: effective pages mapped straight to host memory, for the inline fast path
// that translated code emits on every load and store. A CpuMemory that offers one (CpuMemory.tlb)
// installs an entry when its own slow path has translated a page (MMU walk, R and C bits done),
// and must flush entries whenever a translation changes (vmm invalidations, context switches).
//
// Entries are indexed by the effective address as the CPU holds it, in 32-bit halves: slot =
// (lo >>> 12) & mask, matched on both halves, so the check is a few integer operations. Each entry
// names a DataView over the host memory holding the page and the page's byte offset in it.
//
// Write entries and code: the CPU never leaves a write entry on a page that holds decoded or
// translated instructions (it revokes it when it decodes there), so every store to such a page
// takes the slow path, which invalidates the code. A memory therefore installs write entries only
// from its slow store path, which the CPU calls before it checks for code in the page.

export const TLB_PAGE_SHIFT = 12;
export const TLB_PAGE_BYTES = 1 << TLB_PAGE_SHIFT;
const EMPTY = -1;

export class SoftwareTlb {
  readonly mask: number;
  /** Effective address bits 32:51 of the page (lo >>> 12), or −1 for an empty slot. */
  readonly tagLo: Int32Array;
  /** Effective address bits 0:31 of the page. */
  readonly tagHi: Int32Array;
  /** 1 when stores may use the entry. */
  readonly writable: Uint8Array;
  /** The byte offset of the page in views[slot]. */
  readonly offset: Int32Array;
  readonly views: DataView[];

  constructor(readonly entries = 1024) {
    if (!Number.isInteger(entries) || entries < 1 || (entries & (entries - 1)) !== 0) {
      throw new RangeError(`TLB size ${entries} is not a power of two`);
    }
    this.mask = entries - 1;
    this.tagLo = new Int32Array(entries).fill(EMPTY);
    this.tagHi = new Int32Array(entries);
    this.writable = new Uint8Array(entries);
    this.offset = new Int32Array(entries);
    this.views = new Array<DataView>(entries).fill(new DataView(new ArrayBuffer(0)));
  }

  /** Maps the page holding effective address `address` to host memory at view[offset]. */
  install(address: number, view: DataView, offset: number, writable: boolean): void {
    const page = Math.floor(address / TLB_PAGE_BYTES);
    const lo = page % 0x100000, hi = Math.floor(page / 0x100000);
    const slot = lo & this.mask;
    this.tagLo[slot] = lo;
    this.tagHi[slot] = hi | 0;
    this.views[slot] = view;
    this.offset[slot] = offset;
    this.writable[slot] = writable ? 1 : 0;
  }

  /** Removes the entry of one effective page, if present; true if there was one. */
  flushPage(address: number): boolean {
    const slot = this.slotOf(address);
    if (slot < 0) return false;
    this.tagLo[slot] = EMPTY;
    return true;
  }

  /** Keeps the page readable through the TLB but sends its stores to the slow path. */
  revokeWrite(address: number): void {
    const slot = this.slotOf(address);
    if (slot >= 0) this.writable[slot] = 0;
  }

  /** Removes every entry; returns how many there were. */
  flush(): number {
    let valid = 0;
    for (let slot = 0; slot <= this.mask; slot++) if (this.tagLo[slot] !== EMPTY) valid++;
    this.tagLo.fill(EMPTY);
    this.writable.fill(0);
    return valid;
  }

  /** The slot holding the page of an address, or −1. */
  private slotOf(address: number): number {
    const page = Math.floor(address / TLB_PAGE_BYTES);
    const lo = page % 0x100000, hi = Math.floor(page / 0x100000) | 0;
    const slot = lo & this.mask;
    return this.tagLo[slot] === lo && this.tagHi[slot] === hi ? slot : -1;
  }
}
