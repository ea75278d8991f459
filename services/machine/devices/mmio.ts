// The MMIO bus: device register windows (AHCI ABAR, NVMe BAR0, ...) mapped inside the machine's
// device window, and loads and stores of 1, 2, 4 or 8 bytes dispatched to them. Devices see only
// naturally aligned 32-bit registers: a narrower store reaches the register with a byte-lane mask
// (so write-1-to-clear and write-1-to-set registers only see the lanes actually written), and an
// 8-byte access is two 32-bit ones, the low half first, as a 64-bit register is defined to take
// them. Registers are little-endian, as on PCI.
import { alreadyExists, AstraError, Code, Errno, invalidArgument, notFound } from "../../../lib/errors.ts";
import { MMIO_BASE, MMIO_BYTES } from "../firmware.ts";

export type MmioWidth = 1 | 2 | 4 | 8;

/** A device's register window, addressed by offsets from its base. */
export interface MmioDevice {
  /** The 32-bit register at a 4-byte-aligned offset (unsigned). */
  readRegister(offset: number): number;
  /** Stores the bits of `value` selected by `mask` into the 32-bit register at `offset`. */
  writeRegister(offset: number, value: number, mask: number): void;
}

export interface MmioMapping {
  name: string;
  base: number;
  length: number;
  /** Accesses since the mapping was made (an 8-byte access counts once). */
  reads: number;
  writes: number;
}

interface Mapping extends MmioMapping {
  device: MmioDevice;
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

export class MmioBus {
  readonly windowBase: number;
  readonly windowLength: number;
  #mappings: Mapping[] = [];

  constructor(options: { windowBase?: number; windowLength?: number } = {}) {
    this.windowBase = options.windowBase ?? MMIO_BASE;
    this.windowLength = options.windowLength ?? MMIO_BYTES;
  }

  /** Maps a device's registers at [base, base+length), 8-byte aligned, inside the device window. */
  map(name: string, base: number, length: number, device: MmioDevice): void {
    if (!name) throw invalidArgument("name", "a mapping needs a name");
    if (this.#mappings.some((m) => m.name === name)) {
      throw alreadyExists("name", `a device is already mapped as ${name}`);
    }
    if (
      !Number.isSafeInteger(base) || base % 8 !== 0 || !Number.isSafeInteger(length) || length <= 0 ||
      length % 8 !== 0
    ) {
      throw invalidArgument(
        "base",
        `a register window needs an 8-byte-aligned base and length, not ${hex(base)}+${length}`,
      );
    }
    if (base < this.windowBase || base + length > this.windowBase + this.windowLength) {
      throw invalidArgument(
        "base",
        `${hex(base)}+${hex(length)} is outside the device window ${hex(this.windowBase)}+${
          hex(this.windowLength)
        }`,
      );
    }
    const clash = this.#mappings.find((m) => base < m.base + m.length && m.base < base + length);
    if (clash) {
      throw alreadyExists(
        "base",
        `${hex(base)}+${hex(length)} overlaps ${clash.name} at ${hex(clash.base)}`,
        Errno.EBUSY,
      );
    }
    this.#mappings.push({ name, base, length, device, reads: 0, writes: 0 });
    this.#mappings.sort((a, b) => a.base - b.base);
  }

  unmap(name: string): void {
    const before = this.#mappings.length;
    this.#mappings = this.#mappings.filter((m) => m.name !== name);
    if (this.#mappings.length === before) throw notFound("name", `no device is mapped as ${name}`);
  }

  mappings(): MmioMapping[] {
    return this.#mappings.map(({ name, base, length, reads, writes }) => ({
      name,
      base,
      length,
      reads,
      writes,
    }));
  }

  /** A load of `width` bytes; the result is zero-extended. */
  read(address: number, width: MmioWidth): bigint {
    const { mapping, offset } = this.#resolve(address, width);
    mapping.reads++;
    if (width === 8) {
      const low = mapping.device.readRegister(offset);
      const high = mapping.device.readRegister(offset + 4);
      return (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
    }
    return BigInt(this.#readNarrow(mapping.device, offset, width));
  }

  /** A store of the low `width` bytes of `value`. */
  write(address: number, width: MmioWidth, value: bigint): void {
    const { mapping, offset } = this.#resolve(address, width);
    mapping.writes++;
    const v = BigInt.asUintN(width * 8, value);
    if (width === 8) {
      mapping.device.writeRegister(offset, Number(v & 0xffff_ffffn), 0xffff_ffff);
      mapping.device.writeRegister(offset + 4, Number(v >> 32n), 0xffff_ffff);
      return;
    }
    this.#writeNarrow(mapping.device, offset, width, Number(v));
  }

  /** A 32-bit load, without BigInt: the drivers' common case. */
  read32(address: number): number {
    const { mapping, offset } = this.#resolve(address, 4);
    mapping.reads++;
    return mapping.device.readRegister(offset) >>> 0;
  }

  /** A 32-bit store, without BigInt. */
  write32(address: number, value: number): void {
    const { mapping, offset } = this.#resolve(address, 4);
    mapping.writes++;
    mapping.device.writeRegister(offset, value >>> 0, 0xffff_ffff);
  }

  #readNarrow(device: MmioDevice, offset: number, width: 1 | 2 | 4): number {
    const lane = offset & 3;
    const word = device.readRegister(offset - lane) >>> 0;
    if (width === 4) return word;
    return (word >>> (lane * 8)) & (width === 1 ? 0xff : 0xffff);
  }

  #writeNarrow(device: MmioDevice, offset: number, width: 1 | 2 | 4, value: number): void {
    const lane = offset & 3;
    const bits = width === 4 ? 0xffff_ffff : (width === 1 ? 0xff : 0xffff) << (lane * 8);
    device.writeRegister(offset - lane, (value << (lane * 8)) >>> 0, bits >>> 0);
  }

  #resolve(address: number, width: number): { mapping: Mapping; offset: number } {
    if (width !== 1 && width !== 2 && width !== 4 && width !== 8) {
      throw invalidArgument("width", `an MMIO access is 1, 2, 4 or 8 bytes, not ${width}`);
    }
    if (!Number.isSafeInteger(address) || address < 0) {
      throw invalidArgument("address", `bad MMIO address ${address}`);
    }
    if (address % width !== 0) {
      throw invalidArgument(
        "address",
        `a ${width}-byte MMIO access at ${hex(address)} is not naturally aligned`,
      );
    }
    let lo = 0, hi = this.#mappings.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = this.#mappings[mid];
      if (address < m.base) hi = mid - 1;
      else if (address >= m.base + m.length) lo = mid + 1;
      else return { mapping: m, offset: address - m.base };
    }
    throw new AstraError(Code.OUT_OF_RANGE, Errno.EFAULT, `no device registers at ${hex(address)}`, {
      argument: "address",
    });
  }
}
