// The address spaces vmm serves, by the ids it hands out, and the operation behind every RPC of
// the contract. The memory manager (aspace.ts) decides layouts, faults and copy-on-write; this
// layer adds what a service needs around it: ids that are never reused (not even across a
// restart), one call at a time per address space, the frames' owner for pmm, a commit of the
// batched table changes at the end of every call, the holds on the files mappings use (given back
// at the end of the call that unmapped their last user), the figures, and the pages whose frames
// an address space's own page table does not hold ("foreign" pages):
//
// - explicit pages (MapPage, MapRegion): a physical frame the caller owns, mapped as Linux's
//   remap_pfn_range maps one. An anonymous mapping of the same range reserves the addresses (so
//   mmap places nothing there and /proc/PID/maps shows it) and carries the protection; vmm never
//   allocates or frees the frame, and the translation is entered at once.
// - borrowed pages (CopyOnWrite): another address space's frame, shared read-only with a
//   reference held; the first store copies it into a page of the borrower's own.
import {
  FaultAction,
  FaultResult,
  MappingKind,
  MappingRole,
  PageFlag,
} from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import {
  decodeHpte,
  HPTE_BYTES,
  pageRealAddress,
  SEGMENT_256M,
  SEGMENT_SHIFT_256M,
  type SlbEntry,
  userPp,
  WIMG_MEMORY,
} from "../../lib/ppc/hpt.ts";
import { SEGV_ACCERR, SEGV_MAPERR, SIGSEGV } from "../sched/signals.ts";
import {
  type AccessType,
  type AddressSpace,
  type FaultResolution,
  type GuestMemory,
  MemoryManager,
  type MmuControl,
} from "./aspace.ts";
import type { BackedFile, OpenFileStore } from "./files.ts";
import { type FrameAccount, frameOwner, type OwnedFrames } from "./frames.ts";
import type { FileHolds, HoldOrigin } from "./holds.ts";
import type { HashPageTable } from "./hpt.ts";
import type { MachineTlb, TranslationBatch } from "./remote.ts";
import {
  MADV_DONTNEED,
  MADV_FREE,
  MADV_WILLNEED,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_TYPE,
  memoryError,
  MREMAP_FIXED,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  type Vma,
} from "./vma.ts";

const SEGMENT_BYTES = 2 ** SEGMENT_SHIFT_256M;
/** PageFlag's READ, WRITE and EXECUTE are the bits of PROT_READ, PROT_WRITE and PROT_EXEC. */
const RWX = PageFlag.READ | PageFlag.WRITE | PageFlag.EXECUTE;
const WIMG_FLAGS = PageFlag.NO_CACHE | PageFlag.WRITE_THROUGH | PageFlag.COHERENT | PageFlag.GUARDED;
/** State vmm and the MMU report; callers' values for them are ignored. */
const REPORTED_FLAGS = PageFlag.ACCESSED | PageFlag.DIRTY | PageFlag.COW | PageFlag.SHARED;
export const ALL_PAGE_FLAGS = RWX | PageFlag.USER | WIMG_FLAGS | REPORTED_FLAGS | PageFlag.PINNED;

type ForeignPage =
  | { kind: "explicit"; frame: number; flags: number; referenced: boolean; changed: boolean }
  | { kind: "borrowed"; frame: number };

export type FaultOutcome =
  | { result: FaultResult.MAPPED; action: FaultAction; physical: number; flags: number; detail: string }
  | {
    result: FaultResult.SIGSEGV_MAPERR | FaultResult.SIGSEGV_ACCERR | FaultResult.SIGBUS;
    detail: string;
  };

export interface FaultCounts {
  demandZero: number;
  fileRead: number;
  cowCopy: number;
  cowReuse: number;
  reinserted: number;
  stackGrowth: number;
  sharedPage: number;
  sigsegvMaperr: number;
  sigsegvAccerr: number;
  sigbus: number;
}

const ACTION_COUNTERS: Record<FaultAction, keyof FaultCounts | null> = {
  [FaultAction.UNSPECIFIED]: null,
  [FaultAction.DEMAND_ZERO]: "demandZero",
  [FaultAction.FILE_READ]: "fileRead",
  [FaultAction.COW_COPY]: "cowCopy",
  [FaultAction.COW_REUSE]: "cowReuse",
  [FaultAction.REINSERTED]: "reinserted",
  [FaultAction.STACK_GROWTH]: "stackGrowth",
  [FaultAction.SHARED_PAGE]: "sharedPage",
};

export interface MmapArguments {
  address: number;
  length: number;
  prot: number;
  /** Linux's MAP_* flags. */
  flags: number;
  file: BackedFile | null;
  /** Whose hold on `file`'s description the mapping uses (holds.ts); "lent" when absent. */
  hold?: HoldOrigin;
  offset: number;
  role: MappingRole;
}

export interface MappingInfo {
  start: number;
  end: number;
  prot: number;
  kind: MappingKind;
  role: MappingRole;
  /** The file and the offset of `start` in it, for file mappings. */
  file: { file: BackedFile; offset: number } | null;
  residentPages: number;
  cowPages: number;
  mapsLine: string;
}

export interface PageState {
  physical: number;
  flags: number;
}

export interface VmmStatistics {
  addressSpaces: number;
  mappings: number;
  residentPages: number;
  cowSharedFrames: number;
  faults: FaultCounts;
  htabOrigin: number;
  htabBytes: number;
  hpteValid: number;
  hpteCapacity: number;
  hpteSecondary: number;
  hpteEvictions: number;
  tlbInvalidations: number;
}

