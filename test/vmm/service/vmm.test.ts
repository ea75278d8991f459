// The vmm service over its contract, every RPC through both transports (in-process, and gRPC
// through the embedded system's gateway). What vmm says is checked against what the other
// services hold: page contents through the machine's ReadPhysical at the address GetPhysical
// gives, HPTEs decoded from the hashed page table in guest memory, frames in pmm's accounts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccessType,
  Advice,
  FaultAction,
  FaultCause,
  FaultResult,
  MappingKind,
  MappingRole,
  PageFlag,
  PageSize,
  Placement,
} from "../../../gen/astra/vmm/v1/vmm_pb.ts";
import { Errno } from "../../../lib/errors.ts";
import { userPp } from "../../../lib/ppc/hpt.ts";
import { type Clients, errnoOf, findHpte, P, pattern, type Rig, startRig } from "./rig.ts";

const R = 1, W = 2, X = 4;
const RW = R | W;
const ANON = MappingKind.ANONYMOUS_PRIVATE;
const FIXED = Placement.FIXED;

let rig: Rig;
beforeAll(async () => {
  rig = await startRig();
}, 60_000);
afterAll(() => rig.close());

let nextPid = 1000;

describe.each(["in-process", "grpc"] as const)("vmm over %s", (kind) => {
  let c: Clients;
  beforeAll(() => {
    c = rig.clients(kind);
  });

  async function newSpace(): Promise<{ pid: number; spaceId: bigint }> {
    const pid = nextPid++;
    const { spaceId } = await c.vmm.createAddressSpace({ pid });
    return { pid, spaceId };
  }

  /** A fixed, private, anonymous read-write mapping of `length` bytes at `address`. */
  async function mapAnonymous(spaceId: bigint, address: number, length: number) {
    await c.vmm.mmap({
      spaceId,
      address: BigInt(address),
      length: BigInt(length),
      protection: RW,
      kind: ANON,
      placement: FIXED,
    });
  }

  async function fault(spaceId: bigint, address: number, access: AccessType) {
    return await c.vmm.handlePageFault({
      spaceId,
      address: BigInt(address),
      access,
      cause: FaultCause.NOT_MAPPED,
      tid: 1,
      cpu: 0,
    });
  }

  async function pageBytes(spaceId: bigint, va: number): Promise<Uint8Array> {
    const { physicalAddress } = await c.vmm.getPhysical({ spaceId, virtualAddress: BigInt(va) });
    return await physicalBytes(physicalAddress);
  }

  async function physicalBytes(address: bigint): Promise<Uint8Array> {
    const { data } = await c.machine.readPhysical({ address, length: BigInt(P) });
    // gRPC hands bytes over as a Buffer; compare plain bytes.
    return new Uint8Array(data);
  }

  async function frameRuns(pid: number) {
    return (await c.pmm.checkLeaks({ owner: `vmm:pid ${pid}` })).frameRuns;
  }

  async function freeFrames(): Promise<number> {
    return Number((await c.pmm.getFreeCount({})).freeFrames);
  }

  async function mapsLines(spaceId: bigint): Promise<string[]> {
    return (await c.vmm.listMappings({ spaceId })).mappings.map((m) => m.mapsLine);
  }

  it("creates address spaces and destroys them with every frame back in pmm, exactly once", async () => {
    const { pid, spaceId } = await newSpace();
    const before = await freeFrames();
    const { address } = await c.vmm.mmap({ spaceId, length: BigInt(8 * P), protection: RW, kind: ANON });
    for (let i = 0; i < 4; i++) {
      const reply = await fault(spaceId, Number(address) + i * P + 8, AccessType.WRITE);
      expect(reply.result).toBe(FaultResult.MAPPED);
      expect(reply.action).toBe(FaultAction.DEMAND_ZERO);
    }
    expect(await freeFrames()).toBe(before - 4);
    const runs = await frameRuns(pid);
    expect(runs.reduce((n, r) => n + Number(r.frames), 0)).toBe(4);

    const destroyed = await c.vmm.destroyAddressSpace({ spaceId });
    expect(destroyed).toMatchObject({ mappingsRemoved: 1n, framesFreed: 4n });
    expect(await freeFrames()).toBe(before + 0);
    const leaks = await c.pmm.checkLeaks({ owner: `vmm:pid ${pid}` });
    expect(leaks.frameRuns).toEqual([]);
    expect(leaks.allocations).toEqual([]);

    expect(await errnoOf(c.vmm.destroyAddressSpace({ spaceId }))).toBe(Errno.ESRCH);
    expect(await errnoOf(c.vmm.mmap({ spaceId, length: BigInt(P), protection: R, kind: ANON }))).toBe(
      Errno.ESRCH,
    );
    expect(await errnoOf(c.vmm.createAddressSpace({ pid: 0 }))).toBe(Errno.EINVAL);
  });

  it("keeps mmap, munmap, mprotect and brk sequences as /proc/PID/maps shows them", async () => {
    const { spaceId } = await newSpace();
    expect((await c.vmm.brk({ spaceId, address: 0x200000n })).address).toBe(0n);
    expect((await c.vmm.setBreakBase({ spaceId, address: 0x100123n })).address).toBe(0x101000n);
    expect((await c.vmm.brk({ spaceId })).address).toBe(0x101000n);
    expect((await c.vmm.brk({ spaceId, address: BigInt(0x101000 + 3 * P + 5) })).address).toBe(
      BigInt(0x101000 + 3 * P + 5),
    );

    const base = 0x2000_0000;
    await mapAnonymous(spaceId, base, 4 * P);
    await c.vmm.mprotect({ spaceId, address: BigInt(base + P), length: BigInt(P), protection: R });
    expect((await c.vmm.munmap({ spaceId, address: BigInt(base + 3 * P), length: BigInt(P) })).pagesUnmapped)
      .toBe(0n);
    const fileId = rig.files.add(pattern(3 * P));
    const { address: fileAt } = await c.vmm.mmap({
      spaceId,
      length: BigInt(2 * P),
      protection: R | X,
      kind: MappingKind.FILE_PRIVATE,
      file: {
        openFileId: fileId,
        offset: BigInt(P),
        path: "/bin/tool",
        device: (8 << 8) | 1,
        inode: 77n,
        readable: true,
      },
    });

    const listing = await c.vmm.listMappings({ spaceId });
    expect(listing.breakBase).toBe(0x101000n);
    expect(listing.breakEnd).toBe(BigInt(0x101000 + 3 * P + 5));
    const lines = listing.mappings.map((m) => m.mapsLine);
    expect(lines[0]).toMatch(/^00101000-00105000 rw-p 00000000 00:00 0 +\[heap\]$/);
    expect(lines[1]).toBe("20000000-20001000 rw-p 00000000 00:00 0 ");
    expect(lines[2]).toBe("20001000-20002000 r--p 00000000 00:00 0 ");
    expect(lines[3]).toBe("20002000-20003000 rw-p 00000000 00:00 0 ");
    const end = Number(fileAt) + 2 * P;
    expect(lines[4]).toMatch(
      new RegExp(`^${fileAt.toString(16)}-${end.toString(16)} r-xp 00001000 08:01 77 +/bin/tool$`),
    );
    expect(listing.mappings.map((m) => m.role)).toEqual([
      MappingRole.HEAP,
      MappingRole.ANONYMOUS,
      MappingRole.ANONYMOUS,
      MappingRole.ANONYMOUS,
      MappingRole.FILE,
    ]);
    expect(listing.mappings[4]).toMatchObject({
      kind: MappingKind.FILE_PRIVATE,
      protection: R | X,
      file: { openFileId: fileId, offset: BigInt(P), path: "/bin/tool", inode: 77n },
    });

    // Shrinking the heap and unmapping across mappings merge and cut as Linux does.
    await c.vmm.brk({ spaceId, address: 0x102000n });
    await c.vmm.munmap({ spaceId, address: BigInt(base + P), length: BigInt(P) });
    await c.vmm.mprotect({ spaceId, address: BigInt(base), length: BigInt(P), protection: R | W | X });
    expect((await mapsLines(spaceId)).slice(0, 3)).toEqual([
      expect.stringMatching(/^00101000-00102000 rw-p .*\[heap\]$/),
      "20000000-20001000 rwxp 00000000 00:00 0 ",
      "20002000-20003000 rw-p 00000000 00:00 0 ",
    ]);
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("maps a demand-zero page: zeros at GetPhysical's address, and its HPTE in the hashed page table", async () => {
    const { spaceId } = await newSpace();
    const va = 0x3000_0000;
    await mapAnonymous(spaceId, va, 2 * P);
    const reply = await fault(spaceId, va + 0x123, AccessType.READ);
    expect(reply).toMatchObject({ result: FaultResult.MAPPED, action: FaultAction.DEMAND_ZERO });
    const frame = Number(reply.physicalAddress) - 0x123;
    expect(frame % P).toBe(0);
    expect(reply.flags & (PageFlag.READ | PageFlag.WRITE | PageFlag.USER | PageFlag.ACCESSED)).toBe(
      PageFlag.READ | PageFlag.WRITE | PageFlag.USER | PageFlag.ACCESSED,
    );
    const physical = await c.vmm.getPhysical({ spaceId, virtualAddress: BigInt(va + 0x123) });
    expect(physical).toMatchObject({
      physicalAddress: reply.physicalAddress,
      pageSize: PageSize.PAGE_SIZE_4K,
    });
    expect(await pageBytes(spaceId, va)).toEqual(new Uint8Array(P));

    const hpte = await findHpte(c, spaceId, va);
    expect(hpte).not.toBeNull();
    expect(hpte!.realAddress).toBe(frame);
    expect(hpte!.fields.pp).toBe(userPp(true));
    expect(hpte!.fields.noExecute).toBe(true);

    // What is stored through the frame is what the page holds; a second fault keeps the frame.
    await c.machine.writePhysical({ address: BigInt(frame + 10), data: Uint8Array.of(1, 2, 3) });
    const again = await fault(spaceId, va + 10, AccessType.WRITE);
    expect(again).toMatchObject({ result: FaultResult.MAPPED, action: FaultAction.REINSERTED });
    expect(Number(again.physicalAddress)).toBe(frame + 10);
    expect((await pageBytes(spaceId, va)).subarray(10, 13)).toEqual(Uint8Array.of(1, 2, 3));
    expect(await errnoOf(c.vmm.getPhysical({ spaceId, virtualAddress: BigInt(va + P) }))).toBe(Errno.EFAULT);
    await c.vmm.destroyAddressSpace({ spaceId });
    const next = await newSpace();
    expect(await findHpte(c, next.spaceId, va)).toBeNull();
    await c.vmm.destroyAddressSpace({ spaceId: next.spaceId });
  });

  it("reads file-backed pages from the file source, zero-fills the tail, and answers SIGBUS beyond", async () => {
    const { spaceId } = await newSpace();
    const bytes = pattern(6000, 5);
    const openFileId = rig.files.add(bytes);
    const { address } = await c.vmm.mmap({
      spaceId,
      length: BigInt(3 * P),
      protection: R,
      kind: MappingKind.FILE_PRIVATE,
      file: { openFileId, path: "/data", inode: 9n, readable: true },
    });
    const at = Number(address);
    expect(await fault(spaceId, at, AccessType.READ)).toMatchObject({ action: FaultAction.FILE_READ });
    expect(await pageBytes(spaceId, at)).toEqual(bytes.subarray(0, P));
    await fault(spaceId, at + P, AccessType.READ);
    const tail = new Uint8Array(P);
    tail.set(bytes.subarray(P));
    expect(await pageBytes(spaceId, at + P)).toEqual(tail);
    expect(await fault(spaceId, at + 2 * P + 7, AccessType.READ)).toMatchObject({
      result: FaultResult.SIGBUS,
      signalAddress: BigInt(at + 2 * P + 7),
    });
    expect((await fault(spaceId, at, AccessType.WRITE)).result).toBe(FaultResult.SIGSEGV_ACCERR);
    expect(
      await errnoOf(
        c.vmm.mmap({ spaceId, length: BigInt(P), protection: R, kind: MappingKind.FILE_PRIVATE }),
      ),
    ).toBe(Errno.EBADF);
    expect(
      await errnoOf(
        c.vmm.mmap({
          spaceId,
          length: BigInt(P),
          protection: R,
          kind: MappingKind.FILE_PRIVATE,
          file: { openFileId, readable: false },
        }),
      ),
    ).toBe(Errno.EACCES);
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("answers SIGSEGV_MAPERR where nothing is mapped and SIGSEGV_ACCERR where the mapping forbids", async () => {
    const { spaceId } = await newSpace();
    const va = 0x4000_0000;
    await c.vmm.mmap({
      spaceId,
      address: BigInt(va),
      length: BigInt(P),
      protection: 0,
      kind: ANON,
      placement: FIXED,
    });
    await mapAnonymous(spaceId, va + P, P);
    const unmapped = await fault(spaceId, va + 4 * P + 3, AccessType.READ);
    expect(unmapped).toMatchObject({
      result: FaultResult.SIGSEGV_MAPERR,
      signalAddress: BigInt(va + 4 * P + 3),
    });
    expect(unmapped.detail).toContain("nothing is mapped");
    const none = await fault(spaceId, va + 1, AccessType.READ);
    expect(none).toMatchObject({ result: FaultResult.SIGSEGV_ACCERR, signalAddress: BigInt(va + 1) });
    expect(none.detail).toContain("0x40000000-0x40001000 ---p");
    expect((await fault(spaceId, va + P, AccessType.EXECUTE)).result).toBe(FaultResult.SIGSEGV_ACCERR);
    const far = 2n ** 60n + 5n;
    expect(
      await c.vmm.handlePageFault({
        spaceId,
        address: far,
        access: AccessType.READ,
        cause: FaultCause.NOT_MAPPED,
      }),
    ).toMatchObject({ result: FaultResult.SIGSEGV_MAPERR, signalAddress: far });
    expect(
      await errnoOf(c.vmm.handlePageFault({ spaceId, address: BigInt(va), access: AccessType.UNSPECIFIED })),
    ).toBe(Errno.EINVAL);
    expect(
      await errnoOf(
        c.vmm.handlePageFault({
          spaceId,
          address: BigInt(va),
          access: AccessType.READ,
          cause: FaultCause.NO_EXECUTE,
        }),
      ),
    ).toBe(Errno.EINVAL);
    expect(
      await errnoOf(c.vmm.handlePageFault({ spaceId, address: BigInt(va), access: AccessType.READ, cpu: 9 })),
    ).toBe(Errno.EINVAL);
    const stats = await c.vmm.getStatistics({});
    expect(stats.faults!.sigsegvMaperr).toBeGreaterThanOrEqual(2n);
    expect(stats.faults!.sigsegvAccerr).toBeGreaterThanOrEqual(2n);
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("forks copy-on-write: the child's store copies the page and the parent's frame is unchanged", async () => {
    const parent = await newSpace();
    const va = 0x5000_0000;
    await c.vmm.mmap({
      spaceId: parent.spaceId,
      address: BigInt(va),
      length: BigInt(2 * P),
      protection: RW,
      kind: ANON,
      placement: FIXED,
    });
    const first = await fault(parent.spaceId, va, AccessType.WRITE);
    const parentFrame = Number(first.physicalAddress);
    const content = pattern(P, 7);
    await c.machine.writePhysical({ address: BigInt(parentFrame), data: content });

    const forked = await c.vmm.forkAddressSpace({ parentSpaceId: parent.spaceId, childPid: nextPid++ });
    expect(forked.pagesShared).toBe(1n);
    const child = forked.childSpaceId;
    expect(
      (await c.vmm.getPageFlags({ spaceId: parent.spaceId, virtualAddress: BigInt(va) })).flags &
        PageFlag.COW,
    )
      .toBe(PageFlag.COW);
    expect((await findHpte(c, parent.spaceId, va))!.fields.pp).toBe(userPp(false));
    expect(Number((await c.vmm.getStatistics({})).cowSharedFrames)).toBeGreaterThanOrEqual(1);
    expect((await c.vmm.listMappings({ spaceId: child })).mappings[0]).toMatchObject({
      residentPages: 1n,
      cowPages: 1n,
    });

    const copied = await fault(child, va + 5, AccessType.WRITE);
    expect(copied).toMatchObject({ result: FaultResult.MAPPED, action: FaultAction.COW_COPY });
    const childFrame = Number(copied.physicalAddress) - 5;
    expect(childFrame).not.toBe(parentFrame);
    expect(await pageBytes(child, va)).toEqual(content);
    await c.machine.fillPhysical({ address: BigInt(childFrame), length: BigInt(P), value: 0xee });
    expect(await physicalBytes(BigInt(parentFrame))).toEqual(content);

    // The parent is the last sharer now: its store takes the page back without a copy.
    const reused = await fault(parent.spaceId, va, AccessType.WRITE);
    expect(reused).toMatchObject({ action: FaultAction.COW_REUSE, physicalAddress: BigInt(parentFrame) });
    expect((await findHpte(c, parent.spaceId, va))!.fields.pp).toBe(userPp(true));
    expect((await fault(child, va + P, AccessType.READ)).action).toBe(FaultAction.DEMAND_ZERO);

    const childPid = nextPid - 1;
    await c.vmm.destroyAddressSpace({ spaceId: parent.spaceId });
    await c.vmm.destroyAddressSpace({ spaceId: child });
    expect(await frameRuns(parent.pid)).toEqual([]);
    expect(await frameRuns(childPid)).toEqual([]);
  });

  it("shares MAP_SHARED anonymous memory with a forked child", async () => {
    const parent = await newSpace();
    const { address } = await c.vmm.mmap({
      spaceId: parent.spaceId,
      length: BigInt(2 * P),
      protection: RW,
      kind: MappingKind.ANONYMOUS_SHARED,
    });
    const at = Number(address);
    const { childSpaceId } = await c.vmm.forkAddressSpace({
      parentSpaceId: parent.spaceId,
      childPid: nextPid++,
    });
    const mapped = await fault(childSpaceId, at, AccessType.WRITE);
    expect(mapped.action).toBe(FaultAction.DEMAND_ZERO);
    expect(mapped.flags & PageFlag.SHARED).toBe(PageFlag.SHARED);
    const inParent = await fault(parent.spaceId, at, AccessType.READ);
    expect(inParent.action).toBe(FaultAction.SHARED_PAGE);
    expect(inParent.physicalAddress).toBe(mapped.physicalAddress);
    expect((await c.vmm.listMappings({ spaceId: parent.spaceId })).mappings[0]).toMatchObject({
      kind: MappingKind.ANONYMOUS_SHARED,
      residentPages: 1n,
      cowPages: 0n,
    });
    await c.vmm.destroyAddressSpace({ spaceId: parent.spaceId });
    await c.vmm.destroyAddressSpace({ spaceId: childSpaceId });
  });

  it("drops anonymous pages on MADV_DONTNEED: pmm's free count comes back, the pages read zeros", async () => {
    const { pid, spaceId } = await newSpace();
    const { address } = await c.vmm.mmap({ spaceId, length: BigInt(4 * P), protection: RW, kind: ANON });
    const at = Number(address);
    const before = await freeFrames();
    for (let i = 0; i < 4; i++) await fault(spaceId, at + i * P, AccessType.WRITE);
    await c.machine.writePhysical({
      address: (await c.vmm.getPhysical({ spaceId, virtualAddress: BigInt(at + P) })).physicalAddress,
      data: pattern(64),
    });
    expect(await freeFrames()).toBe(before - 4);
    const advised = await c.vmm.madvise({ spaceId, address, length: BigInt(4 * P), advice: Advice.DONTNEED });
    expect(advised.pagesAffected).toBe(4n);
    expect(await freeFrames()).toBe(before);
    expect(await frameRuns(pid)).toEqual([]);
    expect(await errnoOf(c.vmm.getPhysical({ spaceId, virtualAddress: BigInt(at + P) }))).toBe(Errno.EFAULT);
    expect((await fault(spaceId, at + P, AccessType.READ)).action).toBe(FaultAction.DEMAND_ZERO);
    expect(await pageBytes(spaceId, at + P)).toEqual(new Uint8Array(P));
    expect(await errnoOf(c.vmm.madvise({ spaceId, address, length: BigInt(P) }))).toBe(Errno.EINVAL);
    expect(
      (await c.vmm.madvise({ spaceId, address, length: BigInt(P), advice: Advice.SEQUENTIAL })).pagesAffected,
    )
      .toBe(0n);
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("reads file pages ahead on MADV_WILLNEED and prefaults MAP_POPULATE mappings", async () => {
    const { spaceId } = await newSpace();
    const openFileId = rig.files.add(pattern(2 * P + 100, 3));
    const { address } = await c.vmm.mmap({
      spaceId,
      length: BigInt(4 * P),
      protection: R,
      kind: MappingKind.FILE_PRIVATE,
      file: { openFileId, path: "/lib", readable: true },
    });
    const ahead = await c.vmm.madvise({ spaceId, address, length: BigInt(4 * P), advice: Advice.WILLNEED });
    expect(ahead.pagesAffected).toBe(3n);
    const populated = await c.vmm.mmap({
      spaceId,
      length: BigInt(3 * P),
      protection: RW,
      kind: ANON,
      populate: true,
    });
    for (let i = 0; i < 3; i++) {
      const hpte = await findHpte(c, spaceId, Number(populated.address) + i * P);
      expect(hpte).not.toBeNull();
    }
    const mappings = (await c.vmm.listMappings({ spaceId })).mappings;
    expect(mappings.map((m) => m.residentPages)).toEqual([3n, 3n]);
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("moves pages with their contents on mremap", async () => {
    const { spaceId } = await newSpace();
    const va = 0x6000_0000;
    await mapAnonymous(spaceId, va, 2 * P);
    await c.vmm.mmap({
      spaceId,
      address: BigInt(va + 2 * P),
      length: BigInt(P),
      protection: R,
      kind: ANON,
      placement: FIXED,
    });
    const frame = (await fault(spaceId, va, AccessType.WRITE)).physicalAddress;
    await c.machine.writePhysical({ address: frame, data: pattern(P, 11) });
    expect(
      await errnoOf(
        c.vmm.mremap({ spaceId, oldAddress: BigInt(va), oldSize: BigInt(2 * P), newSize: BigInt(4 * P) }),
      ),
    ).toBe(Errno.ENOMEM);
    const moved = await c.vmm.mremap({
      spaceId,
      oldAddress: BigInt(va),
      oldSize: BigInt(2 * P),
      newSize: BigInt(4 * P),
      mayMove: true,
    });
    const to = Number(moved.address);
    expect(to).not.toBe(va);
    expect((await fault(spaceId, to, AccessType.READ)).physicalAddress).toBe(frame);
    expect(await pageBytes(spaceId, to)).toEqual(pattern(P, 11));
    expect((await fault(spaceId, va, AccessType.READ)).result).toBe(FaultResult.SIGSEGV_MAPERR);
    expect(
      await errnoOf(
        c.vmm.mremap({ spaceId, oldAddress: 0x7000_0000n, oldSize: BigInt(P), newSize: BigInt(P) }),
      ),
    ).toBe(Errno.EFAULT);
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("grows a stack down on a fault below it and names it [stack]", async () => {
    const { spaceId } = await newSpace();
    const top = 0x7fff_0000;
    await c.vmm.mmap({
      spaceId,
      address: BigInt(top - 4 * P),
      length: BigInt(4 * P),
      protection: RW,
      kind: ANON,
      placement: FIXED,
      growsDown: true,
      role: MappingRole.STACK,
    });
    expect((await fault(spaceId, top - 6 * P + 8, AccessType.WRITE)).action).toBe(FaultAction.STACK_GROWTH);
    const [stack] = (await c.vmm.listMappings({ spaceId })).mappings;
    expect(stack).toMatchObject({ start: BigInt(top - 6 * P), role: MappingRole.STACK });
    expect(stack.mapsLine).toMatch(/\[stack\]$/);
    expect(
      await errnoOf(
        c.vmm.mmap({ spaceId, length: BigInt(P), protection: R, kind: ANON, role: MappingRole.HEAP }),
      ),
    ).toBe(Errno.EINVAL);
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("maps caller frames with MapPage and MapRegion, and UnmapPage gives them back unfreed", async () => {
    const { spaceId } = await newSpace();
    const run = await c.pmm.allocFrames({ count: 3n, zero: true, owner: "test:explicit", site: "vmm test" });
    const pa = Number(run.address);
    const va = 0x4800_0000;
    await c.vmm.mapPage({
      spaceId,
      virtualAddress: BigInt(va),
      physicalAddress: BigInt(pa),
      flags: PageFlag.READ | PageFlag.WRITE | PageFlag.USER,
    });
    expect((await c.vmm.getPhysical({ spaceId, virtualAddress: BigInt(va + 5) })).physicalAddress).toBe(
      BigInt(pa + 5),
    );
    const entry = await findHpte(c, spaceId, va);
    expect(entry).toMatchObject({ realAddress: pa, fields: { pp: userPp(true), wimg: 0b0010 } });
    expect(
      await errnoOf(
        c.vmm.mapPage({ spaceId, virtualAddress: BigInt(va), physicalAddress: BigInt(pa), flags: R }),
      ),
    ).toBe(Errno.EEXIST);

    const region = await c.vmm.mapRegion({
      spaceId,
      virtualAddress: BigInt(va + P),
      physicalAddress: BigInt(pa + P),
      size: BigInt(2 * P),
      flags: PageFlag.READ | PageFlag.USER | PageFlag.NO_CACHE | PageFlag.GUARDED | PageFlag.PINNED,
    });
    expect(region.pagesMapped).toBe(2n);
    const guarded = await findHpte(c, spaceId, va + 2 * P);
    expect(guarded).toMatchObject({
      realAddress: pa + 2 * P,
      fields: { pp: userPp(false), wimg: 0b0101, software: 2 },
    });
    expect((await fault(spaceId, va + P, AccessType.WRITE)).result).toBe(FaultResult.SIGSEGV_ACCERR);
    expect((await fault(spaceId, va + P, AccessType.READ)).action).toBe(FaultAction.REINSERTED);

    const flags = await c.vmm.getPageFlags({ spaceId, virtualAddress: BigInt(va + P) });
    expect(flags.physicalAddress).toBe(BigInt(pa + P));
    expect(flags.flags & PageFlag.NO_CACHE).toBe(PageFlag.NO_CACHE);
    const previous = await c.vmm.setPageFlags({
      spaceId,
      virtualAddress: BigInt(va + P),
      flags: PageFlag.READ | PageFlag.WRITE | PageFlag.USER,
    });
    expect(previous.previousFlags & PageFlag.GUARDED).toBe(PageFlag.GUARDED);
    expect((await findHpte(c, spaceId, va + P))!.fields).toMatchObject({ pp: userPp(true), wimg: 0b0010 });
    expect((await fault(spaceId, va + P, AccessType.WRITE)).result).toBe(FaultResult.MAPPED);

    const listed = (await c.vmm.listMappings({ spaceId })).mappings;
    expect(listed.reduce((n, m) => n + Number(m.residentPages), 0)).toBe(3);
    expect(
      await errnoOf(
        c.vmm.madvise({ spaceId, address: BigInt(va), length: BigInt(P), advice: Advice.DONTNEED }),
      ),
    ).toBe(Errno.EINVAL);
    expect(await errnoOf(c.vmm.unmapPage({ spaceId, virtualAddress: 0x4900_0000n }))).toBe(Errno.EFAULT);

    const unmapped = await c.vmm.unmapPage({ spaceId, virtualAddress: BigInt(va) });
    expect(unmapped.physicalAddress).toBe(BigInt(pa));
    expect(await findHpte(c, spaceId, va)).toBeNull();
    expect(
      (await c.vmm.unmapRegion({ spaceId, virtualAddress: BigInt(va), size: BigInt(3 * P) })).pagesUnmapped,
    )
      .toBe(2n);
    expect(await findHpte(c, spaceId, va + 2 * P)).toBeNull();
    expect((await c.vmm.listMappings({ spaceId })).mappings).toEqual([]);
    expect((await c.pmm.checkFrame({ address: run.address })).owner).toBe("test:explicit");

    await mapAnonymous(spaceId, va, P);
    expect(await errnoOf(c.vmm.unmapPage({ spaceId, virtualAddress: BigInt(va) }))).toBe(Errno.EINVAL);
    expect(
      await errnoOf(
        c.vmm.mapPage({ spaceId, virtualAddress: BigInt(va + 3), physicalAddress: BigInt(pa), flags: R }),
      ),
    ).toBe(Errno.EINVAL);
    expect(
      await errnoOf(
        c.vmm.mapPage({
          spaceId,
          virtualAddress: BigInt(va + 8 * P),
          physicalAddress: BigInt(pa),
          flags: R,
          pageSize: PageSize.PAGE_SIZE_64K,
        }),
      ),
    ).toBe(Errno.EINVAL);
    expect(
      await errnoOf(
        c.vmm.mapPage({
          spaceId,
          virtualAddress: BigInt(va + 8 * P),
          physicalAddress: BigInt(pa),
          flags: PageFlag.COW,
        }),
      ),
    ).toBe(Errno.EINVAL);
    await c.vmm.destroyAddressSpace({ spaceId });
    expect((await c.pmm.checkFrame({ address: run.address })).owner).toBe("test:explicit");
    await c.pmm.freeFrames({ address: run.address, count: 3n });
  });

  it("shares a range copy-on-write between address spaces", async () => {
    const source = await newSpace();
    const destination = await newSpace();
    const va = 0x5800_0000;
    await c.vmm.mmap({
      spaceId: source.spaceId,
      address: BigInt(va),
      length: BigInt(2 * P),
      protection: RW,
      kind: ANON,
      placement: FIXED,
    });
    const frame = (await fault(source.spaceId, va, AccessType.WRITE)).physicalAddress;
    await c.machine.writePhysical({ address: frame, data: pattern(P, 21) });
    const shared = await c.vmm.copyOnWrite({
      sourceSpaceId: source.spaceId,
      destinationSpaceId: destination.spaceId,
      virtualAddress: BigInt(va),
      size: BigInt(2 * P),
    });
    expect(shared.pagesShared).toBe(1n);
    expect((await findHpte(c, source.spaceId, va))!.fields.pp).toBe(userPp(false));

    const read = await fault(destination.spaceId, va, AccessType.READ);
    expect(read).toMatchObject({ result: FaultResult.MAPPED, physicalAddress: frame });
    expect(read.flags & PageFlag.COW).toBe(PageFlag.COW);
    const written = await fault(destination.spaceId, va + 1, AccessType.WRITE);
    expect(written.action).toBe(FaultAction.COW_COPY);
    expect(written.physicalAddress - 1n).not.toBe(frame);
    expect(await pageBytes(destination.spaceId, va)).toEqual(pattern(P, 21));
    expect((await fault(destination.spaceId, va + P, AccessType.READ)).action).toBe(FaultAction.DEMAND_ZERO);
    expect((await fault(source.spaceId, va, AccessType.WRITE)).action).toBe(FaultAction.COW_REUSE);

    const again = {
      sourceSpaceId: source.spaceId,
      destinationSpaceId: destination.spaceId,
      virtualAddress: BigInt(va),
      size: BigInt(2 * P),
    };
    expect(await errnoOf(c.vmm.copyOnWrite(again))).toBe(Errno.EEXIST);
    expect(await errnoOf(c.vmm.copyOnWrite({ ...again, destinationSpaceId: source.spaceId }))).toBe(
      Errno.EINVAL,
    );
    expect(await errnoOf(c.vmm.copyOnWrite({ ...again, virtualAddress: BigInt(va + 8 * P) }))).toBe(
      Errno.ENOMEM,
    );
    await c.vmm.destroyAddressSpace({ spaceId: source.spaceId });
    await c.vmm.destroyAddressSpace({ spaceId: destination.spaceId });
    expect(await frameRuns(source.pid)).toEqual([]);
    expect(await frameRuns(destination.pid)).toEqual([]);
  });

  it("gives CPUs their segments (SwitchAddressSpace, GetSegment) and invalidates TLBs", async () => {
    const first = await newSpace();
    const second = await newSpace();
    for (const address of [0x1000_0000, 0x3000_0000]) {
      await c.vmm.mmap({
        spaceId: first.spaceId,
        address: BigInt(address),
        length: BigInt(P),
        protection: R,
        kind: ANON,
        placement: FIXED,
      });
    }
    const switched = await c.vmm.switchAddressSpace({ spaceId: first.spaceId, cpu: 1 });
    expect(switched.segments.map((s) => s.esid)).toEqual([1n, 3n]);
    const again = await c.vmm.switchAddressSpace({ spaceId: second.spaceId, cpu: 1 });
    expect(again.previousSpaceId).toBe(first.spaceId);
    expect(again.segments).toEqual([]);
    const { segment } = await c.vmm.getSegment({ spaceId: first.spaceId, address: 0x1234_5678n });
    expect(segment).toMatchObject({ esid: 1n, segmentShift: 28, basePageShift: 12, problemKey: true });
    expect(segment!.vsid).toBe(switched.segments[0].vsid);
    const other = await c.vmm.getSegment({ spaceId: second.spaceId, address: 0x1234_5678n });
    expect(other.segment!.vsid).not.toBe(segment!.vsid);
    expect(await errnoOf(c.vmm.getSegment({ spaceId: first.spaceId, address: 2n ** 47n }))).toBe(
      Errno.EFAULT,
    );
    expect(await errnoOf(c.vmm.switchAddressSpace({ spaceId: first.spaceId, cpu: 2 }))).toBe(Errno.EINVAL);

    const sent = (await c.vmm.getStatistics({})).tlbInvalidations;
    await c.vmm.invalidateTlb({ spaceId: first.spaceId, virtualAddress: 0x1000_0000n, cpus: [0] });
    await c.vmm.invalidateTlbAll({ spaceId: first.spaceId });
    await c.vmm.invalidateTlbAll({});
    expect((await c.vmm.getStatistics({})).tlbInvalidations).toBe(sent + 4n);
    expect(await errnoOf(c.vmm.invalidateTlbAll({ cpus: [5] }))).toBe(Errno.EINVAL);
    expect(await errnoOf(c.vmm.invalidateTlb({ spaceId: 12345n, virtualAddress: 0n }))).toBe(Errno.ESRCH);
    await c.vmm.destroyAddressSpace({ spaceId: first.spaceId });
    await c.vmm.destroyAddressSpace({ spaceId: second.spaceId });
  });

  it("changes a mapped page's protection with SetPageFlags and reports its state with GetPageFlags", async () => {
    const { spaceId } = await newSpace();
    const va = 0x2800_0000;
    await mapAnonymous(spaceId, va, 2 * P);
    expect(await errnoOf(c.vmm.getPageFlags({ spaceId, virtualAddress: BigInt(va) }))).toBe(Errno.EFAULT);
    await fault(spaceId, va, AccessType.WRITE);
    const state = await c.vmm.getPageFlags({ spaceId, virtualAddress: BigInt(va + 9) });
    expect(state.flags).toBe(
      PageFlag.READ | PageFlag.WRITE | PageFlag.USER | PageFlag.COHERENT | PageFlag.ACCESSED | PageFlag.DIRTY,
    );
    expect(state.physicalAddress % BigInt(P)).toBe(0n);
    const previous = await c.vmm.setPageFlags({
      spaceId,
      virtualAddress: BigInt(va),
      flags: PageFlag.READ | PageFlag.USER,
    });
    expect(previous.previousFlags & PageFlag.WRITE).toBe(PageFlag.WRITE);
    expect((await findHpte(c, spaceId, va))!.fields.pp).toBe(userPp(false));
    expect((await fault(spaceId, va, AccessType.WRITE)).result).toBe(FaultResult.SIGSEGV_ACCERR);
    expect(await mapsLines(spaceId)).toEqual([
      "28000000-28001000 r--p 00000000 00:00 0 ",
      "28001000-28002000 rw-p 00000000 00:00 0 ",
    ]);
    expect(
      await errnoOf(c.vmm.setPageFlags({ spaceId, virtualAddress: BigInt(va), flags: PageFlag.READ })),
    ).toBe(Errno.EINVAL);
    expect(
      await errnoOf(
        c.vmm.setPageFlags({
          spaceId,
          virtualAddress: BigInt(va),
          flags: PageFlag.READ | PageFlag.USER | PageFlag.NO_CACHE,
        }),
      ),
    ).toBe(Errno.EINVAL);
    expect(await errnoOf(c.vmm.setPageFlags({ spaceId, virtualAddress: BigInt(va), flags: 1 << 20 }))).toBe(
      Errno.EINVAL,
    );
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("validates every argument with Linux's errno", async () => {
    const { spaceId } = await newSpace();
    const va = 0x3800_0000n;
    await c.vmm.mmap({
      spaceId,
      address: va,
      length: BigInt(2 * P),
      protection: RW,
      kind: ANON,
      placement: FIXED,
    });
    const cases: [Promise<unknown>, Errno][] = [
      [c.vmm.mmap({ spaceId, length: BigInt(P), protection: R }), Errno.EINVAL],
      [c.vmm.mmap({ spaceId, length: 0n, protection: R, kind: ANON }), Errno.EINVAL],
      [c.vmm.mmap({ spaceId, length: BigInt(P), protection: 8, kind: ANON }), Errno.EINVAL],
      [c.vmm.mmap({ spaceId, length: 2n ** 63n, protection: R, kind: ANON }), Errno.ENOMEM],
      [
        c.vmm.mmap({
          spaceId,
          address: va,
          length: BigInt(P),
          protection: R,
          kind: ANON,
          placement: Placement.FIXED_NOREPLACE,
        }),
        Errno.EEXIST,
      ],
      [
        c.vmm.mmap({
          spaceId,
          address: va + 1n,
          length: BigInt(P),
          protection: R,
          kind: ANON,
          placement: FIXED,
        }),
        Errno.EINVAL,
      ],
      [
        c.vmm.mmap({
          spaceId,
          address: 0x1000n,
          length: BigInt(P),
          protection: R,
          kind: ANON,
          placement: FIXED,
        }),
        Errno.EPERM,
      ],
      [c.vmm.munmap({ spaceId, address: va + 1n, length: BigInt(P) }), Errno.EINVAL],
      [c.vmm.munmap({ spaceId, address: va, length: 0n }), Errno.EINVAL],
      [c.vmm.mprotect({ spaceId, address: va, length: BigInt(4 * P), protection: R }), Errno.ENOMEM],
      [c.vmm.mprotect({ spaceId, address: va, length: BigInt(P), protection: 16 }), Errno.EINVAL],
      [c.vmm.mremap({ spaceId, oldAddress: va, oldSize: BigInt(P), newSize: 0n }), Errno.EINVAL],
      [c.vmm.madvise({ spaceId, address: va, length: BigInt(P), advice: 99 as Advice }), Errno.EINVAL],
      [c.vmm.madvise({ spaceId, address: va, length: BigInt(8 * P), advice: Advice.DONTNEED }), Errno.ENOMEM],
      [c.vmm.setBreakBase({ spaceId, address: 0n }), Errno.EINVAL],
      [c.vmm.unmapRegion({ spaceId, virtualAddress: va, size: 0n }), Errno.EINVAL],
      [
        c.vmm.mapRegion({ spaceId, virtualAddress: va, physicalAddress: 0n, size: BigInt(P), flags: R }),
        Errno.EEXIST,
      ],
      [c.vmm.forkAddressSpace({ parentSpaceId: spaceId, childPid: 0 }), Errno.EINVAL],
      [c.vmm.forkAddressSpace({ parentSpaceId: 77n, childPid: 5 }), Errno.ESRCH],
      [c.vmm.listMappings({ spaceId: 77n }), Errno.ESRCH],
    ];
    for (const [call, errno] of cases) expect(await errnoOf(call)).toBe(errno);

    await c.vmm.setBreakBase({ spaceId, address: 0x40_0000n });
    await c.vmm.brk({ spaceId, address: BigInt(0x40_0000 + P) });
    expect(await errnoOf(c.vmm.setBreakBase({ spaceId, address: 0x50_0000n }))).toBe(Errno.EBUSY);
    // A break that cannot move answers the old one, as Linux's brk does.
    expect((await c.vmm.brk({ spaceId, address: 0x10n })).address).toBe(BigInt(0x40_0000 + P));
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("reports real figures", async () => {
    const before = await c.vmm.getStatistics({});
    const { spaceId } = await newSpace();
    const { address } = await c.vmm.mmap({ spaceId, length: BigInt(2 * P), protection: RW, kind: ANON });
    await fault(spaceId, Number(address), AccessType.WRITE);
    const after = await c.vmm.getStatistics({});
    expect(after.addressSpaces).toBe(before.addressSpaces + 1n);
    expect(after.mappings).toBe(before.mappings + 1n);
    expect(after.residentPages).toBe(before.residentPages + 1n);
    expect(after.faults!.demandZero).toBe(before.faults!.demandZero + 1n);
    expect(after.hpteValid).toBe(before.hpteValid + 1n);
    expect(after.hpteCapacity).toBe(after.htabBytes / 16n);
    expect(after.htabBytes).toBe(BigInt(512 * 1024));
    expect(Number(after.htabOrigin) % (512 * 1024)).toBe(0);
    expect(after.htabOrigin).toBe((await c.machine.getInfo({})).htabOrigin);
    await c.vmm.destroyAddressSpace({ spaceId });
    const done = await c.vmm.getStatistics({});
    expect(done.addressSpaces).toBe(before.addressSpaces);
    expect(done.hpteValid).toBe(before.hpteValid);
  });
});
