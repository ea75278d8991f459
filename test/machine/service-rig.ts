// The machine service alone, reached over either transport, and what its tests drive it with: a
// register-level NVMe driver and AHCI register helpers that work only through MachineService
// (WritePhysical, ReadPhysical, WriteMmio, ReadMmio), and a reader for HandlerStream.
import { expect } from "vitest";
import { DeviceKind } from "../../gen/astra/machine/v1/devices_pb.ts";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type HandlerStreamRequestSchema,
  type InterruptDelivery,
  InterruptService,
  Sharing,
} from "../../gen/astra/machine/v1/interrupts_pb.ts";
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { Channel } from "../../lib/channel.ts";
import { AstraError, type Code, type Errno } from "../../lib/errors.ts";
import { GrpcServer, GrpcTransport } from "../../lib/grpc.ts";
import { InProcessRouter } from "../../lib/inproc.ts";
import { peersFrom } from "../../lib/module.ts";
import { type Client, client } from "../../lib/rpc.ts";
import { DEFAULT_DEVICE_CONFIG, type DeviceConfig } from "../../services/machine/config.ts";
import { createMachine } from "../../services/machine/server.ts";

export type Kind = "in-process" | "grpc";
export const KINDS: Kind[] = ["in-process", "grpc"];
export type MachineClient = Client<typeof MachineService>;
export type InterruptClient = Client<typeof InterruptService>;

export const MIB = 1024 * 1024;
export const PAGE = 4096;

export interface Devices {
  uart: { base: bigint; irq: number };
  ahci: { base: bigint; irq: number };
  nvme: { base: bigint; irqs: number[] };
  decrementers: number[];
}

export interface MachineRig {
  machine: MachineClient;
  interrupts: InterruptClient;
  devices: Devices;
  dataDir: string;
  /** The gRPC server's address (over gRPC only). */
  address?: string;
  stop(): Promise<void>;
}

/**
 * A machine service with its own module instance, served in process or behind a gRPC server on a
 * loopback port. `dataDir` defaults to a new temporary folder, removed at stop.
 */
export async function startMachine(
  kind: Kind,
  options: { dataDir?: string; devices?: DeviceConfig; cpus?: number } = {},
): Promise<MachineRig> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "astra-machine-service-" });
  const router = new InProcessRouter();
  const module = createMachine(
    peersFrom(() => router.transport()),
    { memoryBytes: 64 * MIB, numaNodes: 1, cpus: options.cpus ?? 2, dataDir },
    options.devices ?? DEFAULT_DEVICE_CONFIG,
  );
  module.bound.forEach((b) => router.add(b));
  await module.start();
  let transport = router.transport();
  let server: GrpcServer | undefined;
  let address: string | undefined;
  if (kind === "grpc") {
    server = new GrpcServer("machine-test");
    module.bound.forEach((b) => server!.add(b));
    address = await server.listen("127.0.0.1:0");
    server.setServing(true);
    transport = new GrpcTransport(address);
  }
  const machine = client(MachineService, transport);
  const info = await machine.getInfo({});
  const device = (kind: DeviceKind) => info.devices.find((d) => d.kind === kind)!;
  return {
    machine,
    interrupts: client(InterruptService, transport),
    devices: {
      uart: { base: device(DeviceKind.UART).mmioBase, irq: device(DeviceKind.UART).irqs[0] },
      ahci: { base: device(DeviceKind.AHCI).mmioBase, irq: device(DeviceKind.AHCI).irqs[0] },
      nvme: { base: device(DeviceKind.NVME).mmioBase, irqs: device(DeviceKind.NVME).irqs },
      decrementers: device(DeviceKind.INTERRUPT_CONTROLLER).irqs,
    },
    dataDir,
    address,
    async stop() {
      transport.close();
      await server?.shutdown(500);
      await module.stop();
      if (ownDir) await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** The failure of `call`, checked against the expected status, errno and argument. */
export async function failure(
  call: Promise<unknown>,
  code: Code,
  errno: Errno,
  argument?: string,
): Promise<AstraError> {
  let caught: unknown;
  try {
    await call;
  } catch (e) {
    caught = e;
  }
  expect(caught, "expected the call to fail").toBeInstanceOf(AstraError);
  const err = caught as AstraError;
  expect({ code: err.code, errno: err.errno }, err.describe()).toEqual({ code, errno });
  if (argument !== undefined) expect(err.detail.argument, err.describe()).toBe(argument);
  return err;
}

export function pattern(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * 31 + seed * 97 + (i >> 9)) & 0xff;
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads a stream in the background so a test can wait for its next message with a timeout. */
export class StreamReader<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  #end: { error?: unknown } | undefined;

  constructor(source: AsyncIterable<T>) {
    (async () => {
      try {
        for await (const item of source) {
          this.#items.push(item);
          this.#wake?.();
        }
        this.#end = {};
      } catch (error) {
        this.#end = { error };
      }
      this.#wake?.();
    })();
  }

  /** The next message; fails if none comes within `timeoutMs` or the stream ends first. */
  async next(timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.#items.length === 0) {
      if (this.#end) throw new Error(`the stream ended: ${String(this.#end.error ?? "ok")}`);
      if (!await this.#wait(deadline)) throw new Error(`no message within ${timeoutMs} ms`);
    }
    return this.#items.shift()!;
  }

  /** Asserts that nothing arrives within `ms`. */
  async nothingFor(ms: number): Promise<void> {
    await this.#wait(Date.now() + ms);
    expect(this.#items, "no message expected").toEqual([]);
  }

  /** How the stream ended: `error` undefined when it ended cleanly. */
  async ended(timeoutMs = 5000): Promise<{ error?: unknown }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#end) {
      if (!await this.#wait(deadline)) throw new Error(`the stream did not end within ${timeoutMs} ms`);
    }
    return this.#end;
  }

  #wait(deadline: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve(false);
      }, Math.max(0, deadline - Date.now()));
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve(true);
      };
    });
  }
}

