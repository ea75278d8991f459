// Guest memory as the machine's CPUs and kernel side reach it: effective addresses of one address
// space, translated by the MMU (the SLB of the space's context, then the hashed page table), onto
// guest physical memory.
//
// CoreMemory is a CPU's CpuMemory. Its slow path translates, fills the CPU's software TLB with the
// 4 KiB page (writable only from a store, see cpu/tlb.ts) and throws MemoryFault with the cause
// the MMU found — "no-segment" for a segment miss, which the run loop resolves by asking vmm for
// the segment rather than for the page. SpaceMemory is the kernel side's view of a space
// (copy_from_user, copy_to_user): it never faults, it reports where it stopped.
import { AstraError } from "../../lib/errors.ts";
import {
  ACCESS_EXECUTE,
  ACCESS_READ,
  ACCESS_WRITE,
  type AccessKind as MmuAccess,
  type SlbEntry,
} from "../../lib/ppc/hpt.ts";
import { type AccessKind, type CpuMemory, MemoryFault } from "./cpu/access.ts";
import { SoftwareTlb, TLB_PAGE_BYTES } from "./cpu/tlb.ts";
import type { UserAccess, UserFault, UserMemory } from "./kernel_side.ts";
import { CHUNK_SIZE, type PhysicalMemory } from "./memory.ts";
import { type AddressTranslator, type Mmu, TRANSLATION_FAULT } from "./mmu.ts";

const PAGE = TLB_PAGE_BYTES;
/** Problem-state effective addresses at or above 2^53 are never mapped. */
const ADDRESS_LIMIT = 2 ** 53;
const ADDRESS_LIMIT_BIG = 1n << 53n;
const ACCESS_NAMES: readonly AccessKind[] = ["read", "write", "execute"];
const DEFAULT_TLB_ENTRIES = 4096;
const NO_VIEW = new DataView(new ArrayBuffer(0));

/** The guest memory of one CPU: whichever address space the thread it runs lives in. */
export class CoreMemory implements CpuMemory {
  readonly tlb: SoftwareTlb;
  /** Slow-path translations served by the MMU's TLB, and those that walked the page table. */
  mmuTlbHits = 0;
  mmuTlbMisses = 0;
  private translator: AddressTranslator | null = null;
  /** The chunk view of the last locate(). */
  private view: DataView = NO_VIEW;
  /** Real 4 KiB page → the effective pages instructions were fetched from it through. */
  private readonly codeFrames = new Map<number, Set<number>>();

  constructor(
    private readonly mmu: Mmu,
    private readonly physical: PhysicalMemory,
    tlbEntries = DEFAULT_TLB_ENTRIES,
  ) {
    this.tlb = new SoftwareTlb(tlbEntries);
  }

  /** The MMU context accesses translate in, or null when none is bound. */
  get context(): number | null {
    return this.translator?.context ?? null;
  }

  /**
   * Translates in `translator`'s context from now on. A change of context empties the software
   * TLB and the record of code pages; returns whether the context changed (the caller then drops
   * the CPU's decoded code, which belongs to the old space).
   */
  bind(translator: AddressTranslator | null): boolean {
    if (translator === this.translator) return false;
    this.translator = translator;
    this.tlb.flush();
    this.codeFrames.clear();
    return true;
  }

  /** Forgets which real pages code came from (the CPU dropped all its decoded code). */
  forgetCode(): void {
    this.codeFrames.clear();
  }

  /**
   * The effective pages whose decoded instructions came from real memory [address, address +
   * length), forgotten here: the caller invalidates them on the CPU.
   */
  takeCodePages(address: number, length: number): number[] {
    if (this.codeFrames.size === 0) return [];
    const pages: number[] = [];
    const last = Math.floor((address + length - 1) / PAGE);
    for (let frame = Math.floor(address / PAGE); frame <= last; frame++) {
      const effective = this.codeFrames.get(frame);
      if (!effective) continue;
      this.codeFrames.delete(frame);
      pages.push(...effective);
    }
    return pages;
  }

