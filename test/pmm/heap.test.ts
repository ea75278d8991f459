import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { HEAP_CHUNK_OWNER } from "../../services/pmm/buddy.ts";
import { FrameAllocator } from "../../services/pmm/frames.ts";
import {
  AllocationKind,
  type HeapOptions,
  KernelHeap,
  MAX_BLOCK_SIZE,
  PointerState,
  SparsePhysicalMemory,
} from "../../services/pmm/heap.ts";
import { normalizeMemoryMap } from "../../services/pmm/memmap.ts";
import { POISON_FREE, RED_ZONE_BYTE } from "../../services/pmm/slab.ts";
import { expectAstraError, flat, flatMachine, P } from "./helpers.ts";

function setup(frames = 8192, options: HeapOptions = {}) {
  const allocator = new FrameAllocator(normalizeMemoryMap(flatMachine(frames)));
  const memory = new SparsePhysicalMemory(flat(frames));
  let clock = 1_000;
  const heap = new KernelHeap(allocator, memory, { now: () => clock++, ...options });
  return { frames: allocator, memory, heap };
}

const hex = (n: number) => `0x${n.toString(16)}`;

describe("kmalloc and kfree", () => {
  it("serves small sizes from the matching kmalloc cache and larger ones from buddy blocks", () => {
    const { heap } = setup();
    const cases: [number, string, number][] = [
      [1, "kmalloc-8", 8],
      [8, "kmalloc-8", 8],
      [9, "kmalloc-16", 16],
      [33, "kmalloc-64", 64],
      [200, "kmalloc-256", 256],
      [256, "kmalloc-256", 256],
      [257, "", 4096],
      [4096, "", 4096],
      [4097, "", 8192],
      [100_000, "", 128 * 1024],
      [MAX_BLOCK_SIZE, "", MAX_BLOCK_SIZE],
    ];
    for (const [size, cache, usable] of cases) {
      const address = heap.kmalloc(size, "test", `size ${size}`);
      expect(address % 8).toBe(0);
      const info = heap.validatePointer(address);
      expect(info.state).toBe(PointerState.LIVE);
      expect(info.allocation).toMatchObject({ size, cache, usableSize: usable });
      expect(info.allocation!.kind).toBe(cache ? AllocationKind.SLAB : AllocationKind.BUDDY);
      expect(heap.kfree(address)).toBe(size);
    }
    expect(heap.checkConsistency()).toEqual([]);
  });

  it("refuses impossible sizes and anonymous callers", () => {
    const { heap } = setup();
    for (const size of [0, -1, 1.5, MAX_BLOCK_SIZE + 1]) {
      expectAstraError(() => heap.kmalloc(size, "test"), Code.INVALID_ARGUMENT, Errno.EINVAL, "size");
    }
    expectAstraError(() => heap.kmalloc(8, ""), Code.INVALID_ARGUMENT, Errno.EINVAL, "owner");
  });

  it("keeps figures that add up", () => {
    const { heap } = setup();
    const a = heap.kmalloc(10, "x");
    const b = heap.kmalloc(5000, "x");
    let stats = heap.statistics();
    expect(stats).toMatchObject({ liveAllocations: 2, requestedBytes: 5010, allocs: 2, frees: 0 });
    expect(stats.figures.allocatedBytes).toBe(16 + 8192);
    heap.kfree(b);
    heap.kfree(a);
    stats = heap.statistics();
    expect(stats).toMatchObject({
      liveAllocations: 0,
      requestedBytes: 0,
      peakAllocatedBytes: 16 + 8192,
      frees: 2,
    });
    expect(stats.figures.allocatedBytes).toBe(0);
    expect(stats.caches.find((c) => c.name === "kmalloc-16")).toMatchObject({ allocs: 1, frees: 1 });
  });

  it("zeroes on request, and kcalloc always", () => {
    const { heap, memory } = setup();
    const dirty = heap.kmalloc(64, "x");
    memory.fill(dirty, 64, 0xee);
    heap.kfree(dirty);
    const zeroed = heap.kmalloc(64, "x", "", true);
    expect(zeroed).toBe(dirty);
    expect(memory.findMismatch(zeroed, 64, 0)).toBe(-1);
    heap.kfree(zeroed);
    const unzeroed = heap.kmalloc(64, "x");
    expect(memory.findMismatch(unzeroed, 63, POISON_FREE)).toBe(-1);
    const c = heap.kcalloc(100, 50, "x");
    expect(memory.findMismatch(c, 5000, 0)).toBe(-1);
    expect(heap.validatePointer(c).allocation!.size).toBe(5000);
    expectAstraError(
      () => heap.kcalloc(2 ** 20, 2 ** 20, "x"),
      Code.INVALID_ARGUMENT,
      Errno.EOVERFLOW,
      "count",
    );
    expectAstraError(() => heap.kcalloc(0, 8, "x"), Code.INVALID_ARGUMENT, Errno.EINVAL, "count");
  });
});

