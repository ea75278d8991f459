// The emulated machine's state: configuration, firmware memory map, guest physical memory, the
// interrupt controller with the timebase and the per-CPU decrementers, the MMIO bus with the
// console UART and (once powered on) the disk controllers, the MMU with its partition-table
// registers, and the CPUs that run guest threads.
import { AstraError, Code, Errno, invalidArgument, unavailable } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import type { DeviceConfig } from "./config.ts";
import { Console } from "./console.ts";
import { AHCI_IRQ, DiskControllers, NVME_FIRST_IRQ, NVME_VECTORS } from "./controllers.ts";
import { TIMEBASE_FREQUENCY } from "./devices/intc.ts";
import { MmioBus } from "./devices/mmio.ts";
import { firmwareMemoryMap, type FirmwareRegion, isRamType, MMIO_BASE } from "./firmware.ts";
import { CpuComplex } from "./cpus.ts";
import { InterruptHub } from "./interrupts.ts";
import type { KernelSide } from "./kernel_side.ts";
import { PhysicalMemory } from "./memory.ts";
import { Mmu } from "./mmu.ts";
import { Uart, UART_MMIO_SIZE } from "./uart.ts";

/** POWER9's timebase runs at 512 MHz. */
export const TIMEBASE_HZ = TIMEBASE_FREQUENCY;
/** The largest transfer of one physical read or write, as the contract states. */
export const MAX_PHYSICAL_TRANSFER = 16 * 1024 * 1024;
/** The console UART: the first registers of the device window, and IRQ 4 (COM1's, by habit). */
export const UART_MMIO_BASE = MMIO_BASE;
export const UART_IRQ = 4;

export interface MachineConfig {
  memoryBytes: number;
  numaNodes: number;
  cpus: number;
  /** Host folder for the disk images. */
  dataDir: string;
  devices: DeviceConfig;
  /** Makes the kernel side the CPUs ask, when a thread first runs; without it threads cannot run. */
  kernelSide?: () => KernelSide;
}

export type DeviceKind = "interrupt-controller" | "uart" | "ahci" | "nvme";

/** One device as GetInfo reports it. */
export interface DeviceSummary {
  name: string;
  kind: DeviceKind;
  /** The register window; 0 and 0 for the interrupt controller (programmed through its service). */
  mmioBase: number;
  mmioLength: number;
  irqs: number[];
  mmioReads: number;
  mmioWrites: number;
  interruptsRaised: number;
}

export interface PartitionTable {
  htabOrigin: number;
  htabSize: number;
}

export class Machine {
  readonly memoryMap: readonly FirmwareRegion[];
  readonly memory: PhysicalMemory;
  readonly console = new Console();
  readonly interrupts: InterruptHub;
  readonly bus = new MmioBus();
  readonly uart: Uart;
  readonly mmu: Mmu;
  readonly cpus: CpuComplex;
  private readonly poweredOnAt = performance.now();
  #controllers: DiskControllers | undefined;
  partitionTable: PartitionTable | undefined;

  constructor(readonly config: MachineConfig) {
    this.memoryMap = firmwareMemoryMap(config);
    this.memory = new PhysicalMemory(this.memoryMap);
    this.interrupts = new InterruptHub({ cpus: config.cpus, log: logger("machine") });
    this.uart = new Uart(this.console, this.interrupts.controller, UART_IRQ);
    this.bus.map("uart0", UART_MMIO_BASE, UART_MMIO_SIZE, this.uart);
    this.mmu = new Mmu(this.memory);
    this.cpus = new CpuComplex({
      cpus: config.cpus,
      mmu: this.mmu,
      physical: this.memory,
      log: logger("machine"),
      timebase: () => Number(this.timebase),
      clockNanos: () => BigInt(this.uptimeNanos),
      kernelSide: config.kernelSide,
    });
  }

