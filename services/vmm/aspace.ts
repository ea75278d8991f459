// Address spaces: a VMA set, the VSIDs of its segments, and its page table (EA page → frame, with
// accessed/dirty state; copy-on-write is a private page whose frame has more than one reference).
// The page table is the truth; the hashed page table is a cache of it, so an entry evicted from
// there faults again and is simply re-entered.
//
// The page-fault decision: a missing page is demand-filled (zeros, file bytes, or the page of a
// shared memory object), a store to a copy-on-write page copies it, a fault just below a stack
// grows the stack, and anything else is a signal — SIGSEGV with SEGV_MAPERR (nothing mapped) or
// SEGV_ACCERR (not allowed), SIGBUS for a file page wholly beyond the end of the file.
//
// Frames, physical memory and files come through interfaces (pmm, the machine and storage in the
// running system, each possibly over RPC), so every operation is asynchronous; operations on one
// address space run one at a time.
import { Errno, failedPrecondition, invalidArgument } from "../../lib/errors.ts";
import {
  PAGE_SHIFT_4K,
  PAGE_SHIFT_64K,
  type PageShift,
  SEGMENT_256M,
  SEGMENT_SHIFT_256M,
  type SlbEntry,
  userPp,
} from "../../lib/ppc/hpt.ts";
import type { ElfLoadPlan } from "../sched/elf.ts";
import { BUS_ADRERR, SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGSEGV } from "../sched/signals.ts";
import type { HashPageTable } from "./hpt.ts";
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_GROWSDOWN,
  MAP_POPULATE,
  MAP_PRIVATE,
  type MappedFile,
  memoryError,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  type Range,
  type Vma,
  type VmaObserver,
  VmaSet,
} from "./vma.ts";

export type Awaitable<T> = T | Promise<T>;

/** Frames of guest physical memory: pmm in the running system. */
export interface FrameAllocator {
  /** One page-sized, page-aligned frame; its contents are unspecified. */
  allocFrame(): Awaitable<number>;
  freeFrame(address: number): Awaitable<void>;
}

/** Guest physical memory: the machine's PhysicalMemory, directly or over RPC. */
export interface GuestMemory {
  read(address: number, length: number): Awaitable<Uint8Array>;
  write(address: number, bytes: Uint8Array): Awaitable<void>;
  fill(address: number, length: number, value: number): Awaitable<void>;
}

/** File contents for file-backed mappings: storage's VFS in the running system. */
export interface FileStore {
  /** Up to `length` bytes at `offset`: fewer at the end of the file, none beyond it. */
  read(file: MappedFile, offset: number, length: number): Awaitable<Uint8Array>;
  /** Writes back the bytes of a shared mapping. */
  write(file: MappedFile, offset: number, bytes: Uint8Array): Awaitable<void>;
}

/**
 * Hears of every mapping and shared memory object that starts or stops using a file, pieces of
 * splits and merges included: what keeps storage's open file descriptions held (holds.ts).
 */
export interface FileUsers {
  attach(file: MappedFile): void;
  detach(file: MappedFile): void;
}

/** The machine's MMU as vmm drives it; the Mmu class itself in the embedded system. */
export interface MmuControl {
  invalidatePage(context: number, ea: number, bytes: number): void;
  invalidateContext(context: number): void;
  /** Forget a context's SLB and TLB entries: its address space is gone. */
  removeContext(context: number): void;
}

export type AccessType = "read" | "write" | "execute";

export type FaultResolution =
  /** Retry the access: the page is mapped. The machine loads `segment` into the context's SLB. */
  | { kind: "mapped"; segment: SlbEntry }
  | { kind: "signal"; signal: number; code: number; address: number };

export interface PageInfo {
  /** Real address of the page's frame. */
  frame: number;
  prot: number;
  accessed: boolean;
  dirty: boolean;
  /** A private page still shared with another address space: a store copies it. */
  copyOnWrite: boolean;
  /** The page belongs to a shared mapping. */
  shared: boolean;
}

export interface MemoryManagerOptions {
  frames: FrameAllocator;
  memory: GuestMemory;
  files: FileStore;
  hpt: HashPageTable;
  mmu: MmuControl;
  /** Told of every use of a file by a mapping or shared object. */
  fileUsers?: FileUsers;
  /** 4096 (the default, what qemu-ppc64le reports) or 65536. */
  pageSize?: number;
  /** TASK_SIZE; 2^47 by default (ppc64's 128 TiB window). */
  userLimit?: number;
  /** vm.mmap_min_addr; 65536 by default. */
  minAddress?: number;
}

export interface AddressSpaceOptions {
  /** RLIMIT_STACK (stack growth and mmap_base). */
  stackLimit?: number;
  /** RLIMIT_DATA (brk). */
  dataLimit?: number;
}

