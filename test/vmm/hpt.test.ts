// vmm's hashed page table writer against the machine's MMU walker, both on a real PhysicalMemory:
// what vmm enters is what the walk finds, with R and C set in memory, protection enforced, the
// secondary PTEG searched, and eviction and removal turned into faults once the TLB is shot down.
import { beforeEach, describe, expect, it } from "vitest";
import { AstraError, Code } from "../../lib/errors.ts";
import {
  ACCESS_EXECUTE,
  ACCESS_READ,
  ACCESS_WRITE,
  decodeHpte,
  DSISR_ISSTORE,
  DSISR_NOHPTE,
  DSISR_PROTFAULT,
  HPTE_BYTES,
  PAGE_SHIFT_16M,
  PAGE_SHIFT_4K,
  PAGE_SHIFT_64K,
  type PageShift,
  SEGMENT_1T,
  SEGMENT_256M,
  type SegmentSize,
  type SlbEntry,
  SRR1_ISI_N_G_OR_CIP,
  userPp,
} from "../../lib/ppc/hpt.ts";
import { firmwareMemoryMap, MIB } from "../../services/machine/firmware.ts";
import { PhysicalMemory } from "../../services/machine/memory.ts";
import { Mmu, TRANSLATION_FAULT } from "../../services/machine/mmu.ts";
import { HashPageTable, type HpteMapping } from "../../services/vmm/hpt.ts";

const HTAB_ORIGIN = 2 * MIB;
const CONTEXT = 7;
const VSID = 0x5a5a5;
const SEGMENT_EA = 0x1000_0000; // ESID 1

let memory: PhysicalMemory;
let hpt: HashPageTable;
let mmu: Mmu;

function segment(overrides: Partial<SlbEntry> = {}): SlbEntry {
  return {
    esid: 1,
    vsid: VSID,
    segmentSize: SEGMENT_256M,
    basePageShift: PAGE_SHIFT_4K,
    ks: true,
    kp: true,
    noExecute: false,
    ...overrides,
  };
}

function mapping(ea: number, realAddress: number, overrides: Partial<HpteMapping> = {}): HpteMapping {
  return {
    owner: CONTEXT,
    vsid: VSID,
    segmentSize: SEGMENT_256M,
    ea,
    pageShift: PAGE_SHIFT_4K,
    realAddress,
    pp: userPp(true),
    noExecute: false,
    ...overrides,
  };
}

/** EAs in the segment whose pages hash into the same PTEG pair (page indices 2048 apart). */
function collidingPages(count: number): number[] {
  return Array.from({ length: count }, (_, k) => SEGMENT_EA + (k * 2048 + 5) * 4096);
}

beforeEach(() => {
  memory = new PhysicalMemory(firmwareMemoryMap({ memoryBytes: 64 * MIB, numaNodes: 1 }));
  hpt = new HashPageTable({ origin: HTAB_ORIGIN, sizeField: 0 }, memory);
  mmu = new Mmu(memory, { tlbEntries: 256 });
  mmu.setHashTable(HTAB_ORIGIN, 0);
  mmu.installSegment(CONTEXT, segment());
});

