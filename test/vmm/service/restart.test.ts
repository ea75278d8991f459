// A vmm restart leaks nothing: the new process adopts the hashed page table the partition table
// points at, clears it, and gives back to pmm every frame and owner record the address spaces of
// the old process held; frames callers own (explicit mappings) stay theirs, and old space ids
// answer ESRCH.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccessType,
  FaultAction,
  MappingKind,
  PageFlag,
  Placement,
} from "../../../gen/astra/vmm/v1/vmm_pb.ts";
import { Errno } from "../../../lib/errors.ts";
import { peersFrom } from "../../../lib/module.ts";
import { createVmm } from "../../../services/vmm/server.ts";
import { type Clients, errnoOf, P, pattern, type Rig, startRig } from "./rig.ts";

let rig: Rig;
let c: Clients;
beforeAll(async () => {
  rig = await startRig();
  c = rig.clients("in-process");
}, 60_000);
afterAll(() => rig.close());

describe("a restarted vmm", () => {
  it("clears the adopted table and returns every frame of the old address spaces to pmm", async () => {
    const parent = (await c.vmm.createAddressSpace({ pid: 41 })).spaceId;
    const other = (await c.vmm.createAddressSpace({ pid: 42 })).spaceId;
    const freeWithSpaces = Number((await c.pmm.getFreeCount({})).freeFrames);

    const { address } = await c.vmm.mmap({
      spaceId: parent,
      length: BigInt(6 * P),
      protection: 3,
      kind: MappingKind.ANONYMOUS_PRIVATE,
      populate: true,
    });
    const openFileId = rig.files.add(pattern(2 * P));
    const file = await c.vmm.mmap({
      spaceId: other,
      length: BigInt(2 * P),
      protection: 1,
      kind: MappingKind.FILE_SHARED,
      file: { openFileId, path: "/shared", inode: 3n, readable: true },
    });
    await c.vmm.handlePageFault({ spaceId: other, address: file.address, access: AccessType.READ });
    const { childSpaceId } = await c.vmm.forkAddressSpace({ parentSpaceId: parent, childPid: 43 });
    const copied = await c.vmm.handlePageFault({ spaceId: childSpaceId, address, access: AccessType.WRITE });
    expect(copied.action).toBe(FaultAction.COW_COPY);
    const kept = await c.pmm.allocFrame({ owner: "test:device", site: "restart test" });
    await c.vmm.mapPage({
      spaceId: other,
      virtualAddress: 0x4000_0000n,
      physicalAddress: kept.address,
      flags: PageFlag.READ | PageFlag.USER,
    });
    expect(Number((await c.pmm.getFreeCount({})).freeFrames)).toBe(freeWithSpaces - 6 - 1 - 1 - 1);
    const stats = await c.vmm.getStatistics({});
    expect(stats.hpteValid).toBeGreaterThan(0n);

    const restarted = createVmm(peersFrom(() => rig.system.router.transport()), rig.config, {
      files: rig.files,
    });
    const line = await restarted.start();
    expect(line).toMatch(/adopted and cleared; 8 frames of 3 address-space owners/);
    restarted.bound.forEach((bound) => rig.system.router.add(bound));

    expect(Number((await c.pmm.getFreeCount({})).freeFrames)).toBe(freeWithSpaces - 1);
    for (const pid of [41, 42, 43]) {
      const leaks = await c.pmm.checkLeaks({ owner: `vmm:pid ${pid}` });
      expect(leaks.frameRuns).toEqual([]);
      expect(leaks.allocations).toEqual([]);
    }
    expect((await c.pmm.checkFrame({ address: kept.address })).owner).toBe("test:device");
    const table = await c.machine.readPhysical({ address: stats.htabOrigin, length: stats.htabBytes });
    expect(new Uint8Array(table.data).every((byte) => byte === 0)).toBe(true);
    expect((await c.machine.getInfo({})).htabOrigin).toBe(stats.htabOrigin);

    expect(await errnoOf(c.vmm.listMappings({ spaceId: parent }))).toBe(Errno.ESRCH);
    const fresh = (await c.vmm.createAddressSpace({ pid: 41 })).spaceId;
    expect(fresh).not.toBe(parent);
    await c.vmm.mmap({
      spaceId: fresh,
      address: 0x1000_0000n,
      length: BigInt(P),
      protection: 3,
      kind: MappingKind.ANONYMOUS_PRIVATE,
      placement: Placement.FIXED,
    });
    const mapped = await c.vmm.handlePageFault({
      spaceId: fresh,
      address: 0x1000_0000n,
      access: AccessType.WRITE,
    });
    expect(mapped.action).toBe(FaultAction.DEMAND_ZERO);
    expect((await c.vmm.getStatistics({})).addressSpaces).toBe(1n);
    await c.vmm.destroyAddressSpace({ spaceId: fresh });
    expect((await c.pmm.checkLeaks({ owner: "vmm:pid 41" })).frameRuns).toEqual([]);
    await c.pmm.freeFrame({ address: kept.address });
  });
});
