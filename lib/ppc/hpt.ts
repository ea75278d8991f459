// The Power ISA 3.0 hashed page table (Book III, "Hashed Page Table Translation"), shared by the
// writer (vmm, which owns the table in guest memory) and the walker (the machine's MMU).
//
// Bit positions below are LSB-0 (bit 0 is the least significant bit of a 64-bit doubleword); the
// ISA's MSB-0 names are given beside them. Every value stays a number: a doubleword is handled as
// two unsigned 32-bit halves wherever it can exceed 2^53, and every other quantity (VSIDs, AVPNs,
// hashes, real page numbers, real addresses) is an integer below 2^53.
//
// An HPTE is two big-endian doublewords, whatever the byte order of the code using the table:
//
//   dword 0   bits 7..51  AVPN (VA >> 23; ISA 3.0 VA is 68 bits, so 45 bits)   ISA 12:56
//             bits 3..6   SW, free for software (Linux: bit 4 HPTE_V_BOLTED)     ISA 57:60
//             bit 2       L, large page (actual size from the LP bits of dword 1) ISA 61
//             bit 1       H, the entry is in its secondary PTEG                  ISA 62
//             bit 0       V, valid                                              ISA 63
//   dword 1   bit 63      pp0                                                   ISA 0
//             bits 60..61 key 0:1                                               ISA 2:3
//             bits 58..59 B, segment size (ISA 3.0 moved it here from dword 0)   ISA 4:5
//             bits 12..56 ARPN (real address >> 12; the low bits carry LP)       ISA 7:51
//             bits 9..11  key 2:4                                               ISA 52:54
//             bit 8       R, referenced                                         ISA 55
//             bit 7       C, changed                                            ISA 56
//             bits 3..6   WIMG                                                  ISA 57:60
//             bit 2       N, no-execute                                         ISA 61
//             bits 0..1   pp1:2                                                 ISA 62:63

/** Bytes in one HPTE. */
export const HPTE_BYTES = 16;
/** HPTEs in one PTE group. */
export const HPTES_PER_GROUP = 8;
/** Bytes in one PTE group (PTEG). */
export const PTEG_BYTES = 128;
/** The smallest table (HTABSIZE 0): 2^18 bytes. */
export const HTAB_MIN_SHIFT = 18;
/** The largest HTABSIZE the ISA allows: a table of 2^46 bytes. */
export const HTAB_SIZE_FIELD_MAX = 28;

/** The B field: 256 MB segments. */
export const SEGMENT_256M = 0;
/** The B field: 1 TB segments. */
export const SEGMENT_1T = 1;
export type SegmentSize = typeof SEGMENT_256M | typeof SEGMENT_1T;
export const SEGMENT_SHIFT_256M = 28;
export const SEGMENT_SHIFT_1T = 40;

/** ISA 3.0 virtual addresses are 68 bits: a VSID has 68 - segment shift bits. */
export const VSID_BITS_256M = 40;
export const VSID_BITS_1T = 28;

export const PAGE_SHIFT_4K = 12;
export const PAGE_SHIFT_64K = 16;
export const PAGE_SHIFT_16M = 24;
export type PageShift = typeof PAGE_SHIFT_4K | typeof PAGE_SHIFT_64K | typeof PAGE_SHIFT_16M;

/** Linux's HPTE_V_BOLTED, as a value of the 4-bit SW field: an entry never evicted. */
export const HPTE_SW_BOLTED = 0x2;

/** WIMG for ordinary memory: coherent (M), cacheable, not guarded — what Linux uses. */
export const WIMG_MEMORY = 0b0010;
/** The G bit of WIMG: guarded storage is never executable. */
export const WIMG_GUARDED = 0b0001;

/** Access permissions, as bits; `1 << access` for the access kinds below. */
export const PERM_READ = 1;
export const PERM_WRITE = 2;
export const PERM_EXECUTE = 4;

/** Access kinds, numbered as QEMU's rwx (0 load, 1 store, 2 instruction fetch). */
export const ACCESS_READ = 0;
export const ACCESS_WRITE = 1;
export const ACCESS_EXECUTE = 2;
export type AccessKind = typeof ACCESS_READ | typeof ACCESS_WRITE | typeof ACCESS_EXECUTE;

