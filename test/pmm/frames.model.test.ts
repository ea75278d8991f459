// Model-based test of the frame allocator: random command sequences run against the real
// allocator and a brute-force reference that keeps one state per frame and predicts every
// answer exactly (which frame, which run, which error). Invariants are checked after each step.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { FitStrategy, FrameAllocator, FrameState } from "../../services/pmm/frames.ts";
import { MemoryType, normalizeMemoryMap } from "../../services/pmm/memmap.ts";
import { P, SMALL_MACHINE } from "./helpers.ts";

const FRAMES = 400;
const FREE = 0;
const ALLOCATED = 1;
const RESERVED = 2;
const NOT_RAM = 3; // hole, device or bad
const OWNERS = ["vmm", "storage", "sched"];

interface Run {
  head: number;
  count: number;
  owner: string;
}

class Model {
  readonly state = new Uint8Array(FRAMES).fill(NOT_RAM);
  readonly node = new Int8Array(FRAMES).fill(-1);
  readonly region = new Int16Array(FRAMES).fill(-1);
  readonly ram = new Int8Array(FRAMES).fill(0); // in the map and RAM (even if reserved)
  readonly inMap = new Int8Array(FRAMES).fill(0);
  readonly runs = new Map<number, Run>();
  readonly headOf = new Int32Array(FRAMES).fill(-1);

  constructor() {
    normalizeMemoryMap(SMALL_MACHINE).forEach((r, index) => {
      for (let f = r.firstFrame; f < r.firstFrame + r.frameCount; f++) {
        this.inMap[f] = 1;
        this.node[f] = r.node;
        if (r.type === MemoryType.DEVICE || r.type === MemoryType.BAD) continue;
        this.ram[f] = 1;
        this.region[f] = index;
        this.state[f] = r.type === MemoryType.USABLE ? FREE : RESERVED;
      }
    });
    this.state[0] = RESERVED; // the null page
  }

  nodeOrder(preferred: number | undefined, strict: boolean): number[] {
    if (preferred === undefined) return [0, 1];
    if (strict) return [preferred];
    return [0, 1].sort((a, b) => Math.abs(a - preferred) - Math.abs(b - preferred) || a - b);
  }

  limitFrame(maxAddress: number | undefined): number {
    return maxAddress ? Math.floor((maxAddress + 1) / P) : FRAMES;
  }

  expectedSingle(nodes: number[], limit: number): number {
    for (const n of nodes) {
      for (let f = 0; f < Math.min(limit, FRAMES); f++) {
        if (this.state[f] === FREE && this.node[f] === n) return f;
      }
    }
    return -1;
  }

  expectedRun(nodes: number[], limit: number, count: number, alignment: number, bestFit: boolean): number {
    for (const n of nodes) {
      let best = -1;
      let bestLength = Infinity;
      for (let f = 0; f < Math.min(limit, FRAMES);) {
        if (this.state[f] !== FREE || this.node[f] !== n) {
          f++;
          continue;
        }
        let end = f;
        while (
          end < Math.min(limit, FRAMES) && this.state[end] === FREE && this.region[end] === this.region[f]
        ) end++;
        const start = Math.ceil(f / alignment) * alignment;
        if (start + count <= end) {
          if (!bestFit) return start;
          if (end - f < bestLength) {
            bestLength = end - f;
            best = start;
          }
        }
        f = end;
      }
      if (best >= 0) return best;
    }
    return -1;
  }

  expectedBulk(nodes: number[], limit: number, count: number): number[] {
    const picked: number[] = [];
    for (const n of nodes) {
      for (let f = 0; f < Math.min(limit, FRAMES) && picked.length < count; f++) {
        if (this.state[f] === FREE && this.node[f] === n) picked.push(f);
      }
    }
    return picked.length === count ? picked : [];
  }

  take(head: number, count: number, owner: string): void {
    for (let f = head; f < head + count; f++) {
      this.state[f] = ALLOCATED;
      this.headOf[f] = head;
    }
    this.runs.set(head, { head, count, owner });
  }

  release(head: number): void {
    const run = this.runs.get(head)!;
    for (let f = head; f < head + run.count; f++) {
      this.state[f] = FREE;
      this.headOf[f] = -1;
    }
    this.runs.delete(head);
  }

