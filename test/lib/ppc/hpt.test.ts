// The Power ISA 3.0 HPTE format, hash and PTEG addressing, checked three ways: values worked out
// by hand from the ISA text, oracles transcribed from QEMU's target/ppc/mmu-hash64.c and Linux's
// book3s/64/mmu-hash.h (in BigInt, independent of the number arithmetic under test), and
// round trips over random fields.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  abbreviatedVpn,
  decodeHpte,
  decodePageShift,
  decodePartitionTableEntry,
  encodeHpte,
  encodePageSize,
  encodePartitionTableEntry,
  type HpteFields,
  hptePermissions,
  htabBytes,
  htabSizeField,
  PAGE_SHIFT_16M,
  PAGE_SHIFT_4K,
  PAGE_SHIFT_64K,
  pageRealAddress,
  type PageShift,
  PERM_EXECUTE,
  PERM_READ,
  PERM_WRITE,
  ppPermissions,
  primaryHash,
  ptegAddress,
  ptegIndex,
  recommendedHtabSizeField,
  SEGMENT_1T,
  SEGMENT_256M,
  type SegmentSize,
  userPp,
  WIMG_GUARDED,
  WIMG_MEMORY,
} from "../../../lib/ppc/hpt.ts";

function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

function bigEndian(value: bigint): string {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, value, false);
  return hexBytes(bytes);
}

const baseFields: HpteFields = {
  valid: true,
  avpn: 0,
  software: 0,
  large: false,
  secondary: false,
  segmentSize: SEGMENT_256M,
  arpn: 0,
  pp: 0,
  key: 0,
  referenced: false,
  changed: false,
  wimg: 0,
  noExecute: false,
};

/** The two doublewords as Linux's HPTE_V_* / HPTE_R_* masks (ISA 3.0 format) describe them. */
function oracleDoublewords(f: HpteFields): [bigint, bigint] {
  const v = (BigInt(f.avpn) << 7n) | (BigInt(f.software) << 3n) | (f.large ? 4n : 0n) |
    (f.secondary ? 2n : 0n) | (f.valid ? 1n : 0n);
  const r = (BigInt(f.pp >> 2) << 63n) | (BigInt(f.key >> 3) << 60n) | (BigInt(f.segmentSize) << 58n) |
    (BigInt(f.arpn) << 12n) | (BigInt(f.key & 7) << 9n) | (f.referenced ? 0x100n : 0n) |
    (f.changed ? 0x80n : 0n) | (BigInt(f.wimg) << 3n) | (f.noExecute ? 4n : 0n) | BigInt(f.pp & 3);
  return [v, r];
}

/** QEMU's ppc_hash64_htab_lookup hash and ptem, and ppc_hash64_pteg_search's group index. */
function qemuLookup(
  vsid: bigint,
  segment: SegmentSize,
  offset: bigint,
  pageShift: number,
  sizeField: number,
) {
  const epn = offset & ~((1n << BigInt(pageShift)) - 1n);
  const hash = segment === SEGMENT_1T
    ? vsid ^ (vsid << 25n) ^ (epn >> BigInt(pageShift))
    : vsid ^ (epn >> BigInt(pageShift));
  const slbVsidWord = vsid << (segment === SEGMENT_1T ? 24n : 12n);
  const ptem = slbVsidWord | ((epn >> 16n) & 0x3fffffffffffff80n);
  const mask = (1n << BigInt(sizeField + 18 - 7)) - 1n;
  // Linux's hpt_hash keeps 39 bits; the mask never reaches beyond them.
  const hash39 = hash & 0x7fffffffffn;
  return {
    hash: hash39,
    avpn: ptem >> 7n,
    primary: hash39 & mask,
    secondary: ~hash39 & mask,
  };
}

