// The machine's MMU for problem-state accesses: segment lookaside buffers (one per address-space
// context, loaded by vmm), a software TLB in front of the hashed page table that vmm keeps in
// guest physical memory, and the table walk a TLB miss performs, exactly as Power ISA 3.0 hardware
// does it: primary then secondary PTEG, match on V, H, AVPN and B, PP/key/N/G protection, R set
// on every access and C on a store — written back into the HPTE in memory.
//
// A translation that fails returns TRANSLATION_FAULT and leaves a fault description on the
// translator (the data or instruction storage/segment interrupt the hardware would raise); it
// never throws. The TLB-hit path allocates nothing.
import {
  abbreviatedVpn,
  ACCESS_EXECUTE,
  ACCESS_WRITE,
  type AccessKind,
  decodePageShift,
  DSISR_ISSTORE,
  DSISR_NOHPTE,
  DSISR_PROTFAULT,
  HPTE_BYTES,
  HPTE_C_BIT,
  HPTE_C_BYTE,
  HPTE_R_BIT,
  HPTE_R_BYTE,
  hptePermissions,
  HPTES_PER_GROUP,
  htabBytes,
  isSupportedPageShift,
  pageRealAddress,
  type PartitionTableEntry,
  PERM_WRITE,
  primaryHash,
  PTEG_BYTES,
  ptegAddress,
  readWordBE,
  SEGMENT_1T,
  SEGMENT_256M,
  SEGMENT_SHIFT_1T,
  SEGMENT_SHIFT_256M,
  type SlbEntry,
  SRR1_ISI_N_G_OR_CIP,
  SRR1_ISI_NOPT,
  SRR1_ISI_PROT,
  vsidLimit,
  WIMG_GUARDED,
} from "../../lib/ppc/hpt.ts";

/** Guest physical memory as the walker needs it; PhysicalMemory satisfies it. */
export interface PhysicalAccess {
  read(address: number, length: number): Uint8Array;
  write(address: number, bytes: Uint8Array): void;
}

/** What translate() returns when the access cannot be performed. */
export const TRANSLATION_FAULT = -1;

export type StorageInterrupt =
  | "data-storage"
  | "instruction-storage"
  | "data-segment"
  | "instruction-segment";

/**
 * Why a translation failed: no SLB entry for the segment, no HPTE for the page, or an HPTE that
 * does not allow the access.
 */
export type MmuFaultCause = "no-segment" | "not-mapped" | "protection";

export type AccessName = "read" | "write" | "execute";

export interface MmuFault {
  readonly context: number;
  readonly interrupt: StorageInterrupt;
  /** The faulting effective address (DAR, or SRR0 for an instruction fetch). */
  readonly address: number;
  readonly access: AccessName;
  readonly cause: MmuFaultCause;
  /** DSISR for a data storage interrupt, the SRR1 status bits for an instruction storage interrupt, else 0. */
  readonly status: number;
}

export interface MmuOptions {
  /** Entries of the direct-mapped software TLB (a power of two); each maps one 4 KiB page. */
  tlbEntries?: number;
}

export interface MmuStatistics {
  /** Table walks (TLB misses). */
  walks: number;
  faults: number;
  /** HPTE byte updates that set R or C. */
  referenceChangeUpdates: number;
}

const DEFAULT_TLB_ENTRIES = 4096;
const TLB_PAGE_BYTES = 4096;
const TWO_32 = 4294967296;
const ACCESS_NAMES: readonly AccessName[] = ["read", "write", "execute"];
const EMPTY = -1;

/** The SLB of one address-space context, keyed by ESID for each segment size. */
class SegmentTable {
  readonly segments256M = new Map<number, SlbEntry>();
  readonly segments1T = new Map<number, SlbEntry>();

  lookup(ea: number): SlbEntry | undefined {
    return this.segments256M.get(Math.floor(ea / 2 ** SEGMENT_SHIFT_256M)) ??
      this.segments1T.get(Math.floor(ea / 2 ** SEGMENT_SHIFT_1T));
  }
}

/** The TLB's columns: entry i maps 4 KiB page `page[i]` of `context[i]` to `real[i]`. */
class TlbArrays {
  readonly page: Float64Array;
  readonly context: Int32Array;
  readonly vsid: Float64Array;
  readonly real: Float64Array;
  readonly permissions: Uint8Array;
  readonly mask: number;

