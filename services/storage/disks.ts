// The storage service's disks: a driver for every disk controller the machine has and the block
// layer over the disks they find, kept in step with hot plug. Probing waits while the machine is
// not answering yet (UNAVAILABLE); a controller that fails is reported and left out, so one bad
// controller does not keep the others' disks from the system.
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import { AhciDriver, type AhciDriverOptions, type AhciPort } from "./ahci.ts";
import { type BlockBackend, type BlockDevice, BlockLayer } from "./block.ts";
import type { ControllerInfo, Hardware } from "./hardware.ts";
import { type NamespaceData, NvmeDriver, type NvmeDriverOptions } from "./nvme.ts";

const log = logger("storage");

export interface DiskSubsystemOptions {
  ahci?: AhciDriverOptions;
  nvme?: NvmeDriverOptions;
  /** Last-resort deadline of a block request. */
  requestDeadlineMs?: number;
  /** How long probing waits for a machine that answers UNAVAILABLE (default 30 s). */
  probeWaitMs?: number;
}

export interface ControllerFailure {
  controller: string;
  error: string;
}

function describe(err: unknown): string {
  return err instanceof AstraError ? err.describe() : String(err);
}

function sizeText(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/** Runs `fn` again while it fails with UNAVAILABLE, for at most `waitMs`. */
async function whileUnavailable<T>(what: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
  const end = performance.now() + waitMs;
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof AstraError) || err.code !== Code.UNAVAILABLE || performance.now() > end) throw err;
      log.info("waiting for the machine", { what, attempt, status: err.describe() });
      await new Promise((r) => setTimeout(r, Math.min(1000, 50 * attempt)));
    }
  }
}

export function ahciBackend(driver: AhciDriver, port: AhciPort): BlockBackend {
  const id = port.identity!;
  return {
    identity: {
      driver: "ahci",
      blockSize: id.logicalSectorBytes,
      blockCount: id.sectors,
      model: id.model,
      serial: id.serial,
      firmware: id.firmware,
      portOrNamespace: port.index,
      nvmeController: 0,
      queueDepth: port.queueDepth,
      volatileWriteCache: id.writeCache,
      raw: id.raw,
    },
    read: (lba, count, events) => port.read(lba, count, events),
    write: async (lba, data, fua, events) => {
      await port.write(lba, data, fua, events);
    },
    flush: (events) => port.flush(events),
    reset: async () => {
      const outcome = await port.reset();
      log.info("AHCI port reset by request", { controller: driver.name, port: port.index, ...outcome });
      return outcome.reissued;
    },
  };
}

export function nvmeBackend(driver: NvmeDriver, ns: NamespaceData): BlockBackend {
  const ctrl = driver.controllerData!;
  const nsid = ns.namespaceId;
  return {
    identity: {
      driver: "nvme",
      blockSize: ns.blockBytes,
      blockCount: ns.sizeBlocks,
      model: ctrl.model,
      serial: ctrl.serial,
      firmware: ctrl.firmware,
      portOrNamespace: nsid,
      nvmeController: driver.index,
      queueDepth: driver.ioCapacity,
      volatileWriteCache: ctrl.volatileWriteCache,
      raw: ns.raw,
    },
    read: (lba, count, events) => driver.read(nsid, lba, count, { events }),
    write: async (lba, data, fua, events) => {
      await driver.write(nsid, lba, data, { fua, events });
    },
    flush: (events) => driver.flush(nsid, { events }),
    reset: () => driver.resetController("requested by the block layer"),
  };
}