describe("a page entered by vmm, walked by the MMU", () => {
  it("translates to the right real address and sets R, then C, in the entry in memory", () => {
    const inserted = hpt.insert(mapping(SEGMENT_EA + 0x5000, 0x800000));
    expect(inserted).toMatchObject({ secondary: false, replaced: false, evicted: null });
    const before = decodeHpte(memory.read(inserted.address, HPTE_BYTES));
    expect(before).toMatchObject({ valid: true, referenced: false, changed: false, arpn: 0x800 });

    expect(mmu.translate(CONTEXT, SEGMENT_EA + 0x5123, ACCESS_READ)).toBe(0x800123);
    expect(decodeHpte(memory.read(inserted.address, HPTE_BYTES))).toMatchObject({
      referenced: true,
      changed: false,
    });

    expect(mmu.translate(CONTEXT, SEGMENT_EA + 0x5ff8, ACCESS_WRITE)).toBe(0x800ff8);
    expect(decodeHpte(memory.read(inserted.address, HPTE_BYTES))).toMatchObject({
      referenced: true,
      changed: true,
    });
  });

  it("serves repeated accesses from the TLB, walking again only for the first store", () => {
    hpt.insert(mapping(SEGMENT_EA + 0x5000, 0x800000));
    mmu.translate(CONTEXT, SEGMENT_EA + 0x5000, ACCESS_READ);
    const walks = mmu.statistics.walks;
    expect(mmu.translate(CONTEXT, SEGMENT_EA + 0x5010, ACCESS_READ)).toBe(0x800010);
    expect(mmu.statistics.walks).toBe(walks);
    // C was clear: the TLB entry did not grant stores, so the first store walks to set C.
    mmu.translate(CONTEXT, SEGMENT_EA + 0x5010, ACCESS_WRITE);
    expect(mmu.statistics.walks).toBe(walks + 1);
    mmu.translate(CONTEXT, SEGMENT_EA + 0x5020, ACCESS_WRITE);
    expect(mmu.statistics.walks).toBe(walks + 1);
  });

  it("keeps contexts apart: the same EA in another context does not hit this context's TLB entry", () => {
    hpt.insert(mapping(SEGMENT_EA, 0x800000));
    expect(mmu.translate(CONTEXT, SEGMENT_EA, ACCESS_READ)).toBe(0x800000);
    const other = mmu.translator(CONTEXT + 1);
    expect(other.translate(SEGMENT_EA, ACCESS_READ)).toBe(TRANSLATION_FAULT);
    expect(other.fault).toMatchObject({
      interrupt: "data-segment",
      cause: "no-segment",
      address: SEGMENT_EA,
    });
  });
});

describe("protection", () => {
  it("refuses a store to a read-only page with a DSI naming a protection fault", () => {
    hpt.insert(mapping(SEGMENT_EA, 0x800000, { pp: userPp(false) }));
    expect(mmu.translate(CONTEXT, SEGMENT_EA + 8, ACCESS_READ)).toBe(0x800008);
    const translator = mmu.translator(CONTEXT);
    expect(translator.translate(SEGMENT_EA + 8, ACCESS_WRITE)).toBe(TRANSLATION_FAULT);
    expect(translator.fault).toEqual({
      context: CONTEXT,
      interrupt: "data-storage",
      address: SEGMENT_EA + 8,
      access: "write",
      cause: "protection",
      status: DSISR_PROTFAULT | DSISR_ISSTORE,
    });
    // The refused store did not mark the page changed.
    expect(decodeHpte(memory.read(hpt.lookup(VSID, SEGMENT_EA)!.address, HPTE_BYTES)).changed).toBe(false);
  });

  it("refuses fetches from a no-execute page and from a no-execute segment with an ISI", () => {
    hpt.insert(mapping(SEGMENT_EA, 0x800000, { noExecute: true }));
    const translator = mmu.translator(CONTEXT);
    expect(translator.translate(SEGMENT_EA, ACCESS_EXECUTE)).toBe(TRANSLATION_FAULT);
    expect(translator.fault).toMatchObject({
      interrupt: "instruction-storage",
      cause: "protection",
      status: SRR1_ISI_N_G_OR_CIP,
    });

    hpt.insert(mapping(SEGMENT_EA + 0x1000, 0x801000));
    expect(translator.translate(SEGMENT_EA + 0x1000, ACCESS_EXECUTE)).toBe(0x801000);
    mmu.installSegment(CONTEXT, segment({ noExecute: true }));
    expect(translator.translate(SEGMENT_EA + 0x1000, ACCESS_EXECUTE)).toBe(TRANSLATION_FAULT);
    expect(translator.fault).toMatchObject({ interrupt: "instruction-storage", cause: "protection" });
  });

  it("gives a problem-state access no authority to a PP 0 page (Kp = 1)", () => {
    hpt.insert(mapping(SEGMENT_EA, 0x800000, { pp: 0 }));
    expect(mmu.translate(CONTEXT, SEGMENT_EA, ACCESS_READ)).toBe(TRANSLATION_FAULT);
    mmu.installSegment(CONTEXT, segment({ kp: false }));
    expect(mmu.translate(CONTEXT, SEGMENT_EA, ACCESS_WRITE)).toBe(0x800000);
  });

  it("applies a protection update once the TLB entry is invalidated", () => {
    hpt.insert(mapping(SEGMENT_EA, 0x800000));
    expect(mmu.translate(CONTEXT, SEGMENT_EA, ACCESS_WRITE)).toBe(0x800000);
    expect(hpt.updateProtection(VSID, SEGMENT_EA, userPp(false), false)).toBe(true);
    // Until shot down, the stale TLB entry still grants the store: that is why vmm invalidates.
    expect(mmu.translate(CONTEXT, SEGMENT_EA, ACCESS_WRITE)).toBe(0x800000);
    mmu.invalidatePage(CONTEXT, SEGMENT_EA);
    expect(mmu.translate(CONTEXT, SEGMENT_EA, ACCESS_WRITE)).toBe(TRANSLATION_FAULT);
    expect(mmu.translate(CONTEXT, SEGMENT_EA, ACCESS_READ)).toBe(0x800000);
    expect(hpt.updateProtection(VSID, SEGMENT_EA + 0x1000, userPp(false), false)).toBe(false);
  });
});

