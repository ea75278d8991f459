// Model-based test of the VMA set: random sequences of mmap, munmap, mprotect, mremap and brk run
// against the real set and against a brute-force model that keeps one record per page and
// re-derives Linux's answers (addresses chosen, errno, what ends up mapped) from the rules alone.
// After every step the set must describe exactly the model's pages and stay sorted,
// non-overlapping, page-aligned and fully merged.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AstraError, Errno } from "../../lib/errors.ts";
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  type MappedFile,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  vmasCompatible,
  VmaSet,
} from "../../services/vmm/vma.ts";

const P = 4096;
const WINDOW = 0x1000_0000 / P; // first page of the window the commands work in
const WINDOW_PAGES = 32;
const MMAP_BASE_PAGE = WINDOW + WINDOW_PAGES;
const MIN_PAGE = 0x10000 / P;
const LIMIT = 2 ** 32;
const LIMIT_PAGE = LIMIT / P;
const UNMAPPED_BASE_PAGE = LIMIT / 4 / P;
const BRK_START = (WINDOW + 8) * P;

function file(name: string): MappedFile {
  return {
    key: name,
    path: `/${name}`,
    deviceMajor: 8,
    deviceMinor: 1,
    inode: name.charCodeAt(0),
    readable: true,
    writable: true,
  };
}
const FILES = [file("a"), file("b")];

interface PageAttr {
  prot: number;
  shared: boolean;
  backing: string;
  /** Page index within the backing (file or shared object); 0 for private anonymous memory. */
  objectPage: number;
}

function compatible(a: PageAttr, b: PageAttr): boolean {
  return a.prot === b.prot && a.shared === b.shared && a.backing === b.backing &&
    (a.backing === "anon" || b.objectPage === a.objectPage + 1);
}

/** Continuation of a VMA's attributes `i` pages further on. */
function advance(attr: PageAttr, i: number): PageAttr {
  return attr.backing === "anon" ? attr : { ...attr, objectPage: attr.objectPage + i };
}

class Model {
  readonly pages = new Map<number, PageAttr>();
  nextObject = 1;
  brk = BRK_START;

  free(first: number, count: number): boolean {
    for (let p = first; p < first + count; p++) if (this.pages.has(p)) return false;
    return true;
  }

  unmap(first: number, count: number): void {
    for (let p = first; p < first + count; p++) this.pages.delete(p);
  }

  /** The VMA holding a page: the maximal run of compatible neighbours. */
  vmaOf(page: number): { start: number; end: number } | null {
    if (!this.pages.has(page)) return null;
    let start = page, end = page + 1;
    while (this.pages.has(start - 1) && compatible(this.pages.get(start - 1)!, this.pages.get(start)!)) {
      start--;
    }
    while (this.pages.has(end) && compatible(this.pages.get(end - 1)!, this.pages.get(end)!)) end++;
    return { start, end };
  }

  private sortedMapped(): number[] {
    return [...this.pages.keys()].sort((a, b) => a - b);
  }

  /** The highest [a, a + n) free in [low, high), or -1. */
  private highestFree(n: number, low: number, high: number): number {
    let gapEnd = high;
    const mapped = this.sortedMapped().filter((p) => p < high).reverse();
    for (const page of mapped) {
      if (page < low) break;
      if (gapEnd - (page + 1) >= n) return gapEnd - n;
      gapEnd = Math.min(gapEnd, page);
    }
    return gapEnd - low >= n ? gapEnd - n : -1;
  }

  /** The lowest [a, a + n) free in [low, high), or -1. */
  private lowestFree(n: number, low: number, high: number): number {
    let gapStart = low;
    for (const page of this.sortedMapped()) {
      if (page < low) continue;
      if (page - gapStart >= n) return gapStart;
      gapStart = page + 1;
    }
    return high - gapStart >= n ? gapStart : -1;
  }

  /** get_unmapped_area for non-fixed placements, in pages; -1 for ENOMEM. */
  place(hintPage: number, n: number): number {
    if (hintPage !== 0) {
      const a = Math.max(hintPage, MIN_PAGE);
      if (a + n <= LIMIT_PAGE && this.free(a, n)) return a;
    }
    const top = this.highestFree(n, MIN_PAGE, MMAP_BASE_PAGE);
    return top >= 0 ? top : this.lowestFree(n, UNMAPPED_BASE_PAGE, LIMIT_PAGE);
  }
}

