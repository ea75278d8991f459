// The VMA set, call by call: placement, splitting and merging, Linux's errno for each misuse,
// brk, the growing stack and its guard gap, fork flags, and the /proc/PID/maps text.
import { describe, expect, it } from "vitest";
import { AstraError, Errno } from "../../lib/errors.ts";
import {
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_WIPEONFORK,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  type MappedFile,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  userNumber,
  type Vma,
  type VmaObserver,
  VmaSet,
} from "../../services/vmm/vma.ts";

const P = 4096;
const LIMIT = 2 ** 47;
const MMAP_BASE = LIMIT - 128 * 1024 * 1024; // Linux's mmap_base for an 8 MiB stack limit
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const FIXED_ANON = ANON | MAP_FIXED;

const busybox: MappedFile = {
  key: "8:1:1048602",
  path: "/bin/busybox",
  deviceMajor: 8,
  deviceMinor: 1,
  inode: 1048602,
  readable: true,
  writable: false,
};

function newSet(
  observer: VmaObserver | null = null,
  extra: Partial<ConstructorParameters<typeof VmaSet>[0]> = {},
) {
  let objects = 100;
  return new VmaSet({
    pageSize: P,
    minAddress: 0x10000,
    limit: LIMIT,
    allocateObjectId: () => objects++,
    ...extra,
  }, observer);
}

function errnoOf(action: () => unknown): Errno | "none" {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(AstraError);
    return (error as AstraError).errno;
  }
  return "none";
}

function ranges(set: VmaSet): Array<[number, number, number]> {
  return set.list().map((v) => [v.start, v.end, v.prot]);
}

