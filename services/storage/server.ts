// The storage service's RPC surface: the block layer (BlockService) and the AHCI and NVMe drivers
// (AhciService, NvmeService) over the machine's controllers, reached through the machine, interrupt
// and pmm services; the LFSX and VFS contracts are served here as well. The boot step probes the
// controllers and logs one line listing the disks found.
import { create } from "@bufbuild/protobuf";
import {
  AhciService,
  DataDirection,
  type IdentifyResponseSchema,
  LinkPowerState,
} from "../../gen/astra/storage/v1/ahci_pb.ts";
import { type BlockDeviceSchema, BlockService, DeviceDriver } from "../../gen/astra/storage/v1/block_pb.ts";
import { LfsxService } from "../../gen/astra/storage/v1/lfsx_pb.ts";
import {
  type IdentifyNamespaceResponse,
  IdentifyNamespaceResponseSchema,
  NvmeService,
} from "../../gen/astra/storage/v1/nvme_pb.ts";
import { AstraError, Code, Errno, failedPrecondition, invalidArgument, notFound } from "../../lib/errors.ts";
import type { Peers, ServiceModule, SystemConfig } from "../../lib/module.ts";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { bindService, type BoundService } from "../../lib/server.ts";
import type { AhciDriver, AtaIdentify, AtaResult, LinkPowerState as PortPowerState } from "./ahci.ts";
import type { BlockDevice, DeviceStatistics, LatencySummary } from "./block.ts";
import { serveBlockIo } from "./block_io.ts";
import { DiskSubsystem, type DiskSubsystemOptions } from "./disks.ts";
import { type Hardware, ServiceHardware } from "./hardware.ts";
import { BlockLayerDevice } from "./lfsx/blocklayer.ts";
import { LfsxServer } from "./lfsx_service.ts";
import { bindVfs } from "./vfs/service.ts";
import { hostStdio } from "./vfs/streams.ts";
import { Vfs } from "./vfs/vfs.ts";
import type { NamespaceData, NvmeDriver } from "./nvme.ts";

/** A uint64 field as a number, or OUT_OF_RANGE naming it. */
function safe(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new AstraError(Code.OUT_OF_RANGE, Errno.ERANGE, `${field} ${value} is out of range`, {
      argument: field,
    });
  }
  return Number(value);
}

function deviceMessage(d: BlockDevice): MessageInitShape<typeof BlockDeviceSchema> {
  const id = d.identity;
  return {
    name: d.name,
    driver: id.driver === "ahci" ? DeviceDriver.AHCI : DeviceDriver.NVME,
    blockSize: id.blockSize,
    blockCount: BigInt(id.blockCount),
    model: id.model,
    serial: id.serial,
    firmware: id.firmware,
    portOrNamespace: id.portOrNamespace,
    queueDepth: id.queueDepth,
    online: d.online,
    sizeBytes: BigInt(id.blockSize * id.blockCount),
    nvmeController: id.nvmeController,
    volatileWriteCache: id.volatileWriteCache,
  };
}

function latency(l: LatencySummary) {
  return {
    count: BigInt(l.count),
    meanMicros: l.meanMicros,
    p50Micros: l.p50Micros,
    p99Micros: l.p99Micros,
    maxMicros: l.maxMicros,
  };
}

function statisticsMessage(s: DeviceStatistics) {
  return {
    device: s.device,
    reads: BigInt(s.reads),
    writes: BigInt(s.writes),
    flushes: BigInt(s.flushes),
    blocksRead: BigInt(s.blocksRead),
    blocksWritten: BigInt(s.blocksWritten),
    retries: BigInt(s.retries),
    errors: BigInt(s.errors),
    resets: BigInt(s.resets),
    queued: s.queued,
    maxQueued: s.maxQueued,
    meanLatencyMicros: s.meanLatencyMicros,
    timeouts: BigInt(s.timeouts),
    readLatency: latency(s.readLatency),
    writeLatency: latency(s.writeLatency),
    flushLatency: latency(s.flushLatency),
  };
}

const POWER_TO_MESSAGE: Record<PortPowerState, LinkPowerState> = {
  active: LinkPowerState.ACTIVE,
  partial: LinkPowerState.PARTIAL,
  slumber: LinkPowerState.SLUMBER,
  devsleep: LinkPowerState.DEVSLEEP,
};

