// The disks behind the machine's two controllers: which image file sits at which AHCI port or NVMe
// namespace, hot plug (attach, clean or surprise detach), simulated power cuts, and fault injection.
// Faults get machine-wide IDs, so one ID names one fault whatever disk it is on; the disk image
// keeps the fault itself (its own IDs, its counts, its self-clearing when transient).
import { dirname, relative, resolve } from "node:path";
import {
  alreadyExists,
  AstraError,
  Code,
  Errno,
  invalidArgument,
  notFound,
  outOfRange,
} from "../../lib/errors.ts";
import type { AhciHba } from "./devices/ahci.ts";
import {
  type DiskFaultKind,
  DiskImage,
  type DiskStatistics,
  type LbaSize,
  type PowerCutKeep,
} from "./devices/diskimage.ts";
import type { NvmeController } from "./devices/nvme.ts";
import { type DeviceConfig, diskSpecProblem, NVME_MAX_NAMESPACES } from "./config.ts";

export type DiskController = "ahci" | "nvme";

export type DiskLocation =
  | { controller: "ahci"; port: number }
  | { controller: "nvme"; namespaceId: number };

/** A fault in force on a disk, under its machine-wide ID. */
export interface DiskFaultReport {
  faultId: number;
  kind: DiskFaultKind;
  lbaFirst: number;
  lbaCount: number;
  remaining: number;
  triggered: number;
}

export interface DiskReport {
  location: DiskLocation;
  imagePath: string;
  sizeBytes: number;
  lbaSize: LbaSize;
  lbaCount: number;
  statistics: DiskStatistics;
  faults: DiskFaultReport[];
}

export interface AttachedDisk {
  location: DiskLocation;
  imagePath: string;
  disk: DiskImage;
}

export interface AttachRequest {
  /** Empty: the location's own image in the data folder; relative: from the data folder. */
  imagePath: string;
  /** 0: an existing image at its size. */
  sizeBytes: number;
  lbaSize: number;
}

export interface DetachResult {
  writesFlushed: number;
  writesLost: number;
}

export interface PowerCutRequest {
  /** Unset: every disk. */
  location?: DiskLocation;
  keep: PowerCutKeep;
  /** 0: drawn at random. */
  seed: number;
  tearSector: boolean;
}

export interface DiskPowerCut {
  location: DiskLocation;
  writesPersisted: number;
  writesLost: number;
  torn: boolean;
  tornLba: number;
  tornBytes: number;
  seed: number;
}

export interface PowerCutReport {
  seed: number;
  disks: DiskPowerCut[];
}

export interface DiskFaultRequest {
  kind: DiskFaultKind;
  lbaFirst: number;
  lbaCount: number;
  /** Matching commands to fail; 0: until cleared. */
  count: number;
}

/** Seeds stay below 2^53 so that seed + disk index is still exact. */
const SEED_SPACE = 2 ** 53;

export function describeLocation(location: DiskLocation): string {
  return location.controller === "ahci"
    ? `AHCI port ${location.port}`
    : `NVMe namespace ${location.namespaceId}`;
}

function locationKey(location: DiskLocation): string {
  return location.controller === "ahci" ? `ahci:${location.port}` : `nvme:${location.namespaceId}`;
}

/** The image a location uses when none is named: disks/sata<port>.img, disks/nvme0n<namespace>.img. */
export function defaultImagePath(dataDir: string, location: DiskLocation): string {
  const name = location.controller === "ahci"
    ? `sata${location.port}.img`
    : `nvme0n${location.namespaceId}.img`;
  return resolve(dataDir, "disks", name);
}

/** A host failure to open an image as the precise status, naming the request field at fault. */
function imageError(err: unknown, path: string): unknown {
  if (err instanceof AstraError) {
    const renamed: Record<string, string> = { sizeBytes: "size_bytes", lbaSize: "lba_size" };
    err.detail.argument = renamed[err.detail.argument] ?? err.detail.argument;
    return err;
  }
  if (err instanceof Deno.errors.NotFound) {
    return notFound("image_path", `${path}: the folder does not exist`);
  }
  if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
    return new AstraError(Code.PERMISSION_DENIED, Errno.EACCES, `${path}: ${err.message}`, {
      argument: "image_path",
    });
  }
  if (err instanceof Deno.errors.IsADirectory) {
    return invalidArgument("image_path", `${path} is a directory`, Errno.EISDIR);
  }
  return err;
}

