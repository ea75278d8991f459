// The machine service's RPC surface: decode, validate, call the machine, encode. The CPU side
// (CPUs, thread contexts, a thread's memory, the MMU) is in cpu_server.ts.
import {
  DeviceKind as ProtoDeviceKind,
  DiskController as ProtoDiskController,
  type DiskLocation as ProtoDiskLocation,
  FaultKind,
  MemoryType,
  PowerCutMode,
} from "../../gen/astra/machine/v1/devices_pb.ts";
import { InterruptService } from "../../gen/astra/machine/v1/interrupts_pb.ts";
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { Errno, invalidArgument, outOfRange } from "../../lib/errors.ts";
import type { Peers, ServiceModule, SystemConfig } from "../../lib/module.ts";
import { bindService } from "../../lib/server.ts";
import { type DeviceConfig, deviceConfigFrom } from "./config.ts";
import { HWCAP, HWCAP2 } from "./cpu/features.ts";
import { DCACHE_BLOCK_BYTES } from "./cpu/interpreter.ts";
import { cpuMethods, cpuSummaries } from "./cpu_server.ts";
import { accessDevices, mmioValue, mmioWidth } from "./device_access.ts";
import type { DiskController, DiskLocation, DiskReport } from "./disks.ts";
import type { FirmwareRegionType } from "./firmware.ts";
import { interruptServiceImpl } from "./interrupt_server.ts";
import type { KernelSide } from "./kernel_side.ts";
import { type DeviceKind, Machine, MAX_PHYSICAL_TRANSFER, safeNumber, TIMEBASE_HZ } from "./machine.ts";
import { peerKernelSide } from "./trap_path.ts";

const MEMORY_TYPES: Record<FirmwareRegionType, MemoryType> = {
  usable: MemoryType.USABLE,
  reserved: MemoryType.RESERVED,
  "acpi-reclaimable": MemoryType.ACPI_RECLAIMABLE,
  "acpi-nvs": MemoryType.ACPI_NVS,
  bad: MemoryType.BAD,
  device: MemoryType.DEVICE,
};

const DEVICE_KINDS: Record<DeviceKind, ProtoDeviceKind> = {
  "interrupt-controller": ProtoDeviceKind.INTERRUPT_CONTROLLER,
  uart: ProtoDeviceKind.UART,
  ahci: ProtoDeviceKind.AHCI,
  nvme: ProtoDeviceKind.NVME,
};

function transferLength(value: bigint): number {
  const length = safeNumber(value, "length");
  if (length > MAX_PHYSICAL_TRANSFER) {
    throw invalidArgument("length", `at most ${MAX_PHYSICAL_TRANSFER} bytes per call, not ${length}`);
  }
  return length;
}

/** A block number or count as a safe number; beyond that no disk reaches. */
function blockNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw outOfRange(field, `${field} ${value} is beyond any disk`, Errno.ENXIO);
  }
  return Number(value);
}

function controllerOf(location: ProtoDiskLocation | undefined): DiskController | undefined {
  switch (location?.controller ?? ProtoDiskController.UNSPECIFIED) {
    case ProtoDiskController.UNSPECIFIED:
      return undefined;
    case ProtoDiskController.AHCI:
      return "ahci";
    case ProtoDiskController.NVME:
      return "nvme";
    default:
      throw invalidArgument("location.controller", `no disk controller ${location!.controller}`);
  }
}

/** A disk location; unset (no controller) is undefined. */
function optionalLocation(location: ProtoDiskLocation | undefined): DiskLocation | undefined {
  const controller = controllerOf(location);
  if (controller === undefined) return undefined;
  return controller === "ahci"
    ? { controller, port: location!.port }
    : { controller, namespaceId: location!.namespaceId };
}

function requiredLocation(location: ProtoDiskLocation | undefined): DiskLocation {
  const decoded = optionalLocation(location);
  if (!decoded) {
    throw invalidArgument("location.controller", "a disk location names its controller, AHCI or NVMe");
  }
  return decoded;
}

function encodeLocation(location: DiskLocation) {
  return location.controller === "ahci"
    ? { controller: ProtoDiskController.AHCI, port: location.port }
    : { controller: ProtoDiskController.NVME, namespaceId: location.namespaceId };
}