describe("kmalloc_aligned", () => {
  it("aligns to every power of two up to the largest block", () => {
    const { heap } = setup(16384);
    for (const alignment of [1, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 65536, MAX_BLOCK_SIZE]) {
      for (const size of [1, 100, 256, 1000]) {
        const address = heap.kmallocAligned(size, alignment, "dma", `a${alignment}`);
        expect(address % alignment, `size ${size} alignment ${alignment}`).toBe(0);
        heap.kfree(address);
      }
    }
    // AHCI-style structures: a 1 KiB-aligned command list, a 256-byte-aligned FIS area.
    const list = heap.kmallocAligned(1024, 1024, "storage:ahci");
    const fis = heap.kmallocAligned(256, 256, "storage:ahci");
    expect([list % 1024, fis % 256]).toEqual([0, 0]);
    expect(heap.validatePointer(fis).allocation!.cache).toBe("kmalloc-256-align256");
    for (const bad of [3, 0, 2 * MAX_BLOCK_SIZE]) {
      expectAstraError(
        () => heap.kmallocAligned(8, bad, "x"),
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
        "alignment",
      );
    }
    expect(heap.checkConsistency()).toEqual([]);
  });
});

describe("krealloc", () => {
  it("resizes in place when the object or block can hold the new size", () => {
    const { heap, memory } = setup();
    const a = heap.kmalloc(20, "x");
    memory.write(a, new Uint8Array(20).fill(7));
    expect(heap.krealloc(a, 30, "x", "grow")).toEqual({ address: a, size: 30, moved: false });
    expect(memory.findMismatch(a, 20, 7)).toBe(-1);
    // The red zone follows the new size: the free checks it there.
    expect(memory.findMismatch(a + 30, 2, RED_ZONE_BYTE)).toBe(-1);
    const b = heap.kmalloc(5000, "x");
    expect(heap.krealloc(b, 8000, "x")).toEqual({ address: b, size: 8000, moved: false });
    expect(heap.krealloc(b, 4500, "x")).toEqual({ address: b, size: 4500, moved: false });
    expect(heap.validatePointer(b).allocation!.size).toBe(4500);
    expect(heap.checkConsistency()).toEqual([]);
  });

  it("moves contents when it must, and frees the old allocation", () => {
    const { heap, memory } = setup();
    const a = heap.kmalloc(20, "x");
    const pattern = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
    memory.write(a, pattern);
    const grown = heap.krealloc(a, 3000, "y", "grow");
    expect(grown.moved).toBe(true);
    expect([...memory.read(grown.address, 20)]).toEqual([...pattern]);
    expect(heap.validatePointer(a).state).toBe(PointerState.FREED);
    expect(heap.validatePointer(grown.address).allocation).toMatchObject({
      owner: "y",
      site: "grow",
      size: 3000,
    });
    const shrunk = heap.krealloc(grown.address, 10, "y");
    expect(shrunk.moved).toBe(true);
    expect([...memory.read(shrunk.address, 10)]).toEqual([...pattern.subarray(0, 10)]);
    const aligned = heap.kmallocAligned(100, 64, "x");
    const moved = heap.krealloc(aligned, 200, "x");
    expect(moved.address % 64).toBe(0);
    expect(heap.checkConsistency()).toEqual([]);
  });

  it("treats address 0 as kmalloc and size 0 as kfree, and refuses stale pointers", () => {
    const { heap } = setup();
    const fresh = heap.krealloc(0, 40, "x");
    expect(heap.validatePointer(fresh.address).state).toBe(PointerState.LIVE);
    expect(heap.krealloc(fresh.address, 0, "x")).toEqual({ address: 0, size: 0, moved: false });
    expect(heap.krealloc(0, 0, "x")).toEqual({ address: 0, size: 0, moved: false });
    expectAstraError(
      () => heap.krealloc(fresh.address, 10, "x"),
      Code.FAILED_PRECONDITION,
      Errno.EINVAL,
      "address",
    );
  });
});