  /** Opens the disk images, brings up the disk controllers and starts the decrementer timer. */
  async powerOn(): Promise<void> {
    if (this.#controllers) return;
    this.#controllers = await DiskControllers.powerOn({
      memory: this.memory,
      interrupts: this.interrupts.controller,
      bus: this.bus,
      devices: this.config.devices,
      dataDir: this.config.dataDir,
    });
    this.interrupts.start();
  }

  /** Stops the CPUs, lets the disks finish what is in flight, flushes and closes their images, ends every handler. */
  async powerOff(): Promise<void> {
    await this.cpus.shutdown();
    const controllers = this.#controllers;
    this.#controllers = undefined;
    try {
      await controllers?.powerOff();
    } finally {
      this.interrupts.stop();
    }
  }

  /** The disk controllers; UNAVAILABLE until power-on has opened the disks. */
  get controllers(): DiskControllers {
    if (!this.#controllers) throw unavailable("the machine's disk controllers are not powered on");
    return this.#controllers;
  }

  /** Every device with its window, interrupt lines and counters since power-on. */
  devices(): DeviceSummary[] {
    const windows = new Map(this.bus.mappings().map((m) => [m.name, m]));
    const onBus = (name: string) => {
      const m = windows.get(name);
      return {
        mmioBase: m?.base ?? 0,
        mmioLength: m?.length ?? 0,
        mmioReads: m?.reads ?? 0,
        mmioWrites: m?.writes ?? 0,
      };
    };
    const controller = this.interrupts.controller;
    const devices: DeviceSummary[] = [
      {
        name: "intc0",
        kind: "interrupt-controller",
        mmioBase: 0,
        mmioLength: 0,
        mmioReads: 0,
        mmioWrites: 0,
        irqs: Array.from({ length: this.config.cpus }, (_, cpu) => controller.decrementerIrq(cpu)),
        interruptsRaised: this.interrupts.raises,
      },
      {
        name: "uart0",
        kind: "uart",
        ...onBus("uart0"),
        irqs: [UART_IRQ],
        interruptsRaised: this.uart.interruptsRaised,
      },
    ];
    const controllers = this.#controllers;
    if (controllers) {
      devices.push(
        {
          name: "ahci0",
          kind: "ahci",
          ...onBus("ahci0"),
          irqs: [AHCI_IRQ],
          interruptsRaised: controllers.ahci.statistics().interruptsRaised,
        },
        {
          name: "nvme0",
          kind: "nvme",
          ...onBus("nvme0"),
          irqs: Array.from({ length: NVME_VECTORS }, (_, i) => NVME_FIRST_IRQ + i),
          interruptsRaised: controllers.nvme.statistics().interruptsRaised,
        },
      );
    }
    return devices;
  }

  get uptimeNanos(): number {
    return Math.round((performance.now() - this.poweredOnAt) * 1e6);
  }

  /** The timebase register: ticks at TIMEBASE_HZ since power-on. */
  get timebase(): bigint {
    return this.interrupts.controller.timebase();
  }

  /** RAM bytes (every firmware type but DEVICE) per NUMA node. */
  ramBytesByNode(): number[] {
    const perNode = new Array(this.config.numaNodes).fill(0);
    for (const r of this.memoryMap) if (isRamType(r.type)) perNode[r.node] += r.length;
    return perNode;
  }

  /** CPUs are spread over the NUMA nodes in order, as firmware numbers them. */
  nodeOfCpu(cpu: number): number {
    return Math.floor((cpu * this.config.numaNodes) / this.config.cpus);
  }

  /**
   * Programs the partition-table entry of the hashed page table: HTABORG must be aligned to the
   * table's size (2^(18+HTABSIZE) bytes) and the whole table must be RAM. Returns the cached
   * translations dropped.
   */
  setPartitionTable(htabOrigin: number, htabSize: number): number {
    if (!Number.isInteger(htabSize) || htabSize < 0 || htabSize > 28) {
      throw invalidArgument("htab_size", `HTABSIZE must be 0..28, not ${htabSize}`);
    }
    const bytes = 2 ** (18 + htabSize);
    if (htabOrigin % bytes !== 0) {
      throw invalidArgument(
        "htab_origin",
        `HTABORG 0x${htabOrigin.toString(16)} is not aligned to the table size 0x${bytes.toString(16)}`,
      );
    }
    this.memory.check(htabOrigin, bytes);
    this.partitionTable = { htabOrigin, htabSize };
    return this.cpus.setHashTable(htabOrigin, htabSize);
  }
}

/** A uint64 request field as a safe JS number, or INVALID_ARGUMENT naming the field. */
export function safeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new AstraError(
      Code.OUT_OF_RANGE,
      Errno.EFAULT,
      `${field} 0x${value.toString(16)} is beyond guest memory`,
      {
        argument: field,
      },
    );
  }
  return Number(value);
}
