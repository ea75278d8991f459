import { describe, expect, it } from "vitest";
import { Code, Errno } from "../../lib/errors.ts";
import {
  addBuddyBlocks,
  FitStrategy,
  fragmentationIndex,
  FrameAllocator,
  FrameState,
  MAX_ORDER,
  NULL_PAGE_REASON,
  orderFragmentation,
  TagTable,
  unusableFreeIndex,
} from "../../services/pmm/frames.ts";
import { MemoryType, normalizeMemoryMap } from "../../services/pmm/memmap.ts";
import { expectAstraError, flat, flatMachine, P, SMALL_FREE, SMALL_MACHINE } from "./helpers.ts";

const owner = "test:frames";

function small(): FrameAllocator {
  return new FrameAllocator(normalizeMemoryMap(SMALL_MACHINE));
}

// Everything observable about the allocator's state, to prove a failed call changed nothing.
function snapshot(frames: FrameAllocator) {
  const stats = frames.statistics();
  return {
    counts: stats.frames,
    nodes: stats.nodes,
    runs: frames.listRuns(),
    reservations: [...frames.reservations],
  };
}

describe("FrameAllocator: construction and accounting", () => {
  it("manages RAM regions only, with firmware reservations counted as reserved", () => {
    const frames = small();
    const free = SMALL_FREE.node0 + SMALL_FREE.node1;
    // Firmware reserves 6 + 4 frames; pmm itself keeps the null page.
    expect(frames.totalCount).toBe(free + 1 + 6 + 4);
    expect(frames.freeCount).toBe(free);
    expect(frames.nodes).toEqual([0, 1]);
    const stats = frames.statistics();
    expect(stats.frames).toEqual({ total: free + 11, free, used: 0, reserved: 11 });
    expect(stats.nodes.map((n) => [n.node, n.frames.free, n.frames.reserved])).toEqual([
      [0, SMALL_FREE.node0, 11],
      [1, SMALL_FREE.node1, 0],
    ]);
    expect(frames.reservations).toEqual([{ base: 0, size: P, reason: NULL_PAGE_REASON }]);
    expect(frames.checkFrame(0).state).toBe(FrameState.RESERVED);
    expect(stats.regions.map((r) => [r.type, r.frames.total])).toEqual([
      [MemoryType.USABLE, 40],
      [MemoryType.USABLE, 52],
      [MemoryType.RESERVED, 6],
      [MemoryType.USABLE, 44],
      [MemoryType.ACPI_NVS, 4],
      [MemoryType.USABLE, 140],
      [MemoryType.USABLE, 80],
    ]);
    expect(frames.memoryMap.map((r) => r.type)).toContain(MemoryType.DEVICE);
    expect(frames.checkConsistency()).toEqual([]);
  });

  it("refuses a map without RAM or with RAM above 2^53", () => {
    expectAstraError(
      () => new FrameAllocator(normalizeMemoryMap([{ base: 0, length: P, type: MemoryType.DEVICE }])),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "memory_map",
    );
    expectAstraError(
      () => new FrameAllocator(normalizeMemoryMap([{ base: 1n << 53n, length: P, type: MemoryType.USABLE }])),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "memory_map",
    );
  });
});