describe("debugging: misuse is reported with the allocation's owner and site", () => {
  it("double free of a slab object", () => {
    const { heap } = setup();
    const a = heap.kmalloc(24, "vmm:pid 9", "pte.ts:3");
    heap.kmalloc(24, "keep", "slab busy");
    heap.kfree(a);
    const err = expectAstraError(() => heap.kfree(a), Code.FAILED_PRECONDITION, Errno.EINVAL, "address");
    expect(err.message).toMatch(/double free.*vmm:pid 9 at pte\.ts:3/);
  });

  it("double free of a buddy block", () => {
    const { heap } = setup();
    const a = heap.kmalloc(10_000, "storage:nvme", "queue.ts:88");
    heap.kfree(a);
    const err = expectAstraError(() => heap.kfree(a), Code.FAILED_PRECONDITION, Errno.EINVAL, "address");
    expect(err.message).toMatch(/double free.*storage:nvme at queue\.ts:88/);
    expect(err.detail.facts).toMatchObject({ owner: "storage:nvme", site: "queue.ts:88", size: "10000" });
  });

  it("free of a pointer that was never allocated, or inside an allocation", () => {
    const { heap } = setup();
    const a = heap.kmalloc(64, "sched", "task.ts:5");
    const b = heap.kmalloc(9000, "sched", "stack.ts:1");
    expect(
      expectAstraError(() => heap.kfree(5 * 1024 * 1024 * 8), Code.INVALID_ARGUMENT, Errno.EINVAL, "address")
        .message,
    )
      .toContain("never allocated");
    expect(
      expectAstraError(() => heap.kfree(b + 16 * P), Code.INVALID_ARGUMENT, Errno.EINVAL, "address").message,
    )
      .toContain("free heap memory");
    expect(expectAstraError(() => heap.kfree(a + 8), Code.INVALID_ARGUMENT, Errno.EINVAL, "address").message)
      .toMatch(/8 bytes into the allocation .* sched at task\.ts:5/);
    expect(expectAstraError(() => heap.kfree(b + P), Code.INVALID_ARGUMENT, Errno.EINVAL, "address").message)
      .toMatch(/sched at stack\.ts:1/);
    expect(heap.statistics().errorsDetected).toBe(4);
    expect(heap.checkConsistency()).toEqual([]);
  });

  it("a corrupted red zone refuses the free and keeps the allocation listed", () => {
    const { heap, memory } = setup();
    const small = heap.kmalloc(30, "storage:ahci", "fis.ts:2");
    memory.fill(small + 30, 1, 0);
    expect(expectAstraError(() => heap.kfree(small), Code.DATA_LOSS, Errno.EUCLEAN, "address").message)
      .toMatch(/storage:ahci at fis\.ts:2.*overflow/);
    const big = heap.kmalloc(5000, "storage:nvme", "prp.ts:9");
    memory.fill(big + 5003, 1, 0);
    const err = expectAstraError(() => heap.kfree(big), Code.DATA_LOSS, Errno.EUCLEAN, "address");
    expect(err.message).toMatch(/storage:nvme at prp\.ts:9.*byte 5003 of a 5000-byte allocation/);
    expect(heap.checkLeaks({ owner: "storage:nvme" }).map((l) => l.address)).toEqual([big]);
    memory.fill(big + 5003, 1, RED_ZONE_BYTE);
    expect(heap.kfree(big)).toBe(5000);
  });

  it("a write after free is caught when the object is handed out again", () => {
    const { heap, memory } = setup();
    const a = heap.kmalloc(48, "vfs", "dentry.ts:4");
    heap.kfree(a);
    memory.fill(a + 10, 1, 0x55);
    const err = expectAstraError(() => heap.kmalloc(48, "other"), Code.DATA_LOSS, Errno.EUCLEAN, "address");
    expect(err.message).toMatch(/write after free.*vfs at dentry\.ts:4/);
    expect(heap.statistics().failedAllocs).toBe(1);
    expect(heap.kmalloc(48, "other")).toBe(a);
  });
});

