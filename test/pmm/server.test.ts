// The pmm service over its contract: every RPC through both transports (in-process and gRPC),
// with the machine service holding the guest memory. Each test gets a fresh machine and pmm, so
// frame and heap placement are deterministic; the heap's debugging is checked against the
// machine's real memory, read and corrupted through MachineService like any other service would.
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { MemoryType as MachineMemoryType } from "../../gen/astra/machine/v1/devices_pb.ts";
import {
  AllocationKind,
  FitStrategy,
  FrameState,
  MemoryType,
  PmmService,
  PointerState,
} from "../../gen/astra/pmm/v1/pmm_pb.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { GrpcServer, GrpcTransport } from "../../lib/grpc.ts";
import { bootEmbedded } from "../../lib/host.ts";
import { InProcessRouter } from "../../lib/inproc.ts";
import { peersFrom, type SystemConfig } from "../../lib/module.ts";
import { type CallOptions, client, type Transport } from "../../lib/rpc.ts";
import { loadFactory } from "../../services/index.ts";
import { createMachine } from "../../services/machine/server.ts";
import { normalizeMemoryMap } from "../../services/pmm/memmap.ts";
import { createPmm, HeapMemoryJournal, MissingBytes, readPlan } from "../../services/pmm/server.ts";
import { POISON_END, POISON_FREE, RED_ZONE_BYTE } from "../../services/pmm/slab.ts";

const P = 4096;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** node 0 RAM at 0 (first MiB firmware, top 192 KiB tables and NVRAM), node 1 RAM at 64 GiB. */
const CONFIG: Omit<SystemConfig, "dataDir"> = { memoryBytes: 64 * MiB, numaNodes: 2, cpus: 2 };
const NODE1_BASE = 64n * BigInt(GiB);
/** The machines' data folder (they keep nothing there yet, but it is theirs alone). */
const DATA_DIR = Deno.makeTempDirSync({ prefix: "astra-pmm-server-" });
afterAll(() => Deno.remove(DATA_DIR, { recursive: true }));
const HOLE = 40n * BigInt(GiB);
/** The machine's device window (firmware.ts). */
const MMIO_BASE = 0x6000_0000_0000n;

type Pmm = ReturnType<typeof client<typeof PmmService>>;
type Machine = ReturnType<typeof client<typeof MachineService>>;

interface TestSystem {
  pmm: Pmm;
  machine: Machine;
  /** Calls pmm made to the machine, by method name, since the last reset. */
  machineCalls: Map<string, number>;
  close(): Promise<void>;
}

/** pmm's view of the machine, counting the calls it makes. */
function countingTransport(inner: Transport, calls: Map<string, number>): Transport {
  const count = (name: string) => calls.set(name, (calls.get(name) ?? 0) + 1);
  return {
    kind: inner.kind,
    unary: (m, req, opts: CallOptions) => {
      count(m.name);
      return inner.unary(m, req, opts);
    },
    serverStream: (m, req, opts) => inner.serverStream(m, req, opts),
    clientStream: (m, reqs, opts) => inner.clientStream(m, reqs, opts),
    bidiStream: (m, reqs, opts) => inner.bidiStream(m, reqs, opts),
    close: () => inner.close(),
  };
}

/** A machine and a pmm wired as the embedded host wires them, reached over `kind`. */
async function startSystem(kind: "in-process" | "grpc"): Promise<TestSystem> {
  const router = new InProcessRouter();
  const local = router.transport();
  const machineCalls = new Map<string, number>();
  const counted = countingTransport(local, machineCalls);
  const peers = peersFrom((name) => name === "machine" ? counted : local);
  const config = { ...CONFIG, dataDir: DATA_DIR };
  const modules = [createMachine(peers, config), createPmm(peers)];
  for (const m of modules) m.bound.forEach((b) => router.add(b));
  for (const m of modules) await m.start();
  machineCalls.clear();
  if (kind === "in-process") {
    return {
      pmm: client(PmmService, local),
      machine: client(MachineService, local),
      machineCalls,
      close: async () => {
        for (const m of modules.reverse()) await m.stop();
      },
    };
  }
  const server = new GrpcServer("pmm-test");
  for (const m of modules) m.bound.forEach((b) => server.add(b));
  const address = await server.listen("127.0.0.1:0");
  server.setServing(true);
  const remote = new GrpcTransport(address);
  return {
    pmm: client(PmmService, remote),
    machine: client(MachineService, remote),
    machineCalls,
    close: async () => {
      remote.close();
      await server.shutdown(500);
      for (const m of modules.reverse()) await m.stop();
    },
  };
}

/** The failure of `call`, checked against the expected status, errno and argument. */
async function failure(
  call: Promise<unknown>,
  code: Code,
  errno: Errno,
  argument?: string,
): Promise<AstraError> {
  let caught: unknown;
  try {
    await call;
  } catch (e) {
    caught = e;
  }
  expect(caught, "expected the call to fail").toBeInstanceOf(AstraError);
  const err = caught as AstraError;
  expect({ code: Code[err.code], errno: err.errno, message: err.message }).toMatchObject({
    code: Code[code],
    errno,
  });
  if (argument !== undefined) expect(err.detail.argument).toBe(argument);
  return err;
}

/** The frame accounting, without the call counters (which misuse does advance). */
async function frameAccounting(pmm: Pmm) {
  const s = await pmm.getStatistics({});
  return {
    frames: s.frames,
    nodes: s.nodes.map((n) => ({ node: n.node, frames: n.frames, largest: n.largestFreeRun })),
    regions: s.regions.map((r) => ({ index: r.index, frames: r.frames })),
  };
}

async function bytesAt(machine: Machine, address: bigint, length: number): Promise<number[]> {
  return [...(await machine.readPhysical({ address, length: BigInt(length) })).data];
}

const repeat = (byte: number, n: number) => new Array<number>(n).fill(byte);
const poisoned = (objectSize: number) => [...repeat(POISON_FREE, objectSize - 1), POISON_END];

