// Address spaces end to end: accesses go through the machine's MMU and the hashed page table in
// guest memory; faults go to the address space, whose decision (map, copy, grow, signal) is then
// visible in what the next access reads.
import { beforeEach, describe, expect, it } from "vitest";
import { AstraError, Errno } from "../../lib/errors.ts";
import {
  ACCESS_READ,
  HPTES_PER_GROUP,
  PAGE_SHIFT_4K,
  primaryHash,
  ptegIndex,
  SEGMENT_256M,
  userPp,
} from "../../lib/ppc/hpt.ts";
import { TRANSLATION_FAULT } from "../../services/machine/mmu.ts";
import type { ElfLoadPlan } from "../../services/sched/elf.ts";
import { BUS_ADRERR, SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGSEGV } from "../../services/sched/signals.ts";
import {
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_MAYMOVE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
} from "../../services/vmm/vma.ts";
import { P, pattern, TestMachine } from "./env.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const BASE = 0x1000_0000;

let machine: TestMachine;

beforeEach(() => {
  machine = new TestMachine();
});

async function errnoOf(promise: Promise<unknown>): Promise<Errno | "none"> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AstraError);
    return (error as AstraError).errno;
  }
  return "none";
}

describe("demand paging", () => {
  it("gives the first touch of an anonymous page a zeroed frame, and later touches nothing new", async () => {
    const space = machine.vmm.createAddressSpace();
    await space.mmap(BASE, 4 * P, RW, ANON | MAP_FIXED, null, 0);
    expect(machine.frames.live.size).toBe(0);
    expect(await machine.load(space, BASE + P + 17)).toBe(0); // the pool's frames are full of 0xa5
    expect(machine.frames.live.size).toBe(1);
    expect(await machine.store(space, BASE + P + 17, 42)).toBeNull();
    expect(await machine.load(space, BASE + P + 17)).toBe(42);
    expect(machine.frames.live.size).toBe(1);
    expect(space.pageInfo(BASE + P)).toMatchObject({
      accessed: true,
      dirty: true,
      copyOnWrite: false,
      shared: false,
    });
    expect(space.physicalAddress(BASE + P + 17)).toBe([...machine.frames.live][0] + 17);
    expect(space.physicalAddress(BASE)).toBeNull();
  });

  it("fills a private file mapping from the file, zeroes the tail of the last page, SIGBUS beyond", async () => {
    const bytes = pattern(6000);
    const file = machine.files.add("data", bytes);
    const space = machine.vmm.createAddressSpace();
    const at = await space.mmap(0, 3 * P, RW, MAP_PRIVATE, file, 0);
    expect(await machine.load(space, at)).toBe(bytes[0]);
    expect(await machine.load(space, at + 5999)).toBe(bytes[5999]);
    expect(await machine.load(space, at + 6000)).toBe(0);
    expect(await machine.load(space, at + 2 * P + 5)).toEqual({
      kind: "signal",
      signal: SIGBUS,
      code: BUS_ADRERR,
      address: at + 2 * P + 5,
    });
    // A store to a private mapping stays private.
    await machine.store(space, at + 3, 0);
    expect(machine.files.contents.get("data")![3]).toBe(bytes[3]);
    expect(await machine.load(space, at + 3)).toBe(0);
  });

  it("maps a file at an offset and prefaults MAP_POPULATE mappings", async () => {
    const bytes = pattern(4 * P, 3);
    const file = machine.files.add("lib", bytes);
    const space = machine.vmm.createAddressSpace();
    const at = await space.mmap(0, 2 * P, PROT_READ, MAP_PRIVATE | MAP_POPULATE, file, 2 * P);
    expect(space.residentPages).toBe(2);
    // With the SLB preloaded (a context switch does that), the access needs no fault at all: the
    // walk finds the entry MAP_POPULATE made.
    for (const segment of space.segments()) machine.mmu.installSegment(space.context, segment);
    const faults = machine.faults;
    expect(await machine.load(space, at + P + 1)).toBe(bytes[3 * P + 1]);
    expect(machine.faults).toBe(faults);
  });
});