export interface AddressSpacesOptions {
  memory: GuestMemory;
  files: OpenFileStore;
  holds: FileHolds;
  hpt: HashPageTable;
  batch: TranslationBatch;
  tlb: MachineTlb;
  frames: OwnedFrames;
  cpus: number;
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

function noSuchSpace(id: bigint): AstraError {
  return new AstraError(Code.NOT_FOUND, Errno.ESRCH, `no address space ${id}`, {
    argument: "space_id",
    service: "vmm",
  });
}

function perms(vma: Vma): string {
  return (vma.prot & PROT_READ ? "r" : "-") + (vma.prot & PROT_WRITE ? "w" : "-") +
    (vma.prot & PROT_EXEC ? "x" : "-") + (vma.shared ? "s" : "p");
}

function describeVma(vma: Vma): string {
  return `${hex(vma.start)}-${hex(vma.end)} ${perms(vma)}`;
}

/** What an address space's mapping allows (the memory manager's rule, without ptrace's force). */
function vmaAllows(vma: Vma, access: AccessType): boolean {
  if (access === "execute") return (vma.prot & PROT_EXEC) !== 0;
  if (access === "write") return (vma.prot & PROT_WRITE) !== 0;
  return (vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0;
}

/** What an explicit page's flags allow a problem-state access. */
function explicitAllows(flags: number, access: AccessType): boolean {
  if (!(flags & PageFlag.USER)) return false;
  if (access === "execute") return (flags & PageFlag.EXECUTE) !== 0 && !(flags & PageFlag.GUARDED);
  if (access === "write") return (flags & PageFlag.WRITE) !== 0;
  return (flags & RWX) !== 0;
}

/** WIMG of a flag mask; ordinary coherent memory when the mask names no storage attribute. */
function wimgOf(flags: number): number {
  if ((flags & WIMG_FLAGS) === 0) return WIMG_MEMORY;
  return (flags & PageFlag.WRITE_THROUGH ? 8 : 0) | (flags & PageFlag.NO_CACHE ? 4 : 0) |
    (flags & PageFlag.COHERENT ? 2 : 0) | (flags & PageFlag.GUARDED ? 1 : 0);
}

/** Runs operations one at a time. */
class Turnstile {
  private queue: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.then(() => undefined, () => undefined);
    return run;
  }
}

class SpaceRecord {
  readonly foreign = new Map<number, ForeignPage>();
  /** Pages resident at some point since last counted: a superset of the resident pages. */
  readonly touched = new Set<number>();
  readonly turnstile = new Turnstile();
  destroyed = false;

  constructor(
    readonly id: bigint,
    readonly owner: string,
    readonly space: AddressSpace,
  ) {}
}

export class AddressSpaces {
  readonly manager: MemoryManager;
  readonly pageSize: number;
  /** The files mappings read, and where mmap(fd) holds a descriptor's file. */
  readonly files: OpenFileStore;
  private readonly holds: FileHolds;
  private readonly memory: GuestMemory;
  private readonly hpt: HashPageTable;
  private readonly batch: TranslationBatch;
  private readonly tlb: MachineTlb;
  private readonly frames: OwnedFrames;
  private readonly cpus: number;
  private readonly records = new Map<bigint, SpaceRecord>();
  private readonly byContext = new Map<number, SpaceRecord>();
  private readonly cpuSpaces = new Map<number, bigint>();
  /** Space ids are incarnation << 32 | sequence: a restarted vmm never answers for an old id. */
  private readonly incarnation: bigint;
  private nextSequence = 1n;
  private readonly faultCounts: FaultCounts = {
    demandZero: 0,
    fileRead: 0,
    cowCopy: 0,
    cowReuse: 0,
    reinserted: 0,
    stackGrowth: 0,
    sharedPage: 0,
    sigsegvMaperr: 0,
    sigsegvAccerr: 0,
    sigbus: 0,
  };

  constructor(options: AddressSpacesOptions) {
    this.memory = options.memory;
    this.files = options.files;
    this.holds = options.holds;
    this.hpt = options.hpt;
    this.batch = options.batch;
    this.tlb = options.tlb;
    this.frames = options.frames;
    this.cpus = options.cpus;
    this.incarnation = BigInt(crypto.getRandomValues(new Uint32Array(1))[0] & 0x7fffffff);
    this.manager = new MemoryManager({
      frames: options.frames,
      memory: options.memory,
      files: options.files,
      hpt: options.hpt,
      mmu: this.shootdown(),
      fileUsers: options.holds,
    });
    this.pageSize = this.manager.pageSize;
  }

  /** The memory manager's MMU: TLB invalidations by VSID, queued in the batch. */
  private shootdown(): MmuControl {
    const vsidOf = (context: number, ea: number) =>
      this.byContext.get(context)?.space.vsid(Math.floor(ea / SEGMENT_BYTES));
    return {
      invalidatePage: (context, ea, bytes) => {
        const vsid = vsidOf(context, ea);
        // A context vmm does not know any more can only be stale: dropping everything is safe.
        this.batch.invalidate(
          vsid === undefined ? { scope: "all" } : { scope: "page", vsid, ea, pageShift: Math.log2(bytes) },
        );
      },
      invalidateContext: (context) => {
        const record = this.byContext.get(context);
        if (!record) {
          this.batch.invalidate({ scope: "all" });
          return;
        }
        for (const segment of record.space.segments()) {
          this.batch.invalidate({ scope: "segment", vsid: segment.vsid });
        }
      },
      // The machine keeps segments in thread contexts, which go with the threads; the context's
      // TLB entries went with invalidateContext.
      removeContext: () => {},
    };
  }

  // --- calls ------------------------------------------------------------------------------

  private record(id: bigint): SpaceRecord {
    const record = this.records.get(id);
    if (!record) throw noSuchSpace(id);
    return record;
  }

  /** Runs a call on one address space: alone on it, its frames its owner's, committed at the end. */
  private withSpace<T>(
    id: bigint,
    task: (record: SpaceRecord, account: FrameAccount) => Promise<T>,
  ): Promise<T> {
    const record = this.record(id);
    return record.turnstile.run(() => this.inCall(record, (account) => task(record, account)));
  }

  /**
   * The same for a call on two address spaces, taken in id order so that no two calls deadlock;
   * the frames it allocates are the second space's owner's.
   */
  private withSpaces<T>(
    firstId: bigint,
    secondId: bigint,
    task: (first: SpaceRecord, second: SpaceRecord) => Promise<T>,
  ): Promise<T> {
    const first = this.record(firstId);
    const second = this.record(secondId);
    const [outer, inner] = firstId < secondId ? [first, second] : [second, first];
    return outer.turnstile.run(() =>
      inner.turnstile.run(() => {
        if (first.destroyed) throw noSuchSpace(firstId);
        return this.inCall(second, () => task(first, second));
      })
    );
  }

  private inCall<T>(record: SpaceRecord, task: (account: FrameAccount) => Promise<T>): Promise<T> {
    if (record.destroyed) throw noSuchSpace(record.id);
    return this.frames.runAs(record.owner, async (account) => {
      try {
        return await task(account);
      } finally {
        try {
          await this.batch.commit();
        } finally {
          await this.holds.settle();
        }
      }
    });
  }

  private checkCpus(cpus: readonly number[]): void {
    for (const cpu of cpus) {
      if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.cpus) {
        throw memoryError(Errno.EINVAL, "cpus", `CPU ${cpu} does not exist (the machine has ${this.cpus})`);
      }
    }
  }

  // --- address spaces ---------------------------------------------------------------------

  async create(pid: number): Promise<bigint> {
    const owner = frameOwner(pid);
    await this.frames.addSpace(owner);
    let space: AddressSpace;
    try {
      space = this.manager.createAddressSpace();
    } catch (error) {
      await this.frames.removeSpace(owner);
      throw error;
    }
    return this.register(owner, space).id;
  }

