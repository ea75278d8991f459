import { describe, expect, it } from "vitest";
import { MmioBus, type MmioDevice } from "../../../services/machine/devices/mmio.ts";
import { MMIO_BASE, MMIO_BYTES } from "../../../services/machine/firmware.ts";
import { AstraError, Errno } from "../../../lib/errors.ts";

/** Plain read-write registers that log every access the bus makes. */
class Registers implements MmioDevice {
  readonly words = new Uint32Array(16);
  readonly writes: [number, number, number][] = [];

  readRegister(offset: number): number {
    return this.words[offset / 4];
  }

  writeRegister(offset: number, value: number, mask: number): void {
    this.writes.push([offset, value >>> 0, mask >>> 0]);
    this.words[offset / 4] = (this.words[offset / 4] & ~mask) | (value & mask);
  }
}

function errnoOf(fn: () => unknown): Errno {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AstraError);
    return (e as AstraError).errno;
  }
  throw new Error("expected an AstraError");
}

describe("MMIO bus", () => {
  it("dispatches 4-byte accesses to the device at the right offset", () => {
    const bus = new MmioBus();
    const a = new Registers();
    const b = new Registers();
    bus.map("a", MMIO_BASE, 64, a);
    bus.map("b", MMIO_BASE + 0x1000, 64, b);
    bus.write32(MMIO_BASE + 0x1008, 0xdeadbeef);
    expect(b.words[2]).toBe(0xdeadbeef);
    expect(a.words[2]).toBe(0);
    expect(bus.read(MMIO_BASE + 0x1008, 4)).toBe(0xdeadbeefn);
    expect(bus.read32(MMIO_BASE + 0x1008)).toBe(0xdeadbeef);
    expect(bus.mappings().find((m) => m.name === "b")).toMatchObject({ reads: 2, writes: 1 });
  });

  it("hands narrow stores to the device as byte lanes and extracts narrow loads", () => {
    const bus = new MmioBus();
    const dev = new Registers();
    bus.map("dev", MMIO_BASE, 64, dev);
    dev.words[1] = 0x11223344;
    expect(bus.read(MMIO_BASE + 4, 1)).toBe(0x44n);
    expect(bus.read(MMIO_BASE + 7, 1)).toBe(0x11n);
    expect(bus.read(MMIO_BASE + 6, 2)).toBe(0x1122n);
    bus.write(MMIO_BASE + 5, 1, 0xabn);
    expect(dev.writes.at(-1)).toEqual([4, 0xab00, 0xff00]);
    expect(dev.words[1]).toBe(0x1122ab44);
    bus.write(MMIO_BASE + 6, 2, 0x1234ffffn);
    expect(dev.writes.at(-1)).toEqual([4, 0xffff0000, 0xffff0000]);
    expect(dev.words[1]).toBe(0xffffab44);
  });

  it("splits an 8-byte access into two 32-bit ones, low half first", () => {
    const bus = new MmioBus();
    const dev = new Registers();
    bus.map("dev", MMIO_BASE, 64, dev);
    bus.write(MMIO_BASE + 8, 8, 0x0123456789abcdefn);
    expect(dev.writes).toEqual([[8, 0x89abcdef, 0xffffffff], [12, 0x01234567, 0xffffffff]]);
    expect(bus.read(MMIO_BASE + 8, 8)).toBe(0x0123456789abcdefn);
  });

  it("refuses unmapped addresses with EFAULT and bad accesses with EINVAL", () => {
    const bus = new MmioBus();
    bus.map("dev", MMIO_BASE + 0x2000, 64, new Registers());
    expect(errnoOf(() => bus.read(MMIO_BASE, 4))).toBe(Errno.EFAULT);
    expect(errnoOf(() => bus.write32(MMIO_BASE + 0x2040, 1))).toBe(Errno.EFAULT);
    expect(errnoOf(() => bus.read(MMIO_BASE + 0x2002, 4))).toBe(Errno.EINVAL);
    expect(errnoOf(() => bus.read(MMIO_BASE + 0x2004, 8))).toBe(Errno.EINVAL);
    expect(errnoOf(() => bus.read(MMIO_BASE + 0x2000, 3 as 4))).toBe(Errno.EINVAL);
  });

  it("keeps mappings inside the device window and apart from each other", () => {
    const bus = new MmioBus();
    bus.map("a", MMIO_BASE, 0x1100, new Registers());
    expect(errnoOf(() => bus.map("b", MMIO_BASE + 0x1000, 0x100, new Registers()))).toBe(Errno.EBUSY);
    expect(errnoOf(() => bus.map("a", MMIO_BASE + 0x4000, 0x100, new Registers()))).toBe(Errno.EEXIST);
    expect(errnoOf(() => bus.map("c", MMIO_BASE + MMIO_BYTES - 8, 16, new Registers()))).toBe(Errno.EINVAL);
    expect(errnoOf(() => bus.map("d", 0x1000, 16, new Registers()))).toBe(Errno.EINVAL);
    bus.unmap("a");
    expect(errnoOf(() => bus.read32(MMIO_BASE))).toBe(Errno.EFAULT);
    expect(errnoOf(() => bus.unmap("a"))).toBe(Errno.ENOENT);
  });
});