/** The initial size Linux gives a stack VMA below the arguments (setup_arg_pages's stack_expand). */
const STACK_EXPAND = 128 * 1024;
const DEFAULT_USER_LIMIT = 2 ** 47;
const DEFAULT_MIN_ADDRESS = 0x10000;
/** Linux's VSID scramble: proto-VSID × a 24-bit prime mod 2^40 - 1, a bijection that spreads hashes. */
const VSID_MULTIPLIER = 12538073n;
const VSID_MODULUS = (1n << 40n) - 1n;
/** ESID bits of a user address below 2^47. */
const USER_ESID_BITS = 19;
/** Contexts 1 .. 2^21 - 2: proto-VSIDs stay below the modulus and none is 0. */
const MAX_CONTEXT = 2 ** (40 - USER_ESID_BITS) - 2;
const SEGMENT_BYTES = 2 ** SEGMENT_SHIFT_256M;
const MS_ASYNC = 1;
const MS_INVALIDATE = 2;
const MS_SYNC = 4;

const ACCESSED = 1;
const DIRTY = 2;
const SHARED = 4;

interface PageEntry {
  frame: number;
  flags: number;
}

/** A page of a shared memory object: its frame (one reference held by the object). */
export interface ObjectPage {
  frame: number;
  dirty: boolean;
  /** Bytes that came from the file (the rest of the page is zero and is never written back). */
  length: number;
}

/** The memory of MAP_SHARED mappings: one per shared anonymous mmap, one per file mapped shared. */
export class SharedObject {
  readonly pages = new Map<number, ObjectPage>();
  readonly loading = new Map<number, Promise<ObjectPage | null>>();
  mappings = 0;
  constructor(readonly key: string, readonly file: MappedFile | null) {}
}

/** Reference counts of the frames vmm holds; a frame goes back to the allocator at zero. */
export class FrameTable {
  private readonly references = new Map<number, number>();

  constructor(private readonly allocator: FrameAllocator) {}

  async allocate(): Promise<number> {
    const frame = await this.allocator.allocFrame();
    if (this.references.has(frame)) {
      throw failedPrecondition(
        `the frame allocator handed out frame 0x${frame.toString(16)}, which is in use`,
        Errno.EIO,
      );
    }
    this.references.set(frame, 1);
    return frame;
  }

  retain(frame: number): void {
    const count = this.references.get(frame);
    if (!count) throw failedPrecondition(`frame 0x${frame.toString(16)} is not held`, Errno.EIO);
    this.references.set(frame, count + 1);
  }

  release(frame: number): Awaitable<void> {
    const count = this.references.get(frame);
    if (!count) {
      throw failedPrecondition(`frame 0x${frame.toString(16)} released more often than held`, Errno.EIO);
    }
    if (count > 1) {
      this.references.set(frame, count - 1);
      return;
    }
    this.references.delete(frame);
    return this.allocator.freeFrame(frame);
  }

  count(frame: number): number {
    return this.references.get(frame) ?? 0;
  }

  /** Frames currently held. */
  get size(): number {
    return this.references.size;
  }
}

/** Everything address spaces share: frames, shared objects, the hashed page table, the MMU. */
export class MemoryManager {
  readonly frames: FrameTable;
  readonly sharedMemory: SharedMemory;
  readonly memory: GuestMemory;
  readonly files: FileStore;
  readonly hpt: HashPageTable;
  readonly mmu: MmuControl;
  readonly fileUsers: FileUsers | null;
  readonly pageSize: number;
  readonly pageShift: PageShift;
  readonly userLimit: number;
  readonly minAddress: number;
  private readonly spaces = new Map<number, AddressSpace>();
  private readonly freeContexts: number[] = [];
  private nextContext = 1;
  private nextObjectId = 1;

  constructor(options: MemoryManagerOptions) {
    this.frames = new FrameTable(options.frames);
    this.memory = options.memory;
    this.files = options.files;
    this.hpt = options.hpt;
    this.mmu = options.mmu;
    this.fileUsers = options.fileUsers ?? null;
    const pageSize = options.pageSize ?? 4096;
    if (pageSize !== 4096 && pageSize !== 65536) {
      throw invalidArgument("pageSize", `page size ${pageSize} is not 4096 or 65536`);
    }
    this.pageSize = pageSize;
    this.pageShift = pageSize === 4096 ? PAGE_SHIFT_4K : PAGE_SHIFT_64K;
    this.userLimit = options.userLimit ?? DEFAULT_USER_LIMIT;
    if (this.userLimit > 2 ** (SEGMENT_SHIFT_256M + USER_ESID_BITS)) {
      throw invalidArgument("userLimit", "user addresses must lie below 2^47");
    }
    this.minAddress = options.minAddress ?? DEFAULT_MIN_ADDRESS;
    this.sharedMemory = new SharedMemory(this.frames, this.memory, this.files, pageSize, this.fileUsers);
  }

  /** A new, empty address space (exec). */
  createAddressSpace(options: AddressSpaceOptions = {}): AddressSpace {
    const context = this.allocateContext();
    const space = new AddressSpace(this, context, (observer) =>
      new VmaSet({
        pageSize: this.pageSize,
        minAddress: this.minAddress,
        limit: this.userLimit,
        stackLimit: options.stackLimit,
        dataLimit: options.dataLimit,
        allocateObjectId: () => this.nextObjectId++,
      }, observer));
    this.spaces.set(context, space);
    return space;
  }