/** DSISR bits of a data storage interrupt (Linux's asm/reg.h names). */
export const DSISR_NOHPTE = 0x40000000;
export const DSISR_PROTFAULT = 0x08000000;
export const DSISR_ISSTORE = 0x02000000;
/** SRR1 bits of an instruction storage interrupt. */
export const SRR1_ISI_NOPT = 0x40000000;
export const SRR1_ISI_N_G_OR_CIP = 0x10000000;
export const SRR1_ISI_PROT = 0x08000000;

const TWO_32 = 4294967296;
/** The hash is 39 bits wide (the widest PTEG index HTABSIZE 28 can use). */
const HASH_MODULUS = 2 ** 39;
const AVPN_LIMIT = 2 ** 45;
const ARPN_LIMIT = 2 ** 45;
/** Real addresses are numbers: everything below 2^53. */
const REAL_ADDRESS_LIMIT = 2 ** 53;

/**
 * LP encodings of the large page sizes, keyed base shift → actual shift: the value sits in the low
 * bits of the ARPN (QEMU's ppc_hash64_opts_POWER7, Linux's penc). Only pages of the segment's own
 * base size are supported: the walker hashes with the base page size, so a larger page inside a
 * smaller-base segment (MPSS) would need its hash and AVPN computed differently.
 */
const LARGE_PAGE_ENCODINGS: ReadonlyMap<number, ReadonlyMap<number, number>> = new Map([
  [PAGE_SHIFT_64K, new Map([[PAGE_SHIFT_64K, 0x1]])],
  [PAGE_SHIFT_16M, new Map([[PAGE_SHIFT_16M, 0x0]])],
]);

/** One hashed page table entry, decoded. */
export interface HpteFields {
  valid: boolean;
  /** Abbreviated virtual page number: VA >> 23 (low bits that lie inside a large page are 0). */
  avpn: number;
  /** The 4 software bits (HPTE_SW_BOLTED, ...). */
  software: number;
  large: boolean;
  secondary: boolean;
  segmentSize: SegmentSize;
  /** Abbreviated real page number: the real address >> 12, with the LP encoding in its low bits. */
  arpn: number;
  /** pp0 || pp1:2 as one 3-bit value. */
  pp: number;
  /** The 5-bit virtual page class key. */
  key: number;
  referenced: boolean;
  changed: boolean;
  wimg: number;
  noExecute: boolean;
}

/** One segment lookaside buffer entry: an effective segment mapped to a virtual segment. */
export interface SlbEntry {
  /** The effective segment: EA >> 28 for 256 MB segments, EA >> 40 for 1 TB segments. */
  esid: number;
  vsid: number;
  segmentSize: SegmentSize;
  /** The segment's base page size (the SLB's L||LP). */
  basePageShift: PageShift;
  /** Storage key for privileged accesses. */
  ks: boolean;
  /** Storage key for problem-state accesses: the one that applies to user programs. */
  kp: boolean;
  /** No instruction fetches from this segment. */
  noExecute: boolean;
}

/** The hashed-page-table fields of a partition-table entry's first doubleword. */
export interface PartitionTableEntry {
  /** HR: the partition uses radix translation (then the other fields mean something else). */
  radix: boolean;
  /** HTABORG: the real address of the table. */
  origin: number;
  /** HTABSIZE: the table has 2^(18 + HTABSIZE) bytes. */
  sizeField: number;
  /** PS: L||LP of the VRMA's base page size. */
  vrmaPageSize: number;
}

/** Whether `value` is a supported base or actual page shift. */
export function isSupportedPageShift(value: number): value is PageShift {
  return value === PAGE_SHIFT_4K || value === PAGE_SHIFT_64K || value === PAGE_SHIFT_16M;
}

function checkUnsigned(value: number, limit: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value >= limit) {
    throw new RangeError(`${what} ${value} is not an integer in [0, ${limit})`);
  }
}

/** Bitwise xor of two non-negative integers below 2^53. */
function xor53(a: number, b: number): number {
  const high = (Math.floor(a / TWO_32) ^ Math.floor(b / TWO_32)) >>> 0;
  return high * TWO_32 + ((a ^ b) >>> 0);
}

export function segmentShift(segmentSize: SegmentSize): number {
  return segmentSize === SEGMENT_1T ? SEGMENT_SHIFT_1T : SEGMENT_SHIFT_256M;
}