describe("FrameAllocator: single frames", () => {
  it("hands out the lowest free frame and takes it back", () => {
    const frames = small();
    const a = frames.allocFrame({ owner, site: "a" });
    const b = frames.allocFrame({ owner });
    expect([a, b]).toEqual([P, 2 * P]);
    expect(frames.nodeOf(b)).toBe(0);
    frames.freeFrame(a);
    expect(frames.allocFrame({ owner })).toBe(P);
    expect(frames.statistics().frames.used).toBe(2);
    expect(frames.checkConsistency()).toEqual([]);
  });

  it("runs out with RESOURCE_EXHAUSTED, per-node figures in the facts, and changes nothing", () => {
    const frames = small();
    const seen = new Set<number>();
    for (let i = 0; i < SMALL_FREE.node0 + SMALL_FREE.node1; i++) seen.add(frames.allocFrame({ owner }));
    expect(seen.size).toBe(SMALL_FREE.node0 + SMALL_FREE.node1);
    const before = snapshot(frames);
    const err = expectAstraError(() => frames.allocFrame({ owner }), Code.RESOURCE_EXHAUSTED, Errno.ENOMEM);
    expect(err.detail.facts).toMatchObject({
      "node0.free_frames": "0",
      "node0.total_frames": String(SMALL_FREE.node0 + 11),
      "node1.free_frames": "0",
      "node1.largest_free_run": "0",
    });
    expect(snapshot(frames)).toEqual(before);
    expect(frames.failedAllocs).toBe(1);
  });

  it("prefers the requested node and falls back to the nearest one", () => {
    const frames = new FrameAllocator(normalizeMemoryMap([
      { base: 0, length: 4 * P, type: MemoryType.USABLE, node: 0 },
      { base: 4 * P, length: 2 * P, type: MemoryType.USABLE, node: 1 },
      { base: 6 * P, length: 4 * P, type: MemoryType.USABLE, node: 2 },
    ]));
    const prefer1 = { owner, preferredNode: 1 };
    expect(frames.allocFrame(prefer1)).toBe(4 * P);
    expect(frames.allocFrame(prefer1)).toBe(5 * P);
    // Node 1 is full: nodes 0 and 2 are equally near, the lower id goes first.
    expect(frames.nodeOf(frames.allocFrame(prefer1))).toBe(0);
    expect(frames.nodeOf(frames.allocFrame({ owner, preferredNode: 2 }))).toBe(2);
    const strict = expectAstraError(
      () => frames.allocFrame({ owner, preferredNode: 1, strictNode: true }),
      Code.RESOURCE_EXHAUSTED,
      Errno.ENOMEM,
    );
    expect(strict.message).toContain("on node 1");
    expectAstraError(
      () => frames.allocFrame({ owner, preferredNode: 7 }),
      Code.INVALID_ARGUMENT,
      Errno.ENODEV,
      "preferred_node",
    );
  });

  it("keeps every byte at or below max_address", () => {
    const frames = small();
    for (let i = 1; i < 10; i++) frames.allocFrame({ owner });
    expectAstraError(
      () => frames.allocFrame({ owner, maxAddress: 10 * P - 1 }),
      Code.RESOURCE_EXHAUSTED,
      Errno.ENOMEM,
    );
    expect(frames.allocFrame({ owner, maxAddress: 11 * P - 1 })).toBe(10 * P);
    expect(frames.allocFrame({ owner, maxAddress: 0xffffffff })).toBe(11 * P);
    expectAstraError(
      () => frames.allocFrame({ owner, maxAddress: -5 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "max_address",
    );
  });

  it("requires an owner", () => {
    expectAstraError(() => small().allocFrame({ owner: "" }), Code.INVALID_ARGUMENT, Errno.EINVAL, "owner");
  });
});

describe("FrameAllocator: contiguous runs", () => {
  it("never lets a run cross a region boundary", () => {
    const frames = small();
    // 45 frames do not fit [0,40) and may not join it with [48,100) across the hole.
    expect(frames.allocFrames({ owner, count: 45 })).toBe(48 * P);
    // 53 fit no region of node 0 (52 and 44 are left, split by the reserved range).
    expect(frames.allocFrames({ owner, count: 53 })).toBe(160 * P);
    expect(frames.nodeOf(160 * P)).toBe(1);
    expectAstraError(() => frames.allocFrames({ owner, count: 141 }), Code.RESOURCE_EXHAUSTED, Errno.ENOMEM);
    expect(frames.checkConsistency()).toEqual([]);
  });

  it("aligns the first frame number absolutely", () => {
    const frames = small();
    frames.allocFrame({ owner });
    const a = frames.allocFrames({ owner, count: 3, alignment: 16 });
    expect(a).toBe(16 * P);
    const b = frames.allocFrames({ owner, count: 20, alignment: 32 });
    // [32,40) is too short; the next multiple of 32 inside a region is 64.
    expect(b).toBe(64 * P);
    expectAstraError(
      () => frames.allocFrames({ owner, count: 1, alignment: 3 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "alignment",
    );
    expectAstraError(
      () => frames.allocFrames({ owner, count: 0 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "count",
    );
    expectAstraError(
      () => frames.allocFrames({ owner, count: 2.5 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "count",
    );
  });

  it("chooses by first fit or best fit", () => {
    const frames = new FrameAllocator(normalizeMemoryMap(flatMachine(64)));
    // Free runs: [0,5) then [6,9) then [10,64).
    const singles = Array.from({ length: 10 }, () => frames.allocFrame({ owner }));
    for (const i of [0, 1, 2, 3, 4, 6, 7, 8]) frames.freeFrame(singles[i]);
    expect(frames.allocFrames({ owner, count: 3, strategy: FitStrategy.BEST_FIT })).toBe(flat(6));
    expect(frames.allocFrames({ owner, count: 3, strategy: FitStrategy.FIRST_FIT })).toBe(flat(0));
    expect(frames.allocFrames({ owner, count: 2, strategy: FitStrategy.BEST_FIT })).toBe(flat(3));
    expectAstraError(
      () => frames.allocFrames({ owner, count: 1, strategy: 9 as FitStrategy }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "strategy",
    );
  });

  it("breaks best-fit ties by the lower address", () => {
    const frames = new FrameAllocator(normalizeMemoryMap(flatMachine(32)));
    frames.allocFramesBulk({ owner, count: 32 });
    for (const f of [0, 1, 2, 5, 6, 7, 10, 11, 12, 13]) frames.freeFrame(flat(f));
    // Free runs [0,3), [5,8) and [10,14).
    expect(frames.allocFrames({ owner, count: 2, strategy: FitStrategy.BEST_FIT })).toBe(flat(0));
    expect(frames.allocFrames({ owner, count: 3, strategy: FitStrategy.BEST_FIT })).toBe(flat(5));
    expect(frames.allocFrames({ owner, count: 4, strategy: FitStrategy.BEST_FIT })).toBe(flat(10));
  });

  it("respects max_address for the whole run", () => {
    const frames = small();
    expectAstraError(
      () => frames.allocFrames({ owner, count: 53, maxAddress: 100 * P - 1 }),
      Code.RESOURCE_EXHAUSTED,
      Errno.ENOMEM,
    );
    expect(frames.allocFrames({ owner, count: 39, maxAddress: 100 * P - 1 })).toBe(P);
    expect(frames.allocFrames({ owner, count: 52, maxAddress: 100 * P - 1 })).toBe(48 * P);
  });
});

describe("FrameAllocator: bulk", () => {
  it("hands out N distinct frames, lowest first, all or nothing", () => {
    const frames = small();
    const bulk = frames.allocFramesBulk({ owner, count: 45 });
    expect(new Set(bulk).size).toBe(45);
    expect(bulk.slice(37, 41)).toEqual([38 * P, 39 * P, 48 * P, 49 * P]);
    expect(frames.listRuns({ owner }).every((r) => r.frames === 1)).toBe(true);
    const before = snapshot(frames);
    expectAstraError(
      () => frames.allocFramesBulk({ owner, count: frames.freeCount + 1 }),
      Code.RESOURCE_EXHAUSTED,
      Errno.ENOMEM,
    );
    expect(snapshot(frames)).toEqual(before);
  });

  it("counts only frames below max_address and on the allowed nodes", () => {
    const frames = small();
    expectAstraError(
      () => frames.allocFramesBulk({ owner, count: 40, maxAddress: 40 * P - 1 }),
      Code.RESOURCE_EXHAUSTED,
      Errno.ENOMEM,
    );
    expect(frames.allocFramesBulk({ owner, count: 39, maxAddress: 40 * P - 1 })).toHaveLength(39);
    expectAstraError(
      () =>
        frames.allocFramesBulk({ owner, count: SMALL_FREE.node1 + 1, preferredNode: 1, strictNode: true }),
      Code.RESOURCE_EXHAUSTED,
      Errno.ENOMEM,
    );
    const node1 = frames.allocFramesBulk({
      owner,
      count: SMALL_FREE.node1,
      preferredNode: 1,
      strictNode: true,
    });
    expect(node1.every((a) => frames.nodeOf(a) === 1)).toBe(true);
  });
});

describe("FrameAllocator: misuse is refused and changes nothing", () => {
  const cases: [string, (f: FrameAllocator, run: number, single: number) => unknown, Code, Errno, string][] =
    [
      [
        "an unaligned address",
        (f, _r, s) => f.freeFrame(s + 8),
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
        "address",
      ],
      ["a hole", (f) => f.freeFrame(44 * P), Code.OUT_OF_RANGE, Errno.EFAULT, "address"],
      ["a device region", (f) => f.freeFrame(305 * P), Code.OUT_OF_RANGE, Errno.EFAULT, "address"],
      ["beyond the map", (f) => f.freeFrame(4000 * P), Code.OUT_OF_RANGE, Errno.EFAULT, "address"],
      ["a negative address", (f) => f.freeFrame(-P), Code.OUT_OF_RANGE, Errno.EFAULT, "address"],
      [
        "a free frame (double free)",
        (f) => f.freeFrame(50 * P),
        Code.FAILED_PRECONDITION,
        Errno.EINVAL,
        "address",
      ],
      [
        "a firmware-reserved frame",
        (f) => f.freeFrame(101 * P),
        Code.FAILED_PRECONDITION,
        Errno.EPERM,
        "address",
      ],
      [
        "the head of a run, as a single frame",
        (f, r) => f.freeFrame(r),
        Code.FAILED_PRECONDITION,
        Errno.EINVAL,
        "address",
      ],
      [
        "the tail of a run, as a single frame",
        (f, r) => f.freeFrame(r + P),
        Code.FAILED_PRECONDITION,
        Errno.EINVAL,
        "address",
      ],
      [
        "a run with the wrong count",
        (f, r) => f.freeFrames(r, 3),
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
        "count",
      ],
      [
        "a run from its middle",
        (f, r) => f.freeFrames(r + P, 3),
        Code.FAILED_PRECONDITION,
        Errno.EINVAL,
        "address",
      ],
      [
        "a run crossing its region's end",
        (f) => f.freeFrames(38 * P, 4),
        Code.OUT_OF_RANGE,
        Errno.EFAULT,
        "count",
      ],
      [
        "a single frame as a run",
        (f, _r, s) => f.freeFrames(s, 2),
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
        "count",
      ],
      ["a run of zero frames", (f, r) => f.freeFrames(r, 0), Code.INVALID_ARGUMENT, Errno.EINVAL, "count"],
      [
        "a reserved frame as a run",
        (f) => f.freeFrames(100 * P, 6),
        Code.FAILED_PRECONDITION,
        Errno.EPERM,
        "address",
      ],
      ["the null page", (f) => f.freeFrame(0), Code.FAILED_PRECONDITION, Errno.EPERM, "address"],
    ];

  for (const [what, misuse, code, errno, argument] of cases) {
    it(`freeing ${what}`, () => {
      const frames = small();
      // Frame 1 single, [2,6) a run, 6 single, [7,9) a run, 9 single; the rest free.
      const single = frames.allocFrame({ owner, site: "single" });
      const run = frames.allocFrames({ owner, count: 4, site: "run" });
      frames.allocFrame({ owner });
      frames.allocFrames({ owner, count: 2, site: "neighbour run" });
      frames.allocFrame({ owner });
      const before = snapshot(frames);
      expectAstraError(() => misuse(frames, run, single), code, errno, argument);
      expect(snapshot(frames)).toEqual(before);
      expect(frames.checkConsistency()).toEqual([]);
    });
  }

  it("tells adjacent runs apart", () => {
    const frames = small();
    const a = frames.allocFrames({ owner, count: 4 });
    const b = frames.allocFrames({ owner, count: 4 });
    expect(b).toBe(a + 4 * P);
    expectAstraError(() => frames.freeFrames(a, 8), Code.INVALID_ARGUMENT, Errno.EINVAL, "count");
    frames.freeFrames(b, 4);
    frames.freeFrames(a, 4);
    expect(frames.freeCount).toBe(SMALL_FREE.node0 + SMALL_FREE.node1);
  });
});

describe("FrameAllocator: reservations", () => {
  it("reserves every frame the range touches, once", () => {
    const frames = small();
    const r = frames.reserveRegion(2 * P + 100, 2 * P, "kernel image");
    expect(r).toEqual({ base: 2 * P, size: 3 * P, newlyReservedFrames: 3 });
    expect(frames.reserveRegion(3 * P, 3 * P, "initrd").newlyReservedFrames).toBe(1);
    expect(frames.checkFrame(4 * P).state).toBe(FrameState.RESERVED);
    expect(frames.allocFrame({ owner })).toBe(P);
    expect(frames.allocFrame({ owner })).toBe(6 * P);
    expect(frames.reservations.map((x) => x.reason)).toEqual([NULL_PAGE_REASON, "kernel image", "initrd"]);
    expectAstraError(() => frames.freeFrame(3 * P), Code.FAILED_PRECONDITION, Errno.EPERM, "address");
  });

  it("spans adjacent RAM regions, including firmware-reserved ones", () => {
    const frames = small();
    const r = frames.reserveRegion(98 * P, 10 * P, "HPT");
    expect(r.newlyReservedFrames).toBe(4);
    expect(frames.statistics().frames.reserved).toBe(11 + 4);
  });

  it("refuses ranges that overlap allocated frames, holes or non-RAM, changing nothing", () => {
    const frames = small();
    frames.allocFrames({ owner: "vmm:pid 7", site: "hpt.ts:1", count: 3 });
    const before = snapshot(frames);
    const busy = expectAstraError(
      () => frames.reserveRegion(0, 10 * P, "x"),
      Code.FAILED_PRECONDITION,
      Errno.EBUSY,
      "base",
    );
    expect(busy.detail.facts).toMatchObject({ owner: "vmm:pid 7", frame: "0x1000", site: "hpt.ts:1" });
    expectAstraError(() => frames.reserveRegion(38 * P, 4 * P, "x"), Code.OUT_OF_RANGE, Errno.EFAULT, "size");
    expectAstraError(() => frames.reserveRegion(42 * P, P, "x"), Code.OUT_OF_RANGE, Errno.EFAULT, "base");
    expectAstraError(
      () => frames.reserveRegion(298 * P, 4 * P, "x"),
      Code.OUT_OF_RANGE,
      Errno.EFAULT,
      "size",
    );
    expectAstraError(() => frames.reserveRegion(0, 0, "x"), Code.INVALID_ARGUMENT, Errno.EINVAL, "size");
    expectAstraError(() => frames.reserveRegion(-1, P, "x"), Code.INVALID_ARGUMENT, Errno.EINVAL, "base");
    expect(snapshot(frames)).toEqual(before);
  });
});

describe("FrameAllocator: check_frame and owners", () => {
  it("reports each frame's state, run and owner", () => {
    const frames = small();
    const run = frames.allocFrames({ owner: "storage:nvme", site: "queue.ts:9", count: 3 });
    expect(frames.checkFrame(run + 2 * P)).toMatchObject({
      state: FrameState.ALLOCATED,
      runAddress: run,
      runFrames: 3,
      owner: "storage:nvme",
      site: "queue.ts:9",
      node: 0,
      regionType: MemoryType.USABLE,
    });
    expect(frames.checkFrame(5 * P).state).toBe(FrameState.FREE);
    expect(frames.checkFrame(0).state).toBe(FrameState.RESERVED);
    expect(frames.checkFrame(152 * P)).toMatchObject({
      state: FrameState.RESERVED,
      regionType: MemoryType.ACPI_NVS,
    });
    expect(frames.checkFrame(305 * P)).toMatchObject({
      state: FrameState.UNAVAILABLE,
      regionType: MemoryType.DEVICE,
      node: 1,
    });
    expect(frames.checkFrame(395 * P)).toMatchObject({
      state: FrameState.UNAVAILABLE,
      regionType: MemoryType.BAD,
    });
    expectAstraError(() => frames.checkFrame(45 * P), Code.OUT_OF_RANGE, Errno.EFAULT, "address");
    expectAstraError(() => frames.checkFrame(45), Code.INVALID_ARGUMENT, Errno.EINVAL, "address");
  });

  it("lists and releases exactly what an owner holds", () => {
    const frames = small();
    frames.allocFrames({ owner: "a", count: 5 });
    frames.allocFrame({ owner: "b" });
    frames.allocFramesBulk({ owner: "a", count: 3 });
    frames.allocFrames({ owner: "b", count: 2, preferredNode: 1 });
    expect(frames.listRuns({ owner: "a" }).map((r) => r.frames)).toEqual([5, 1, 1, 1]);
    expect(frames.tags.size).toBe(2);
    expect(frames.releaseOwner("a")).toEqual({ runs: 4, frames: 8 });
    expect(frames.listRuns().map((r) => [r.owner, r.frames, r.node])).toEqual([["b", 1, 0], ["b", 2, 1]]);
    expect(frames.releaseOwner("a")).toEqual({ runs: 0, frames: 0 });
    expectAstraError(() => frames.releaseOwner(""), Code.INVALID_ARGUMENT, Errno.EINVAL, "owner");
    expect(frames.tags.size).toBe(1);
    expect(frames.checkConsistency()).toEqual([]);
  });

  it("serves 64 interleaved clients without handing a frame out twice", async () => {
    const frames = small();
    const held = new Map<number, number>();
    const client = async (id: number) => {
      const mine: number[] = [];
      for (let step = 0; step < 40; step++) {
        await Promise.resolve();
        if (mine.length > 0 && (step + id) % 3 === 0) {
          const address = mine.pop()!;
          held.delete(address);
          frames.freeFrame(address);
        } else {
          try {
            const address = frames.allocFrame({ owner: `client ${id}`, preferredNode: id % 2 });
            expect(held.has(address)).toBe(false);
            held.set(address, id);
            mine.push(address);
          } catch (err) {
            expect((err as { code: Code }).code).toBe(Code.RESOURCE_EXHAUSTED);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: 64 }, (_, id) => client(id)));
    const stats = frames.statistics().frames;
    expect(stats.used).toBe(held.size);
    expect(stats.free + stats.used + stats.reserved).toBe(stats.total);
    for (const [address, id] of held) expect(frames.checkFrame(address).owner).toBe(`client ${id}`);
  });
});

describe("fragmentation indices (mm/vmstat.c)", () => {
  it("match Linux's integer arithmetic on a known free list", () => {
    const blocks = [4, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // 12 free pages in 7 blocks
    expect([0, 1, 2, 3, 4].map((o) => unusableFreeIndex(o, blocks))).toEqual([0, 333, 666, 1000, 1000]);
    expect([0, 1, 2, 3, 4].map((o) => fragmentationIndex(o, blocks))).toEqual([
      -1000,
      -1000,
      -1000,
      643,
      750,
    ]);
    expect(fragmentationIndex(MAX_ORDER + 1, blocks)).toBe(0);
  });

  it("treat no free memory as all unusable and not fragmented", () => {
    const none = new Array(MAX_ORDER + 1).fill(0);
    expect(unusableFreeIndex(0, none)).toBe(1000);
    expect(fragmentationIndex(3, none)).toBe(0);
    // One free page asked for as an order-1 block: Linux's formula goes negative.
    expect(fragmentationIndex(1, [1, ...none.slice(1)])).toBe(-500);
  });

  it("cut free runs into naturally aligned buddy blocks", () => {
    const counts = new Array(MAX_ORDER + 1).fill(0);
    addBuddyBlocks(3, 17, counts);
    expect(counts.slice(0, 5)).toEqual([2, 0, 1, 1, 0]);
    const big = new Array(MAX_ORDER + 1).fill(0);
    addBuddyBlocks(0, 4101, big);
    expect(big).toEqual([1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
  });

  it("appear per node and overall in the statistics", () => {
    const frames = new FrameAllocator(normalizeMemoryMap(flatMachine(4101)));
    let stats = frames.statistics();
    expect(stats.orders.map((o) => o.freeBlocks)).toEqual([1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    expect(stats.orders[MAX_ORDER].fragmentationIndex).toBe(-1000);
    // Free every other frame: 2051 single free frames, nothing of order 1 or more.
    for (let i = 0; i < 4101; i++) frames.allocFrame({ owner });
    for (let i = 0; i < 4101; i += 2) frames.freeFrame(flat(i));
    stats = frames.statistics();
    expect(stats.nodes[0].largestFreeRun).toBe(1);
    expect(stats.orders[0]).toMatchObject({
      freeBlocks: 2051,
      unusableFreeIndex: 0,
      fragmentationIndex: -1000,
    });
    expect(stats.orders[1].unusableFreeIndex).toBe(1000);
    expect(stats.orders[1].fragmentationIndex).toBe(500);
    expect(stats.orders[4]).toEqual({
      order: 4,
      freeBlocks: 0,
      unusableFreeIndex: 1000,
      fragmentationIndex: 938,
    });
    expect(stats.orders).toEqual(orderFragmentation(stats.orders.map((o) => o.freeBlocks)));
  });
});

describe("TagTable", () => {
  it("counts references and forgets unreferenced tags", () => {
    const tags = new TagTable();
    const a = tags.acquire("a");
    expect(tags.acquire("a")).toBe(a);
    const b = tags.acquire("b");
    expect(tags.name(b)).toBe("b");
    tags.release(a);
    expect(tags.find("a")).toBe(a);
    tags.release(a);
    expect(tags.find("a")).toBeUndefined();
    expect(tags.acquire("c")).toBe(a); // id reused
    expect(tags.acquire("")).toBe(0);
    expect(tags.size).toBe(2);
  });
});