  private register(owner: string, space: AddressSpace): SpaceRecord {
    const id = (this.incarnation << 32n) | this.nextSequence++;
    const record = new SpaceRecord(id, owner, space);
    this.records.set(id, record);
    this.byContext.set(space.context, record);
    return record;
  }

  async destroy(id: bigint): Promise<{ mappingsRemoved: number; framesFreed: number }> {
    const record = this.record(id);
    const result = await this.withSpace(id, async (_, account) => {
      const mappingsRemoved = record.space.vmas.count;
      for (const page of [...record.foreign.keys()]) await this.dropForeign(record, page);
      await record.space.destroy();
      record.destroyed = true;
      this.records.delete(id);
      this.byContext.delete(record.space.context);
      for (const [cpu, spaceId] of this.cpuSpaces) if (spaceId === id) this.cpuSpaces.delete(cpu);
      return { mappingsRemoved, account };
    });
    // The frames reached pmm with the call's commit: the owner may go now.
    await this.frames.removeSpace(record.owner);
    return { mappingsRemoved: result.mappingsRemoved, framesFreed: result.account.freed };
  }

  fork(parentId: bigint, childPid: number): Promise<{ childId: bigint; pagesShared: number }> {
    return this.withSpace(parentId, async (parent) => {
      const owner = frameOwner(childPid);
      await this.frames.addSpace(owner);
      let space: AddressSpace;
      try {
        space = await parent.space.fork();
      } catch (error) {
        await this.frames.removeSpace(owner);
        throw error;
      }
      const child = this.register(owner, space);
      for (const page of this.residentPages(parent)) child.touched.add(page);
      for (const [page, entry] of parent.foreign) {
        const vma = parent.space.vmas.find(page * this.pageSize);
        if (!vma || vma.dontFork || vma.wipeOnFork) continue;
        if (entry.kind === "borrowed") {
          this.manager.frames.retain(entry.frame);
          child.foreign.set(page, { ...entry });
        } else {
          child.foreign.set(page, { ...entry, referenced: false, changed: false });
        }
      }
      let pagesShared = 0;
      for (const page of this.residentPages(child)) {
        if (child.space.pageInfo(page * this.pageSize)?.copyOnWrite) pagesShared++;
      }
      for (const entry of child.foreign.values()) if (entry.kind === "borrowed") pagesShared++;
      return { childId: child.id, pagesShared };
    });
  }

  // --- translations -----------------------------------------------------------------------

  private esid(ea: number): number {
    return Math.floor(ea / SEGMENT_BYTES);
  }

  private alignDown(value: number): number {
    return Math.floor(value / this.pageSize) * this.pageSize;
  }

  private alignUp(value: number): number {
    return Math.ceil(value / this.pageSize) * this.pageSize;
  }

  /** Enters (or rewrites) the translation of a foreign page. */
  private enterForeign(record: SpaceRecord, page: number, entry: ForeignPage): void {
    const ea = page * this.pageSize;
    let pp: number, noExecute: boolean, wimg = WIMG_MEMORY, bolted = false;
    if (entry.kind === "explicit") {
      const user = (entry.flags & PageFlag.USER) !== 0;
      pp = user && (entry.flags & RWX) ? userPp((entry.flags & PageFlag.WRITE) !== 0) : 0;
      noExecute = !(user && (entry.flags & PageFlag.EXECUTE));
      wimg = wimgOf(entry.flags);
      bolted = (entry.flags & PageFlag.PINNED) !== 0;
    } else {
      const vma = record.space.vmas.find(ea);
      if (!vma || !vmaAllows(vma, "read")) {
        this.removeForeignTranslation(record, page);
        return;
      }
      pp = userPp(false);
      noExecute = !(vma.prot & PROT_EXEC);
    }
    const result = this.hpt.insert({
      owner: record.space.context,
      vsid: record.space.vsid(this.esid(ea)),
      segmentSize: SEGMENT_256M,
      ea,
      pageShift: this.manager.pageShift,
      realAddress: entry.frame,
      pp,
      noExecute,
      wimg,
      bolted,
    });
    if (result.replaced) this.manager.mmu.invalidatePage(record.space.context, ea, this.pageSize);
    const evicted = result.evicted;
    if (evicted) this.manager.mmu.invalidatePage(evicted.owner, evicted.ea, 2 ** evicted.pageShift);
  }

  private removeForeignTranslation(record: SpaceRecord, page: number): void {
    const ea = page * this.pageSize;
    if (this.hpt.remove(record.space.vsid(this.esid(ea)), ea)) {
      this.manager.mmu.invalidatePage(record.space.context, ea, this.pageSize);
    }
  }

  /** Removes a foreign page: its translation, and the reference a borrowed page held. */
  private async dropForeign(record: SpaceRecord, page: number): Promise<void> {
    const entry = record.foreign.get(page);
    if (!entry) return;
    this.removeForeignTranslation(record, page);
    record.foreign.delete(page);
    if (entry.kind === "borrowed") await this.manager.frames.release(entry.frame);
  }

  /** Foreign pages in [start, end), ascending. */
  private foreignIn(record: SpaceRecord, start: number, end: number): number[] {
    const first = Math.floor(start / this.pageSize);
    const last = Math.ceil(end / this.pageSize);
    const pages: number[] = [];
    if (last - first <= record.foreign.size) {
      for (let page = first; page < last; page++) if (record.foreign.has(page)) pages.push(page);
    } else {
      for (const page of record.foreign.keys()) if (page >= first && page < last) pages.push(page);
      pages.sort((a, b) => a - b);
    }
    return pages;
  }

  /**
   * Brings the foreign pages of [start, end) in line with the mappings now there: a page no
   * mapping covers any more goes, an explicit page takes its mapping's protection.
   */
  private async reconcileForeign(record: SpaceRecord, start = 0, end = Infinity): Promise<void> {
    const pages = end === Infinity
      ? [...record.foreign.keys()]
      : this.foreignIn(record, start, Math.min(end, Number.MAX_SAFE_INTEGER));
    for (const page of pages) {
      const entry = record.foreign.get(page)!;
      const vma = record.space.vmas.find(page * this.pageSize);
      if (!vma) {
        await this.dropForeign(record, page);
      } else if (entry.kind === "explicit") {
        const rwx = vma.prot & RWX;
        if ((entry.flags & RWX) !== rwx) {
          await this.harvestReferenceChange(record, page, entry);
          entry.flags = (entry.flags & ~RWX) | rwx;
          this.enterForeign(record, page, entry);
        }
      } else if (this.hpt.lookup(record.space.vsid(this.esid(page * this.pageSize)), page * this.pageSize)) {
        this.enterForeign(record, page, entry);
      }
    }
  }