const POWER_FROM_MESSAGE: Partial<Record<LinkPowerState, PortPowerState>> = {
  [LinkPowerState.ACTIVE]: "active",
  [LinkPowerState.PARTIAL]: "partial",
  [LinkPowerState.SLUMBER]: "slumber",
  [LinkPowerState.DEVSLEEP]: "devsleep",
};

function identifyMessage(id: AtaIdentify): MessageInitShape<typeof IdentifyResponseSchema> {
  return {
    model: id.model,
    serial: id.serial,
    firmware: id.firmware,
    lba48Sectors: BigInt(id.lba48Sectors),
    logicalSectorBytes: id.logicalSectorBytes,
    ncqDepth: id.ncqDepth,
    writeCache: id.writeCache,
    raw: id.raw,
    lba48: id.lba48,
    lba28Sectors: id.lba28Sectors,
    physicalSectorBytes: id.physicalSectorBytes,
    flushCacheExt: id.flushCacheExt,
    fua: id.fua,
    ataMajorVersion: id.ataMajorVersion,
  };
}

function waitMessage(r: AtaResult) {
  return {
    status: r.status,
    error: r.error,
    data: r.data ?? new Uint8Array(0),
    transferredBytes: r.transferredBytes,
    latencyMicros: BigInt(r.latencyMicros),
  };
}

function namespaceMessage(ns: NamespaceData): IdentifyNamespaceResponse {
  return create(IdentifyNamespaceResponseSchema, {
    namespaceId: ns.namespaceId,
    sizeBlocks: BigInt(ns.sizeBlocks),
    capacityBlocks: BigInt(ns.capacityBlocks),
    usedBlocks: BigInt(ns.usedBlocks),
    blockBytes: ns.blockBytes,
    lbaFormats: ns.lbaFormats,
    raw: ns.raw,
  });
}

/** The BlockService over the block layer. */
export function blockService(disks: DiskSubsystem): BoundService {
  const block = disks.block;
  return bindService("storage", BlockService, {
    listDevices: () => ({ devices: block.devices().map(deviceMessage) }),
    identifyDevice: (req) => {
      const d = block.device(req.device);
      return { device: deviceMessage(d), raw: d.identity.raw };
    },
    readBlocks: async (req) => ({
      data: await block.device(req.device).readBlocks(safe(req.lba, "lba"), req.count),
    }),
    writeBlocks: async (req) => ({
      blocksWritten: await block.device(req.device).writeBlocks(safe(req.lba, "lba"), req.data, {
        fua: req.fua,
      }),
    }),
    flushDevice: async (req) => {
      await block.device(req.device).flush();
      return {};
    },
    blockIo: (requests) => serveBlockIo(block, requests),
    getDeviceStatistics: (req) => ({ statistics: statisticsMessage(block.device(req.device).statistics()) }),
    resetDevice: async (req) => ({ requestsRetried: await block.device(req.device).reset() }),
    getStatistics: () => {
      const devices = block.devices();
      return {
        ahciPorts: devices.filter((d) => d.identity.driver === "ahci").length,
        nvmeNamespaces: devices.filter((d) => d.identity.driver === "nvme").length,
        devices: devices.map((d) => statisticsMessage(d.statistics())),
        mountedVolumes: 0,
        openFiles: 0,
        interruptsHandled: BigInt(disks.interruptsHandled),
      };
    },
  });
}

/**
 * Which of `drivers` a request's `controller` names: the first when it names none (a machine
 * without one fails FAILED_PRECONDITION, as before controllers had names); a name the machine has
 * no such controller by fails NOT_FOUND.
 */
function controllerIndex(drivers: readonly { name: string }[], name: string, kind: string): number {
  if (name === "") {
    if (drivers.length === 0) {
      throw failedPrecondition(`the machine has no ${kind}`, Errno.ENODEV, "controller");
    }
    return 0;
  }
  const index = drivers.findIndex((d) => d.name === name);
  if (index < 0) {
    const present = drivers.length === 0 ? "none" : drivers.map((d) => d.name).join(", ");
    throw notFound(
      "controller",
      `no ${kind} ${JSON.stringify(name)} (the machine has ${present})`,
      Errno.ENODEV,
    );
  }
  return index;
}

