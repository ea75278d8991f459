// The AHCI HBA driven as a driver drives it: registers through the MMIO bus, command lists,
// command tables, PRDTs and the received-FIS area in guest physical memory, interrupts through
// the interrupt controller. The cases follow QEMU's tests/qtest/ahci-test.c.
import { describe, expect, it } from "vitest";
import * as A from "../../../services/machine/devices/ahci.ts";
import { DiskImage } from "../../../services/machine/devices/diskimage.ts";
import { InterruptController } from "../../../services/machine/devices/intc.ts";
import { MmioBus } from "../../../services/machine/devices/mmio.ts";
import { firmwareMemoryMap, MIB, MMIO_BASE } from "../../../services/machine/firmware.ts";
import { PhysicalMemory } from "../../../services/machine/memory.ts";

const ABAR = MMIO_BASE + 0x10000;
const IRQ = 32;
const SECTOR = 512;
const TIB = 1024 * 1024 * MIB;

interface Prd {
  address: number;
  length: number;
  interrupt?: boolean;
}

interface FisFields {
  lba?: number;
  count?: number;
  features?: number;
  device?: number;
  control?: number;
  /** C bit: false builds a control FIS (SRST). */
  command?: boolean;
}

function h2d(command: number, f: FisFields = {}): Uint8Array {
  const fis = new Uint8Array(20);
  const lba = f.lba ?? 0;
  fis[0] = A.FIS_H2D;
  fis[1] = f.command === false ? 0 : 0x80;
  fis[2] = command;
  fis[3] = (f.features ?? 0) & 0xff;
  fis[4] = lba & 0xff;
  fis[5] = (lba >>> 8) & 0xff;
  fis[6] = (lba >>> 16) & 0xff;
  fis[7] = f.device ?? 0x40;
  fis[8] = Math.floor(lba / 2 ** 24) & 0xff;
  fis[9] = Math.floor(lba / 2 ** 32) & 0xff;
  fis[10] = Math.floor(lba / 2 ** 40) & 0xff;
  fis[11] = ((f.features ?? 0) >>> 8) & 0xff;
  fis[12] = (f.count ?? 0) & 0xff;
  fis[13] = ((f.count ?? 0) >>> 8) & 0xff;
  fis[15] = f.control ?? 0;
  return fis;
}

function pattern(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * 7 + seed * 131 + (i >> 9) * 13) & 0xff;
  return out;
}

/** A machine with an HBA on the MMIO bus, and the register-level driver side of the test. */
class Rig {
  readonly memory = new PhysicalMemory(firmwareMemoryMap({ memoryBytes: 192 * MIB, numaNodes: 1 }));
  readonly intc = new InterruptController({ cpus: 1 });
  readonly bus = new MmioBus();
  readonly hba: A.AhciHba;
  readonly disk: DiskImage;
  readonly interrupts: number[] = [];
  readonly ports = new Map<number, { clb: number; fb: number }>();
  #next = 4 * MIB;

  constructor(options: { diskBytes?: number; lbaSize?: 512 | 4096 } = {}) {
    this.disk = DiskImage.memory({
      sizeBytes: options.diskBytes ?? 4 * TIB,
      lbaSize: options.lbaSize ?? 512,
    });
    const identity = { model: "QEMU-like HARDDISK", serial: "testdisk", firmware: "version" };
    this.hba = new A.AhciHba({
      memory: this.memory,
      interrupts: this.intc,
      irq: IRQ,
      ports: 4,
      disks: [{ port: 0, disk: this.disk, identity }],
    });
    this.bus.map("ahci0", ABAR, A.AHCI_MMIO_SIZE, this.hba);
    this.intc.register({
      irq: IRQ,
      name: "ahci-test",
      sharing: "exclusive",
      deliver: (d) => {
        this.interrupts.push(this.read(A.AHCI_IS));
        this.intc.complete(d.deliveryId, { handled: true, endOfInterrupt: true });
      },
    });
  }

  alloc(bytes: number, align = 4096): number {
    this.#next = Math.ceil(this.#next / align) * align;
    const address = this.#next;
    this.#next += bytes;
    return address;
  }

  read(offset: number): number {
    return this.bus.read32(ABAR + offset);
  }

  write(offset: number, value: number): void {
    this.bus.write32(ABAR + offset, value);
  }

  pread(port: number, register: number): number {
    return this.read(A.AHCI_PORT_BASE + port * A.AHCI_PORT_STRIDE + register);
  }

  pwrite(port: number, register: number, value: number): void {
    this.write(A.AHCI_PORT_BASE + port * A.AHCI_PORT_STRIDE + register, value);
  }

  /** libqos's ahci_hba_enable for one port: buffers, clear errors, enable interrupts, FRE, ST. */
  startPort(port: number): void {
    this.pwrite(port, A.PX_CMD, this.pread(port, A.PX_CMD) & ~(A.PXCMD_ST | A.PXCMD_FRE));
    const clb = this.alloc(1024, 1024);
    const fb = this.alloc(256, 256);
    this.memory.fill(clb, 1024, 0);
    this.memory.fill(fb, 256, 0);
    this.pwrite(port, A.PX_CLB, clb);
    this.pwrite(port, A.PX_CLBU, 0);
    this.pwrite(port, A.PX_FB, fb);
    this.pwrite(port, A.PX_FBU, 0);
    this.pwrite(port, A.PX_SERR, 0xffffffff);
    this.pwrite(port, A.PX_IS, 0xffffffff);
    this.write(A.AHCI_IS, 1 << port);
    this.pwrite(port, A.PX_IE, 0xffffffff);
    this.pwrite(port, A.PX_CMD, this.pread(port, A.PX_CMD) | A.PXCMD_FRE);
    this.pwrite(port, A.PX_CMD, this.pread(port, A.PX_CMD) | A.PXCMD_ST);
    this.write(A.AHCI_GHC, this.read(A.AHCI_GHC) | A.GHC_IE);
    this.ports.set(port, { clb, fb });
  }