  /** Takes the foreign pages of [start, end) out of the space, translations removed, references kept. */
  private detachForeign(record: SpaceRecord, start: number, end: number): [number, ForeignPage][] {
    const detached: [number, ForeignPage][] = [];
    for (const page of this.foreignIn(record, start, end)) {
      detached.push([page, record.foreign.get(page)!]);
      this.removeForeignTranslation(record, page);
      record.foreign.delete(page);
    }
    return detached;
  }

  /** Puts detached pages back (the call that detached them failed). */
  private async restoreForeign(record: SpaceRecord, detached: [number, ForeignPage][]): Promise<void> {
    for (const [page, entry] of detached) {
      record.foreign.set(page, entry);
      if (entry.kind === "explicit") this.enterForeign(record, page, entry);
    }
    await this.reconcileForeign(record);
  }

  private async releaseDetached(detached: [number, ForeignPage][]): Promise<void> {
    for (const [, entry] of detached) {
      if (entry.kind === "borrowed") await this.manager.frames.release(entry.frame);
    }
  }

  /** Folds the MMU's referenced and changed bits of an explicit page's entry into its record. */
  private async harvestReferenceChange(
    record: SpaceRecord,
    page: number,
    entry: ForeignPage & { kind: "explicit" },
  ): Promise<void> {
    const bits = await this.referenceChange(record, page * this.pageSize, entry.frame);
    entry.referenced ||= bits.referenced;
    entry.changed ||= bits.changed;
  }

  /** R and C of the entry translating `ea` to `frame`, read from the table in guest memory. */
  private async referenceChange(
    record: SpaceRecord,
    ea: number,
    frame: number,
  ): Promise<{ referenced: boolean; changed: boolean }> {
    const location = this.hpt.lookup(record.space.vsid(this.esid(ea)), this.alignDown(ea));
    if (!location) return { referenced: false, changed: false };
    // The read comes after the pending entry writes: the entry in memory is the one just looked up.
    const fields = decodeHpte(await this.memory.read(location.address, HPTE_BYTES));
    if (!fields.valid || pageRealAddress(fields.arpn, location.pageShift) !== frame) {
      return { referenced: false, changed: false };
    }
    return { referenced: fields.referenced, changed: fields.changed };
  }

  /** The resident pages of the space, pruning those that are not any more. */
  private residentPages(record: SpaceRecord): number[] {
    const pages: number[] = [];
    for (const page of record.touched) {
      if (record.space.physicalAddress(page * this.pageSize) === null) record.touched.delete(page);
      else pages.push(page);
    }
    return pages.sort((a, b) => a - b);
  }

  // --- explicit mappings ------------------------------------------------------------------

  /** Maps [va, va + size) to the frames from `physical` on (vmm_map_page, vmm_map_region). */
  mapRegion(id: bigint, va: number, physical: number, size: number, flags: number): Promise<number> {
    return this.withSpace(id, async (record) => {
      const space = record.space;
      const end = va + size;
      if (va < this.manager.minAddress || end > this.manager.userLimit) {
        throw memoryError(
          Errno.EINVAL,
          "virtual_address",
          `[${hex(va)}, ${hex(end)}) is not a user range of this address space`,
        );
      }
      if (space.vmas.intersects(va, end)) {
        throw memoryError(Errno.EEXIST, "virtual_address", `[${hex(va)}, ${hex(end)}) is already mapped`);
      }
      const stored = flags & ~REPORTED_FLAGS;
      await space.mmap(va, size, stored & RWX, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, null, 0);
      const pages: number[] = [];
      try {
        for (let offset = 0; offset < size; offset += this.pageSize) {
          const page = (va + offset) / this.pageSize;
          const entry: ForeignPage = {
            kind: "explicit",
            frame: physical + offset,
            flags: stored,
            referenced: false,
            changed: false,
          };
          record.foreign.set(page, entry);
          pages.push(page);
          this.enterForeign(record, page, entry);
        }
      } catch (error) {
        for (const page of pages) await this.dropForeign(record, page);
        await space.munmap(va, size);
        throw error;
      }
      return pages.length;
    });
  }

  /** Removes an explicit page (vmm_unmap_page): its frame, and whether it was written. */
  unmapPage(id: bigint, va: number): Promise<{ physical: number; dirty: boolean }> {
    return this.withSpace(id, async (record) => {
      const page = Math.floor(va / this.pageSize);
      const entry = record.foreign.get(page);
      if (!entry || entry.kind !== "explicit") throw this.notExplicit(record, va);
      await this.harvestReferenceChange(record, page, entry);
      await this.dropForeign(record, page);
      await record.space.munmap(page * this.pageSize, this.pageSize);
      return { physical: entry.frame, dirty: entry.changed };
    });
  }

  private notExplicit(record: SpaceRecord, va: number): AstraError {
    return record.space.vmas.find(va)
      ? memoryError(
        Errno.EINVAL,
        "virtual_address",
        `${hex(va)} belongs to a mapping vmm manages (Munmap or Madvise remove its pages)`,
      )
      : memoryError(Errno.EFAULT, "virtual_address", `nothing is mapped at ${hex(va)}`);
  }

  /** Removes the explicit pages of [va, va + size) (vmm_unmap_region); other pages stay. */
  unmapRegion(id: bigint, va: number, size: number): Promise<number> {
    return this.withSpace(id, async (record) => {
      const pages = this.foreignIn(record, va, va + size).filter((page) =>
        record.foreign.get(page)!.kind === "explicit"
      );
      for (const page of pages) await this.dropForeign(record, page);
      // Their reserving mappings go too, one munmap per run of adjacent pages.
      for (let i = 0; i < pages.length;) {
        let j = i + 1;
        while (j < pages.length && pages[j] === pages[j - 1] + 1) j++;
        await record.space.munmap(pages[i] * this.pageSize, (j - i) * this.pageSize);
        i = j;
      }
      return pages.length;
    });
  }

  // --- pages ------------------------------------------------------------------------------

  /** Physical address and flags of a mapped page (vmm_get_physical, vmm_get_page_flags). */
  pageState(id: bigint, va: number): Promise<PageState> {
    return this.withSpace(id, (record) => this.stateOf(record, va));
  }