  counts(node?: number) {
    const c = { total: 0, free: 0, used: 0, reserved: 0 };
    for (let f = 0; f < FRAMES; f++) {
      if (!this.ram[f] || (node !== undefined && this.node[f] !== node)) continue;
      c.total++;
      if (this.state[f] === FREE) c.free++;
      else if (this.state[f] === ALLOCATED) c.used++;
      else c.reserved++;
    }
    return c;
  }
}

type Real = FrameAllocator;
type Cmd = fc.Command<Model, Real>;

function expectError(fn: () => unknown, code: Code, errno: Errno, argument?: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof AstraError)) throw new Error(`expected AstraError ${Code[code]}, got ${caught}`);
  expect([Code[caught.code], caught.errno, caught.message]).toEqual([Code[code], errno, caught.message]);
  if (argument !== undefined) expect(caught.detail.argument).toBe(argument);
}

function checkInvariants(model: Model, real: Real): void {
  expect(real.checkConsistency()).toEqual([]);
  const stats = real.statistics();
  expect(stats.frames).toEqual(model.counts());
  for (const n of stats.nodes) expect(n.frames).toEqual(model.counts(n.node));
  expect(real.freeCount).toBe(model.counts().free);
  const runs = real.listRuns().map((r) => [r.address / P, r.frames, r.owner]);
  const expected = [...model.runs.values()].sort((a, b) => a.head - b.head).map((
    r,
  ) => [r.head, r.count, r.owner]);
  expect(runs).toEqual(expected);
}

interface Placement {
  preferredNode?: number;
  strictNode: boolean;
  maxAddress?: number;
}

const placementArb: fc.Arbitrary<Placement> = fc.record({
  preferredNode: fc.option(fc.constantFrom(0, 1), { nil: undefined }),
  strictNode: fc.boolean(),
  maxAddress: fc.option(fc.constantFrom(40 * P - 1, 120 * P - 1, 200 * P + 77, 350 * P - 1), {
    nil: undefined,
  }),
});

class AllocFrameCmd implements Cmd {
  constructor(readonly placement: Placement, readonly owner: string) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const nodes = model.nodeOrder(this.placement.preferredNode, this.placement.strictNode);
    const expected = model.expectedSingle(nodes, model.limitFrame(this.placement.maxAddress));
    if (expected < 0) {
      expectError(
        () => real.allocFrame({ owner: this.owner, ...this.placement }),
        Code.RESOURCE_EXHAUSTED,
        Errno.ENOMEM,
      );
    } else {
      expect(real.allocFrame({ owner: this.owner, ...this.placement }) / P).toBe(expected);
      model.take(expected, 1, this.owner);
    }
    checkInvariants(model, real);
  }
  toString = () => `allocFrame(${JSON.stringify(this.placement)}, ${this.owner})`;
}

class AllocRunCmd implements Cmd {
  constructor(
    readonly count: number,
    readonly alignment: number,
    readonly bestFit: boolean,
    readonly placement: Placement,
    readonly owner: string,
  ) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const nodes = model.nodeOrder(this.placement.preferredNode, this.placement.strictNode);
    const limit = model.limitFrame(this.placement.maxAddress);
    const expected = model.expectedRun(nodes, limit, this.count, this.alignment, this.bestFit);
    const request = {
      owner: this.owner,
      count: this.count,
      alignment: this.alignment,
      strategy: this.bestFit ? FitStrategy.BEST_FIT : FitStrategy.FIRST_FIT,
      ...this.placement,
    };
    if (expected < 0) {
      expectError(() => real.allocFrames(request), Code.RESOURCE_EXHAUSTED, Errno.ENOMEM);
    } else {
      expect(real.allocFrames(request) / P).toBe(expected);
      model.take(expected, this.count, this.owner);
    }
    checkInvariants(model, real);
  }
  toString = () =>
    `allocFrames(${this.count}, align ${this.alignment}, ${this.bestFit ? "best" : "first"}, ` +
    `${JSON.stringify(this.placement)})`;
}

class AllocBulkCmd implements Cmd {
  constructor(readonly count: number, readonly placement: Placement, readonly owner: string) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const nodes = model.nodeOrder(this.placement.preferredNode, this.placement.strictNode);
    const expected = model.expectedBulk(nodes, model.limitFrame(this.placement.maxAddress), this.count);
    const request = { owner: this.owner, count: this.count, ...this.placement };
    if (expected.length === 0) {
      expectError(() => real.allocFramesBulk(request), Code.RESOURCE_EXHAUSTED, Errno.ENOMEM);
    } else {
      expect(real.allocFramesBulk(request).map((a) => a / P)).toEqual(expected);
      for (const f of expected) model.take(f, 1, this.owner);
    }
    checkInvariants(model, real);
  }
  toString = () => `allocFramesBulk(${this.count}, ${JSON.stringify(this.placement)})`;
}

