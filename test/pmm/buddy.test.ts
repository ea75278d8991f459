import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { BuddyAllocator, HEAP_CHUNK_OWNER, MAX_ORDER } from "../../services/pmm/buddy.ts";
import { FrameAllocator } from "../../services/pmm/frames.ts";
import { normalizeMemoryMap } from "../../services/pmm/memmap.ts";
import { expectAstraError, flat, flatMachine, P } from "./helpers.ts";

const WINDOW = 2048;

function setup(frames: number, spareChunks = 1) {
  const source = new FrameAllocator(normalizeMemoryMap(flatMachine(frames)));
  return { source, buddy: new BuddyAllocator(source, { spareChunks }) };
}

function heapFrames(source: FrameAllocator): number {
  return source.listRuns({ owner: HEAP_CHUNK_OWNER }).reduce((n, r) => n + r.frames, 0);
}

describe("BuddyAllocator", () => {
  it("grows by an aligned 8 MiB chunk and splits it down to the request", () => {
    const { source, buddy } = setup(3 * WINDOW);
    const a = buddy.alloc(0);
    expect(a).toBe(flat(0));
    expect(source.listRuns({ owner: HEAP_CHUNK_OWNER })).toMatchObject([{
      address: flat(0),
      frames: WINDOW,
    }]);
    const stats = buddy.statistics();
    expect(stats.totalPages).toBe(WINDOW);
    expect(stats.allocatedPages).toBe(1);
    expect(stats.freeBlocks).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    expect(buddy.checkConsistency()).toEqual([]);
  });

  it("hands out lower halves first and coalesces buddies fully on free", () => {
    const { buddy } = setup(3 * WINDOW);
    const a = buddy.alloc(3);
    const b = buddy.alloc(3);
    const c = buddy.alloc(0);
    expect([a, b, c]).toEqual([flat(0), flat(8), flat(16)]);
    expect(buddy.free(b)).toBe(3);
    expect(buddy.free(a)).toBe(3);
    expect(buddy.statistics().freeBlocks.slice(0, 5)).toEqual([1, 1, 1, 1, 1]);
    buddy.free(c);
    expect(buddy.statistics().freeBlocks).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(buddy.checkConsistency()).toEqual([]);
  });

  it("falls back to a smaller aligned chunk when no 8 MiB run is free", () => {
    const { source, buddy } = setup(1000);
    const a = buddy.alloc(2);
    expect(a % (512 * P)).toBe(0);
    expect(source.listRuns({ owner: HEAP_CHUNK_OWNER })).toMatchObject([{ frames: 512 }]);
    expect(buddy.totalPages).toBe(512);
    const big = buddy.alloc(8);
    expect(big % (256 * P)).toBe(0);
    expect(buddy.checkConsistency()).toEqual([]);
  });

  it("runs out with RESOURCE_EXHAUSTED and the heap's figures, changing nothing", () => {
    const { source, buddy } = setup(64);
    buddy.alloc(6);
    const before = [buddy.statistics(), source.statistics().frames];
    const err = expectAstraError(() => buddy.alloc(0), Code.RESOURCE_EXHAUSTED, Errno.ENOMEM);
    expect(err.detail.facts).toMatchObject({
      requested_order: "0",
      heap_pages: "64",
      heap_free_pages: "0",
      "node0.free_frames": "0",
    });
    expect([buddy.statistics(), source.statistics().frames]).toEqual(before);
  });

  it("returns wholly free chunks beyond the spare ones to the frame allocator", () => {
    const none = setup(3 * WINDOW, 0);
    none.buddy.free(none.buddy.alloc(MAX_ORDER));
    expect(none.buddy.totalPages).toBe(0);
    expect(none.source.freeCount).toBe(3 * WINDOW);

    const { source, buddy } = setup(3 * WINDOW, 1);
    const a = buddy.alloc(MAX_ORDER);
    const b = buddy.alloc(MAX_ORDER);
    buddy.free(a);
    expect(buddy.totalPages).toBe(2 * WINDOW); // one spare kept
    buddy.free(b);
    expect(buddy.totalPages).toBe(WINDOW);
    expect(buddy.releaseFreeChunks()).toBe(WINDOW);
    expect(buddy.totalPages).toBe(0);
    expect(source.freeCount).toBe(3 * WINDOW);
    expect(buddy.checkConsistency()).toEqual([]);
  });

  it("reuses window slots after their chunks go back", () => {
    const { source, buddy } = setup(4 * WINDOW, 0);
    const blocks = [buddy.alloc(MAX_ORDER), buddy.alloc(MAX_ORDER), buddy.alloc(MAX_ORDER)];
    for (const b of blocks) buddy.free(b);
    expect(buddy.totalPages).toBe(0);
    source.allocFrames({ owner: "x", count: WINDOW }); // the next chunk lands in another window
    expect(buddy.alloc(0)).toBe(flat(WINDOW));
    expect(buddy.blockAt(flat(WINDOW) + 5)).toEqual({ address: flat(WINDOW), order: 0, allocated: true });
    expect(buddy.checkConsistency()).toEqual([]);
  });

  it("describes the block holding any address", () => {
    const { buddy } = setup(3 * WINDOW);
    const a = buddy.alloc(4);
    expect(buddy.blockAt(a + 5 * P + 17)).toEqual({ address: a, order: 4, allocated: true });
    expect(buddy.blockAt(a + 16 * P)).toEqual({ address: a + 16 * P, order: 4, allocated: false });
    expect(buddy.blockAt(a + 1024 * P + 3)).toEqual({ address: a + 1024 * P, order: 10, allocated: false });
    expect(buddy.blockAt(2 * WINDOW * P)).toBeUndefined();
  });

  it("refuses to free what is not an allocated block, changing nothing", () => {
    const { buddy } = setup(3 * WINDOW);
    const a = buddy.alloc(2);
    const before = buddy.statistics();
    for (const bad of [a + P, a + 4 * P, a + 1, 3 * WINDOW * P, -P]) {
      expectAstraError(() => buddy.free(bad), Code.FAILED_PRECONDITION, Errno.EINVAL, "address");
    }
    buddy.free(a);
    expectAstraError(() => buddy.free(a), Code.FAILED_PRECONDITION, Errno.EINVAL, "address");
    expect(buddy.statistics().freePages).toBe(before.freePages + 4);
    expectAstraError(() => buddy.alloc(12), Code.INVALID_ARGUMENT, Errno.EINVAL, "order");
    expectAstraError(() => buddy.alloc(-1), Code.INVALID_ARGUMENT, Errno.EINVAL, "order");
  });
});