  constructor(entries: number) {
    this.page = new Float64Array(entries).fill(EMPTY);
    this.context = new Int32Array(entries);
    this.vsid = new Float64Array(entries);
    this.real = new Float64Array(entries);
    this.permissions = new Uint8Array(entries);
    this.mask = entries - 1;
  }
}

/** A context's tag mixed into TLB indices so that processes with the same layout do not collide. */
function contextSalt(context: number): number {
  return Math.imul(context, 0x9e3779b1);
}

/** The TLB slot of a 4 KiB page number (below 2^41) in the context with salt `salt`. */
function tlbSlot(page: number, salt: number, mask: number): number {
  return (page ^ salt) & mask;
}

/**
 * Translation for one address-space context (one per process; a CPU uses the one of the thread
 * it runs). translate() is the load/store/fetch path.
 */
export class AddressTranslator {
  /** The last failure, valid after translate() returned TRANSLATION_FAULT. */
  fault: MmuFault | null = null;
  private readonly salt: number;
  private readonly tlbPage: Float64Array;
  private readonly tlbContext: Int32Array;
  private readonly tlbReal: Float64Array;
  private readonly tlbPermissions: Uint8Array;
  private readonly tlbMask: number;

  constructor(private readonly mmu: Mmu, readonly context: number, tlb: TlbArrays) {
    this.salt = contextSalt(context);
    this.tlbPage = tlb.page;
    this.tlbContext = tlb.context;
    this.tlbReal = tlb.real;
    this.tlbPermissions = tlb.permissions;
    this.tlbMask = tlb.mask;
  }

  /**
   * The real address of effective address `ea` (an integer below 2^53) for an access of kind
   * `access`, or TRANSLATION_FAULT with `fault` describing the interrupt.
   */
  translate(ea: number, access: AccessKind): number {
    const page = Math.floor(ea / TLB_PAGE_BYTES);
    const slot = tlbSlot(page, this.salt, this.tlbMask);
    if (
      this.tlbPage[slot] === page && this.tlbContext[slot] === this.context &&
      (this.tlbPermissions[slot] & (1 << access)) !== 0
    ) {
      return this.tlbReal[slot] + (ea - page * TLB_PAGE_BYTES);
    }
    return this.mmu.walk(this, ea, access);
  }

  /** TLB slot of a page in this context. */
  slotOf(page: number): number {
    return tlbSlot(page, this.salt, this.tlbMask);
  }
}

export class Mmu {
  private readonly tlb: TlbArrays;
  private readonly contexts = new Map<number, SegmentTable>();
  private readonly translators = new Map<number, AddressTranslator>();
  private origin = 0;
  private sizeField = 0;
  private tableValid = false;
  readonly statistics: MmuStatistics = { walks: 0, faults: 0, referenceChangeUpdates: 0 };

  constructor(private readonly memory: PhysicalAccess, options: MmuOptions = {}) {
    const entries = options.tlbEntries ?? DEFAULT_TLB_ENTRIES;
    if (!Number.isInteger(entries) || entries < 1 || entries > 1 << 24 || (entries & (entries - 1)) !== 0) {
      throw new RangeError(`TLB size ${entries} is not a power of two between 1 and 2^24`);
    }
    this.tlb = new TlbArrays(entries);
  }

  /** Points the MMU at a hashed page table (HTABORG, HTABSIZE) and flushes the TLB. */
  setHashTable(origin: number, sizeField: number): void {
    const bytes = htabBytes(sizeField);
    if (!Number.isSafeInteger(origin) || origin < 0 || origin % bytes !== 0) {
      throw new RangeError(`HTABORG 0x${origin.toString(16)} is not aligned to the table size ${bytes}`);
    }
    this.origin = origin;
    this.sizeField = sizeField;
    this.tableValid = true;
    this.invalidateAll();
  }

  /** Takes HTABORG/HTABSIZE from a decoded partition-table entry (hashed translation only). */
  setPartitionTableEntry(entry: PartitionTableEntry): void {
    if (entry.radix) {
      throw new RangeError(
        "the partition-table entry selects radix translation; this MMU walks a hashed page table",
      );
    }
    this.setHashTable(entry.origin, entry.sizeField);
  }

  /** The table in use, or null before one is set. */
  get hashTable(): { origin: number; sizeField: number } | null {
    return this.tableValid ? { origin: this.origin, sizeField: this.sizeField } : null;
  }