interface Real {
  set: VmaSet;
}

type Outcome = number | Errno;
type Answer = { page: number } | { errno: Errno };

function errnoOf(error: unknown): Errno {
  expect(error).toBeInstanceOf(AstraError);
  return (error as AstraError).errno;
}

/** The real set's pages, with their attributes as the model records them. */
function realPages(set: VmaSet): Map<number, PageAttr> {
  const pages = new Map<number, PageAttr>();
  for (const vma of set.list()) {
    const backing = vma.backing.kind === "anonymous"
      ? "anon"
      : vma.backing.kind === "file"
      ? `file:${vma.backing.file.key}`
      : `shm:${vma.backing.object}`;
    for (let page = vma.start / P, i = 0; page < vma.end / P; page++, i++) {
      pages.set(page, {
        prot: vma.prot,
        shared: vma.shared,
        backing,
        objectPage: backing === "anon" ? 0 : vma.offset / P + i,
      });
    }
  }
  return pages;
}

function checkInvariants(model: Model, real: Real): void {
  const vmas = real.set.list();
  for (let i = 0; i < vmas.length; i++) {
    const vma = vmas[i];
    expect(vma.start % P).toBe(0);
    expect(vma.end % P).toBe(0);
    expect(vma.end).toBeGreaterThan(vma.start);
    if (i > 0) {
      expect(vma.start).toBeGreaterThanOrEqual(vmas[i - 1].end);
      expect(vmasCompatible(vmas[i - 1], vma)).toBe(false);
    }
  }
  const actual = realPages(real.set);
  expect(actual.size).toBe(model.pages.size);
  for (const [page, attr] of model.pages) {
    expect(actual.get(page), `page 0x${(page * P).toString(16)}`).toEqual(attr);
  }
  expect(real.set.programBreak).toBe(model.brk);
}

const protArb = fc.constantFrom(PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC, 0);
const kindArb = fc.oneof(
  fc.constant({ kind: "anon" as const }),
  fc.constant({ kind: "shared" as const }),
  fc.record({ kind: fc.constant("file" as const), file: fc.nat(1), offsetPage: fc.nat(6) }),
);
type Kind = { kind: "anon" } | { kind: "shared" } | { kind: "file"; file: number; offsetPage: number };
const windowPage = fc.nat(WINDOW_PAGES - 1);
const pages = fc.integer({ min: 1, max: 6 });

function requestFor(kind: Kind): { flags: number; file: MappedFile | null; offset: number } {
  if (kind.kind === "anon") return { flags: MAP_PRIVATE | MAP_ANONYMOUS, file: null, offset: 0 };
  if (kind.kind === "shared") return { flags: MAP_SHARED | MAP_ANONYMOUS, file: null, offset: 0 };
  return { flags: MAP_PRIVATE, file: FILES[kind.file], offset: kind.offsetPage * P };
}

function attrFor(model: Model, kind: Kind, prot: number): PageAttr {
  if (kind.kind === "anon") return { prot, shared: false, backing: "anon", objectPage: 0 };
  if (kind.kind === "shared") {
    return { prot, shared: true, backing: `shm:${model.nextObject++}`, objectPage: 0 };
  }
  return { prot, shared: false, backing: `file:${FILES[kind.file].key}`, objectPage: kind.offsetPage };
}

class MmapCommand implements fc.Command<Model, Real> {
  constructor(
    readonly page: number,
    readonly count: number,
    readonly prot: number,
    readonly kind: Kind,
    readonly placement: "fixed" | "noreplace" | "hint" | "anywhere",
  ) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const { flags, file, offset } = requestFor(this.kind);
    const extra = this.placement === "fixed"
      ? MAP_FIXED
      : this.placement === "noreplace"
      ? MAP_FIXED_NOREPLACE
      : 0;
    const address = this.placement === "anywhere" ? 0 : (WINDOW + this.page) * P;
    let actual: Outcome;
    try {
      actual = real.set.mmap({
        address,
        length: this.count * P - 7,
        prot: this.prot,
        flags: flags | extra,
        file,
        offset,
      }).address;
    } catch (error) {
      actual = errnoOf(error);
    }
    let expected: Outcome;
    let first: number;
    if (this.placement === "fixed" || this.placement === "noreplace") {
      first = WINDOW + this.page;
      expected = this.placement === "noreplace" && !model.free(first, this.count) ? Errno.EEXIST : first * P;
    } else {
      first = model.place(this.placement === "hint" ? WINDOW + this.page : 0, this.count);
      expected = first < 0 ? Errno.ENOMEM : first * P;
    }
    expect(actual).toBe(expected);
    if (expected === first * P) {
      model.unmap(first, this.count);
      const attr = attrFor(model, this.kind, this.prot);
      for (let i = 0; i < this.count; i++) model.pages.set(first + i, advance(attr, i));
    }
    checkInvariants(model, real);
  }
  toString = () =>
    `mmap(${this.placement}, +${this.page}, ${this.count}p, prot ${this.prot}, ${JSON.stringify(this.kind)})`;
}