  private async stateOf(record: SpaceRecord, va: number): Promise<PageState> {
    const page = Math.floor(va / this.pageSize);
    const offset = va - page * this.pageSize;
    const entry = record.foreign.get(page);
    if (entry?.kind === "explicit") {
      await this.harvestReferenceChange(record, page, entry);
      const flags = (entry.flags & ~REPORTED_FLAGS) | (entry.referenced ? PageFlag.ACCESSED : 0) |
        (entry.changed ? PageFlag.DIRTY : 0);
      return { physical: entry.frame + offset, flags };
    }
    const vma = record.space.vmas.find(va);
    if (entry && vma) {
      const bits = await this.referenceChange(record, va, entry.frame);
      const flags = PageFlag.USER | PageFlag.COHERENT | PageFlag.COW | (vma.prot & RWX) |
        (bits.referenced ? PageFlag.ACCESSED : 0) | (bits.changed ? PageFlag.DIRTY : 0);
      return { physical: entry.frame + offset, flags };
    }
    const info = record.space.pageInfo(va);
    if (!info || !vma) throw memoryError(Errno.EFAULT, "virtual_address", `no page is mapped at ${hex(va)}`);
    const bits = await this.referenceChange(record, va, info.frame);
    const flags = PageFlag.USER | PageFlag.COHERENT | (info.prot & RWX) |
      (info.copyOnWrite ? PageFlag.COW : 0) | (info.shared ? PageFlag.SHARED : 0) |
      (info.accessed || bits.referenced ? PageFlag.ACCESSED : 0) |
      (info.dirty || bits.changed ? PageFlag.DIRTY : 0);
    return { physical: info.frame + offset, flags };
  }

  /**
   * Changes a mapped page's flags (vmm_set_page_flags); returns the flags before. An explicit
   * page takes any flags; a page of a mapping vmm manages changes protection only, as mprotect
   * of that one page.
   */
  setPageFlags(id: bigint, va: number, flags: number): Promise<number> {
    return this.withSpace(id, async (record) => {
      const previous = await this.stateOf(record, va);
      const page = Math.floor(va / this.pageSize);
      const pageEa = page * this.pageSize;
      const wanted = flags & ~REPORTED_FLAGS;
      const entry = record.foreign.get(page);
      if (entry?.kind === "explicit") {
        if ((wanted & RWX) !== (entry.flags & RWX)) {
          await record.space.mprotect(pageEa, this.pageSize, wanted & RWX);
        }
        entry.flags = wanted;
        this.enterForeign(record, page, entry);
        return previous.flags;
      }
      if (!(wanted & PageFlag.USER)) {
        throw memoryError(Errno.EINVAL, "flags", "pages of a mapping are always user pages (PAGE_FLAG_USER)");
      }
      if (wanted & (WIMG_FLAGS & ~PageFlag.COHERENT | PageFlag.PINNED)) {
        throw memoryError(
          Errno.EINVAL,
          "flags",
          "pages of a mapping are ordinary coherent memory and cannot be pinned; only explicit pages can",
        );
      }
      await record.space.mprotect(pageEa, this.pageSize, wanted & RWX);
      await this.reconcileForeign(record, pageEa, pageEa + this.pageSize);
      return previous.flags;
    });
  }

  // --- page faults ------------------------------------------------------------------------

  fault(id: bigint, ea: number, access: AccessType): Promise<FaultOutcome> {
    return this.withSpace(id, async (record) => {
      const outcome = await this.resolveFault(record, ea, access);
      const counter = outcome.result === FaultResult.MAPPED
        ? ACTION_COUNTERS[outcome.action]
        : outcome.result === FaultResult.SIGSEGV_MAPERR
        ? "sigsegvMaperr"
        : outcome.result === FaultResult.SIGSEGV_ACCERR
        ? "sigsegvAccerr"
        : "sigbus";
      if (counter) this.faultCounts[counter]++;
      return outcome;
    });
  }

  private async resolveFault(record: SpaceRecord, ea: number, access: AccessType): Promise<FaultOutcome> {
    const space = record.space;
    const pageEa = this.alignDown(ea);
    const page = pageEa / this.pageSize;
    const foreign = record.foreign.get(page);
    if (foreign) return await this.foreignFault(record, page, foreign, ea, access);

    const vma = space.vmas.find(ea);
    const before = vma ? space.pageInfo(ea) : null;
    const entryBefore = before ? this.hpt.lookup(space.vsid(this.esid(ea)), pageEa) : null;
    const readOnlyBefore = entryBefore !== null &&
      decodeHpte(this.hpt.entryBytes(entryBefore.slot)).pp !== userPp(true);
    const objectHadPage = vma?.shared
      ? this.manager.sharedMemory.objectOf(vma).pages.has((vma.offset + (pageEa - vma.start)) / this.pageSize)
      : false;
    const resolution = await space.handleFault(ea, access);
    if (resolution.kind === "signal") return this.signalOutcome(record, resolution, access, ea);
    record.touched.add(page);
    let action: FaultAction;
    if (!vma) action = FaultAction.STACK_GROWTH;
    else if (!before) {
      if (objectHadPage) action = FaultAction.SHARED_PAGE;
      else action = vma.backing.kind === "file" ? FaultAction.FILE_READ : FaultAction.DEMAND_ZERO;
    } else if (access === "write" && !vma.shared && before.copyOnWrite) action = FaultAction.COW_COPY;
    else if (access === "write" && !vma.shared && readOnlyBefore) action = FaultAction.COW_REUSE;
    else action = FaultAction.REINSERTED;
    const state = await this.stateOf(record, ea);
    const where = describeVma(space.vmas.find(ea)!);
    return {
      result: FaultResult.MAPPED,
      action,
      physical: state.physical,
      flags: state.flags,
      detail: `${access} at ${hex(ea)} in ${where}: ${FaultAction[action].toLowerCase().replace(/_/g, " ")}`,
    };
  }

  private signalOutcome(
    record: SpaceRecord,
    resolution: FaultResolution & { kind: "signal" },
    access: AccessType,
    ea: number,
  ): FaultOutcome {
    const vma = record.space.vmas.find(ea);
    if (resolution.signal === SIGSEGV && resolution.code === SEGV_MAPERR) {
      return {
        result: FaultResult.SIGSEGV_MAPERR,
        detail: `${access} at ${hex(ea)}: nothing is mapped there`,
      };
    }
    if (resolution.signal === SIGSEGV && resolution.code === SEGV_ACCERR) {
      return {
        result: FaultResult.SIGSEGV_ACCERR,
        detail: `${access} at ${hex(ea)}: not allowed by mapping ${vma ? describeVma(vma) : ""}`.trimEnd(),
      };
    }
    const file = vma?.backing.kind === "file" ? vma.backing.file.path : "the file";
    return {
      result: FaultResult.SIGBUS,
      detail: `${access} at ${hex(ea)}: the page lies beyond the end of ${file}`,
    };
  }