/** Number of VSID values a segment size can name. */
export function vsidLimit(segmentSize: SegmentSize): number {
  return 2 ** (segmentSize === SEGMENT_1T ? VSID_BITS_1T : VSID_BITS_256M);
}

/** The bytes of a table whose HTABSIZE field is `sizeField`. */
export function htabBytes(sizeField: number): number {
  checkUnsigned(sizeField, HTAB_SIZE_FIELD_MAX + 1, "HTABSIZE");
  return 2 ** (HTAB_MIN_SHIFT + sizeField);
}

/** The HTABSIZE field for a table of `bytes` (a power of two of at least 2^18). */
export function htabSizeField(bytes: number): number {
  const field = Math.log2(bytes) - HTAB_MIN_SHIFT;
  if (!Number.isInteger(field) || field < 0 || field > HTAB_SIZE_FIELD_MAX) {
    throw new RangeError(`a hashed page table of ${bytes} bytes is not 2^18..2^46 bytes, a power of two`);
  }
  return field;
}

/**
 * The table size Linux picks for a machine (htab_shift_for_mem_size): one PTEG per two pages of
 * RAM, never below the minimum. Returns the HTABSIZE field.
 */
export function recommendedHtabSizeField(memoryBytes: number, basePageShift: PageShift): number {
  const memoryShift = Math.floor(Math.log2(Math.max(memoryBytes, 1)));
  const tableShift = Math.max(memoryShift - (basePageShift + 1) + 7, HTAB_MIN_SHIFT);
  return Math.min(tableShift - HTAB_MIN_SHIFT, HTAB_SIZE_FIELD_MAX);
}

/** Number of PTE groups in a table. */
export function ptegCount(sizeField: number): number {
  return htabBytes(sizeField) / PTEG_BYTES;
}

/**
 * The primary hash of a virtual page: VSID xor page index for 256 MB segments, VSID xor
 * (VSID << 25) xor page index for 1 TB segments, 39 bits wide. `pageIndex` is the offset within
 * the segment shifted right by the segment's base page size.
 */
export function primaryHash(vsid: number, segmentSize: SegmentSize, pageIndex: number): number {
  const mixed = segmentSize === SEGMENT_1T ? xor53(vsid, vsid * 2 ** 25) : vsid;
  return xor53(mixed, pageIndex) % HASH_MODULUS;
}

/** The PTEG index of a hash: hash & mask for the primary group, ~hash & mask for the secondary. */
export function ptegIndex(hash: number, secondary: boolean, sizeField: number): number {
  const groups = ptegCount(sizeField);
  const primary = hash % groups;
  // For a mask of the form 2^k - 1, ~hash & mask = mask - (hash & mask).
  return secondary ? groups - 1 - primary : primary;
}

/** The real address of a PTEG: HTABORG + ((hash & mask) << 7), or ~hash for the secondary. */
export function ptegAddress(origin: number, sizeField: number, hash: number, secondary: boolean): number {
  return origin + ptegIndex(hash, secondary, sizeField) * PTEG_BYTES;
}

/**
 * The AVPN of a page: VA >> 23, where VA = VSID || segment offset and the offset's bits inside
 * the segment's base page are dropped (as the walker does before comparing).
 */
export function abbreviatedVpn(
  vsid: number,
  segmentSize: SegmentSize,
  segmentOffset: number,
  basePageShift: PageShift,
): number {
  const epn = segmentOffset - (segmentOffset % 2 ** basePageShift);
  const vsidShift = segmentShift(segmentSize) - 23;
  return vsid * 2 ** vsidShift + Math.floor(epn / 2 ** 23);
}

/** The LP value for an actual page size inside a segment of a base page size, or -1 if unsupported. */
export function largePageEncoding(basePageShift: PageShift, pageShift: PageShift): number {
  return LARGE_PAGE_ENCODINGS.get(basePageShift)?.get(pageShift) ?? -1;
}

/**
 * The L bit and ARPN for a page of `pageShift` bytes at `realAddress` in a segment of base page
 * size `basePageShift`. Throws RangeError for an unsupported combination or a misaligned address.
 */