/** The AhciService over the AHCI HBAs' drivers. */
export function ahciService(disks: DiskSubsystem): BoundService {
  const driver = (req: { controller: string }): AhciDriver =>
    disks.ahci[controllerIndex(disks.ahci, req.controller, "AHCI HBA")];
  const runningPort = (req: { controller: string; port: number }) => {
    const port = driver(req).port(req.port);
    if (port.halted) {
      throw failedPrecondition(`AHCI port ${req.port} is stopped (PortStart starts it)`, Errno.EAGAIN);
    }
    return port;
  };
  return bindService("storage", AhciService, {
    init: async (req) => {
      const d = await disks.reinitAhci(controllerIndex(disks.ahci, req.controller, "AHCI HBA"));
      const ports = d.ports();
      return {
        capabilities: d.capabilities,
        version: d.version,
        portsImplemented: d.portsImplemented,
        commandSlots: d.commandSlots,
        ncq: d.ncq,
        ports: ports.map((p) => ({
          port: p.index,
          devicePresent: p.devicePresent,
          signature: p.signature,
          deviceName: disks.deviceOfPort(p)?.name ?? "",
        })),
      };
    },
    portInit: async (req) => {
      const port = driver(req).port(req.port);
      await port.reinit();
      const area = port.areaAddress;
      return {
        commandListAddress: BigInt(area.commandList),
        receivedFisAddress: BigInt(area.receivedFis),
        commandTableAddresses: area.tables.map(BigInt),
      };
    },
    portStart: async (req) => {
      await driver(req).port(req.port).resume();
      return {};
    },
    portStop: async (req) => {
      await driver(req).port(req.port).halt();
      return {};
    },
    read: async (req) => ({ data: await runningPort(req).read(safe(req.lba, "lba"), req.count) }),
    write: async (req) => {
      const port = runningPort(req);
      const sector = port.identity?.logicalSectorBytes ?? 512;
      if (req.data.length === 0 || req.data.length % sector !== 0) {
        throw invalidArgument("data", `a write is a whole number of ${sector}-byte sectors`);
      }
      return { sectorsWritten: await port.write(safe(req.lba, "lba"), req.data, req.fua) };
    },
    identify: async (req) => identifyMessage(await runningPort(req).identify()),
    issueCommand: async (req) => {
      const direction = req.direction === DataDirection.IN
        ? "in"
        : req.direction === DataDirection.OUT
        ? "out"
        : "none";
      const slot = await runningPort(req).issueCommand({
        command: req.command,
        features: req.features,
        lba: safe(req.lba, "lba"),
        count: req.count,
        device: req.device,
        control: req.control,
        direction,
        payload: req.payload,
        receiveBytes: req.receiveBytes,
        queued: req.queued,
      });
      return { slot };
    },
    waitCommand: async (req) =>
      waitMessage(await driver(req).port(req.port).waitCommand(req.slot, req.timeoutMs)),
    resetPort: async (req) => ({ devicePresent: (await driver(req).port(req.port).reset()).devicePresent }),
    getPortStatus: async (req) => {
      const s = await driver(req).port(req.port).status();
      return {
        port: s.port,
        devicePresent: s.devicePresent,
        powerState: s.powerState ? POWER_TO_MESSAGE[s.powerState] : LinkPowerState.UNSPECIFIED,
        commandAndStatus: s.commandAndStatus,
        taskFileData: s.taskFileData,
        sataStatus: s.sataStatus,
        sataError: s.sataError,
        interruptStatus: s.interruptStatus,
        sataActive: s.sataActive,
        commandIssue: s.commandIssue,
        commands: BigInt(s.commands),
        errors: BigInt(s.errors),
        retries: BigInt(s.retries),
        resets: BigInt(s.resets),
        interrupts: BigInt(s.interrupts),
      };
    },
    setPowerState: async (req) => {
      const state = POWER_FROM_MESSAGE[req.state];
      if (!state) throw invalidArgument("state", "state must be ACTIVE, PARTIAL, SLUMBER or DEVSLEEP");
      const previous = await runningPort(req).setPowerState(state);
      return { previous: previous ? POWER_TO_MESSAGE[previous] : LinkPowerState.UNSPECIFIED };
    },
  });
}

