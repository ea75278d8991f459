// The virtual memory areas of an address space: a sorted array of non-overlapping, page-aligned
// ranges, adjacent compatible ones always merged, with Linux's rules for every system call that
// changes them (mm/mmap.c, mm/mprotect.c, mm/mremap.c, mm/madvise.c), errno for errno. Addresses
// are numbers: user addresses lie below 2^47.
//
// This module only decides the layout. Pages are the address space's business: every operation
// reports the ranges whose pages must go, move or be re-protected, and an observer hears of every
// VMA that appears or disappears (so that shared memory objects can count their mappings).
import { AstraError, Code, Errno } from "../../lib/errors.ts";

export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const PROT_SEM = 0x8;
export const PROT_GROWSDOWN = 0x01000000;
export const PROT_GROWSUP = 0x02000000;
const PROT_ACCESS = PROT_READ | PROT_WRITE | PROT_EXEC;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
// powerpc's own values (arch/powerpc/include/uapi/asm/mman.h).
export const MAP_NORESERVE = 0x40;
export const MAP_LOCKED = 0x80;
export const MAP_GROWSDOWN = 0x0100;
export const MAP_DENYWRITE = 0x0800;
export const MAP_EXECUTABLE = 0x1000;
export const MAP_POPULATE = 0x008000;
export const MAP_NONBLOCK = 0x010000;
export const MAP_STACK = 0x020000;
export const MAP_HUGETLB = 0x040000;
export const MAP_SYNC = 0x080000;
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MAP_UNINITIALIZED = 0x4000000;
/** MAP_HUGE_2MB and MAP_HUGE_1GB: page-size selectors in bits 26..31 (MAP_HUGE_SHIFT). */
const MAP_HUGE_2MB = 21 << 26;
const MAP_HUGE_1GB = 30 << 26;
/**
 * Linux's LEGACY_MAP_MASK: what MAP_SHARED_VALIDATE accepts of a file without mmap_supported_flags
 * (every file here); others, MAP_SYNC and MAP_FIXED_NOREPLACE among them, are EOPNOTSUPP.
 */
const LEGACY_MAP_MASK = MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE |
  MAP_EXECUTABLE | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE |
  MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB | MAP_HUGE_2MB | MAP_HUGE_1GB;

export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

export const MADV_NORMAL = 0;
export const MADV_RANDOM = 1;
export const MADV_SEQUENTIAL = 2;
export const MADV_WILLNEED = 3;
export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;
export const MADV_REMOVE = 9;
export const MADV_DONTFORK = 10;
export const MADV_DOFORK = 11;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_DONTDUMP = 16;
export const MADV_DODUMP = 17;
export const MADV_WIPEONFORK = 18;
export const MADV_KEEPONFORK = 19;
export const MADV_COLD = 20;
export const MADV_PAGEOUT = 21;
/** Advice that is valid and only a hint: no memory has no swap, no huge pages, no dumps to shape. */
const MADV_HINTS = new Set([
  MADV_NORMAL,
  MADV_RANDOM,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_DONTDUMP,
  MADV_DODUMP,
  MADV_COLD,
  MADV_PAGEOUT,
]);

/** Linux's default stack_guard_gap: 256 pages of 4 KiB. */
export const DEFAULT_STACK_GUARD_GAP = 256 * 4096;
/** Linux's default RLIMIT_STACK. */
export const DEFAULT_STACK_LIMIT = 8 * 1024 * 1024;
/** The least distance mmap_base keeps below the top (ppc64's MIN_GAP). */
const MMAP_MIN_GAP = 128 * 1024 * 1024;

/** An open file as a mapping needs it. */
export interface MappedFile {
  /** Identity of the file itself (device and inode): equal keys are the same file. */
  readonly key: string;
  /** Shown in /proc/PID/maps. */
  readonly path: string;
  readonly deviceMajor: number;
  readonly deviceMinor: number;
  readonly inode: number;
  /** The descriptor was opened for reading (FMODE_READ). */
  readonly readable: boolean;
  /** The descriptor was opened for writing (FMODE_WRITE). */
  readonly writable: boolean;
}

export type VmaBacking =
  | { readonly kind: "anonymous" }
  | { readonly kind: "file"; readonly file: MappedFile }
  /** MAP_SHARED | MAP_ANONYMOUS: a memory object shared by every mapping of it, across fork. */
  | { readonly kind: "shared-memory"; readonly object: number };

export interface Vma {
  readonly start: number;
  readonly end: number;
  /** PROT_READ | PROT_WRITE | PROT_EXEC. */
  readonly prot: number;
  /** MAP_SHARED: stores reach the backing and every other mapping of it. */
  readonly shared: boolean;
  /** A stack: faults below it extend it down (MAP_GROWSDOWN). */
  readonly growsDown: boolean;
  readonly backing: VmaBacking;
  /** Offset into the file or memory object of `start`; 0 for private anonymous memory. */
  readonly offset: number;
  /** PROT_WRITE may be granted (VM_MAYWRITE): false for shared mappings of read-only files. */
  readonly mayWrite: boolean;
  /** MADV_DONTFORK: a fork does not copy it. */
  readonly dontFork: boolean;
  /** MADV_WIPEONFORK: a fork's child gets it empty (zero-filled). */
  readonly wipeOnFork: boolean;
}

export interface Range {
  start: number;
  end: number;
}

/** Hears of every VMA added to or removed from a set, pieces of splits and merges included. */
export interface VmaObserver {
  attach(vma: Vma): void;
  detach(vma: Vma): void;
}

