// The machine service's RPC surface: decode, validate, call the machine, encode.
import { CpuRunState } from "../../gen/astra/machine/v1/cpu_pb.ts";
import { MemoryType } from "../../gen/astra/machine/v1/devices_pb.ts";
import { InterruptService } from "../../gen/astra/machine/v1/interrupts_pb.ts";
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { invalidArgument } from "../../lib/errors.ts";
import type { ServiceModule, SystemConfig } from "../../lib/module.ts";
import { bindService, pendingMethods } from "../../lib/server.ts";
import type { FirmwareRegionType } from "./firmware.ts";
import { Machine, MAX_PHYSICAL_TRANSFER, safeNumber, TIMEBASE_HZ } from "./machine.ts";

const CPU_WORK = "issue #3 (the POWER CPU, exec, memory and the first system calls)";
const DEVICE_WORK = "issue #5 (AHCI and NVMe controllers, the interrupt system)";

const MEMORY_TYPES: Record<FirmwareRegionType, MemoryType> = {
  usable: MemoryType.USABLE,
  reserved: MemoryType.RESERVED,
  "acpi-reclaimable": MemoryType.ACPI_RECLAIMABLE,
  "acpi-nvs": MemoryType.ACPI_NVS,
  bad: MemoryType.BAD,
  device: MemoryType.DEVICE,
};

function transferLength(value: bigint): number {
  const length = safeNumber(value, "length");
  if (length > MAX_PHYSICAL_TRANSFER) {
    throw invalidArgument("length", `at most ${MAX_PHYSICAL_TRANSFER} bytes per call, not ${length}`);
  }
  return length;
}

export function createMachine(_peers: unknown, config: SystemConfig): ServiceModule {
  const machine = new Machine(config);
  const numaNodes = () =>
    machine.ramBytesByNode().map((bytes, node) => ({
      node,
      memoryBytes: BigInt(bytes),
      cpus: Array.from({ length: config.cpus }, (_, cpu) => cpu).filter((cpu) =>
        machine.nodeOfCpu(cpu) === node
      ),
    }));
  const cpuSummaries = () =>
    Array.from({ length: config.cpus }, (_, cpu) => ({
      cpu,
      state: CpuRunState.STOPPED,
      numaNode: machine.nodeOfCpu(cpu),
    }));

  const machineService = bindService("machine", MachineService, {
    ...pendingMethods(MachineService, CPU_WORK),
    ...pendingMethods(MachineService, DEVICE_WORK, [
      "readMmio",
      "writeMmio",
      "listDisks",
      "attachDisk",
      "detachDisk",
      "powerCut",
      "injectFault",
      "clearFaults",
    ]),
    getInfo: () => ({
      model: "AstraLisp POWER9 (emulated)",
      platform: "power9",
      cpuCount: config.cpus,
      memoryBytes: BigInt(machine.ramBytesByNode().reduce((a, b) => a + b, 0)),
      residentMemoryBytes: BigInt(machine.memory.residentBytes),
      numaNodes: numaNodes(),
      timebaseFrequency: BigInt(TIMEBASE_HZ),
      timebase: machine.timebase,
      uptimeNanos: BigInt(machine.uptimeNanos),
      cpus: cpuSummaries(),
      // No instruction is implemented until the CPU arrives: nothing to advertise in AT_HWCAP.
      hwcap: 0n,
      hwcap2: 0n,
      dcacheBlockBytes: 128,
      icacheBlockBytes: 128,
      htabOrigin: BigInt(machine.partitionTable?.htabOrigin ?? 0),
      htabSize: machine.partitionTable?.htabSize ?? 0,
    }),
    getMemoryMap: () => ({
      regions: machine.memoryMap.map((r) => ({
        base: BigInt(r.base),
        length: BigInt(r.length),
        type: MEMORY_TYPES[r.type],
        numaNode: r.node,
        purpose: r.purpose,
      })),
      numaNodes: numaNodes(),
    }),
    readPhysical: (req) => ({
      data: machine.memory.read(safeNumber(req.address, "address"), transferLength(req.length)),
    }),
    writePhysical: (req) => {
      transferLength(BigInt(req.data.length));
      machine.memory.write(safeNumber(req.address, "address"), req.data);
      return {};
    },
    fillPhysical: (req) => {
      if (req.value > 255) throw invalidArgument("value", `a byte is 0..255, not ${req.value}`);
      machine.memory.fill(safeNumber(req.address, "address"), safeNumber(req.length, "length"), req.value);
      return {};
    },
    listCpus: () => ({ cpus: cpuSummaries() }),
    setPartitionTable: (req) => {
      machine.setPartitionTable(safeNumber(req.htabOrigin, "htab_origin"), req.htabSize);
      // There is no software TLB before the CPU arrives, so nothing is dropped.
      return { entriesInvalidated: 0n };
    },
    writeConsole: (req) => {
      machine.console.write(req.data);
      return {};
    },
    writeConsoleInput: (req) => ({ accepted: BigInt(machine.console.writeInput(req.data)) }),
    async *consoleOutput(req, ctx) {
      const channel = machine.console.subscribe(req.includeHistory);
      ctx.signal.addEventListener("abort", () => machine.console.unsubscribe(channel), { once: true });
      try {
        for await (const chunk of channel) yield { data: chunk.data, offset: BigInt(chunk.offset) };
      } finally {
        machine.console.unsubscribe(channel);
      }
    },
  });
  const interruptService = bindService(
    "machine",
    InterruptService,
    pendingMethods(InterruptService, DEVICE_WORK),
  );

  return {
    name: "machine",
    bound: [machineService, interruptService],
    start: () => {
      const gib = (machine.ramBytesByNode().reduce((a, b) => a + b, 0) / 1024 ** 3).toFixed(2);
      return Promise.resolve(
        `${config.cpus} CPUs, ${gib} GiB RAM in ${config.numaNodes} NUMA node(s), ` +
          `${machine.memoryMap.length} firmware map entries, timebase ${TIMEBASE_HZ / 1e6} MHz`,
      );
    },
    stop: () => Promise.resolve(),
  };
}