  /** The live address space of a context. */
  addressSpace(context: number): AddressSpace | undefined {
    return this.spaces.get(context);
  }

  get addressSpaceCount(): number {
    return this.spaces.size;
  }

  /** @internal A child for fork, its VMA set built by `makeVmas`. */
  adopt(makeVmas: (observer: VmaObserver) => VmaSet): AddressSpace {
    const context = this.allocateContext();
    const space = new AddressSpace(this, context, makeVmas);
    this.spaces.set(context, space);
    return space;
  }

  /** @internal The address space is gone: its context may be reused. */
  forget(context: number): void {
    this.spaces.delete(context);
    this.mmu.removeContext(context);
    this.freeContexts.push(context);
  }

  private allocateContext(): number {
    const reused = this.freeContexts.pop();
    if (reused !== undefined) return reused;
    if (this.nextContext > MAX_CONTEXT) {
      throw memoryError(Errno.ENOMEM, "context", `all ${MAX_CONTEXT} address-space contexts are in use`);
    }
    return this.nextContext++;
  }
}

/**
 * The memory objects behind MAP_SHARED mappings, shared by every address space that maps them:
 * one per shared anonymous mmap (kept across fork), one per file mapped shared. An object lives
 * while some VMA maps it; then its dirty file pages are written back and its frames freed.
 */
export class SharedMemory {
  private readonly objects = new Map<string, SharedObject>();
  private readonly retired: SharedObject[] = [];
  /** Write-backs of shared file objects in flight, by file key: a new object waits for them. */
  private readonly flushing = new Map<string, Promise<void>>();

  constructor(
    private readonly frames: FrameTable,
    private readonly memory: GuestMemory,
    private readonly files: FileStore,
    private readonly pageSize: number,
    private readonly fileUsers: FileUsers | null,
  ) {}

  /** Objects alive (mapped somewhere). */
  get size(): number {
    return this.objects.size;
  }

  private keyOf(vma: Vma): string {
    const backing = vma.backing;
    if (backing.kind === "file") return `file:${backing.file.key}`;
    if (backing.kind === "shared-memory") return `shm:${backing.object}`;
    throw failedPrecondition("private anonymous memory has no shared object", Errno.EINVAL);
  }

  /** Counts a shared VMA's mapping of its object, creating the object. */
  attach(vma: Vma): void {
    if (!vma.shared) return;
    const key = this.keyOf(vma);
    let object = this.objects.get(key);
    if (!object) {
      object = new SharedObject(key, vma.backing.kind === "file" ? vma.backing.file : null);
      this.objects.set(key, object);
      // The object reads and writes back through its first mapping's file, even after that mapping.
      if (object.file) this.fileUsers?.attach(object.file);
    }
    object.mappings++;
  }

  /** Uncounts it; an object nobody maps any more is retired at the next settle(). */
  detach(vma: Vma): void {
    if (!vma.shared) return;
    const object = this.objects.get(this.keyOf(vma));
    if (!object) return;
    object.mappings--;
    if (object.mappings === 0) {
      this.objects.delete(object.key);
      this.retired.push(object);
    }
  }

  /** The object a shared VMA maps. */
  objectOf(vma: Vma): SharedObject {
    const object = this.objects.get(this.keyOf(vma));
    if (!object) {
      throw failedPrecondition(`shared mapping at 0x${vma.start.toString(16)} has no object`, Errno.EIO);
    }
    return object;
  }

  /**
   * A page of an object, filled on first use (zeros, or the file's bytes); null when the page
   * lies wholly beyond the end of the file. Concurrent first uses share one fill.
   */
  async page(object: SharedObject, index: number): Promise<ObjectPage | null> {
    const present = object.pages.get(index);
    if (present) return present;
    let pending = object.loading.get(index);
    if (!pending) {
      pending = this.load(object, index).finally(() => object.loading.delete(index));
      object.loading.set(index, pending);
    }
    return await pending;
  }

  private async load(object: SharedObject, index: number): Promise<ObjectPage | null> {
    let bytes: Uint8Array | null = null;
    if (object.file) {
      await this.flushing.get(object.file.key);
      bytes = await this.files.read(object.file, index * this.pageSize, this.pageSize);
      if (bytes.length === 0) return null;
    }
    const frame = await this.frames.allocate();
    await fillFrame(this.memory, frame, this.pageSize, bytes);
    const page = { frame, dirty: false, length: bytes?.length ?? 0 };
    object.pages.set(index, page);
    return page;
  }

  /** Writes the dirty pages of a file object whose page indices lie in [first, end) back to the file. */
  async writeBack(object: SharedObject, first = 0, end = Infinity): Promise<void> {
    if (!object.file) return;
    for (const [index, page] of object.pages) {
      if (index < first || index >= end || !page.dirty || page.length === 0) continue;
      const bytes = await this.memory.read(page.frame, page.length);
      await this.files.write(object.file, index * this.pageSize, bytes);
    }
  }