  /**
   * Translates `ea` for an access, leaves the chunk view holding it in `view` and returns the
   * offset of `ea` in it. Loads and stores install the page in the software TLB.
   */
  private locate(ea: number, access: MmuAccess): number {
    const translator = this.translator;
    if (translator === null) throw new MemoryFault(BigInt(ea), ACCESS_NAMES[access], "no-segment");
    const walks = this.mmu.statistics.walks;
    const real = translator.translate(ea, access);
    if (walks === this.mmu.statistics.walks) this.mmuTlbHits++;
    else this.mmuTlbMisses++;
    if (real === TRANSLATION_FAULT) {
      throw new MemoryFault(BigInt(ea), ACCESS_NAMES[access], translator.fault?.cause ?? "not-mapped");
    }
    let view: DataView;
    try {
      view = this.physical.chunkView(real);
    } catch (error) {
      if (!(error instanceof AstraError)) throw error;
      throw new MemoryFault(BigInt(ea), ACCESS_NAMES[access], "bad-real-address");
    }
    this.view = view;
    const offset = real % CHUNK_SIZE;
    if (access === ACCESS_EXECUTE) {
      const frame = Math.floor(real / PAGE);
      let effective = this.codeFrames.get(frame);
      if (!effective) this.codeFrames.set(frame, effective = new Set());
      effective.add(Math.floor(ea / PAGE));
    } else {
      this.tlb.install(ea, view, offset - (offset % PAGE), access === ACCESS_WRITE);
    }
    return offset;
  }

  /** A little-endian load of `size` bytes that crosses into the next page: the low word, high word in LOADED[1]. */
  private loadCrossing(ea: number, size: number): number {
    let lo = 0, hi = 0;
    for (let i = 0; i < size; i++) {
      const offset = this.locate(ea + i, ACCESS_READ);
      const byte = this.view.getUint8(offset);
      if (i < 4) lo |= byte << (8 * i);
      else hi |= byte << (8 * (i - 4));
    }
    LOADED[1] = hi;
    return lo;
  }

  /** A store that crosses into the next page: both pages are translated before any byte is written. */
  private storeCrossing(ea: number, size: number, lo: number, hi: number): void {
    const split = PAGE - (ea % PAGE);
    const firstOffset = this.locate(ea, ACCESS_WRITE);
    const first = this.view;
    const secondOffset = this.locate(ea + split, ACCESS_WRITE);
    const second = this.view;
    for (let i = 0; i < size; i++) {
      const byte = (i < 4 ? lo >>> (8 * i) : hi >>> (8 * (i - 4))) & 0xff;
      if (i < split) first.setUint8(firstOffset + i, byte);
      else second.setUint8(secondOffset + i - split, byte);
    }
  }

  load8(a: number): number {
    const offset = this.locate(a, ACCESS_READ);
    return this.view.getUint8(offset);
  }

  load16(a: number): number {
    if (a % PAGE > PAGE - 2) return this.loadCrossing(a, 2);
    const offset = this.locate(a, ACCESS_READ);
    return this.view.getUint16(offset, true);
  }

  load32(a: number): number {
    if (a % PAGE > PAGE - 4) return this.loadCrossing(a, 4) | 0;
    const offset = this.locate(a, ACCESS_READ);
    return this.view.getInt32(offset, true);
  }

  load64(a: number, target: Int32Array, index: number): void {
    if (a % PAGE > PAGE - 8) {
      target[index] = this.loadCrossing(a, 8);
      target[index + 1] = LOADED[1];
      return;
    }
    const offset = this.locate(a, ACCESS_READ);
    target[index] = this.view.getInt32(offset, true);
    target[index + 1] = this.view.getInt32(offset + 4, true);
  }

  store8(a: number, v: number): void {
    const offset = this.locate(a, ACCESS_WRITE);
    this.view.setUint8(offset, v);
  }

  store16(a: number, v: number): void {
    if (a % PAGE > PAGE - 2) return this.storeCrossing(a, 2, v, 0);
    const offset = this.locate(a, ACCESS_WRITE);
    this.view.setUint16(offset, v, true);
  }