  /**
   * Loads an SLB entry for a context (slbmte). An entry for the same ESID and segment size is
   * replaced, and the TLB entries it translated are flushed.
   */
  installSegment(context: number, entry: SlbEntry): void {
    checkContext(context);
    checkSlbEntry(entry);
    let table = this.contexts.get(context);
    if (!table) {
      table = new SegmentTable();
      this.contexts.set(context, table);
    }
    const map = entry.segmentSize === SEGMENT_1T ? table.segments1T : table.segments256M;
    const previous = map.get(entry.esid);
    map.set(entry.esid, { ...entry });
    if (previous) this.invalidateSegmentOf(context, previous);
  }

  /** Removes an SLB entry (slbie) and the TLB entries it translated. */
  removeSegment(context: number, esid: number, segmentSize: SlbEntry["segmentSize"]): boolean {
    const table = this.contexts.get(context);
    const map = segmentSize === SEGMENT_1T ? table?.segments1T : table?.segments256M;
    const previous = map?.get(esid);
    if (!map || !previous) return false;
    map.delete(esid);
    this.invalidateSegmentOf(context, previous);
    return true;
  }

  /** The SLB of a context. */
  segments(context: number): SlbEntry[] {
    const table = this.contexts.get(context);
    if (!table) return [];
    return [...table.segments256M.values(), ...table.segments1T.values()].map((e) => ({ ...e }));
  }

  /** Forgets a context: its SLB and its TLB entries (the address space was destroyed). */
  removeContext(context: number): void {
    this.contexts.delete(context);
    this.translators.delete(context);
    this.invalidateContext(context);
  }

  /** The translator of a context; the same object for every call with the same context. */
  translator(context: number): AddressTranslator {
    checkContext(context);
    let translator = this.translators.get(context);
    if (!translator) {
      translator = new AddressTranslator(this, context, this.tlb);
      this.translators.set(context, translator);
    }
    return translator;
  }

  /** translate() of the context's translator; the fault, if any, is left on the translator. */
  translate(context: number, ea: number, access: AccessKind): number {
    return this.translator(context).translate(ea, access);
  }

  /** Flushes the TLB entries of [ea, ea + bytes) in a context (tlbie for one page of any size). */
  invalidatePage(context: number, ea: number, bytes = TLB_PAGE_BYTES): void {
    const salt = contextSalt(context);
    const first = Math.floor(ea / TLB_PAGE_BYTES);
    const last = Math.floor((ea + Math.max(bytes, 1) - 1) / TLB_PAGE_BYTES);
    const tlb = this.tlb;
    if (last - first > tlb.mask) {
      this.invalidateContext(context);
      return;
    }
    for (let page = first; page <= last; page++) {
      const slot = tlbSlot(page, salt, tlb.mask);
      if (tlb.page[slot] === page && tlb.context[slot] === context) tlb.page[slot] = EMPTY;
    }
  }

  /** Flushes every TLB entry of a context. */
  invalidateContext(context: number): void {
    const tlb = this.tlb;
    for (let slot = 0; slot <= tlb.mask; slot++) {
      if (tlb.context[slot] === context) tlb.page[slot] = EMPTY;
    }
  }

  /** Flushes every TLB entry translating through a VSID, whatever context loaded it; returns how many. */
  invalidateVsid(vsid: number): number {
    const tlb = this.tlb;
    let dropped = 0;
    for (let slot = 0; slot <= tlb.mask; slot++) {
      if (tlb.page[slot] !== EMPTY && tlb.vsid[slot] === vsid) {
        tlb.page[slot] = EMPTY;
        dropped++;
      }
    }
    return dropped;
  }

  /**
   * Flushes the TLB entries of [ea, ea + bytes) translated through a VSID, in whichever context
   * (tlbie with a virtual address: the page is named by its segment, not by a process); returns
   * how many.
   */
  invalidateVirtualPage(vsid: number, ea: number, bytes = TLB_PAGE_BYTES): number {
    const tlb = this.tlb;
    const first = Math.floor(ea / TLB_PAGE_BYTES);
    const last = Math.floor((ea + Math.max(bytes, 1) - 1) / TLB_PAGE_BYTES);
    let dropped = 0;
    if ((last - first + 1) * this.translators.size > tlb.mask) {
      for (let slot = 0; slot <= tlb.mask; slot++) {
        const page = tlb.page[slot];
        if (page !== EMPTY && page >= first && page <= last && tlb.vsid[slot] === vsid) {
          tlb.page[slot] = EMPTY;
          dropped++;
        }
      }
      return dropped;
    }
    for (const translator of this.translators.values()) {
      for (let page = first; page <= last; page++) {
        const slot = translator.slotOf(page);
        if (tlb.page[slot] === page && tlb.context[slot] === translator.context && tlb.vsid[slot] === vsid) {
          tlb.page[slot] = EMPTY;
          dropped++;
        }
      }
    }
    return dropped;
  }