class MunmapCommand implements fc.Command<Model, Real> {
  constructor(readonly page: number, readonly count: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    real.set.munmap((WINDOW + this.page) * P, this.count * P);
    model.unmap(WINDOW + this.page, this.count);
    checkInvariants(model, real);
  }
  toString = () => `munmap(+${this.page}, ${this.count}p)`;
}

class MprotectCommand implements fc.Command<Model, Real> {
  constructor(readonly page: number, readonly count: number, readonly prot: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const result = real.set.mprotect((WINDOW + this.page) * P, this.count * P, this.prot);
    let hole = false;
    for (let p = WINDOW + this.page; p < WINDOW + this.page + this.count; p++) {
      const attr = model.pages.get(p);
      if (!attr) {
        hole = true;
        break;
      }
      model.pages.set(p, { ...attr, prot: this.prot });
    }
    expect(result.error?.errno).toBe(hole ? Errno.ENOMEM : undefined);
    checkInvariants(model, real);
  }
  toString = () => `mprotect(+${this.page}, ${this.count}p, ${this.prot})`;
}

class MremapCommand implements fc.Command<Model, Real> {
  constructor(
    readonly page: number,
    readonly oldCount: number,
    readonly newCount: number,
    readonly mode: "none" | "maymove" | "fixed" | "dontunmap",
    readonly targetPage: number,
    /** Take the old range to the end of its VMA, the case where growing in place is possible. */
    readonly toEnd: boolean,
  ) {}
  check = () => true;

  run(model: Model, real: Real): void {
    const flags = {
      none: 0,
      maymove: MREMAP_MAYMOVE,
      fixed: MREMAP_MAYMOVE | MREMAP_FIXED,
      dontunmap: MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
    }[this.mode];
    const old = WINDOW + this.page;
    const vma = model.vmaOf(old);
    const oldCount = this.toEnd && vma ? vma.end - old : this.oldCount;
    const newCount = this.mode === "dontunmap" ? oldCount : this.newCount;
    const target = WINDOW + this.targetPage;
    const result = real.set.mremap(old * P, oldCount * P, newCount * P, flags, target * P);
    const expected = this.expect(model, old, oldCount, newCount, target);
    if ("errno" in expected) expect(result.error?.errno).toBe(expected.errno);
    else {expect({ address: result.address, error: result.error }).toEqual({
        address: expected.page * P,
        error: null,
      });}
    checkInvariants(model, real);
  }

  /** Linux's mremap on the model: the new first page, or the errno (the model keeps partial effects). */
  private expect(model: Model, old: number, oldCount: number, newCount: number, target: number): Answer {
    if (!model.pages.has(old)) return { errno: Errno.EFAULT };
    const fixed = this.mode === "fixed";
    if (fixed || this.mode === "dontunmap") {
      if (fixed) {
        if (old + oldCount > target && target + newCount > old) return { errno: Errno.EINVAL };
        model.unmap(target, newCount);
      }
      if (oldCount > newCount) {
        model.unmap(old + newCount, oldCount - newCount);
        oldCount = newCount;
      }
      const vma = model.vmaOf(old);
      if (!vma) return { errno: Errno.EFAULT };
      if (oldCount > vma.end - old) return { errno: Errno.EFAULT };
      const destination = fixed ? target : model.place(target, newCount);
      if (destination < 0) return { errno: Errno.ENOMEM };
      return this.move(model, old, oldCount, newCount, destination, this.mode === "dontunmap");
    }
    if (oldCount >= newCount) {
      model.unmap(old + newCount, oldCount - newCount);
      return { page: old };
    }
    const vma = model.vmaOf(old)!;
    if (oldCount > vma.end - old) return { errno: Errno.EFAULT };
    const delta = newCount - oldCount;
    if (old + oldCount === vma.end && vma.end + delta <= LIMIT_PAGE && model.free(vma.end, delta)) {
      const last = model.pages.get(vma.end - 1)!;
      for (let i = 0; i < delta; i++) model.pages.set(vma.end + i, advance(last, i + 1));
      return { page: old };
    }
    if (this.mode !== "maymove") return { errno: Errno.ENOMEM };
    const destination = model.place(0, newCount);
    if (destination < 0) return { errno: Errno.ENOMEM };
    return this.move(model, old, oldCount, newCount, destination, false);
  }