  /** Clears the port's interrupts and wipes its received-FIS area (libqos ahci_port_clear). */
  clearPort(port: number): void {
    this.pwrite(port, A.PX_IS, this.pread(port, A.PX_IS));
    this.write(A.AHCI_IS, 1 << port);
    this.memory.fill(this.ports.get(port)!.fb, 256, 0);
  }

  /** Writes a command header and table for a slot; returns the header's address. */
  prepare(
    port: number,
    slot: number,
    fis: Uint8Array,
    prds: Prd[],
    options: { write?: boolean; clearBusy?: boolean } = {},
  ) {
    const table = this.alloc(0x80 + prds.length * 16, 128);
    this.memory.write(table, fis);
    const prdt = new Uint8Array(prds.length * 16);
    const pv = new DataView(prdt.buffer);
    prds.forEach((p, i) => {
      pv.setUint32(i * 16, p.address % 2 ** 32, true);
      pv.setUint32(i * 16 + 4, Math.floor(p.address / 2 ** 32), true);
      pv.setUint32(i * 16 + 12, ((p.length - 1) | (p.interrupt ? 0x8000_0000 : 0)) >>> 0, true);
    });
    if (prds.length > 0) this.memory.write(table + 0x80, prdt);
    const header = new Uint8Array(32);
    const hv = new DataView(header.buffer);
    const flags = 5 | (options.write ? 1 << 6 : 0) | (options.clearBusy ? 1 << 10 : 0) | (prds.length << 16);
    hv.setUint32(0, flags >>> 0, true);
    hv.setUint32(8, table, true);
    const address = this.ports.get(port)!.clb + slot * 32;
    this.memory.write(address, header);
    return address;
  }

  issue(port: number, slots: number): void {
    this.pwrite(port, A.PX_CI, slots);
  }

  async exec(port: number, slot: number, fis: Uint8Array, prds: Prd[], write = false): Promise<void> {
    this.prepare(port, slot, fis, prds, { write });
    this.issue(port, 1 << slot);
    await this.hba.idle();
  }

  prdbc(port: number, slot: number): number {
    return new DataView(this.memory.read(this.ports.get(port)!.clb + slot * 32 + 4, 4).buffer).getUint32(
      0,
      true,
    );
  }

  fis(port: number, offset: number, length: number): Uint8Array {
    return this.memory.read(this.ports.get(port)!.fb + offset, length);
  }

  /** PRDs of `chunk` bytes covering [address, address+bytes). */
  static prds(address: number, bytes: number, chunk = 4 * MIB): Prd[] {
    const out: Prd[] = [];
    for (let done = 0; done < bytes; done += chunk) {
      out.push({ address: address + done, length: Math.min(chunk, bytes - done) });
    }
    return out;
  }

  /** Asserts a non-queued command completed cleanly (libqos ahci_command_verify). */
  verifyDone(port: number, slot: number, bytes: number): void {
    expect(this.pread(port, A.PX_CI) & (1 << slot)).toBe(0);
    const tfd = this.pread(port, A.PX_TFD);
    expect(tfd & (A.ATA_STATUS_BSY | A.ATA_STATUS_DRQ | A.ATA_STATUS_ERR)).toBe(0);
    expect(this.pread(port, A.PX_IS) >>> 23).toBe(0);
    expect(this.pread(port, A.PX_SERR)).toBe(0);
    expect(this.prdbc(port, slot)).toBe(bytes);
    const d2h = this.fis(port, A.RFIS_RFIS, 20);
    expect(d2h[0]).toBe(A.FIS_D2H);
    expect(d2h[2]).toBe(tfd & 0xff);
    expect(d2h[3]).toBe(tfd >>> 8);
  }
}

/** Compares data buffers byte by byte: fast, and a failure names the first differing offset. */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  let at = actual.length === expected.length ? -1 : Math.min(actual.length, expected.length);
  for (let i = 0; at < 0 && i < actual.length; i++) if (actual[i] !== expected[i]) at = i;
  expect(at, `buffers differ at byte ${at}`).toBe(-1);
}

function readIdentifyString(block: Uint8Array, firstWord: number, words: number): string {
  let s = "";
  for (let i = 0; i < words; i++) {
    s += String.fromCharCode(block[(firstWord + i) * 2 + 1], block[(firstWord + i) * 2]);
  }
  return s;
}

