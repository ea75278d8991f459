// The drivers' view of the machine: device registers (MMIO), DMA memory, guest physical memory and
// interrupts — what a kernel driver reaches through its bus and its interrupt controller. Two
// implementations of one interface: over the machine, interrupt and pmm services (what the storage
// service runs on, in one process or over gRPC), and directly over the machine's device models in
// this process (what the driver tests and the raw benchmark run on: the same register-level
// models, without a transport in between).
import { MAX_BATCH_ACCESSES, MAX_BATCH_BYTES } from "../../lib/access_devices.ts";
import { Channel } from "../../lib/channel.ts";
import { AstraError, Code, Errno, invalidArgument, resourceExhausted } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import { type Client, client, type Transport } from "../../lib/rpc.ts";
import { DeviceKind } from "../../gen/astra/machine/v1/devices_pb.ts";
import {
  type HandlerStreamRequestSchema,
  InterruptService,
  Sharing,
} from "../../gen/astra/machine/v1/interrupts_pb.ts";
import { type DeviceAccessSchema, MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { PmmService } from "../../gen/astra/pmm/v1/pmm_pb.ts";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { AHCI_MMIO_SIZE, AhciHba, type DriveIdentity } from "../machine/devices/ahci.ts";
import type { DiskImage } from "../machine/devices/diskimage.ts";
import { InterruptController } from "../machine/devices/intc.ts";
import { MmioBus } from "../machine/devices/mmio.ts";
import { NvmeController as NvmeModel } from "../machine/devices/nvme.ts";
import { firmwareMemoryMap, MMIO_BASE } from "../machine/firmware.ts";
import { PhysicalMemory } from "../machine/memory.ts";

export const PAGE_BYTES = 4096;
/** The machine contract's limit for one ReadPhysical or WritePhysical. */
export const MAX_PHYSICAL_TRANSFER = 16 * 1024 * 1024;

const log = logger("storage");

export type ControllerKind = "ahci" | "nvme";

/** A disk controller on the machine's MMIO window. */
export interface ControllerInfo {
  /** "ahci0", "nvme0". */
  name: string;
  kind: ControllerKind;
  mmioBase: number;
  mmioLength: number;
  /** The HBA's interrupt line, or one IRQ per NVMe interrupt vector (vector 0 first). */
  irqs: number[];
}

/** Physically contiguous guest memory handed to a driver for DMA. */
export interface DmaRegion {
  readonly address: number;
  readonly bytes: number;
}

/** A range of guest physical memory. */
export interface PhysicalSegment {
  address: number;
  length: number;
}

/** Bytes to put in guest physical memory. */
export interface PhysicalWrite {
  address: number;
  data: Uint8Array;
}

export interface InterruptDelivery {
  irq: number;
  cpu: number;
  /** Interrupts in service on the CPU under this one. */
  nestingDepth: number;
}

/** Runs for each delivery; resolves with whether the interrupt was the device's. */
export type InterruptHandler = (delivery: InterruptDelivery) => Promise<boolean>;

export interface InterruptRegistration {
  readonly irq: number;
  unregister(): Promise<void>;
}

/**
 * One access of a batch: guest physical memory or a 32-bit device register. A batch is made in
 * order, as a CPU issues its loads and stores; only what a later access does not depend on goes
 * in the same batch (a read whose value decides the next access ends one).
 */
export type DeviceAccess =
  | { op: "read-physical"; address: number; length: number }
  | { op: "write-physical"; address: number; data: Uint8Array }
  | { op: "read32"; address: number }
  | { op: "write32"; address: number; value: number };

/** What one access answered: the bytes or register value read, null for a write. */
export type AccessResult = Uint8Array | number | null;

export interface Hardware {
  /** What the driver runs on, for logs and statistics. */
  readonly description: string;
  /** The disk controllers the machine has. */
  controllers(): Promise<ControllerInfo[]>;
  cpuCount(): Promise<number>;
  read32(address: number): Promise<number>;
  write32(address: number, value: number): Promise<void>;
  read64(address: number): Promise<bigint>;
  write64(address: number, value: bigint): Promise<void>;
  /** Zeroed, physically contiguous memory aligned to `alignment` (a power of two). */
  allocDma(bytes: number, alignment: number, owner: string): Promise<DmaRegion>;
  freeDma(region: DmaRegion): Promise<void>;
  /** Frees everything `owner` holds (what a previous incarnation of a driver left behind). */
  releaseDma(owner: string): Promise<void>;
  readPhysical(address: number, length: number): Promise<Uint8Array>;
  writePhysical(address: number, data: Uint8Array): Promise<void>;
  fillPhysical(address: number, length: number, value: number): Promise<void>;
  /**
   * Makes `accesses` in order in one exchange with the machine (MachineService.AccessDevices),
   * answering one result per access. If an access fails, the ones before it have happened and
   * none after it has.
   */
  access(accesses: readonly DeviceAccess[]): Promise<AccessResult[]>;
  /** An exclusive handler for `irq`; deliveries are ended (EOI) when the handler resolves. */
  registerInterrupt(irq: number, name: string, handler: InterruptHandler): Promise<InterruptRegistration>;
  /** Delivers `irq` to `cpu` (at the controller's default device priority). */
  routeInterrupt(irq: number, cpu: number): Promise<void>;
  close(): Promise<void>;
}

/** Device interrupts are delivered at the interrupt controller's default priority. */
const DEVICE_PRIORITY = 128;

/** Reads planned as batch accesses, and how to turn their results back into the segments asked for. */
export interface ReadPlan {
  readonly accesses: DeviceAccess[];
  /** The segments' bytes, from the results of a batch that starts with `accesses`. */
  assemble(results: readonly AccessResult[]): Uint8Array[];
}

/**
 * Plans reads of several segments, merging neighbours that lie close together into one transfer:
 * a driver completing a batch of reads whose buffers sit side by side in its DMA pool moves one
 * range instead of one per command.
 */
export function planReads(segments: readonly PhysicalSegment[]): ReadPlan {
  const order = segments.map((s, i) => ({ s, i })).sort((a, b) => a.s.address - b.s.address);
  const groups: { start: number; members: { s: PhysicalSegment; i: number }[] }[] = [];
  const accesses: DeviceAccess[] = [];
  let k = 0;
  while (k < order.length) {
    const start = order[k].s.address;
    let end = start + order[k].s.length;
    let useful = order[k].s.length;
    let j = k + 1;
    while (j < order.length) {
      const next = order[j].s;
      const newEnd = Math.max(end, next.address + next.length);
      // Merge while at least half of what travels is wanted, within one transfer's limit.
      if (newEnd - start > MAX_PHYSICAL_TRANSFER || (useful + next.length) * 2 < newEnd - start) break;
      end = newEnd;
      useful += next.length;
      j++;
    }
    groups.push({ start, members: order.slice(k, j) });
    accesses.push({ op: "read-physical", address: start, length: end - start });
    k = j;
  }
  return {
    accesses,
    assemble(results) {
      const out: Uint8Array[] = new Array(segments.length);
      groups.forEach((group, g) => {
        const bytes = results[g] as Uint8Array;
        for (const { s, i } of group.members) {
          out[i] = bytes.subarray(s.address - group.start, s.address - group.start + s.length);
        }
      });
      return out;
    },
  };
}

/** Reads several segments in one batch (see planReads). */
export async function readSegments(
  hw: Hardware,
  segments: readonly PhysicalSegment[],
): Promise<Uint8Array[]> {
  const plan = planReads(segments);
  return plan.assemble(await hw.access(plan.accesses));
}

/** Writes of several segments as batch accesses, exactly adjacent ones merged into one. */
export function writeAccesses(segments: readonly PhysicalWrite[]): DeviceAccess[] {
  const order = [...segments].sort((a, b) => a.address - b.address);
  const out: DeviceAccess[] = [];
  let k = 0;
  while (k < order.length) {
    let j = k + 1;
    let end = order[k].address + order[k].data.length;
    while (
      j < order.length && order[j].address === end &&
      end + order[j].data.length - order[k].address <= MAX_PHYSICAL_TRANSFER
    ) {
      end += order[j].data.length;
      j++;
    }
    if (j === k + 1) {
      out.push({ op: "write-physical", address: order[k].address, data: order[k].data });
    } else {
      const merged = new Uint8Array(end - order[k].address);
      for (let i = k; i < j; i++) merged.set(order[i].data, order[i].address - order[k].address);
      out.push({ op: "write-physical", address: order[k].address, data: merged });
    }
    k = j;
  }
  return out;
}

/** Writes several segments in one batch. */
export async function writeSegments(hw: Hardware, segments: readonly PhysicalWrite[]): Promise<void> {
  await hw.access(writeAccesses(segments));
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

// ---- over the services ----

const INTERRUPT_RETRY_MS = 200;

/**
 * One interrupt handler registered with the machine's InterruptService, its deliveries arriving
 * on a HandlerStream. If the stream breaks (the machine restarted), the handler registers again
 * and reattaches until it is unregistered; meanwhile the drivers' timeouts poll their devices.
 */
class ServiceInterruptLine implements InterruptRegistration {
  #handlerId = 0n;
  #closed = false;
  #abort = new AbortController();
  #running: Promise<void>;

  constructor(
    readonly irq: number,
    private readonly name: string,
    private readonly interrupts: Client<typeof InterruptService>,
    private readonly handler: InterruptHandler,
    handlerId: bigint,
  ) {
    this.#handlerId = handlerId;
    this.#running = this.#serve();
  }

  async #serve(): Promise<void> {
    while (!this.#closed) {
      const requests = new Channel<MessageInitShape<typeof HandlerStreamRequestSchema>>();
      requests.push({ message: { case: "attach", value: { handlerId: this.#handlerId } } });
      try {
        for await (const reply of this.interrupts.handlerStream(requests, { signal: this.#abort.signal })) {
          const delivery = reply.delivery;
          if (!delivery) continue;
          const complete = (handled: boolean) =>
            requests.push({
              message: {
                case: "completion",
                value: { deliveryId: delivery.deliveryId, handled, endOfInterrupt: true },
              },
            });
          this.handler({ irq: delivery.irq, cpu: delivery.cpu, nestingDepth: delivery.nestingDepth }).then(
            complete,
            (err) => {
              log.error("interrupt handler failed", {
                irq: this.irq,
                handler: this.name,
                error: String(err),
              });
              complete(false);
            },
          );
        }
      } catch (err) {
        if (this.#closed) return;
        log.warn("interrupt stream broke; registering again", {
          irq: this.irq,
          handler: this.name,
          error: err instanceof AstraError ? err.describe() : String(err),
        });
      } finally {
        requests.close();
      }
      if (this.#closed) return;
      await new Promise((r) => setTimeout(r, INTERRUPT_RETRY_MS));
      try {
        const { handlerId } = await this.interrupts.registerHandler({
          irq: this.irq,
          name: this.name,
          sharing: Sharing.EXCLUSIVE,
        });
        this.#handlerId = handlerId;
      } catch (err) {
        log.warn("interrupt handler registration failed; will retry", {
          irq: this.irq,
          error: err instanceof AstraError ? err.describe() : String(err),
        });
      }
    }
  }

  async unregister(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.interrupts.unregisterHandler({ handlerId: this.#handlerId }, { timeoutMs: 2000 });
    } catch (err) {
      // The machine may be gone already; its handler table went with it.
      log.debug("interrupt unregister failed", { irq: this.irq, error: String(err) });
    }
    this.#abort.abort();
    await this.#running;
  }
}

/** The hardware as the machine, interrupt and pmm services present it. */
export class ServiceHardware implements Hardware {
  readonly description: string;
  readonly #machine: Client<typeof MachineService>;
  readonly #interrupts: Client<typeof InterruptService>;
  readonly #pmm: Client<typeof PmmService>;
  readonly #lines = new Set<ServiceInterruptLine>();

  constructor(machine: Transport, pmm: Transport) {
    this.#machine = client(MachineService, machine, "storage");
    this.#interrupts = client(InterruptService, machine, "storage");
    this.#pmm = client(PmmService, pmm, "storage");
    this.description = `machine services (${machine.kind})`;
  }

  async controllers(): Promise<ControllerInfo[]> {
    const info = await this.#machine.getInfo({});
    const out: ControllerInfo[] = [];
    for (const d of info.devices) {
      const kind = d.kind === DeviceKind.AHCI ? "ahci" : d.kind === DeviceKind.NVME ? "nvme" : null;
      if (!kind) continue;
      out.push({
        name: d.name,
        kind,
        mmioBase: Number(d.mmioBase),
        mmioLength: Number(d.mmioLength),
        irqs: [...d.irqs],
      });
    }
    return out;
  }

  async cpuCount(): Promise<number> {
    return (await this.#machine.getInfo({})).cpuCount;
  }

  async read32(address: number): Promise<number> {
    const { value } = await this.#machine.readMmio({ address: BigInt(address), width: 4 });
    return Number(value);
  }

  async write32(address: number, value: number): Promise<void> {
    await this.#machine.writeMmio({ address: BigInt(address), width: 4, value: BigInt(value >>> 0) });
  }

  async read64(address: number): Promise<bigint> {
    return (await this.#machine.readMmio({ address: BigInt(address), width: 8 })).value;
  }

  async write64(address: number, value: bigint): Promise<void> {
    await this.#machine.writeMmio({ address: BigInt(address), width: 8, value });
  }

  async allocDma(bytes: number, alignment: number, owner: string): Promise<DmaRegion> {
    if (!isPowerOfTwo(alignment)) throw invalidArgument("alignment", `not a power of two: ${alignment}`);
    const frames = Math.ceil(bytes / PAGE_BYTES);
    const reply = await this.#pmm.allocFrames({
      count: BigInt(frames),
      alignment: BigInt(Math.max(1, alignment / PAGE_BYTES)),
      zero: true,
      owner,
      site: "storage/hardware.ts allocDma",
    });
    return { address: Number(reply.address), bytes: frames * PAGE_BYTES };
  }

  async freeDma(region: DmaRegion): Promise<void> {
    await this.#pmm.freeFrames({
      address: BigInt(region.address),
      count: BigInt(Math.ceil(region.bytes / PAGE_BYTES)),
    });
  }

  async releaseDma(owner: string): Promise<void> {
    await this.#pmm.releaseOwner({ owner });
  }

  async readPhysical(address: number, length: number): Promise<Uint8Array> {
    return (await this.#machine.readPhysical({ address: BigInt(address), length: BigInt(length) })).data;
  }

  async writePhysical(address: number, data: Uint8Array): Promise<void> {
    await this.#machine.writePhysical({ address: BigInt(address), data });
  }

  async fillPhysical(address: number, length: number, value: number): Promise<void> {
    await this.#machine.fillPhysical({ address: BigInt(address), length: BigInt(length), value });
  }

  /**
   * One AccessDevices call per batch the contract accepts: a longer batch, or one moving more
   * bytes, goes as several calls in order, and a physical transfer larger than a call carries is
   * cut into pieces (a read's pieces are put back together).
   */
  async access(accesses: readonly DeviceAccess[]): Promise<AccessResult[]> {
    const results: AccessResult[] = new Array(accesses.length).fill(null);
    let call: MessageInitShape<typeof DeviceAccessSchema>[] = [];
    let owners: { index: number; offset: number }[] = [];
    let read = 0;
    let written = 0;
    const send = async () => {
      if (call.length === 0) return;
      const sent = owners;
      const { results: answered } = await this.#machine.accessDevices({ accesses: call });
      answered.forEach((answer, k) => {
        const { index, offset } = sent[k];
        const r = answer.result;
        if (r.case === "value") results[index] = Number(r.value);
        else if (r.case === "data") {
          const whole = results[index];
          if (whole instanceof Uint8Array) whole.set(r.value, offset);
          else results[index] = r.value;
        }
      });
      call = [];
      owners = [];
      read = written = 0;
    };
    const room = async (readBytes: number, writeBytes: number) => {
      if (
        call.length >= MAX_BATCH_ACCESSES || read + readBytes > MAX_BATCH_BYTES ||
        written + writeBytes > MAX_BATCH_BYTES
      ) {
        await send();
      }
      read += readBytes;
      written += writeBytes;
    };
    for (let index = 0; index < accesses.length; index++) {
      const a = accesses[index];
      switch (a.op) {
        case "read-physical":
          if (a.length > MAX_BATCH_BYTES) results[index] = new Uint8Array(a.length);
          for (let offset = 0; offset === 0 || offset < a.length; offset += MAX_BATCH_BYTES) {
            const n = Math.min(MAX_BATCH_BYTES, a.length - offset);
            await room(n, 0);
            call.push({
              access: {
                case: "readPhysical",
                value: { address: BigInt(a.address + offset), length: BigInt(n) },
              },
            });
            owners.push({ index, offset });
          }
          break;
        case "write-physical":
          for (let offset = 0; offset === 0 || offset < a.data.length; offset += MAX_BATCH_BYTES) {
            const data = a.data.subarray(offset, offset + MAX_BATCH_BYTES);
            await room(0, data.length);
            call.push({
              access: { case: "writePhysical", value: { address: BigInt(a.address + offset), data } },
            });
            owners.push({ index, offset });
          }
          break;
        case "read32":
          await room(0, 0);
          call.push({ access: { case: "readMmio", value: { address: BigInt(a.address), width: 4 } } });
          owners.push({ index, offset: 0 });
          break;
        case "write32":
          await room(0, 0);
          call.push({
            access: {
              case: "writeMmio",
              value: { address: BigInt(a.address), width: 4, value: BigInt(a.value >>> 0) },
            },
          });
          owners.push({ index, offset: 0 });
          break;
      }
    }
    await send();
    return results;
  }

  async registerInterrupt(
    irq: number,
    name: string,
    handler: InterruptHandler,
  ): Promise<InterruptRegistration> {
    const { handlerId } = await this.#interrupts.registerHandler({ irq, name, sharing: Sharing.EXCLUSIVE });
    const line = new ServiceInterruptLine(irq, name, this.#interrupts, handler, handlerId);
    this.#lines.add(line);
    return {
      irq,
      unregister: async () => {
        this.#lines.delete(line);
        await line.unregister();
      },
    };
  }

  async routeInterrupt(irq: number, cpu: number): Promise<void> {
    await this.#interrupts.setPriority({ irq, priority: DEVICE_PRIORITY, targetCpu: cpu });
  }

  async close(): Promise<void> {
    await Promise.all([...this.#lines].map((l) => l.unregister()));
    this.#lines.clear();
  }
}

// ---- directly over the device models ----

/**
 * First-fit allocator of page runs over one RAM range, standing in for pmm when the drivers run
 * on the device models alone.
 */
export class PageRunAllocator {
  /** Free runs [start, end) in page numbers, sorted and coalesced. */
  #free: { start: number; end: number }[];
  readonly #owners = new Map<number, { pages: number; owner: string }>();

  constructor(base: number, bytes: number) {
    const first = Math.ceil(base / PAGE_BYTES);
    this.#free = [{ start: first, end: Math.floor((base + bytes) / PAGE_BYTES) }];
  }

  alloc(pages: number, alignPages: number, owner: string): number {
    for (let i = 0; i < this.#free.length; i++) {
      const run = this.#free[i];
      const start = Math.ceil(run.start / alignPages) * alignPages;
      if (start + pages > run.end) continue;
      const pieces = [];
      if (start > run.start) pieces.push({ start: run.start, end: start });
      if (start + pages < run.end) pieces.push({ start: start + pages, end: run.end });
      this.#free.splice(i, 1, ...pieces);
      this.#owners.set(start, { pages, owner });
      return start * PAGE_BYTES;
    }
    throw resourceExhausted(`no ${pages} contiguous free pages aligned to ${alignPages} pages`, {
      pages: String(pages),
    });
  }

  free(address: number): void {
    const start = address / PAGE_BYTES;
    const held = this.#owners.get(start);
    if (!held) throw invalidArgument("address", `${hex(address)} is not the start of a DMA allocation`);
    this.#owners.delete(start);
    const end = start + held.pages;
    let i = this.#free.findIndex((r) => r.start > start);
    if (i < 0) i = this.#free.length;
    this.#free.splice(i, 0, { start, end });
    // Coalesce with the neighbours.
    if (i + 1 < this.#free.length && this.#free[i + 1].start === end) {
      this.#free[i].end = this.#free[i + 1].end;
      this.#free.splice(i + 1, 1);
    }
    if (i > 0 && this.#free[i - 1].end === start) {
      this.#free[i - 1].end = this.#free[i].end;
      this.#free.splice(i, 1);
    }
  }

  release(owner: string): void {
    for (const [start, held] of [...this.#owners]) {
      if (held.owner === owner) this.free(start * PAGE_BYTES);
    }
  }

  get allocatedPages(): number {
    let n = 0;
    for (const held of this.#owners.values()) n += held.pages;
    return n;
  }
}

export interface DeviceMachineOptions {
  /** Guest RAM (default 256 MiB). */
  memoryBytes?: number;
  cpus?: number;
  /** An AHCI HBA with this many ports and the disks present at power-on. */
  ahci?: { ports: number; disks: { port: number; disk: DiskImage; identity?: Partial<DriveIdentity> }[] };
  /** An NVMe controller with these namespaces at power-on. */
  nvme?: {
    namespaces: { nsid: number; disk: DiskImage }[];
    /** Interrupt vectors (default 9: the admin queue and eight I/O queues). */
    vectors?: number;
    maxIoQueues?: number;
    maxQueueEntries?: number;
    doorbellStride?: number;
    maxTransferLog2?: number;
  };
}

/** Where the device machine puts its controllers (the real machine says in GetInfo). */
export const DEVICE_MACHINE_AHCI_BASE = MMIO_BASE + 0x1_0000;
export const DEVICE_MACHINE_NVME_BASE = MMIO_BASE + 0x10_0000;
export const DEVICE_MACHINE_AHCI_IRQ = 32;
export const DEVICE_MACHINE_NVME_FIRST_IRQ = 64;

/**
 * The device side of the machine in this process: guest memory, the interrupt controller, the
 * MMIO bus and the AHCI and NVMe models, assembled as the machine service assembles them.
 */
export class DeviceMachine {
  readonly memory: PhysicalMemory;
  readonly intc: InterruptController;
  readonly bus = new MmioBus();
  readonly ahci: AhciHba | null = null;
  readonly nvme: NvmeModel | null = null;
  readonly controllers: ControllerInfo[] = [];
  readonly cpus: number;
  readonly dma: PageRunAllocator;

  constructor(options: DeviceMachineOptions) {
    const memoryBytes = options.memoryBytes ?? 256 * 1024 * 1024;
    this.cpus = options.cpus ?? 2;
    const map = firmwareMemoryMap({ memoryBytes, numaNodes: 1 });
    this.memory = new PhysicalMemory(map);
    this.intc = new InterruptController({ cpus: this.cpus });
    const usable = map.find((r) => r.type === "usable")!;
    this.dma = new PageRunAllocator(usable.base, usable.length);
    if (options.ahci) {
      this.ahci = new AhciHba({
        memory: this.memory,
        interrupts: this.intc,
        irq: DEVICE_MACHINE_AHCI_IRQ,
        ports: options.ahci.ports,
        disks: options.ahci.disks,
      });
      this.bus.map("ahci0", DEVICE_MACHINE_AHCI_BASE, AHCI_MMIO_SIZE, this.ahci);
      this.controllers.push({
        name: "ahci0",
        kind: "ahci",
        mmioBase: DEVICE_MACHINE_AHCI_BASE,
        mmioLength: AHCI_MMIO_SIZE,
        irqs: [DEVICE_MACHINE_AHCI_IRQ],
      });
    }
    if (options.nvme) {
      const vectors = Array.from(
        { length: options.nvme.vectors ?? 9 },
        (_, i) => DEVICE_MACHINE_NVME_FIRST_IRQ + i,
      );
      this.nvme = new NvmeModel({
        memory: this.memory,
        interrupts: this.intc,
        vectors,
        maxIoQueues: options.nvme.maxIoQueues,
        maxQueueEntries: options.nvme.maxQueueEntries,
        doorbellStride: options.nvme.doorbellStride,
        maxTransferLog2: options.nvme.maxTransferLog2,
        namespaces: options.nvme.namespaces,
      });
      this.bus.map("nvme0", DEVICE_MACHINE_NVME_BASE, this.nvme.mmioSize, this.nvme);
      this.controllers.push({
        name: "nvme0",
        kind: "nvme",
        mmioBase: DEVICE_MACHINE_NVME_BASE,
        mmioLength: this.nvme.mmioSize,
        irqs: vectors,
      });
    }
  }

  hardware(): DirectHardware {
    return new DirectHardware(this);
  }
}

/** Runs a synchronous model access as the asynchronous call the interface promises. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err);
  }
}

/** The hardware as the device models present it, in this process. */
export class DirectHardware implements Hardware {
  readonly description = "device models (in this process)";
  readonly #lines = new Set<number>();

  constructor(readonly machine: DeviceMachine) {}

  controllers(): Promise<ControllerInfo[]> {
    return settle(() => this.machine.controllers.map((c) => ({ ...c, irqs: [...c.irqs] })));
  }

  cpuCount(): Promise<number> {
    return Promise.resolve(this.machine.cpus);
  }

  read32(address: number): Promise<number> {
    return settle(() => this.machine.bus.read32(address));
  }

  write32(address: number, value: number): Promise<void> {
    return settle(() => this.machine.bus.write32(address, value));
  }

  read64(address: number): Promise<bigint> {
    return settle(() => this.machine.bus.read(address, 8));
  }

  write64(address: number, value: bigint): Promise<void> {
    return settle(() => this.machine.bus.write(address, 8, value));
  }

  allocDma(bytes: number, alignment: number, owner: string): Promise<DmaRegion> {
    return settle(() => {
      if (!isPowerOfTwo(alignment)) throw invalidArgument("alignment", `not a power of two: ${alignment}`);
      const pages = Math.ceil(bytes / PAGE_BYTES);
      const address = this.machine.dma.alloc(pages, Math.max(1, alignment / PAGE_BYTES), owner);
      this.machine.memory.fill(address, pages * PAGE_BYTES, 0);
      return { address, bytes: pages * PAGE_BYTES };
    });
  }

  freeDma(region: DmaRegion): Promise<void> {
    return settle(() => this.machine.dma.free(region.address));
  }

  releaseDma(owner: string): Promise<void> {
    return settle(() => this.machine.dma.release(owner));
  }

  readPhysical(address: number, length: number): Promise<Uint8Array> {
    return settle(() => this.machine.memory.read(address, length));
  }

  writePhysical(address: number, data: Uint8Array): Promise<void> {
    return settle(() => this.machine.memory.write(address, data));
  }

  fillPhysical(address: number, length: number, value: number): Promise<void> {
    return settle(() => this.machine.memory.fill(address, length, value));
  }

  access(accesses: readonly DeviceAccess[]): Promise<AccessResult[]> {
    return settle(() => {
      const { memory, bus } = this.machine;
      return accesses.map((a) => {
        switch (a.op) {
          case "read-physical":
            return memory.read(a.address, a.length);
          case "write-physical":
            memory.write(a.address, a.data);
            return null;
          case "read32":
            return bus.read32(a.address);
          case "write32":
            bus.write32(a.address, a.value);
            return null;
        }
      });
    });
  }

  registerInterrupt(irq: number, name: string, handler: InterruptHandler): Promise<InterruptRegistration> {
    const intc = this.machine.intc;
    return settle(() => {
      const id = intc.register({
        irq,
        name,
        sharing: "exclusive",
        // The controller calls this from inside the device's register write: the handler runs
        // afterwards, as a CPU takes an interrupt once the store has retired.
        deliver: (d) => {
          queueMicrotask(() => {
            handler({ irq: d.irq, cpu: d.cpu, nestingDepth: d.nestingDepth }).then(
              (handled) => intc.complete(d.deliveryId, { handled, endOfInterrupt: true }),
              (err) => {
                log.error("interrupt handler failed", { irq, handler: name, error: String(err) });
                intc.complete(d.deliveryId, { handled: false, endOfInterrupt: true });
              },
            );
          });
        },
      });
      this.#lines.add(id);
      return {
        irq,
        unregister: () =>
          settle(() => {
            if (this.#lines.delete(id)) intc.unregister(id);
          }),
      };
    });
  }

  routeInterrupt(irq: number, cpu: number): Promise<void> {
    return settle(() => this.machine.intc.setPriority(irq, DEVICE_PRIORITY, cpu));
  }

  close(): Promise<void> {
    return settle(() => {
      for (const id of this.#lines) this.machine.intc.unregister(id);
      this.#lines.clear();
    });
  }
}

/** A failure of the hardware itself (a register that will not change, memory that cannot move). */
export function hardwareError(message: string, facts: Record<string, string> = {}): AstraError {
  return new AstraError(Code.FAILED_PRECONDITION, Errno.EIO, message, { facts });
}