describe("pointer validation", () => {
  it("classifies every kind of address", () => {
    const { heap } = setup();
    const a = heap.kmalloc(40, "x", "s");
    const b = heap.kmalloc(5000, "x", "s");
    const freed = heap.kmalloc(40, "x");
    heap.kfree(freed);
    const states = [
      heap.validatePointer(a),
      heap.validatePointer(a + 39),
      heap.validatePointer(a + 40),
      heap.validatePointer(a - 1),
      heap.validatePointer(b + 4999),
      heap.validatePointer(b + 5000),
      heap.validatePointer(freed),
      heap.validatePointer(b + 2 * P),
      heap.validatePointer(100 * 1024 * 1024),
      heap.validatePointer(-8),
    ].map((p) => [p.state, p.offset]);
    expect(states).toEqual([
      [PointerState.LIVE, 0],
      [PointerState.INTERIOR, 39],
      [PointerState.RED_ZONE, 40],
      [PointerState.RED_ZONE, -1],
      [PointerState.INTERIOR, 4999],
      [PointerState.RED_ZONE, 5000],
      [PointerState.FREED, 0],
      [PointerState.FREED, 0],
      [PointerState.NOT_HEAP, 0],
      [PointerState.NOT_HEAP, 0],
    ]);
    expect(heap.validatePointer(a + 3).allocation).toMatchObject({
      address: a,
      owner: "x",
      site: "s",
      size: 40,
    });
  });
});

describe("leak checks", () => {
  it("lists what an owner holds and what was allocated since a mark, oldest first", () => {
    const { heap } = setup();
    const a1 = heap.kmalloc(16, "a", "one");
    const b1 = heap.kmalloc(6000, "b", "one");
    const { mark, time } = heap.mark();
    const a2 = heap.kmalloc(100, "a", "two");
    const b2 = heap.kmalloc(32, "b", "two");
    const a3 = heap.kmalloc(9000, "a", "three");
    heap.kfree(a2);
    expect(heap.checkLeaks({ owner: "a" }).map((l) => [l.address, l.site])).toEqual([[a1, "one"], [
      a3,
      "three",
    ]]);
    expect(heap.checkLeaks({ sinceMark: mark }).map((l) => l.address)).toEqual([b2, a3]);
    expect(heap.checkLeaks({ owner: "b", sinceMark: mark }).map((l) => l.address)).toEqual([b2]);
    expect(heap.checkLeaks().map((l) => l.address)).toEqual([a1, b1, b2, a3]);
    expect(heap.checkLeaks({ owner: "nobody" })).toEqual([]);
    const leak = heap.checkLeaks({ owner: "b" })[0];
    expect(leak.time).toBeLessThan(time);
    expect(leak).toMatchObject({ owner: "b", size: 6000, usableSize: 8192, kind: AllocationKind.BUDDY });
  });
});