/** The NvmeService over the NVMe controllers' drivers. */
export function nvmeService(disks: DiskSubsystem): BoundService {
  const driver = (req: { controller: string }): NvmeDriver =>
    disks.nvme[controllerIndex(disks.nvme, req.controller, "NVMe controller")];
  return bindService("storage", NvmeService, {
    init: async (req) => {
      const index = controllerIndex(disks.nvme, req.controller, "NVMe controller");
      const d = await disks.reinitNvme(index, { ioQueues: req.ioQueues, queueEntries: req.queueEntries });
      return {
        version: d.version,
        ioQueues: d.ioQueueIds.length,
        queueEntries: d.queueEntries,
        namespaces: d.namespaces().map((n) => n.namespaceId),
      };
    },
    createQueue: async (req) => {
      const q = await driver(req).createQueue(req.queueId, req.entries, req.vector);
      return {
        submissionQueueAddress: BigInt(q.submissionQueue),
        completionQueueAddress: BigInt(q.completionQueue),
      };
    },
    deleteQueue: async (req) => {
      await driver(req).deleteQueue(req.queueId);
      return {};
    },
    identifyController: async (req) => {
      const c = await driver(req).identifyController();
      return {
        vendorId: c.vendorId,
        serial: c.serial,
        model: c.model,
        firmware: c.firmware,
        maxTransferBytes: BigInt(c.maxTransferBytes),
        namespaceCount: c.namespaceCount,
        submissionEntryBytes: c.submissionEntryBytes,
        completionEntryBytes: c.completionEntryBytes,
        volatileWriteCache: c.volatileWriteCache,
        raw: c.raw,
      };
    },
    identifyNamespace: async (req) => namespaceMessage(await driver(req).identifyNamespace(req.namespaceId)),
    enumerateNamespaces: async (req) => ({
      namespaces: (await driver(req).enumerateNamespaces()).map(namespaceMessage),
    }),
    read: async (req) => ({
      data: await driver(req).read(req.namespaceId, safe(req.lba, "lba"), req.count, {
        queueId: req.queueId,
      }),
    }),
    write: async (req) => ({
      blocksWritten: await driver(req).write(req.namespaceId, safe(req.lba, "lba"), req.data, {
        fua: req.fua,
        queueId: req.queueId,
      }),
    }),
    submitCommand: async (req) => {
      const command = req.command.length > 0 ? { entry: req.command } : {
        opcode: req.fields?.opcode ?? 0,
        namespaceId: req.fields?.namespaceId ?? 0,
        commandDwords: req.fields?.commandDwords ?? [],
      };
      return {
        commandId: await driver(req).submitCommand(req.queueId, command, req.payload, req.transferBytes),
      };
    },
    waitCompletion: async (req) => {
      const done = await driver(req).waitCompletion(req.queueId, req.commandId, req.timeoutMs);
      const c = done.completion;
      return {
        result: c.result,
        status: c.status,
        data: done.data ?? new Uint8Array(0),
        statusCodeType: c.statusCodeType,
        statusCode: c.statusCode,
        doNotRetry: c.doNotRetry,
        entry: c.entry,
        latencyMicros: BigInt(done.latencyMicros),
      };
    },
    resetController: async (req) => ({
      commandsResubmitted: await driver(req).resetController("requested over RPC"),
    }),
  });
}

/**
 * The storage service over `hw` (tests and the benchmark give it the device models directly), with
 * the default LFSX volume in `dataDir`.
 */
export function storageModule(
  hw: Hardware,
  dataDir: string,
  options: DiskSubsystemOptions = {},
): ServiceModule & {
  disks: DiskSubsystem;
} {
  const disks = new DiskSubsystem(hw, options);
  const lfsxServer = new LfsxServer({
    dataDir,
    blockDevice: (name) => new BlockLayerDevice(disks.block.device(name)),
  });
  const lfsx = bindService("storage", LfsxService, lfsxServer.handlers());
  // Descriptors 0-2 of a first process are this process's own streams (the caller of `astra run`).
  const vfsState = new Vfs({ stdio: hostStdio() });
  return {
    name: "storage",
    disks,
    bound: [blockService(disks), ahciService(disks), nvmeService(disks), lfsx, bindVfs(vfsState)],
    start: async () => `${await disks.probe()}; ${await lfsxServer.start()}`,
    stop: async () => {
      vfsState.shutdown();
      await lfsxServer.stop();
      await disks.close();
    },
  };
}

export function createStorage(peers: Peers, config: SystemConfig): ServiceModule {
  return storageModule(new ServiceHardware(peers.machine, peers.pmm), config.dataDir);
}