  /** Flushes the whole TLB (tlbia); returns how many entries were valid. */
  invalidateAll(): number {
    let valid = 0;
    for (let slot = 0; slot <= this.tlb.mask; slot++) if (this.tlb.page[slot] !== EMPTY) valid++;
    this.tlb.page.fill(EMPTY);
    return valid;
  }

  private invalidateSegmentOf(context: number, entry: SlbEntry): void {
    const tlb = this.tlb;
    for (let slot = 0; slot <= tlb.mask; slot++) {
      if (tlb.page[slot] !== EMPTY && tlb.context[slot] === context && tlb.vsid[slot] === entry.vsid) {
        tlb.page[slot] = EMPTY;
      }
    }
  }

  /** The TLB-miss path: SLB lookup, PTEG search, protection, R/C update, TLB fill. */
  walk(translator: AddressTranslator, ea: number, access: AccessKind): number {
    this.statistics.walks++;
    const context = translator.context;
    const segment = this.contexts.get(context)?.lookup(ea);
    if (!segment) return this.fail(translator, ea, access, "no-segment", 0);
    if (access === ACCESS_EXECUTE && segment.noExecute) {
      return this.fail(translator, ea, access, "protection", SRR1_ISI_N_G_OR_CIP);
    }
    if (!this.tableValid) return this.fail(translator, ea, access, "not-mapped", notMappedStatus(access));

    const segmentBytes = 2 ** (segment.segmentSize === SEGMENT_1T ? SEGMENT_SHIFT_1T : SEGMENT_SHIFT_256M);
    const offset = ea - segment.esid * segmentBytes;
    const basePageShift = segment.basePageShift;
    const hash = primaryHash(segment.vsid, segment.segmentSize, Math.floor(offset / 2 ** basePageShift));
    const avpn = abbreviatedVpn(segment.vsid, segment.segmentSize, offset, basePageShift);

    for (let secondary = 0; secondary < 2; secondary++) {
      const group = ptegAddress(this.origin, this.sizeField, hash, secondary === 1);
      const bytes = this.memory.read(group, PTEG_BYTES);
      for (let i = 0; i < HPTES_PER_GROUP; i++) {
        const at = i * HPTE_BYTES;
        const v1 = readWordBE(bytes, at + 4);
        if ((v1 & 1) === 0 || ((v1 >>> 1) & 1) !== secondary) continue;
        const v0 = readWordBE(bytes, at);
        if (Math.floor(((v0 & 0xfffff) * TWO_32 + v1) / 128) !== avpn) continue;
        const r0 = readWordBE(bytes, at + 8);
        if (((r0 >>> 26) & 3) !== segment.segmentSize) continue;
        const r1 = readWordBE(bytes, at + 12);
        const arpn = (r0 & 0x1ffffff) * 2 ** 20 + (r1 >>> 12);
        const pageShift = decodePageShift(basePageShift, (v1 & 4) !== 0, arpn);
        // An entry whose page size is not valid in this segment does not match (ISA; QEMU).
        if (pageShift === 0) continue;
        return this.complete(translator, ea, access, segment, group + at, bytes, at, offset, arpn, pageShift);
      }
    }
    return this.fail(translator, ea, access, "not-mapped", notMappedStatus(access));
  }

