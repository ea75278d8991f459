// The machine's firmware memory map, derived from its configuration the way platform firmware
// describes a board: each NUMA node's RAM at its own base (so there are holes between nodes), the
// first MiB kept by firmware (exception vectors and firmware data), firmware tables and NVRAM at
// the top of node 0, and an MMIO window for the devices far above RAM.

export type FirmwareRegionType = "usable" | "reserved" | "acpi-reclaimable" | "acpi-nvs" | "bad" | "device";

export interface FirmwareRegion {
  base: number;
  length: number;
  type: FirmwareRegionType;
  node: number;
  /** What the firmware uses the range for, for people reading the map. */
  purpose: string;
}

export const MIB = 1024 * 1024;
/** Distance between NUMA nodes' RAM: 64 GiB, as on multi-socket POWER systems. */
export const NODE_STRIDE = 64 * 1024 * MIB;
export const FIRMWARE_RESERVED_BYTES = MIB;
export const FIRMWARE_TABLES_BYTES = 128 * 1024;
export const NVRAM_BYTES = 64 * 1024;
/** Device MMIO window (AHCI ABAR, NVMe BAR0, UART, interrupt controller), far above any RAM. */
export const MMIO_BASE = 0x6000_0000_0000;
export const MMIO_BYTES = 16 * MIB;

export interface MemoryLayoutConfig {
  memoryBytes: number;
  numaNodes: number;
  /** Ranges of defective RAM to report as BAD (testing firmware that marks failed DIMM rows). */
  badRanges?: { base: number; length: number }[];
}

/** The firmware memory map, sorted by base. RAM per node is memoryBytes / numaNodes, whole MiBs. */
export function firmwareMemoryMap(config: MemoryLayoutConfig): FirmwareRegion[] {
  const perNode = Math.floor(config.memoryBytes / config.numaNodes / MIB) * MIB;
  const regions: FirmwareRegion[] = [];
  for (let node = 0; node < config.numaNodes; node++) {
    const base = node * NODE_STRIDE;
    if (node === 0) {
      const tablesBase = perNode - NVRAM_BYTES - FIRMWARE_TABLES_BYTES;
      regions.push(
        {
          base,
          length: FIRMWARE_RESERVED_BYTES,
          type: "reserved",
          node,
          purpose: "exception vectors, firmware",
        },
        {
          base: base + FIRMWARE_RESERVED_BYTES,
          length: tablesBase - FIRMWARE_RESERVED_BYTES,
          type: "usable",
          node,
          purpose: "RAM",
        },
        {
          base: tablesBase,
          length: FIRMWARE_TABLES_BYTES,
          type: "acpi-reclaimable",
          node,
          purpose: "firmware tables",
        },
        { base: perNode - NVRAM_BYTES, length: NVRAM_BYTES, type: "acpi-nvs", node, purpose: "NVRAM" },
      );
    } else {
      regions.push({ base, length: perNode, type: "usable", node, purpose: "RAM" });
    }
  }
  for (const bad of config.badRanges ?? []) {
    const owner = regions.find((r) => bad.base >= r.base && bad.base < r.base + r.length);
    regions.push({
      base: bad.base,
      length: bad.length,
      type: "bad",
      node: owner?.node ?? 0,
      purpose: "failed RAM",
    });
  }
  regions.push({ base: MMIO_BASE, length: MMIO_BYTES, type: "device", node: 0, purpose: "device MMIO" });
  return regions.sort((a, b) => a.base - b.base);
}

/** Whether guest software may keep data at a region's addresses (every RAM type; not devices). */
export function isRamType(type: FirmwareRegionType): boolean {
  return type !== "device";
}