type FreeMode = "run" | "single" | "count+1" | "count-1" | "unaligned";

// Frees a live run exactly, or misuses FreeFrame/FreeFrames on some frame; the model predicts
// the outcome and the allocator must match it and, on error, change nothing.
class FreeCmd implements Cmd {
  constructor(readonly pick: number, readonly frame: number, readonly mode: FreeMode) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const runs = [...model.runs.values()];
    if (this.mode === "run" && runs.length > 0) {
      const run = runs[this.pick % runs.length];
      if (run.count === 1 && this.pick % 2 === 0) real.freeFrame(run.head * P);
      else real.freeFrames(run.head * P, run.count);
      model.release(run.head);
    } else if (this.mode === "unaligned") {
      expectError(
        () => real.freeFrame(this.frame * P + 1 + (this.pick % (P - 1))),
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
        "address",
      );
    } else {
      // Half the time aim at a live run's head, where the subtle mistakes are.
      const f = runs.length > 0 && this.pick % 2 === 0
        ? runs[(this.pick >> 1) % runs.length].head
        : this.frame;
      const held = model.runs.get(f)?.count ?? 1;
      const count = this.mode === "single" ? 1 : this.mode === "count+1" ? held + 1 : Math.max(1, held - 1);
      const free = () => (this.mode === "single" ? real.freeFrame(f * P) : real.freeFrames(f * P, count));
      if (!model.ram[f]) {
        expectError(free, Code.OUT_OF_RANGE, Errno.EFAULT, "address");
      } else if (this.mode !== "single" && model.region[f + count - 1] !== model.region[f]) {
        expectError(free, Code.OUT_OF_RANGE, Errno.EFAULT, "count");
      } else if (model.state[f] === FREE) {
        expectError(free, Code.FAILED_PRECONDITION, Errno.EINVAL, "address");
      } else if (model.state[f] === RESERVED) {
        expectError(free, Code.FAILED_PRECONDITION, Errno.EPERM, "address");
      } else if (model.headOf[f] !== f) {
        expectError(free, Code.FAILED_PRECONDITION, Errno.EINVAL, "address");
      } else if (model.runs.get(f)!.count === count) {
        if (this.mode === "single") real.freeFrame(f * P);
        else real.freeFrames(f * P, count);
        model.release(f);
      } else {
        // A run head freed as a single frame, or a run freed with a count one off.
        const code = this.mode === "single" ? Code.FAILED_PRECONDITION : Code.INVALID_ARGUMENT;
        expectError(free, code, Errno.EINVAL, this.mode === "single" ? "address" : "count");
      }
    }
    checkInvariants(model, real);
  }
  toString = () => `free(${this.mode}, pick ${this.pick}, frame ${this.frame})`;
}

class ReserveCmd implements Cmd {
  constructor(readonly first: number, readonly frames: number, readonly offset: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const base = this.first * P + this.offset;
    const size = this.frames * P - this.offset;
    const start = this.first;
    const end = Math.ceil((base + size) / P);
    let error: [Code, Errno, string] | undefined;
    for (let f = start; f < end && !error; f++) {
      if (f >= FRAMES || !model.ram[f]) {
        error = [Code.OUT_OF_RANGE, Errno.EFAULT, f === start ? "base" : "size"];
      }
    }
    for (let f = start; f < end && !error; f++) {
      if (model.state[f] === ALLOCATED) error = [Code.FAILED_PRECONDITION, Errno.EBUSY, "base"];
    }
    if (error) {
      expectError(() => real.reserveRegion(base, size, "test"), ...error);
    } else {
      let fresh = 0;
      for (let f = start; f < end; f++) {
        if (model.state[f] === FREE) fresh++;
        model.state[f] = RESERVED;
      }
      expect(real.reserveRegion(base, size, "test")).toEqual({
        base: start * P,
        size: (end - start) * P,
        newlyReservedFrames: fresh,
      });
    }
    checkInvariants(model, real);
  }
  toString = () => `reserve(frame ${this.first}, ${this.frames} frames, offset ${this.offset})`;
}

