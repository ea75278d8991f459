import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { BuddyAllocator } from "../../services/pmm/buddy.ts";
import { FrameAllocator, TagTable } from "../../services/pmm/frames.ts";
import { SparsePhysicalMemory } from "../../services/pmm/heap.ts";
import { normalizeMemoryMap } from "../../services/pmm/memmap.ts";
import {
  POISON_END,
  POISON_FREE,
  RED_ZONE_BYTE,
  type Slab,
  SlabCache,
  type SlabCacheConfig,
  SlabDirectory,
} from "../../services/pmm/slab.ts";
import { expectAstraError, flat, flatMachine, P } from "./helpers.ts";

const FRAMES = 4096;

function world() {
  const frames = new FrameAllocator(normalizeMemoryMap(flatMachine(FRAMES)));
  const buddy = new BuddyAllocator(frames, { spareChunks: 0 });
  const memory = new SparsePhysicalMemory(flat(FRAMES));
  const directory = new SlabDirectory();
  const tags = new TagTable();
  const make = (config: Partial<SlabCacheConfig> & { objectSize: number }) =>
    new SlabCache(
      {
        name: `cache-${config.objectSize}`,
        alignment: 8,
        owner: "",
        debug: true,
        maxEmptySlabs: 1,
        ...config,
      },
      buddy,
      memory,
      directory,
      tags,
    );
  const locate = (address: number): { slab: Slab; index: number } => {
    const slab = directory.find(address)!;
    return { slab, index: slab.cache.position(slab, address).index };
  };
  const free = (address: number, force = false) => {
    const { slab, index } = locate(address);
    return slab.cache.free(slab, index, force);
  };
  return { frames, buddy, memory, directory, tags, make, locate, free };
}

const bytes = (n: number, b: number) => new Array(n).fill(b);

