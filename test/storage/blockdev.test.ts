import { afterEach, describe, expect, it } from "vitest";
import { Code } from "../../lib/errors.ts";
import {
  BLOCK_SIZE,
  FileBlockDevice,
  MemoryBlockDevice,
  SECTOR_SIZE,
} from "../../services/storage/lfsx/blockdev.ts";

const block = (fill: number) => new Uint8Array(BLOCK_SIZE).fill(fill);

describe("MemoryBlockDevice", () => {
  it("shows writes at once but keeps them volatile until a flush", async () => {
    const device = new MemoryBlockDevice(8);
    await device.writeBlocks(1, block(1));
    expect((await device.readBlocks(1, 1))[0]).toBe(1);
    expect(device.crashImage({ count: 0 }).get(1)).toBeUndefined();
    await device.flush();
    expect(device.crashImage({ count: 0 }).get(1)?.[0]).toBe(1);
    expect(device.pendingWrites).toBe(0);
  });

  it("persists exactly a prefix of unflushed writes, in issue order", async () => {
    const device = new MemoryBlockDevice(8);
    await device.writeBlocks(2, block(1));
    await device.writeBlocks(3, block(2));
    await device.writeBlocks(2, block(3));
    const cut = (count: number) => {
      const image = device.crashImage({ count });
      return [image.get(2)?.[0], image.get(3)?.[0]];
    };
    expect(cut(0)).toEqual([undefined, undefined]);
    expect(cut(1)).toEqual([1, undefined]);
    expect(cut(2)).toEqual([1, 2]);
    expect(cut(3)).toEqual([3, 2]);
  });

  it("tears the first lost write sector by sector, one sector part-way", async () => {
    const device = new MemoryBlockDevice(8);
    await device.writeBlocks(4, new Uint8Array(2 * BLOCK_SIZE).fill(0xaa));
    let seed = 1;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const image = device.crashImage({ count: 0, tear: true, random });
    const torn = new Uint8Array(2 * BLOCK_SIZE);
    torn.set(image.get(4) ?? new Uint8Array(BLOCK_SIZE));
    torn.set(image.get(5) ?? new Uint8Array(BLOCK_SIZE), BLOCK_SIZE);
    let whole = 0;
    let partial = 0;
    for (let s = 0; s < torn.length / SECTOR_SIZE; s++) {
      const sector = torn.subarray(s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE);
      const written = sector.filter((b) => b === 0xaa).length;
      if (written === SECTOR_SIZE) whole++;
      else if (written > 0) {
        partial++;
        // A half-written sector holds a prefix of the new bytes.
        expect(sector.subarray(0, written).every((b) => b === 0xaa)).toBe(true);
      }
    }
    expect(partial).toBe(1);
    expect(whole).toBeGreaterThan(0);
    expect(whole).toBeLessThan(15);
  });

  it("can lose any subset of unflushed writes when the drive reorders", async () => {
    const device = new MemoryBlockDevice(16);
    for (let i = 0; i < 10; i++) await device.writeBlocks(i, block(i + 1));
    const outcomes = new Set<string>();
    for (let trial = 0; trial < 50; trial++) {
      const image = device.crashImage({ order: "subset" });
      outcomes.add(Array.from({ length: 10 }, (_, i) => (image.has(i) ? 1 : 0)).join(""));
    }
    // Not only prefixes: some pattern has a later write without an earlier one.
    expect([...outcomes].some((pattern) => /0.*1/.test(pattern))).toBe(true);
  });

  it("power cut leaves a usable device holding only the survivors", async () => {
    const device = new MemoryBlockDevice(8);
    await device.writeBlocks(0, block(9));
    await device.flush();
    await device.writeBlocks(0, block(8));
    device.powerCut({ count: 0 });
    expect((await device.readBlocks(0, 1))[0]).toBe(9);
    expect(device.pendingWrites).toBe(0);
  });

  it("rejects ranges beyond the device and partial blocks, and injects I/O errors", async () => {
    const device = new MemoryBlockDevice(4);
    await expect(device.readBlocks(3, 2)).rejects.toMatchObject({ code: Code.OUT_OF_RANGE });
    await expect(device.writeBlocks(0, new Uint8Array(100))).rejects.toMatchObject({
      code: Code.INVALID_ARGUMENT,
    });
    device.failNext("write");
    await expect(device.writeBlocks(0, block(1))).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await device.writeBlocks(0, block(1));
  });
});

describe("FileBlockDevice", () => {
  const path = Deno.makeTempFileSync({ suffix: ".img" });
  afterEach(() => Deno.removeSync(path));

  it("round-trips blocks through a sparse image file and reopens it", async () => {
    const device = await FileBlockDevice.create(path, 64);
    expect(device.blockCount).toBe(64);
    const data = new Uint8Array(3 * BLOCK_SIZE).map((_, i) => i % 251);
    await device.writeBlocks(10, data);
    await device.flush();
    await device.close();
    const reopened = await FileBlockDevice.open(path);
    expect(reopened.blockCount).toBe(64);
    expect(await reopened.readBlocks(10, 3)).toEqual(data);
    expect((await reopened.readBlocks(63, 1)).every((b) => b === 0)).toBe(true);
    await expect(reopened.readBlocks(63, 2)).rejects.toMatchObject({ code: Code.OUT_OF_RANGE });
    expect(reopened.stats.reads).toBe(2);
    await reopened.close();
    const readOnly = await FileBlockDevice.open(path, { readOnly: true });
    await expect(readOnly.writeBlocks(0, new Uint8Array(BLOCK_SIZE))).rejects.toMatchObject({
      code: Code.FAILED_PRECONDITION,
    });
    await readOnly.close();
  });
});
