// The emulated machine's state: configuration, firmware memory map, guest physical memory, the
// console, the timebase and the MMU's partition-table registers. The CPU cores, devices and
// interrupt controller attach here as they arrive.
import { AstraError, Code, Errno, invalidArgument } from "../../lib/errors.ts";
import { Console } from "./console.ts";
import { firmwareMemoryMap, type FirmwareRegion, isRamType } from "./firmware.ts";
import { PhysicalMemory } from "./memory.ts";

/** POWER9's timebase runs at 512 MHz. */
export const TIMEBASE_HZ = 512_000_000;
/** The largest transfer of one physical read or write, as the contract states. */
export const MAX_PHYSICAL_TRANSFER = 16 * 1024 * 1024;

export interface MachineConfig {
  memoryBytes: number;
  numaNodes: number;
  cpus: number;
}

export interface PartitionTable {
  htabOrigin: number;
  htabSize: number;
}

export class Machine {
  readonly memoryMap: readonly FirmwareRegion[];
  readonly memory: PhysicalMemory;
  readonly console = new Console();
  private readonly poweredOnAt = performance.now();
  partitionTable: PartitionTable | undefined;

  constructor(readonly config: MachineConfig) {
    this.memoryMap = firmwareMemoryMap(config);
    this.memory = new PhysicalMemory(this.memoryMap);
  }

  get uptimeNanos(): number {
    return Math.round((performance.now() - this.poweredOnAt) * 1e6);
  }

  /** The timebase register: ticks at TIMEBASE_HZ since power-on. */
  get timebase(): bigint {
    return BigInt(Math.round(((performance.now() - this.poweredOnAt) / 1000) * TIMEBASE_HZ));
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
   * table's size (2^(18+HTABSIZE) bytes) and the whole table must be RAM.
   */
  setPartitionTable(htabOrigin: number, htabSize: number): void {
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