function encodeDisk(d: DiskReport) {
  const s = d.statistics;
  return {
    location: encodeLocation(d.location),
    imagePath: d.imagePath,
    sizeBytes: BigInt(d.sizeBytes),
    lbaSize: d.lbaSize,
    lbaCount: BigInt(d.lbaCount),
    unflushedWrites: BigInt(s.unflushedWrites),
    unflushedBytes: BigInt(s.unflushedBytes),
    reads: BigInt(s.reads),
    writes: BigInt(s.writes),
    flushes: BigInt(s.flushes),
    errors: BigInt(s.errors),
    faults: d.faults.map((f) => ({
      faultId: BigInt(f.faultId),
      kind: f.kind === "media-error" ? FaultKind.MEDIA_ERROR : FaultKind.COMMAND_TIMEOUT,
      lbaFirst: BigInt(f.lbaFirst),
      lbaCount: BigInt(f.lbaCount),
      remaining: f.remaining,
      triggered: BigInt(f.triggered),
    })),
    timeouts: BigInt(s.timeouts),
    blocksRead: BigInt(s.sectorsRead),
    blocksWritten: BigInt(s.sectorsWritten),
  };
}

/** Makes the kernel side the CPUs ask when threads trap (trap_path.ts makes one over the peers). */
export type KernelSideFactory = (peers: Peers) => KernelSide;

/**
 * The machine service. Its devices come from `devices` (by default the environment: see
 * config.ts); the disk images live in the data folder and open at start, close at stop. The CPUs
 * ask the kernel side `kernelSide` makes over the peers (by default the trap path to sched, vmm and
 * storage), made when a thread is first put on a CPU; with `null` the machine boots and
 * serves everything but running threads.
 */
