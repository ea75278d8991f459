// The NVMe controller driven as a driver drives it: registers and doorbells through the MMIO bus,
// submission and completion queues and PRP lists in guest physical memory, one interrupt vector
// per completion queue through the interrupt controller. The cases follow QEMU's
// tests/qtest/nvme-test.c and the list.
import { describe, expect, it } from "vitest";
import * as N from "../../../services/machine/devices/nvme.ts";
import { DiskImage } from "../../../services/machine/devices/diskimage.ts";
import { InterruptController } from "../../../services/machine/devices/intc.ts";
import { MmioBus } from "../../../services/machine/devices/mmio.ts";
import { firmwareMemoryMap, MIB, MMIO_BASE } from "../../../services/machine/firmware.ts";
import { PhysicalMemory } from "../../../services/machine/memory.ts";

const BAR = MMIO_BASE + 0x100000;
const PAGE = 4096;
const FIRST_VECTOR_IRQ = 64;
const CC_ENABLE = N.CC_EN | (N.SQ_ENTRY_LOG2 << 16) | (N.CQ_ENTRY_LOG2 << 20);

interface Sqe {
  opcode: number;
  nsid?: number;
  prp1?: number;
  prp2?: number;
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
  cdw13?: number;
  cid?: number;
}

interface Completion {
  dw0: number;
  sqhd: number;
  sqid: number;
  cid: number;
  phase: number;
  status: number;
  dnr: boolean;
}

interface QueuePair {
  sqBase: number;
  sqSize: number;
  tail: number;
  cqBase: number;
  cqSize: number;
  head: number;
  phase: number;
}

function pattern(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * 13 + seed * 71 + (i >> 12)) & 0xff;
  return out;
}

function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  let at = actual.length === expected.length ? -1 : Math.min(actual.length, expected.length);
  for (let i = 0; at < 0 && i < actual.length; i++) if (actual[i] !== expected[i]) at = i;
  expect(at, `buffers differ at byte ${at}`).toBe(-1);
}

class Rig {
  readonly memory = new PhysicalMemory(firmwareMemoryMap({ memoryBytes: 128 * MIB, numaNodes: 1 }));
  readonly intc = new InterruptController({ cpus: 1 });
  readonly bus = new MmioBus();
  readonly ctrl: N.NvmeController;
  readonly disks = new Map<number, DiskImage>();
  readonly queues = new Map<number, QueuePair>();
  readonly stride: number;
  #next = 4 * MIB;
  #cid = 1;

  constructor(
    options: {
      namespaces?: { nsid: number; lbaSize: 512 | 4096; bytes: number }[];
      vectors?: number;
      stride?: number;
      maxTransferLog2?: number;
    } = {},
  ) {
    const vectors = Array.from({ length: options.vectors ?? 4 }, (_, i) => FIRST_VECTOR_IRQ + i);
    for (const ns of options.namespaces ?? [{ nsid: 1, lbaSize: 512, bytes: 64 * MIB }]) {
      this.disks.set(ns.nsid, DiskImage.memory({ sizeBytes: ns.bytes, lbaSize: ns.lbaSize }));
    }
    this.ctrl = new N.NvmeController({
      memory: this.memory,
      interrupts: this.intc,
      vectors,
      doorbellStride: options.stride ?? 0,
      maxTransferLog2: options.maxTransferLog2,
      serial: "nvme-test-sn",
      model: "Astra Test NVMe",
      firmware: "fw0.1",
      namespaces: [...this.disks].map(([nsid, disk]) => ({ nsid, disk })),
    });
    this.stride = 4 << (options.stride ?? 0);
    this.bus.map("nvme0", BAR, this.ctrl.mmioSize, this.ctrl);
    for (const irq of vectors) {
      this.intc.register({
        irq,
        name: `nvme-test v${irq - FIRST_VECTOR_IRQ}`,
        sharing: "exclusive",
        deliver: (d) => this.intc.complete(d.deliveryId, { handled: true, endOfInterrupt: true }),
      });
    }
  }

  alloc(bytes: number, align = PAGE): number {
    this.#next = Math.ceil(this.#next / align) * align;
    const address = this.#next;
    this.#next += bytes;
    return address;
  }

  reg(offset: number): number {
    return this.bus.read32(BAR + offset);
  }

  setReg(offset: number, value: number): void {
    this.bus.write32(BAR + offset, value);
  }

  interruptsOn(vector: number): number {
    return this.intc.statistics([FIRST_VECTOR_IRQ + vector])[0].count;
  }

  /** The admin queue pair, AQA/ASQ/ACQ, then CC.EN. */
  enable(entries = 8, cc = CC_ENABLE): void {
    const sqBase = this.alloc(entries * 64);
    const cqBase = this.alloc(entries * 16);
    this.setReg(N.NVME_AQA, ((entries - 1) << 16) | (entries - 1));
    this.bus.write(BAR + N.NVME_ASQ, 8, BigInt(sqBase));
    this.bus.write(BAR + N.NVME_ACQ, 8, BigInt(cqBase));
    this.setReg(N.NVME_CC, cc);
    this.queues.set(0, { sqBase, sqSize: entries, tail: 0, cqBase, cqSize: entries, head: 0, phase: 1 });
  }

  disable(): void {
    this.setReg(N.NVME_CC, this.reg(N.NVME_CC) & ~N.CC_EN);
    this.queues.clear();
  }