describe("HPTE encoding", () => {
  it("lays out a 4 KiB page in a 256 MB segment as worked out by hand", () => {
    // VSID 0x123456, EA offset 0x0ABCD123: AVPN = VSID << 5 | offset >> 23 = 0x2468AC0 | 0x15.
    const avpn = abbreviatedVpn(0x123456, SEGMENT_256M, 0x0abcd123, PAGE_SHIFT_4K);
    expect(avpn).toBe(0x2468ad5);
    const bytes = new Uint8Array(16);
    encodeHpte({
      ...baseFields,
      avpn,
      arpn: 0x1234,
      pp: userPp(true),
      wimg: WIMG_MEMORY,
      noExecute: true,
    }, bytes);
    // dword 0 = AVPN << 7 | V; dword 1 = RPN 0x1234 << 12 | M (0x10) | N (4) | PP 2.
    expect(hexBytes(bytes)).toBe("00 00 00 01 23 45 6a 81 00 00 00 00 01 23 40 16");
  });

  it("puts B in the second doubleword (ISA 3.0) and pp0 in its top bit", () => {
    const bytes = new Uint8Array(16);
    encodeHpte({ ...baseFields, segmentSize: SEGMENT_1T, pp: 0b110 }, bytes);
    // B = 1 is bit 58 (0x04 in byte 8); pp0 is bit 63 (0x80 in byte 8); pp1:2 = 0b10 in byte 15.
    expect(hexBytes(bytes)).toBe("00 00 00 00 00 00 00 01 84 00 00 00 00 00 00 02");
    expect(bytes[0] | bytes[1] | bytes[2] | bytes[3]).toBe(0); // nothing of B left in dword 0
  });

  it("places every field where Linux's masks say, for random fields", () => {
    fc.assert(
      fc.property(hpteFields(), (fields) => {
        const bytes = new Uint8Array(16);
        encodeHpte(fields, bytes);
        const [v, r] = oracleDoublewords(fields);
        expect(hexBytes(bytes)).toBe(`${bigEndian(v)} ${bigEndian(r)}`);
      }),
      { numRuns: 500 },
    );
  });

  it("decodes what it encodes", () => {
    fc.assert(
      fc.property(hpteFields(), fc.nat(64), (fields, at) => {
        const bytes = new Uint8Array(at + 16);
        encodeHpte(fields, bytes, at);
        expect(decodeHpte(bytes, at)).toEqual(fields);
      }),
      { numRuns: 500 },
    );
  });

  it("re-encodes any entry with its reserved bits clear to the same bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (raw) => {
        const bytes = raw.slice();
        bytes[0] = 0;
        bytes[1] &= 0x0f; // dword 0 bits 52..63 reserved
        bytes[8] &= 0xb5; // dword 1 bits 62 and 57 reserved, B only 0 or 1 (2 and 3 are reserved)
        const again = new Uint8Array(16);
        encodeHpte(decodeHpte(bytes), again);
        expect(hexBytes(again)).toBe(hexBytes(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it("refuses fields that do not fit", () => {
    const bytes = new Uint8Array(16);
    expect(() => encodeHpte({ ...baseFields, avpn: 2 ** 45 }, bytes)).toThrow(RangeError);
    expect(() => encodeHpte({ ...baseFields, arpn: 2 ** 45 }, bytes)).toThrow(RangeError);
    expect(() => encodeHpte({ ...baseFields, pp: 8 }, bytes)).toThrow(RangeError);
    expect(() => encodeHpte({ ...baseFields, key: 32 }, bytes)).toThrow(RangeError);
  });
});

function hpteFields(): fc.Arbitrary<HpteFields> {
  return fc.record({
    valid: fc.boolean(),
    avpn: fc.integer({ min: 0, max: 2 ** 45 - 1 }),
    software: fc.integer({ min: 0, max: 15 }),
    large: fc.boolean(),
    secondary: fc.boolean(),
    segmentSize: fc.constantFrom(SEGMENT_256M, SEGMENT_1T),
    arpn: fc.integer({ min: 0, max: 2 ** 45 - 1 }),
    pp: fc.integer({ min: 0, max: 7 }),
    key: fc.integer({ min: 0, max: 31 }),
    referenced: fc.boolean(),
    changed: fc.boolean(),
    wimg: fc.integer({ min: 0, max: 15 }),
    noExecute: fc.boolean(),
  });
}

describe("hash and PTEG addressing", () => {
  it("matches a 256 MB segment example worked out by hand", () => {
    // hash = 0x123456 ^ 0xABCD = 0x129F9B; a 256 KiB table has 2048 PTEGs (mask 0x7FF).
    const hash = primaryHash(0x123456, SEGMENT_256M, 0x0abcd123 >>> 12);
    expect(hash).toBe(0x129f9b);
    expect(ptegIndex(hash, false, 0)).toBe(0x79b);
    expect(ptegIndex(hash, true, 0)).toBe(0x064); // ~0x129F9B & 0x7FF
    expect(ptegAddress(0x200000, 0, hash, false)).toBe(0x200000 + 0x3cd80);
    expect(ptegAddress(0x200000, 0, hash, true)).toBe(0x200000 + 0x3200);
  });

  it("mixes VSID << 25 into the hash of a 1 TB segment", () => {
    expect(primaryHash(1, SEGMENT_1T, 0)).toBe(0x2000001);
    expect(primaryHash(1, SEGMENT_256M, 0)).toBe(1);
    // VSID bits shifted past bit 38 fall out of the 39-bit hash.
    expect(primaryHash(2 ** 14, SEGMENT_1T, 0)).toBe(2 ** 14);
  });

  it("agrees with QEMU's lookup for random VSIDs, offsets, page sizes and table sizes", () => {
    const cases = fc.oneof(
      fc.record({
        segment: fc.constant(SEGMENT_256M as SegmentSize),
        vsid: fc.integer({ min: 0, max: 2 ** 40 - 1 }),
        offset: fc.integer({ min: 0, max: 2 ** 28 - 1 }),
      }),
      fc.record({
        segment: fc.constant(SEGMENT_1T as SegmentSize),
        vsid: fc.integer({ min: 0, max: 2 ** 28 - 1 }),
        offset: fc.integer({ min: 0, max: 2 ** 40 - 1 }),
      }),
    );
    fc.assert(
      fc.property(
        cases,
        fc.constantFrom<PageShift>(PAGE_SHIFT_4K, PAGE_SHIFT_64K, PAGE_SHIFT_16M),
        fc.integer({ min: 0, max: 28 }),
        ({ segment, vsid, offset }, pageShift, sizeField) => {
          const expected = qemuLookup(BigInt(vsid), segment, BigInt(offset), pageShift, sizeField);
          const hash = primaryHash(vsid, segment, Math.floor(offset / 2 ** pageShift));
          expect(BigInt(hash)).toBe(expected.hash);
          expect(BigInt(abbreviatedVpn(vsid, segment, offset, pageShift))).toBe(expected.avpn);
          expect(BigInt(ptegIndex(hash, false, sizeField))).toBe(expected.primary);
          expect(BigInt(ptegIndex(hash, true, sizeField))).toBe(expected.secondary);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("table and partition-table entry sizes", () => {
  it("encodes HTABSIZE as a table of 2^(18 + HTABSIZE) bytes", () => {
    expect(htabBytes(0)).toBe(256 * 1024);
    expect(htabBytes(4)).toBe(4 * 1024 * 1024);
    expect(htabSizeField(16 * 1024 * 1024)).toBe(6);
    expect(() => htabSizeField(3 * 65536)).toThrow(RangeError);
    expect(() => htabSizeField(65536)).toThrow(RangeError);
  });

  it("writes HTABORG and HTABSIZE into the first doubleword", () => {
    const bytes = new Uint8Array(8);
    encodePartitionTableEntry({ origin: 0x1000000, sizeField: 4, vrmaPageSize: 0 }, bytes);
    expect(hexBytes(bytes)).toBe("00 00 00 00 01 00 00 04");
    expect(decodePartitionTableEntry(bytes)).toEqual({
      radix: false,
      origin: 0x1000000,
      sizeField: 4,
      vrmaPageSize: 0,
    });
    const high = new Uint8Array(8);
    encodePartitionTableEntry({ origin: 0x12_4000_0000, sizeField: 12, vrmaPageSize: 5 }, high);
    expect(decodePartitionTableEntry(high)).toEqual({
      radix: false,
      origin: 0x12_4000_0000,
      sizeField: 12,
      vrmaPageSize: 5,
    });
    expect(() => encodePartitionTableEntry({ origin: 0x1040000, sizeField: 4, vrmaPageSize: 0 }, bytes))
      .toThrow(
        /aligned/,
      );
  });

  it("sizes the table as Linux does: a PTEG per two pages of RAM, at least 256 KiB", () => {
    expect(recommendedHtabSizeField(2 ** 30, PAGE_SHIFT_4K)).toBe(6); // 1 GiB: 2^17 PTEGs = 16 MiB
    expect(recommendedHtabSizeField(2 ** 30, PAGE_SHIFT_64K)).toBe(2);
    expect(recommendedHtabSizeField(2 ** 20, PAGE_SHIFT_4K)).toBe(0);
  });
});

describe("page sizes", () => {
  it("encodes 64 KiB and 16 MiB pages with L and the LP bits QEMU expects", () => {
    expect(encodePageSize(PAGE_SHIFT_4K, PAGE_SHIFT_4K, 0x5000)).toEqual({ large: false, arpn: 5 });
    expect(encodePageSize(PAGE_SHIFT_64K, PAGE_SHIFT_64K, 0x30000)).toEqual({ large: true, arpn: 0x31 });
    expect(encodePageSize(PAGE_SHIFT_16M, PAGE_SHIFT_16M, 0x3000000)).toEqual({ large: true, arpn: 0x3000 });
    expect(() => encodePageSize(PAGE_SHIFT_64K, PAGE_SHIFT_64K, 0x31000)).toThrow(/aligned/);
    expect(() => encodePageSize(PAGE_SHIFT_64K, PAGE_SHIFT_4K, 0x1000)).toThrow(RangeError);
  });

  it("decodes the actual page size only when it is valid in the segment", () => {
    expect(decodePageShift(PAGE_SHIFT_4K, false, 5)).toBe(12);
    expect(decodePageShift(PAGE_SHIFT_64K, true, 0x31)).toBe(16);
    expect(decodePageShift(PAGE_SHIFT_64K, true, 0x30)).toBe(0); // LP 0 is no size in a 64 KiB segment
    expect(decodePageShift(PAGE_SHIFT_64K, false, 0x30)).toBe(0); // a 4 KiB entry in a 64 KiB segment
    expect(decodePageShift(PAGE_SHIFT_16M, true, 0x3000)).toBe(24);
    expect(decodePageShift(PAGE_SHIFT_4K, true, 0x31)).toBe(0);
    expect(pageRealAddress(0x31, 16)).toBe(0x30000);
    expect(pageRealAddress(0x3000, 24)).toBe(0x3000000);
  });
});

describe("protection", () => {
  it("follows the ISA's PP/key table for problem state (Kp = 1) and privileged state (Ks = 0)", () => {
    const none = 0, r = PERM_READ, rw = PERM_READ | PERM_WRITE;
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((pp) => ppPermissions(pp, true))).toEqual([
      none,
      r,
      rw,
      r,
      none,
      none,
      none,
      none,
    ]);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((pp) => ppPermissions(pp, false))).toEqual([
      rw,
      rw,
      rw,
      r,
      none,
      none,
      r,
      none,
    ]);
  });

  it("allows fetches only from readable pages that are neither no-execute nor guarded", () => {
    expect(hptePermissions(userPp(true), true, false, WIMG_MEMORY, false)).toBe(
      PERM_READ | PERM_WRITE | PERM_EXECUTE,
    );
    expect(hptePermissions(userPp(false), true, false, WIMG_MEMORY, false)).toBe(PERM_READ | PERM_EXECUTE);
    expect(hptePermissions(userPp(true), true, true, WIMG_MEMORY, false)).toBe(PERM_READ | PERM_WRITE);
    expect(hptePermissions(userPp(true), true, false, WIMG_MEMORY | WIMG_GUARDED, false)).toBe(
      PERM_READ | PERM_WRITE,
    );
    expect(hptePermissions(userPp(true), true, false, WIMG_MEMORY, true)).toBe(PERM_READ | PERM_WRITE);
    expect(hptePermissions(0, true, false, WIMG_MEMORY, false)).toBe(0);
  });
});