describe("AHCI: registers after reset", () => {
  it("reports the HBA's capabilities and every port's reset values (ahci/hba_spec)", () => {
    const rig = new Rig();
    const cap = rig.read(A.AHCI_CAP);
    expect(cap & A.CAP_S64A).not.toBe(0);
    expect(cap & A.CAP_SNCQ).not.toBe(0);
    expect(cap & A.CAP_SAM).not.toBe(0);
    expect((cap >>> 8) & 0x1f).toBe(31);
    expect(cap & 0x1f).toBe(3);
    expect(rig.read(A.AHCI_GHC)).toBe(A.GHC_AE >>> 0);
    expect(rig.read(A.AHCI_IS)).toBe(0);
    expect(rig.read(A.AHCI_PI)).toBe(0xf);
    expect(rig.read(A.AHCI_VS)).toBe(0x00010301);
    for (let off = A.AHCI_CCC_CTL; off < A.AHCI_PORT_BASE; off += 4) expect(rig.read(off)).toBe(0);

    for (let port = 0; port < 4; port++) {
      expect(rig.pread(port, A.PX_IS)).toBe(0);
      expect(rig.pread(port, A.PX_IE)).toBe(0);
      const cmd = rig.pread(port, A.PX_CMD);
      expect(cmd & (A.PXCMD_ST | A.PXCMD_FRE | A.PXCMD_FR | A.PXCMD_CR | 0xf000_1f00)).toBe(0);
      expect(cmd & (A.PXCMD_SUD | A.PXCMD_POD | A.PXCMD_HPCP)).toBe(A.PXCMD_SUD | A.PXCMD_POD | A.PXCMD_HPCP);
      for (const r of [A.PX_SCTL, A.PX_SERR, A.PX_SACT, A.PX_CI, A.PX_SNTF, A.PX_FBS]) {
        expect(rig.pread(port, r)).toBe(0);
      }
    }
    // Port 0 has a disk: link up at gen 3, active, with its signature; the others float.
    expect(rig.pread(0, A.PX_SSTS)).toBe(0x133);
    expect(rig.pread(0, A.PX_SIG)).toBe(A.SATA_SIGNATURE_DISK);
    expect(rig.pread(0, A.PX_TFD)).toBe(0x150);
    expect(rig.pread(1, A.PX_SSTS)).toBe(0);
    expect(rig.pread(1, A.PX_TFD)).toBe(A.TFD_NO_DEVICE);
    expect(rig.pread(1, A.PX_SIG)).toBe(0xffffffff);
    // Ports beyond PI are empty space.
    for (let r = 0; r < A.AHCI_PORT_STRIDE; r += 4) expect(rig.pread(5, r)).toBe(0);
  });

  it("masks reserved bits of the pointers and of PxIE, and keeps read-only registers read-only", () => {
    const rig = new Rig();
    rig.pwrite(0, A.PX_CLB, 0xffff_ffff);
    rig.pwrite(0, A.PX_FB, 0xffff_ffff);
    rig.pwrite(0, A.PX_IE, 0xffff_ffff);
    expect(rig.pread(0, A.PX_CLB)).toBe(0xffff_fc00);
    expect(rig.pread(0, A.PX_FB)).toBe(0xffff_ff00);
    expect(rig.pread(0, A.PX_IE)).toBe(A.PXIE_VALID);
    rig.write(A.AHCI_CAP, 0);
    rig.write(A.AHCI_PI, 0);
    rig.pwrite(0, A.PX_SIG, 0);
    rig.pwrite(0, A.PX_SSTS, 0);
    expect(rig.read(A.AHCI_PI)).toBe(0xf);
    expect(rig.pread(0, A.PX_SIG)).toBe(A.SATA_SIGNATURE_DISK);
    expect(rig.pread(0, A.PX_SSTS)).toBe(0x133);
    // GHC.AE stays set: this HBA is AHCI-only.
    rig.write(A.AHCI_GHC, 0);
    expect(rig.read(A.AHCI_GHC)).toBe(A.GHC_AE >>> 0);
  });

  it("starts a port: FRE sets FR, ST sets CR; the command list cannot run with FRE cleared under it", () => {
    const rig = new Rig();
    rig.startPort(0);
    const cmd = rig.pread(0, A.PX_CMD);
    expect(cmd & (A.PXCMD_FR | A.PXCMD_CR)).toBe(A.PXCMD_FR | A.PXCMD_CR);
    rig.pwrite(0, A.PX_CMD, cmd & ~A.PXCMD_FRE);
    expect(rig.pread(0, A.PX_CMD) & A.PXCMD_FRE).not.toBe(0);
    rig.pwrite(0, A.PX_CMD, cmd & ~(A.PXCMD_ST | A.PXCMD_FRE));
    expect(rig.pread(0, A.PX_CMD) & (A.PXCMD_CR | A.PXCMD_FR | A.PXCMD_FRE)).toBe(0);
  });
});