function randomSeed(): number {
  const [seed] = crypto.getRandomValues(new Uint32Array(1));
  return seed === 0 ? 1 : seed;
}

export class DiskSet {
  readonly #ahci: AhciHba;
  readonly #nvme: NvmeController;
  readonly #dataDir: string;
  readonly #attached = new Map<string, AttachedDisk>();
  /** Locations and image paths held by an attach or detach still under way. */
  readonly #busyLocations = new Set<string>();
  readonly #busyPaths = new Set<string>();
  /** Machine-wide fault ID → the disk and its own ID for the fault. */
  readonly #faults = new Map<number, { disk: DiskImage; diskFaultId: number }>();
  #nextFaultId = 1;

  /** The disks of a freshly built HBA and NVMe controller, which already hold `attached`. */
  constructor(ahci: AhciHba, nvme: NvmeController, dataDir: string, attached: AttachedDisk[]) {
    this.#ahci = ahci;
    this.#nvme = nvme;
    this.#dataDir = dataDir;
    for (const a of attached) this.#attached.set(locationKey(a.location), a);
  }

  /**
   * Opens the images of the configured disks (creating them sparse on first use). On failure the
   * ones already open are closed and the error names the image.
   */
  static async openConfigured(config: DeviceConfig, dataDir: string): Promise<AttachedDisk[]> {
    const wanted = [
      ...config.sataDisks.map((d) => ({
        location: { controller: "ahci", port: d.port } as DiskLocation,
        spec: d,
      })),
      ...config.nvmeNamespaces.map((d) => ({
        location: { controller: "nvme", namespaceId: d.namespaceId } as DiskLocation,
        spec: d,
      })),
    ];
    const opened: AttachedDisk[] = [];
    try {
      if (wanted.length > 0) await Deno.mkdir(resolve(dataDir, "disks"), { recursive: true });
      for (const { location, spec } of wanted) {
        const imagePath = defaultImagePath(dataDir, location);
        try {
          const disk = await DiskImage.open({
            path: imagePath,
            sizeBytes: spec.sizeBytes,
            lbaSize: spec.lbaSize,
          });
          opened.push({ location, imagePath, disk });
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          throw new Error(`${describeLocation(location)}: cannot open ${imagePath}: ${reason}`);
        }
      }
    } catch (err) {
      await Promise.allSettled(opened.map((a) => a.disk.close()));
      throw err;
    }
    return opened;
  }