  private async foreignFault(
    record: SpaceRecord,
    page: number,
    entry: ForeignPage,
    ea: number,
    access: AccessType,
  ): Promise<FaultOutcome> {
    const vma = record.space.vmas.find(ea)!;
    const allowed = entry.kind === "explicit" ? explicitAllows(entry.flags, access) : vmaAllows(vma, access);
    if (!allowed) {
      return {
        result: FaultResult.SIGSEGV_ACCERR,
        detail: `${access} at ${hex(ea)}: not allowed by ${
          entry.kind === "explicit" ? "the explicit page's flags" : "mapping " + describeVma(vma)
        }`,
      };
    }
    let action = FaultAction.REINSERTED;
    if (entry.kind === "borrowed" && access === "write") {
      // The first store: the page becomes the space's own, a copy of the borrowed frame.
      const bytes = await this.memory.read(entry.frame, this.pageSize);
      this.removeForeignTranslation(record, page);
      record.foreign.delete(page);
      try {
        await record.space.write(page * this.pageSize, bytes);
      } catch (error) {
        if (!(error instanceof AstraError && error.errno === Errno.EFAULT)) throw error;
        await this.manager.frames.release(entry.frame);
        return { result: FaultResult.SIGBUS, detail: `${access} at ${hex(ea)}: the page cannot be supplied` };
      }
      await this.manager.frames.release(entry.frame);
      record.touched.add(page);
      action = FaultAction.COW_COPY;
    } else {
      this.enterForeign(record, page, entry);
    }
    const state = await this.stateOf(record, ea);
    return {
      result: FaultResult.MAPPED,
      action,
      physical: state.physical,
      flags: state.flags,
      detail: `${access} at ${hex(ea)} in ${describeVma(vma)}: ${
        action === FaultAction.COW_COPY ? "borrowed page copied" : "translation entered again"
      }`,
    };
  }

  // --- segments and CPUs ------------------------------------------------------------------

  /** The SLB entry of the segment holding `ea` (answer to a segment miss). */
  segment(id: bigint, ea: number): Promise<SlbEntry> {
    return this.withSpace(id, (record) => {
      if (ea >= this.manager.userLimit) {
        throw memoryError(Errno.EFAULT, "address", `${hex(ea)} is beyond the user address space`);
      }
      return Promise.resolve(record.space.segment(ea));
    });
  }

  /** The segments a CPU loads to run in an address space, and the space it ran before. */
  switchTo(id: bigint, cpu: number): Promise<{ segments: SlbEntry[]; previous: bigint }> {
    this.checkCpus([cpu]);
    return this.withSpace(id, (record) => {
      const previous = this.cpuSpaces.get(cpu) ?? 0n;
      this.cpuSpaces.set(cpu, id);
      return Promise.resolve({ segments: record.space.segments(), previous });
    });
  }

  /** Drops the TLB entries of one page (tlbie), after every pending table change. */
  invalidatePage(id: bigint, va: number, cpus: readonly number[]): Promise<bigint> {
    this.checkCpus(cpus);
    if (va >= this.manager.userLimit) {
      throw memoryError(Errno.EINVAL, "virtual_address", `${hex(va)} is beyond the user address space`);
    }
    return this.withSpace(id, async (record) => {
      await this.batch.commit();
      const vsid = record.space.vsid(this.esid(va));
      return await this.tlb.invalidate(
        { scope: "page", vsid, ea: this.alignDown(va), pageShift: this.manager.pageShift },
        cpus,
      );
    });
  }

  /** Drops every TLB entry of an address space, or (id 0) every entry. */
  async invalidateAll(id: bigint, cpus: readonly number[]): Promise<bigint> {
    this.checkCpus(cpus);
    if (id === 0n) {
      await this.batch.commit();
      return await this.tlb.invalidate({ scope: "all" }, cpus);
    }
    return await this.withSpace(id, async (record) => {
      await this.batch.commit();
      let entries = 0n;
      for (const segment of record.space.segments()) {
        entries += await this.tlb.invalidate({ scope: "segment", vsid: segment.vsid }, cpus);
      }
      return entries;
    });
  }

  // --- copy-on-write ----------------------------------------------------------------------

  /**
   * Shares [va, va + size) of one address space with another (vmm_copy_on_write): the
   * destination gets private mappings like the source's over a range that must be free, and every
   * resident source page is shared read-only on both sides until one of them stores.
   */
  copyOnWrite(sourceId: bigint, destinationId: bigint, va: number, size: number): Promise<number> {
    if (sourceId === destinationId) {
      return Promise.reject(
        memoryError(
          Errno.EINVAL,
          "destination_space_id",
          "source and destination are the same address space",
        ),
      );
    }
    return this.withSpaces(sourceId, destinationId, async (source, destination) => {
      const end = va + size;
      if (va < this.manager.minAddress || end > this.manager.userLimit) {
        throw memoryError(Errno.EINVAL, "virtual_address", `[${hex(va)}, ${hex(end)}) is not a user range`);
      }
      const parts: Vma[] = [];
      let cursor = va;
      for (const vma of source.space.vmas.list()) {
        if (vma.end <= va || vma.start >= end) continue;
        if (vma.start > cursor) break;
        if (vma.shared) {
          throw memoryError(Errno.EINVAL, "virtual_address", `${describeVma(vma)} is shared, not private`);
        }
        const start = Math.max(vma.start, va);
        const partEnd = Math.min(vma.end, end);
        const offset = vma.backing.kind === "file" ? vma.offset + (start - vma.start) : 0;
        parts.push({ ...vma, start, end: partEnd, offset });
        cursor = partEnd;
      }
      if (cursor < end) {
        throw memoryError(Errno.ENOMEM, "virtual_address", `[${hex(va)}, ${hex(end)}) is not fully mapped`);
      }
      if (this.foreignIn(source, va, end).some((page) => source.foreign.get(page)!.kind === "explicit")) {
        throw memoryError(Errno.EINVAL, "virtual_address", "explicit pages cannot be shared copy-on-write");
      }
      if (destination.space.vmas.intersects(va, end)) {
        throw memoryError(
          Errno.EEXIST,
          "virtual_address",
          `[${hex(va)}, ${hex(end)}) is mapped in the destination`,
        );
      }

      const created: Vma[] = [];
      try {
        for (const part of parts) {
          const file = part.backing.kind === "file" ? part.backing.file : null;
          await destination.space.mmap(
            part.start,
            part.end - part.start,
            part.prot,
            MAP_PRIVATE | MAP_FIXED_NOREPLACE | (file ? 0 : MAP_ANONYMOUS),
            file,
            part.offset,
          );
          created.push(part);
        }
      } catch (error) {
        for (const part of created) await destination.space.munmap(part.start, part.end - part.start);
        throw error;
      }

      let shared = 0;
      const firstPage = va / this.pageSize;
      const endPage = end / this.pageSize;
      for (const page of this.residentPages(source)) {
        if (page < firstPage || page >= endPage) continue;
        const info = source.space.pageInfo(page * this.pageSize)!;
        this.manager.frames.retain(info.frame);
        destination.foreign.set(page, { kind: "borrowed", frame: info.frame });
        shared++;
      }
      for (const page of this.foreignIn(source, va, end)) {
        const entry = source.foreign.get(page)!;
        this.manager.frames.retain(entry.frame);
        destination.foreign.set(page, { kind: "borrowed", frame: entry.frame });
        shared++;
      }
      // The source's writable pages lose write access now that their frames are shared.
      for (const part of parts) {
        if (part.prot & PROT_WRITE) await source.space.mprotect(part.start, part.end - part.start, part.prot);
      }
      return shared;
    });
  }