describe("AHCI: commands", () => {
  it("identifies the drive with a full IDENTIFY block and a PIO Setup FIS (ahci/identify)", async () => {
    const rig = new Rig({ diskBytes: 200 * 1024 * MIB });
    rig.startPort(0);
    rig.clearPort(0);
    const buffer = rig.alloc(512);
    await rig.exec(0, 0, h2d(A.ATA_IDENTIFY_DEVICE), [{ address: buffer, length: 512 }]);
    const id = rig.memory.read(buffer, 512);
    const words = new Uint16Array(id.buffer);
    expect(readIdentifyString(id, 10, 10)).toBe("testdisk            ");
    expect(readIdentifyString(id, 23, 4)).toBe("version ");
    expect(readIdentifyString(id, 27, 20).trimEnd()).toBe("QEMU-like HARDDISK");
    const sectors = rig.disk.lbaCount;
    expect(words[60] | (words[61] << 16)).toBe(Math.min(sectors, 0x0fffffff));
    expect(words[100] + words[101] * 2 ** 16 + words[102] * 2 ** 32).toBe(sectors);
    expect(words[75]).toBe(31);
    expect(words[76] & (1 << 8)).not.toBe(0);
    expect(words[83] & (1 << 10)).not.toBe(0);
    expect(words[106]).toBe(0x4000);
    expect(id.reduce((s, b) => s + b, 0) & 0xff).toBe(0);
    expect(id[510]).toBe(0xa5);

    const pio = rig.fis(0, A.RFIS_PSFIS, 20);
    expect(pio[0]).toBe(A.FIS_PIO_SETUP);
    expect(pio[16] | (pio[17] << 8)).toBe(512);
    expect(rig.pread(0, A.PX_IS) & A.PXIS_PSS).not.toBe(0);
    expect(rig.pread(0, A.PX_TFD)).toBe(0x50);
    expect(rig.prdbc(0, 0)).toBe(512);
    expect(rig.pread(0, A.PX_CI)).toBe(0);
    expect(rig.interrupts).toEqual([1]);
  });

  it("describes a 4 KiB-sector drive in words 106 and 117-118", async () => {
    const rig = new Rig({ diskBytes: 64 * MIB, lbaSize: 4096 });
    rig.startPort(0);
    const buffer = rig.alloc(512);
    await rig.exec(0, 0, h2d(A.ATA_IDENTIFY_DEVICE), [{ address: buffer, length: 512 }]);
    const words = new Uint16Array(rig.memory.read(buffer, 512).buffer);
    expect(words[106]).toBe(0x5000);
    expect(words[117] | (words[118] << 16)).toBe(2048);
    expect(words[100] | (words[101] << 16)).toBe(64 * MIB / 4096);
  });

  describe("DMA reads and writes (ahci/io/dma)", () => {
    const modes = [
      {
        name: "lba28",
        read: A.ATA_READ_DMA,
        write: A.ATA_WRITE_DMA,
        ceiling: 0x0fffffff,
        lengths: [512, 4096, 8192, 256 * 512],
      },
      {
        name: "lba48",
        read: A.ATA_READ_DMA_EXT,
        write: A.ATA_WRITE_DMA_EXT,
        ceiling: 4 * TIB / 512 - 1,
        lengths: [512, 4096, 8192, 4096 * 64],
      },
    ];
    let seed = 0;
    for (const mode of modes) {
      for (const bytes of mode.lengths) {
        for (const offset of ["zero", "low", "high"] as const) {
          it(`${mode.name}, ${bytes} bytes, ${offset} offset`, async () => {
            const rig = new Rig();
            rig.startPort(0);
            const sectors = bytes / SECTOR;
            const lba = offset === "zero" ? 0 : offset === "low" ? 1 : mode.ceiling - sectors + 1;
            // The count field holds 0 for the largest transfer of each command (256 or 65536 sectors).
            const count = mode.name === "lba28" ? sectors & 0xff : sectors & 0xffff;
            const device = mode.name === "lba28" ? 0x40 | Math.floor(lba / 2 ** 24) : 0x40;
            const tx = pattern(bytes, ++seed);
            const buffer = rig.alloc(bytes);
            rig.memory.write(buffer, tx);
            rig.clearPort(0);
            await rig.exec(0, 1, h2d(mode.write, { lba, count, device }), Rig.prds(buffer, bytes), true);
            rig.verifyDone(0, 1, bytes);
            // The data landed at that LBA and nowhere else around it.
            expectBytes(await rig.disk.read(lba, sectors), tx);
            if (lba > 0) expect(await rig.disk.read(lba - 1, 1)).toEqual(new Uint8Array(SECTOR));

            rig.memory.fill(buffer, bytes, 0);
            rig.clearPort(0);
            await rig.exec(0, 2, h2d(mode.read, { lba, count, device }), Rig.prds(buffer, bytes));
            rig.verifyDone(0, 2, bytes);
            expectBytes(rig.memory.read(buffer, bytes), tx);
            // DHRS is the completion interrupt: one per command.
            expect(rig.interrupts).toEqual([1, 1]);
          });
        }
      }
    }
  });

  it("scatters and gathers through a PRDT of 32-byte pieces (ahci/io/dma/lba28/fragmented)", async () => {
    const rig = new Rig();
    rig.startPort(0);
    const tx = pattern(4096, 5);
    const buffer = rig.alloc(4096);
    rig.memory.write(buffer, tx);
    const prds = Rig.prds(buffer, 4096, 32);
    prds[127].interrupt = true;
    await rig.exec(0, 0, h2d(A.ATA_WRITE_DMA, { lba: 0, count: 8 }), prds, true);
    rig.verifyDone(0, 0, 4096);
    expectBytes(await rig.disk.read(0, 8), tx);
    // The last PRD asked for an interrupt when it was consumed.
    expect(rig.pread(0, A.PX_IS) & A.PXIS_DPS).not.toBe(0);
    rig.memory.fill(buffer, 4096, 0);
    // Reverse the pieces: the read must fill the PRDs in table order.
    const reversed = prds.slice().reverse().map((p) => ({ address: p.address, length: p.length }));
    await rig.exec(0, 1, h2d(A.ATA_READ_DMA, { lba: 0, count: 8 }), reversed);
    const rx = rig.memory.read(buffer, 4096);
    for (let i = 0; i < 128; i++) {
      expect(rx.subarray((127 - i) * 32, (128 - i) * 32)).toEqual(tx.subarray(i * 32, (i + 1) * 32));
    }
  });

  it("moves the largest transfer: 65536 sectors through eight 4 MiB PRDs", async () => {
    const rig = new Rig();
    rig.startPort(0);
    const bytes = 65536 * SECTOR;
    const tx = pattern(bytes, 8);
    const buffer = rig.alloc(bytes);
    rig.memory.write(buffer, tx);
    await rig.exec(0, 0, h2d(A.ATA_WRITE_DMA_EXT, { lba: 1000, count: 0 }), Rig.prds(buffer, bytes), true);
    rig.verifyDone(0, 0, bytes);
    rig.memory.fill(buffer, bytes, 0);
    await rig.exec(0, 1, h2d(A.ATA_READ_DMA_EXT, { lba: 1000, count: 0 }), Rig.prds(buffer, bytes));
    rig.verifyDone(0, 1, bytes);
    expectBytes(rig.memory.read(buffer, bytes), tx);
  });

  it("flushes the drive's cache to the medium (ahci/flush/simple)", async () => {
    const rig = new Rig();
    rig.startPort(0);
    const buffer = rig.alloc(512);
    rig.memory.write(buffer, pattern(512, 1));
    await rig.exec(
      0,
      0,
      h2d(A.ATA_WRITE_DMA, { lba: 1, count: 1 }),
      [{ address: buffer, length: 512 }],
      true,
    );
    expect(rig.disk.statistics().unflushedWrites).toBe(1);
    await rig.exec(0, 1, h2d(A.ATA_FLUSH_CACHE_EXT), []);
    rig.verifyDone(0, 1, 0);
    expect(rig.disk.statistics()).toMatchObject({ unflushedWrites: 0, flushes: 1 });
  });

  it("reports the native max address in the D2H FIS (ahci/max)", async () => {
    const rig = new Rig();
    rig.startPort(0);
    await rig.exec(0, 0, h2d(A.ATA_READ_NATIVE_MAX_ADDRESS_EXT), []);
    const d2h = rig.fis(0, A.RFIS_RFIS, 20);
    const max = d2h[4] + d2h[5] * 2 ** 8 + d2h[6] * 2 ** 16 + d2h[8] * 2 ** 24 + d2h[9] * 2 ** 32 +
      d2h[10] * 2 ** 40;
    expect(max).toBe(rig.disk.lbaCount - 1);
    await rig.exec(0, 1, h2d(A.ATA_READ_NATIVE_MAX_ADDRESS), []);
    const d2h28 = rig.fis(0, A.RFIS_RFIS, 20);
    expect(d2h28[4] | (d2h28[5] << 8) | (d2h28[6] << 16)).toBe(0xffffff);
    expect(d2h28[8]).toBe(0x0f);
  });

  it("aborts an unknown command and an out-of-range LBA with the error register set", async () => {
    const rig = new Rig({ diskBytes: MIB });
    rig.startPort(0);
    await rig.exec(0, 0, h2d(0x99), []);
    expect(rig.pread(0, A.PX_TFD)).toBe((A.ATA_ERROR_ABRT << 8) | 0x51);
    expect(rig.pread(0, A.PX_IS) & A.PXIS_TFES).not.toBe(0);
    // The failed slot stays issued and the port stops until software restarts it.
    expect(rig.pread(0, A.PX_CI)).toBe(1);
    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) & ~A.PXCMD_ST);
    expect(rig.pread(0, A.PX_CI)).toBe(0);
    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) | A.PXCMD_ST);
    const buffer = rig.alloc(1024);
    await rig.exec(0, 1, h2d(A.ATA_READ_DMA_EXT, { lba: 2047, count: 2 }), [{
      address: buffer,
      length: 1024,
    }]);
    expect(rig.pread(0, A.PX_TFD) >>> 8).toBe(A.ATA_ERROR_IDNF);
  });
});

