// The disk controllers as the machine powers them on: the AHCI HBA and the NVMe controller, mapped
// in the device window with their interrupt lines, and the disk images behind them.
import { MMIO_BASE } from "./firmware.ts";
import type { PhysicalMemory } from "./memory.ts";
import type { DeviceConfig } from "./config.ts";
import { AHCI_MMIO_SIZE, AhciHba } from "./devices/ahci.ts";
import type { InterruptSink } from "./devices/intc.ts";
import type { MmioBus } from "./devices/mmio.ts";
import { NvmeController } from "./devices/nvme.ts";
import { DiskSet } from "./disks.ts";

/** ABAR and BAR0 inside the device window. */
export const AHCI_MMIO_BASE = MMIO_BASE + 0x1_0000;
export const NVME_MMIO_BASE = MMIO_BASE + 0x10_0000;
/** The HBA's single interrupt line. */
export const AHCI_IRQ = 16;
/** NVMe interrupt vectors: the admin completion queue's (vector 0) first; I/O queues share the rest. */
export const NVME_FIRST_IRQ = 32;
export const NVME_VECTORS = 16;

export class DiskControllers {
  private constructor(
    readonly ahci: AhciHba,
    readonly nvme: NvmeController,
    readonly disks: DiskSet,
    private readonly bus: MmioBus,
  ) {}

  /** Opens the configured images, builds both controllers with their disks present, maps them. */
  static async powerOn(options: {
    memory: PhysicalMemory;
    interrupts: InterruptSink;
    bus: MmioBus;
    devices: DeviceConfig;
    dataDir: string;
  }): Promise<DiskControllers> {
    const attached = await DiskSet.openConfigured(options.devices, options.dataDir);
    const mapped: string[] = [];
    try {
      const ahci = new AhciHba({
        memory: options.memory,
        interrupts: options.interrupts,
        irq: AHCI_IRQ,
        ports: options.devices.ahciPorts,
        disks: attached.flatMap((a) =>
          a.location.controller === "ahci" ? [{ port: a.location.port, disk: a.disk }] : []
        ),
      });
      const nvme = new NvmeController({
        memory: options.memory,
        interrupts: options.interrupts,
        vectors: Array.from({ length: NVME_VECTORS }, (_, i) => NVME_FIRST_IRQ + i),
        namespaces: attached.flatMap((a) =>
          a.location.controller === "nvme" ? [{ nsid: a.location.namespaceId, disk: a.disk }] : []
        ),
      });
      options.bus.map("ahci0", AHCI_MMIO_BASE, AHCI_MMIO_SIZE, ahci);
      mapped.push("ahci0");
      options.bus.map("nvme0", NVME_MMIO_BASE, nvme.mmioSize, nvme);
      mapped.push("nvme0");
      return new DiskControllers(ahci, nvme, new DiskSet(ahci, nvme, options.dataDir, attached), options.bus);
    } catch (err) {
      for (const name of mapped) options.bus.unmap(name);
      await Promise.allSettled(attached.map((a) => a.disk.close()));
      throw err;
    }
  }

  /** Lets the commands in flight finish, then flushes and closes every image and unmaps. */
  async powerOff(): Promise<void> {
    await Promise.all([this.ahci.idle(), this.nvme.idle()]);
    this.bus.unmap("ahci0");
    this.bus.unmap("nvme0");
    await this.disks.closeAll();
  }
}