describe("PTEG overflow", () => {
  it("puts the ninth colliding page in the secondary PTEG with H set, and the walk finds it", () => {
    const pages = collidingPages(9);
    const results = pages.map((ea, i) => hpt.insert(mapping(ea, 0x1000000 + i * 4096)));
    expect(results.slice(0, 8).every((r) => !r.secondary)).toBe(true);
    expect(new Set(results.slice(0, 8).map((r) => Math.floor(r.slot / 8))).size).toBe(1);
    expect(results[8].secondary).toBe(true);
    expect(Math.floor(results[8].slot / 8)).not.toBe(Math.floor(results[0].slot / 8));
    expect(decodeHpte(memory.read(results[8].address, HPTE_BYTES)).secondary).toBe(true);
    pages.forEach((ea, i) =>
      expect(mmu.translate(CONTEXT, ea + 4, ACCESS_READ)).toBe(0x1000000 + i * 4096 + 4)
    );
  });

  it("evicts a non-bolted entry when both PTEGs are full, and the evicted page faults once shot down", () => {
    const pages = collidingPages(17);
    pages.slice(0, 16).forEach((ea, i) => hpt.insert(mapping(ea, 0x1000000 + i * 4096, { bolted: i !== 3 })));
    for (const ea of pages.slice(0, 16)) {
      expect(mmu.translate(CONTEXT, ea, ACCESS_READ)).not.toBe(TRANSLATION_FAULT);
    }
    // These pages share one slot of the direct-mapped TLB: leave pages[3] in it.
    mmu.translate(CONTEXT, pages[3], ACCESS_READ);

    const result = hpt.insert(mapping(pages[16], 0x2000000));
    // Only entry 3 was not bolted: it is the victim.
    expect(result.evicted).toEqual({ owner: CONTEXT, vsid: VSID, ea: pages[3], pageShift: PAGE_SHIFT_4K });
    expect(hpt.lookup(VSID, pages[3])).toBeNull();
    // The TLB still holds the evicted translation until vmm's shootdown arrives.
    expect(mmu.translate(CONTEXT, pages[3], ACCESS_READ)).toBe(0x1000000 + 3 * 4096);
    mmu.invalidatePage(result.evicted!.owner, result.evicted!.ea, 4096);
    expect(mmu.translate(CONTEXT, pages[16], ACCESS_READ)).toBe(0x2000000);
    const translator = mmu.translator(CONTEXT);
    expect(translator.translate(pages[3], ACCESS_WRITE)).toBe(TRANSLATION_FAULT);
    expect(translator.fault).toMatchObject({ cause: "not-mapped", status: DSISR_NOHPTE | DSISR_ISSTORE });
    expect(hpt.statistics).toMatchObject({ entries: 16, evictions: 1, secondaryInserts: 8 });
  });

  it("refuses an entry whose PTEGs hold only bolted entries", () => {
    const pages = collidingPages(17);
    pages.slice(0, 16).forEach((ea, i) => hpt.insert(mapping(ea, 0x1000000 + i * 4096, { bolted: true })));
    let error: unknown;
    try {
      hpt.insert(mapping(pages[16], 0x2000000));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AstraError);
    expect((error as AstraError).code).toBe(Code.RESOURCE_EXHAUSTED);
  });

  it("rewrites an existing page's entry in place instead of adding a second one", () => {
    const first = hpt.insert(mapping(SEGMENT_EA, 0x800000));
    const again = hpt.insert(mapping(SEGMENT_EA, 0x900000, { pp: userPp(false) }));
    expect(again).toMatchObject({ slot: first.slot, replaced: true });
    expect(hpt.size).toBe(1);
    expect(mmu.translate(CONTEXT, SEGMENT_EA, ACCESS_READ)).toBe(0x900000);
  });
});

