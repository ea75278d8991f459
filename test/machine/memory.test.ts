import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { firmwareMemoryMap, MIB, MMIO_BASE, NODE_STRIDE } from "../../services/machine/firmware.ts";
import { CHUNK_SIZE, PhysicalMemory } from "../../services/machine/memory.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";

function fault(fn: () => unknown): AstraError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AstraError);
    return e as AstraError;
  }
  throw new Error("expected a fault");
}

describe("firmware memory map", () => {
  it("lays out node 0 with firmware ranges, other nodes at their own base, and the device window", () => {
    const map = firmwareMemoryMap({ memoryBytes: 2 * 1024 * MIB, numaNodes: 2 });
    expect(map.map((r) => [r.type, r.node])).toEqual([
      ["reserved", 0],
      ["usable", 0],
      ["acpi-reclaimable", 0],
      ["acpi-nvs", 0],
      ["usable", 1],
      ["device", 0],
    ]);
    const node0 = map.filter((r) => r.node === 0 && r.type !== "device");
    expect(node0.reduce((s, r) => s + r.length, 0)).toBe(1024 * MIB);
    expect(map[4]).toMatchObject({ base: NODE_STRIDE, length: 1024 * MIB });
    expect(map[5].base).toBe(MMIO_BASE);
    for (let i = 1; i < map.length; i++) {
      expect(map[i].base).toBeGreaterThanOrEqual(map[i - 1].base + map[i - 1].length);
    }
  });
});

describe("physical memory", () => {
  const map = firmwareMemoryMap({
    memoryBytes: 64 * MIB,
    numaNodes: 2,
    badRanges: [{ base: 4 * MIB, length: 64 * 1024 }],
  });

  it("reads zeros from untouched RAM and backs only what is written", () => {
    const mem = new PhysicalMemory(map);
    expect([...mem.read(2 * MIB, 8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(mem.residentBytes).toBe(0);
    mem.write(2 * MIB + 10, new Uint8Array([1, 2, 3]));
    expect(mem.residentBytes).toBe(CHUNK_SIZE);
    expect([...mem.read(2 * MIB + 9, 5)]).toEqual([0, 1, 2, 3, 0]);
  });

  it("lends the RAM of a range for a device to transfer into in place, and reports the change", () => {
    const mem = new PhysicalMemory(map);
    const changed: [number, number][] = [];
    mem.observeWrites((address, length) => changed.push([address, length]));
    const start = 2 * MIB + CHUNK_SIZE - 100; // across a chunk boundary
    const views = mem.dmaViews(start, 300);
    expect(views.map((v) => v.length)).toEqual([100, 200]);
    views[0].fill(7);
    views[1].fill(9);
    mem.written(start, 300);
    expect(changed).toEqual([[start, 300]]);
    expect([...mem.read(start + 98, 4)]).toEqual([7, 7, 9, 9]);
    expect(fault(() => mem.dmaViews(4 * MIB + 100, 8)).errno).toBe(Errno.EFAULT);
  });

  it("faults on holes, bad RAM and device ranges with EFAULT", () => {
    const mem = new PhysicalMemory(map);
    const hole = fault(() => mem.read(40 * MIB, 4)); // beyond node 0's 32 MiB
    expect(hole.code).toBe(Code.OUT_OF_RANGE);
    expect(hole.errno).toBe(Errno.EFAULT);
    expect(fault(() => mem.write(4 * MIB + 100, new Uint8Array(1))).errno).toBe(Errno.EFAULT);
    expect(fault(() => mem.read(MMIO_BASE, 4)).errno).toBe(Errno.EFAULT);
    expect(fault(() => mem.read(4 * MIB - 2, 4)).detail.argument).toBe("length");
    expect(mem.read(NODE_STRIDE + 5, 1).length).toBe(1); // node 1 RAM is reachable
  });

  it("agrees with a flat model for random writes, fills and reads across chunk boundaries", () => {
    const size = 3 * CHUNK_SIZE;
    const base = 2 * MIB - CHUNK_SIZE / 2; // straddles chunk boundaries
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant("write" as const),
              at: fc.nat(size - 1),
              data: fc.uint8Array({ maxLength: 3000 }),
            }),
            fc.record({
              op: fc.constant("fill" as const),
              at: fc.nat(size - 1),
              len: fc.nat(CHUNK_SIZE + 10),
              value: fc.integer({ min: 0, max: 255 }),
            }),
          ),
          { maxLength: 30 },
        ),
        (ops) => {
          const mem = new PhysicalMemory(map);
          const model = new Uint8Array(size);
          for (const o of ops) {
            if (o.op === "write") {
              const data = o.data.subarray(0, size - o.at);
              mem.write(base + o.at, data);
              model.set(data, o.at);
            } else {
              const len = Math.min(o.len, size - o.at);
              mem.fill(base + o.at, len, o.value);
              model.fill(o.value, o.at, o.at + len);
            }
          }
          const got = mem.read(base, size);
          const mismatch = got.findIndex((b, i) => b !== model[i]);
          expect(mismatch).toBe(-1);
        },
      ),
      { numRuns: 150 },
    );
  });
});