describe("exhaustion and reclaim", () => {
  it("answers RESOURCE_EXHAUSTED when frames run out, and recovers fully", () => {
    const { heap, frames } = setup(64);
    expectAstraError(() => heap.kmalloc(MAX_BLOCK_SIZE, "x"), Code.RESOURCE_EXHAUSTED, Errno.ENOMEM);
    const held: number[] = [];
    let failure: AstraError | undefined;
    while (!failure) {
      try {
        held.push(heap.kmalloc(4096, "x"));
      } catch (err) {
        failure = err as AstraError;
      }
    }
    expect(failure.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(failure.detail.facts["node0.free_frames"]).toBe("0");
    expect(held.length).toBe(64);
    expect(heap.statistics().failedAllocs).toBe(2);
    for (const a of held) heap.kfree(a);
    heap.defragment();
    expect(frames.freeCount).toBe(64);
  });

  it("gives empty slabs back to retry an allocation that ran out", () => {
    const { heap } = setup(16);
    heap.kfree(heap.kmalloc(8, "x")); // leaves one empty kmalloc-8 slab
    for (let i = 0; i < 15; i++) heap.kmalloc(4096, "x");
    expect(heap.kmalloc(4096, "x") % P).toBe(0);
    expect(heap.statistics().caches.find((c) => c.name === "kmalloc-8")!.slabsEmpty).toBe(0);
    expectAstraError(() => heap.kmalloc(4096, "x"), Code.RESOURCE_EXHAUSTED, Errno.ENOMEM);
  });
});

describe("defragment", () => {
  it("returns empty slabs and free chunks, reporting before and after", () => {
    const { heap, frames } = setup(8192, { maxEmptySlabs: 8 });
    const objects = Array.from({ length: 2000 }, () => heap.kmalloc(64, "x"));
    const keep = heap.kmalloc(100_000, "x");
    for (const a of objects) heap.kfree(a);
    const result = heap.defragment();
    expect(result.before.emptySlabs).toBeGreaterThan(0);
    expect(result.slabsReleased).toBe(result.before.emptySlabs);
    expect(result.after).toMatchObject({ emptySlabs: 0, slabs: 0, allocatedBytes: 128 * 1024 });
    expect(result.after.buddyFreeBytes).toBeGreaterThan(
      result.before.buddyFreeBytes - result.framesReturned * P,
    );
    heap.kfree(keep);
    const second = heap.defragment();
    expect(second.framesReturned).toBe(2048);
    expect(second.after.heapBytes).toBe(0);
    expect(frames.listRuns({ owner: HEAP_CHUNK_OWNER })).toEqual([]);
  });
});

describe("named caches", () => {
  it("create, allocate, free and destroy", () => {
    const { heap } = setup();
    const created = heap.createCache("inode", 200, 64, "vfs");
    expect(created).toMatchObject({ name: "inode", owner: "vfs", objectSize: 200, alignment: 64 });
    const objects = Array.from({ length: 30 }, () => heap.cacheAlloc("inode", "vfs", "inode.ts:1"));
    expect(objects.every((a) => a % 64 === 0)).toBe(true);
    expect(heap.validatePointer(objects[0]).allocation).toMatchObject({ cache: "inode", size: 200 });
    heap.cacheFree("inode", objects.pop()!);
    expect(heap.kfree(objects.pop()!)).toBe(200);
    expectAstraError(() => heap.destroyCache("inode"), Code.FAILED_PRECONDITION, Errno.EBUSY, "name");
    for (const a of objects) heap.cacheFree("inode", a);
    expect(heap.destroyCache("inode")).toBeGreaterThan(0);
    expectAstraError(() => heap.cacheAlloc("inode", "vfs"), Code.NOT_FOUND, Errno.ENOENT, "name");
    expect(heap.checkConsistency()).toEqual([]);
  });

  it("refuse bad names, duplicates, foreign frees and destroying the heap's own caches", () => {
    const { heap } = setup();
    heap.createCache("bio", 96, 0, "storage");
    expectAstraError(
      () => heap.createCache("bio", 96, 0, "storage"),
      Code.ALREADY_EXISTS,
      Errno.EEXIST,
      "name",
    );
    expectAstraError(
      () => heap.createCache("kmalloc-96", 96, 0, "x"),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "name",
    );
    expectAstraError(() => heap.createCache("", 96, 0, "x"), Code.INVALID_ARGUMENT, Errno.EINVAL, "name");
    expectAstraError(
      () => heap.createCache("odd", 96, 24, "x"),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "alignment",
    );
    expectAstraError(
      () => heap.createCache("none", 0, 8, "x"),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "object_size",
    );
    const small = heap.kmalloc(64, "x");
    const err = expectAstraError(
      () => heap.cacheFree("bio", small),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "address",
    );
    expect(err.message).toContain("kmalloc-64");
    expectAstraError(() => heap.destroyCache("kmalloc-64"), Code.PERMISSION_DENIED, Errno.EPERM, "name");
    expectAstraError(() => heap.destroyCache("nope"), Code.NOT_FOUND, Errno.ENOENT, "name");
  });
});

describe("releaseOwner", () => {
  it("frees everything an owner holds, destroys its empty caches and reports corruption", () => {
    const { heap, memory } = setup();
    heap.createCache("proc-files", 128, 8, "sched:pid 42");
    const mine = [
      heap.kmalloc(16, "sched:pid 42"),
      heap.kmalloc(20_000, "sched:pid 42"),
      heap.cacheAlloc("proc-files", "sched:pid 42"),
      heap.kmallocAligned(64, 64, "sched:pid 42"),
    ];
    const theirs = heap.kmalloc(16, "vmm");
    memory.fill(mine[0] + 16, 1, 0);
    const result = heap.releaseOwner("sched:pid 42");
    expect(result).toMatchObject({ allocations: 4, bytes: 16 + 20_000 + 128 + 64, cachesDestroyed: 1 });
    expect(result.corruptions).toHaveLength(1);
    expect(result.corruptions[0]).toContain("red zone corrupted");
    expect(heap.checkLeaks({ owner: "sched:pid 42" })).toEqual([]);
    expect(heap.checkLeaks().map((l) => l.address)).toEqual([theirs]);
    expect(heap.statistics().caches.map((c) => c.name)).not.toContain("proc-files");
    expect(heap.releaseOwner("sched:pid 42")).toEqual({
      allocations: 0,
      bytes: 0,
      cachesDestroyed: 0,
      corruptions: [],
    });
    // The heap's own caches have no owner: an empty tag names nobody.
    expectAstraError(() => heap.releaseOwner(""), Code.INVALID_ARGUMENT, Errno.EINVAL, "owner");
    expect(heap.statistics().caches.map((c) => c.name)).toContain("kmalloc-8");
    expect(heap.checkConsistency()).toEqual([]);
  });
});

describe("heap under random use", () => {
  type Op =
    | { kind: "alloc"; size: number; align: number }
    | { kind: "free"; pick: number }
    | { kind: "realloc"; pick: number; size: number };
  const sizeArb = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 70_000 }));
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant("alloc" as const),
      size: sizeArb,
      align: fc.constantFrom(8, 8, 8, 16, 128, 4096),
    }),
    fc.record({ kind: fc.constant("free" as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant("realloc" as const), pick: fc.nat(), size: sizeArb }),
  );

  it("keeps contents intact, never overlaps, and gives every frame back", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
        const { heap, memory, frames } = setup(4096);
        const live = new Map<number, { size: number; fill: number }>();
        let fill = 1;
        const verify = (address: number) => {
          const { size, fill: byte } = live.get(address)!;
          expect(memory.findMismatch(address, size, byte), `contents of ${hex(address)}`).toBe(-1);
        };
        for (const op of ops) {
          if (op.kind === "alloc") {
            let address: number;
            try {
              address = heap.kmallocAligned(op.size, op.align, "prop");
            } catch (err) {
              expect((err as AstraError).code).toBe(Code.RESOURCE_EXHAUSTED);
              continue;
            }
            expect(address % op.align).toBe(0);
            for (const [other, { size }] of live) {
              expect(address + op.size <= other || other + size <= address).toBe(true);
            }
            fill = (fill % 250) + 1;
            memory.fill(address, op.size, fill);
            live.set(address, { size: op.size, fill });
          } else if (live.size > 0) {
            const address = [...live.keys()][op.pick % live.size];
            verify(address);
            if (op.kind === "free") {
              expect(heap.kfree(address)).toBe(live.get(address)!.size);
              live.delete(address);
            } else {
              const old = live.get(address)!;
              let result;
              try {
                result = heap.krealloc(address, op.size, "prop");
              } catch (err) {
                expect((err as AstraError).code).toBe(Code.RESOURCE_EXHAUSTED);
                continue;
              }
              live.delete(address);
              const kept = Math.min(old.size, op.size);
              expect(memory.findMismatch(result.address, kept, old.fill)).toBe(-1);
              fill = (fill % 250) + 1;
              memory.fill(result.address, op.size, fill);
              live.set(result.address, { size: op.size, fill });
            }
          }
          expect(heap.statistics().liveAllocations).toBe(live.size);
        }
        expect(heap.checkConsistency()).toEqual([]);
        for (const address of live.keys()) {
          verify(address);
          heap.kfree(address);
        }
        heap.defragment();
        expect(frames.freeCount).toBe(4096);
      }),
      { numRuns: 60 },
    );
  });
});