// --- model-based ------------------------------------------------------------------------------

interface Model {
  live: Map<number, number>; // address -> order
}

interface Real {
  source: FrameAllocator;
  buddy: BuddyAllocator;
  initialFree: number;
}

type Cmd = fc.Command<Model, Real>;

function checkInvariants(model: Model, real: Real): void {
  expect(real.buddy.checkConsistency()).toEqual([]);
  expect(real.source.checkConsistency()).toEqual([]);
  const stats = real.buddy.statistics();
  let pages = 0;
  for (const order of model.live.values()) pages += 1 << order;
  expect(stats.allocatedPages).toBe(pages);
  expect(stats.totalPages).toBe(heapFrames(real.source));
  const blocks = real.buddy.allocatedBlocks().map((b) => [b.address, b.order]).sort((x, y) => x[0] - y[0]);
  expect(blocks).toEqual([...model.live.entries()].sort((x, y) => x[0] - y[0]));
}

class AllocCmd implements Cmd {
  constructor(readonly order: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    let address: number;
    try {
      address = real.buddy.alloc(this.order);
    } catch (err) {
      expect((err as AstraError).code).toBe(Code.RESOURCE_EXHAUSTED);
      // Honest exhaustion: no free block big enough, and no aligned run to grow by.
      expect(real.buddy.statistics().freeBlocks.slice(this.order).every((n) => n === 0)).toBe(true);
      const frames = 1 << this.order;
      expect(() => real.source.allocFrames({ owner: "probe", count: frames, alignment: frames })).toThrow(
        AstraError,
      );
      checkInvariants(model, real);
      return;
    }
    const pages = 1 << this.order;
    expect((address / P) % pages).toBe(0);
    for (const [other, order] of model.live) {
      const disjoint = address + pages * P <= other || other + (1 << order) * P <= address;
      expect(disjoint, `block ${address} overlaps ${other}`).toBe(true);
    }
    expect(real.source.checkFrame(address).owner).toBe(HEAP_CHUNK_OWNER);
    model.live.set(address, this.order);
    checkInvariants(model, real);
  }
  toString = () => `alloc(${this.order})`;
}