  private move(
    model: Model,
    old: number,
    oldCount: number,
    newCount: number,
    destination: number,
    keep: boolean,
  ): Answer {
    const first = model.pages.get(old)!;
    const moved = Array.from({ length: newCount }, (_, i) => advance(first, i));
    if (!keep) model.unmap(old, oldCount);
    moved.forEach((attr, i) => model.pages.set(destination + i, attr));
    return { page: destination };
  }

  toString = () =>
    `mremap(+${this.page}, ${
      this.toEnd ? "to end" : `${this.oldCount}p`
    } → ${this.newCount}p, ${this.mode}, +${this.targetPage})`;
}

class BrkCommand implements fc.Command<Model, Real> {
  constructor(readonly value: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const value = BRK_START - 2 * P + this.value;
    const actual = real.set.brk(value).brk;
    const oldBrk = Math.ceil(model.brk / P);
    const newBrk = Math.ceil(value / P);
    let expected = model.brk;
    if (value >= BRK_START) {
      if (newBrk === oldBrk) expected = value;
      else if (value <= model.brk) {
        let mapped = false;
        for (let p = newBrk; p < oldBrk; p++) mapped ||= model.pages.has(p);
        if (mapped) {
          model.unmap(newBrk, oldBrk - newBrk);
          expected = value;
        }
      } else if (model.free(oldBrk, newBrk - oldBrk + 1)) {
        for (let p = oldBrk; p < newBrk; p++) {
          model.pages.set(p, { prot: PROT_READ | PROT_WRITE, shared: false, backing: "anon", objectPage: 0 });
        }
        expected = value;
      }
    }
    model.brk = expected;
    expect(actual).toBe(expected);
    checkInvariants(model, real);
  }
  toString = () => `brk(start - 2p + ${this.value})`;
}

const commands = [
  fc.tuple(
    windowPage,
    pages,
    protArb,
    kindArb,
    fc.constantFrom("fixed", "noreplace", "hint", "anywhere") as fc.Arbitrary<
      "fixed" | "noreplace" | "hint" | "anywhere"
    >,
  ).map(([page, count, prot, kind, placement]) =>
    new MmapCommand(page, count, prot, kind as Kind, placement)
  ),
  fc.tuple(windowPage, pages).map(([page, count]) => new MunmapCommand(page, count)),
  fc.tuple(windowPage, pages, protArb).map(([page, count, prot]) => new MprotectCommand(page, count, prot)),
  fc.tuple(
    windowPage,
    pages,
    pages,
    fc.constantFrom("none", "maymove", "fixed", "dontunmap") as fc.Arbitrary<
      "none" | "maymove" | "fixed" | "dontunmap"
    >,
    windowPage,
    fc.boolean(),
  ).map(([page, oldCount, newCount, mode, target, toEnd]) =>
    new MremapCommand(page, oldCount, newCount, mode, target, toEnd)
  ),
  fc.integer({ min: 0, max: 24 * P }).map((value) => new BrkCommand(value)),
];

describe("VMA set against a page-granular model", () => {
  it("agrees on every answer and every page after every step", () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 60, size: "max" }), (cmds) => {
        let objects = 1;
        const set = new VmaSet({
          pageSize: P,
          minAddress: MIN_PAGE * P,
          limit: LIMIT,
          mmapBase: MMAP_BASE_PAGE * P,
          allocateObjectId: () => objects++,
        });
        set.setProgramBreak(BRK_START);
        fc.modelRun(() => ({ model: new Model(), real: { set } }), cmds);
      }),
      { numRuns: 250 },
    );
  });
});