  // --- system calls -----------------------------------------------------------------------

  mmap(id: bigint, request: MmapArguments): Promise<number> {
    const file = request.flags & MAP_ANONYMOUS ? null : request.file;
    if (!file) return this.mapInto(id, request);
    return this.holds.mapping(file.openFileId, request.hold ?? "lent", () => this.mapInto(id, request));
  }

  private mapInto(id: bigint, request: MmapArguments): Promise<number> {
    return this.withSpace(id, async (record) => {
      const { address, length, prot, flags, file, offset, role } = request;
      this.checkRole(role, request);
      const space = record.space;
      // MAP_FIXED replaces whatever foreign pages lie in the range: detach them first, so that
      // pages MAP_POPULATE brings in take their place cleanly, and put them back on failure.
      const replaces = (flags & MAP_FIXED) !== 0 && (flags & MAP_FIXED_NOREPLACE) === 0 && length > 0 &&
        address + length <= Number.MAX_SAFE_INTEGER;
      const detached = replaces ? this.detachForeign(record, address, address + this.alignUp(length)) : [];
      let at: number;
      try {
        at = await space.mmap(address, length, prot, flags, file, offset);
      } catch (error) {
        await this.restoreForeign(record, detached);
        throw error;
      }
      await this.releaseDetached(detached);
      const end = at + this.alignUp(length);
      if (flags & MAP_POPULATE) {
        for (let page = at / this.pageSize; page < end / this.pageSize; page++) record.touched.add(page);
      }
      // Any address inside the mapping names it [stack], as Linux's mm->start_stack does.
      if (role === MappingRole.STACK) space.vmas.setStartStack(end - 1);
      return at;
    });
  }

  private checkRole(role: MappingRole, request: MmapArguments): void {
    const anonymous = (request.flags & MAP_ANONYMOUS) !== 0;
    const anonymousPrivate = anonymous && (request.flags & MAP_TYPE) === MAP_PRIVATE;
    switch (role) {
      case MappingRole.UNSPECIFIED:
        return;
      case MappingRole.ANONYMOUS:
        if (anonymous) return;
        break;
      case MappingRole.FILE:
        if (!anonymous) return;
        break;
      case MappingRole.STACK:
        if (anonymousPrivate) return;
        break;
      case MappingRole.GUARD:
        if (anonymousPrivate && request.prot === 0) return;
        break;
      case MappingRole.HEAP:
        throw memoryError(Errno.EINVAL, "role", "the heap is made by brk, not by mmap");
    }
    throw memoryError(
      Errno.EINVAL,
      "role",
      `role ${MappingRole[role]} does not fit this mapping (a stack or guard is private anonymous ` +
        "memory, a guard has no access, a file role needs a file)",
    );
  }

  munmap(id: bigint, address: number, length: number): Promise<number> {
    return this.withSpace(id, async (record) => {
      const before = record.space.residentPages + record.foreign.size;
      try {
        await record.space.munmap(address, length);
      } finally {
        await this.reconcileForeign(record, address, address + this.alignUp(length));
      }
      return before - (record.space.residentPages + record.foreign.size);
    });
  }

  mprotect(id: bigint, address: number, length: number, prot: number): Promise<void> {
    return this.withSpace(id, async (record) => {
      try {
        await record.space.mprotect(address, length, prot);
      } finally {
        await this.reconcileForeign(record, address, address + this.alignUp(length));
      }
    });
  }

  mremap(
    id: bigint,
    oldAddress: number,
    oldSize: number,
    newSize: number,
    flags: number,
    newAddress: number,
  ): Promise<number> {
    return this.withSpace(id, async (record) => {
      const space = record.space;
      const oldLength = this.alignUp(oldSize);
      const newLength = this.alignUp(newSize);
      const moving = this.foreignIn(record, oldAddress, oldAddress + oldLength);
      const touchedOld = [...record.touched].filter((page) =>
        page * this.pageSize >= oldAddress && page * this.pageSize < oldAddress + oldLength
      );
      const fixed = (flags & MREMAP_FIXED) !== 0 && newAddress + newLength <= Number.MAX_SAFE_INTEGER;
      const detached = fixed ? this.detachForeign(record, newAddress, newAddress + newLength) : [];
      let at: number;
      try {
        at = await space.mremap(oldAddress, oldSize, newSize, flags, newAddress);
      } catch (error) {
        await this.restoreForeign(record, detached);
        throw error;
      }
      await this.releaseDetached(detached);
      if (at !== oldAddress && oldLength > 0) {
        const moved = Math.min(oldLength, newLength);
        const delta = (at - oldAddress) / this.pageSize;
        const pages = moving.filter((page) => page * this.pageSize < oldAddress + moved);
        const entries = pages.map((page) => [page, record.foreign.get(page)!] as const);
        for (const [page] of entries) {
          this.removeForeignTranslation(record, page);
          record.foreign.delete(page);
        }
        for (const [page, entry] of entries) {
          record.foreign.set(page + delta, entry);
          if (entry.kind === "explicit") this.enterForeign(record, page + delta, entry);
        }
        for (const page of touchedOld) record.touched.add(page + delta);
      }
      await this.reconcileForeign(record);
      return at;
    });
  }

  madvise(id: bigint, address: number, length: number, advice: number): Promise<number> {
    return this.withSpace(id, async (record) => {
      const space = record.space;
      const end = address + this.alignUp(length);
      const drops = advice === MADV_DONTNEED || advice === MADV_FREE;
      if (
        drops && this.foreignIn(record, address, end).some((p) => record.foreign.get(p)!.kind === "explicit")
      ) {
        throw memoryError(
          Errno.EINVAL,
          "advice",
          "explicit pages cannot be dropped (Linux refuses VM_PFNMAP too)",
        );
      }
      const before = space.residentPages + record.foreign.size;
      let failure: unknown = null;
      try {
        await space.madvise(address, length, advice);
      } catch (error) {
        failure = error;
      }
      // Linux applies the advice to the mapped parts and reports a hole with ENOMEM afterwards.
      const applied = failure === null || (failure instanceof AstraError && failure.errno === Errno.ENOMEM);
      let affected: number;
      if (drops && applied) {
        for (const page of this.foreignIn(record, address, end)) {
          const vma = space.vmas.find(page * this.pageSize);
          if (vma && (advice === MADV_DONTNEED || vma.backing.kind === "anonymous")) {
            await this.dropForeign(record, page);
          }
        }
        affected = before - (space.residentPages + record.foreign.size);
      } else if (advice === MADV_WILLNEED && applied) {
        affected = await this.readAhead(record, address, end);
      } else {
        affected = 0;
      }
      if (failure) throw failure;
      return affected;
    });
  }