describe("mmap placement", () => {
  it("places top-down from mmap_base and merges compatible neighbours", () => {
    const set = newSet();
    expect(set.mmapBase).toBe(MMAP_BASE);
    const a = set.mmap({ address: 0, length: 3 * P, prot: RW, flags: ANON }).address;
    expect(a).toBe(MMAP_BASE - 3 * P);
    const b = set.mmap({ address: 0, length: 100, prot: RW, flags: ANON }).address;
    expect(b).toBe(MMAP_BASE - 4 * P);
    expect(ranges(set)).toEqual([[MMAP_BASE - 4 * P, MMAP_BASE, RW]]);
    set.mmap({ address: 0, length: P, prot: PROT_READ, flags: ANON });
    expect(set.count).toBe(2);
  });

  it("takes a free hint (rounded down), and ignores one that overlaps", () => {
    const set = newSet();
    expect(set.mmap({ address: 0x4000_0123, length: P, prot: RW, flags: ANON }).address).toBe(0x4000_0000);
    expect(set.mmap({ address: 0x4000_0000, length: P, prot: RW, flags: ANON }).address).toBe(MMAP_BASE - P);
    // A hint below mmap_min_addr means mmap_min_addr.
    expect(set.mmap({ address: 0x1000, length: P, prot: RW, flags: ANON }).address).toBe(0x10000);
  });

  it("falls back to bottom-up placement from TASK_UNMAPPED_BASE when nothing fits below mmap_base", () => {
    const set = newSet(null, { mmapBase: 0x20000 });
    expect(set.mmap({ address: 0, length: 0x20000, prot: RW, flags: ANON }).address).toBe(LIMIT / 4);
  });

  it("replaces what MAP_FIXED overlaps and reports the replaced parts", () => {
    const set = newSet();
    const base = 0x1000_0000;
    set.mmap({ address: base, length: 4 * P, prot: RW, flags: FIXED_ANON });
    const { removed } = set.mmap({ address: base + P, length: 2 * P, prot: PROT_READ, flags: FIXED_ANON });
    expect(removed.map((v) => [v.start, v.end])).toEqual([[base + P, base + 3 * P]]);
    expect(ranges(set)).toEqual([[base, base + P, RW], [base + P, base + 3 * P, PROT_READ], [
      base + 3 * P,
      base + 4 * P,
      RW,
    ]]);
  });

  it("refuses what Linux refuses, with Linux's errno", () => {
    const set = newSet();
    set.mmap({ address: 0x1000_0000, length: P, prot: RW, flags: FIXED_ANON });
    expect(
      errnoOf(() =>
        set.mmap({ address: 0x1000_0000, length: P, prot: RW, flags: ANON | MAP_FIXED_NOREPLACE })
      ),
    ).toBe(
      Errno.EEXIST,
    );
    expect(set.count).toBe(1);
    expect(errnoOf(() => set.mmap({ address: 0, length: 0, prot: RW, flags: ANON }))).toBe(Errno.EINVAL);
    expect(errnoOf(() => set.mmap({ address: 0x1000_0800, length: P, prot: RW, flags: FIXED_ANON }))).toBe(
      Errno.EINVAL,
    );
    expect(errnoOf(() => set.mmap({ address: 0x1000, length: P, prot: RW, flags: FIXED_ANON }))).toBe(
      Errno.EPERM,
    );
    expect(errnoOf(() => set.mmap({ address: LIMIT - P, length: 2 * P, prot: RW, flags: FIXED_ANON }))).toBe(
      Errno.ENOMEM,
    );
    expect(errnoOf(() => set.mmap({ address: 0, length: LIMIT, prot: RW, flags: ANON }))).toBe(Errno.ENOMEM);
    expect(errnoOf(() => set.mmap({ address: 0, length: P, prot: RW, flags: MAP_ANONYMOUS }))).toBe(
      Errno.EINVAL,
    );
    expect(errnoOf(() => set.mmap({ address: 0, length: P, prot: 0x10, flags: ANON }))).toBe(Errno.EINVAL); // PROT_SAO
    expect(errnoOf(() => set.mmap({ address: 0, length: P, prot: RW, flags: MAP_PRIVATE }))).toBe(
      Errno.EBADF,
    );
    expect(
      errnoOf(() =>
        set.mmap({ address: 0, length: P, prot: RW, flags: MAP_PRIVATE, file: busybox, offset: 100 })
      ),
    ).toBe(
      Errno.EINVAL,
    );
    expect(errnoOf(() => set.mmap({ address: 0, length: P, prot: RW, flags: MAP_SHARED, file: busybox })))
      .toBe(Errno.EACCES);
    expect(
      errnoOf(() =>
        set.mmap({ address: 0, length: P, prot: RW, flags: MAP_SHARED_VALIDATE | 0x200, file: busybox })
      ),
    )
      .toBe(Errno.ENOTSUP);
    expect(
      errnoOf(() =>
        set.mmap({ address: 0, length: P, prot: RW, flags: MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN })
      ),
    )
      .toBe(Errno.EINVAL);
    // Read-only shared mappings of a read-only file are fine; they may never become writable.
    const shared =
      set.mmap({ address: 0, length: P, prot: PROT_READ, flags: MAP_SHARED, file: busybox }).address;
    expect(set.find(shared)?.mayWrite).toBe(false);
    expect(set.mprotect(shared, P, RW).error?.errno).toBe(Errno.EACCES);
  });

  it("maps huge system-call arguments to values that fail the same checks", () => {
    expect(userNumber(-1n)).toBe(Number.MAX_SAFE_INTEGER);
    expect(userNumber(0x7fff_0000n)).toBe(0x7fff_0000);
    const set = newSet();
    expect(errnoOf(() => set.mmap({ address: 0, length: userNumber(-1n), prot: RW, flags: ANON }))).toBe(
      Errno.ENOMEM,
    );
    expect(errnoOf(() => set.munmap(0x1000_0000, userNumber(-4096n)))).toBe(Errno.EINVAL);
  });
});