describe("removal", () => {
  it("invalidates the entry in memory; the page faults after the TLB shootdown", () => {
    const inserted = hpt.insert(mapping(SEGMENT_EA + 0x3000, 0x800000));
    expect(mmu.translate(CONTEXT, SEGMENT_EA + 0x3000, ACCESS_READ)).toBe(0x800000);
    expect(hpt.remove(VSID, SEGMENT_EA + 0x3000)).toEqual({
      owner: CONTEXT,
      vsid: VSID,
      ea: SEGMENT_EA + 0x3000,
      pageShift: PAGE_SHIFT_4K,
    });
    expect(decodeHpte(memory.read(inserted.address, HPTE_BYTES)).valid).toBe(false);
    mmu.invalidatePage(CONTEXT, SEGMENT_EA + 0x3000);
    expect(mmu.translate(CONTEXT, SEGMENT_EA + 0x3000, ACCESS_READ)).toBe(TRANSLATION_FAULT);
    expect(hpt.remove(VSID, SEGMENT_EA + 0x3000)).toBeNull();
  });

  it("removes every entry of a VSID", () => {
    for (let i = 0; i < 5; i++) hpt.insert(mapping(SEGMENT_EA + i * 4096, 0x800000 + i * 4096));
    hpt.insert(mapping(SEGMENT_EA, 0x900000, { vsid: VSID + 1 }));
    expect(hpt.removeSegment(VSID).map((r) => r.ea).sort((a, b) => a - b)).toEqual(
      [0, 1, 2, 3, 4].map((i) => SEGMENT_EA + i * 4096),
    );
    expect(hpt.size).toBe(1);
    mmu.invalidateVsid(VSID);
    expect(mmu.translate(CONTEXT, SEGMENT_EA, ACCESS_READ)).toBe(TRANSLATION_FAULT);
  });

  it("clear() writes invalid entries over the whole table", () => {
    memory.fill(HTAB_ORIGIN, 256 * 1024, 0xff);
    hpt.clear();
    expect(memory.read(HTAB_ORIGIN, 256 * 1024).every((b) => b === 0)).toBe(true);
    expect(hpt.size).toBe(0);
  });
});