/** A handler's side of HandlerStream: its deliveries, and completions sent back. */
export class HandlerClient {
  readonly #requests = new Channel<MessageInitShape<typeof HandlerStreamRequestSchema>>();
  readonly reader: StreamReader<{ delivery?: InterruptDelivery }>;

  constructor(
    interrupts: InterruptClient,
    readonly handlerId: bigint,
    options: { signal?: AbortSignal } = {},
  ) {
    this.#requests.push({ message: { case: "attach", value: { handlerId } } });
    this.reader = new StreamReader(interrupts.handlerStream(this.#requests, { signal: options.signal }));
  }

  /** Registers a handler and opens its stream. */
  static async open(
    interrupts: InterruptClient,
    irq: number,
    name: string,
    sharing: "shared" | "exclusive" = "exclusive",
  ): Promise<HandlerClient> {
    const { handlerId } = await interrupts.registerHandler({
      irq,
      name,
      sharing: sharing === "shared" ? Sharing.SHARED : Sharing.EXCLUSIVE,
    });
    return new HandlerClient(interrupts, handlerId);
  }

  async next(timeoutMs = 5000): Promise<InterruptDelivery> {
    const message = await this.reader.next(timeoutMs);
    expect(message.delivery).toBeDefined();
    return message.delivery!;
  }

  complete(delivery: InterruptDelivery, options: { handled?: boolean; endOfInterrupt?: boolean } = {}): void {
    this.send({
      message: {
        case: "completion",
        value: {
          deliveryId: delivery.deliveryId,
          handled: options.handled ?? true,
          endOfInterrupt: options.endOfInterrupt ?? true,
        },
      },
    });
  }

  send(request: MessageInitShape<typeof HandlerStreamRequestSchema>): void {
    this.#requests.push(request);
  }

  /** Ends the handler's side of the stream. */
  close(): void {
    this.#requests.close();
  }
}

// ---- register access through MachineService ----

export async function readMmio32(machine: MachineClient, address: bigint): Promise<number> {
  return Number((await machine.readMmio({ address, width: 4 })).value);
}

export async function writeMmio32(machine: MachineClient, address: bigint, value: number): Promise<void> {
  await machine.writeMmio({ address, width: 4, value: BigInt(value >>> 0) });
}

/** Guest RAM handed out to test drivers: page-aligned, never reused. */
export class GuestAllocator {
  #next: number;

  constructor(first = 8 * MIB) {
    this.#next = first;
  }

  alloc(bytes: number, align = PAGE): number {
    this.#next = Math.ceil(this.#next / align) * align;
    const address = this.#next;
    this.#next += bytes;
    return address;
  }
}

// ---- AHCI ----

export const AHCI = {
  GHC: 0x04,
  IS: 0x08,
  GHC_IE: 1 << 1,
  port: (port: number, register: number) => 0x100 + port * 0x80 + register,
  PX_IS: 0x10,
  PX_IE: 0x14,
  PX_SSTS: 0x28,
  PX_SERR: 0x30,
  PXIS_PCS: 1 << 6,
  PXIS_PRCS: 1 << 22,
  PXIS_HBFS: 1 << 29,
};

// ---- NVMe ----

export const NVME = {
  CAP: 0x00,
  VS: 0x08,
  CC: 0x14,
  CSTS: 0x1c,
  AQA: 0x24,
  ASQ: 0x28,
  ACQ: 0x30,
  DOORBELLS: 0x1000,
  CSTS_RDY: 1,
  CSTS_CFS: 2,
  /** CC.EN with 64-byte submission and 16-byte completion entries. */
  CC_ENABLE: 1 | (6 << 16) | (4 << 20),
  ADMIN_CREATE_IO_SQ: 0x01,
  ADMIN_CREATE_IO_CQ: 0x05,
  ADMIN_IDENTIFY: 0x06,
  NVM_WRITE: 0x01,
  NVM_READ: 0x02,
  NVM_FLUSH: 0x00,
  SC_UNRECOVERED_READ_ERROR: 0x281,
};

export interface Sqe {
  opcode: number;
  nsid?: number;
  prp1?: number;
  prp2?: number;
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
}

export interface Completion {
  dw0: number;
  sqid: number;
  cid: number;
  status: number;
}

interface Queue {
  sqBase: number;
  cqBase: number;
  entries: number;
  tail: number;
  head: number;
  phase: number;
}

/** An NVMe driver reduced to its register-level essentials, over RPCs. */
export class NvmeDriver {
  readonly queues = new Map<number, Queue>();
  #cid = 1;

  constructor(readonly machine: MachineClient, readonly bar: bigint, readonly memory: GuestAllocator) {}

  reg(offset: number): Promise<number> {
    return readMmio32(this.machine, this.bar + BigInt(offset));
  }

  setReg(offset: number, value: number): Promise<void> {
    return writeMmio32(this.machine, this.bar + BigInt(offset), value);
  }

  /** Admin queues in guest memory, AQA/ASQ/ACQ, CC.EN, then CSTS.RDY. */
  async enable(entries = 16): Promise<void> {
    const queue = await this.#queueMemory(entries);
    await this.setReg(NVME.AQA, ((entries - 1) << 16) | (entries - 1));
    await this.machine.writeMmio({
      address: this.bar + BigInt(NVME.ASQ),
      width: 8,
      value: BigInt(queue.sqBase),
    });
    await this.machine.writeMmio({
      address: this.bar + BigInt(NVME.ACQ),
      width: 8,
      value: BigInt(queue.cqBase),
    });
    await this.setReg(NVME.CC, NVME.CC_ENABLE);
    expect((await this.reg(NVME.CSTS)) & NVME.CSTS_RDY).toBe(NVME.CSTS_RDY);
    this.queues.set(0, queue);
  }

  async disable(): Promise<void> {
    await this.setReg(NVME.CC, 0);
    this.queues.clear();
  }

  async #queueMemory(entries: number): Promise<Queue> {
    const sqBase = this.memory.alloc(entries * 64);
    const cqBase = this.memory.alloc(entries * 16);
    await this.machine.fillPhysical({ address: BigInt(cqBase), length: BigInt(entries * 16), value: 0 });
    return { sqBase, cqBase, entries, tail: 0, head: 0, phase: 1 };
  }

  /** Writes the entry at the queue's tail and rings its doorbell; returns the command ID. */
  async submit(qid: number, entry: Sqe): Promise<number> {
    const q = this.queues.get(qid)!;
    const cid = this.#cid++ & 0xffff;
    const raw = new DataView(new ArrayBuffer(64));
    raw.setUint32(0, (entry.opcode | (cid << 16)) >>> 0, true);
    raw.setUint32(4, entry.nsid ?? 0, true);
    raw.setBigUint64(24, BigInt(entry.prp1 ?? 0), true);
    raw.setBigUint64(32, BigInt(entry.prp2 ?? 0), true);
    raw.setUint32(40, (entry.cdw10 ?? 0) >>> 0, true);
    raw.setUint32(44, (entry.cdw11 ?? 0) >>> 0, true);
    raw.setUint32(48, (entry.cdw12 ?? 0) >>> 0, true);
    await this.machine.writePhysical({
      address: BigInt(q.sqBase + q.tail * 64),
      data: new Uint8Array(raw.buffer),
    });
    q.tail = (q.tail + 1) % q.entries;
    await this.setReg(NVME.DOORBELLS + 2 * qid * 4, q.tail);
    return cid;
  }

  /** The completion at the queue's head, if its phase says it is new (no doorbell written). */
  async peek(qid: number): Promise<Completion | null> {
    const q = this.queues.get(qid)!;
    const { data } = await this.machine.readPhysical({
      address: BigInt(q.cqBase + q.head * 16),
      length: 16n,
    });
    const v = new DataView(data.buffer, data.byteOffset, 16);
    const dw3 = v.getUint32(12, true);
    if (((dw3 >>> 16) & 1) !== q.phase) return null;
    return {
      dw0: v.getUint32(0, true),
      sqid: v.getUint32(8, true) >>> 16,
      cid: dw3 & 0xffff,
      status: (dw3 >>> 17) & 0x7ff,
    };
  }

  /** Consumes the completion at the head and writes the head doorbell. */
  async consume(qid: number): Promise<void> {
    const q = this.queues.get(qid)!;
    q.head = (q.head + 1) % q.entries;
    if (q.head === 0) q.phase ^= 1;
    await this.setReg(NVME.DOORBELLS + (2 * qid + 1) * 4, q.head);
  }

  /** Polls for the next completion. */
  async reap(qid: number, timeoutMs = 5000): Promise<Completion> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = await this.peek(qid);
      if (c) {
        await this.consume(qid);
        return c;
      }
      if (Date.now() > deadline) throw new Error(`no completion on queue ${qid} within ${timeoutMs} ms`);
      await sleep(1);
    }
  }

  async run(qid: number, entry: Sqe): Promise<Completion> {
    const cid = await this.submit(qid, entry);
    const c = await this.reap(qid);
    expect(c.cid).toBe(cid);
    return c;
  }

  async createQueuePair(qid: number, entries = 16, vector = 1): Promise<void> {
    const q = await this.#queueMemory(entries);
    const cq = await this.run(0, {
      opcode: NVME.ADMIN_CREATE_IO_CQ,
      prp1: q.cqBase,
      cdw10: ((entries - 1) << 16) | qid,
      cdw11: (vector << 16) | 2 | 1,
    });
    expect(cq.status).toBe(0);
    const sq = await this.run(0, {
      opcode: NVME.ADMIN_CREATE_IO_SQ,
      prp1: q.sqBase,
      cdw10: ((entries - 1) << 16) | qid,
      cdw11: (qid << 16) | 1,
    });
    expect(sq.status).toBe(0);
    this.queues.set(qid, q);
  }

  /** A buffer of up to two pages, described by PRP1 and PRP2. */
  #buffer(bytes: number): { address: number; prp1: number; prp2: number } {
    expect(bytes).toBeLessThanOrEqual(2 * PAGE);
    const address = this.memory.alloc(bytes);
    return { address, prp1: address, prp2: bytes > PAGE ? address + PAGE : 0 };
  }

  async write(
    qid: number,
    nsid: number,
    lba: number,
    data: Uint8Array,
    lbaSize: number,
  ): Promise<Completion> {
    const buffer = this.#buffer(data.length);
    await this.machine.writePhysical({ address: BigInt(buffer.address), data });
    return await this.run(qid, {
      opcode: NVME.NVM_WRITE,
      nsid,
      prp1: buffer.prp1,
      prp2: buffer.prp2,
      cdw10: lba,
      cdw12: data.length / lbaSize - 1,
    });
  }

  async read(
    qid: number,
    nsid: number,
    lba: number,
    blocks: number,
    lbaSize: number,
  ): Promise<{ completion: Completion; data: Uint8Array }> {
    const bytes = blocks * lbaSize;
    const buffer = this.#buffer(bytes);
    const completion = await this.run(qid, {
      opcode: NVME.NVM_READ,
      nsid,
      prp1: buffer.prp1,
      prp2: buffer.prp2,
      cdw10: lba,
      cdw12: blocks - 1,
    });
    const { data } = await this.machine.readPhysical({
      address: BigInt(buffer.address),
      length: BigInt(bytes),
    });
    return { completion, data };
  }
}