export function createMachine(
  peers: Peers,
  config: SystemConfig,
  devices: DeviceConfig = deviceConfigFrom(),
  kernelSide: KernelSideFactory | null = peerKernelSide,
): ServiceModule {
  const machine = new Machine({
    ...config,
    devices,
    kernelSide: kernelSide === null ? undefined : () => kernelSide(peers),
  });
  const numaNodes = () =>
    machine.ramBytesByNode().map((bytes, node) => ({
      node,
      memoryBytes: BigInt(bytes),
      cpus: Array.from({ length: config.cpus }, (_, cpu) => cpu).filter((cpu) =>
        machine.nodeOfCpu(cpu) === node
      ),
    }));

  const machineService = bindService("machine", MachineService, {
    ...cpuMethods(machine),
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
      cpus: cpuSummaries(machine),
      devices: machine.devices().map((d) => ({
        name: d.name,
        kind: DEVICE_KINDS[d.kind],
        mmioBase: BigInt(d.mmioBase),
        mmioLength: BigInt(d.mmioLength),
        irqs: d.irqs,
        mmioReads: BigInt(d.mmioReads),
        mmioWrites: BigInt(d.mmioWrites),
        interruptsRaised: BigInt(d.interruptsRaised),
      })),
      hwcap: BigInt(HWCAP),
      hwcap2: BigInt(HWCAP2),
      dcacheBlockBytes: DCACHE_BLOCK_BYTES,
      icacheBlockBytes: DCACHE_BLOCK_BYTES,
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
    readMmio: (req) => {
      const width = mmioWidth(req.width);
      return { value: machine.bus.read(safeNumber(req.address, "address"), width) };
    },
    writeMmio: (req) => {
      const width = mmioWidth(req.width);
      machine.bus.write(safeNumber(req.address, "address"), width, mmioValue(req.value, width));
      return {};
    },
    accessDevices: (req) => ({ results: accessDevices(machine.memory, machine.bus, req.accesses) }),
    writeConsole: (req) => {
      machine.console.write(req.data);
      return {};
    },
    writeConsoleInput: (req) => ({ accepted: BigInt(machine.uart.receive(req.data)) }),
    async *consoleOutput(req, ctx) {
      const channel = machine.console.subscribe(req.includeHistory);
      ctx.signal.addEventListener("abort", () => machine.console.unsubscribe(channel), { once: true });
      try {
        for await (const chunk of channel) yield { data: chunk.data, offset: BigInt(chunk.offset) };
      } finally {
        machine.console.unsubscribe(channel);
      }
    },
    listDisks: () => ({ disks: machine.controllers.disks.list().map(encodeDisk) }),
    attachDisk: async (req) => {
      const location = requiredLocation(req.location);
      const disk = await machine.controllers.disks.attach(location, {
        imagePath: req.imagePath,
        sizeBytes: blockNumber(req.sizeBytes, "size_bytes"),
        lbaSize: req.lbaSize,
      });
      return { disk: encodeDisk(disk) };
    },
    detachDisk: async (req) => {
      const result = await machine.controllers.disks.detach(requiredLocation(req.location), req.surprise);
      return { writesFlushed: BigInt(result.writesFlushed), writesLost: BigInt(result.writesLost) };
    },
    powerCut: async (req) => {
      let keep: "none" | "random" | number;
      switch (req.mode) {
        case PowerCutMode.LOSE_ALL:
          keep = "none";
          break;
        case PowerCutMode.PREFIX:
          // A prefix longer than any cache keeps everything.
          keep = Number(
            req.prefixWrites > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : req.prefixWrites,
          );
          break;
        case PowerCutMode.RANDOM_PREFIX:
          keep = "random";
          break;
        default:
          throw invalidArgument("mode", `a power cut is LOSE_ALL, PREFIX or RANDOM_PREFIX, not ${req.mode}`);
      }
      const report = await machine.controllers.disks.powerCut({
        location: optionalLocation(req.location),
        keep,
        seed: Number(req.seed),
        tearSector: req.tearSector,
      });
      const torn = report.disks.find((d) => d.torn);
      return {
        writesPersisted: BigInt(report.disks.reduce((n, d) => n + d.writesPersisted, 0)),
        writesLost: BigInt(report.disks.reduce((n, d) => n + d.writesLost, 0)),
        torn: torn !== undefined,
        tornLba: BigInt(torn?.tornLba ?? 0),
        seed: BigInt(report.seed),
        disks: report.disks.map((d) => ({
          location: encodeLocation(d.location),
          writesPersisted: BigInt(d.writesPersisted),
          writesLost: BigInt(d.writesLost),
          torn: d.torn,
          tornLba: BigInt(d.tornLba),
          tornBytes: d.tornBytes,
          seed: BigInt(d.seed),
        })),
      };
    },
    injectFault: async (req) => {
      const disks = machine.controllers.disks;
      let faultId: number;
      switch (req.kind) {
        case FaultKind.MEDIA_ERROR:
        case FaultKind.COMMAND_TIMEOUT:
          faultId = disks.injectDiskFault(requiredLocation(req.location), {
            kind: req.kind === FaultKind.MEDIA_ERROR ? "media-error" : "command-timeout",
            lbaFirst: blockNumber(req.lbaFirst, "lba_first"),
            lbaCount: blockNumber(req.lbaCount, "lba_count"),
            count: req.count,
          });
          break;
        case FaultKind.PHY_ERROR:
          faultId = disks.injectPhyError(requiredLocation(req.location));
          break;
        case FaultKind.SURPRISE_REMOVAL:
          faultId = await disks.surpriseRemove(requiredLocation(req.location));
          break;
        case FaultKind.CONTROLLER_FATAL: {
          const controller = controllerOf(req.location);
          if (!controller) {
            throw invalidArgument(
              "location.controller",
              "a controller fault names its controller, AHCI or NVMe",
            );
          }
          faultId = disks.injectControllerFatal(controller);
          break;
        }
        default:
          throw invalidArgument("kind", `no fault kind ${req.kind}`);
      }
      return { faultId: BigInt(faultId) };
    },
    clearFaults: (req) => {
      const faultId = req.faultId > BigInt(Number.MAX_SAFE_INTEGER)
        ? Number.MAX_SAFE_INTEGER
        : Number(req.faultId);
      return { cleared: machine.controllers.disks.clearFaults(optionalLocation(req.location), faultId) };
    },
  });
  const interruptService = bindService("machine", InterruptService, interruptServiceImpl(machine.interrupts));

  return {
    name: "machine",
    bound: [machineService, interruptService],
    start: async () => {
      await machine.powerOn();
      const gib = (machine.ramBytesByNode().reduce((a, b) => a + b, 0) / 1024 ** 3).toFixed(2);
      const disks = machine.controllers.disks.list();
      const sata = disks.filter((d) => d.location.controller === "ahci").length;
      return `${config.cpus} CPUs, ${gib} GiB RAM in ${config.numaNodes} NUMA node(s), ` +
        `${machine.memoryMap.length} firmware map entries, timebase ${TIMEBASE_HZ / 1e6} MHz, ` +
        `${sata} SATA disk(s) on ${devices.ahciPorts} AHCI ports, ${disks.length - sata} NVMe namespace(s)`;
    },
    stop: () => machine.powerOff(),
  };
}