describe("AHCI: errors, resets and power", () => {
  it("reports a media error with the failing LBA, halts, and succeeds after restart and retry", async () => {
    const rig = new Rig();
    rig.startPort(0);
    rig.disk.injectFault({ kind: "media-error", lbaFirst: 103, lbaCount: 2, count: 1 });
    const buffer = rig.alloc(8 * 512);
    await rig.exec(0, 3, h2d(A.ATA_READ_DMA_EXT, { lba: 100, count: 8 }), Rig.prds(buffer, 4096));
    const tfd = rig.pread(0, A.PX_TFD);
    expect(tfd & A.ATA_STATUS_ERR).not.toBe(0);
    expect(tfd >>> 8).toBe(A.ATA_ERROR_UNC);
    const d2h = rig.fis(0, A.RFIS_RFIS, 20);
    expect(d2h[4] | (d2h[5] << 8) | (d2h[6] << 16)).toBe(103);
    expect(rig.pread(0, A.PX_IS) & (A.PXIS_TFES | A.PXIS_DHRS)).toBe(A.PXIS_TFES | A.PXIS_DHRS);
    expect(rig.pread(0, A.PX_CI)).toBe(1 << 3);
    expect((rig.pread(0, A.PX_CMD) >>> 8) & 0x1f).toBe(3);
    expect(rig.prdbc(0, 3)).toBe(0);
    // Halted: another slot is not processed.
    rig.prepare(0, 4, h2d(A.ATA_FLUSH_CACHE_EXT), []);
    rig.issue(0, 1 << 4);
    await rig.hba.idle();
    expect(rig.pread(0, A.PX_CI)).toBe((1 << 3) | (1 << 4));

    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) & ~A.PXCMD_ST);
    rig.clearPort(0);
    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) | A.PXCMD_ST);
    await rig.exec(0, 3, h2d(A.ATA_READ_DMA_EXT, { lba: 100, count: 8 }), Rig.prds(buffer, 4096));
    rig.verifyDone(0, 3, 4096);
    expect(rig.hba.portStatus(0).commandErrors).toBe(1);
  });

  it("resets the HBA: registers return to reset values, pointers and the link survive (ahci/reset)", async () => {
    const rig = new Rig();
    for (let round = 0; round < 2; round++) {
      rig.startPort(0);
      const buffer = rig.alloc(4096);
      rig.memory.write(buffer, pattern(4096, round));
      await rig.exec(0, 0, h2d(A.ATA_WRITE_DMA_EXT, { lba: 8 * round, count: 8 }), [{
        address: buffer,
        length: 4096,
      }], true);
      rig.verifyDone(0, 0, 4096);
      const clb = rig.pread(0, A.PX_CLB);
      rig.write(A.AHCI_GHC, A.GHC_HR);
      expect(rig.read(A.AHCI_GHC)).toBe(A.GHC_AE >>> 0);
      expect(rig.read(A.AHCI_IS)).toBe(0);
      expect(rig.pread(0, A.PX_CMD) & (A.PXCMD_ST | A.PXCMD_FRE | A.PXCMD_CR)).toBe(0);
      expect(rig.pread(0, A.PX_IE)).toBe(0);
      expect(rig.pread(0, A.PX_IS)).toBe(0);
      expect(rig.pread(0, A.PX_CLB)).toBe(clb);
      expect(rig.pread(0, A.PX_SSTS)).toBe(0x133);
      expect(rig.pread(0, A.PX_SIG)).toBe(A.SATA_SIGNATURE_DISK);
    }
    expect(rig.hba.statistics().hbaResets).toBe(2);
  });

  it("drops the completion of a write in flight at HBA reset, but the written data stays (reset/pending_callback)", async () => {
    const rig = new Rig();
    rig.startPort(0);
    const buffer = rig.alloc(4096);
    rig.memory.write(buffer, pattern(4096, 3));
    rig.prepare(0, 0, h2d(A.ATA_WRITE_DMA_EXT, { lba: 8, count: 8 }), [{ address: buffer, length: 4096 }], {
      write: true,
    });
    rig.clearPort(0);
    rig.issue(0, 1);
    rig.write(A.AHCI_GHC, A.GHC_HR);
    await rig.hba.idle();
    expect(rig.fis(0, A.RFIS_RFIS, 20)).toEqual(new Uint8Array(20));
    expect(rig.prdbc(0, 0)).toBe(0);
    expectBytes(await rig.disk.read(8, 8), pattern(4096, 3));
  });

  it("does not DMA a read into memory after a reset that overtook it", async () => {
    const rig = new Rig();
    await rig.disk.write(0, pattern(4096, 4));
    rig.startPort(0);
    const buffer = rig.alloc(4096);
    rig.prepare(0, 0, h2d(A.ATA_READ_DMA_EXT, { lba: 0, count: 8 }), [{ address: buffer, length: 4096 }]);
    rig.issue(0, 1);
    rig.write(A.AHCI_GHC, A.GHC_HR);
    await rig.hba.idle();
    expect(rig.memory.read(buffer, 4096)).toEqual(new Uint8Array(4096));
  });

  it("performs a COMRESET through PxSCTL.DET and reports the exchange in PxSERR.DIAG.X / PxIS.PCS", () => {
    const rig = new Rig();
    rig.startPort(0);
    rig.clearPort(0);
    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) & ~A.PXCMD_ST);
    rig.pwrite(0, A.PX_SCTL, 0x301);
    expect(rig.pread(0, A.PX_SSTS) & 0xf).toBe(0);
    expect(rig.pread(0, A.PX_TFD) & A.ATA_STATUS_BSY).not.toBe(0);
    expect(rig.pread(0, A.PX_SIG)).toBe(0xffffffff);
    const before = rig.interrupts.length;
    rig.pwrite(0, A.PX_SCTL, 0x300);
    expect(rig.pread(0, A.PX_SSTS)).toBe(0x133);
    expect(rig.pread(0, A.PX_SIG)).toBe(A.SATA_SIGNATURE_DISK);
    expect(rig.pread(0, A.PX_TFD)).toBe(0x150);
    expect(rig.pread(0, A.PX_SERR) & A.SERR_DIAG_X).not.toBe(0);
    expect(rig.pread(0, A.PX_IS) & A.PXIS_PCS).not.toBe(0);
    expect(rig.interrupts.length).toBe(before + 1);
    // The signature FIS reached the received-FIS area.
    expect(rig.fis(0, A.RFIS_RFIS, 1)[0]).toBe(A.FIS_D2H);
    // PCS mirrors DIAG.X: it clears through PxSERR, not PxIS.
    rig.pwrite(0, A.PX_IS, A.PXIS_PCS);
    expect(rig.pread(0, A.PX_IS) & A.PXIS_PCS).not.toBe(0);
    rig.pwrite(0, A.PX_SERR, A.SERR_DIAG_X);
    expect(rig.pread(0, A.PX_IS) & A.PXIS_PCS).toBe(0);
    // A speed limit in SCTL.SPD shows in the negotiated speed.
    rig.pwrite(0, A.PX_SCTL, 0x311);
    rig.pwrite(0, A.PX_SCTL, 0x310);
    expect(rig.pread(0, A.PX_SSTS)).toBe(0x113);
    expect(rig.hba.statistics().portResets).toBe(2);
  });

  it("soft-resets the drive with an SRST control FIS pair", () => {
    const rig = new Rig();
    rig.startPort(0);
    rig.prepare(0, 0, h2d(0, { command: false, control: 0x04 }), [], { clearBusy: true });
    rig.issue(0, 1);
    expect(rig.pread(0, A.PX_CI)).toBe(0);
    rig.memory.fill(rig.ports.get(0)!.fb, 256, 0);
    rig.prepare(0, 1, h2d(0, { command: false, control: 0 }), []);
    rig.issue(0, 2);
    expect(rig.pread(0, A.PX_CI)).toBe(0);
    expect(rig.fis(0, A.RFIS_RFIS, 1)[0]).toBe(A.FIS_D2H);
    expect(rig.pread(0, A.PX_SIG)).toBe(A.SATA_SIGNATURE_DISK);
    expect(rig.pread(0, A.PX_TFD)).toBe(0x150);
  });

  it("flags a PRD pointing outside RAM as a host bus fatal error, and a short PRDT as overflow", async () => {
    const rig = new Rig();
    rig.startPort(0);
    await rig.exec(0, 0, h2d(A.ATA_READ_DMA_EXT, { lba: 0, count: 1 }), [{
      address: MMIO_BASE,
      length: 512,
    }]);
    expect(rig.pread(0, A.PX_IS) & A.PXIS_HBFS).not.toBe(0);
    expect(rig.hba.portStatus(0).halted).toBe(true);
    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) & ~A.PXCMD_ST);
    rig.clearPort(0);
    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) | A.PXCMD_ST);
    const buffer = rig.alloc(512);
    await rig.exec(0, 0, h2d(A.ATA_READ_DMA_EXT, { lba: 0, count: 2 }), [{ address: buffer, length: 512 }]);
    expect(rig.pread(0, A.PX_IS) & A.PXIS_OFS).not.toBe(0);
  });

  it("moves the link between active, partial and slumber, and wakes it for a command", async () => {
    const rig = new Rig();
    rig.startPort(0);
    const icc = (state: number) =>
      rig.pwrite(0, A.PX_CMD, (rig.pread(0, A.PX_CMD) & 0x0fffffff) | (state << 28));
    icc(2);
    expect((rig.pread(0, A.PX_SSTS) >>> 8) & 0xf).toBe(A.IPM_PARTIAL);
    expect(rig.pread(0, A.PX_CMD) >>> 28).toBe(0);
    icc(6);
    expect((rig.pread(0, A.PX_SSTS) >>> 8) & 0xf).toBe(A.IPM_SLUMBER);
    await rig.exec(0, 0, h2d(A.ATA_FLUSH_CACHE_EXT), []);
    expect((rig.pread(0, A.PX_SSTS) >>> 8) & 0xf).toBe(A.IPM_ACTIVE);
    // SCTL.IPM = 1 forbids partial.
    rig.pwrite(0, A.PX_SCTL, 0x100);
    icc(2);
    expect((rig.pread(0, A.PX_SSTS) >>> 8) & 0xf).toBe(A.IPM_ACTIVE);
  });

  it("puts the drive in standby and back, and reports it through CHECK POWER MODE", async () => {
    const rig = new Rig();
    rig.startPort(0);
    const mode = async (slot: number) => {
      await rig.exec(0, slot, h2d(A.ATA_CHECK_POWER_MODE), []);
      return rig.fis(0, A.RFIS_RFIS, 20)[12];
    };
    expect(await mode(0)).toBe(0xff);
    const buffer = rig.alloc(512);
    await rig.exec(
      0,
      1,
      h2d(A.ATA_WRITE_DMA, { lba: 0, count: 1 }),
      [{ address: buffer, length: 512 }],
      true,
    );
    await rig.exec(0, 2, h2d(A.ATA_STANDBY_IMMEDIATE), []);
    expect(rig.disk.statistics().unflushedWrites).toBe(0);
    expect(await mode(3)).toBe(0x00);
    expect(rig.hba.portStatus(0).drivePowerMode).toBe("standby");
    await rig.exec(0, 4, h2d(A.ATA_READ_DMA, { lba: 0, count: 1 }), [{ address: buffer, length: 512 }]);
    expect(await mode(5)).toBe(0xff);
  });

  it("writes through to the medium once SET FEATURES disables the write cache", async () => {
    const rig = new Rig();
    rig.startPort(0);
    await rig.exec(0, 0, h2d(A.ATA_SET_FEATURES, { features: 0x82 }), []);
    const buffer = rig.alloc(512);
    await rig.exec(
      0,
      1,
      h2d(A.ATA_WRITE_DMA_EXT, { lba: 5, count: 1 }),
      [{ address: buffer, length: 512 }],
      true,
    );
    expect(rig.disk.statistics()).toMatchObject({ unflushedWrites: 0, flushes: 1 });
    await rig.exec(0, 2, h2d(A.ATA_IDENTIFY_DEVICE), [{ address: buffer, length: 512 }]);
    expect(new Uint16Array(rig.memory.read(buffer, 512).buffer)[85] & 0x20).toBe(0);
    await rig.exec(0, 3, h2d(A.ATA_SET_FEATURES, { features: 0x55 }), []);
    expect(rig.pread(0, A.PX_TFD) >>> 8).toBe(A.ATA_ERROR_ABRT);
  });
});

