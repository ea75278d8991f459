// The drivers' DMA pool and the hardware layer's merged physical transfers, on the device models.
import { describe, expect, it } from "vitest";
import { DmaPool } from "../../../services/storage/dma.ts";
import {
  type DeviceAccess,
  DeviceMachine,
  readSegments,
  writeSegments,
} from "../../../services/storage/hardware.ts";
import { expectBytes, MiB, pattern } from "./helpers.ts";

function setup() {
  const machine = new DeviceMachine({ memoryBytes: 64 * MiB });
  const hw = machine.hardware();
  return { machine, hw, pool: new DmaPool(hw, "storage:test", 256 * 1024) };
}

describe("DMA pool", () => {
  it("carves aligned runs out of chunks it takes from the hardware a few at a time", async () => {
    const { machine, pool } = setup();
    const a = await pool.alloc(10_000, 1024);
    expect(a.bytes).toBe(3 * 4096);
    const b = await pool.alloc(4096, 64 * 1024);
    expect(b.address % (64 * 1024)).toBe(0);
    expect(pool.statistics()).toMatchObject({ chunks: 1, inUseBytes: 4 * 4096 });
    // Bigger than half a chunk: a region of its own.
    const big = await pool.alloc(200 * 1024);
    expect(pool.statistics().chunks).toBe(1);
    expect(machine.dma.allocatedPages).toBe(64 + 50);
    pool.free(a);
    pool.free(b);
    pool.free(big);
    expect(pool.statistics().inUseBytes).toBe(0);
    await pool.destroy();
    expect(machine.dma.allocatedPages).toBe(0);
  });

  it("hands out the lowest free pages first, however pages come and go", async () => {
    const { pool } = setup();
    const pages = [];
    for (let i = 0; i < 16; i++) pages.push(await pool.alloc(4096));
    const base = pages[0].address;
    expect(pages.map((p) => (p.address - base) / 4096)).toEqual([...Array(16).keys()]);
    pool.free(pages[9]);
    pool.free(pages[3]);
    pool.free(pages[4]);
    expect((await pool.alloc(4096)).address).toBe(base + 3 * 4096);
    // Two pages fit only in the run after the last one handed out, not in the holes.
    expect((await pool.alloc(2 * 4096)).address).toBe(base + 16 * 4096);
    expect((await pool.alloc(4096)).address).toBe(base + 4 * 4096);
    expect((await pool.alloc(4096)).address).toBe(base + 9 * 4096);
    pool.free(pages[1]);
    expect((await pool.alloc(4096, 4 * 4096)).address).toBe(base + 20 * 4096);
    expect((await pool.alloc(4096)).address).toBe(base + 4096);
    await pool.destroy();
  });

  it("hands out scattered runs when no chunk has one piece big enough, and grows when full", async () => {
    const { pool } = setup();
    const pages = [];
    for (let i = 0; i < 64; i++) pages.push(await pool.alloc(4096));
    // Every other page free: 32 pages in 32 runs.
    for (let i = 0; i < 64; i += 2) pool.free(pages[i]);
    const runs = pool.takeRuns(32 * 4096)!;
    expect(runs.length).toBe(32);
    expect(runs.every((r) => r.bytes === 4096)).toBe(true);
    expect(pool.takeRuns(4096)).toBeNull();
    const grown = await pool.allocRuns(8 * 4096);
    expect(grown).toEqual([{ address: grown[0].address, bytes: 8 * 4096 }]);
    expect(pool.statistics().chunks).toBe(2);
    await pool.destroy();
  });
});

describe("merged physical transfers", () => {
  it("reads neighbouring segments in one transfer and hands each its own bytes", async () => {
    const { machine, hw } = setup();
    const base = 8 * MiB;
    machine.memory.write(base, pattern(64 * 1024, 1));
    const batches: DeviceAccess[][] = [];
    const counted = { access: (a: readonly DeviceAccess[]) => (batches.push([...a]), hw.access(a)) };
    const segments = [
      { address: base + 8192, length: 4096 },
      { address: base, length: 4096 },
      { address: base + 4096, length: 100 },
      { address: base + 60 * 1024, length: 512 },
    ];
    const parts = await readSegments(counted as unknown as typeof hw, segments);
    const all = pattern(64 * 1024, 1);
    segments.forEach((s, i) =>
      expectBytes(parts[i], all.subarray(s.address - base, s.address - base + s.length))
    );
    // The first three lie side by side; the last one is too far away to be worth merging. Both
    // transfers go to the machine in one batch.
    expect(batches).toEqual([[
      { op: "read-physical", address: base, length: 8192 + 4096 },
      { op: "read-physical", address: base + 60 * 1024, length: 512 },
    ]]);
  });

  it("writes exactly adjacent segments as one", async () => {
    const { machine, hw } = setup();
    const base = 9 * MiB;
    const batches: DeviceAccess[][] = [];
    const counted = { access: (a: readonly DeviceAccess[]) => (batches.push([...a]), hw.access(a)) };
    await writeSegments(counted as unknown as typeof hw, [
      { address: base + 512, data: pattern(512, 2) },
      { address: base, data: pattern(512, 1) },
      { address: base + 4096, data: pattern(512, 3) },
    ]);
    expect(batches.length).toBe(1);
    expect(batches[0].map((a) => a.op === "write-physical" && [a.address, a.data.length])).toEqual([
      [base, 1024],
      [base + 4096, 512],
    ]);
    expectBytes(machine.memory.read(base, 512), pattern(512, 1));
    expectBytes(machine.memory.read(base + 512, 512), pattern(512, 2));
    expectBytes(machine.memory.read(base + 4096, 512), pattern(512, 3));
  });
});