export function encodePageSize(
  basePageShift: PageShift,
  pageShift: PageShift,
  realAddress: number,
): { large: boolean; arpn: number } {
  checkUnsigned(realAddress, REAL_ADDRESS_LIMIT, "real address");
  if (realAddress % 2 ** pageShift !== 0) {
    throw new RangeError(
      `real address 0x${realAddress.toString(16)} is not aligned to its 2^${pageShift}-byte page`,
    );
  }
  if (pageShift === PAGE_SHIFT_4K) {
    if (basePageShift !== PAGE_SHIFT_4K) {
      throw new RangeError(
        `a 4 KiB page cannot be mapped in a segment of 2^${basePageShift}-byte base pages`,
      );
    }
    return { large: false, arpn: realAddress / 4096 };
  }
  const encoding = largePageEncoding(basePageShift, pageShift);
  if (encoding < 0) {
    throw new RangeError(
      `a 2^${pageShift}-byte page cannot be mapped in a segment of 2^${basePageShift}-byte base pages`,
    );
  }
  return { large: true, arpn: realAddress / 4096 + encoding };
}

/**
 * The actual page shift of an entry in a segment of base page size `basePageShift`, or 0 when its
 * L and LP bits name no size valid there (the walker then ignores the entry, as QEMU does).
 */
export function decodePageShift(basePageShift: PageShift, large: boolean, arpn: number): number {
  if (!large) return basePageShift === PAGE_SHIFT_4K ? PAGE_SHIFT_4K : 0;
  const sizes = LARGE_PAGE_ENCODINGS.get(basePageShift);
  if (!sizes) return 0;
  for (const [pageShift, encoding] of sizes) {
    if (arpn % 2 ** (pageShift - PAGE_SHIFT_4K) === encoding) return pageShift;
  }
  return 0;
}

/** The real address of the page an entry maps, given its decoded actual page shift. */
export function pageRealAddress(arpn: number, pageShift: number): number {
  const lowBits = 2 ** (pageShift - PAGE_SHIFT_4K);
  return (arpn - (arpn % lowBits)) * 4096;
}

/** Reads a big-endian unsigned 32-bit word. */
export function readWordBE(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) |
    bytes[offset + 3]) >>> 0;
}

function writeWordBE(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
}

function checkFields(fields: HpteFields): void {
  checkUnsigned(fields.avpn, AVPN_LIMIT, "AVPN");
  checkUnsigned(fields.arpn, ARPN_LIMIT, "ARPN");
  checkUnsigned(fields.software, 16, "SW");
  checkUnsigned(fields.pp, 8, "PP");
  checkUnsigned(fields.key, 32, "key");
  checkUnsigned(fields.wimg, 16, "WIMG");
  if (fields.segmentSize !== SEGMENT_256M && fields.segmentSize !== SEGMENT_1T) {
    throw new RangeError(`segment size ${fields.segmentSize} is not 0 (256 MB) or 1 (1 TB)`);
  }
}

/** Writes an HPTE as two big-endian doublewords at `target[offset..offset+16)`. */
export function encodeHpte(fields: HpteFields, target: Uint8Array, offset = 0): void {
  checkFields(fields);
  // dword 0 < 2^52, so it is one exact number.
  const dword0 = fields.avpn * 128 + fields.software * 8 + (fields.large ? 4 : 0) +
    (fields.secondary ? 2 : 0) + (fields.valid ? 1 : 0);
  writeWordBE(target, offset, Math.floor(dword0 / TWO_32));
  writeWordBE(target, offset + 4, dword0 >>> 0);
  const arpnHigh = Math.floor(fields.arpn / 2 ** 20);
  const arpnLow = fields.arpn % 2 ** 20;
  const high = ((fields.pp >> 2) << 31) | ((fields.key >> 3) << 28) | (fields.segmentSize << 26) | arpnHigh;
  const low = (arpnLow << 12) | ((fields.key & 7) << 9) | (fields.referenced ? 0x100 : 0) |
    (fields.changed ? 0x80 : 0) | (fields.wimg << 3) | (fields.noExecute ? 4 : 0) | (fields.pp & 3);
  writeWordBE(target, offset + 8, high >>> 0);
  writeWordBE(target, offset + 12, low >>> 0);
}