export interface VmaLayout {
  /** 4096 or 65536. */
  pageSize: number;
  /** vm.mmap_min_addr: nothing is mapped below it. */
  minAddress: number;
  /** TASK_SIZE: one past the highest user address; at most 2^47. */
  limit: number;
  stackGuardGap?: number;
  /** RLIMIT_STACK, which bounds how far a stack grows and where mmap_base lies. */
  stackLimit?: number;
  /** Highest address of top-down mmap placement; by default Linux's mmap_base without randomisation. */
  mmapBase?: number;
  /** RLIMIT_DATA for brk; unlimited by default. */
  dataLimit?: number;
  /** Allocates the identity of a new shared anonymous memory object (unique across address spaces). */
  allocateObjectId?: () => number;
}

export interface MmapRequest {
  address: number;
  length: number;
  prot: number;
  flags: number;
  /** The open file for a file mapping; null (or absent) with MAP_ANONYMOUS. */
  file?: MappedFile | null;
  offset?: number;
}

export interface MmapResult {
  address: number;
  /** Mappings MAP_FIXED replaced: their pages must go. */
  removed: Vma[];
}

/** The outcome of a call Linux applies piecewise: what changed before the error, if any. */
export interface PartialResult {
  /** Ranges whose VMAs changed (their pages need re-protecting or other attention). */
  changed: Range[];
  error: AstraError | null;
}

export interface MadviseResult extends PartialResult {
  /** MADV_DONTNEED / MADV_FREE: pages to drop from the page table. */
  drop: Range[];
}

export interface MremapResult {
  address: number;
  /** Mappings unmapped (destination of MREMAP_FIXED, shrunk tails): drop their pages first. */
  removed: Vma[];
  /** Pages to move from [from, from + length) to [to, to + length), after `removed` is dropped. */
  moved: { from: number; to: number; length: number } | null;
  error: AstraError | null;
}

export interface BrkResult {
  brk: number;
  removed: Vma[];
}

let nextObjectId = 1;
function defaultObjectId(): number {
  return nextObjectId++;
}

const ERRNO_CODES = new Map<Errno, Code>([
  [Errno.EINVAL, Code.INVALID_ARGUMENT],
  [Errno.EBADF, Code.INVALID_ARGUMENT],
  [Errno.ENOMEM, Code.RESOURCE_EXHAUSTED],
  [Errno.EEXIST, Code.ALREADY_EXISTS],
  [Errno.EFAULT, Code.OUT_OF_RANGE],
  [Errno.EOVERFLOW, Code.OUT_OF_RANGE],
  [Errno.EACCES, Code.PERMISSION_DENIED],
  [Errno.EPERM, Code.PERMISSION_DENIED],
  [Errno.ENOTSUP, Code.UNIMPLEMENTED],
  [Errno.ENODEV, Code.FAILED_PRECONDITION],
]);

/** An AstraError carrying a memory-management errno, with the gRPC code that fits it. */
export function memoryError(errno: Errno, argument: string, message: string): AstraError {
  return new AstraError(ERRNO_CODES.get(errno) ?? Code.FAILED_PRECONDITION, errno, message, {
    argument,
    service: "vmm",
  });
}

/**
 * A 64-bit system-call argument as a number. Values beyond 2^53 become a number far above any
 * user address with the same offset in its page, so they fail the same checks (EINVAL for an
 * unaligned one, ENOMEM) the real value fails.
 */