describe("signals", () => {
  it("answers SEGV_MAPERR where nothing is mapped and SEGV_ACCERR where the access is not allowed", async () => {
    const space = machine.vmm.createAddressSpace();
    await space.mmap(BASE, P, PROT_READ, ANON | MAP_FIXED, null, 0);
    await space.mmap(BASE + P, P, PROT_READ | PROT_EXEC, ANON | MAP_FIXED, null, 0);
    expect(await machine.load(space, BASE + 2 * P)).toEqual({
      kind: "signal",
      signal: SIGSEGV,
      code: SEGV_MAPERR,
      address: BASE + 2 * P,
    });
    expect(await machine.store(space, BASE + 8, 1)).toEqual({
      kind: "signal",
      signal: SIGSEGV,
      code: SEGV_ACCERR,
      address: BASE + 8,
    });
    expect(await machine.fetch(space, BASE)).toMatchObject({ signal: SIGSEGV, code: SEGV_ACCERR });
    expect(typeof await machine.fetch(space, BASE + P)).toBe("number");
    expect(await machine.load(space, 2 ** 47 + 8)).toMatchObject({ signal: SIGSEGV, code: SEGV_MAPERR });
  });

  it("takes write access away from mapped pages on mprotect (table updated, TLB shot down)", async () => {
    const space = machine.vmm.createAddressSpace();
    await space.mmap(BASE, 2 * P, RW, ANON | MAP_FIXED, null, 0);
    await machine.store(space, BASE, 7);
    await space.mprotect(BASE, P, PROT_READ);
    expect(await machine.store(space, BASE, 8)).toMatchObject({ signal: SIGSEGV, code: SEGV_ACCERR });
    expect(await machine.load(space, BASE)).toBe(7);
    await space.mprotect(BASE, P, 0);
    expect(machine.mmu.translate(space.context, BASE, ACCESS_READ)).toBe(TRANSLATION_FAULT);
    expect(await machine.load(space, BASE)).toMatchObject({ signal: SIGSEGV, code: SEGV_ACCERR });
    await space.mprotect(BASE, P, RW);
    expect(await machine.load(space, BASE)).toBe(7);
    expect(await errnoOf(space.mprotect(BASE, 4 * P, PROT_READ))).toBe(Errno.ENOMEM);
  });
});

describe("the stack", () => {
  const top = 0x7fff_ffff_0000;

  it("holds the initial bytes and grows down on faults, within RLIMIT_STACK", async () => {
    const space = machine.vmm.createAddressSpace({ stackLimit: 1024 * 1024 });
    const bytes = pattern(0x1230);
    const sp = top - bytes.length;
    await space.setupStack(top, sp, bytes);
    expect(await machine.load(space, sp)).toBe(bytes[0]);
    expect(await machine.load(space, top - 1)).toBe(bytes[bytes.length - 1]);
    const initialStart = space.vmas.find(sp)!.start;
    expect(initialStart).toBe(top - 2 * P - 128 * 1024);
    expect(await machine.store(space, initialStart - 3 * P, 1)).toBeNull();
    expect(space.vmas.find(initialStart - 3 * P)?.start).toBe(initialStart - 3 * P);
    expect(await machine.store(space, top - 1024 * 1024 - 8, 1)).toMatchObject({
      signal: SIGSEGV,
      code: SEGV_MAPERR,
    });
    expect(space.maps()).toContain("[stack]");
  });
});