  /** Writes an entry at the SQ tail; `ring` (default) writes the tail doorbell too. Returns the CID. */
  submit(qid: number, entry: Sqe, ring = true): number {
    const q = this.queues.get(qid)!;
    const cid = entry.cid ?? (this.#cid++ & 0xffff);
    const raw = new Uint8Array(64);
    const v = new DataView(raw.buffer);
    v.setUint32(0, (entry.opcode | (cid << 16)) >>> 0, true);
    v.setUint32(4, entry.nsid ?? 0, true);
    v.setBigUint64(24, BigInt(entry.prp1 ?? 0), true);
    v.setBigUint64(32, BigInt(entry.prp2 ?? 0), true);
    [entry.cdw10, entry.cdw11, entry.cdw12, entry.cdw13].forEach((d, i) =>
      v.setUint32(40 + i * 4, (d ?? 0) >>> 0, true)
    );
    this.memory.write(q.sqBase + q.tail * 64, raw);
    q.tail = (q.tail + 1) % q.sqSize;
    if (ring) this.ringSq(qid);
    return cid;
  }

  ringSq(qid: number): void {
    this.setReg(N.NVME_DOORBELLS + 2 * qid * this.stride, this.queues.get(qid)!.tail);
  }

  /** Completion entries whose phase says they are new, consumed, with the head doorbell written. */
  reap(qid: number): Completion[] {
    const q = this.queues.get(qid)!;
    const out: Completion[] = [];
    for (;;) {
      const v = new DataView(this.memory.read(q.cqBase + q.head * 16, 16).buffer);
      const dw3 = v.getUint32(12, true);
      if (((dw3 >>> 16) & 1) !== q.phase) break;
      const dw2 = v.getUint32(8, true);
      out.push({
        dw0: v.getUint32(0, true),
        sqhd: dw2 & 0xffff,
        sqid: dw2 >>> 16,
        cid: dw3 & 0xffff,
        phase: (dw3 >>> 16) & 1,
        status: (dw3 >>> 17) & 0x7ff,
        dnr: (dw3 >>> 31) === 1,
      });
      q.head = (q.head + 1) % q.cqSize;
      if (q.head === 0) q.phase ^= 1;
    }
    if (out.length > 0) this.setReg(N.NVME_DOORBELLS + (2 * qid + 1) * this.stride, q.head);
    return out;
  }

  /** Submits one command and returns its completion. */
  async run(qid: number, entry: Sqe): Promise<Completion> {
    const cid = this.submit(qid, entry);
    await this.ctrl.idle();
    const done = this.reap(qid);
    expect(done.map((c) => c.cid)).toEqual([cid]);
    return done[0];
  }

  async admin(entry: Sqe): Promise<Completion> {
    return await this.run(0, entry);
  }

  async createQueuePair(qid: number, entries: number, vector = 1, interrupts = true): Promise<void> {
    const sqBase = this.alloc(entries * 64);
    const cqBase = this.alloc(entries * 16);
    const cq = await this.admin({
      opcode: N.ADMIN_CREATE_IO_CQ,
      prp1: cqBase,
      cdw10: ((entries - 1) << 16) | qid,
      cdw11: (vector << 16) | (interrupts ? 2 : 0) | 1,
    });
    expect(cq.status).toBe(N.SC_SUCCESS);
    const sq = await this.admin({
      opcode: N.ADMIN_CREATE_IO_SQ,
      prp1: sqBase,
      cdw10: ((entries - 1) << 16) | qid,
      cdw11: (qid << 16) | 1,
    });
    expect(sq.status).toBe(N.SC_SUCCESS);
    this.queues.set(qid, { sqBase, sqSize: entries, tail: 0, cqBase, cqSize: entries, head: 0, phase: 1 });
  }

  /** PRP1/PRP2 for a buffer, building a PRP list when it spans more than two pages. */
  prps(address: number, bytes: number): { prp1: number; prp2: number } {
    const first = PAGE - (address % PAGE);
    if (bytes <= first) return { prp1: address, prp2: 0 };
    const rest = bytes - first;
    if (rest <= PAGE) return { prp1: address, prp2: address + first };
    const pages = Math.ceil(rest / PAGE);
    const list = this.alloc(pages * 8);
    const entries = new DataView(new ArrayBuffer(pages * 8));
    for (let i = 0; i < pages; i++) entries.setBigUint64(i * 8, BigInt(address + first + i * PAGE), true);
    this.memory.write(list, new Uint8Array(entries.buffer));
    return { prp1: address, prp2: list };
  }

  io(
    opcode: number,
    nsid: number,
    lba: number,
    blocks: number,
    buffer: number,
    bytes: number,
    extra = 0,
  ): Sqe {
    return {
      opcode,
      nsid,
      ...this.prps(buffer, bytes),
      cdw10: lba % 2 ** 32,
      cdw11: Math.floor(lba / 2 ** 32),
      cdw12: ((blocks - 1) | extra) >>> 0,
    };
  }

  async ready(ioQueues: { qid: number; entries: number; vector?: number }[] = []): Promise<void> {
    this.enable();
    expect(this.reg(N.NVME_CSTS) & N.CSTS_RDY).toBe(N.CSTS_RDY);
    for (const q of ioQueues) await this.createQueuePair(q.qid, q.entries, q.vector ?? 1);
  }
}

describe("NVMe: registers and initialisation", () => {
  it("advertises its capabilities at power-on (nvme/reg-read)", () => {
    const rig = new Rig({ stride: 1 });
    const cap = rig.bus.read(BAR + N.NVME_CAP, 8);
    expect(Number(cap & 0xffffn)).toBe(4095);
    expect((cap >> 16n) & 1n).toBe(1n);
    expect(Number((cap >> 24n) & 0xffn)).toBe(20);
    expect(Number((cap >> 32n) & 0xfn)).toBe(1);
    expect((cap >> 37n) & 1n).toBe(1n);
    expect(Number((cap >> 48n) & 0xfn)).toBe(0);
    expect(Number((cap >> 52n) & 0xfn)).toBe(4);
    expect(rig.reg(N.NVME_VS)).toBe(0x00010400);
    expect(rig.reg(N.NVME_CC)).toBe(0);
    expect(rig.reg(N.NVME_CSTS)).toBe(0);
    expect(rig.ctrl.mmioSize).toBeGreaterThanOrEqual(0x1000 + 2 * 65 * 8);
  });

  it("becomes ready on CC.EN with valid admin queues, refuses a bad configuration, and resets", () => {
    const rig = new Rig();
    rig.enable(8, N.CC_EN);
    expect(rig.reg(N.NVME_CSTS) & N.CSTS_RDY).toBe(0);
    expect(rig.ctrl.statistics().lastEnableError).toMatch(/IOSQES/);
    rig.setReg(N.NVME_CC, 0);
    rig.enable(8, CC_ENABLE | (5 << 7));
    expect(rig.reg(N.NVME_CSTS) & N.CSTS_RDY).toBe(0);
    expect(rig.ctrl.statistics().lastEnableError).toMatch(/MPS/);
    rig.setReg(N.NVME_CC, 0);
    rig.enable();
    expect(rig.reg(N.NVME_CSTS)).toBe(N.CSTS_RDY);
    expect(rig.ctrl.statistics().lastEnableError).toBe(null);
    expect(rig.bus.read(BAR + N.NVME_ASQ, 8)).toBe(BigInt(rig.queues.get(0)!.sqBase));
    rig.disable();
    expect(rig.reg(N.NVME_CSTS)).toBe(0);
  });

  it("identifies the controller, namespaces and the active namespace list", async () => {
    const rig = new Rig({
      namespaces: [
        { nsid: 1, lbaSize: 512, bytes: 32 * MIB },
        { nsid: 3, lbaSize: 4096, bytes: 64 * MIB },
      ],
    });
    await rig.ready();
    const buffer = rig.alloc(PAGE);
    const identify = async (cns: number, nsid = 0) => {
      rig.memory.fill(buffer, PAGE, 0xee);
      const c = await rig.admin({ opcode: N.ADMIN_IDENTIFY, nsid, prp1: buffer, cdw10: cns });
      return { status: c.status, data: rig.memory.read(buffer, PAGE) };
    };
    const ctrl = await identify(N.CNS_CONTROLLER);
    expect(ctrl.status).toBe(N.SC_SUCCESS);
    const text = (from: number, to: number) => new TextDecoder().decode(ctrl.data.subarray(from, to));
    const cv = new DataView(ctrl.data.buffer);
    expect(text(4, 24)).toBe("nvme-test-sn".padEnd(20));
    expect(text(24, 64)).toBe("Astra Test NVMe".padEnd(40));
    expect(text(64, 72)).toBe("fw0.1".padEnd(8));
    expect(cv.getUint32(80, true)).toBe(0x00010400);
    expect(ctrl.data[512]).toBe(0x66);
    expect(ctrl.data[513]).toBe(0x44);
    expect(cv.getUint32(516, true)).toBe(16);
    expect(ctrl.data[525] & 1).toBe(1);
    expect(ctrl.data[77]).toBe(8);

    const ns1 = await identify(N.CNS_NAMESPACE, 1);
    const v1 = new DataView(ns1.data.buffer);
    expect(Number(v1.getBigUint64(0, true))).toBe(32 * MIB / 512);
    expect(ns1.data[26] & 0xf).toBe(0);
    expect((v1.getUint32(128 + 4 * (ns1.data[26] & 0xf), true) >>> 16) & 0xff).toBe(9);
    const ns3 = await identify(N.CNS_NAMESPACE, 3);
    const v3 = new DataView(ns3.data.buffer);
    expect(Number(v3.getBigUint64(0, true))).toBe(64 * MIB / 4096);
    expect((v3.getUint32(128 + 4 * (ns3.data[26] & 0xf), true) >>> 16) & 0xff).toBe(12);
    // An inactive namespace ID identifies as zeroes; 0 and IDs above NN are invalid.
    expect((await identify(N.CNS_NAMESPACE, 2)).data).toEqual(new Uint8Array(PAGE));
    expect((await identify(N.CNS_NAMESPACE, 0)).status).toBe(N.SC_INVALID_NAMESPACE);
    expect((await identify(N.CNS_NAMESPACE, 17)).status).toBe(N.SC_INVALID_NAMESPACE);

    const list = new DataView((await identify(N.CNS_ACTIVE_NAMESPACES, 0)).data.buffer);
    expect([list.getUint32(0, true), list.getUint32(4, true), list.getUint32(8, true)]).toEqual([1, 3, 0]);
    const after1 = new DataView((await identify(N.CNS_ACTIVE_NAMESPACES, 1)).data.buffer);
    expect([after1.getUint32(0, true), after1.getUint32(4, true)]).toEqual([3, 0]);
    const descriptors = (await identify(N.CNS_NAMESPACE_DESCRIPTORS, 3)).data;
    expect([descriptors[0], descriptors[1]]).toEqual([1, 8]);
    const unknown = await identify(0x55);
    expect(unknown.status).toBe(N.SC_INVALID_FIELD);
    expect(unknown.data[0]).toBe(0xee);
  });
});

describe("NVMe: queues", () => {
  it("validates queue creation and deletion as the specification says", async () => {
    const rig = new Rig({ vectors: 2 });
    await rig.ready();
    const cqBase = rig.alloc(PAGE);
    const sqBase = rig.alloc(PAGE);
    const createCq = (qid: number, entries: number, cdw11 = 3) =>
      rig.admin({ opcode: N.ADMIN_CREATE_IO_CQ, prp1: cqBase, cdw10: ((entries - 1) << 16) | qid, cdw11 });
    const createSq = (qid: number, entries: number, cqid: number, pc = 1, base = sqBase) =>
      rig.admin({
        opcode: N.ADMIN_CREATE_IO_SQ,
        prp1: base,
        cdw10: ((entries - 1) << 16) | qid,
        cdw11: (cqid << 16) | pc,
      });

    expect((await createCq(0, 16)).status).toBe(N.SC_INVALID_QUEUE_ID);
    expect((await createCq(65, 16)).status).toBe(N.SC_INVALID_QUEUE_ID);
    expect((await createCq(1, 1)).status).toBe(N.SC_INVALID_QUEUE_SIZE);
    expect((await createCq(1, 4097)).status).toBe(N.SC_INVALID_QUEUE_SIZE);
    expect((await createCq(1, 16, 2)).status).toBe(N.SC_INVALID_FIELD);
    expect((await createCq(1, 16, (2 << 16) | 3)).status).toBe(N.SC_INVALID_INTERRUPT_VECTOR);
    const misaligned = await rig.admin({
      opcode: N.ADMIN_CREATE_IO_CQ,
      prp1: cqBase + 64,
      cdw10: (15 << 16) | 1,
      cdw11: 3,
    });
    expect(misaligned.status).toBe(N.SC_INVALID_PRP_OFFSET);
    expect(misaligned.dnr).toBe(true);
    expect((await createCq(1, 16)).status).toBe(N.SC_SUCCESS);
    expect((await createCq(1, 16)).status).toBe(N.SC_INVALID_QUEUE_ID);

    expect((await createSq(1, 16, 2)).status).toBe(N.SC_COMPLETION_QUEUE_INVALID);
    expect((await createSq(1, 16, 0)).status).toBe(N.SC_COMPLETION_QUEUE_INVALID);
    expect((await createSq(1, 16, 1, 0)).status).toBe(N.SC_INVALID_FIELD);
    expect((await createSq(1, 16, 1)).status).toBe(N.SC_SUCCESS);
    expect((await createSq(2, 16, 1, 1, rig.alloc(PAGE))).status).toBe(N.SC_SUCCESS);

    const deleteCq = (qid: number) => rig.admin({ opcode: N.ADMIN_DELETE_IO_CQ, cdw10: qid });
    const deleteSq = (qid: number) => rig.admin({ opcode: N.ADMIN_DELETE_IO_SQ, cdw10: qid });
    expect((await deleteCq(1)).status).toBe(N.SC_INVALID_QUEUE_DELETION);
    expect((await deleteSq(1)).status).toBe(N.SC_SUCCESS);
    expect((await deleteSq(1)).status).toBe(N.SC_INVALID_QUEUE_ID);
    expect((await deleteCq(1)).status).toBe(N.SC_INVALID_QUEUE_DELETION);
    expect((await deleteSq(2)).status).toBe(N.SC_SUCCESS);
    expect((await deleteCq(1)).status).toBe(N.SC_SUCCESS);
    expect((await deleteCq(0)).status).toBe(N.SC_INVALID_QUEUE_ID);
    expect((await rig.admin({ opcode: 0x7f })).status).toBe(N.SC_INVALID_OPCODE);
  });

  it("allocates I/O queues through Set Features (Number of Queues), only before any exist", async () => {
    const rig = new Rig();
    await rig.ready();
    const set = await rig.admin({
      opcode: N.ADMIN_SET_FEATURES,
      cdw10: N.FEATURE_NUMBER_OF_QUEUES,
      cdw11: (1 << 16) | 3,
    });
    expect(set.status).toBe(N.SC_SUCCESS);
    expect(set.dw0).toBe((1 << 16) | 3);
    const get = await rig.admin({ opcode: N.ADMIN_GET_FEATURES, cdw10: N.FEATURE_NUMBER_OF_QUEUES });
    expect(get.dw0).toBe((1 << 16) | 3);
    const big = await rig.admin({
      opcode: N.ADMIN_SET_FEATURES,
      cdw10: N.FEATURE_NUMBER_OF_QUEUES,
      cdw11: 0xfff0fff0,
    });
    expect(big.dw0).toBe((63 << 16) | 63);
    await rig.admin({
      opcode: N.ADMIN_SET_FEATURES,
      cdw10: N.FEATURE_NUMBER_OF_QUEUES,
      cdw11: (1 << 16) | 1,
    });
    await rig.createQueuePair(1, 8);
    await rig.createQueuePair(2, 8);
    const third = await rig.admin({
      opcode: N.ADMIN_CREATE_IO_CQ,
      prp1: rig.alloc(PAGE),
      cdw10: (7 << 16) | 3,
      cdw11: 3,
    });
    expect(third.status).toBe(N.SC_INVALID_QUEUE_ID);
    const late = await rig.admin({
      opcode: N.ADMIN_SET_FEATURES,
      cdw10: N.FEATURE_NUMBER_OF_QUEUES,
      cdw11: 0,
    });
    expect(late.status).toBe(N.SC_COMMAND_SEQUENCE_ERROR);
    const saved = await rig.admin({
      opcode: N.ADMIN_SET_FEATURES,
      cdw10: 0x8000_0000 | N.FEATURE_VOLATILE_WRITE_CACHE,
    });
    expect(saved.status).toBe(N.SC_FEATURE_NOT_SAVEABLE);
    const caps = await rig.admin({
      opcode: N.ADMIN_GET_FEATURES,
      cdw10: (3 << 8) | N.FEATURE_VOLATILE_WRITE_CACHE,
    });
    expect(caps.dw0).toBe(1 << 2);
  });

  it("reads and writes across queue wrap-around, with phase tags and SQ head pointers", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 4 }]);
    const disk = rig.disks.get(1)!;
    const phases: number[] = [];
    const heads: number[] = [];
    for (let i = 0; i < 14; i++) {
      const buffer = rig.alloc(PAGE);
      rig.memory.write(buffer, pattern(PAGE, i));
      const done = await rig.run(1, rig.io(N.NVM_WRITE, 1, i * 8, 8, buffer, PAGE));
      expect(done.status).toBe(N.SC_SUCCESS);
      expect(done.sqid).toBe(1);
      phases.push(done.phase);
      heads.push(done.sqhd);
    }
    // Four entries: the phase flips every fourth completion, the head walks 1, 2, 3, 0.
    expect(phases).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0]);
    expect(heads.slice(0, 6)).toEqual([1, 2, 3, 0, 1, 2]);
    for (let i = 0; i < 14; i++) expectBytes(await disk.read(i * 8, 8), pattern(PAGE, i));

    // Three in flight at once in a four-entry queue (the most it can hold), crossing the wrap.
    const buffers = [0, 1, 2].map(() => rig.alloc(PAGE));
    const cids = [0, 1, 2].map((i) =>
      rig.submit(1, rig.io(N.NVM_READ, 1, (i + 5) * 8, 8, buffers[i], PAGE), false)
    );
    rig.ringSq(1);
    await rig.ctrl.idle();
    const done = rig.reap(1);
    expect(done.map((c) => c.cid).sort()).toEqual(cids.sort());
    for (let i = 0; i < 3; i++) expectBytes(rig.memory.read(buffers[i], PAGE), pattern(PAGE, i + 5));
  });

  it("serves many queue pairs at once, each completion queue on its own interrupt vector", async () => {
    const rig = new Rig({ vectors: 17 });
    const pairs = Array.from({ length: 16 }, (_, i) => ({ qid: i + 1, entries: 8, vector: i + 1 }));
    await rig.ready(pairs);
    const buffers: number[] = [];
    for (const { qid } of pairs) {
      const buffer = rig.alloc(PAGE);
      buffers.push(buffer);
      rig.memory.write(buffer, pattern(PAGE, qid));
      rig.submit(qid, rig.io(N.NVM_WRITE, 1, qid * 100, 8, buffer, PAGE));
      rig.submit(qid, rig.io(N.NVM_FLUSH, 1, 0, 1, buffer, 0));
    }
    await rig.ctrl.idle();
    for (const { qid, vector } of pairs) {
      const done = rig.reap(qid);
      expect(done.map((c) => [c.sqid, c.status])).toEqual([[qid, 0], [qid, 0]]);
      expect(rig.interruptsOn(vector)).toBeGreaterThanOrEqual(1);
      expectBytes(await rig.disks.get(1)!.read(qid * 100, 8), pattern(PAGE, qid));
    }
    // The admin vector only saw the queue creations.
    expect(rig.interruptsOn(0)).toBe(32);
  });
});