export function userNumber(value: bigint): number {
  const unsigned = BigInt.asUintN(64, value);
  if (unsigned <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(unsigned);
  return 2 ** 53 - 4096 + Number(unsigned & 0xfffn);
}

/**
 * ppc64's arch_validate_prot, the first check of mmap(2): the PROT_* bits Linux knows. PROT_SAO
 * is refused, as a pseries partition refuses it.
 */
export function checkMmapProt(prot: number): void {
  if (prot & ~(PROT_ACCESS | PROT_SEM)) {
    throw memoryError(Errno.EINVAL, "prot", `protection ${hex(prot)} has bits this machine does not support`);
  }
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

/** Whether two adjacent VMAs (a.end === b.start) can be one. */
export function vmasCompatible(a: Vma, b: Vma): boolean {
  if (
    a.end !== b.start || a.prot !== b.prot || a.shared !== b.shared || a.growsDown !== b.growsDown ||
    a.mayWrite !== b.mayWrite || a.dontFork !== b.dontFork || a.wipeOnFork !== b.wipeOnFork
  ) return false;
  const x = a.backing, y = b.backing;
  if (x.kind === "anonymous") return y.kind === "anonymous";
  if (x.kind === "file") {
    return y.kind === "file" && x.file.key === y.file.key && b.offset === a.offset + (a.end - a.start);
  }
  return y.kind === "shared-memory" && x.object === y.object && b.offset === a.offset + (a.end - a.start);
}

/** The part [start, end) of a VMA. */
function clip(vma: Vma, start: number, end: number): Vma {
  const offset = vma.backing.kind === "anonymous" ? 0 : vma.offset + (start - vma.start);
  return { ...vma, start, end, offset };
}

/** Whether any access at all is allowed (vma_is_accessible). */
function accessible(vma: Vma): boolean {
  return (vma.prot & PROT_ACCESS) !== 0;
}

export class VmaSet {
  readonly pageSize: number;
  readonly minAddress: number;
  readonly limit: number;
  readonly stackGuardGap: number;
  readonly mmapBase: number;
  /** Where bottom-up placement starts when top-down finds no room (TASK_UNMAPPED_BASE). */
  readonly unmappedBase: number;
  stackLimit: number;
  dataLimit: number;
  /** mm->start_brk, mm->brk (unaligned, as the program asked), mm->start_stack. */
  private startBrkValue = 0;
  private brkValue = 0;
  private dataBytes = 0;
  private startStackValue = 0;
  private vmas: Vma[] = [];
  private readonly allocateObjectId: () => number;

  constructor(layout: VmaLayout, private readonly observer: VmaObserver | null = null) {
    const { pageSize, minAddress, limit } = layout;
    if (pageSize !== 4096 && pageSize !== 65536) {
      throw memoryError(Errno.EINVAL, "pageSize", `page size ${pageSize} is not 4096 or 65536`);
    }
    if (!Number.isSafeInteger(limit) || limit <= 0 || limit > 2 ** 47 || limit % pageSize !== 0) {
      throw memoryError(
        Errno.EINVAL,
        "limit",
        `user address limit ${hex(limit)} is not page-aligned in (0, 2^47]`,
      );
    }
    if (!Number.isSafeInteger(minAddress) || minAddress < 0 || minAddress >= limit) {
      throw memoryError(
        Errno.EINVAL,
        "minAddress",
        `minimum address ${hex(minAddress)} is not below the limit`,
      );
    }
    this.pageSize = pageSize;
    this.minAddress = minAddress;
    this.limit = limit;
    this.stackGuardGap = this.alignUp(layout.stackGuardGap ?? DEFAULT_STACK_GUARD_GAP);
    this.stackLimit = layout.stackLimit ?? DEFAULT_STACK_LIMIT;
    this.dataLimit = layout.dataLimit ?? Infinity;
    this.mmapBase = layout.mmapBase ?? this.defaultMmapBase();
    this.unmappedBase = this.alignUp(Math.floor(limit / 4));
    this.allocateObjectId = layout.allocateObjectId ?? defaultObjectId;
  }

  /** mmap_base as Linux's mmap_base() computes it with randomisation off. */
  private defaultMmapBase(): number {
    const maxGap = Math.floor(this.limit / 6) * 5;
    const gap = Math.min(Math.max(this.stackLimit + this.stackGuardGap, MMAP_MIN_GAP), maxGap);
    return this.alignUp(this.limit - gap);
  }

  get startBrk(): number {
    return this.startBrkValue;
  }

  get programBreak(): number {
    return this.brkValue;
  }

  get startStack(): number {
    return this.startStackValue;
  }

  /** The VMAs, sorted by address. */
  list(): readonly Vma[] {
    return this.vmas;
  }

  get count(): number {
    return this.vmas.length;
  }

  alignUp(value: number): number {
    return Math.ceil(value / this.pageSize) * this.pageSize;
  }

  alignDown(value: number): number {
    return Math.floor(value / this.pageSize) * this.pageSize;
  }

  /** Index of the first VMA ending above `address`. */
  private indexAfter(address: number): number {
    let lo = 0, hi = this.vmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.vmas[mid].end <= address) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The VMA containing `address`. */
  find(address: number): Vma | undefined {
    const vma = this.vmas[this.indexAfter(address)];
    return vma && vma.start <= address ? vma : undefined;
  }

  /** The first VMA ending above `address` (find_vma). */
  findFrom(address: number): Vma | undefined {
    return this.vmas[this.indexAfter(address)];
  }

  /** Whether any VMA overlaps [start, end). */
  intersects(start: number, end: number): boolean {
    const vma = this.vmas[this.indexAfter(start)];
    return vma !== undefined && vma.start < end;
  }

  /** vm_start_gap: a stack's start less the guard gap below it. */
  private startGap(vma: Vma): number {
    return vma.growsDown ? Math.max(vma.start - this.stackGuardGap, 0) : vma.start;
  }

  // --- structural primitives -------------------------------------------------------------

  /** Replaces `count` VMAs at `index` by `replacement`, telling the observer, then merges. */
  private rewrite(index: number, count: number, replacement: Vma[]): void {
    const removed = this.vmas.splice(index, count, ...replacement);
    // Attach before detach: an object mapped by both old and new pieces never looks unmapped.
    for (const vma of replacement) this.observer?.attach(vma);
    for (const vma of removed) this.observer?.detach(vma);
    this.mergeAround(index, index + replacement.length);
  }

  /** Merges compatible neighbours among the VMAs at [from - 1, to]. */
  private mergeAround(from: number, to: number): void {
    let i = Math.max(from - 1, 0);
    let stop = Math.min(to, this.vmas.length - 1);
    while (i < stop) {
      const a = this.vmas[i], b = this.vmas[i + 1];
      if (vmasCompatible(a, b)) {
        const merged = { ...a, end: b.end };
        this.vmas.splice(i, 2, merged);
        this.observer?.attach(merged);
        this.observer?.detach(a);
        this.observer?.detach(b);
        stop--;
      } else {
        i++;
      }
    }
  }

  /**
   * Replaces every part of a VMA inside [start, end) by transform(part), or removes it when the
   * transform gives null. Returns the parts as they were.
   */
  private transformRange(start: number, end: number, transform: (part: Vma) => Vma | null): Vma[] {
    const first = this.indexAfter(start);
    let last = first;
    while (last < this.vmas.length && this.vmas[last].start < end) last++;
    if (first === last) return [];
    const replacement: Vma[] = [];
    const parts: Vma[] = [];
    for (let k = first; k < last; k++) {
      const vma = this.vmas[k];
      if (vma.start < start) replacement.push(clip(vma, vma.start, start));
      const part = clip(vma, Math.max(vma.start, start), Math.min(vma.end, end));
      parts.push(part);
      const changed = transform(part);
      if (changed) replacement.push(changed);
      if (vma.end > end) replacement.push(clip(vma, end, vma.end));
    }
    this.rewrite(first, last - first, replacement);
    return parts;
  }

  /** Removes [start, end) from every VMA; returns the removed parts. */
  private carve(start: number, end: number): Vma[] {
    return this.transformRange(start, end, () => null);
  }

  /** Adds a VMA over a free range. */
  private insert(vma: Vma): void {
    this.rewrite(this.indexAfter(vma.start), 0, [vma]);
  }

  // --- placement ------------------------------------------------------------------------

  /** A hint is taken if the range is free with the stack guard gap respected. */
  private hintFits(address: number, length: number): boolean {
    if (address < this.minAddress || address > this.limit - length) return false;
    const index = this.indexAfter(address);
    const next = this.vmas[index];
    const prev = index > 0 ? this.vmas[index - 1] : undefined;
    return (!next || address + length <= this.startGap(next)) && (!prev || address >= prev.end);
  }

  /** Linux's vm_unmapped_area: the highest (top-down) or lowest free range of `length`. */
  private unmappedArea(length: number, low: number, high: number, topDown: boolean): number {
    const n = this.vmas.length;
    for (let step = 0; step <= n; step++) {
      const i = topDown ? n - step : step;
      const gapStart = Math.max(i > 0 ? this.vmas[i - 1].end : 0, low);
      const gapEnd = Math.min(i < n ? this.startGap(this.vmas[i]) : this.limit, high);
      if (gapEnd - gapStart >= length) return topDown ? gapEnd - length : gapStart;
    }
    return -1;
  }

  /** get_unmapped_area for a placement that is not MAP_FIXED. */
  private place(hint: number, length: number): number {
    if (length > this.limit - this.minAddress) {
      throw memoryError(Errno.ENOMEM, "length", `${length} bytes do not fit the user address space`);
    }
    if (hint !== 0) {
      // round_hint_to_min: a hint below mmap_min_addr means mmap_min_addr.
      let address = this.alignDown(hint);
      if (address < this.minAddress) address = this.alignUp(this.minAddress);
      if (this.hintFits(address, length)) return address;
    }
    const low = Math.max(this.pageSize, this.alignUp(this.minAddress));
    let address = this.unmappedArea(length, low, this.mmapBase, true);
    if (address < 0) address = this.unmappedArea(length, this.unmappedBase, this.limit, false);
    if (address < 0) {
      throw memoryError(Errno.ENOMEM, "length", `no free range of ${length} bytes in the address space`);
    }
    return address;
  }

  /** The checks get_unmapped_area makes of a MAP_FIXED address. */
  private checkFixed(address: number, length: number, argument: string): void {
    if (address % this.pageSize !== 0) {
      throw memoryError(Errno.EINVAL, argument, `fixed address ${hex(address)} is not page-aligned`);
    }
    if (length > this.limit - this.minAddress || address > this.limit - length) {
      throw memoryError(
        Errno.ENOMEM,
        argument,
        `[${hex(address)}, +${hex(length)}) is beyond the user address limit`,
      );
    }
    if (address < this.minAddress) {
      throw memoryError(
        Errno.EPERM,
        argument,
        `${hex(address)} is below mmap_min_addr ${hex(this.minAddress)}`,
      );
    }
  }

  // --- system calls ---------------------------------------------------------------------

  /**
   * mmap(2). Throws an AstraError with Linux's errno, checking in Linux's order: the system call's
   * own checks (protection, the offset's alignment), the descriptor (ksys_mmap_pgoff), then
   * do_mmap's: length, placement, then what the file or the mapping type allows. An offset past
   * Number.MAX_SAFE_INTEGER (Infinity) stands for one past Linux's largest file: EOVERFLOW.
   */
  mmap(request: MmapRequest): MmapResult {
    const { prot } = request;
    let { flags } = request;
    const file = request.file ?? null;
    const offset = request.offset ?? 0;
    const anonymous = (flags & MAP_ANONYMOUS) !== 0;
    checkMmapProt(prot);
    if (Number.isSafeInteger(offset) && offset % this.pageSize !== 0) {
      throw memoryError(Errno.EINVAL, "offset", `file offset ${hex(offset)} is not page-aligned`);
    }
    if (!anonymous && !file) throw memoryError(Errno.EBADF, "fd", "a file mapping needs an open file");
    if (flags & MAP_HUGETLB) {
      if (!anonymous) throw memoryError(Errno.EINVAL, "flags", `${file!.path} is not on hugetlbfs`);
      throw memoryError(Errno.ENOMEM, "flags", "no huge pages are reserved");
    }
    if (!Number.isSafeInteger(request.length) || request.length <= 0) {
      throw memoryError(Errno.EINVAL, "length", "mmap of zero bytes");
    }
    if (flags & MAP_FIXED_NOREPLACE) flags |= MAP_FIXED;
    const length = this.alignUp(request.length);
    if (length > this.limit) {
      throw memoryError(Errno.ENOMEM, "length", `${request.length} bytes exceed the address space`);
    }

    let address: number;
    if (flags & MAP_FIXED) {
      this.checkFixed(request.address, length, "addr");
      address = request.address;
      if ((flags & MAP_FIXED_NOREPLACE) && this.intersects(address, address + length)) {
        throw memoryError(
          Errno.EEXIST,
          "addr",
          `[${hex(address)}, ${hex(address + length)}) is already mapped`,
        );
      }
    } else {
      address = this.place(request.address, length);
    }

    const type = flags & MAP_TYPE;
    const growsDown = (flags & MAP_GROWSDOWN) !== 0;
    if (file && !anonymous) {
      if (!Number.isSafeInteger(offset) || offset < 0) {
        throw memoryError(Errno.EOVERFLOW, "offset", "the mapping reaches past the largest file offset");
      }
      if (type === MAP_SHARED_VALIDATE && flags & ~LEGACY_MAP_MASK) {
        throw memoryError(Errno.ENOTSUP, "flags", `unknown mapping flags ${hex(flags & ~LEGACY_MAP_MASK)}`);
      }
      if ((type === MAP_SHARED || type === MAP_SHARED_VALIDATE) && (prot & PROT_WRITE) && !file.writable) {
        throw memoryError(
          Errno.EACCES,
          "fd",
          `${file.path} is not open for writing, so it cannot be mapped shared and writable`,
        );
      }
      if (type !== MAP_SHARED && type !== MAP_SHARED_VALIDATE && type !== MAP_PRIVATE) {
        throw memoryError(Errno.EINVAL, "flags", `mapping type ${type} is not MAP_SHARED or MAP_PRIVATE`);
      }
      if (!file.readable) throw memoryError(Errno.EACCES, "fd", `${file.path} is not open for reading`);
      if (growsDown) throw memoryError(Errno.EINVAL, "flags", "a file mapping cannot grow down");
    } else if (type === MAP_SHARED) {
      if (growsDown) throw memoryError(Errno.EINVAL, "flags", "a shared anonymous mapping cannot grow down");
    } else if (type !== MAP_PRIVATE) {
      throw memoryError(
        Errno.EINVAL,
        "flags",
        `mapping type ${type} is not MAP_SHARED or MAP_PRIVATE (MAP_SHARED_VALIDATE needs a file)`,
      );
    }
    const shared = type !== MAP_PRIVATE;

    let backing: VmaBacking;
    if (!anonymous && file) backing = { kind: "file", file };
    else if (shared) backing = { kind: "shared-memory", object: this.allocateObjectId() };
    else backing = { kind: "anonymous" };
    const vma: Vma = {
      start: address,
      end: address + length,
      prot: prot & PROT_ACCESS,
      shared,
      growsDown,
      backing,
      offset: backing.kind === "anonymous" ? 0 : backing.kind === "file" ? offset : 0,
      mayWrite: !(shared && backing.kind === "file" && !backing.file.writable),
      dontFork: false,
      wipeOnFork: false,
    };
    const removed = this.carve(address, address + length);
    this.insert(vma);
    return { address, removed };
  }

  /** munmap(2): returns the parts of VMAs removed. */
  munmap(start: number, length: number): Vma[] {
    this.checkUnmapRange(start, length);
    return this.carve(start, start + this.alignUp(length));
  }

  private checkUnmapRange(start: number, length: number): void {
    if (start % this.pageSize !== 0 || start > this.limit || length > this.limit - start) {
      throw memoryError(
        Errno.EINVAL,
        "addr",
        `[${hex(start)}, +${hex(length)}) is not a page-aligned user range`,
      );
    }
    if (this.alignUp(length) === 0) throw memoryError(Errno.EINVAL, "length", "munmap of zero bytes");
  }

  /**
   * mprotect(2). Linux changes VMA after VMA and stops at the first hole (ENOMEM) or at a VMA
   * that may not become writable (EACCES), keeping the changes already made.
   */
  mprotect(start: number, length: number, prot: number): PartialResult {
    const none: PartialResult = { changed: [], error: null };
    const grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
    prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP);
    if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) {
      return {
        ...none,
        error: memoryError(Errno.EINVAL, "prot", "PROT_GROWSDOWN and PROT_GROWSUP together"),
      };
    }
    if (start % this.pageSize !== 0) {
      return { ...none, error: memoryError(Errno.EINVAL, "addr", `${hex(start)} is not page-aligned`) };
    }
    if (length === 0) return none;
    const end = start + this.alignUp(length);
    if (end <= start || end > Number.MAX_SAFE_INTEGER) {
      return { ...none, error: memoryError(Errno.ENOMEM, "length", "the range wraps around") };
    }
    if (prot & ~(PROT_ACCESS | PROT_SEM)) {
      return {
        ...none,
        error: memoryError(Errno.EINVAL, "prot", `protection ${hex(prot)} has unsupported bits`),
      };
    }
    const first = this.findFrom(start);
    const noMapping = () =>
      memoryError(Errno.ENOMEM, "addr", `[${hex(start)}, ${hex(end)}) is not fully mapped`);
    if (grows & PROT_GROWSUP) {
      return { ...none, error: memoryError(Errno.EINVAL, "prot", "no mapping grows up on this machine") };
    }
    if (!first) return { ...none, error: noMapping() };
    if (grows & PROT_GROWSDOWN) {
      if (first.start >= end) return { ...none, error: noMapping() };
      if (!first.growsDown) {
        return {
          ...none,
          error: memoryError(Errno.EINVAL, "prot", "PROT_GROWSDOWN on a mapping that does not grow down"),
        };
      }
      start = first.start;
    } else if (first.start > start) {
      return { ...none, error: noMapping() };
    }

    const access = prot & PROT_ACCESS;
    let cursor = start;
    let error: AstraError | null = null;
    for (let i = this.indexAfter(start); i < this.vmas.length && this.vmas[i].start < end; i++) {
      const vma = this.vmas[i];
      if (vma.start > cursor) {
        error = noMapping();
        break;
      }
      if ((access & PROT_WRITE) && !vma.mayWrite) {
        error = memoryError(
          Errno.EACCES,
          "prot",
          `the mapping at ${hex(vma.start)} may not be made writable`,
        );
        break;
      }
      cursor = Math.min(vma.end, end);
    }
    if (!error && cursor < end) error = noMapping();
    if (cursor > start) this.transformRange(start, cursor, (part) => ({ ...part, prot: access }));
    return { changed: cursor > start ? [{ start, end: cursor }] : [], error };
  }

  /** madvise(2): hints are accepted; DONTNEED/FREE report what to drop; fork flags are set. */
  madvise(start: number, length: number, advice: number): MadviseResult {
    const result: MadviseResult = { changed: [], drop: [], error: null };
    const known = MADV_HINTS.has(advice) ||
      [MADV_DONTNEED, MADV_FREE, MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK]
        .includes(advice);
    if (!known) return { ...result, error: memoryError(Errno.EINVAL, "advice", `unknown advice ${advice}`) };
    if (start % this.pageSize !== 0) {
      return { ...result, error: memoryError(Errno.EINVAL, "addr", `${hex(start)} is not page-aligned`) };
    }
    const aligned = this.alignUp(length);
    if (length > 0 && aligned === 0) {
      return { ...result, error: memoryError(Errno.EINVAL, "length", "length overflows") };
    }
    const end = start + aligned;
    if (end < start || end > Number.MAX_SAFE_INTEGER) {
      return { ...result, error: memoryError(Errno.EINVAL, "length", "the range wraps around") };
    }
    if (end === start) return result;

    // Visit every VMA part in [start, end); holes give ENOMEM at the end (madvise_walk_vmas).
    const parts: Vma[] = [];
    let hole = false;
    let cursor = start;
    for (let i = this.indexAfter(start); i < this.vmas.length && this.vmas[i].start < end; i++) {
      const vma = this.vmas[i];
      if (vma.start > cursor) hole = true;
      parts.push(clip(vma, Math.max(vma.start, start), Math.min(vma.end, end)));
      cursor = Math.min(vma.end, end);
    }
    if (cursor < end) hole = true;

    for (const part of parts) {
      const refusal = this.adviceRefusal(part, advice);
      if (refusal) {
        result.error = refusal;
        return result;
      }
      const range = { start: part.start, end: part.end };
      switch (advice) {
        case MADV_DONTNEED:
        case MADV_FREE:
          result.drop.push(range);
          break;
        case MADV_DONTFORK:
        case MADV_DOFORK:
        case MADV_WIPEONFORK:
        case MADV_KEEPONFORK:
          this.transformRange(part.start, part.end, (p) => ({
            ...p,
            dontFork: advice === MADV_DONTFORK ? true : advice === MADV_DOFORK ? false : p.dontFork,
            wipeOnFork: advice === MADV_WIPEONFORK ? true : advice === MADV_KEEPONFORK ? false : p.wipeOnFork,
          }));
          result.changed.push(range);
          break;
      }
    }
    if (hole) {
      result.error = memoryError(Errno.ENOMEM, "addr", `[${hex(start)}, ${hex(end)}) is not fully mapped`);
    }
    return result;
  }

  /** Why Linux refuses an advice for a VMA, or null. */
  private adviceRefusal(vma: Vma, advice: number): AstraError | null {
    const privateAnonymous = vma.backing.kind === "anonymous";
    if (advice === MADV_FREE && !privateAnonymous) {
      return memoryError(Errno.EINVAL, "advice", "MADV_FREE applies to private anonymous memory only");
    }
    if (advice === MADV_WIPEONFORK && !privateAnonymous) {
      return memoryError(Errno.EINVAL, "advice", "MADV_WIPEONFORK applies to private anonymous memory only");
    }
    if (advice === MADV_REMOVE) {
      if (privateAnonymous) return memoryError(Errno.EINVAL, "advice", "MADV_REMOVE needs a shared mapping");
      if (!vma.shared || !vma.mayWrite) {
        return memoryError(Errno.EACCES, "advice", "MADV_REMOVE needs a shared, writable mapping");
      }
      // Discarding the pages of every mapping of the object needs a reverse map vmm does not keep;
      // Linux answers the same for a filesystem that cannot punch holes.
      return memoryError(
        Errno.ENOTSUP,
        "advice",
        "MADV_REMOVE (punching holes in shared memory) is not supported",
      );
    }
    return null;
  }

  /** mremap(2), with Linux's order of checks and effects. */
  mremap(
    oldAddress: number,
    oldLength: number,
    newLength: number,
    flags: number,
    newAddress: number,
  ): MremapResult {
    const fail = (errno: Errno, argument: string, message: string): MremapResult => ({
      address: 0,
      removed: [],
      moved: null,
      error: memoryError(errno, argument, message),
    });
    if (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) {
      return fail(Errno.EINVAL, "flags", `unknown flags ${hex(flags)}`);
    }
    if ((flags & MREMAP_FIXED) && !(flags & MREMAP_MAYMOVE)) {
      return fail(Errno.EINVAL, "flags", "MREMAP_FIXED needs MREMAP_MAYMOVE");
    }
    if ((flags & MREMAP_DONTUNMAP) && (!(flags & MREMAP_MAYMOVE) || oldLength !== newLength)) {
      return fail(Errno.EINVAL, "flags", "MREMAP_DONTUNMAP needs MREMAP_MAYMOVE and equal lengths");
    }
    if (oldAddress % this.pageSize !== 0) {
      return fail(Errno.EINVAL, "old_address", `${hex(oldAddress)} is not page-aligned`);
    }
    let oldLen = this.alignUp(oldLength);
    const newLen = this.alignUp(newLength);
    if (newLen === 0) return fail(Errno.EINVAL, "new_size", "a new size of zero");
    if (!this.find(oldAddress)) return fail(Errno.EFAULT, "old_address", `${hex(oldAddress)} is not mapped`);

    const removed: Vma[] = [];
    const partial = (error: AstraError): MremapResult => ({ address: 0, removed, moved: null, error });
    const unmap = (start: number, length: number): AstraError | null => {
      try {
        removed.push(...this.munmap(start, length));
        return null;
      } catch (error) {
        return error as AstraError;
      }
    };

    if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
      if (flags & MREMAP_FIXED) {
        if (newAddress % this.pageSize !== 0) {
          return fail(Errno.EINVAL, "new_address", `${hex(newAddress)} is not page-aligned`);
        }
        if (newLen > this.limit || newAddress > this.limit - newLen) {
          return fail(Errno.EINVAL, "new_address", "the new range is beyond the user address limit");
        }
        if (oldAddress + oldLen > newAddress && newAddress + newLen > oldAddress) {
          return fail(Errno.EINVAL, "new_address", "the old and new ranges overlap");
        }
        const error = unmap(newAddress, newLen);
        if (error) return partial(error);
      }
      if (oldLen > newLen) {
        const error = unmap(oldAddress + newLen, oldLen - newLen);
        if (error) return partial(error);
        oldLen = newLen;
      }
      const vma = this.resizable(oldAddress, oldLen, newLen);
      if (vma instanceof AstraError) return partial(vma);
      let target: number;
      try {
        if (flags & MREMAP_FIXED) {
          this.checkFixed(newAddress, newLen, "new_address");
          target = newAddress;
        } else {
          target = this.place(newAddress, newLen);
        }
      } catch (error) {
        return partial(error as AstraError);
      }
      return this.move(vma, oldAddress, oldLen, newLen, target, (flags & MREMAP_DONTUNMAP) !== 0, removed);
    }

    if (oldLen >= newLen) {
      if (oldLen !== newLen) {
        const error = unmap(oldAddress + newLen, oldLen - newLen);
        if (error) return partial(error);
      }
      return { address: oldAddress, removed, moved: null, error: null };
    }

    const vma = this.resizable(oldAddress, oldLen, newLen);
    if (vma instanceof AstraError) return partial(vma);
    if (oldLen === vma.end - oldAddress && this.expandable(vma, newLen - oldLen)) {
      const index = this.indexAfter(vma.start);
      this.rewrite(index, 1, [{ ...vma, end: vma.end + (newLen - oldLen) }]);
      return { address: oldAddress, removed, moved: null, error: null };
    }
    if (!(flags & MREMAP_MAYMOVE)) {
      return partial(
        memoryError(Errno.ENOMEM, "new_size", "no room to grow in place and MREMAP_MAYMOVE not given"),
      );
    }
    let target: number;
    try {
      target = this.place(0, newLen);
    } catch (error) {
      return partial(error as AstraError);
    }
    return this.move(vma, oldAddress, oldLen, newLen, target, false, removed);
  }

  /** vma_to_resize: the VMA [address, address + oldLen) lies in, or the error. */
  private resizable(address: number, oldLen: number, newLen: number): Vma | AstraError {
    const vma = this.find(address);
    if (!vma) return memoryError(Errno.EFAULT, "old_address", `${hex(address)} is not mapped`);
    if (oldLen === 0 && !vma.shared) {
      return memoryError(Errno.EINVAL, "old_size", "an old size of zero duplicates only shared mappings");
    }
    if (oldLen > vma.end - address) {
      return memoryError(Errno.EFAULT, "old_size", "the old range spans more than one mapping");
    }
    if (newLen !== oldLen && vma.backing.kind !== "anonymous") {
      const end = vma.offset + (address - vma.start) + newLen;
      if (!Number.isSafeInteger(end)) {
        return memoryError(Errno.EINVAL, "new_size", "the file offset overflows");
      }
    }
    return vma;
  }

  /** vma_expandable: the range above the VMA is free and within the limit. */
  private expandable(vma: Vma, delta: number): boolean {
    const end = vma.end + delta;
    return end <= this.limit && !this.intersects(vma.end, end);
  }

  /** move_vma: a copy of the VMA's part at `target`, then the old part unmapped (unless DONTUNMAP). */
  private move(
    vma: Vma,
    oldAddress: number,
    oldLen: number,
    newLen: number,
    target: number,
    keepSource: boolean,
    removed: Vma[],
  ): MremapResult {
    const offset = vma.backing.kind === "anonymous" ? 0 : vma.offset + (oldAddress - vma.start);
    const moved: Vma = { ...vma, start: target, end: target + newLen, offset };
    // A duplicate (old size 0) of a shared mapping leaves the original in place.
    this.insert(moved);
    if (oldLen > 0 && !keepSource) this.carve(oldAddress, oldAddress + oldLen);
    return {
      address: target,
      removed,
      moved: oldLen > 0 ? { from: oldAddress, to: target, length: oldLen } : null,
      error: null,
    };
  }

  /** Sets where brk starts (exec: the end of the highest segment) and the data size RLIMIT_DATA counts. */
  setProgramBreak(start: number, dataBytes = 0): void {
    if (!Number.isSafeInteger(start) || start < 0 || start % this.pageSize !== 0 || start > this.limit) {
      throw memoryError(
        Errno.EINVAL,
        "start",
        `program break ${hex(start)} is not a page-aligned user address`,
      );
    }
    this.startBrkValue = start;
    this.brkValue = start;
    this.dataBytes = dataBytes;
  }

  /** Records the initial stack pointer (mm->start_stack), which names the [stack] VMA. */
  setStartStack(address: number): void {
    this.startStackValue = address;
  }

  /**
   * brk(2): moves the break and returns it; when it cannot, returns the current break, as Linux
   * does. The heap grows only into free space a page short of the next mapping's guard gap.
   */
  brk(value: number): BrkResult {
    const current = this.brkValue;
    const unchanged = { brk: current, removed: [] };
    if (!Number.isSafeInteger(value) || value < this.startBrkValue) return unchanged;
    if (value - this.startBrkValue + this.dataBytes > this.dataLimit) return unchanged;
    const newBrk = this.alignUp(value);
    const oldBrk = this.alignUp(current);
    if (newBrk === oldBrk) {
      this.brkValue = value;
      return { brk: value, removed: [] };
    }
    if (value <= current) {
      const vma = this.findFrom(newBrk);
      if (!vma || vma.start >= oldBrk) return unchanged;
      this.brkValue = value;
      return { brk: value, removed: this.carve(newBrk, oldBrk) };
    }
    if (newBrk > this.limit) return unchanged;
    const next = this.findFrom(oldBrk);
    if (next && newBrk + this.pageSize > this.startGap(next)) return unchanged;
    this.insert({
      start: oldBrk,
      end: newBrk,
      prot: PROT_READ | PROT_WRITE,
      shared: false,
      growsDown: false,
      backing: { kind: "anonymous" },
      offset: 0,
      mayWrite: true,
      dontFork: false,
      wipeOnFork: false,
    });
    this.brkValue = value;
    return { brk: value, removed: [] };
  }

  /**
   * Extends the stack VMA above `address` down to cover it (expand_downwards): refused below
   * mmap_min_addr, within the guard gap of an accessible mapping below, or past RLIMIT_STACK.
   */
  growStack(address: number): boolean {
    const target = this.alignDown(address);
    const index = this.indexAfter(address);
    const vma = this.vmas[index];
    if (!vma || !vma.growsDown || vma.start <= address) return false;
    if (target < this.minAddress) return false;
    const prev = index > 0 ? this.vmas[index - 1] : undefined;
    if (prev && !prev.growsDown && accessible(prev) && target - prev.end < this.stackGuardGap) return false;
    if (vma.end - target > this.stackLimit) return false;
    const grown = vma.backing.kind === "anonymous" ? 0 : vma.start - target;
    this.rewrite(index, 1, [{ ...vma, start: target, offset: vma.offset - grown }]);
    return true;
  }

  /** The set a fork's child starts with: every VMA but MADV_DONTFORK ones, and the same breaks. */
  fork(observer: VmaObserver | null): VmaSet {
    const child = new VmaSet({
      pageSize: this.pageSize,
      minAddress: this.minAddress,
      limit: this.limit,
      stackGuardGap: this.stackGuardGap,
      stackLimit: this.stackLimit,
      mmapBase: this.mmapBase,
      dataLimit: this.dataLimit,
      allocateObjectId: this.allocateObjectId,
    }, observer);
    child.startBrkValue = this.startBrkValue;
    child.brkValue = this.brkValue;
    child.dataBytes = this.dataBytes;
    child.startStackValue = this.startStackValue;
    child.vmas = this.vmas.filter((vma) => !vma.dontFork).map((vma) => ({ ...vma }));
    for (const vma of child.vmas) observer?.attach(vma);
    return child;
  }

  /** Removes every VMA (the address space is going away); returns them. */
  clear(): Vma[] {
    const all = this.vmas;
    this.vmas = [];
    for (const vma of all) this.observer?.detach(vma);
    return all;
  }

  /** /proc/PID/maps, formatted as Linux's show_map_vma. */
  maps(): string {
    let text = "";
    for (const vma of this.vmas) {
      const perms = (vma.prot & PROT_READ ? "r" : "-") + (vma.prot & PROT_WRITE ? "w" : "-") +
        (vma.prot & PROT_EXEC ? "x" : "-") + (vma.shared ? "s" : "p");
      let offset = 0, major = 0, minor = 0, inode = 0;
      let name = "";
      if (vma.backing.kind === "file") {
        ({ deviceMajor: major, deviceMinor: minor, inode } = vma.backing.file);
        offset = vma.offset;
        name = vma.backing.file.path;
      } else if (vma.backing.kind === "shared-memory") {
        // Linux backs shared anonymous memory with an unlinked shmem file.
        offset = vma.offset;
        minor = 1;
        inode = vma.backing.object;
        name = "/dev/zero (deleted)";
      } else if (vma.start <= this.brkValue && vma.end >= this.startBrkValue) {
        name = "[heap]";
      } else if (vma.start <= this.startStackValue && vma.end >= this.startStackValue) {
        name = "[stack]";
      }
      const head =
        `${vma.start.toString(16).padStart(8, "0")}-${vma.end.toString(16).padStart(8, "0")} ${perms} ` +
        `${offset.toString(16).padStart(8, "0")} ${major.toString(16).padStart(2, "0")}:` +
        `${minor.toString(16).padStart(2, "0")} ${inode} `;
      text += name ? `${head.padEnd(72)} ${name}\n` : `${head}\n`;
    }
    return text;
  }
}