describe("fork", () => {
  it("shares private pages copy-on-write: a store on either side is invisible to the other", async () => {
    const parent = machine.vmm.createAddressSpace();
    await parent.mmap(BASE, 2 * P, RW, ANON | MAP_FIXED, null, 0);
    await machine.store(parent, BASE, 0x41);
    const child = await parent.fork();
    expect(child.context).not.toBe(parent.context);
    expect(child.physicalAddress(BASE)).toBe(parent.physicalAddress(BASE));
    expect(parent.pageInfo(BASE)?.copyOnWrite).toBe(true);
    expect(await machine.load(child, BASE)).toBe(0x41);

    expect(await machine.store(child, BASE, 0x42)).toBeNull();
    expect(child.physicalAddress(BASE)).not.toBe(parent.physicalAddress(BASE));
    expect(await machine.load(child, BASE)).toBe(0x42);
    expect(await machine.load(parent, BASE)).toBe(0x41);

    // The parent's frame is its own again: its store needs no copy.
    const frame = parent.physicalAddress(BASE);
    const allocations = machine.frames.allocations;
    expect(await machine.store(parent, BASE, 0x43)).toBeNull();
    expect(parent.physicalAddress(BASE)).toBe(frame);
    expect(machine.frames.allocations).toBe(allocations);
    expect(await machine.load(child, BASE)).toBe(0x42);
  });

  it("makes the parent copy too when it writes first", async () => {
    const parent = machine.vmm.createAddressSpace();
    await parent.mmap(BASE, P, RW, ANON | MAP_FIXED, null, 0);
    await machine.store(parent, BASE, 1);
    const child = await parent.fork();
    await machine.store(parent, BASE, 2);
    expect(await machine.load(child, BASE)).toBe(1);
    expect(await machine.load(parent, BASE)).toBe(2);
  });

  it("shares MAP_SHARED memory: the child's store shows in the parent", async () => {
    const parent = machine.vmm.createAddressSpace();
    const at = await parent.mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS, null, 0);
    await machine.store(parent, at, 5);
    const child = await parent.fork();
    await machine.store(child, at + 1, 6);
    expect(await machine.load(parent, at + 1)).toBe(6);
    expect(parent.physicalAddress(at)).toBe(child.physicalAddress(at));
  });
});

describe("destroy", () => {
  it("frees every frame exactly once, however pages were shared", async () => {
    const file = machine.files.add("shared", pattern(3 * P), true);
    const parent = machine.vmm.createAddressSpace();
    await parent.mmap(BASE, 4 * P, RW, ANON | MAP_FIXED, null, 0);
    const shm = await parent.mmap(0, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS, null, 0);
    const fileMap = await parent.mmap(0, 3 * P, RW, MAP_SHARED, file, 0);
    for (let i = 0; i < 4; i++) await machine.store(parent, BASE + i * P, i);
    await machine.store(parent, shm, 9);
    await machine.store(parent, fileMap + P, 9);
    const child = await parent.fork();
    await machine.store(child, BASE + P, 77);
    await machine.store(child, shm + P, 3);
    const grandchild = await child.fork();
    await grandchild.mremap(BASE, 4 * P, 8 * P, MREMAP_MAYMOVE, 0);
    expect(machine.frames.live.size).toBeGreaterThan(0);

    await parent.destroy();
    await grandchild.destroy();
    expect(machine.frames.live.size).toBeGreaterThan(0);
    await child.destroy();
    machine.expectAllFramesFree();
    expect(machine.vmm.addressSpaceCount).toBe(0);
    expect(machine.vmm.sharedMemory.size).toBe(0);
    // The shared file mapping's store reached the file when its last mapping went away.
    expect(machine.files.contents.get("shared")![P]).toBe(9);
    expect(await errnoOf(parent.munmap(BASE, P))).toBe(Errno.ESRCH);
  });
});