  /** MADV_WILLNEED: brings in the file pages of [start, end) that are not resident yet. */
  private async readAhead(record: SpaceRecord, start: number, end: number): Promise<number> {
    const space = record.space;
    let read = 0;
    for (const vma of space.vmas.list()) {
      if (vma.end <= start || vma.start >= end) continue;
      if (vma.backing.kind !== "file" || !vmaAllows(vma, "read")) continue;
      for (let ea = Math.max(vma.start, start); ea < Math.min(vma.end, end); ea += this.pageSize) {
        const page = ea / this.pageSize;
        if (record.foreign.has(page) || space.physicalAddress(ea) !== null) continue;
        try {
          await space.read(ea, 1);
        } catch (error) {
          // The rest of the mapping lies beyond the end of the file: nothing there to read ahead.
          if (error instanceof AstraError && error.errno === Errno.EFAULT) break;
          throw error;
        }
        record.touched.add(page);
        read++;
      }
    }
    return read;
  }

  brk(id: bigint, value: number): Promise<number> {
    return this.withSpace(id, async (record) => {
      const vmas = record.space.vmas;
      // Before SetBreakBase there is no heap: brk answers the current break, 0, as a failed brk does.
      if (vmas.startBrk === 0) return 0;
      const old = vmas.programBreak;
      const result = await record.space.brk(value);
      const low = Math.min(old, result);
      await this.reconcileForeign(record, this.alignDown(low), this.alignUp(Math.max(old, result)));
      return result;
    });
  }

  setBreakBase(id: bigint, address: number): Promise<number> {
    return this.withSpace(id, (record) => {
      const vmas = record.space.vmas;
      const base = this.alignUp(address);
      if (address < this.manager.minAddress || base >= this.manager.userLimit) {
        throw memoryError(Errno.EINVAL, "address", `${hex(address)} is not a user address for the heap`);
      }
      if (vmas.startBrk !== 0 && vmas.programBreak !== vmas.startBrk) {
        throw memoryError(Errno.EBUSY, "address", "the heap already holds memory; its base cannot move");
      }
      // The break is layout only: no page changes, so the memory manager's methods are not needed.
      vmas.setProgramBreak(base);
      return Promise.resolve(base);
    });
  }

  // --- listing and figures ----------------------------------------------------------------

  mappings(id: bigint): Promise<{ mappings: MappingInfo[]; breakBase: number; breakEnd: number }> {
    return this.withSpace(id, (record) => {
      const vmas = record.space.vmas;
      const lines = vmas.maps().split("\n");
      const resident = this.residentPages(record);
      const foreign = [...record.foreign.keys()].sort((a, b) => a - b);
      let r = 0, f = 0;
      const list = vmas.list();
      const mappings = list.map((vma, index): MappingInfo => {
        const first = vma.start / this.pageSize, last = vma.end / this.pageSize;
        let residentPages = 0, cowPages = 0;
        while (r < resident.length && resident[r] < first) r++;
        for (; r < resident.length && resident[r] < last; r++) {
          residentPages++;
          if (record.space.pageInfo(resident[r] * this.pageSize)?.copyOnWrite) cowPages++;
        }
        while (f < foreign.length && foreign[f] < first) f++;
        for (; f < foreign.length && foreign[f] < last; f++) {
          residentPages++;
          if (record.foreign.get(foreign[f])!.kind === "borrowed") cowPages++;
        }
        const backing = vma.backing;
        return {
          start: vma.start,
          end: vma.end,
          prot: vma.prot,
          kind: backing.kind === "file"
            ? (vma.shared ? MappingKind.FILE_SHARED : MappingKind.FILE_PRIVATE)
            : backing.kind === "shared-memory"
            ? MappingKind.ANONYMOUS_SHARED
            : MappingKind.ANONYMOUS_PRIVATE,
          role: this.roleOf(record, vma, list[index + 1]),
          file: backing.kind === "file" ? { file: backing.file as BackedFile, offset: vma.offset } : null,
          residentPages,
          cowPages,
          mapsLine: lines[index],
        };
      });
      return Promise.resolve({ mappings, breakBase: vmas.startBrk, breakEnd: vmas.programBreak });
    });
  }

  /** How /proc/PID/maps names a mapping (show_map_vma's rules), and the guard below a stack. */
  private roleOf(record: SpaceRecord, vma: Vma, next: Vma | undefined): MappingRole {
    const vmas = record.space.vmas;
    if (vma.backing.kind === "file") return MappingRole.FILE;
    if (vma.backing.kind === "anonymous") {
      if (vma.start <= vmas.programBreak && vma.end >= vmas.startBrk) return MappingRole.HEAP;
      if (vma.start <= vmas.startStack && vma.end >= vmas.startStack) return MappingRole.STACK;
      if (vma.prot === 0 && next?.growsDown && next.start === vma.end) return MappingRole.GUARD;
    }
    return MappingRole.ANONYMOUS;
  }

  statistics(): VmmStatistics {
    let mappings = 0, residentPages = 0;
    const cowFrames = new Set<number>();
    for (const record of this.records.values()) {
      mappings += record.space.vmas.count;
      residentPages += record.space.residentPages + record.foreign.size;
      for (const page of this.residentPages(record)) {
        const info = record.space.pageInfo(page * this.pageSize);
        if (info?.copyOnWrite) cowFrames.add(info.frame);
      }
      for (const entry of record.foreign.values()) {
        if (entry.kind === "borrowed" && this.manager.frames.count(entry.frame) > 1) {
          cowFrames.add(entry.frame);
        }
      }
    }
    const hpt = this.hpt.statistics;
    return {
      addressSpaces: this.records.size,
      mappings,
      residentPages,
      cowSharedFrames: cowFrames.size,
      faults: { ...this.faultCounts },
      htabOrigin: this.hpt.origin,
      htabBytes: this.hpt.bytes,
      hpteValid: hpt.entries,
      hpteCapacity: hpt.capacity,
      hpteSecondary: hpt.secondaryInserts,
      hpteEvictions: hpt.evictions,
      tlbInvalidations: this.tlb.requests,
    };
  }
}