describe("AHCI: native command queuing", () => {
  it("runs 32 queued writes and reads at once and completes them through Set Device Bits FISes", async () => {
    const rig = new Rig();
    rig.startPort(0);
    const buffers: number[] = [];
    for (let tag = 0; tag < 32; tag++) {
      const buffer = rig.alloc(4096);
      buffers.push(buffer);
      rig.memory.write(buffer, pattern(4096, 100 + tag));
      const fis = h2d(A.ATA_WRITE_FPDMA_QUEUED, { lba: 5000 + tag * 16, features: 8, count: tag << 3 });
      rig.prepare(0, tag, fis, [{ address: buffer, length: 4096 }], { write: true });
    }
    rig.clearPort(0);
    rig.pwrite(0, A.PX_SACT, 0xffffffff);
    rig.issue(0, 0xffffffff);
    // All 32 were accepted by the drive (PxCI clear) and are in flight together (PxSACT full).
    expect(rig.pread(0, A.PX_CI)).toBe(0);
    expect(rig.pread(0, A.PX_SACT)).toBe(0xffffffff);
    await rig.hba.idle();
    expect(rig.pread(0, A.PX_SACT)).toBe(0);
    expect(rig.pread(0, A.PX_IS) & A.PXIS_SDBS).not.toBe(0);
    expect(rig.pread(0, A.PX_IS) & A.PXIS_DHRS).toBe(0);
    const sdb = rig.fis(0, A.RFIS_SDBFIS, 8);
    expect(sdb[0]).toBe(A.FIS_SDB);
    expect(new DataView(sdb.buffer).getUint32(4, true)).not.toBe(0);
    for (let tag = 0; tag < 32; tag++) {
      expectBytes(await rig.disk.read(5000 + tag * 16, 8), pattern(4096, 100 + tag));
    }

    for (let tag = 0; tag < 32; tag++) {
      rig.memory.fill(buffers[tag], 4096, 0);
      const fis = h2d(A.ATA_READ_FPDMA_QUEUED, { lba: 5000 + tag * 16, features: 8, count: tag << 3 });
      rig.prepare(0, tag, fis, [{ address: buffers[tag], length: 4096 }]);
    }
    rig.pwrite(0, A.PX_SACT, 0xffffffff);
    rig.issue(0, 0xffffffff);
    await rig.hba.idle();
    expect(rig.pread(0, A.PX_SACT)).toBe(0);
    for (let tag = 0; tag < 32; tag++) {
      expectBytes(rig.memory.read(buffers[tag], 4096), pattern(4096, 100 + tag));
    }
    expect(rig.hba.portStatus(0)).toMatchObject({ commandsCompleted: 64, commandErrors: 0 });
  });

  it("reports a queued command's error through the NCQ error log and recovers (ahci/io/ncq/retry)", async () => {
    const rig = new Rig();
    rig.startPort(0);
    rig.disk.injectFault({ kind: "media-error", lbaFirst: 700, lbaCount: 1, count: 1 });
    const buffer = rig.alloc(4096);
    rig.prepare(0, 9, h2d(A.ATA_READ_FPDMA_QUEUED, { lba: 696, features: 8, count: 9 << 3 }), [{
      address: buffer,
      length: 4096,
    }]);
    rig.clearPort(0);
    rig.pwrite(0, A.PX_SACT, 1 << 9);
    rig.issue(0, 1 << 9);
    await rig.hba.idle();
    const is = rig.pread(0, A.PX_IS);
    expect(is & (A.PXIS_TFES | A.PXIS_SDBS)).toBe(A.PXIS_TFES | A.PXIS_SDBS);
    expect(rig.pread(0, A.PX_SACT)).toBe(1 << 9);
    expect(rig.pread(0, A.PX_TFD) >>> 8).toBe(A.ATA_ERROR_UNC);

    // Error handling as libata does it: stop the port, read log 10h, retry.
    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) & ~A.PXCMD_ST);
    expect(rig.pread(0, A.PX_SACT)).toBe(0);
    rig.clearPort(0);
    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) | A.PXCMD_ST);
    const log = rig.alloc(512);
    await rig.exec(0, 0, h2d(A.ATA_READ_LOG_EXT, { lba: A.ATA_LOG_NCQ_ERROR, count: 1 }), [{
      address: log,
      length: 512,
    }]);
    const page = rig.memory.read(log, 512);
    expect(page[0] & 0x1f).toBe(9);
    expect(page[3]).toBe(A.ATA_ERROR_UNC);
    expect(page[4] | (page[5] << 8) | (page[6] << 16)).toBe(700);
    expect(page[12]).toBe(8);
    expect(page.reduce((s, b) => s + b, 0) & 0xff).toBe(0);

    rig.prepare(0, 9, h2d(A.ATA_READ_FPDMA_QUEUED, { lba: 696, features: 8, count: 9 << 3 }), [{
      address: buffer,
      length: 4096,
    }]);
    rig.pwrite(0, A.PX_SACT, 1 << 9);
    rig.issue(0, 1 << 9);
    await rig.hba.idle();
    expect(rig.pread(0, A.PX_SACT)).toBe(0);
    expect(rig.pread(0, A.PX_IS) & A.PXIS_TFES).toBe(0);
  });
});