describe("unmapping and remapping", () => {
  it("MADV_DONTNEED drops anonymous pages (zero next time) and private file copies (file bytes again)", async () => {
    const bytes = pattern(P);
    const file = machine.files.add("f", bytes);
    const space = machine.vmm.createAddressSpace();
    await space.mmap(BASE, P, RW, ANON | MAP_FIXED, null, 0);
    const fileMap = await space.mmap(0, P, RW, MAP_PRIVATE, file, 0);
    await machine.store(space, BASE, 1);
    await machine.store(space, fileMap, 0);
    expect(machine.frames.live.size).toBe(2);
    await space.madvise(BASE, P, MADV_DONTNEED);
    await space.madvise(fileMap, P, MADV_DONTNEED);
    expect(machine.frames.live.size).toBe(0);
    expect(await machine.load(space, BASE)).toBe(0);
    expect(await machine.load(space, fileMap)).toBe(bytes[0]);
  });

  it("mremap moves the pages with their contents", async () => {
    const space = machine.vmm.createAddressSpace();
    await space.mmap(BASE, 2 * P, RW, ANON | MAP_FIXED, null, 0);
    await space.mmap(BASE + 2 * P, P, PROT_READ, ANON | MAP_FIXED, null, 0);
    await machine.store(space, BASE + 5, 11);
    await machine.store(space, BASE + P + 5, 12);
    const frames = machine.frames.allocations;
    const moved = await space.mremap(BASE, 2 * P, 4 * P, MREMAP_MAYMOVE, 0);
    expect(moved).not.toBe(BASE);
    expect(await machine.load(space, moved + 5)).toBe(11);
    expect(await machine.load(space, moved + P + 5)).toBe(12);
    expect(await machine.load(space, moved + 3 * P)).toBe(0);
    expect(machine.frames.allocations).toBe(frames + 1); // only the new, untouched page
    expect(await machine.load(space, BASE + 5)).toMatchObject({ signal: SIGSEGV, code: SEGV_MAPERR });
  });

  it("brk shrinking frees the heap's frames and growing again gives zeros", async () => {
    const space = machine.vmm.createAddressSpace();
    space.vmas.setProgramBreak(0x1004_0000);
    expect(await space.brk(0x1004_3000)).toBe(0x1004_3000);
    await machine.store(space, 0x1004_2000, 5);
    expect(machine.frames.live.size).toBe(1);
    expect(await space.brk(0x1004_1000)).toBe(0x1004_1000);
    expect(machine.frames.live.size).toBe(0);
    expect(await space.brk(0x1004_3000)).toBe(0x1004_3000);
    expect(await machine.load(space, 0x1004_2000)).toBe(0);
  });

  it("writes shared file pages back on msync, and shares them with other address spaces", async () => {
    const file = machine.files.add("log", new Uint8Array(2 * P));
    const a = machine.vmm.createAddressSpace();
    const b = machine.vmm.createAddressSpace();
    const inA = await a.mmap(0, 2 * P, RW, MAP_SHARED, file, 0);
    const inB = await b.mmap(0, 2 * P, PROT_READ, MAP_SHARED, file, 0);
    expect(await machine.load(a, inA + 10)).toBe(0);
    await machine.store(a, inA + 10, 99);
    expect(await machine.load(b, inB + 10)).toBe(99);
    expect(machine.files.contents.get("log")![10]).toBe(0);
    await a.msync(inA, 2 * P, 4);
    expect(machine.files.contents.get("log")![10]).toBe(99);
    expect(await errnoOf(a.msync(inA, P, 1 | 4))).toBe(Errno.EINVAL);
  });
});

describe("the hashed page table as a cache", () => {
  it("re-enters a page whose entry was evicted, without a new frame, contents intact", async () => {
    const space = machine.vmm.createAddressSpace();
    await space.mmap(BASE, P, RW, ANON | MAP_FIXED, null, 0);
    await machine.store(space, BASE, 0x77);
    const frame = space.physicalAddress(BASE);
    const segment = space.segment(BASE);

    // Another owner's pages crowd both PTEGs of this page until its entry is evicted.
    const hash = primaryHash(segment.vsid, SEGMENT_256M, 0);
    const crowd = 0x123;
    const first = ((hash % 2048) ^ crowd) & 0x7ff;
    let evictedOurs = false;
    for (let i = 0; i < 4 * HPTES_PER_GROUP && !evictedOurs; i++) {
      // Page indices 2048 apart share the PTEG pair in a 256 KiB table.
      const result = machine.hpt.insert({
        owner: 99,
        vsid: crowd,
        segmentSize: SEGMENT_256M,
        ea: (first + i * 2048) * P,
        pageShift: PAGE_SHIFT_4K,
        realAddress: 0x300000,
        pp: userPp(false),
        noExecute: true,
      });
      expect(ptegIndex(primaryHash(crowd, SEGMENT_256M, first + i * 2048), false, 0)).toBe(
        ptegIndex(hash, false, 0),
      );
      if (result.evicted?.owner === space.context) {
        evictedOurs = true;
        machine.mmu.invalidatePage(result.evicted.owner, result.evicted.ea, P);
      }
    }
    expect(evictedOurs).toBe(true);
    expect(machine.mmu.translate(space.context, BASE, ACCESS_READ)).toBe(TRANSLATION_FAULT);
    const allocations = machine.frames.allocations;
    expect(await machine.load(space, BASE)).toBe(0x77);
    expect(space.physicalAddress(BASE)).toBe(frame);
    expect(machine.frames.allocations).toBe(allocations);
  });
});