  /** Retires the objects nobody maps any more: writes them back, then frees their frames. */
  async settle(): Promise<void> {
    while (this.retired.length > 0) {
      const object = this.retired.shift()!;
      if (object.file) {
        const file = object.file;
        const done = this.writeBack(object).finally(() => {
          if (this.flushing.get(file.key) === done) this.flushing.delete(file.key);
        });
        this.flushing.set(file.key, done);
        await done;
      }
      await Promise.all(object.loading.values());
      for (const page of object.pages.values()) await this.frames.release(page.frame);
      object.pages.clear();
      if (object.file) this.fileUsers?.detach(object.file);
    }
  }
}

/** Writes a frame: `bytes` then zeros, or all zeros (a recycled frame holds anything). */
async function fillFrame(
  memory: GuestMemory,
  frame: number,
  pageSize: number,
  bytes: Uint8Array | null,
): Promise<void> {
  if (!bytes || bytes.length < pageSize) await memory.fill(frame, pageSize, 0);
  if (bytes && bytes.length > 0) await memory.write(frame, bytes.subarray(0, pageSize));
}

/** One process's memory. */
export class AddressSpace {
  /** The layout, to read (and for RLIMIT_STACK/RLIMIT_DATA); change it only through the methods below. */
  readonly vmas: VmaSet;
  private readonly pages = new Map<number, PageEntry>();
  private readonly vsids = new Map<number, number>();
  private queue: Promise<unknown> = Promise.resolve();
  private destroyed = false;
  private readonly pageSize: number;

  /** Use MemoryManager.createAddressSpace. */
  constructor(
    private readonly manager: MemoryManager,
    readonly context: number,
    makeVmas: (observer: VmaObserver) => VmaSet,
  ) {
    this.pageSize = manager.pageSize;
    const shared = manager.sharedMemory;
    const files = manager.fileUsers;
    this.vmas = makeVmas({
      attach: (vma) => {
        shared.attach(vma);
        if (vma.backing.kind === "file") files?.attach(vma.backing.file);
      },
      detach: (vma) => {
        shared.detach(vma);
        if (vma.backing.kind === "file") files?.detach(vma.backing.file);
      },
    });
  }