for (const kind of ["in-process", "grpc"] as const) {
  describe(`pmm over the ${kind} transport`, () => {
    let sys: TestSystem;
    let pmm: Pmm;
    let machine: Machine;
    beforeEach(async () => {
      sys = await startSystem(kind);
      pmm = sys.pmm;
      machine = sys.machine;
    });
    afterEach(async () => {
      // Whatever a test did, the figures must add up: frames overall, per node, per region, and
      // the heap's chunks are exactly the frames the frame allocator lists for "pmm:heap".
      const s = await pmm.getStatistics({});
      const sum = (c: { free: bigint; used: bigint; reserved: bigint }) => c.free + c.used + c.reserved;
      expect(sum(s.frames!)).toBe(s.frames!.total);
      for (const n of s.nodes) expect(sum(n.frames!)).toBe(n.frames!.total);
      for (const r of s.regions) expect(sum(r.frames!)).toBe(r.frames!.total);
      expect(s.nodes.reduce((t, n) => t + n.frames!.total, 0n)).toBe(s.frames!.total);
      const heap = await pmm.getHeapStatistics({});
      const chunks = await pmm.checkLeaks({ owner: "pmm:heap" });
      expect(chunks.frameRuns.reduce((t, r) => t + r.frames, 0n)).toBe(heap.buddy!.totalPages);
      expect(heap.figures!.heapBytes).toBe(heap.buddy!.totalPages * BigInt(P));
      const live = await pmm.checkLeaks({});
      expect(BigInt(live.allocations.length)).toBe(heap.liveAllocations);
      expect(live.totalBytes).toBe(heap.requestedBytes);
      await sys.close();
    });

    describe("frames", () => {
      it("publishes the machine's memory map, normalised, with its accounting", async () => {
        const firmware = await machine.getMemoryMap({});
        const expected = normalizeMemoryMap(firmware.regions.map((r) => ({
          base: r.base,
          length: r.length,
          type: MemoryType[MachineMemoryType[r.type] as keyof typeof MemoryType],
          node: r.numaNode,
        })));
        const map = await pmm.getMemoryMap({});
        expect(map.pageSize).toBe(BigInt(P));
        expect(map.regions.map((r) => [r.base, r.length, r.type, r.node])).toEqual(
          expected.map((r) => [r.base, r.length, r.type, r.node]),
        );
        expect(map.regions.map((r) => r.type)).toContain(MemoryType.DEVICE);
        expect(map.reservations.map((r) => r.reason)).toEqual([]);
        expect(await pmm.checkFrame({ address: MMIO_BASE })).toMatchObject({
          state: FrameState.UNAVAILABLE,
          regionType: MemoryType.DEVICE,
        });

        const stats = await pmm.getStatistics({});
        const ram = map.regions.map((r, index) => ({ ...r, index })).filter((r) =>
          r.type !== MemoryType.DEVICE
        );
        expect(stats.regions.map((r) => [r.index, r.base, r.length, r.type, r.node])).toEqual(
          ram.map((r) => [r.index, r.base, r.length, r.type, r.node]),
        );
        const ramFrames = ram.reduce((t, r) => t + r.length, 0n) / BigInt(P);
        expect(stats.frames!.total).toBe(ramFrames);
        expect((await pmm.getTotalCount({})).totalFrames).toBe(ramFrames);
        expect((await pmm.getFreeCount({})).freeFrames).toBe(stats.frames!.free);
        // Firmware's first MiB, its tables and NVRAM are reserved; nothing is used yet.
        expect(stats.frames).toMatchObject({ used: 0n, reserved: BigInt((MiB + 192 * 1024) / P) });
        expect(stats.nodes.map((n) => n.node)).toEqual([0, 1]);
        expect(stats.nodes[1].frames!.free).toBe(BigInt(32 * MiB / P));
        expect(stats.orders).toHaveLength(12);
      });

      it("allocates frames, runs and bulk frames with placement, and frees them", async () => {
        const before = await frameAccounting(pmm);
        const one = await pmm.allocFrame({ owner: "test:frames", site: "one" });
        expect(one).toMatchObject({ node: 0 });
        expect(one.address % BigInt(P)).toBe(0n);
        expect(await pmm.checkFrame({ address: one.address })).toMatchObject({
          state: FrameState.ALLOCATED,
          regionType: MemoryType.USABLE,
          runAddress: one.address,
          runFrames: 1n,
          owner: "test:frames",
          site: "one",
        });
        const remote = await pmm.allocFrame({
          owner: "test:frames",
          placement: { preferredNode: 1, strictNode: true },
        });
        expect(remote.node).toBe(1);
        expect(remote.address >= NODE1_BASE).toBe(true);
        const low = await pmm.allocFrame({ owner: "test:frames", placement: { maxAddress: 0x1f_ffffn } });
        expect(low.address + BigInt(P) - 1n <= 0x1f_ffffn).toBe(true);
        const run = await pmm.allocFrames({ owner: "test:frames", count: 16n, alignment: 16n });
        expect(run.count).toBe(16n);
        expect(run.address % BigInt(16 * P)).toBe(0n);
        const best = await pmm.allocFrames({
          owner: "test:frames",
          count: 3n,
          strategy: FitStrategy.BEST_FIT,
        });
        expect(await pmm.checkFrame({ address: run.address + BigInt(5 * P) })).toMatchObject({
          state: FrameState.ALLOCATED,
          runAddress: run.address,
          runFrames: 16n,
        });
        const bulk = await pmm.allocFramesBulk({
          owner: "test:frames",
          count: 10n,
          placement: { preferredNode: 1 },
        });
        expect(new Set(bulk.addresses).size).toBe(10);
        expect(bulk.addresses.every((a) => a >= NODE1_BASE)).toBe(true);
        const during = await pmm.getStatistics({});
        expect(during.frames!.used).toBe(before.frames!.used + 3n + 16n + 3n + 10n);

        await pmm.freeFrame({ address: one.address });
        await pmm.freeFrame({ address: remote.address });
        await pmm.freeFrame({ address: low.address });
        await pmm.freeFrames({ address: run.address, count: 16n });
        await pmm.freeFrames({ address: best.address, count: 3n });
        for (const address of bulk.addresses) await pmm.freeFrame({ address });
        expect(await frameAccounting(pmm)).toEqual(before);
        expect(await pmm.checkFrame({ address: one.address })).toMatchObject({
          state: FrameState.FREE,
          owner: "",
        });
      });

      it("zeroes frames in the machine's memory when asked", async () => {
        const garbage = new Uint8Array(4 * P).fill(0xee);
        const single = await pmm.allocFrame({ owner: "test:zero" });
        const run = await pmm.allocFrames({ owner: "test:zero", count: 4n });
        await machine.writePhysical({ address: single.address, data: garbage.subarray(0, P) });
        await machine.writePhysical({ address: run.address, data: garbage });
        await pmm.freeFrame({ address: single.address });
        await pmm.freeFrames({ address: run.address, count: 4n });

        const zeroedSingle = await pmm.allocFrame({ owner: "test:zero", zero: true });
        expect(zeroedSingle.address).toBe(single.address);
        expect(await bytesAt(machine, single.address, P)).toEqual(repeat(0, P));
        const zeroedRun = await pmm.allocFrames({ owner: "test:zero", count: 4n, zero: true });
        expect(zeroedRun.address).toBe(run.address);
        expect(await bytesAt(machine, run.address, 4 * P)).toEqual(repeat(0, 4 * P));
        await pmm.freeFrames({ address: run.address, count: 4n });
        await machine.writePhysical({ address: run.address, data: garbage });
        sys.machineCalls.clear();
        const bulk = await pmm.allocFramesBulk({ owner: "test:zero", count: 4n, zero: true });
        expect(bulk.addresses).toEqual([0, 1, 2, 3].map((i) => run.address + BigInt(i * P)));
        expect(await bytesAt(machine, run.address, 4 * P)).toEqual(repeat(0, 4 * P));
        // Consecutive frames of a bulk allocation are zeroed with one call.
        expect(sys.machineCalls.get("FillPhysical")).toBe(1);
        await pmm.releaseOwner({ owner: "test:zero" });
      });

      it("refuses every misuse with a precise status and leaves the state unchanged", async () => {
        const map = await pmm.getMemoryMap({});
        const usable = map.regions.find((r) => r.type === MemoryType.USABLE)!;
        const lastOfRegion = usable.base + usable.length - BigInt(P);
        const run = await pmm.allocFrames({ owner: "test:misuse", site: "run", count: 4n });
        const [a, b] = (await pmm.allocFramesBulk({ owner: "test:misuse", count: 2n })).addresses;
        const freeFrame = (await pmm.allocFrame({ owner: "test:misuse" })).address;
        await pmm.freeFrame({ address: freeFrame });
        await pmm.kmalloc({ size: 64n, owner: "test:misuse" });
        const heapChunk = (await pmm.checkLeaks({ owner: "pmm:heap" })).frameRuns[0];
        const before = await frameAccounting(pmm);

        const misuse: [string, Promise<unknown>, Code, Errno, string?][] = [
          [
            "free of a free frame",
            pmm.freeFrame({ address: freeFrame }),
            Code.FAILED_PRECONDITION,
            Errno.EINVAL,
          ],
          [
            "free of a free run",
            pmm.freeFrames({ address: freeFrame, count: 4n }),
            Code.FAILED_PRECONDITION,
            Errno.EINVAL,
          ],
          [
            "unaligned address",
            pmm.freeFrame({ address: a + 8n }),
            Code.INVALID_ARGUMENT,
            Errno.EINVAL,
            "address",
          ],
          ["address in a hole", pmm.freeFrame({ address: HOLE }), Code.OUT_OF_RANGE, Errno.EFAULT, "address"],
          [
            "address beyond 2^53",
            pmm.freeFrame({ address: 1n << 60n }),
            Code.OUT_OF_RANGE,
            Errno.EFAULT,
            "address",
          ],
          [
            "device memory",
            pmm.freeFrame({ address: MMIO_BASE }),
            Code.OUT_OF_RANGE,
            Errno.EFAULT,
            "address",
          ],
          [
            "run crossing regions",
            pmm.freeFrames({ address: lastOfRegion, count: 2n }),
            Code.OUT_OF_RANGE,
            Errno.EFAULT,
            "count",
          ],
          [
            "singles freed as a run",
            pmm.freeFrames({ address: a, count: 2n }),
            Code.INVALID_ARGUMENT,
            Errno.EINVAL,
            "count",
          ],
          [
            "run freed short",
            pmm.freeFrames({ address: run.address, count: 2n }),
            Code.INVALID_ARGUMENT,
            Errno.EINVAL,
            "count",
          ],
          [
            "run freed as a frame",
            pmm.freeFrame({ address: run.address }),
            Code.FAILED_PRECONDITION,
            Errno.EINVAL,
          ],
          [
            "frame inside a run",
            pmm.freeFrame({ address: run.address + BigInt(P) }),
            Code.FAILED_PRECONDITION,
            Errno.EINVAL,
          ],
          [
            "zero count",
            pmm.freeFrames({ address: run.address, count: 0n }),
            Code.INVALID_ARGUMENT,
            Errno.EINVAL,
            "count",
          ],
          [
            "reservation over allocations",
            pmm.reserveRegion({ base: run.address, size: BigInt(8 * P), reason: "x" }),
            Code.FAILED_PRECONDITION,
            Errno.EBUSY,
            "base",
          ],
          [
            "reservation without reason",
            pmm.reserveRegion({ base: freeFrame, size: BigInt(P) }),
            Code.INVALID_ARGUMENT,
            Errno.EINVAL,
            "reason",
          ],
          [
            "reservation over a hole",
            pmm.reserveRegion({ base: HOLE, size: BigInt(P), reason: "x" }),
            Code.OUT_OF_RANGE,
            Errno.EFAULT,
            "base",
          ],
          ["anonymous owner", pmm.allocFrame({}), Code.INVALID_ARGUMENT, Errno.EINVAL, "owner"],
          [
            "pmm's owner tag",
            pmm.allocFrame({ owner: "pmm:heap" }),
            Code.INVALID_ARGUMENT,
            Errno.EINVAL,
            "owner",
          ],
          [
            "unknown node",
            pmm.allocFrame({ owner: "x", placement: { preferredNode: 7 } }),
            Code.INVALID_ARGUMENT,
            Errno.ENODEV,
            "preferred_node",
          ],
          [
            "bad alignment",
            pmm.allocFrames({ owner: "x", count: 2n, alignment: 3n }),
            Code.INVALID_ARGUMENT,
            Errno.EINVAL,
            "alignment",
          ],
          [
            "the heap's chunk",
            pmm.freeFrames({ address: heapChunk.address, count: heapChunk.frames }),
            Code.PERMISSION_DENIED,
            Errno.EPERM,
            "address",
          ],
          [
            "inside the heap's chunk",
            pmm.freeFrame({ address: heapChunk.address + BigInt(P) }),
            Code.PERMISSION_DENIED,
            Errno.EPERM,
            "address",
          ],
        ];
        for (const [what, call, code, errno, argument] of misuse) {
          const err = await failure(call, code, errno, argument).catch((e) => {
            throw new Error(`${what}: ${e}`);
          });
          expect(err.detail.service, what).toBe("pmm");
        }
        const overlap = await failure(
          pmm.reserveRegion({ base: run.address, size: BigInt(P), reason: "x" }),
          Code.FAILED_PRECONDITION,
          Errno.EBUSY,
        );
        expect(overlap.detail.facts).toMatchObject({ owner: "test:misuse", site: "run" });
        expect(await frameAccounting(pmm)).toEqual(before);
        await pmm.freeFrames({ address: run.address, count: 4n });
        await pmm.freeFrame({ address: a });
        await pmm.freeFrame({ address: b });
        await pmm.releaseOwner({ owner: "test:misuse" });
      });

      it("answers RESOURCE_EXHAUSTED with the per-node figures, allocating nothing", async () => {
        const before = await pmm.getStatistics({});
        const free = before.nodes.map((n) => n.frames!.free);
        const err = await failure(
          pmm.allocFrames({ owner: "test:oom", count: before.frames!.total }),
          Code.RESOURCE_EXHAUSTED,
          Errno.ENOMEM,
        );
        expect(err.detail.facts).toMatchObject({
          requested_frames: String(before.frames!.total),
          "node0.free_frames": String(free[0]),
          "node1.free_frames": String(free[1]),
          "node0.total_frames": String(before.nodes[0].frames!.total),
          "node1.largest_free_run": String(before.nodes[1].largestFreeRun),
        });
        const strict = await failure(
          pmm.allocFrames({
            owner: "test:oom",
            count: free[1] + 1n,
            placement: { preferredNode: 1, strictNode: true },
          }),
          Code.RESOURCE_EXHAUSTED,
          Errno.ENOMEM,
        );
        expect(strict.detail.facts).toMatchObject({
          preferred_node: "1",
          "node1.free_frames": String(free[1]),
        });
        await failure(
          pmm.allocFramesBulk({ owner: "test:oom", count: before.frames!.free + 1n }),
          Code.RESOURCE_EXHAUSTED,
          Errno.ENOMEM,
        );
        const after = await pmm.getStatistics({});
        expect(after.frames).toEqual(before.frames);
        expect(after.failedAllocs).toBe(before.failedAllocs + 3n);
        // Everything there is, in one bulk call, then nothing more.
        const all = await pmm.allocFramesBulk({ owner: "test:oom", count: before.frames!.free });
        expect(all.addresses).toHaveLength(Number(before.frames!.free));
        await failure(pmm.allocFrame({ owner: "test:oom" }), Code.RESOURCE_EXHAUSTED, Errno.ENOMEM);
        await failure(pmm.kmalloc({ size: 8n, owner: "test:oom" }), Code.RESOURCE_EXHAUSTED, Errno.ENOMEM);
        const released = await pmm.releaseOwner({ owner: "test:oom" });
        expect(released.framesFreed).toBe(before.frames!.free);
        expect((await pmm.getStatistics({})).frames).toEqual(before.frames);
      });

      it("reserves regions, lists them and never frees them", async () => {
        const frame = (await pmm.allocFrame({ owner: "test:reserve" })).address;
        await pmm.freeFrame({ address: frame });
        const before = await pmm.getStatistics({});
        const r = await pmm.reserveRegion({ base: frame + 100n, size: BigInt(2 * P), reason: "initrd" });
        expect(r).toMatchObject({ base: frame, size: BigInt(3 * P), newlyReservedFrames: 3n });
        const again = await pmm.reserveRegion({ base: frame, size: BigInt(P), reason: "initrd again" });
        expect(again.newlyReservedFrames).toBe(0n);
        expect((await pmm.getMemoryMap({})).reservations.map((x) => [x.base, x.reason])).toEqual([
          [frame + 100n, "initrd"],
          [frame, "initrd again"],
        ]);
        expect((await pmm.checkFrame({ address: frame })).state).toBe(FrameState.RESERVED);
        await failure(pmm.freeFrame({ address: frame }), Code.FAILED_PRECONDITION, Errno.EPERM, "address");
        const after = await pmm.getStatistics({});
        expect(after.frames).toMatchObject({
          free: before.frames!.free - 3n,
          reserved: before.frames!.reserved + 3n,
          used: before.frames!.used,
        });
      });
    });

    describe("kernel heap", () => {
      it("serves slab and buddy sizes from frames it owns as pmm:heap", async () => {
        const cases: [bigint, string, bigint][] = [
          [1n, "kmalloc-8", 8n],
          [24n, "kmalloc-32", 32n],
          [256n, "kmalloc-256", 256n],
          [257n, "", 4096n],
          [100_000n, "", 128n * 1024n],
        ];
        for (const [size, cache, usable] of cases) {
          const { address, size: granted } = await pmm.kmalloc({
            size,
            owner: "test:heap",
            site: `size ${size}`,
          });
          expect(granted).toBe(size);
          expect(address % 8n).toBe(0n);
          const info = await pmm.validatePointer({ address });
          expect(info.state).toBe(PointerState.LIVE);
          expect(info.allocation).toMatchObject({
            size,
            cache,
            usableSize: usable,
            owner: "test:heap",
            site: `size ${size}`,
            kind: cache ? AllocationKind.SLAB : AllocationKind.BUDDY,
          });
          const page = address - (address % BigInt(P));
          expect(await pmm.checkFrame({ address: page })).toMatchObject({
            state: FrameState.ALLOCATED,
            owner: "pmm:heap",
          });
          expect((await pmm.kfree({ address })).size).toBe(size);
        }
        const stats = await pmm.getHeapStatistics({});
        expect(stats).toMatchObject({
          liveAllocations: 0n,
          allocs: 5n,
          frees: 5n,
          failedAllocs: 0n,
          errorsDetected: 0n,
        });
        expect(stats.caches.map((c) => c.name)).toEqual(
          expect.arrayContaining([
            "kmalloc-8",
            "kmalloc-16",
            "kmalloc-32",
            "kmalloc-64",
            "kmalloc-128",
            "kmalloc-256",
          ]),
        );
      });

      it("keeps red zones and poison in the machine's memory", async () => {
        const { address } = await pmm.kmalloc({ size: 30n, owner: "test:debug" });
        // kmalloc-32 slot: [8-byte red zone][32-byte object][8-byte red zone]; bytes 30..31 are slack.
        const live = await bytesAt(machine, address - 8n, 48);
        expect(live.slice(0, 8)).toEqual(repeat(RED_ZONE_BYTE, 8));
        expect(live.slice(38)).toEqual(repeat(RED_ZONE_BYTE, 10));
        await pmm.kfree({ address });
        const freed = await bytesAt(machine, address - 8n, 48);
        expect(freed.slice(8, 40)).toEqual(poisoned(32));
        expect(freed.slice(40)).toEqual(repeat(RED_ZONE_BYTE, 8));
        const block = await pmm.kmalloc({ size: 5000n, owner: "test:debug" });
        expect(await bytesAt(machine, block.address + 5000n, 8)).toEqual(repeat(RED_ZONE_BYTE, 8));
        await pmm.kfree({ address: block.address });
      });

      it("talks to the machine in as few calls as the check needs", async () => {
        sys.machineCalls.clear();
        const first = await pmm.kmalloc({ size: 40n, owner: "test:calls" });
        // A new slab: everything it writes is known, one call carries it.
        expect(Object.fromEntries(sys.machineCalls)).toEqual({ WritePhysical: 1 });
        sys.machineCalls.clear();
        await pmm.kfree({ address: first.address });
        expect(Object.fromEntries(sys.machineCalls)).toEqual({ ReadPhysical: 1, WritePhysical: 1 });
        sys.machineCalls.clear();
        const again = await pmm.kmalloc({ size: 40n, owner: "test:calls" });
        expect(again.address).toBe(first.address);
        // Reuse: the poison is read once, the red zone written once.
        expect([...sys.machineCalls.values()].reduce((a, b) => a + b)).toBe(2);
        expect(sys.machineCalls.get("ReadPhysical")).toBe(1);
        sys.machineCalls.clear();
        await pmm.getHeapStatistics({});
        await pmm.validatePointer({ address: again.address });
        expect(sys.machineCalls.size).toBe(0);
        await pmm.kfree({ address: again.address });
        expect((await pmm.getHeapStatistics({})).failedAllocs).toBe(0n);
      });

      it("zeroes for kcalloc and zero=true in the machine's memory", async () => {
        const block = await pmm.kmalloc({ size: 5000n, owner: "test:zero" });
        await machine.writePhysical({ address: block.address, data: new Uint8Array(5000).fill(0xee) });
        await pmm.kfree({ address: block.address });
        const calloc = await pmm.kcalloc({ count: 100n, size: 50n, owner: "test:zero" });
        expect(calloc).toEqual(expect.objectContaining({ address: block.address, size: 5000n }));
        expect(await bytesAt(machine, calloc.address, 5000)).toEqual(repeat(0, 5000));
        const small = await pmm.kmalloc({ size: 64n, owner: "test:zero", zero: true });
        expect(await bytesAt(machine, small.address, 64)).toEqual(repeat(0, 64));
        const named = await pmm.createCache({ name: "test-zero", objectSize: 100n, owner: "test:zero" });
        expect(named.cache!.objectSize).toBe(100n);
        const object = await pmm.cacheAlloc({ name: "test-zero", owner: "test:zero", zero: true });
        expect(await bytesAt(machine, object.address, 100)).toEqual(repeat(0, 100));
        const aligned = await pmm.kmallocAligned({
          size: 300n,
          alignment: 512n,
          owner: "test:zero",
          zero: true,
        });
        expect(await bytesAt(machine, aligned.address, 300)).toEqual(repeat(0, 300));
        await failure(
          pmm.kcalloc({ count: 1n << 20n, size: 1n << 20n, owner: "test:zero" }),
          Code.INVALID_ARGUMENT,
          Errno.EOVERFLOW,
          "count",
        );
        expect((await pmm.releaseOwner({ owner: "test:zero" })).heapAllocationsFreed).toBe(4n);
      });

      it("aligns to every power of two up to the largest block", async () => {
        for (const alignment of [8n, 16n, 256n, 1024n, 4096n, 65536n, 8n * BigInt(MiB)]) {
          const a = await pmm.kmallocAligned({ size: 100n, alignment, owner: "test:align" });
          expect(a.address % alignment, `alignment ${alignment}`).toBe(0n);
          await pmm.kfree({ address: a.address });
        }
        for (const bad of [0n, 3n, 16n * BigInt(MiB)]) {
          await failure(
            pmm.kmallocAligned({ size: 8n, alignment: bad, owner: "test:align" }),
            Code.INVALID_ARGUMENT,
            Errno.EINVAL,
            "alignment",
          );
        }
        await failure(pmm.kmalloc({ size: 0n, owner: "x" }), Code.INVALID_ARGUMENT, Errno.EINVAL, "size");
        await failure(
          pmm.kmalloc({ size: 1n << 60n, owner: "x" }),
          Code.INVALID_ARGUMENT,
          Errno.EINVAL,
          "size",
        );
        await failure(pmm.kmalloc({ size: 8n }), Code.INVALID_ARGUMENT, Errno.EINVAL, "owner");
        await failure(
          pmm.kmalloc({ size: 8n, owner: "pmm:me" }),
          Code.INVALID_ARGUMENT,
          Errno.EINVAL,
          "owner",
        );
      });

      it("reallocates in place or moves the contents in the machine's memory", async () => {
        const a = await pmm.kmalloc({ size: 20n, owner: "test:realloc" });
        const pattern = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
        await machine.writePhysical({ address: a.address, data: pattern });
        const inPlace = await pmm.krealloc({
          address: a.address,
          size: 30n,
          owner: "test:realloc",
          site: "grow",
        });
        expect(inPlace).toMatchObject({ address: a.address, size: 30n, moved: false });
        expect(await bytesAt(machine, a.address, 20)).toEqual([...pattern]);
        expect(await bytesAt(machine, a.address + 30n, 2)).toEqual(repeat(RED_ZONE_BYTE, 2));
        const moved = await pmm.krealloc({
          address: a.address,
          size: 3000n,
          owner: "test:realloc",
          site: "big",
        });
        expect(moved.moved).toBe(true);
        expect(await bytesAt(machine, moved.address, 20)).toEqual([...pattern]);
        expect((await pmm.validatePointer({ address: a.address })).state).toBe(PointerState.FREED);
        expect(await bytesAt(machine, a.address, 32)).toEqual(poisoned(32));
        expect((await pmm.validatePointer({ address: moved.address })).allocation).toMatchObject({
          owner: "test:realloc",
          site: "big",
          size: 3000n,
        });
        const back = await pmm.krealloc({ address: moved.address, size: 10n, owner: "test:realloc" });
        expect(back.moved).toBe(true);
        expect(await bytesAt(machine, back.address, 10)).toEqual([...pattern.subarray(0, 10)]);
        const fresh = await pmm.krealloc({ address: 0n, size: 40n, owner: "test:realloc" });
        expect((await pmm.validatePointer({ address: fresh.address })).state).toBe(PointerState.LIVE);
        expect(await pmm.krealloc({ address: fresh.address, size: 0n })).toMatchObject({
          address: 0n,
          moved: false,
        });
        await failure(
          pmm.krealloc({ address: fresh.address, size: 8n, owner: "test:realloc" }),
          Code.FAILED_PRECONDITION,
          Errno.EINVAL,
          "address",
        );
        await pmm.kfree({ address: back.address });
      });

      it("reports a corrupted red zone on free with the owner and site, and keeps the allocation", async () => {
        const small = await pmm.kmalloc({ size: 30n, owner: "storage:ahci", site: "fis.ts:2" });
        await machine.writePhysical({ address: small.address + 30n, data: new Uint8Array([0]) });
        const overflow = await failure(
          pmm.kfree({ address: small.address }),
          Code.DATA_LOSS,
          Errno.EUCLEAN,
          "address",
        );
        expect(overflow.message).toMatch(/red zone corrupted.*storage:ahci at fis\.ts:2.*overflow/);
        expect(overflow.detail.facts).toMatchObject({ owner: "storage:ahci", site: "fis.ts:2", size: "30" });
        await machine.writePhysical({ address: small.address - 3n, data: new Uint8Array([7]) });
        await machine.writePhysical({ address: small.address + 30n, data: new Uint8Array([RED_ZONE_BYTE]) });
        const underflow = await failure(pmm.kfree({ address: small.address }), Code.DATA_LOSS, Errno.EUCLEAN);
        expect(underflow.message).toMatch(/underflow/);

        const big = await pmm.kmalloc({ size: 5000n, owner: "storage:nvme", site: "prp.ts:9" });
        await machine.writePhysical({ address: big.address + 5003n, data: new Uint8Array([0]) });
        const blockErr = await failure(
          pmm.kfree({ address: big.address }),
          Code.DATA_LOSS,
          Errno.EUCLEAN,
          "address",
        );
        expect(blockErr.message).toMatch(/storage:nvme at prp\.ts:9.*byte 5003 of a 5000-byte allocation/);
        expect((await pmm.checkLeaks({ owner: "storage:nvme" })).allocations.map((a) => a.address)).toEqual([
          big.address,
        ]);
        await machine.writePhysical({ address: big.address + 5003n, data: new Uint8Array([RED_ZONE_BYTE]) });
        expect((await pmm.kfree({ address: big.address })).size).toBe(5000n);
        await machine.writePhysical({ address: small.address - 3n, data: new Uint8Array([RED_ZONE_BYTE]) });
        expect((await pmm.kfree({ address: small.address })).size).toBe(30n);
        expect((await pmm.getHeapStatistics({})).errorsDetected).toBe(3n);
      });

      it("catches a write after free when the object is handed out again", async () => {
        const a = await pmm.kmalloc({ size: 48n, owner: "vfs", site: "dentry.ts:4" });
        await pmm.kfree({ address: a.address });
        await machine.writePhysical({ address: a.address + 10n, data: new Uint8Array([0x55]) });
        const before = await pmm.getHeapStatistics({});
        const err = await failure(
          pmm.kmalloc({ size: 48n, owner: "other" }),
          Code.DATA_LOSS,
          Errno.EUCLEAN,
          "address",
        );
        expect(err.message).toMatch(/write after free.*vfs at dentry\.ts:4.*byte 10/);
        expect(err.detail.facts).toMatchObject({
          owner: "vfs",
          site: "dentry.ts:4",
          address: `0x${a.address.toString(16)}`,
        });
        const after = await pmm.getHeapStatistics({});
        expect(after.failedAllocs - before.failedAllocs).toBe(1n);
        expect(after.errorsDetected - before.errorsDetected).toBe(1n);
        expect(after.liveAllocations).toBe(before.liveAllocations);
        // The poison is restored in the machine, so the object serves the next caller.
        expect(await bytesAt(machine, a.address, 64)).toEqual(poisoned(64));
        const reused = await pmm.kmalloc({ size: 48n, owner: "other" });
        expect(reused.address).toBe(a.address);
        await pmm.kfree({ address: reused.address });
      });

      it("refuses double frees, foreign and interior pointers, naming the allocation", async () => {
        const slab = await pmm.kmalloc({ size: 24n, owner: "vmm:pid 9", site: "pte.ts:3" });
        await pmm.kmalloc({ size: 24n, owner: "test:keep" });
        await pmm.kfree({ address: slab.address });
        const twice = await failure(
          pmm.kfree({ address: slab.address }),
          Code.FAILED_PRECONDITION,
          Errno.EINVAL,
        );
        expect(twice.message).toMatch(/vmm:pid 9 at pte\.ts:3/);
        const block = await pmm.kmalloc({ size: 10_000n, owner: "storage:nvme", site: "queue.ts:88" });
        await pmm.kfree({ address: block.address });
        const blockTwice = await failure(
          pmm.kfree({ address: block.address }),
          Code.FAILED_PRECONDITION,
          Errno.EINVAL,
        );
        expect(blockTwice.detail.facts).toMatchObject({
          owner: "storage:nvme",
          site: "queue.ts:88",
          size: "10000",
        });
        const never = await failure(
          pmm.kfree({ address: 0x40_0000n }),
          Code.INVALID_ARGUMENT,
          Errno.EINVAL,
          "address",
        );
        expect(never.message).toContain("never allocated");
        const live = await pmm.kmalloc({ size: 64n, owner: "sched", site: "task.ts:5" });
        const interior = await failure(
          pmm.kfree({ address: live.address + 8n }),
          Code.INVALID_ARGUMENT,
          Errno.EINVAL,
        );
        expect(interior.message).toMatch(/8 bytes into the allocation .* sched at task\.ts:5/);
        await failure(pmm.kfree({ address: 0n }), Code.INVALID_ARGUMENT, Errno.EINVAL, "address");
        await failure(pmm.kfree({ address: 1n << 60n }), Code.OUT_OF_RANGE, Errno.EFAULT, "address");
        expect((await pmm.getHeapStatistics({})).errorsDetected).toBe(4n);
        await pmm.releaseOwner({ owner: "sched" });
        await pmm.releaseOwner({ owner: "test:keep" });
      });

      it("classifies pointers", async () => {
        const a = await pmm.kmalloc({ size: 40n, owner: "test:ptr", site: "s" });
        const b = await pmm.kmalloc({ size: 5000n, owner: "test:ptr", site: "s" });
        const gone = await pmm.kmalloc({ size: 40n, owner: "test:ptr" });
        await pmm.kfree({ address: gone.address });
        const probe = async (address: bigint) => {
          const p = await pmm.validatePointer({ address });
          return [p.state, p.offset];
        };
        expect(await probe(a.address)).toEqual([PointerState.LIVE, 0n]);
        expect(await probe(a.address + 39n)).toEqual([PointerState.INTERIOR, 39n]);
        expect(await probe(a.address + 40n)).toEqual([PointerState.RED_ZONE, 40n]);
        expect(await probe(a.address - 1n)).toEqual([PointerState.RED_ZONE, -1n]);
        expect(await probe(b.address + 5000n)).toEqual([PointerState.RED_ZONE, 5000n]);
        expect(await probe(gone.address)).toEqual([PointerState.FREED, 0n]);
        expect(await probe(b.address + BigInt(2 * P))).toEqual([PointerState.FREED, 0n]);
        expect(await probe(HOLE)).toEqual([PointerState.NOT_HEAP, 0n]);
        expect(await probe(1n << 63n)).toEqual([PointerState.NOT_HEAP, 0n]);
        expect((await pmm.validatePointer({ address: a.address + 3n })).allocation).toMatchObject({
          address: a.address,
          owner: "test:ptr",
          site: "s",
          size: 40n,
        });
        await pmm.releaseOwner({ owner: "test:ptr" });
      });

      it("lists leaks by owner and since a mark, with the owner's frame runs", async () => {
        const a1 = await pmm.kmalloc({ size: 16n, owner: "leak:a", site: "one" });
        const b1 = await pmm.kmalloc({ size: 6000n, owner: "leak:b", site: "one" });
        const run = await pmm.allocFrames({ owner: "leak:a", count: 2n, site: "frames" });
        const { mark } = await pmm.markHeap({});
        const a2 = await pmm.kmalloc({ size: 100n, owner: "leak:a", site: "two" });
        const b2 = await pmm.kmalloc({ size: 32n, owner: "leak:b", site: "two" });
        const a3 = await pmm.kmalloc({ size: 9000n, owner: "leak:a", site: "three" });
        await pmm.kfree({ address: a2.address });
        const ofA = await pmm.checkLeaks({ owner: "leak:a" });
        expect(ofA.allocations.map((l) => [l.address, l.site])).toEqual([[a1.address, "one"], [
          a3.address,
          "three",
        ]]);
        expect(ofA.totalBytes).toBe(16n + 9000n);
        expect(ofA.frameRuns).toEqual([
          expect.objectContaining({ address: run.address, frames: 2n, owner: "leak:a", site: "frames" }),
        ]);
        const since = await pmm.checkLeaks({ sinceMark: mark });
        expect(since.allocations.map((l) => l.address)).toEqual([b2.address, a3.address]);
        expect(since.frameRuns).toEqual([]);
        expect((await pmm.checkLeaks({ owner: "leak:b", sinceMark: mark })).allocations.map((l) => l.address))
          .toEqual([b2.address]);
        expect((await pmm.checkLeaks({})).allocations.map((l) => l.address)).toEqual([
          a1.address,
          b1.address,
          b2.address,
          a3.address,
        ]);
        const leak = (await pmm.checkLeaks({ owner: "leak:b" })).allocations[0];
        expect(leak).toMatchObject({ size: 6000n, usableSize: 8192n, kind: AllocationKind.BUDDY, cache: "" });
        expect(leak.timeUnixMillis > 0n).toBe(true);
        expect(await pmm.checkLeaks({ owner: "nobody" })).toMatchObject({
          allocations: [],
          totalBytes: 0n,
          frameRuns: [],
        });
        await pmm.releaseOwner({ owner: "leak:a" });
        await pmm.releaseOwner({ owner: "leak:b" });
      });

      it("releases everything an owner holds in one call, reporting corruption", async () => {
        await pmm.createCache({ name: "proc-files", objectSize: 128n, alignment: 8n, owner: "sched:pid 42" });
        const mine = [
          await pmm.kmalloc({ size: 16n, owner: "sched:pid 42" }),
          await pmm.kmalloc({ size: 20_000n, owner: "sched:pid 42" }),
          await pmm.kmallocAligned({ size: 64n, alignment: 64n, owner: "sched:pid 42" }),
        ];
        await pmm.cacheAlloc({ name: "proc-files", owner: "sched:pid 42" });
        await pmm.allocFrames({ owner: "sched:pid 42", count: 3n });
        await pmm.allocFrame({ owner: "sched:pid 42" });
        const theirs = await pmm.kmalloc({ size: 16n, owner: "vmm" });
        await machine.writePhysical({ address: mine[0].address + 16n, data: new Uint8Array([0]) });
        const before = await pmm.getStatistics({});
        const released = await pmm.releaseOwner({ owner: "sched:pid 42" });
        expect(released).toMatchObject({
          heapAllocationsFreed: 4n,
          heapBytesFreed: 16n + 20_000n + 64n + 128n,
          frameRunsFreed: 2n,
          framesFreed: 4n,
          cachesDestroyed: 1n,
        });
        expect(released.corruptions).toHaveLength(1);
        expect(released.corruptions[0]).toMatch(/red zone corrupted.*sched:pid 42/);
        expect((await pmm.getStatistics({})).frames!.used).toBe(before.frames!.used - 4n);
        expect(await pmm.checkLeaks({ owner: "sched:pid 42" })).toMatchObject({
          allocations: [],
          frameRuns: [],
        });
        expect((await pmm.checkLeaks({})).allocations.map((l) => l.address)).toEqual([theirs.address]);
        expect((await pmm.getHeapStatistics({})).caches.map((c) => c.name)).not.toContain("proc-files");
        // The freed object was restored and poisoned: it serves the next caller cleanly.
        expect(await bytesAt(machine, mine[0].address, 16)).toEqual(poisoned(16));
        expect(await pmm.releaseOwner({ owner: "sched:pid 42" })).toMatchObject({
          heapAllocationsFreed: 0n,
          frameRunsFreed: 0n,
          corruptions: [],
        });
        await failure(pmm.releaseOwner({ owner: "" }), Code.INVALID_ARGUMENT, Errno.EINVAL, "owner");
        await failure(pmm.releaseOwner({ owner: "pmm:heap" }), Code.INVALID_ARGUMENT, Errno.EINVAL, "owner");
        await pmm.kfree({ address: theirs.address });
      });

      it("creates, uses and destroys named caches", async () => {
        const created = await pmm.createCache({
          name: "inode",
          objectSize: 200n,
          alignment: 64n,
          owner: "vfs",
        });
        expect(created.cache).toMatchObject({
          name: "inode",
          owner: "vfs",
          objectSize: 200n,
          alignment: 64n,
        });
        const objects: bigint[] = [];
        for (let i = 0; i < 30; i++) {
          objects.push((await pmm.cacheAlloc({ name: "inode", owner: "vfs" })).address);
        }
        expect(objects.every((a) => a % 64n === 0n)).toBe(true);
        expect(new Set(objects).size).toBe(30);
        expect((await pmm.validatePointer({ address: objects[0] })).allocation).toMatchObject({
          cache: "inode",
          size: 200n,
          kind: AllocationKind.SLAB,
        });
        await pmm.cacheFree({ name: "inode", address: objects.pop()! });
        expect(await bytesAt(machine, objects[0] + 200n, 8)).toEqual(repeat(RED_ZONE_BYTE, 8));
        await failure(pmm.destroyCache({ name: "inode" }), Code.FAILED_PRECONDITION, Errno.EBUSY, "name");
        await failure(
          pmm.createCache({ name: "inode", objectSize: 8n, owner: "vfs" }),
          Code.ALREADY_EXISTS,
          Errno.EEXIST,
          "name",
        );
        await failure(
          pmm.createCache({ name: "kmalloc-96", objectSize: 96n, owner: "x" }),
          Code.INVALID_ARGUMENT,
          Errno.EINVAL,
          "name",
        );
        await failure(
          pmm.createCache({ name: "odd", objectSize: 96n, alignment: 24n, owner: "x" }),
          Code.INVALID_ARGUMENT,
          Errno.EINVAL,
          "alignment",
        );
        await failure(
          pmm.createCache({ name: "none", objectSize: 0n, owner: "x" }),
          Code.INVALID_ARGUMENT,
          Errno.EINVAL,
          "object_size",
        );
        await failure(
          pmm.createCache({ name: "anon", objectSize: 8n }),
          Code.INVALID_ARGUMENT,
          Errno.EINVAL,
          "owner",
        );
        await failure(pmm.destroyCache({ name: "kmalloc-64" }), Code.PERMISSION_DENIED, Errno.EPERM, "name");
        await failure(pmm.destroyCache({ name: "nope" }), Code.NOT_FOUND, Errno.ENOENT, "name");
        await failure(pmm.cacheAlloc({ name: "nope", owner: "vfs" }), Code.NOT_FOUND, Errno.ENOENT, "name");
        const small = await pmm.kmalloc({ size: 64n, owner: "vfs" });
        const foreign = await failure(
          pmm.cacheFree({ name: "inode", address: small.address }),
          Code.INVALID_ARGUMENT,
          Errno.EINVAL,
          "address",
        );
        expect(foreign.message).toContain("kmalloc-64");
        await pmm.kfree({ address: small.address });
        for (const address of objects) await pmm.cacheFree({ name: "inode", address });
        const twice = await failure(
          pmm.cacheFree({ name: "inode", address: objects[0] }),
          Code.FAILED_PRECONDITION,
          Errno.EINVAL,
        );
        expect(twice.message).toMatch(/vfs/);
        expect((await pmm.destroyCache({ name: "inode" })).pagesReleased > 0n).toBe(true);
        // The name may come back with another layout.
        await pmm.createCache({ name: "inode", objectSize: 24n, owner: "vfs" });
        const small2 = await pmm.cacheAlloc({ name: "inode", owner: "vfs" });
        sys.machineCalls.clear();
        await pmm.cacheFree({ name: "inode", address: small2.address });
        expect(sys.machineCalls.get("ReadPhysical")).toBe(1);
        await pmm.destroyCache({ name: "inode" });
      });

      it("defragments: empty slabs and free chunks go back, figures before and after", async () => {
        const before = await pmm.getStatistics({});
        const objects: bigint[] = [];
        for (let i = 0; i < 200; i++) {
          objects.push((await pmm.kmalloc({ size: 64n, owner: "test:defrag" })).address);
        }
        const keep = await pmm.kmalloc({ size: 100_000n, owner: "test:defrag" });
        for (const address of objects) await pmm.kfree({ address });
        const first = await pmm.defragment({});
        expect(first.before!.slabs > first.after!.slabs).toBe(true);
        expect(first.slabsReleased).toBe(first.before!.emptySlabs);
        expect(first.after).toMatchObject({ emptySlabs: 0n, allocatedBytes: 128n * 1024n });
        await pmm.kfree({ address: keep.address });
        const second = await pmm.defragment({});
        expect(second.framesReturned).toBe(2048n);
        expect(second.after).toMatchObject({ heapBytes: 0n, allocatedBytes: 0n });
        expect((await pmm.checkLeaks({ owner: "pmm:heap" })).frameRuns).toEqual([]);
        expect((await pmm.getStatistics({})).frames).toEqual(before.frames);
      });
    });
  });
}