  private complete(
    translator: AddressTranslator,
    ea: number,
    access: AccessKind,
    segment: SlbEntry,
    hpteAddress: number,
    bytes: Uint8Array,
    at: number,
    offset: number,
    arpn: number,
    pageShift: number,
  ): number {
    const r0 = readWordBE(bytes, at + 8);
    const r1 = readWordBE(bytes, at + 12);
    const pp = ((r0 >>> 31) << 2) | (r1 & 3);
    const wimg = (r1 >>> 3) & 0xf;
    const noExecute = (r1 & 4) !== 0;
    // Problem state: the Kp key applies.
    const permissions = hptePermissions(pp, segment.kp, noExecute, wimg, segment.noExecute);
    if ((permissions & (1 << access)) === 0) {
      let status: number;
      if (access === ACCESS_EXECUTE) {
        status = noExecute || (wimg & WIMG_GUARDED) !== 0 ? SRR1_ISI_N_G_OR_CIP : SRR1_ISI_PROT;
      } else {
        status = DSISR_PROTFAULT | (access === ACCESS_WRITE ? DSISR_ISSTORE : 0);
      }
      return this.fail(translator, ea, access, "protection", status);
    }

    // Hardware sets R and C with single-byte stores into the entry.
    const referenceByte = bytes[at + HPTE_R_BYTE];
    if ((referenceByte & HPTE_R_BIT) === 0) {
      this.memory.write(hpteAddress + HPTE_R_BYTE, Uint8Array.of(referenceByte | HPTE_R_BIT));
      this.statistics.referenceChangeUpdates++;
    }
    const changeByte = bytes[at + HPTE_C_BYTE];
    const changed = (changeByte & HPTE_C_BIT) !== 0;
    if (access === ACCESS_WRITE && !changed) {
      this.memory.write(hpteAddress + HPTE_C_BYTE, Uint8Array.of(changeByte | HPTE_C_BIT));
      this.statistics.referenceChangeUpdates++;
    }

    const withinPage = offset % 2 ** pageShift;
    const real = pageRealAddress(arpn, pageShift) + (withinPage - (withinPage % TLB_PAGE_BYTES));
    // Until C is set, a store must come back through the walk to set it.
    const cached = access === ACCESS_WRITE || changed ? permissions : permissions & ~PERM_WRITE;
    const page = Math.floor(ea / TLB_PAGE_BYTES);
    const slot = translator.slotOf(page);
    const tlb = this.tlb;
    tlb.page[slot] = page;
    tlb.context[slot] = translator.context;
    tlb.vsid[slot] = segment.vsid;
    tlb.real[slot] = real;
    tlb.permissions[slot] = cached;
    translator.fault = null;
    return real + (ea - page * TLB_PAGE_BYTES);
  }

  private fail(
    translator: AddressTranslator,
    ea: number,
    access: AccessKind,
    cause: MmuFaultCause,
    status: number,
  ): number {
    this.statistics.faults++;
    const instruction = access === ACCESS_EXECUTE;
    const interrupt: StorageInterrupt = cause === "no-segment"
      ? (instruction ? "instruction-segment" : "data-segment")
      : (instruction ? "instruction-storage" : "data-storage");
    translator.fault = {
      context: translator.context,
      interrupt,
      address: ea,
      access: ACCESS_NAMES[access],
      cause,
      status,
    };
    return TRANSLATION_FAULT;
  }
}

function notMappedStatus(access: AccessKind): number {
  if (access === ACCESS_EXECUTE) return SRR1_ISI_NOPT;
  return DSISR_NOHPTE | (access === ACCESS_WRITE ? DSISR_ISSTORE : 0);
}

function checkContext(context: number): void {
  if (!Number.isInteger(context) || context < 0 || context > 0x7fffffff) {
    throw new RangeError(`context ${context} is not a non-negative 31-bit integer`);
  }
}

function checkSlbEntry(entry: SlbEntry): void {
  if (entry.segmentSize !== SEGMENT_256M && entry.segmentSize !== SEGMENT_1T) {
    throw new RangeError(`segment size ${entry.segmentSize} is not 0 (256 MB) or 1 (1 TB)`);
  }
  const esidLimit = 2 ** (53 - (entry.segmentSize === SEGMENT_1T ? SEGMENT_SHIFT_1T : SEGMENT_SHIFT_256M));
  if (!Number.isInteger(entry.esid) || entry.esid < 0 || entry.esid >= esidLimit) {
    throw new RangeError(`ESID ${entry.esid} is outside the 2^53-byte effective address space`);
  }
  const limit = vsidLimit(entry.segmentSize);
  if (!Number.isInteger(entry.vsid) || entry.vsid < 0 || entry.vsid >= limit) {
    throw new RangeError(`VSID ${entry.vsid} does not fit the segment size's ${Math.log2(limit)} bits`);
  }
  if (!isSupportedPageShift(entry.basePageShift)) {
    throw new RangeError(`base page shift ${entry.basePageShift} is not 12, 16 or 24`);
  }
}