describe("page and segment sizes", () => {
  function walkLarge(
    segmentSize: SegmentSize,
    esid: number,
    pageShift: PageShift,
    pageEa: number,
    real: number,
  ) {
    const vsid = 0x1234;
    mmu.installSegment(CONTEXT, segment({ esid, vsid, segmentSize, basePageShift: pageShift }));
    hpt.insert(mapping(pageEa, real, { vsid, segmentSize, pageShift }));
  }

  it("walks 64 KiB pages in a 64 KiB segment", () => {
    walkLarge(SEGMENT_256M, 2, PAGE_SHIFT_64K, 0x2003_0000, 0x100_0000);
    expect(mmu.translate(CONTEXT, 0x2003_abcd, ACCESS_READ)).toBe(0x100_abcd);
    expect(mmu.translate(CONTEXT, 0x2004_0000, ACCESS_READ)).toBe(TRANSLATION_FAULT);
  });

  it("walks a 16 MiB page in a 1 TB segment", () => {
    const base = 2 ** 40;
    walkLarge(SEGMENT_1T, 1, PAGE_SHIFT_16M, base + 0x300_0000, 0x200_0000);
    expect(mmu.translate(CONTEXT, base + 0x3ab_cdef, ACCESS_WRITE)).toBe(0x2ab_cdef);
    expect(mmu.translate(CONTEXT, base + 0x300_0000, ACCESS_READ)).toBe(0x200_0000);
  });

  it("does not match an entry written for the other segment size", () => {
    // The entry says B = 1 TB; the segment is 256 MB with the same VSID: no match.
    hpt.insert(mapping(SEGMENT_EA, 0x800000, { vsid: 0x77, segmentSize: SEGMENT_1T }));
    mmu.installSegment(CONTEXT, segment({ vsid: 0x77 }));
    expect(mmu.translate(CONTEXT, SEGMENT_EA, ACCESS_READ)).toBe(TRANSLATION_FAULT);
  });

  it("keeps one page size per VSID, as a segment has one base page size", () => {
    hpt.insert(mapping(SEGMENT_EA, 0x800000));
    let error: unknown;
    try {
      hpt.insert(mapping(SEGMENT_EA + 0x10000, 0x810000, { pageShift: PAGE_SHIFT_64K }));
    } catch (e) {
      error = e;
    }
    expect((error as AstraError).code).toBe(Code.INVALID_ARGUMENT);
    expect(hpt.size).toBe(1);
  });

  it("ignores an entry whose page size is not valid in its segment", () => {
    // A 64 KiB entry found through a 4 KiB segment's hash would be an invalid L/LP combination.
    mmu.installSegment(CONTEXT, segment({ esid: 3, vsid: 0x99 }));
    hpt.insert(mapping(0x3000_0000, 0x100_0000, { vsid: 0x99, pageShift: PAGE_SHIFT_64K }));
    expect(mmu.translate(CONTEXT, 0x3000_0000, ACCESS_READ)).toBe(TRANSLATION_FAULT);
  });

  it("raises a segment fault where no SLB entry covers the address", () => {
    const translator = mmu.translator(CONTEXT);
    expect(translator.translate(0x5000_0000, ACCESS_EXECUTE)).toBe(TRANSLATION_FAULT);
    expect(translator.fault).toMatchObject({
      interrupt: "instruction-segment",
      cause: "no-segment",
      status: 0,
    });
    expect(mmu.removeSegment(CONTEXT, 1, SEGMENT_256M)).toBe(true);
    expect(translator.translate(SEGMENT_EA, ACCESS_READ)).toBe(TRANSLATION_FAULT);
    expect(translator.fault?.interrupt).toBe("data-segment");
  });
});

describe("argument checks", () => {
  it("refuses misaligned pages and addresses and out-of-range VSIDs", () => {
    const invalid = (m: HpteMapping) => {
      try {
        hpt.insert(m);
      } catch (e) {
        return (e as AstraError).code;
      }
      return Code.OK;
    };
    expect(invalid(mapping(SEGMENT_EA + 1, 0x800000))).toBe(Code.INVALID_ARGUMENT);
    expect(invalid(mapping(SEGMENT_EA, 0x800001))).toBe(Code.INVALID_ARGUMENT);
    expect(invalid(mapping(SEGMENT_EA, 0x800000, { vsid: 2 ** 40 }))).toBe(Code.INVALID_ARGUMENT);
    expect(invalid(mapping(SEGMENT_EA, 0x810000, { pageShift: PAGE_SHIFT_64K, realAddress: 0x808000 }))).toBe(
      Code.INVALID_ARGUMENT,
    );
    expect(() => new HashPageTable({ origin: HTAB_ORIGIN + 4096, sizeField: 0 }, memory)).toThrow(AstraError);
    expect(() => mmu.setHashTable(HTAB_ORIGIN + 4096, 0)).toThrow(RangeError);
  });
});