describe("the heap's memory journal", () => {
  const everything = (s: { address: number; length: number }) => [s];

  it("answers from what it read and wrote, and names what it lacks", () => {
    const journal = new HeapMemoryJournal();
    expect(() => journal.fill(0, 1, 0)).toThrow(/outside a heap call/);
    journal.begin();
    journal.addMachineBytes(100, new Uint8Array([1, 2, 3, 4]));
    journal.fill(102, 10, 9);
    expect([...journal.read(100, 6)]).toEqual([1, 2, 9, 9, 9, 9]);
    expect(journal.findMismatch(102, 10, 9)).toBe(-1);
    expect(journal.findMismatch(100, 4, 1)).toBe(1);
    let missing: unknown;
    try {
      journal.findMismatch(90, 30, 9);
    } catch (e) {
      missing = e;
    }
    expect(missing).toBeInstanceOf(MissingBytes);
    expect((missing as MissingBytes).span).toEqual({ address: 90, length: 30 });
    journal.end();
  });

  it("reduces writes to their final bytes in as few calls as the layout allows", () => {
    const journal = new HeapMemoryJournal();
    journal.begin();
    journal.fill(0, 2 * P, 0xbb);
    for (let i = 0; i < 4; i++) journal.fill(16 + i * 48, 32, 0x6b);
    journal.write(20, new Uint8Array([1, 2, 3]));
    journal.addMachineBytes(0, new Uint8Array(64));
    const writes = journal.writes(everything);
    expect(writes).toHaveLength(1);
    const [only] = writes;
    expect("bytes" in only && only.address === 0 && only.bytes.length === 2 * P).toBe(true);
    const bytes = (only as { bytes: Uint8Array }).bytes;
    expect([...bytes.subarray(14, 26)]).toEqual([
      0xbb,
      0xbb,
      0x6b,
      0x6b,
      0x6b,
      0x6b,
      1,
      2,
      3,
      0x6b,
      0x6b,
      0x6b,
    ]);
    expect(bytes[48]).toBe(0xbb);

    journal.begin();
    journal.fill(8 * P, 32 * P, 0);
    journal.fill(40 * P, 8, 0xbb);
    journal.fill(100 * P, 8, 0xbb);
    expect(journal.writes(everything)).toEqual([
      { address: 8 * P, length: 32 * P, value: 0 },
      { address: 40 * P, length: 8, value: 0xbb },
      { address: 100 * P, length: 8, value: 0xbb },
    ]);
    // Memory the heap gave back during the call is not written.
    expect(journal.writes((s) => s.address >= 100 * P ? [] : [s])).toHaveLength(2);
    journal.end();
  });

  it("merges reads less than a page apart, within the transfer limit", () => {
    expect(
      readPlan([{ address: 4000, length: 8 }, { address: 100, length: 8 }, { address: 200, length: 50 }]),
    )
      .toEqual([{ address: 100, length: 3908 }]);
    expect(readPlan([{ address: 0, length: 8 }, { address: 0x10000, length: 8 }])).toHaveLength(2);
    expect(readPlan([{ address: 0, length: 40 * MiB }]).map((s) => s.length)).toEqual([
      16 * MiB,
      16 * MiB,
      8 * MiB,
    ]);
  });
});