  /** Every attached disk, AHCI ports first, then NVMe namespaces, each in order. */
  list(): DiskReport[] {
    return [...this.#attached.values()].sort(compareAttached).map((a) => this.#report(a));
  }

  get count(): number {
    return this.#attached.size;
  }

  /** Hot plug: opens (or creates) the image and plugs it in; the controller raises its event. */
  async attach(location: DiskLocation, request: AttachRequest): Promise<DiskReport> {
    this.#checkLocation(location);
    const lbaSize = request.lbaSize === 0 ? 512 : request.lbaSize;
    if (lbaSize !== 512 && lbaSize !== 4096) {
      throw invalidArgument("lba_size", `the LBA size must be 512 or 4096, not ${request.lbaSize}`);
    }
    if (request.sizeBytes !== 0) {
      const problem = diskSpecProblem(request.sizeBytes, lbaSize);
      if (problem) throw invalidArgument("size_bytes", problem);
    }
    const key = locationKey(location);
    if (this.#attached.has(key) || this.#busyLocations.has(key)) {
      throw alreadyExists("location", `${describeLocation(location)} already has a disk`, Errno.EBUSY);
    }
    const imagePath = request.imagePath === ""
      ? defaultImagePath(this.#dataDir, location)
      : resolve(this.#dataDir, request.imagePath);
    const holder = [...this.#attached.values()].find((a) => a.imagePath === imagePath);
    if (holder || this.#busyPaths.has(imagePath)) {
      const where = holder ? ` at ${describeLocation(holder.location)}` : "";
      throw alreadyExists("image_path", `${imagePath} is already attached${where}`, Errno.EBUSY);
    }
    this.#busyLocations.add(key);
    this.#busyPaths.add(imagePath);
    try {
      let disk: DiskImage;
      try {
        // Folders inside the data folder are the machine's to make; elsewhere they must exist.
        if (!relative(this.#dataDir, imagePath).startsWith("..")) {
          await Deno.mkdir(dirname(imagePath), { recursive: true });
        }
        disk = await DiskImage.open({
          path: imagePath,
          sizeBytes: request.sizeBytes === 0 ? undefined : request.sizeBytes,
          lbaSize,
        });
      } catch (err) {
        throw imageError(err, imagePath);
      }
      try {
        if (location.controller === "ahci") this.#ahci.attach(location.port, disk);
        else this.#nvme.attachNamespace(location.namespaceId, disk);
      } catch (err) {
        await disk.close();
        throw err;
      }
      const attached = { location, imagePath, disk };
      this.#attached.set(key, attached);
      return this.#report(attached);
    } finally {
      this.#busyLocations.delete(key);
      this.#busyPaths.delete(imagePath);
    }
  }

  /**
   * Unplugs a disk: cleanly (its cache flushed first) or, with `surprise`, at once with its cache
   * lost and its commands in flight failing. The image is closed either way.
   */
  async detach(location: DiskLocation, surprise: boolean): Promise<DetachResult> {
    const key = locationKey(location);
    const attached = this.#attachedAt(location);
    const unflushed = attached.disk.statistics().unflushedWrites;
    this.#attached.delete(key);
    this.#busyLocations.add(key);
    this.#busyPaths.add(attached.imagePath);
    try {
      if (location.controller === "ahci") await this.#ahci.detach(location.port, { surprise });
      else await this.#nvme.detachNamespace(location.namespaceId, { surprise });
    } catch (err) {
      this.#attached.set(key, attached);
      throw err;
    } finally {
      this.#busyLocations.delete(key);
      this.#busyPaths.delete(attached.imagePath);
    }
    for (const [id, fault] of this.#faults) if (fault.disk === attached.disk) this.#faults.delete(id);
    await attached.disk.close();
    return surprise
      ? { writesFlushed: 0, writesLost: unflushed }
      : { writesFlushed: unflushed, writesLost: 0 };
  }

  /** Cuts the power of one disk or all of them; each keeps a prefix of its unflushed writes. */
  async powerCut(request: PowerCutRequest): Promise<PowerCutReport> {
    const targets = request.location
      ? [this.#attachedAt(request.location)]
      : [...this.#attached.values()].sort(compareAttached);
    if (!Number.isSafeInteger(request.seed) || request.seed < 0) {
      throw invalidArgument("seed", `a seed is at most 2^53 - 1, not ${request.seed}`);
    }
    const seed = request.seed === 0 ? randomSeed() : request.seed;
    const disks: DiskPowerCut[] = [];
    for (const [i, target] of targets.entries()) {
      const diskSeed = (seed + i) % SEED_SPACE;
      const result = await target.disk.powerCut({
        keep: request.keep,
        seed: diskSeed,
        tearSector: request.tearSector,
      });
      disks.push({ location: target.location, ...result });
    }
    return { seed, disks };
  }

  /** A media error or command timeout on an LBA range of a disk; returns its machine-wide ID. */
  injectDiskFault(location: DiskLocation, request: DiskFaultRequest): number {
    const { disk } = this.#attachedAt(location);
    if (!Number.isSafeInteger(request.lbaCount) || request.lbaCount < 1) {
      throw invalidArgument("lba_count", `a fault covers at least one block, not ${request.lbaCount}`);
    }
    if (
      !Number.isSafeInteger(request.lbaFirst) || request.lbaFirst + request.lbaCount > disk.lbaCount
    ) {
      throw outOfRange(
        "lba_first",
        `blocks ${request.lbaFirst}+${request.lbaCount} lie beyond the disk's ${disk.lbaCount} blocks`,
        Errno.ENXIO,
      );
    }
    const fault = disk.injectFault(request);
    const faultId = this.#nextFaultId++;
    this.#faults.set(faultId, { disk, diskFaultId: fault.id });
    return faultId;
  }

  /** The link of the disk on an AHCI port drops with a PHY error; a COMRESET brings it back. */
  injectPhyError(location: DiskLocation): number {
    if (location.controller !== "ahci") {
      throw invalidArgument(
        "location.controller",
        "PHY errors happen on AHCI ports; an NVMe namespace has none",
      );
    }
    this.#attachedAt(location);
    this.#ahci.injectPhyError(location.port);
    return this.#nextFaultId++;
  }

  /** The disk disappears mid-I/O (a surprise detach). */
  async surpriseRemove(location: DiskLocation): Promise<number> {
    await this.detach(location, true);
    return this.#nextFaultId++;
  }

  /** The controller reports a fatal error: AHCI host bus fatal error, NVMe CSTS.CFS. */
  injectControllerFatal(controller: DiskController): number {
    if (controller === "ahci") this.#ahci.injectHostBusError();
    else this.#nvme.injectFatal();
    return this.#nextFaultId++;
  }

  /** Removes one fault or all of a disk's (or every disk's); returns how many went. */
  clearFaults(location: DiskLocation | undefined, faultId: number): number {
    const disks = location
      ? [this.#attachedAt(location).disk]
      : [...this.#attached.values()].map((a) => a.disk);
    if (faultId === 0) {
      let cleared = 0;
      for (const disk of disks) cleared += disk.clearFaults();
      for (const [id, fault] of this.#faults) if (disks.includes(fault.disk)) this.#faults.delete(id);
      return cleared;
    }
    if (!Number.isSafeInteger(faultId) || faultId >= this.#nextFaultId) {
      throw notFound("fault_id", `no fault ${faultId} was ever injected`);
    }
    const fault = this.#faults.get(faultId);
    if (!fault) return 0;
    if (!disks.includes(fault.disk)) {
      throw notFound("fault_id", `fault ${faultId} is not on ${describeLocation(location!)}`);
    }
    this.#faults.delete(faultId);
    return fault.disk.clearFaults(fault.diskFaultId);
  }

  /** Flushes and closes every image (at power-off); the first failure is thrown after all are closed. */
  async closeAll(): Promise<void> {
    const closing = [...this.#attached.values()].map((a) => a.disk.close());
    this.#attached.clear();
    this.#faults.clear();
    const failed = (await Promise.allSettled(closing)).find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  #checkLocation(location: DiskLocation): void {
    if (location.controller === "ahci") {
      if (!Number.isInteger(location.port) || location.port < 0 || location.port >= this.#ahci.portCount) {
        throw invalidArgument(
          "location.port",
          `the AHCI HBA has ports 0..${this.#ahci.portCount - 1}, not ${location.port}`,
        );
      }
    } else if (
      !Number.isInteger(location.namespaceId) || location.namespaceId < 1 ||
      location.namespaceId > NVME_MAX_NAMESPACES
    ) {
      throw invalidArgument(
        "location.namespace_id",
        `NVMe namespace IDs are 1..${NVME_MAX_NAMESPACES}, not ${location.namespaceId}`,
      );
    }
  }

  #attachedAt(location: DiskLocation): AttachedDisk {
    this.#checkLocation(location);
    const attached = this.#attached.get(locationKey(location));
    if (!attached) throw notFound("location", `${describeLocation(location)} has no disk`, Errno.ENODEV);
    return attached;
  }

  #report(a: AttachedDisk): DiskReport {
    const machineIds = new Map<number, number>();
    for (const [id, fault] of this.#faults) {
      if (fault.disk === a.disk) machineIds.set(fault.diskFaultId, id);
    }
    const faults: DiskFaultReport[] = [];
    const inForce = new Set<number>();
    for (const f of a.disk.faults()) {
      const faultId = machineIds.get(f.id);
      if (faultId === undefined) continue;
      inForce.add(faultId);
      faults.push({ ...f, faultId });
    }
    // Transient faults clear themselves inside the disk: forget their machine-wide IDs too.
    for (const id of machineIds.values()) if (!inForce.has(id)) this.#faults.delete(id);
    return {
      location: a.location,
      imagePath: a.imagePath,
      sizeBytes: a.disk.sizeBytes,
      lbaSize: a.disk.lbaSize,
      lbaCount: a.disk.lbaCount,
      statistics: a.disk.statistics(),
      faults,
    };
  }
}

function compareAttached(a: AttachedDisk, b: AttachedDisk): number {
  const rank = (l: DiskLocation) => l.controller === "ahci" ? l.port : 1000 + l.namespaceId;
  return rank(a.location) - rank(b.location);
}