describe("NVMe: data transfer", () => {
  it("follows PRP1 with an offset, PRP2 as a second page, PRP lists and chained PRP lists", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 16 }]);
    const disk = rig.disks.get(1)!;
    const cases = [
      { name: "within one page, offset", offset: 512, bytes: 1024 },
      { name: "across two pages", offset: 2048, bytes: 4096 },
      { name: "PRP list", offset: 0, bytes: 6 * PAGE },
      { name: "PRP list, offset first page", offset: 3584, bytes: 5 * PAGE + 512 },
    ];
    let lba = 0;
    for (const [i, c] of cases.entries()) {
      const region = rig.alloc(8 * PAGE);
      const buffer = region + c.offset;
      const data = pattern(c.bytes, 40 + i);
      rig.memory.write(buffer, data);
      const write = await rig.run(1, rig.io(N.NVM_WRITE, 1, lba, c.bytes / 512, buffer, c.bytes));
      expect(write.status, c.name).toBe(N.SC_SUCCESS);
      expectBytes(await disk.read(lba, c.bytes / 512), data);
      rig.memory.fill(region, 8 * PAGE, 0);
      const read = await rig.run(1, rig.io(N.NVM_READ, 1, lba, c.bytes / 512, buffer, c.bytes));
      expect(read.status, c.name).toBe(N.SC_SUCCESS);
      expectBytes(rig.memory.read(buffer, c.bytes), data);
      // Nothing outside the buffer was touched.
      expect(rig.memory.read(region, c.offset)).toEqual(new Uint8Array(c.offset));
      lba += 64;
    }

    // A chained list: the list starts two entries before a page end, so its last slot points on.
    const pages = [0, 1, 2, 3].map(() => rig.alloc(PAGE));
    const listPage = rig.alloc(2 * PAGE);
    const list = listPage + PAGE - 16;
    const next = listPage + PAGE;
    const entries = new DataView(new ArrayBuffer(16));
    entries.setBigUint64(0, BigInt(pages[1]), true);
    entries.setBigUint64(8, BigInt(next), true);
    rig.memory.write(list, new Uint8Array(entries.buffer));
    const tail = new DataView(new ArrayBuffer(16));
    tail.setBigUint64(0, BigInt(pages[2]), true);
    tail.setBigUint64(8, BigInt(pages[3]), true);
    rig.memory.write(next, new Uint8Array(tail.buffer));
    const data = pattern(4 * PAGE, 9);
    pages.forEach((p, i) => rig.memory.write(p, data.subarray(i * PAGE, (i + 1) * PAGE)));
    const chained = await rig.run(1, {
      opcode: N.NVM_WRITE,
      nsid: 1,
      prp1: pages[0],
      prp2: list,
      cdw10: 512,
      cdw12: 31,
    });
    expect(chained.status).toBe(N.SC_SUCCESS);
    expectBytes(await disk.read(512, 32), data);
  });

  it("rejects bad PRPs, oversize transfers, out-of-range LBAs and unknown namespaces", async () => {
    const rig = new Rig({ maxTransferLog2: 2 });
    await rig.ready([{ qid: 1, entries: 16 }]);
    const buffer = rig.alloc(8 * PAGE);
    const status = async (entry: Sqe) => (await rig.run(1, entry)).status;
    expect(await status({ opcode: N.NVM_READ, nsid: 1, prp1: buffer + 2, cdw12: 0 })).toBe(
      N.SC_INVALID_PRP_OFFSET,
    );
    expect(
      await status({ opcode: N.NVM_READ, nsid: 1, prp1: buffer + 512, prp2: buffer + PAGE + 8, cdw12: 7 }),
    )
      .toBe(N.SC_INVALID_PRP_OFFSET);
    expect(await status(rig.io(N.NVM_READ, 1, 0, 40, buffer, 40 * 512))).toBe(N.SC_INVALID_FIELD);
    expect(await status(rig.io(N.NVM_READ, 1, 64 * MIB / 512 - 1, 2, buffer, 1024))).toBe(
      N.SC_LBA_OUT_OF_RANGE,
    );
    expect(await status(rig.io(N.NVM_READ, 2, 0, 1, buffer, 512))).toBe(N.SC_INVALID_NAMESPACE);
    expect(await status({ opcode: 0x7e, nsid: 1 })).toBe(N.SC_INVALID_OPCODE);
    // A PRP into device memory is a data transfer error, worth retrying after a fix.
    const dma = await rig.run(1, { opcode: N.NVM_READ, nsid: 1, prp1: MMIO_BASE, cdw12: 0 });
    expect(dma.status).toBe(N.SC_DATA_TRANSFER_ERROR);
    expect(dma.dnr).toBe(false);
  });

  it("transfers whole logical blocks on 512 B and 4 KiB namespaces", async () => {
    const rig = new Rig({
      namespaces: [
        { nsid: 1, lbaSize: 512, bytes: 16 * MIB },
        { nsid: 2, lbaSize: 4096, bytes: 16 * MIB },
      ],
    });
    await rig.ready([{ qid: 1, entries: 8 }]);
    const buffer = rig.alloc(2 * PAGE);
    const data = pattern(2 * PAGE, 77);
    rig.memory.write(buffer, data);
    expect((await rig.run(1, rig.io(N.NVM_WRITE, 2, 10, 2, buffer, 2 * PAGE))).status).toBe(N.SC_SUCCESS);
    expectBytes(await rig.disks.get(2)!.read(10, 2), data);
    expect((await rig.run(1, rig.io(N.NVM_WRITE, 1, 10, 2, buffer, 1024))).status).toBe(N.SC_SUCCESS);
    expectBytes(await rig.disks.get(1)!.read(10, 2), data.subarray(0, 1024));
    expect(await rig.disks.get(1)!.read(12, 1)).toEqual(new Uint8Array(512));
  });

  it("makes FUA writes durable, flushes on Flush, and writes through with the write cache off", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8 }]);
    const disk = rig.disks.get(1)!;
    const buffer = rig.alloc(PAGE);
    await rig.run(1, rig.io(N.NVM_WRITE, 1, 0, 1, buffer, 512));
    expect(disk.statistics().unflushedWrites).toBe(1);
    await rig.run(1, rig.io(N.NVM_WRITE, 1, 1, 1, buffer, 512, 1 << 30));
    expect(disk.statistics().unflushedWrites).toBe(0);
    await rig.run(1, rig.io(N.NVM_WRITE, 1, 2, 1, buffer, 512));
    expect((await rig.run(1, { opcode: N.NVM_FLUSH, nsid: 0xffffffff })).status).toBe(N.SC_SUCCESS);
    expect(disk.statistics().unflushedWrites).toBe(0);
    await rig.admin({ opcode: N.ADMIN_SET_FEATURES, cdw10: N.FEATURE_VOLATILE_WRITE_CACHE, cdw11: 0 });
    expect((await rig.admin({ opcode: N.ADMIN_GET_FEATURES, cdw10: N.FEATURE_VOLATILE_WRITE_CACHE })).dw0)
      .toBe(0);
    await rig.run(1, rig.io(N.NVM_WRITE, 1, 3, 1, buffer, 512));
    expect(disk.statistics().unflushedWrites).toBe(0);
  });

  it("holds completions while the completion queue is full and posts them as the host frees room", async () => {
    const rig = new Rig();
    await rig.ready();
    const sqBase = rig.alloc(PAGE);
    const cqBase = rig.alloc(PAGE);
    await rig.admin({
      opcode: N.ADMIN_CREATE_IO_CQ,
      prp1: cqBase,
      cdw10: (2 << 16) | 1,
      cdw11: 3 | (1 << 16),
    });
    await rig.admin({
      opcode: N.ADMIN_CREATE_IO_SQ,
      prp1: sqBase,
      cdw10: (7 << 16) | 1,
      cdw11: (1 << 16) | 1,
    });
    rig.queues.set(1, { sqBase, sqSize: 8, tail: 0, cqBase, cqSize: 3, head: 0, phase: 1 });
    for (let i = 0; i < 5; i++) rig.submit(1, { opcode: N.NVM_FLUSH, nsid: 1 }, false);
    rig.ringSq(1);
    await rig.ctrl.idle();
    // Three entries hold two completions; the rest wait for the head doorbell.
    expect(rig.reap(1)).toHaveLength(2);
    await rig.ctrl.idle();
    expect(rig.reap(1)).toHaveLength(2);
    const last = rig.reap(1);
    expect(last).toHaveLength(1);
    expect(last[0].sqhd).toBe(5);
  });
});