  /** Resident pages. */
  get residentPages(): number {
    return this.pages.size;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Runs operations on this address space one at a time. */
  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.destroyed) {
        throw failedPrecondition(`address space ${this.context} has been destroyed`, Errno.ESRCH);
      }
      return task();
    });
    this.queue = run.then(() => undefined, () => undefined);
    return run;
  }

  // --- segments -----------------------------------------------------------------------------

  /** The VSID of a 256 MB segment: Linux's scramble of (context, ESID). */
  vsid(esid: number): number {
    let vsid = this.vsids.get(esid);
    if (vsid === undefined) {
      const proto = (BigInt(this.context) << BigInt(USER_ESID_BITS)) | BigInt(esid);
      vsid = Number((proto * VSID_MULTIPLIER) % VSID_MODULUS);
      this.vsids.set(esid, vsid);
    }
    return vsid;
  }

  /** The SLB entry of the segment holding `ea` (problem-state key Kp = 1, as Linux sets it). */
  segment(ea: number): SlbEntry {
    if (!Number.isSafeInteger(ea) || ea < 0 || ea >= this.manager.userLimit) {
      throw invalidArgument("ea", `0x${ea.toString(16)} is not a user address`);
    }
    const esid = Math.floor(ea / SEGMENT_BYTES);
    return {
      esid,
      vsid: this.vsid(esid),
      segmentSize: SEGMENT_256M,
      basePageShift: this.manager.pageShift,
      ks: true,
      kp: true,
      noExecute: false,
    };
  }

  /** SLB entries for every segment that holds a mapping (to preload on a context switch). */
  segments(): SlbEntry[] {
    const esids = new Set<number>();
    for (const vma of this.vmas.list()) {
      for (let esid = Math.floor(vma.start / SEGMENT_BYTES); esid * SEGMENT_BYTES < vma.end; esid++) {
        esids.add(esid);
      }
    }
    return [...esids].sort((a, b) => a - b).map((esid) => this.segment(esid * SEGMENT_BYTES));
  }

  // --- translations -----------------------------------------------------------------------

  /** What the hashed page table should say for a page, from its VMA and state. */
  private protection(
    vma: Vma,
    entry: PageEntry,
  ): { readable: boolean; writable: boolean; executable: boolean } {
    // On hashed-page-table POWER, write or execute permission implies read.
    const readable = (vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0;
    let writable = (vma.prot & PROT_WRITE) !== 0;
    if (writable) {
      if (!vma.shared) writable = this.manager.frames.count(entry.frame) === 1;
      else if (vma.backing.kind === "file") writable = (entry.flags & DIRTY) !== 0;
    }
    return { readable, writable, executable: (vma.prot & PROT_EXEC) !== 0 };
  }

  /** Enters (or rewrites) a page's translation in the hashed page table. */
  private enter(vma: Vma, ea: number, entry: PageEntry): void {
    const { readable, writable, executable } = this.protection(vma, entry);
    if (!readable) {
      this.removeTranslation(ea);
      return;
    }
    // Once writable in the table, stores no longer reach vmm: count the page as written.
    if (writable) entry.flags |= DIRTY;
    const result = this.manager.hpt.insert({
      owner: this.context,
      vsid: this.vsid(Math.floor(ea / SEGMENT_BYTES)),
      segmentSize: SEGMENT_256M,
      ea,
      pageShift: this.manager.pageShift,
      realAddress: entry.frame,
      pp: userPp(writable),
      noExecute: !executable,
    });
    if (result.replaced) this.manager.mmu.invalidatePage(this.context, ea, this.pageSize);
    const evicted = result.evicted;
    if (evicted) this.manager.mmu.invalidatePage(evicted.owner, evicted.ea, 2 ** evicted.pageShift);
  }

  /** Rewrites the protection of a page's translation if the hashed page table holds one. */
  private reprotect(vma: Vma | undefined, ea: number, entry: PageEntry): void {
    if (!vma) {
      this.removeTranslation(ea);
      return;
    }
    const { readable, writable, executable } = this.protection(vma, entry);
    if (!readable) {
      this.removeTranslation(ea);
      return;
    }
    const vsid = this.vsid(Math.floor(ea / SEGMENT_BYTES));
    if (this.manager.hpt.updateProtection(vsid, ea, userPp(writable), !executable)) {
      this.manager.mmu.invalidatePage(this.context, ea, this.pageSize);
    }
  }

  private removeTranslation(ea: number): void {
    if (this.manager.hpt.remove(this.vsid(Math.floor(ea / SEGMENT_BYTES)), ea)) {
      this.manager.mmu.invalidatePage(this.context, ea, this.pageSize);
    }
  }

  /** Page numbers of resident pages in [start, end), whichever of range and table is smaller to walk. */
  private residentIn(start: number, end: number): number[] {
    const first = Math.floor(start / this.pageSize);
    const last = Math.ceil(end / this.pageSize);
    const found: number[] = [];
    if (last - first <= this.pages.size) {
      for (let page = first; page < last; page++) if (this.pages.has(page)) found.push(page);
    } else {
      for (const page of this.pages.keys()) if (page >= first && page < last) found.push(page);
      found.sort((a, b) => a - b);
    }
    return found;
  }

  /** Drops the pages of [start, end): translations gone, frame references released. */
  private async dropPages(ranges: readonly Range[]): Promise<void> {
    const releases: Awaitable<void>[] = [];
    for (const { start, end } of ranges) {
      for (const page of this.residentIn(start, end)) {
        const entry = this.pages.get(page)!;
        this.removeTranslation(page * this.pageSize);
        this.pages.delete(page);
        releases.push(this.manager.frames.release(entry.frame));
      }
    }
    await Promise.all(releases);
  }

  /** Re-derives the translations of the resident pages of [start, end) from their VMAs. */
  private reprotectRanges(ranges: readonly Range[]): void {
    for (const { start, end } of ranges) {
      for (const page of this.residentIn(start, end)) {
        const ea = page * this.pageSize;
        this.reprotect(this.vmas.find(ea), ea, this.pages.get(page)!);
      }
    }
  }

  // --- page faults ------------------------------------------------------------------------

  /** The page-fault decision for an access at `ea`. */
  handleFault(ea: number, access: AccessType): Promise<FaultResolution> {
    return this.exclusive(async () => {
      const outcome = await this.fault(ea, access, false);
      if ("signal" in outcome) return outcome;
      return { kind: "mapped", segment: this.segment(ea) };
    });
  }

  private signal(signal: number, code: number, address: number): FaultResolution & { kind: "signal" } {
    return { kind: "signal", signal, code, address };
  }

  /**
   * Makes the page at `ea` present and its translation allow `access`, or says which signal the
   * access earns. `force` is ptrace's FOLL_FORCE: it may write a read-only private page (as a
   * private copy) and read an inaccessible one.
   */
  private async fault(
    ea: number,
    access: AccessType,
    force: boolean,
  ): Promise<{ entry: PageEntry } | (FaultResolution & { kind: "signal" })> {
    if (!Number.isSafeInteger(ea) || ea < 0 || ea >= this.manager.userLimit) {
      return this.signal(SIGSEGV, SEGV_MAPERR, Math.max(0, Math.min(ea, Number.MAX_SAFE_INTEGER)));
    }
    let vma = this.vmas.find(ea);
    if (!vma) {
      if (!this.vmas.growStack(ea)) return this.signal(SIGSEGV, SEGV_MAPERR, ea);
      vma = this.vmas.find(ea)!;
    }
    if (!this.allows(vma, access, force)) return this.signal(SIGSEGV, SEGV_ACCERR, ea);

    const pageEa = this.vmas.alignDown(ea);
    const page = pageEa / this.pageSize;
    let entry = this.pages.get(page);
    if (!entry) {
      const filled = await this.populate(vma, pageEa);
      if (!filled) return this.signal(SIGBUS, BUS_ADRERR, ea);
      entry = filled;
      this.pages.set(page, entry);
    } else if (access === "write" && !vma.shared && this.manager.frames.count(entry.frame) > 1) {
      await this.breakCopyOnWrite(entry);
    }
    entry.flags |= ACCESSED;
    if (access === "write") {
      entry.flags |= DIRTY;
      if (vma.shared && vma.backing.kind === "file") {
        const object = this.manager.sharedMemory.objectOf(vma);
        const objectPage = object.pages.get((vma.offset + (pageEa - vma.start)) / this.pageSize);
        if (objectPage) objectPage.dirty = true;
      }
    }
    this.enter(vma, pageEa, entry);
    return { entry };
  }

  private allows(vma: Vma, access: AccessType, force: boolean): boolean {
    if (access === "execute") return (vma.prot & PROT_EXEC) !== 0;
    if (access === "write") {
      if (vma.prot & PROT_WRITE) return true;
      return force && !vma.shared;
    }
    return force || (vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0;
  }

  /** A new page for `pageEa` in `vma`; null if it lies wholly beyond the end of its file. */
  private async populate(vma: Vma, pageEa: number): Promise<PageEntry | null> {
    const manager = this.manager;
    if (vma.shared) {
      const object = manager.sharedMemory.objectOf(vma);
      const objectPage = await manager.sharedMemory.page(
        object,
        (vma.offset + (pageEa - vma.start)) / this.pageSize,
      );
      if (!objectPage) return null;
      manager.frames.retain(objectPage.frame);
      return { frame: objectPage.frame, flags: SHARED | (objectPage.dirty ? DIRTY : 0) };
    }
    let bytes: Uint8Array | null = null;
    if (vma.backing.kind === "file") {
      bytes = await manager.files.read(vma.backing.file, vma.offset + (pageEa - vma.start), this.pageSize);
      if (bytes.length === 0) return null;
    }
    const frame = await manager.frames.allocate();
    await fillFrame(manager.memory, frame, this.pageSize, bytes);
    return { frame, flags: 0 };
  }

  /** Gives a private page its own frame: a copy, unless every other reference went meanwhile. */
  private async breakCopyOnWrite(entry: PageEntry): Promise<void> {
    const manager = this.manager;
    const shared = entry.frame;
    const frame = await manager.frames.allocate();
    await manager.memory.write(frame, await manager.memory.read(shared, this.pageSize));
    entry.frame = frame;
    await manager.frames.release(shared);
  }

  // --- system calls -----------------------------------------------------------------------

  /** mmap(2): the address mapped. */
  mmap(
    address: number,
    length: number,
    prot: number,
    flags: number,
    file: MappedFile | null,
    offset: number,
  ): Promise<number> {
    return this.exclusive(() => this.doMmap(address, length, prot, flags, file, offset));
  }

  private async doMmap(
    address: number,
    length: number,
    prot: number,
    flags: number,
    file: MappedFile | null,
    offset: number,
  ): Promise<number> {
    const result = this.vmas.mmap({ address, length, prot, flags, file, offset });
    await this.dropPages(result.removed);
    await this.manager.sharedMemory.settle();
    if (flags & MAP_POPULATE) {
      const vma = this.vmas.find(result.address)!;
      const access: AccessType = (vma.prot & PROT_WRITE) && !vma.shared ? "write" : "read";
      for (let ea = result.address; ea < vma.end && ea < result.address + length; ea += this.pageSize) {
        // Linux ignores population failures (a file shorter than the mapping): so does this.
        if (this.allows(vma, access, false)) await this.fault(ea, access, false);
      }
    }
    return result.address;
  }

  /** munmap(2). */
  munmap(address: number, length: number): Promise<void> {
    return this.exclusive(async () => {
      const removed = this.vmas.munmap(address, length);
      await this.dropPages(removed);
      await this.manager.sharedMemory.settle();
    });
  }

  /** mprotect(2). */
  mprotect(address: number, length: number, prot: number): Promise<void> {
    return this.exclusive(() => {
      const result = this.vmas.mprotect(address, length, prot);
      this.reprotectRanges(result.changed);
      if (result.error) throw result.error;
      return Promise.resolve();
    });
  }

  /** mremap(2): the new address. */
  mremap(
    oldAddress: number,
    oldLength: number,
    newLength: number,
    flags: number,
    newAddress: number,
  ): Promise<number> {
    return this.exclusive(async () => {
      const result = this.vmas.mremap(oldAddress, oldLength, newLength, flags, newAddress);
      await this.dropPages(result.removed);
      if (result.moved) this.movePages(result.moved.from, result.moved.to, result.moved.length);
      await this.manager.sharedMemory.settle();
      if (result.error) throw result.error;
      return result.address;
    });
  }

  /** Moves resident pages (their frames and state) to new addresses; translations are redone on fault. */
  private movePages(from: number, to: number, length: number): void {
    const delta = (to - from) / this.pageSize;
    const moving = this.residentIn(from, from + length).map((page) => [page, this.pages.get(page)!] as const);
    for (const [page] of moving) {
      this.removeTranslation(page * this.pageSize);
      this.pages.delete(page);
    }
    for (const [page, entry] of moving) this.pages.set(page + delta, entry);
  }

  /** madvise(2). */
  madvise(address: number, length: number, advice: number): Promise<void> {
    return this.exclusive(async () => {
      const result = this.vmas.madvise(address, length, advice);
      await this.dropPages(result.drop);
      if (result.error) throw result.error;
    });
  }

  /** brk(2): the new break, or the current one when it cannot move. */
  brk(value: number): Promise<number> {
    return this.exclusive(async () => {
      const result = this.vmas.brk(value);
      await this.dropPages(result.removed);
      return result.brk;
    });
  }

  /** msync(2): writes the dirty pages of shared file mappings in the range back to their files. */
  msync(address: number, length: number, flags: number): Promise<void> {
    return this.exclusive(async () => {
      if (flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) || ((flags & MS_ASYNC) && (flags & MS_SYNC))) {
        throw memoryError(Errno.EINVAL, "flags", `invalid msync flags 0x${flags.toString(16)}`);
      }
      if (address % this.pageSize !== 0) {
        throw memoryError(Errno.EINVAL, "addr", `0x${address.toString(16)} is not page-aligned`);
      }
      const end = address + this.vmas.alignUp(length);
      if (end < address || end > Number.MAX_SAFE_INTEGER) {
        throw memoryError(Errno.ENOMEM, "length", "the range wraps around");
      }
      let cursor = address;
      let hole = false;
      for (const vma of this.vmas.list()) {
        if (vma.end <= cursor || vma.start >= end) continue;
        if (vma.start > cursor) hole = true;
        if (vma.shared && vma.backing.kind === "file") {
          const first = (vma.offset + (Math.max(vma.start, address) - vma.start)) / this.pageSize;
          const last = (vma.offset + (Math.min(vma.end, end) - vma.start)) / this.pageSize;
          await this.manager.sharedMemory.writeBack(this.manager.sharedMemory.objectOf(vma), first, last);
        }
        cursor = vma.end;
      }
      if (hole || cursor < end) throw memoryError(Errno.ENOMEM, "addr", "the range is not fully mapped");
    });
  }

  // --- user memory ------------------------------------------------------------------------

  /** Reads user memory as copy_from_user does (faulting pages in); EFAULT where it may not. */
  read(ea: number, length: number): Promise<Uint8Array> {
    return this.exclusive(async () => {
      const out = new Uint8Array(length);
      await this.forEachPage(ea, length, "read", false, async (frame, offset, done, n) => {
        out.set(await this.manager.memory.read(frame + offset, n), done);
      });
      return out;
    });
  }

  /**
   * Writes user memory as copy_to_user does; with `force` (the kernel's own writes, such as the
   * loader zeroing a read-only segment's tail) read-only private pages get a private copy.
   */
  write(ea: number, bytes: Uint8Array, options: { force?: boolean } = {}): Promise<void> {
    return this.exclusive(() => this.doWrite(ea, bytes, options.force ?? false));
  }

  private doWrite(ea: number, bytes: Uint8Array, force: boolean): Promise<void> {
    return this.forEachPage(ea, bytes.length, "write", force, async (frame, offset, done, n) => {
      await this.manager.memory.write(frame + offset, bytes.subarray(done, done + n));
    });
  }

  private async forEachPage(
    ea: number,
    length: number,
    access: AccessType,
    force: boolean,
    visit: (frame: number, offset: number, done: number, count: number) => Promise<void>,
  ): Promise<void> {
    let done = 0;
    while (done < length) {
      const address = ea + done;
      const outcome = await this.fault(address, access, force);
      if ("signal" in outcome) {
        throw memoryError(
          Errno.EFAULT,
          "address",
          `${access} of user memory at 0x${address.toString(16)} faults`,
        );
      }
      const offset = address % this.pageSize;
      const count = Math.min(this.pageSize - offset, length - done);
      await visit(outcome.entry.frame, offset, done, count);
      done += count;
    }
  }

  /** Physical address of `ea` if its page is resident (vmm_get_physical), else null. */
  physicalAddress(ea: number): number | null {
    const entry = this.pages.get(Math.floor(ea / this.pageSize));
    return entry ? entry.frame + (ea % this.pageSize) : null;
  }

  /** The state of the resident page holding `ea` (vmm_get_page_flags), or null. */
  pageInfo(ea: number): PageInfo | null {
    const entry = this.pages.get(Math.floor(ea / this.pageSize));
    const vma = this.vmas.find(ea);
    if (!entry || !vma) return null;
    return {
      frame: entry.frame,
      prot: vma.prot,
      accessed: (entry.flags & ACCESSED) !== 0,
      dirty: (entry.flags & DIRTY) !== 0,
      copyOnWrite: !vma.shared && this.manager.frames.count(entry.frame) > 1,
      shared: (entry.flags & SHARED) !== 0,
    };
  }

  /** /proc/PID/maps. */
  maps(): string {
    return this.vmas.maps();
  }

  // --- exec -------------------------------------------------------------------------------

  /**
   * Maps a static executable's load plan as Linux's ELF loader does: each segment's file part as a
   * private file mapping, the rest of its pages anonymous, the bytes between the end of the file
   * part and the end of its page zeroed, and the program break just above the highest segment.
   */
  loadElf(plan: ElfLoadPlan, file: MappedFile): Promise<void> {
    return this.exclusive(async () => {
      if (plan.pageSize !== this.pageSize) {
        throw invalidArgument(
          "plan",
          `the plan uses ${plan.pageSize}-byte pages, this address space ${this.pageSize}`,
        );
      }
      for (const segment of plan.segments) {
        const mapStart = Number(segment.mapStart);
        const mapEnd = Number(segment.mapEnd);
        const fileEnd = Number(segment.vaddr + segment.filesz);
        const fileMapEnd = segment.filesz > 0n ? this.vmas.alignUp(fileEnd) : mapStart;
        const fixed = MAP_PRIVATE | MAP_FIXED;
        if (fileMapEnd > mapStart) {
          await this.doMmap(
            mapStart,
            fileMapEnd - mapStart,
            segment.prot,
            fixed,
            file,
            Number(segment.mapFileOffset),
          );
        }
        if (mapEnd > fileMapEnd) {
          await this.doMmap(fileMapEnd, mapEnd - fileMapEnd, segment.prot, fixed | MAP_ANONYMOUS, null, 0);
        }
        if (segment.memsz > segment.filesz && fileEnd < fileMapEnd) {
          await this.doWrite(fileEnd, new Uint8Array(fileMapEnd - fileEnd), true);
        }
      }
      this.vmas.setProgramBreak(Number(plan.brkStart));
    });
  }

  /**
   * Maps the initial stack below `stackTop` (growing down, 128 KiB below the initial stack pointer
   * as Linux leaves it, within RLIMIT_STACK) and writes the bytes sched built there.
   */
  setupStack(stackTop: number, stackPointer: number, bytes: Uint8Array, executable = false): Promise<void> {
    return this.exclusive(async () => {
      if (stackPointer + bytes.length !== stackTop || stackTop % 16 !== 0) {
        throw invalidArgument(
          "stackPointer",
          "the stack bytes must fill [stackPointer, stackTop) below a 16-byte aligned top",
        );
      }
      const top = this.vmas.alignUp(stackTop);
      const limit = this.vmas.alignDown(this.vmas.stackLimit);
      const argumentPages = top - this.vmas.alignDown(stackPointer);
      const bottom = argumentPages + STACK_EXPAND > limit ? top - limit : top - argumentPages - STACK_EXPAND;
      const prot = PROT_READ | PROT_WRITE | (executable ? PROT_EXEC : 0);
      await this.doMmap(
        bottom,
        top - bottom,
        prot,
        MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_GROWSDOWN,
        null,
        0,
      );
      this.vmas.setStartStack(stackPointer);
      await this.doWrite(stackPointer, bytes, false);
    });
  }

  // --- fork and exit ----------------------------------------------------------------------

  /**
   * A copy of this address space for fork: private pages shared copy-on-write (both sides lose
   * write access until one of them stores), shared pages shared, MADV_DONTFORK ranges left out
   * and MADV_WIPEONFORK ranges empty in the child.
   */
  fork(): Promise<AddressSpace> {
    return this.exclusive(() => {
      const frames = this.manager.frames;
      const child = this.manager.adopt((observer) => this.vmas.fork(observer));
      const copyOnWrite: number[] = [];
      for (const [page, entry] of this.pages) {
        const vma = this.vmas.find(page * this.pageSize);
        if (!vma || vma.dontFork || vma.wipeOnFork) continue;
        frames.retain(entry.frame);
        child.pages.set(page, { frame: entry.frame, flags: entry.flags });
        if (!vma.shared && (vma.prot & PROT_WRITE)) copyOnWrite.push(page);
      }
      for (const page of copyOnWrite) {
        const ea = page * this.pageSize;
        this.reprotect(this.vmas.find(ea), ea, this.pages.get(page)!);
      }
      return Promise.resolve(child);
    });
  }

  /** Frees everything: translations, every frame reference, the VMAs, the context. */
  destroy(): Promise<void> {
    return this.exclusive(async () => {
      const releases: Awaitable<void>[] = [];
      for (const [page, entry] of this.pages) {
        this.manager.hpt.remove(
          this.vsid(Math.floor((page * this.pageSize) / SEGMENT_BYTES)),
          page * this.pageSize,
        );
        releases.push(this.manager.frames.release(entry.frame));
      }
      this.pages.clear();
      this.manager.mmu.invalidateContext(this.context);
      await Promise.all(releases);
      this.vmas.clear();
      await this.manager.sharedMemory.settle();
      this.destroyed = true;
      this.manager.forget(this.context);
    });
  }
}