describe("munmap and mprotect", () => {
  const base = 0x2000_0000;

  it("munmap splits a mapping and tolerates holes", () => {
    const set = newSet();
    set.mmap({ address: base, length: 5 * P, prot: RW, flags: FIXED_ANON });
    expect(set.munmap(base + P, 2 * P).map((v) => [v.start, v.end])).toEqual([[base + P, base + 3 * P]]);
    expect(ranges(set)).toEqual([[base, base + P, RW], [base + 3 * P, base + 5 * P, RW]]);
    expect(set.munmap(base, 5 * P).length).toBe(2);
    expect(set.count).toBe(0);
    expect(errnoOf(() => set.munmap(base + 1, P))).toBe(Errno.EINVAL);
    expect(errnoOf(() => set.munmap(base, 0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => set.munmap(LIMIT, P))).toBe(Errno.EINVAL);
  });

  it("mprotect splits and merges back", () => {
    const set = newSet();
    set.mmap({ address: base, length: 4 * P, prot: RW, flags: FIXED_ANON });
    expect(set.mprotect(base + P, 2 * P, PROT_READ)).toEqual({
      changed: [{ start: base + P, end: base + 3 * P }],
      error: null,
    });
    expect(ranges(set)).toEqual([[base, base + P, RW], [base + P, base + 3 * P, PROT_READ], [
      base + 3 * P,
      base + 4 * P,
      RW,
    ]]);
    set.mprotect(base + P, 2 * P, RW);
    expect(ranges(set)).toEqual([[base, base + 4 * P, RW]]);
    expect(set.mprotect(base, 0, PROT_NONE)).toEqual({ changed: [], error: null });
  });

  it("mprotect applies up to the first hole, then fails with ENOMEM", () => {
    const set = newSet();
    set.mmap({ address: base, length: P, prot: RW, flags: FIXED_ANON });
    set.mmap({ address: base + 2 * P, length: P, prot: RW, flags: FIXED_ANON });
    const result = set.mprotect(base, 3 * P, PROT_READ);
    expect(result.error?.errno).toBe(Errno.ENOMEM);
    expect(result.changed).toEqual([{ start: base, end: base + P }]);
    expect(ranges(set)).toEqual([[base, base + P, PROT_READ], [base + 2 * P, base + 3 * P, RW]]);
    // A hole at the start changes nothing.
    const atHole = set.mprotect(base + P, 2 * P, PROT_NONE);
    expect(atHole).toMatchObject({ changed: [] });
    expect(atHole.error?.errno).toBe(Errno.ENOMEM);
    expect(set.find(base + 2 * P)?.prot).toBe(RW);
    expect(set.mprotect(base + 1, P, PROT_READ).error?.errno).toBe(Errno.EINVAL);
  });

  it("PROT_GROWSDOWN extends the change to the start of a stack", () => {
    const set = newSet();
    const top = 0x7fff_0000_0000;
    set.mmap({ address: top - 16 * P, length: 16 * P, prot: RW, flags: FIXED_ANON | MAP_GROWSDOWN });
    expect(set.mprotect(top - 2 * P, P, RW | PROT_EXEC | PROT_GROWSDOWN).changed).toEqual([
      { start: top - 16 * P, end: top - P },
    ]);
    set.mmap({ address: base, length: P, prot: RW, flags: FIXED_ANON });
    expect(set.mprotect(base, P, RW | PROT_GROWSDOWN).error?.errno).toBe(Errno.EINVAL);
  });
});

describe("mremap", () => {
  const base = 0x3000_0000;

  it("grows in place when the space above is free", () => {
    const set = newSet();
    set.mmap({ address: base, length: 2 * P, prot: RW, flags: FIXED_ANON });
    expect(set.mremap(base, 2 * P, 4 * P, 0, 0)).toEqual({
      address: base,
      removed: [],
      moved: null,
      error: null,
    });
    expect(ranges(set)).toEqual([[base, base + 4 * P, RW]]);
  });

  it("moves with MREMAP_MAYMOVE when blocked, and fails with ENOMEM without it", () => {
    const set = newSet();
    set.mmap({ address: base, length: 2 * P, prot: RW, flags: FIXED_ANON });
    set.mmap({ address: base + 2 * P, length: P, prot: PROT_READ, flags: FIXED_ANON });
    expect(set.mremap(base, 2 * P, 4 * P, 0, 0).error?.errno).toBe(Errno.ENOMEM);
    const moved = set.mremap(base, 2 * P, 4 * P, MREMAP_MAYMOVE, 0);
    expect(moved).toMatchObject({
      address: MMAP_BASE - 4 * P,
      moved: { from: base, to: MMAP_BASE - 4 * P, length: 2 * P },
    });
    expect(ranges(set)).toEqual([[base + 2 * P, base + 3 * P, PROT_READ], [
      MMAP_BASE - 4 * P,
      MMAP_BASE,
      RW,
    ]]);
  });

  it("shrinks by unmapping the tail", () => {
    const set = newSet();
    set.mmap({ address: base, length: 4 * P, prot: RW, flags: FIXED_ANON });
    const result = set.mremap(base, 4 * P, P, 0, 0);
    expect(result.address).toBe(base);
    expect(result.removed.map((v) => [v.start, v.end])).toEqual([[base + P, base + 4 * P]]);
  });

  it("MREMAP_FIXED unmaps the destination first; MREMAP_DONTUNMAP keeps the source", () => {
    const set = newSet();
    const target = 0x4000_0000;
    set.mmap({ address: base, length: 2 * P, prot: RW, flags: FIXED_ANON });
    set.mmap({ address: target, length: 3 * P, prot: PROT_READ, flags: FIXED_ANON });
    const fixed = set.mremap(base, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    expect(fixed.address).toBe(target);
    expect(fixed.removed.map((v) => [v.start, v.end])).toEqual([[target, target + 2 * P]]);
    expect(ranges(set)).toEqual([[target, target + 2 * P, RW], [target + 2 * P, target + 3 * P, PROT_READ]]);

    const kept = set.mremap(target, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
    expect(kept.moved).toEqual({ from: target, to: kept.address, length: 2 * P });
    expect(set.find(target)?.prot).toBe(RW);
    expect(set.find(kept.address)?.prot).toBe(RW);
  });

  it("duplicates a shared mapping when the old size is zero", () => {
    const set = newSet();
    const shared =
      set.mmap({ address: 0, length: 2 * P, prot: RW, flags: MAP_SHARED | MAP_ANONYMOUS }).address;
    const copy = set.mremap(shared, 0, 2 * P, MREMAP_MAYMOVE, 0);
    expect(copy.moved).toBeNull();
    expect(set.find(copy.address)?.backing).toEqual(set.find(shared)?.backing);
    const priv = set.mmap({ address: base, length: P, prot: RW, flags: FIXED_ANON }).address;
    expect(set.mremap(priv, 0, P, MREMAP_MAYMOVE, 0).error?.errno).toBe(Errno.EINVAL);
  });

  it("refuses what Linux refuses", () => {
    const set = newSet();
    set.mmap({ address: base, length: 2 * P, prot: RW, flags: FIXED_ANON });
    set.mmap({ address: base + 2 * P, length: P, prot: PROT_READ, flags: FIXED_ANON });
    const errno = (...args: Parameters<VmaSet["mremap"]>) => set.mremap(...args).error?.errno;
    expect(errno(base + 8 * P, P, 2 * P, MREMAP_MAYMOVE, 0)).toBe(Errno.EFAULT);
    expect(errno(base, 3 * P, 4 * P, MREMAP_MAYMOVE, 0)).toBe(Errno.EFAULT); // spans two mappings
    expect(errno(base, P, 2 * P, MREMAP_FIXED, 0x5000_0000)).toBe(Errno.EINVAL);
    expect(errno(base, P, 2 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0)).toBe(Errno.EINVAL);
    expect(errno(base + 1, P, 2 * P, MREMAP_MAYMOVE, 0)).toBe(Errno.EINVAL);
    expect(errno(base, P, 0, MREMAP_MAYMOVE, 0)).toBe(Errno.EINVAL);
    expect(errno(base, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, base + P)).toBe(Errno.EINVAL); // overlap
    expect(errno(base, P, P, 8, 0)).toBe(Errno.EINVAL);
    expect(ranges(set)).toEqual([[base, base + 2 * P, RW], [base + 2 * P, base + 3 * P, PROT_READ]]);
  });
});

describe("madvise", () => {
  const base = 0x5000_0000;

  it("reports the pages MADV_DONTNEED drops, and ENOMEM for a hole after applying to the rest", () => {
    const set = newSet();
    set.mmap({ address: base, length: 2 * P, prot: RW, flags: FIXED_ANON });
    set.mmap({ address: base + 3 * P, length: P, prot: RW, flags: FIXED_ANON });
    const result = set.madvise(base, 4 * P, MADV_DONTNEED);
    expect(result.drop).toEqual([{ start: base, end: base + 2 * P }, {
      start: base + 3 * P,
      end: base + 4 * P,
    }]);
    expect(result.error?.errno).toBe(Errno.ENOMEM);
    expect(set.madvise(base, P, 12).error?.errno).toBe(Errno.EINVAL); // MADV_MERGEABLE: no KSM
    expect(set.madvise(base + 1, P, MADV_DONTNEED).error?.errno).toBe(Errno.EINVAL);
  });

  it("refuses MADV_FREE and MADV_WIPEONFORK outside private anonymous memory", () => {
    const set = newSet();
    const file =
      set.mmap({ address: 0, length: P, prot: PROT_READ, flags: MAP_PRIVATE, file: busybox }).address;
    expect(set.madvise(file, P, MADV_FREE).error?.errno).toBe(Errno.EINVAL);
    expect(set.madvise(file, P, MADV_WIPEONFORK).error?.errno).toBe(Errno.EINVAL);
  });

  it("sets fork flags on exactly the advised pages, and fork honours them", () => {
    const set = newSet();
    set.mmap({ address: base, length: 4 * P, prot: RW, flags: FIXED_ANON });
    set.madvise(base + P, P, MADV_DONTFORK);
    set.madvise(base + 2 * P, P, MADV_WIPEONFORK);
    expect(set.list().map((v) => [v.start, v.dontFork, v.wipeOnFork])).toEqual([
      [base, false, false],
      [base + P, true, false],
      [base + 2 * P, false, true],
      [base + 3 * P, false, false],
    ]);
    const child = set.fork(null);
    expect(child.list().map((v) => v.start)).toEqual([base, base + 2 * P, base + 3 * P]);
  });
});

describe("brk", () => {
  const start = 0x1004_0000;

  it("grows and shrinks the heap and returns the unaligned value asked for", () => {
    const set = newSet();
    set.setProgramBreak(start);
    expect(set.brk(0).brk).toBe(start);
    expect(set.brk(start + 0x1800).brk).toBe(start + 0x1800);
    expect(ranges(set)).toEqual([[start, start + 2 * P, RW]]);
    expect(set.brk(start + 0x1900).brk).toBe(start + 0x1900); // same page
    const shrink = set.brk(start + 0x800);
    expect(shrink.brk).toBe(start + 0x800);
    expect(shrink.removed.map((v) => [v.start, v.end])).toEqual([[start + P, start + 2 * P]]);
    expect(set.brk(start - P).brk).toBe(start + 0x800); // below the start: unchanged
  });

  it("never grows into another mapping: a page must stay free below it", () => {
    const set = newSet();
    set.setProgramBreak(start);
    set.mmap({ address: start + 4 * P, length: P, prot: PROT_READ, flags: FIXED_ANON });
    expect(set.brk(start + 3 * P + 1).brk).toBe(start);
    expect(set.brk(start + 3 * P).brk).toBe(start + 3 * P);
    expect(ranges(set)).toEqual([[start, start + 3 * P, RW], [start + 4 * P, start + 5 * P, PROT_READ]]);
  });

  it("stops at RLIMIT_DATA", () => {
    const set = newSet(null, { dataLimit: 4 * P });
    set.setProgramBreak(start, 2 * P);
    expect(set.brk(start + 3 * P).brk).toBe(start);
    expect(set.brk(start + 2 * P).brk).toBe(start + 2 * P);
  });
});

describe("the stack", () => {
  const top = 0x7fff_ffff_0000;
  const gap = 256 * P;

  function withStack(extra: Partial<ConstructorParameters<typeof VmaSet>[0]> = {}) {
    const set = newSet(null, extra);
    set.mmap({ address: top - 32 * P, length: 32 * P, prot: RW, flags: FIXED_ANON | MAP_GROWSDOWN });
    return set;
  }

  it("grows down to a faulting address within RLIMIT_STACK", () => {
    const set = withStack();
    expect(set.growStack(top - 40 * P + 8)).toBe(true);
    expect(set.find(top - 40 * P)?.start).toBe(top - 40 * P);
    expect(set.count).toBe(1);
    // 8 MiB is the limit: a fault further down is refused.
    expect(set.growStack(top - 8 * 1024 * 1024 - P)).toBe(false);
    expect(set.growStack(top - 8 * 1024 * 1024)).toBe(true);
  });

  it("refuses to grow within the guard gap of an accessible mapping below, but not a PROT_NONE one", () => {
    const set = withStack();
    const stackStart = top - 32 * P;
    // A mapping ending 7 pages below the guard gap: the stack may grow to 7 pages below its start.
    const belowEnd = stackStart - gap - 7 * P;
    set.mmap({ address: belowEnd - P, length: P, prot: PROT_READ, flags: FIXED_ANON });
    expect(set.growStack(stackStart - 8 * P)).toBe(false);
    expect(set.growStack(stackStart - 7 * P)).toBe(true);
    expect(set.find(stackStart - 7 * P)?.growsDown).toBe(true);
    set.mprotect(belowEnd - P, P, PROT_NONE);
    expect(set.growStack(belowEnd)).toBe(true);
  });

  it("keeps mmap placement out of the guard gap below the stack", () => {
    const set = withStack({ mmapBase: LIMIT });
    const stackStart = top - 32 * P;
    // mmap_base above the stack: one page still fits above it, 16 pages do not and end up a
    // guard gap below it.
    expect(set.mmap({ address: 0, length: P, prot: RW, flags: ANON }).address).toBe(LIMIT - P);
    expect(set.mmap({ address: 0, length: 16 * P, prot: RW, flags: ANON }).address).toBe(
      stackStart - gap - 16 * P,
    );
    // A hint inside the gap is not taken.
    expect(set.mmap({ address: stackStart - P, length: P, prot: RW, flags: ANON }).address).not.toBe(
      stackStart - P,
    );
  });
});

describe("observer and fork", () => {
  it("sees every piece attached and detached, so counts per object stay exact", () => {
    const counts = new Map<string, number>();
    const key = (v: Vma) => (v.backing.kind === "shared-memory" ? `shm:${v.backing.object}` : v.backing.kind);
    const observer: VmaObserver = {
      attach: (v) => counts.set(key(v), (counts.get(key(v)) ?? 0) + 1),
      detach: (v) => counts.set(key(v), (counts.get(key(v)) ?? 0) - 1),
    };
    const set = newSet(observer);
    const shared =
      set.mmap({ address: 0, length: 4 * P, prot: RW, flags: MAP_SHARED | MAP_ANONYMOUS }).address;
    const object = `shm:${(set.find(shared)!.backing as { object: number }).object}`;
    set.mprotect(shared + P, P, PROT_READ); // three pieces
    expect(counts.get(object)).toBe(3);
    set.mprotect(shared + P, P, RW); // merged back
    expect(counts.get(object)).toBe(1);
    const child = set.fork(observer);
    expect(counts.get(object)).toBe(2);
    set.munmap(shared, 4 * P);
    child.clear();
    expect(counts.get(object)).toBe(0);
  });
});

describe("/proc/PID/maps", () => {
  it("prints each mapping as Linux does, naming the file, the heap and the stack", () => {
    const set = newSet();
    set.mmap({
      address: 0x1000_0000,
      length: 0x2000,
      prot: PROT_READ | PROT_EXEC,
      flags: MAP_PRIVATE | MAP_FIXED,
      file: busybox,
    });
    set.mmap({
      address: 0x1002_0000,
      length: 0x1000,
      prot: RW,
      flags: MAP_PRIVATE | MAP_FIXED,
      file: busybox,
      offset: 0x10000,
    });
    set.setProgramBreak(0x1004_0000);
    set.brk(0x1004_2000);
    set.mmap({ address: 0x7fff_f7ff_0000, length: 0x1000, prot: RW, flags: FIXED_ANON });
    set.mmap({ address: 0x7fff_fffd_e000, length: 0x21000, prot: RW, flags: FIXED_ANON | MAP_GROWSDOWN });
    set.setStartStack(0x7fff_ffff_e000);
    expect(set.maps()).toBe(
      "10000000-10002000 r-xp 00000000 08:01 1048602                            /bin/busybox\n" +
        "10020000-10021000 rw-p 00010000 08:01 1048602                            /bin/busybox\n" +
        "10040000-10042000 rw-p 00000000 00:00 0                                  [heap]\n" +
        "7ffff7ff0000-7ffff7ff1000 rw-p 00000000 00:00 0 \n" +
        "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]\n",
    );
  });
});