/** Every disk controller's driver and the block devices on them. */
export class DiskSubsystem {
  readonly block: BlockLayer;
  readonly failures: ControllerFailure[] = [];
  #ahci: AhciDriver[] = [];
  #nvme: NvmeDriver[] = [];
  readonly #ahciDevices = new Map<AhciPort, BlockDevice>();
  readonly #nvmeDevices = new Map<string, BlockDevice>();
  readonly #options: DiskSubsystemOptions;
  /** Re-initialisations, one at a time: two drivers must never hold the same controller. */
  #reinit: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(readonly hw: Hardware, options: DiskSubsystemOptions = {}) {
    this.#options = options;
    this.block = new BlockLayer({ requestDeadlineMs: options.requestDeadlineMs });
  }

  get ahci(): readonly AhciDriver[] {
    return this.#ahci;
  }

  get nvme(): readonly NvmeDriver[] {
    return this.#nvme;
  }

  /** The block device on an AHCI port, if it has one. */
  deviceOfPort(port: AhciPort): BlockDevice | undefined {
    return this.#ahciDevices.get(port);
  }

  /** Interrupts the drivers have taken. */
  get interruptsHandled(): number {
    return this.#ahci.reduce((n, d) => n + d.interrupts, 0) +
      this.#nvme.reduce((n, d) => n + d.statistics().interrupts, 0);
  }

  /** Finds the controllers, brings each up, and answers with the boot log's line. */
  async probe(): Promise<string> {
    const wait = this.#options.probeWaitMs ?? 30_000;
    const controllers = await whileUnavailable("the machine's devices", wait, () => this.hw.controllers());
    if (controllers.length === 0) return "no disk controllers on the machine";
    const notes: string[] = [];
    for (const info of controllers) {
      try {
        notes.push(await whileUnavailable(info.name, wait, () => this.#bringUp(info)));
      } catch (err) {
        this.failures.push({ controller: info.name, error: describe(err) });
        log.error("disk controller failed", { controller: info.name, error: describe(err) });
        notes.push(`${info.name} failed (${describe(err)})`);
      }
    }
    const devices = this.block.devices().map((d) => {
      const extra = d.blockSize === 512 ? "" : `, ${d.blockSize} B blocks`;
      return `${d.name} ${sizeText(d.blockSize * d.blockCount)}${extra}`;
    });
    return `${notes.join("; ")}; devices: ${devices.length > 0 ? devices.join(", ") : "none"}`;
  }

  /** Re-initialises an AHCI HBA (AhciService.Init): its disks leave and come back. */
  reinitAhci(index = 0, options: AhciDriverOptions = {}): Promise<AhciDriver> {
    return this.#serialized(() => this.#reinitAhci(index, options));
  }

  /** Re-initialises an NVMe controller (NvmeService.Init) with new queue settings. */
  reinitNvme(index = 0, options: NvmeDriverOptions = {}): Promise<NvmeDriver> {
    return this.#serialized(() => this.#reinitNvme(index, options));
  }

  #serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#reinit.then(task);
    this.#reinit = run.catch(() => {});
    return run;
  }

  async #reinitAhci(index: number, options: AhciDriverOptions): Promise<AhciDriver> {
    const old = this.#ahci[index];
    if (!old) throw new AstraError(Code.FAILED_PRECONDITION, Errno.ENODEV, "the machine has no AHCI HBA");
    const info = (await this.hw.controllers()).find((c) => c.name === old.name)!;
    this.#dropAhci(old);
    await old.close();
    const driver = await this.#startAhci(info, { ...this.#options.ahci, ...options });
    this.#ahci[index] = driver;
    return driver;
  }

  async #reinitNvme(index: number, options: NvmeDriverOptions): Promise<NvmeDriver> {
    const old = this.#nvme[index];
    if (!old) {
      throw new AstraError(Code.FAILED_PRECONDITION, Errno.ENODEV, "the machine has no NVMe controller");
    }
    const info = (await this.hw.controllers()).find((c) => c.name === old.name)!;
    for (const ns of old.namespaces()) {
      this.#nvmeRemoved(old, ns.namespaceId, "the controller is re-initialised");
    }
    await old.close();
    const driver = await this.#startNvme(info, { ...this.#options.nvme, ...options });
    this.#nvme[index] = driver;
    return driver;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.block.close();
    await Promise.allSettled([...this.#ahci, ...this.#nvme].map((d) => d.close()));
    await this.hw.close();
  }

  async #bringUp(info: ControllerInfo): Promise<string> {
    if (info.kind === "ahci") {
      const driver = await this.#startAhci(info, this.#options.ahci ?? {});
      this.#ahci.push(driver);
      const disks = driver.ports().filter((p) => p.devicePresent).length;
      const v = driver.version;
      const version = `${v >>> 16}.${(v >>> 8) & 0xff}${v & 0xff ? `.${v & 0xff}` : ""}`;
      return `${info.name}: AHCI ${version}, ${driver.ports().length} ports, ${disks} disk(s)` +
        (driver.ncq ? ", NCQ" : "");
    }
    const driver = await this.#startNvme(info, this.#options.nvme ?? {});
    this.#nvme.push(driver);
    const v = driver.version;
    return `${info.name}: NVMe ${v >>> 16}.${(v >>> 8) & 0xff}${v & 0xff ? `.${v & 0xff}` : ""}, ` +
      `${driver.namespaces().length} namespace(s), ${driver.ioQueueIds.length} I/O queue(s) of ${driver.queueEntries}`;
  }

  async #startAhci(info: ControllerInfo, options: AhciDriverOptions): Promise<AhciDriver> {
    const driver = new AhciDriver(this.hw, info, options);
    driver.onDeviceChange = (port, change, reason) => {
      if (change === "added") {
        this.#ahciDevices.set(port, this.block.add(ahciBackend(driver, port)));
      } else {
        const device = this.#ahciDevices.get(port);
        this.#ahciDevices.delete(port);
        if (device) this.block.remove(device, reason);
      }
    };
    try {
      await driver.init();
    } catch (err) {
      this.#dropAhci(driver);
      await driver.close().catch(() => {});
      throw err;
    }
    return driver;
  }

  #dropAhci(driver: AhciDriver): void {
    for (const port of driver.ports()) {
      const device = this.#ahciDevices.get(port);
      this.#ahciDevices.delete(port);
      if (device) this.block.remove(device, "the HBA is re-initialised");
    }
  }

  async #startNvme(info: ControllerInfo, options: NvmeDriverOptions): Promise<NvmeDriver> {
    const driver = new NvmeDriver(this.hw, info, options);
    try {
      await driver.init();
    } catch (err) {
      await driver.close().catch(() => {});
      throw err;
    }
    for (const ns of driver.namespaces()) this.#nvmeAdded(driver, ns);
    driver.onNamespacesChanged = (change) => {
      for (const nsid of change.removed) this.#nvmeRemoved(driver, nsid, "the namespace went away");
      for (const ns of change.added) this.#nvmeAdded(driver, ns);
    };
    return driver;
  }

  #nvmeAdded(driver: NvmeDriver, ns: NamespaceData): void {
    this.#nvmeDevices.set(`${driver.name}/${ns.namespaceId}`, this.block.add(nvmeBackend(driver, ns)));
  }

  #nvmeRemoved(driver: NvmeDriver, nsid: number, reason: string): void {
    const key = `${driver.name}/${nsid}`;
    const device = this.#nvmeDevices.get(key);
    this.#nvmeDevices.delete(key);
    if (device) this.block.remove(device, reason);
  }
}