  store32(a: number, v: number): void {
    if (a % PAGE > PAGE - 4) return this.storeCrossing(a, 4, v, 0);
    const offset = this.locate(a, ACCESS_WRITE);
    this.view.setInt32(offset, v, true);
  }

  store64(a: number, lo: number, hi: number): void {
    if (a % PAGE > PAGE - 8) return this.storeCrossing(a, 8, lo, hi);
    const offset = this.locate(a, ACCESS_WRITE);
    this.view.setInt32(offset, lo, true);
    this.view.setInt32(offset + 4, hi, true);
  }

  fetch(a: number): number {
    const offset = this.locate(a, ACCESS_EXECUTE);
    return this.view.getInt32(offset, true);
  }
}

/** The high word of a crossing load (module-level so that loads allocate nothing). */
const LOADED = new Int32Array(2);

/** One address space's memory as the kernel side copies to and from it. */
export class SpaceMemory implements UserMemory {
  // The last piece(): its real address, its offset in the chunk view, its length.
  private real = 0;
  private offset = 0;
  private pieceLength = 0;

  constructor(
    private readonly mmu: Mmu,
    readonly context: number,
    private readonly physical: PhysicalMemory,
  ) {}

  read(address: bigint, length: number): Uint8Array | UserFault {
    if (length === 0) return new Uint8Array(0);
    const first = this.piece(address, length, ACCESS_READ);
    if (!(first instanceof DataView)) return first;
    const offset = this.offset;
    if (this.pieceLength === length) return new Uint8Array(first.buffer, first.byteOffset + offset, length);
    const out = new Uint8Array(length);
    out.set(new Uint8Array(first.buffer, first.byteOffset + offset, this.pieceLength));
    for (let done = this.pieceLength; done < length;) {
      const view = this.piece(address + BigInt(done), length - done, ACCESS_READ);
      if (!(view instanceof DataView)) return view;
      out.set(new Uint8Array(view.buffer, view.byteOffset + this.offset, this.pieceLength), done);
      done += this.pieceLength;
    }
    return out;
  }

  write(address: bigint, data: Uint8Array): true | UserFault {
    const reals: number[] = [];
    for (let done = 0; done < data.length;) {
      const view = this.piece(address + BigInt(done), data.length - done, ACCESS_WRITE);
      if (!(view instanceof DataView)) return view;
      reals.push(this.real, this.pieceLength);
      done += this.pieceLength;
    }
    // Through PhysicalMemory.write, so that code decoded from these bytes is dropped.
    for (let i = 0, done = 0; i < reals.length; i += 2) {
      this.physical.write(reals[i], data.subarray(done, done + reals[i + 1]));
      done += reals[i + 1];
    }
    return true;
  }

  loadSegment(entry: SlbEntry): void {
    this.mmu.installSegment(this.context, entry);
  }

  /**
   * Translates the part of [address, address + remaining) inside the page of `address`: the chunk
   * view holding it (with real, offset and pieceLength set), or where the access stopped.
   */
  private piece(address: bigint, remaining: number, access: MmuAccess): DataView | UserFault {
    const name: UserAccess = access === ACCESS_WRITE ? "write" : "read";
    if (address >= ADDRESS_LIMIT_BIG) return { fault: true, address, access: name, cause: "not-mapped" };
    const ea = Number(address);
    const translator = this.mmu.translator(this.context);
    const real = translator.translate(ea, access);
    if (real === TRANSLATION_FAULT) {
      return { fault: true, address, access: name, cause: translator.fault?.cause ?? "not-mapped" };
    }
    let view: DataView;
    try {
      view = this.physical.chunkView(real);
    } catch (error) {
      if (!(error instanceof AstraError)) throw error;
      return { fault: true, address, access: name, cause: "bad-real-address" };
    }
    this.real = real;
    this.offset = real % CHUNK_SIZE;
    this.pieceLength = Math.min(PAGE - (ea % PAGE), remaining, ADDRESS_LIMIT - ea);
    return view;
  }
}