class FreeCmd implements Cmd {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => model.live.size > 0;
  run(model: Model, real: Real): void {
    const address = [...model.live.keys()][this.pick % model.live.size];
    expect(real.buddy.free(address)).toBe(model.live.get(address));
    model.live.delete(address);
    checkInvariants(model, real);
  }
  toString = () => `free(#${this.pick})`;
}

class BadFreeCmd implements Cmd {
  constructor(readonly pick: number, readonly offsetPages: number) {}
  check = (model: Readonly<Model>) => model.live.size > 0;
  run(model: Model, real: Real): void {
    const [address, order] = [...model.live.entries()][this.pick % model.live.size];
    const target = address + (1 + (this.offsetPages % ((1 << order) + 3))) * P;
    if (model.live.has(target)) return; // landed on another live block: a valid free
    const before = real.buddy.statistics();
    expect(() => real.buddy.free(target)).toThrow(AstraError);
    expect(real.buddy.statistics()).toEqual(before);
    checkInvariants(model, real);
  }
  toString = () => `badFree(#${this.pick}, +${this.offsetPages})`;
}

class ReleaseChunksCmd implements Cmd {
  check = () => true;
  run(model: Model, real: Real): void {
    const total = real.buddy.totalPages;
    const free = real.source.freeCount;
    const returned = real.buddy.releaseFreeChunks();
    expect(real.buddy.totalPages).toBe(total - returned);
    expect(real.source.freeCount).toBe(free + returned);
    checkInvariants(model, real);
  }
  toString = () => "releaseFreeChunks()";
}

describe("BuddyAllocator against a model", () => {
  const orderArb = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 3 }) },
    { weight: 1, arbitrary: fc.integer({ min: 4, max: MAX_ORDER }) },
  );
  const commands = [
    orderArb.map((o) => new AllocCmd(o)),
    orderArb.map((o) => new AllocCmd(o)),
    fc.nat().map((n) => new FreeCmd(n)),
    fc.nat().map((n) => new FreeCmd(n)),
    fc.tuple(fc.nat(), fc.nat()).map(([n, o]) => new BadFreeCmd(n, o)),
    fc.constant(new ReleaseChunksCmd()),
  ];

  it("never overlaps, stays consistent, and coalesces fully when everything is freed", () => {
    fc.assert(
      fc.property(
        fc.commands(commands, { maxCommands: 100, size: "max" }),
        fc.nat(3),
        (cmds, spareChunks) => {
          // 2 full windows plus 904 frames, so smaller fallback chunks and exhaustion both occur.
          const source = new FrameAllocator(normalizeMemoryMap(flatMachine(2 * WINDOW + 904)));
          const real: Real = {
            source,
            buddy: new BuddyAllocator(source, { spareChunks }),
            initialFree: source.freeCount,
          };
          const model: Model = { live: new Map() };
          fc.modelRun(() => ({ model, real }), cmds);
          for (const address of model.live.keys()) real.buddy.free(address);
          model.live.clear();
          checkInvariants(model, real);
          const stats = real.buddy.statistics();
          // Fully coalesced: each chunk is one free block again.
          expect(stats.freePages).toBe(stats.totalPages);
          expect(stats.freeBlocks.reduce((a, b) => a + b, 0)).toBe(stats.chunks);
          expect(stats.chunks).toBeLessThanOrEqual(spareChunks);
          real.buddy.releaseFreeChunks();
          expect(real.source.freeCount).toBe(real.initialFree);
        },
      ),
      { numRuns: 150 },
    );
  });
});