describe("exec", () => {
  it("maps an ELF load plan: file bytes, a zeroed tail, anonymous bss, and the program break", async () => {
    const image = pattern(0x3000, 5);
    const file = machine.files.add("prog", image);
    const plan: ElfLoadPlan = {
      kind: "exec",
      pageSize: P,
      loadBias: 0n,
      entry: 0x1000_0100n,
      segments: [
        {
          vaddr: 0x1000_0000n,
          memsz: 0x1800n,
          fileOffset: 0n,
          filesz: 0x1800n,
          prot: PROT_READ | PROT_EXEC,
          mapStart: 0x1000_0000n,
          mapEnd: 0x1000_2000n,
          mapFileOffset: 0n,
        },
        {
          vaddr: 0x1002_0100n,
          memsz: 0x3000n,
          fileOffset: 0x2100n,
          filesz: 0x200n,
          prot: PROT_READ | PROT_WRITE,
          mapStart: 0x1002_0000n,
          mapEnd: 0x1002_4000n,
          mapFileOffset: 0x2000n,
        },
      ],
      phdrAddress: 0x1000_0040n,
      phdrEntrySize: 56,
      phdrCount: 2,
      tls: null,
      stackExecutable: false,
      brkStart: 0x1002_4000n,
    };
    const space = machine.vmm.createAddressSpace();
    await space.loadElf(plan, file);
    expect(typeof await machine.fetch(space, 0x1000_0100)).toBe("number");
    expect(await machine.load(space, 0x1000_17ff)).toBe(image[0x17ff]);
    expect(await machine.load(space, 0x1000_1800)).toBe(image[0x1800]); // the rest of the text page is the file's
    expect(await machine.load(space, 0x1002_0100)).toBe(image[0x2100]);
    expect(await machine.load(space, 0x1002_02ff)).toBe(image[0x22ff]);
    expect(await machine.load(space, 0x1002_0300)).toBe(0); // .bss inside the last file page
    expect(await machine.load(space, 0x1002_3fff)).toBe(0);
    expect(await machine.store(space, 0x1000_0000, 1)).toMatchObject({ signal: SIGSEGV, code: SEGV_ACCERR });
    expect(await space.brk(0)).toBe(0x1002_4000);
    expect(space.maps().split("\n")[0]).toBe(
      "10000000-10002000 r-xp 00000000 08:01 1                                  /prog",
    );
  });
});

describe("concurrency", () => {
  it("serialises faults on one address space: two faults on one page use one frame", async () => {
    const space = machine.vmm.createAddressSpace();
    await space.mmap(BASE, P, RW, ANON | MAP_FIXED, null, 0);
    const [a, b] = await Promise.all([space.handleFault(BASE, "write"), space.handleFault(BASE + 8, "read")]);
    expect(a.kind).toBe("mapped");
    expect(b.kind).toBe("mapped");
    expect(machine.frames.live.size).toBe(1);
  });

  it("loads a shared file page once even when two address spaces fault on it together", async () => {
    const file = machine.files.add("s", pattern(P));
    const a = machine.vmm.createAddressSpace();
    const b = machine.vmm.createAddressSpace();
    const inA = await a.mmap(0, P, PROT_READ, MAP_SHARED, file, 0);
    const inB = await b.mmap(0, P, PROT_READ, MAP_SHARED, file, 0);
    machine.files.reads = 0;
    await Promise.all([a.handleFault(inA, "read"), b.handleFault(inB, "read")]);
    expect(machine.files.reads).toBe(1);
    expect(a.physicalAddress(inA)).toBe(b.physicalAddress(inB));
  });
});