class CheckCmd implements Cmd {
  constructor(readonly frame: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const f = this.frame;
    if (!model.inMap[f]) {
      expectError(() => real.checkFrame(f * P), Code.OUT_OF_RANGE, Errno.EFAULT, "address");
      return;
    }
    const check = real.checkFrame(f * P);
    const state = model.ram[f]
      ? [FrameState.FREE, FrameState.ALLOCATED, FrameState.RESERVED][model.state[f]]
      : FrameState.UNAVAILABLE;
    expect(check.state).toBe(state);
    expect(check.node).toBe(model.node[f]);
    if (state === FrameState.ALLOCATED) {
      const run = model.runs.get(model.headOf[f])!;
      expect([check.runAddress / P, check.runFrames, check.owner]).toEqual([run.head, run.count, run.owner]);
    }
  }
  toString = () => `checkFrame(${this.frame})`;
}

class ReleaseOwnerCmd implements Cmd {
  constructor(readonly owner: string) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const mine = [...model.runs.values()].filter((r) => r.owner === this.owner);
    expect(real.releaseOwner(this.owner)).toEqual({
      runs: mine.length,
      frames: mine.reduce((n, r) => n + r.count, 0),
    });
    for (const run of mine) model.release(run.head);
    checkInvariants(model, real);
  }
  toString = () => `releaseOwner(${this.owner})`;
}

const ownerArb = fc.constantFrom(...OWNERS);
const frameArb = fc.integer({ min: 0, max: FRAMES - 1 });

const commands = [
  fc.tuple(placementArb, ownerArb).map(([p, o]) => new AllocFrameCmd(p, o)),
  fc.tuple(
    fc.integer({ min: 1, max: 48 }),
    fc.constantFrom(1, 1, 2, 4, 16, 64),
    fc.boolean(),
    placementArb,
    ownerArb,
  ).map(([c, a, b, p, o]) => new AllocRunCmd(c, a, b, p, o)),
  fc.tuple(fc.integer({ min: 1, max: 60 }), placementArb, ownerArb).map(([c, p, o]) =>
    new AllocBulkCmd(c, p, o)
  ),
  fc.tuple(fc.nat(), frameArb).map(([pick, f]) => new FreeCmd(pick, f, "run")),
  fc.tuple(fc.nat(), frameArb).map(([pick, f]) => new FreeCmd(pick, f, "run")),
  fc.tuple(fc.nat(), frameArb).map(([pick, f]) => new FreeCmd(pick, f, "run")),
  fc.tuple(fc.nat(), frameArb, fc.constantFrom<FreeMode>("single", "count+1", "count-1", "unaligned"))
    .map(([pick, f, mode]) => new FreeCmd(pick, f, mode)),
  fc.tuple(frameArb, fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: P - 1 }))
    .map(([f, n, o]) => new ReserveCmd(f, n, o)),
  frameArb.map((f) => new CheckCmd(f)),
  ownerArb.map((o) => new ReleaseOwnerCmd(o)),
];

describe("FrameAllocator against a reference model", () => {
  it("agrees on every answer and keeps its invariants", () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 100, size: "max" }), (cmds) => {
        fc.modelRun(
          () => ({ model: new Model(), real: new FrameAllocator(normalizeMemoryMap(SMALL_MACHINE)) }),
          cmds,
        );
      }),
      { numRuns: 200 },
    );
  });

  it("returns to the initial state when everything is freed", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 30 }), fc.constantFrom(1, 2, 8), fc.boolean()), {
          maxLength: 40,
        }),
        (requests) => {
          const real = new FrameAllocator(normalizeMemoryMap(SMALL_MACHINE));
          const initial = real.statistics();
          const held: [number, number][] = [];
          for (const [count, alignment, bestFit] of requests) {
            try {
              const strategy = bestFit ? FitStrategy.BEST_FIT : FitStrategy.FIRST_FIT;
              held.push([real.allocFrames({ owner: "p", count, alignment, strategy }), count]);
            } catch (err) {
              expect((err as AstraError).code).toBe(Code.RESOURCE_EXHAUSTED);
            }
          }
          for (const [address, count] of held.reverse()) real.freeFrames(address, count);
          const final = real.statistics();
          expect(final.frames).toEqual(initial.frames);
          expect(final.orders).toEqual(initial.orders);
          expect(real.tags.size).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });
});