describe("SlabCache layout", () => {
  it("pads objects with red zones and sizes slabs for at least eight objects", () => {
    const { make } = world();
    const small = make({ objectSize: 8 });
    expect([small.objectOffset, small.slotSize, small.slabOrder, small.objectsPerSlab]).toEqual([
      8,
      24,
      0,
      170,
    ]);
    const plain = make({ objectSize: 8, debug: false, name: "plain" });
    expect([plain.objectOffset, plain.slotSize, plain.objectsPerSlab]).toEqual([0, 8, 512]);
    const aligned = make({ objectSize: 100, alignment: 64 });
    expect([aligned.objectOffset, aligned.slotSize, aligned.objectsPerSlab]).toEqual([64, 192, 21]);
    const medium = make({ objectSize: 3000 });
    expect([medium.slotSize, medium.slabOrder, medium.objectsPerSlab]).toEqual([3016, 3, 10]);
    const huge = make({ objectSize: 5 * 1024 * 1024 });
    expect([huge.slabOrder, huge.objectsPerSlab]).toEqual([11, 1]);
    expectAstraError(
      () => make({ objectSize: 8 * 1024 * 1024 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "object_size",
    );
  });

  it("lays out red zones around poisoned free objects, and poisons on free", () => {
    const { make, memory, free } = world();
    const cache = make({ objectSize: 16 });
    const a = cache.alloc(10, "o", "s", 1, 0);
    const slot = memory.read(a - 8, cache.slotSize);
    expect([...slot.subarray(0, 8)]).toEqual(bytes(8, RED_ZONE_BYTE));
    // The caller's 10 bytes still hold poison (as in SLUB); from byte 10 on it is red zone.
    expect([...slot.subarray(8, 18)]).toEqual(bytes(10, POISON_FREE));
    expect([...slot.subarray(18, 32)]).toEqual(bytes(14, RED_ZONE_BYTE));
    const neighbour = memory.read(a - 8 + cache.slotSize, cache.slotSize);
    expect([...neighbour.subarray(8, 24)]).toEqual([...bytes(15, POISON_FREE), POISON_END]);
    memory.fill(a, 10, 0x11);
    free(a);
    expect([...memory.read(a, 16)]).toEqual([...bytes(15, POISON_FREE), POISON_END]);
    expect([...memory.read(a + 16, 8)]).toEqual(bytes(8, RED_ZONE_BYTE));
  });

  it("leaves memory alone without debugging", () => {
    const { make, memory, free } = world();
    const cache = make({ objectSize: 64, debug: false });
    const a = cache.alloc(64, "o", "s", 1, 0);
    free(a);
    expect(memory.residentBytes).toBe(0);
  });
});

describe("SlabCache lists", () => {
  it("moves slabs between empty, partial and full, and keeps one empty slab", () => {
    const { make, buddy, free } = world();
    const cache = make({ objectSize: 256 });
    const n = cache.objectsPerSlab;
    const objects = Array.from({ length: n + 1 }, (_, i) => cache.alloc(256, "o", "s", i, 0));
    expect(cache.slabCounts).toEqual({ empty: 0, partial: 1, full: 1 });
    free(objects[0]);
    expect(cache.slabCounts).toEqual({ empty: 0, partial: 2, full: 0 });
    expect(cache.alloc(256, "o", "s", 0, 0)).toBe(objects[0]); // lowest free slot first
    for (const a of objects) free(a);
    expect(cache.slabCounts).toEqual({ empty: 1, partial: 0, full: 0 });
    expect(buddy.statistics().allocatedPages).toBe(cache.slabPages);
    expect(cache.releaseEmptySlabs()).toBe(1);
    expect(buddy.totalPages).toBe(0);
    expect(cache.statistics()).toMatchObject({ allocs: n + 2, frees: n + 2, objectsInUse: 0 });
    expect(cache.checkConsistency()).toEqual([]);
  });
});

describe("SlabCache reuse", () => {
  it("reuses the lowest free object, also behind the search hint", () => {
    const { make, free } = world();
    const cache = make({ objectSize: 8 });
    const objects = Array.from({ length: 40 }, (_, i) => cache.alloc(8, "o", "s", i, 0));
    free(objects[3]);
    free(objects[35]);
    expect(cache.alloc(8, "o", "s", 0, 0)).toBe(objects[3]);
    expect(cache.alloc(8, "o", "s", 0, 0)).toBe(objects[35]);
    expect(cache.alloc(8, "o", "s", 0, 0)).toBe(objects[39] + cache.slotSize);
    expect(cache.checkConsistency()).toEqual([]);
  });
});

describe("SlabCache debugging", () => {
  it("refuses a double free, naming the owner and site", () => {
    const { make, free } = world();
    const cache = make({ objectSize: 32 });
    const a = cache.alloc(20, "vmm:pid 3", "pte.ts:40", 1, 0);
    cache.alloc(20, "other", "x", 2, 0);
    free(a);
    const before = cache.statistics();
    const err = expectAstraError(() => free(a), Code.FAILED_PRECONDITION, Errno.EINVAL, "address");
    expect(err.message).toContain("double free");
    expect(err.message).toContain("vmm:pid 3");
    expect(err.detail.facts).toMatchObject({ owner: "vmm:pid 3", site: "pte.ts:40", size: "20" });
    expect(cache.statistics()).toEqual(before);
    expect(cache.errorsDetected).toBe(1);
  });

  it("catches an overflow into the right red zone and keeps the object live", () => {
    const { make, memory, free } = world();
    const cache = make({ objectSize: 64 });
    const a = cache.alloc(50, "storage:ahci", "cmd.ts:7", 1, 0);
    memory.fill(a, 50, 0); // legal use
    memory.fill(a + 50, 1, 0); // one byte too far
    const err = expectAstraError(() => free(a), Code.DATA_LOSS, Errno.EUCLEAN, "address");
    expect(err.message).toMatch(
      /red zone corrupted.*storage:ahci at cmd\.ts:7.*overflow: byte 50 of a 50-byte object/,
    );
    expect(err.detail.facts.corrupted_at).toBe(`0x${(a + 50).toString(16)}`);
    expect(cache.objectsInUse).toBe(1);
    memory.fill(a + 50, 1, RED_ZONE_BYTE);
    free(a);
    expect(cache.objectsInUse).toBe(0);
  });

  it("catches an underflow into the left red zone", () => {
    const { make, memory, free } = world();
    const cache = make({ objectSize: 64 });
    const a = cache.alloc(64, "sched", "task.ts:1", 1, 0);
    memory.fill(a - 3, 1, 0x42);
    const err = expectAstraError(() => free(a), Code.DATA_LOSS, Errno.EUCLEAN, "address");
    expect(err.message).toContain("underflow: byte -3 before the object");
  });

  it("catches a write after free when the object is handed out again", () => {
    const { make, memory, free } = world();
    const cache = make({ objectSize: 128 });
    const a = cache.alloc(100, "vfs", "file.ts:12", 1, 0);
    free(a);
    memory.fill(a + 77, 1, 0);
    const err = expectAstraError(
      () => cache.alloc(8, "innocent", "x", 2, 0),
      Code.DATA_LOSS,
      Errno.EUCLEAN,
      "address",
    );
    expect(err.message).toMatch(/write after free.*vfs at file\.ts:12.*byte 77 of the freed object/);
    expect(cache.objectsInUse).toBe(0);
    // The poison was restored: the retry gets the same object, cleanly.
    expect(cache.alloc(8, "innocent", "x", 3, 0)).toBe(a);
    expect(cache.errorsDetected).toBe(1);
  });

  it("frees a corrupted object when forced, reporting and repairing it", () => {
    const { make, memory, free } = world();
    const cache = make({ objectSize: 16 });
    const a = cache.alloc(16, "gone", "x", 1, 0);
    memory.fill(a + 16, 4, 0);
    expect(free(a, true)).toContain("red zone corrupted");
    expect(cache.objectsInUse).toBe(0);
    expect(memory.findMismatch(a + 16, 8, RED_ZONE_BYTE)).toBe(-1);
    expect(cache.alloc(16, "next", "y", 2, 0)).toBe(a);
  });

  it("places addresses in slots, red zones and the slab's tail", () => {
    const { make, directory } = world();
    const cache = make({ objectSize: 40 });
    const a = cache.alloc(40, "o", "s", 1, 0);
    const slab = directory.find(a)!;
    expect(cache.position(slab, a)).toMatchObject({ index: 0, offset: 0 });
    expect(cache.position(slab, a - 8)).toMatchObject({ index: 0, offset: -8 });
    expect(cache.position(slab, a + 45)).toMatchObject({ index: 0, offset: 45 });
    expect(cache.position(slab, a + cache.slotSize)).toMatchObject({ index: 1, offset: 0 });
    expect(cache.position(slab, slab.base + P - 1).index).toBe(-1);
  });
});

// --- model-based ------------------------------------------------------------------------------

interface Live {
  cache: number;
  requested: number;
}

interface Model {
  live: Map<number, Live>;
  /** Freed objects: address and cache. */
  freed: [number, number][];
}

interface Real {
  caches: SlabCache[];
  buddy: BuddyAllocator;
  memory: SparsePhysicalMemory;
  directory: SlabDirectory;
}

type Cmd = fc.Command<Model, Real>;

function checkInvariants(model: Model, real: Real): void {
  expect(real.buddy.checkConsistency()).toEqual([]);
  real.caches.forEach((cache, i) => {
    expect(cache.checkConsistency()).toEqual([]);
    expect(cache.objectsInUse).toBe([...model.live.values()].filter((l) => l.cache === i).length);
  });
  let slabPages = 0;
  for (const cache of real.caches) {
    const c = cache.slabCounts;
    slabPages += (c.empty + c.partial + c.full) * cache.slabPages;
  }
  expect(real.buddy.statistics().allocatedPages).toBe(slabPages);
  for (const [address, live] of model.live) {
    const cache = real.caches[live.cache];
    const slab = real.directory.find(address)!;
    expect(slab.cache).toBe(cache);
    const { index, offset } = cache.position(slab, address);
    expect(offset).toBe(0);
    expect(slab.isFree(index)).toBe(false);
    expect(slab.requested[index]).toBe(live.requested);
  }
}

class AllocCmd implements Cmd {
  constructor(readonly cache: number, readonly fraction: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const cache = real.caches[this.cache];
    const requested = Math.max(1, Math.ceil(cache.objectSize * this.fraction));
    let address: number;
    try {
      address = cache.alloc(requested, `owner${this.cache}`, "model", 0, 0);
    } catch (err) {
      expect((err as AstraError).code).toBe(Code.RESOURCE_EXHAUSTED);
      return;
    }
    expect(address % cache.alignment).toBe(0);
    const start = address - cache.objectOffset;
    for (const [other, live] of model.live) {
      const o = real.caches[live.cache];
      const otherStart = other - o.objectOffset;
      expect(start + cache.slotSize <= otherStart || otherStart + o.slotSize <= start).toBe(true);
    }
    model.live.set(address, { cache: this.cache, requested });
    model.freed = model.freed.filter(([a]) => a !== address);
    checkInvariants(model, real);
  }
  toString = () => `alloc(cache ${this.cache}, ${this.fraction.toFixed(2)})`;
}

class FreeCmd implements Cmd {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => model.live.size > 0;
  run(model: Model, real: Real): void {
    const address = [...model.live.keys()][this.pick % model.live.size];
    const slab = real.directory.find(address)!;
    const cache = slab.cache;
    if (cache.debug) {
      // Scribble over the whole requested area: legal use never trips the checks.
      real.memory.fill(address, model.live.get(address)!.requested, this.pick & 0xff);
    }
    cache.free(slab, cache.position(slab, address).index);
    model.freed.push([address, model.live.get(address)!.cache]);
    model.live.delete(address);
    checkInvariants(model, real);
  }
  toString = () => `free(#${this.pick})`;
}

class CorruptCmd implements Cmd {
  constructor(readonly pick: number, readonly beyond: number, readonly left: boolean) {}
  check = (model: Readonly<Model>) => model.live.size > 0;
  run(model: Model, real: Real): void {
    const address = [...model.live.keys()][this.pick % model.live.size];
    const slab = real.directory.find(address)!;
    const cache = slab.cache;
    if (!cache.debug) return;
    const { requested } = model.live.get(address)!;
    const zone = this.left ? cache.objectOffset : cache.slotSize - cache.objectOffset - requested;
    const at = this.left ? address - 1 - (this.beyond % zone) : address + requested + (this.beyond % zone);
    real.memory.fill(at, 1, 0x00);
    const index = cache.position(slab, address).index;
    expect(() => cache.free(slab, index)).toThrow(/red zone corrupted/);
    checkInvariants(model, real); // still live, nothing changed
    real.memory.fill(at, 1, RED_ZONE_BYTE);
  }
  toString = () => `corrupt(#${this.pick}, ${this.left ? "left" : "right"} +${this.beyond})`;
}

class DoubleFreeCmd implements Cmd {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => model.freed.length > 0;
  run(model: Model, real: Real): void {
    const [address, cache] = model.freed[this.pick % model.freed.length];
    const slab = real.directory.find(address);
    // Its slab went back to the buddy allocator, maybe to be reused by another cache.
    if (!slab || slab.cache !== real.caches[cache]) return;
    const index = slab.cache.position(slab, address).index;
    expect(slab.isFree(index)).toBe(true);
    expectAstraError(() => slab.cache.free(slab, index), Code.FAILED_PRECONDITION, Errno.EINVAL, "address");
    checkInvariants(model, real);
  }
  toString = () => `doubleFree(#${this.pick})`;
}

class ReleaseEmptyCmd implements Cmd {
  constructor(readonly cache: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const cache = real.caches[this.cache];
    const empty = cache.slabCounts.empty;
    expect(cache.releaseEmptySlabs()).toBe(empty);
    checkInvariants(model, real);
  }
  toString = () => `releaseEmpty(${this.cache})`;
}

describe("SlabCache against a model", () => {
  const configs: Omit<SlabCacheConfig, "owner">[] = [
    { name: "kmalloc-8", objectSize: 8, alignment: 8, debug: true, maxEmptySlabs: 1 },
    { name: "inode", objectSize: 200, alignment: 64, debug: true, maxEmptySlabs: 2 },
    { name: "plain-48", objectSize: 48, alignment: 16, debug: false, maxEmptySlabs: 0 },
    { name: "dma-1500", objectSize: 1500, alignment: 512, debug: true, maxEmptySlabs: 1 },
  ];
  const cacheArb = fc.integer({ min: 0, max: configs.length - 1 });
  const commands = [
    fc.tuple(cacheArb, fc.double({ min: 0, max: 1, noNaN: true })).map(([c, f]) => new AllocCmd(c, f)),
    fc.tuple(cacheArb, fc.double({ min: 0, max: 1, noNaN: true })).map(([c, f]) => new AllocCmd(c, f)),
    fc.nat().map((n) => new FreeCmd(n)),
    fc.tuple(fc.nat(), fc.nat(), fc.boolean()).map(([n, b, l]) => new CorruptCmd(n, b, l)),
    fc.nat().map((n) => new DoubleFreeCmd(n)),
    cacheArb.map((c) => new ReleaseEmptyCmd(c)),
  ];

  it("never overlaps objects, keeps lists and bitmaps consistent, and detects misuse", () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 120, size: "max" }), (cmds) => {
        const frames = new FrameAllocator(normalizeMemoryMap(flatMachine(FRAMES)));
        const buddy = new BuddyAllocator(frames, { spareChunks: 0 });
        const memory = new SparsePhysicalMemory(flat(FRAMES));
        const directory = new SlabDirectory();
        const tags = new TagTable();
        const caches = configs.map((c) => new SlabCache({ ...c, owner: "" }, buddy, memory, directory, tags));
        const model: Model = { live: new Map(), freed: [] };
        fc.modelRun(() => ({ model, real: { caches, buddy, memory, directory } }), cmds);
        for (const address of [...model.live.keys()]) {
          const slab = directory.find(address)!;
          slab.cache.free(slab, slab.cache.position(slab, address).index);
        }
        for (const cache of caches) cache.releaseEmptySlabs();
        expect(buddy.totalPages).toBe(0);
        expect(frames.freeCount).toBe(FRAMES);
        expect(tags.size).toBe(0);
      }),
      { numRuns: 80 },
    );
  });
});