describe("NVMe: faults, resets and events", () => {
  it("reports a media error with its LBA in the error log and SMART log, without Do Not Retry", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8 }]);
    rig.disks.get(1)!.injectFault({ kind: "media-error", lbaFirst: 90, lbaCount: 4, count: 1 });
    const buffer = rig.alloc(PAGE);
    const failed = await rig.run(1, rig.io(N.NVM_READ, 1, 88, 8, buffer, PAGE));
    expect(failed.status).toBe(N.SC_UNRECOVERED_READ_ERROR);
    expect(failed.dnr).toBe(false);
    expect((await rig.run(1, rig.io(N.NVM_READ, 1, 88, 8, buffer, PAGE))).status).toBe(N.SC_SUCCESS);

    const log = rig.alloc(PAGE);
    await rig.admin({
      opcode: N.ADMIN_GET_LOG_PAGE,
      prp1: log,
      cdw10: ((64 / 4 - 1) << 16) | N.LOG_ERROR_INFORMATION,
    });
    const entry = new DataView(rig.memory.read(log, 64).buffer);
    expect(Number(entry.getBigUint64(0, true))).toBe(1);
    expect(entry.getUint16(8, true)).toBe(1);
    expect(entry.getUint16(10, true)).toBe(failed.cid);
    expect(entry.getUint16(12, true) >>> 1).toBe(N.SC_UNRECOVERED_READ_ERROR);
    expect(Number(entry.getBigUint64(16, true))).toBe(90);
    expect(entry.getUint32(24, true)).toBe(1);
    await rig.admin({
      opcode: N.ADMIN_GET_LOG_PAGE,
      prp1: log,
      nsid: 0xffffffff,
      cdw10: (127 << 16) | N.LOG_SMART_HEALTH,
    });
    const smart = new DataView(rig.memory.read(log, 512).buffer);
    expect(Number(smart.getBigUint64(64, true))).toBe(2);
    expect(Number(smart.getBigUint64(160, true))).toBe(1);
    expect(Number(smart.getBigUint64(176, true))).toBe(1);
    const bad = await rig.admin({ opcode: N.ADMIN_GET_LOG_PAGE, prp1: log, cdw10: (127 << 16) | 0x7f });
    expect(bad.status).toBe(N.SC_INVALID_LOG_PAGE);
  });

  it("aborts a command that never completes", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8 }]);
    rig.disks.get(1)!.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 1 });
    const buffer = rig.alloc(PAGE);
    const hung = rig.submit(1, rig.io(N.NVM_READ, 1, 0, 1, buffer, 512));
    await new Promise((r) => setTimeout(r, 10));
    expect(rig.reap(1)).toEqual([]);
    const abort = await rig.admin({ opcode: N.ADMIN_ABORT, cdw10: (hung << 16) | 1 });
    expect(abort.dw0 & 1).toBe(0);
    const aborted = rig.reap(1);
    expect(aborted.map((c) => [c.cid, c.status])).toEqual([[hung, N.SC_ABORT_REQUESTED]]);
    const again = await rig.admin({ opcode: N.ADMIN_ABORT, cdw10: (hung << 16) | 1 });
    expect(again.dw0 & 1).toBe(1);
  });

  it("completes outstanding commands as aborted when their submission queue is deleted", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8 }]);
    rig.disks.get(1)!.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 1 });
    const hung = rig.submit(1, rig.io(N.NVM_READ, 1, 0, 1, rig.alloc(PAGE), 512));
    expect((await rig.admin({ opcode: N.ADMIN_DELETE_IO_SQ, cdw10: 1 })).status).toBe(N.SC_SUCCESS);
    expect(rig.reap(1).map((c) => [c.cid, c.status])).toEqual([[hung, N.SC_ABORTED_SQ_DELETION]]);
  });

  it("drops everything in flight on a controller reset and works again after re-initialisation", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8 }]);
    const disk = rig.disks.get(1)!;
    await disk.write(0, pattern(PAGE, 1));
    disk.injectFault({ kind: "command-timeout", lbaFirst: 100, lbaCount: 1 });
    const buffer = rig.alloc(PAGE);
    const cqBase = rig.queues.get(1)!.cqBase;
    rig.submit(1, rig.io(N.NVM_READ, 1, 100, 1, rig.alloc(PAGE), 512));
    rig.submit(1, rig.io(N.NVM_READ, 1, 0, 8, buffer, PAGE));
    rig.disable();
    expect(rig.reg(N.NVME_CSTS) & N.CSTS_RDY).toBe(0);
    const atReset = rig.memory.read(buffer, PAGE);
    await rig.ctrl.idle();
    // Neither completion was posted and the read's buffer was not written after the reset.
    expect(rig.memory.read(cqBase, 32)).toEqual(new Uint8Array(32));
    expect(rig.memory.read(buffer, PAGE)).toEqual(atReset);
    expect(rig.ctrl.statistics().controllerResets).toBe(1);

    disk.clearFaults();
    await rig.ready([{ qid: 1, entries: 8 }]);
    expect((await rig.run(1, rig.io(N.NVM_READ, 1, 0, 8, buffer, PAGE))).status).toBe(N.SC_SUCCESS);
    expectBytes(rig.memory.read(buffer, PAGE), pattern(PAGE, 1));
  });

  it("stops on an injected fatal status until the host resets the controller", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8 }]);
    rig.ctrl.injectFatal();
    expect(rig.reg(N.NVME_CSTS) & N.CSTS_CFS).toBe(N.CSTS_CFS);
    rig.submit(1, { opcode: N.NVM_FLUSH, nsid: 1 });
    await rig.ctrl.idle();
    expect(rig.reap(1)).toEqual([]);
    rig.disable();
    expect(rig.reg(N.NVME_CSTS) & N.CSTS_CFS).toBe(0);
    await rig.ready([{ qid: 1, entries: 8 }]);
    expect((await rig.run(1, { opcode: N.NVM_FLUSH, nsid: 1 })).status).toBe(N.SC_SUCCESS);
  });

  it("shuts down cleanly: SHST goes to complete once every namespace is flushed", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8 }]);
    await rig.run(1, rig.io(N.NVM_WRITE, 1, 0, 1, rig.alloc(PAGE), 512));
    rig.setReg(N.NVME_CC, rig.reg(N.NVME_CC) | (1 << 14));
    await rig.ctrl.idle();
    expect((rig.reg(N.NVME_CSTS) >>> 2) & 3).toBe(N.SHST_COMPLETE);
    expect(rig.disks.get(1)!.statistics().unflushedWrites).toBe(0);
  });

  it("masks a vector through INTMS and delivers what it held back on INTMC", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8, vector: 2 }]);
    rig.setReg(N.NVME_INTMS, 1 << 2);
    expect(rig.reg(N.NVME_INTMS)).toBe(1 << 2);
    const before = rig.interruptsOn(2);
    rig.submit(1, { opcode: N.NVM_FLUSH, nsid: 1 });
    await rig.ctrl.idle();
    expect(rig.interruptsOn(2)).toBe(before);
    rig.setReg(N.NVME_INTMC, 1 << 2);
    expect(rig.reg(N.NVME_INTMC)).toBe(0);
    expect(rig.interruptsOn(2)).toBe(before + 1);
    expect(rig.reap(1)).toHaveLength(1);
  });

  it("keeps Interrupt Coalescing and Interrupt Vector Configuration as set, until a reset", async () => {
    const rig = new Rig();
    await rig.ready();
    const set = (fid: number, cdw11: number) =>
      rig.admin({ opcode: N.ADMIN_SET_FEATURES, cdw10: fid, cdw11 });
    const get = (fid: number, cdw11 = 0, select = 0) =>
      rig.admin({ opcode: N.ADMIN_GET_FEATURES, cdw10: (select << 8) | fid, cdw11 });
    expect((await get(N.FEATURE_INTERRUPT_COALESCING)).dw0).toBe(0);
    expect((await set(N.FEATURE_INTERRUPT_COALESCING, (2 << 8) | 7)).status).toBe(N.SC_SUCCESS);
    expect((await get(N.FEATURE_INTERRUPT_COALESCING)).dw0).toBe((2 << 8) | 7);
    expect((await get(N.FEATURE_INTERRUPT_COALESCING, 0, 1)).dw0).toBe(0);
    expect((await get(N.FEATURE_INTERRUPT_COALESCING, 0, 3)).dw0).toBe(1 << 2);
    // The admin queue's vector is never coalesced; the others are unless told not to be.
    expect((await get(N.FEATURE_INTERRUPT_VECTOR_CONFIG, 0)).dw0).toBe(N.IVC_COALESCING_DISABLE);
    expect((await get(N.FEATURE_INTERRUPT_VECTOR_CONFIG, 1)).dw0).toBe(1);
    expect((await set(N.FEATURE_INTERRUPT_VECTOR_CONFIG, N.IVC_COALESCING_DISABLE | 1)).status)
      .toBe(N.SC_SUCCESS);
    expect((await get(N.FEATURE_INTERRUPT_VECTOR_CONFIG, 1)).dw0).toBe(N.IVC_COALESCING_DISABLE | 1);
    expect((await get(N.FEATURE_INTERRUPT_VECTOR_CONFIG, 1, 1)).dw0).toBe(1);
    expect((await set(N.FEATURE_INTERRUPT_VECTOR_CONFIG, 0)).status).toBe(N.SC_INVALID_FIELD);
    expect((await set(N.FEATURE_INTERRUPT_VECTOR_CONFIG, 4)).status).toBe(N.SC_INVALID_FIELD);
    expect((await get(N.FEATURE_INTERRUPT_VECTOR_CONFIG, 4)).status).toBe(N.SC_INVALID_FIELD);
    rig.disable();
    await rig.ready();
    expect((await get(N.FEATURE_INTERRUPT_COALESCING)).dw0).toBe(0);
    expect((await get(N.FEATURE_INTERRUPT_VECTOR_CONFIG, 1)).dw0).toBe(1);
  });

  it("signals a burst of completions once, not once per entry", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 16 }]);
    const before = rig.interruptsOn(1);
    for (let i = 0; i < 8; i++) rig.submit(1, rig.io(N.NVM_READ, 1, i * 8, 8, rig.alloc(PAGE), PAGE), false);
    rig.ringSq(1);
    await rig.ctrl.idle();
    expect(rig.interruptsOn(1)).toBe(before + 1);
    expect(rig.reap(1)).toHaveLength(8);
  });

  describe("interrupt coalescing", () => {
    const coalescing = async (rig: Rig, threshold: number, time100us: number) => {
      const c = await rig.admin({
        opcode: N.ADMIN_SET_FEATURES,
        cdw10: N.FEATURE_INTERRUPT_COALESCING,
        cdw11: (time100us << 8) | (threshold - 1),
      });
      expect(c.status).toBe(N.SC_SUCCESS);
    };
    const read = (rig: Rig, lba: number) => rig.io(N.NVM_READ, 1, lba, 8, rig.alloc(PAGE), PAGE);
    /** After everything submitted has completed and a turn of the event loop has gone by. */
    const settled = async (rig: Rig) => {
      await rig.ctrl.idle();
      await new Promise((r) => setTimeout(r, 0));
    };

    it("holds completions back until the aggregation threshold", async () => {
      const rig = new Rig();
      await rig.ready([{ qid: 1, entries: 16 }]);
      await coalescing(rig, 4, 255);
      const before = rig.interruptsOn(1);
      for (let i = 0; i < 3; i++) rig.submit(1, read(rig, i * 8));
      await settled(rig);
      expect(rig.interruptsOn(1)).toBe(before);
      rig.submit(1, read(rig, 64));
      await settled(rig);
      expect(rig.interruptsOn(1)).toBe(before + 1);
      expect(rig.reap(1)).toHaveLength(4);
    });

    it("signals what it holds back once the aggregation time has run out, and not much later", async () => {
      const rig = new Rig();
      await rig.ready([{ qid: 1, entries: 16 }]);
      await coalescing(rig, 256, 30);
      const before = rig.interruptsOn(1);
      const start = performance.now();
      rig.submit(1, read(rig, 0));
      await rig.ctrl.idle();
      expect(rig.interruptsOn(1)).toBe(before);
      while (rig.interruptsOn(1) === before && performance.now() - start < 1000) {
        await new Promise((r) => setTimeout(r, 0));
      }
      const waited = performance.now() - start;
      expect(rig.interruptsOn(1)).toBe(before + 1);
      expect(waited).toBeGreaterThanOrEqual(3);
      // A timer wakes a millisecond or two late at most; a busy machine may add some more.
      expect(waited).toBeLessThan(3 + 15);
      expect(rig.reap(1)).toHaveLength(1);
    });

    it("never holds back failed commands, the admin queue, or a vector with Coalescing Disable", async () => {
      const rig = new Rig();
      await rig.ready([{ qid: 1, entries: 16 }, { qid: 2, entries: 16, vector: 2 }]);
      await coalescing(rig, 256, 255);
      const disabled = await rig.admin({
        opcode: N.ADMIN_SET_FEATURES,
        cdw10: N.FEATURE_INTERRUPT_VECTOR_CONFIG,
        cdw11: N.IVC_COALESCING_DISABLE | 2,
      });
      expect(disabled.status).toBe(N.SC_SUCCESS);
      const on = [0, 1, 2].map((v) => rig.interruptsOn(v));
      rig.submit(1, rig.io(N.NVM_READ, 1, 64 * MIB / 512, 1, rig.alloc(PAGE), 512));
      await settled(rig);
      expect(rig.interruptsOn(1)).toBe(on[1] + 1);
      expect(rig.reap(1).map((c) => c.status)).toEqual([N.SC_LBA_OUT_OF_RANGE]);
      rig.submit(2, read(rig, 0));
      await settled(rig);
      expect(rig.interruptsOn(2)).toBe(on[2] + 1);
      expect(rig.reap(2)).toHaveLength(1);
      await rig.admin({ opcode: N.ADMIN_GET_FEATURES, cdw10: N.FEATURE_INTERRUPT_COALESCING });
      await settled(rig);
      expect(rig.interruptsOn(0)).toBeGreaterThan(on[0]);
    });

    it("starts over when the host has consumed everything the vector held back", async () => {
      const rig = new Rig();
      await rig.ready([{ qid: 1, entries: 16 }]);
      await coalescing(rig, 256, 20);
      const before = rig.interruptsOn(1);
      rig.submit(1, read(rig, 0));
      await rig.ctrl.idle();
      // Found by polling: the head doorbell says the host has caught up.
      expect(rig.reap(1)).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 10));
      expect(rig.interruptsOn(1)).toBe(before);
    });
  });

  it("reports namespace hot plug through an Asynchronous Event Request and the changed namespace list", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8 }]);
    await rig.admin({
      opcode: N.ADMIN_SET_FEATURES,
      cdw10: N.FEATURE_ASYNC_EVENT_CONFIG,
      cdw11: N.AEC_NAMESPACE_ATTRIBUTE_NOTICES,
    });
    const aer = rig.submit(0, { opcode: N.ADMIN_ASYNC_EVENT_REQUEST });
    await rig.ctrl.idle();
    expect(rig.reap(0)).toEqual([]);

    const disk = DiskImage.memory({ sizeBytes: 8 * MIB });
    rig.ctrl.attachNamespace(4, disk);
    const event = rig.reap(0);
    expect(event.map((c) => c.cid)).toEqual([aer]);
    expect(event[0].dw0).toBe(
      N.ASYNC_EVENT_TYPE_NOTICE | (N.ASYNC_NOTICE_NAMESPACE_CHANGED << 8) | (N.LOG_CHANGED_NAMESPACES << 16),
    );

    // Until the log page is read, further changes raise no new event.
    rig.submit(0, { opcode: N.ADMIN_ASYNC_EVENT_REQUEST });
    await rig.ctrl.idle();
    await rig.ctrl.detachNamespace(4);
    expect(rig.reap(0)).toEqual([]);
    const log = rig.alloc(PAGE);
    await rig.admin({
      opcode: N.ADMIN_GET_LOG_PAGE,
      prp1: log,
      cdw10: (1023 << 16) | N.LOG_CHANGED_NAMESPACES,
    });
    expect(new DataView(rig.memory.read(log, 8).buffer).getUint32(0, true)).toBe(4);
    rig.ctrl.attachNamespace(5, DiskImage.memory({ sizeBytes: 8 * MIB }));
    expect(rig.reap(0)).toHaveLength(1);

    // Four outstanding requests at most: the fifth is refused.
    for (let i = 0; i < 5; i++) rig.submit(0, { opcode: N.ADMIN_ASYNC_EVENT_REQUEST });
    await rig.ctrl.idle();
    expect(rig.reap(0).map((c) => c.status)).toEqual([N.SC_ASYNC_EVENT_LIMIT_EXCEEDED]);
  });

  it("fails commands in flight on a surprise-removed namespace, then refuses the namespace", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8 }]);
    rig.disks.get(1)!.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 1 });
    const cid = rig.submit(1, rig.io(N.NVM_READ, 1, 0, 1, rig.alloc(PAGE), 512));
    await rig.ctrl.detachNamespace(1, { surprise: true });
    await rig.ctrl.idle();
    const done = rig.reap(1);
    expect(done.map((c) => [c.cid, c.status, c.dnr])).toEqual([[cid, N.SC_NAMESPACE_NOT_READY, true]]);
    expect((await rig.run(1, { opcode: N.NVM_FLUSH, nsid: 1 })).status).toBe(N.SC_INVALID_NAMESPACE);
  });

  it("raises an error event for a doorbell write beyond the queue", async () => {
    const rig = new Rig();
    await rig.ready([{ qid: 1, entries: 8 }]);
    rig.submit(0, { opcode: N.ADMIN_ASYNC_EVENT_REQUEST });
    await rig.ctrl.idle();
    rig.setReg(N.NVME_DOORBELLS + 2 * rig.stride, 9);
    const event = rig.reap(0);
    expect(event).toHaveLength(1);
    expect(event[0].dw0).toBe(
      N.ASYNC_EVENT_TYPE_ERROR | (N.ASYNC_ERROR_INVALID_DOORBELL_VALUE << 8) |
        (N.LOG_ERROR_INFORMATION << 16),
    );
  });
});