/** Decodes the HPTE at `source[offset..offset+16)`. */
export function decodeHpte(source: Uint8Array, offset = 0): HpteFields {
  const v0 = readWordBE(source, offset);
  const v1 = readWordBE(source, offset + 4);
  const r0 = readWordBE(source, offset + 8);
  const r1 = readWordBE(source, offset + 12);
  const dword0 = (v0 & 0xfffff) * TWO_32 + v1; // bits 52..63 are reserved
  return {
    valid: (v1 & 1) !== 0,
    avpn: Math.floor(dword0 / 128),
    software: (v1 >>> 3) & 0xf,
    large: (v1 & 4) !== 0,
    secondary: (v1 & 2) !== 0,
    segmentSize: ((r0 >>> 26) & 3) === SEGMENT_1T ? SEGMENT_1T : SEGMENT_256M,
    arpn: (r0 & 0x1ffffff) * 2 ** 20 + (r1 >>> 12),
    pp: ((r0 >>> 31) << 2) | (r1 & 3),
    key: (((r0 >>> 28) & 3) << 3) | ((r1 >>> 9) & 7),
    referenced: (r1 & 0x100) !== 0,
    changed: (r1 & 0x80) !== 0,
    wimg: (r1 >>> 3) & 0xf,
    noExecute: (r1 & 4) !== 0,
  };
}

/** Byte offsets, within an HPTE, of the bytes holding R and C (hardware updates them alone). */
export const HPTE_R_BYTE = 14;
export const HPTE_R_BIT = 0x01;
export const HPTE_C_BYTE = 15;
export const HPTE_C_BIT = 0x80;

/**
 * What pp0||pp1:2 allows under storage key `key` (Kp in problem state): PERM_READ and PERM_WRITE
 * bits. Reserved combinations allow nothing, as in QEMU.
 */
export function ppPermissions(pp: number, key: boolean): number {
  if (!key) {
    if (pp <= 2) return PERM_READ | PERM_WRITE;
    if (pp === 3 || pp === 6) return PERM_READ;
    return 0;
  }
  if (pp === 2) return PERM_READ | PERM_WRITE;
  if (pp === 1 || pp === 3) return PERM_READ;
  return 0;
}

/**
 * Everything an access may do through an entry: the PP/key authority, plus execute when the page
 * is readable and neither the entry (N), the storage (G) nor the segment forbids fetching.
 */
export function hptePermissions(
  pp: number,
  key: boolean,
  noExecute: boolean,
  wimg: number,
  segmentNoExecute: boolean,
): number {
  const allowed = ppPermissions(pp, key);
  const fetchable = (allowed & PERM_READ) !== 0 && !noExecute && (wimg & WIMG_GUARDED) === 0 &&
    !segmentNoExecute;
  return fetchable ? allowed | PERM_EXECUTE : allowed;
}

/** The PP value giving a user page (Kp = 1) read-write or read-only access. */
export function userPp(writable: boolean): number {
  return writable ? 0b010 : 0b011;
}

/** Writes a partition-table entry's first doubleword (HR = 0: hashed translation), big-endian. */
export function encodePartitionTableEntry(
  entry: Omit<PartitionTableEntry, "radix">,
  target: Uint8Array,
  offset = 0,
): void {
  const bytes = htabBytes(entry.sizeField);
  checkUnsigned(entry.origin, REAL_ADDRESS_LIMIT, "HTABORG");
  if (entry.origin % bytes !== 0) {
    throw new RangeError(`HTABORG 0x${entry.origin.toString(16)} is not aligned to the table size ${bytes}`);
  }
  checkUnsigned(entry.vrmaPageSize, 8, "PS");
  // HTABORG occupies bits 18..59 and the origin is 2^18-aligned: origin + PS + HTABSIZE < 2^53.
  const dword0 = entry.origin + entry.vrmaPageSize * 32 + entry.sizeField;
  writeWordBE(target, offset, Math.floor(dword0 / TWO_32));
  writeWordBE(target, offset + 4, dword0 >>> 0);
}

/** Reads a partition-table entry's first doubleword. */
export function decodePartitionTableEntry(source: Uint8Array, offset = 0): PartitionTableEntry {
  const high = readWordBE(source, offset);
  const low = readWordBE(source, offset + 4);
  const originHigh = high & 0x0fffffff;
  if (originHigh >= 0x200000) {
    throw new RangeError("HTABORG lies above 2^53, beyond the machine's real addresses");
  }
  return {
    radix: (high >>> 31) !== 0,
    origin: originHigh * TWO_32 + ((low & 0xfffc0000) >>> 0),
    sizeField: low & 0x1f,
    vrmaPageSize: (low >>> 5) & 7,
  };
}