describe("a booted system", () => {
  it("serves the machine's real memory map through the gateway, and astra call shows it", async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "astra-pmm-" });
    const system = await bootEmbedded(
      loadFactory,
      { memoryBytes: 128 * MiB, numaNodes: 2, cpus: 2, dataDir },
      {
        gateway: "127.0.0.1:0",
      },
    );
    const gateway = new GrpcTransport(system.gatewayAddress!);
    try {
      const pmm = client(PmmService, gateway);
      const machine = client(MachineService, gateway);
      const firmware = await machine.getMemoryMap({});
      const normalised = normalizeMemoryMap(firmware.regions.map((r) => ({
        base: r.base,
        length: r.length,
        type: MemoryType[MachineMemoryType[r.type] as keyof typeof MemoryType],
        node: r.numaNode,
      })));
      const map = await pmm.getMemoryMap({});
      expect(map.regions.map((r) => [r.base, r.length, r.type, r.node])).toEqual(
        normalised.map((r) => [r.base, r.length, r.type, r.node]),
      );
      const stats = await pmm.getStatistics({});
      expect(stats.frames!.total).toBe(BigInt(128 * MiB / P));
      const cli = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "cli/main.ts",
          "call",
          "--endpoint",
          system.gatewayAddress!,
          "pmm",
          "GetStatistics",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      expect(cli.code, new TextDecoder().decode(cli.stderr)).toBe(0);
      const shown = JSON.parse(new TextDecoder().decode(cli.stdout));
      expect(
        shown.regions.map((
          r: { base: string; length: string; node?: number },
        ) => [r.base, r.length, r.node ?? 0]),
      )
        .toEqual(stats.regions.map((r) => [String(r.base), String(r.length), r.node]));
      expect(shown.frames.total).toBe(String(stats.frames!.total));
    } finally {
      gateway.close();
      await system.shutdown();
      await Deno.remove(dataDir, { recursive: true });
    }
  }, 60_000);
});