describe("AHCI: hot plug and PHY faults", () => {
  it("raises PCS and PRCS when a disk is plugged in at run time, and PRCS when it is pulled", async () => {
    const rig = new Rig();
    rig.startPort(1);
    expect(rig.pread(1, A.PX_SSTS)).toBe(0);
    rig.clearPort(1);
    const before = rig.interrupts.length;
    const disk = DiskImage.memory({ sizeBytes: 16 * MIB });
    rig.hba.attach(1, disk);
    expect(rig.interrupts.length).toBe(before + 1);
    expect(rig.interrupts.at(-1)! & (1 << 1)).not.toBe(0);
    expect(rig.pread(1, A.PX_IS) & (A.PXIS_PCS | A.PXIS_PRCS)).toBe(A.PXIS_PCS | A.PXIS_PRCS);
    expect(rig.pread(1, A.PX_SERR) & (A.SERR_DIAG_X | A.SERR_DIAG_N)).toBe(A.SERR_DIAG_X | A.SERR_DIAG_N);
    expect(rig.pread(1, A.PX_SSTS)).toBe(0x133);
    expect(rig.pread(1, A.PX_SIG)).toBe(A.SATA_SIGNATURE_DISK);
    expect(() => rig.hba.attach(1, disk)).toThrow();

    // The new disk works.
    const buffer = rig.alloc(512);
    rig.memory.write(buffer, pattern(512, 1));
    rig.pwrite(1, A.PX_SERR, 0xffffffff);
    rig.clearPort(1);
    await rig.exec(
      1,
      0,
      h2d(A.ATA_WRITE_DMA_EXT, { lba: 3, count: 1 }),
      [{ address: buffer, length: 512 }],
      true,
    );
    rig.verifyDone(1, 0, 512);

    // A clean detach flushes the disk first.
    rig.clearPort(1);
    const detached = await rig.hba.detach(1);
    expect(detached).toBe(disk);
    expect(disk.statistics().unflushedWrites).toBe(0);
    expect(rig.pread(1, A.PX_IS) & (A.PXIS_PCS | A.PXIS_PRCS)).toBe(A.PXIS_PRCS);
    expect(rig.pread(1, A.PX_SERR) & A.SERR_DIAG_N).not.toBe(0);
    expect(rig.pread(1, A.PX_SSTS)).toBe(0);
    expect(rig.pread(1, A.PX_TFD)).toBe(A.TFD_NO_DEVICE);
  });

  it("fails the command in flight on surprise removal with an interface fatal error", async () => {
    const rig = new Rig();
    rig.startPort(0);
    rig.disk.injectFault({ kind: "command-timeout", lbaFirst: 40, lbaCount: 1 });
    const buffer = rig.alloc(512);
    rig.prepare(0, 2, h2d(A.ATA_READ_DMA_EXT, { lba: 40, count: 1 }), [{ address: buffer, length: 512 }]);
    rig.clearPort(0);
    rig.issue(0, 1 << 2);
    await new Promise((r) => setTimeout(r, 10));
    expect(rig.pread(0, A.PX_CI)).toBe(1 << 2);
    await rig.hba.detach(0, { surprise: true });
    await rig.hba.idle();
    expect(rig.pread(0, A.PX_IS) & (A.PXIS_IFS | A.PXIS_PRCS)).toBe(A.PXIS_IFS | A.PXIS_PRCS);
    expect(rig.disk.removed).toBe(true);
    // Nothing completed after the fact: no D2H FIS, PRDBC untouched.
    expect(rig.fis(0, A.RFIS_RFIS, 20)).toEqual(new Uint8Array(20));
    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) & ~A.PXCMD_ST);
    expect(rig.pread(0, A.PX_CI)).toBe(0);
  });

  it("drops the link on an injected PHY error and brings it back with a COMRESET", async () => {
    const rig = new Rig();
    rig.startPort(0);
    rig.clearPort(0);
    const before = rig.interrupts.length;
    rig.hba.injectPhyError(0);
    expect(rig.interrupts.length).toBe(before + 1);
    expect(rig.pread(0, A.PX_SSTS) & 0xf).toBe(A.SSTS_DET_PRESENT);
    const serr = rig.pread(0, A.PX_SERR);
    expect(serr & (A.SERR_ERR_C | A.SERR_DIAG_I | A.SERR_DIAG_N)).toBe(
      A.SERR_ERR_C | A.SERR_DIAG_I | A.SERR_DIAG_N,
    );
    expect(rig.pread(0, A.PX_IS) & A.PXIS_PRCS).not.toBe(0);

    // Commands wait while the link is down.
    rig.prepare(0, 0, h2d(A.ATA_FLUSH_CACHE_EXT), []);
    rig.issue(0, 1);
    await rig.hba.idle();
    expect(rig.pread(0, A.PX_CI)).toBe(1);

    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) & ~A.PXCMD_ST);
    rig.pwrite(0, A.PX_SCTL, 1);
    rig.pwrite(0, A.PX_SCTL, 0);
    expect(rig.pread(0, A.PX_SSTS)).toBe(0x133);
    rig.pwrite(0, A.PX_SERR, 0xffffffff);
    rig.clearPort(0);
    rig.pwrite(0, A.PX_CMD, rig.pread(0, A.PX_CMD) | A.PXCMD_ST);
    await rig.exec(0, 0, h2d(A.ATA_FLUSH_CACHE_EXT), []);
    rig.verifyDone(0, 0, 0);
  });

  it("halts running ports on an injected host bus error", () => {
    const rig = new Rig();
    rig.startPort(0);
    rig.clearPort(0);
    rig.hba.injectHostBusError();
    expect(rig.pread(0, A.PX_IS) & A.PXIS_HBFS).not.toBe(0);
    expect(rig.hba.portStatus(0).halted).toBe(true);
    expect(rig.pread(1, A.PX_IS)).toBe(0);
  });
});
