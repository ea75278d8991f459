// A small machine for address-space tests: real PhysicalMemory, vmm's hashed page table in it, the
// machine's MMU walking it, a frame allocator that insists every frame is freed exactly once, an
// in-memory file store, and a CPU-like access loop (translate; on a fault ask vmm; retry).
import { expect } from "vitest";
import { ACCESS_EXECUTE, ACCESS_READ, ACCESS_WRITE, type AccessKind } from "../../lib/ppc/hpt.ts";
import { firmwareMemoryMap, MIB } from "../../services/machine/firmware.ts";
import { PhysicalMemory } from "../../services/machine/memory.ts";
import { Mmu, TRANSLATION_FAULT } from "../../services/machine/mmu.ts";
import {
  type AddressSpace,
  type FaultResolution,
  type FileStore,
  type FrameAllocator,
  MemoryManager,
} from "../../services/vmm/aspace.ts";
import { HashPageTable } from "../../services/vmm/hpt.ts";
import type { MappedFile } from "../../services/vmm/vma.ts";

export const P = 4096;
export const HTAB_ORIGIN = 2 * MIB;
const FRAMES_BASE = 8 * MIB;
const FRAMES_COUNT = 4096; // 16 MiB of frames

/** Hands out frames from a fixed range and fails loudly on a double free or a foreign frame. */
export class StrictFrames implements FrameAllocator {
  readonly live = new Set<number>();
  private readonly free: number[] = [];
  allocations = 0;
  frees = 0;

  constructor(private readonly memory: PhysicalMemory) {
    for (let i = FRAMES_COUNT - 1; i >= 0; i--) this.free.push(FRAMES_BASE + i * P);
  }

  allocFrame(): number {
    const frame = this.free.pop();
    if (frame === undefined) throw new Error("test frame pool exhausted");
    this.live.add(frame);
    this.allocations++;
    // A recycled frame keeps its old contents: vmm must not rely on zeros.
    this.memory.fill(frame, P, 0xa5);
    return frame;
  }

  freeFrame(address: number): void {
    if (!this.live.delete(address)) {
      throw new Error(`frame 0x${address.toString(16)} freed twice or never allocated`);
    }
    this.frees++;
    this.free.push(address);
  }
}

export class MemoryFiles implements FileStore {
  readonly contents = new Map<string, Uint8Array>();
  reads = 0;

  add(name: string, bytes: Uint8Array, writable = true): MappedFile {
    this.contents.set(name, bytes.slice());
    return {
      key: name,
      path: `/${name}`,
      deviceMajor: 8,
      deviceMinor: 1,
      inode: this.contents.size,
      readable: true,
      writable,
    };
  }

  read(file: MappedFile, offset: number, length: number): Uint8Array {
    this.reads++;
    const bytes = this.contents.get(file.key)!;
    return bytes.slice(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length));
  }

  write(file: MappedFile, offset: number, bytes: Uint8Array): void {
    const old = this.contents.get(file.key)!;
    const grown = new Uint8Array(Math.max(old.length, offset + bytes.length));
    grown.set(old);
    grown.set(bytes, offset);
    this.contents.set(file.key, grown);
  }
}

export function pattern(length: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => ((i * 7 + seed * 13) % 251) + 1);
}

export type Signal = FaultResolution & { kind: "signal" };

export class TestMachine {
  readonly memory = new PhysicalMemory(firmwareMemoryMap({ memoryBytes: 64 * MIB, numaNodes: 1 }));
  readonly frames = new StrictFrames(this.memory);
  readonly files = new MemoryFiles();
  readonly hpt = new HashPageTable({ origin: HTAB_ORIGIN, sizeField: 0 }, this.memory);
  readonly mmu = new Mmu(this.memory, { tlbEntries: 1024 });
  readonly vmm: MemoryManager;
  faults = 0;

  constructor() {
    this.mmu.setHashTable(HTAB_ORIGIN, 0);
    this.vmm = new MemoryManager({
      frames: this.frames,
      memory: this.memory,
      files: this.files,
      hpt: this.hpt,
      mmu: this.mmu,
    });
  }

  /** An access as the CPU makes it: the real address, or the signal vmm decided on. */
  async access(space: AddressSpace, ea: number, kind: AccessKind): Promise<number | Signal> {
    for (let attempt = 0; attempt < 4; attempt++) {
      const real = this.mmu.translate(space.context, ea, kind);
      if (real !== TRANSLATION_FAULT) return real;
      const fault = this.mmu.translator(space.context).fault!;
      this.faults++;
      const resolution = await space.handleFault(fault.address, fault.access);
      if (resolution.kind === "signal") return resolution;
      this.mmu.installSegment(space.context, resolution.segment);
    }
    throw new Error(`access at 0x${ea.toString(16)} still faults after vmm mapped it`);
  }

  async load(space: AddressSpace, ea: number): Promise<number | Signal> {
    const real = await this.access(space, ea, ACCESS_READ);
    return typeof real === "number" ? this.memory.read(real, 1)[0] : real;
  }

  async store(space: AddressSpace, ea: number, value: number): Promise<Signal | null> {
    const real = await this.access(space, ea, ACCESS_WRITE);
    if (typeof real !== "number") return real;
    this.memory.write(real, Uint8Array.of(value));
    return null;
  }

  async fetch(space: AddressSpace, ea: number): Promise<number | Signal> {
    return await this.access(space, ea, ACCESS_EXECUTE);
  }

  /** Every frame handed out has come back exactly once (StrictFrames throws on a second free). */
  expectAllFramesFree(): void {
    expect(this.frames.live.size).toBe(0);
    expect(this.frames.frees).toBe(this.frames.allocations);
    expect(this.vmm.frames.size).toBe(0);
    expect(this.hpt.size).toBe(0);
  }
}
