// The NVMe driver against the machine's NVMe controller model, in this process. The cases follow
// QEMU's tests/qtest/nvme-test.c and the list: init and identify, namespaces of 512 B and
// 4 KiB blocks, PRP1/PRP2 and (chained) PRP lists, queue creation and deletion, wrap-around of
// small queues, many queues at once, FUA and flush, timeouts, errors, controller reset with I/O in
// flight, a fatal controller status, lost interrupts and namespace hot plug.
import { afterEach, describe, expect, it } from "vitest";
import { Code, Errno } from "../../../lib/errors.ts";
import { DiskImage } from "../../../services/machine/devices/diskimage.ts";
import type { DeviceMachine } from "../../../services/storage/hardware.ts";
import { NvmeDriver, type NvmeDriverOptions, SC_SUCCESS } from "../../../services/storage/nvme.ts";
import { expectBytes, expectFailure, MiB, nvmeMachine, type NvmeMachineOptions, pattern } from "./helpers.ts";

interface Rig {
  machine: DeviceMachine;
  disks: Map<number, DiskImage>;
  nvme: NvmeDriver;
}

const open: Rig[] = [];

afterEach(async () => {
  for (const rig of open.splice(0)) await rig.nvme.close();
});

async function start(options: NvmeDriverOptions = {}, machineOptions: NvmeMachineOptions = {}): Promise<Rig> {
  const { machine, disks } = nvmeMachine(machineOptions);
  const hw = machine.hardware();
  const [info] = await hw.controllers();
  const nvme = new NvmeDriver(hw, info, { commandTimeoutMs: 5000, ...options });
  await nvme.init();
  const rig = { machine, disks, nvme };
  open.push(rig);
  return rig;
}

function vectorIrq(rig: Rig, vector: number): number {
  return rig.machine.controllers.find((c) => c.kind === "nvme")!.irqs[vector];
}

describe("NVMe driver: initialisation and identify", () => {
  it("brings the controller up with one I/O queue per CPU and finds both namespaces", async () => {
    const { machine, nvme } = await start({}, { cpus: 3 });
    expect(nvme.version).toBe(0x0001_0400);
    expect(nvme.ioQueueIds).toEqual([1, 2, 3]);
    expect(nvme.queueEntries).toBe(1024);
    expect(nvme.namespaces().map((n) => [n.namespaceId, n.blockBytes, n.sizeBlocks])).toEqual([
      [1, 512, (64 * MiB) / 512],
      [2, 4096, (32 * MiB) / 4096],
    ]);
    // Every I/O vector is routed to a CPU of its own, round robin.
    const targets = [1, 2, 3].map((v) =>
      machine.intc.statistics([machine.controllers[0].irqs[v]])[0].targetCpu
    );
    expect(targets).toEqual([0, 1, 2]);
  });

  it("identifies the controller and its namespaces, and reads an inactive namespace as empty", async () => {
    const { nvme } = await start();
    const ctrl = await nvme.identifyController();
    expect(ctrl).toMatchObject({
      serial: "ASTRA-NVME-0001",
      model: "AstraLisp NVMe SSD",
      firmware: "1.0",
      maxTransferBytes: 1024 * 1024,
      namespaceCount: 16,
      submissionEntryBytes: 64,
      completionEntryBytes: 16,
      volatileWriteCache: true,
    });
    expect(ctrl.raw.length).toBe(4096);
    const ns2 = await nvme.identifyNamespace(2);
    expect(ns2.blockBytes).toBe(4096);
    expect(ns2.lbaFormats.map((f) => [f.dataBytes, f.inUse])).toEqual([[512, false], [4096, true]]);
    expect((await nvme.identifyNamespace(7)).sizeBlocks).toBe(0);
    expect((await nvme.enumerateNamespaces()).map((n) => n.namespaceId)).toEqual([1, 2]);
    await expectFailure(nvme.identifyNamespace(0), Code.INVALID_ARGUMENT, Errno.EINVAL);
  });

  it("works with a doorbell stride and with fewer vectors than queues", async () => {
    const { nvme } = await start({ ioQueues: 6 }, { doorbellStride: 3, vectors: 3 });
    expect(nvme.ioQueueIds).toEqual([1, 2, 3, 4, 5, 6]);
    const data = pattern(8192, 1);
    await Promise.all(nvme.ioQueueIds.map((q) => nvme.write(1, q * 16, data, { queueId: q })));
    for (const q of nvme.ioQueueIds) expectBytes(await nvme.read(1, q * 16, 16, { queueId: q }), data);
  });
});

describe("NVMe driver: data transfer", () => {
  const lengths = [1, 2, 3, 8, 9, 63, 256, 2048, 2049, 6000];
  for (const nsid of [1, 2]) {
    it(`reads and writes whole blocks of namespace ${nsid} for many lengths and offsets`, async () => {
      const { nvme, disks } = await start();
      const ns = nvme.namespace(nsid);
      let lba = 3;
      for (const [i, blocks] of lengths.entries()) {
        const count = Math.min(blocks, Math.floor((ns.sizeBlocks - lba) / 2));
        const data = pattern(count * ns.blockBytes, i + nsid * 17);
        expect(await nvme.write(nsid, lba, data)).toBe(count);
        expectBytes(await disks.get(nsid)!.read(lba, count), data);
        expectBytes(await nvme.read(nsid, lba, count), data);
        lba += count + 5;
      }
      // The last blocks of the namespace.
      const tail = pattern(ns.blockBytes * 4, 99);
      await nvme.write(nsid, ns.sizeBlocks - 4, tail);
      expectBytes(await nvme.read(nsid, ns.sizeBlocks - 4, 4), tail);
    });
  }

  it("describes large transfers with chained PRP lists when MDTS allows them", async () => {
    const { nvme, disks } = await start({}, { maxTransferLog2: 12 });
    expect(nvme.controllerData!.maxTransferBytes).toBe(16 * MiB);
    // 1025 pages: PRP1 and 1024 list entries over three list pages (511 + 511 + 2).
    const data = pattern(1025 * 4096, 5);
    await nvme.write(1, 0, data);
    expectBytes(await disks.get(1)!.read(0, data.length / 512), data);
    expectBytes(await nvme.read(1, 0, data.length / 512), data);
  });

  it("splits a transfer beyond MDTS into several commands", async () => {
    const { nvme, machine } = await start();
    const before = machine.nvme!.statistics().ioCommands;
    const data = pattern(3 * MiB + 4096, 6);
    await nvme.write(1, 100, data);
    expectBytes(await nvme.read(1, 100, data.length / 512), data);
    expect(machine.nvme!.statistics().ioCommands - before).toBe(8);
  });

  it("refuses ranges beyond the namespace, partial blocks and unknown namespaces", async () => {
    const { nvme } = await start();
    const blocks = nvme.namespace(1).sizeBlocks;
    await expectFailure(nvme.read(1, blocks - 1, 2), Code.OUT_OF_RANGE, Errno.ENXIO);
    await expectFailure(nvme.read(1, 0, 0), Code.INVALID_ARGUMENT, Errno.EINVAL);
    await expectFailure(nvme.write(2, 0, new Uint8Array(512)), Code.INVALID_ARGUMENT, Errno.EINVAL);
    await expectFailure(nvme.read(9, 0, 1), Code.NOT_FOUND, Errno.ENODEV);
  });

  it("makes FUA writes durable at once and flushes the write cache on Flush", async () => {
    const { nvme, disks } = await start();
    const disk = disks.get(1)!;
    await nvme.write(1, 10, pattern(4096, 1));
    expect(disk.statistics().unflushedWrites).toBe(1);
    const syncs = disk.statistics().syncs;
    // The drive puts its whole cache on the medium for a FUA write, as many do.
    await nvme.write(1, 20, pattern(4096, 2), { fua: true });
    expect(disk.statistics()).toMatchObject({ unflushedWrites: 0, syncs: syncs + 1 });
    await nvme.write(1, 30, pattern(4096, 3));
    expect(disk.statistics().unflushedWrites).toBe(1);
    await nvme.flush(1);
    expect(disk.statistics()).toMatchObject({ unflushedWrites: 0, syncs: syncs + 2 });
  });
});

describe("NVMe driver: queues", () => {
  it("wraps small queues around many times with commands in flight", async () => {
    const { nvme, disks } = await start({ ioQueues: 1, queueEntries: 8 });
    expect(nvme.queueEntries).toBe(8);
    const writes = Array.from({ length: 100 }, (_, i) => nvme.write(1, i * 8, pattern(4096, i)));
    await Promise.all(writes);
    for (let i = 0; i < 100; i++) expectBytes(await disks.get(1)!.read(i * 8, 8), pattern(4096, i));
    const reads = await Promise.all(Array.from({ length: 100 }, (_, i) => nvme.read(1, i * 8, 8)));
    reads.forEach((r, i) => expectBytes(r, pattern(4096, i)));
    expect(nvme.queueDepths().find((q) => q.queueId === 1)).toMatchObject({ inflight: 0, pending: 0 });
  });

  it("uses many queue pairs at once, each completion queue on its own vector", async () => {
    const rig = await start({ ioQueues: 8 });
    const { nvme, machine } = rig;
    const before = [1, 2, 3, 4, 5, 6, 7, 8].map((v) => machine.intc.statistics([vectorIrq(rig, v)])[0].count);
    await Promise.all(
      nvme.ioQueueIds.flatMap((q) =>
        Array.from(
          { length: 16 },
          (_, i) => nvme.write(1, q * 1000 + i * 8, pattern(4096, q * 16 + i), { queueId: q }),
        )
      ),
    );
    const reads = await Promise.all(
      nvme.ioQueueIds.flatMap((q) =>
        Array.from({ length: 16 }, (_, i) => nvme.read(1, q * 1000 + i * 8, 8, { queueId: q }))
      ),
    );
    reads.forEach((r, k) => expectBytes(r, pattern(4096, (Math.floor(k / 16) + 1) * 16 + (k % 16))));
    const after = [1, 2, 3, 4, 5, 6, 7, 8].map((v) => machine.intc.statistics([vectorIrq(rig, v)])[0].count);
    after.forEach((n, v) => expect(n, `vector ${v + 1}`).toBeGreaterThan(before[v]));
  });

  it("creates and deletes I/O queues, moving work off a deleted queue", async () => {
    const { nvme } = await start({ ioQueues: 2 });
    const created = await nvme.createQueue(5, 16, 1);
    expect(created.submissionQueue % 4096).toBe(0);
    expect(created.completionQueue % 4096).toBe(0);
    expect(nvme.ioQueueIds).toEqual([1, 2, 5]);
    const data = pattern(4096, 8);
    await nvme.write(1, 40, data, { queueId: 5 });
    expectBytes(await nvme.read(1, 40, 8, { queueId: 5 }), data);
    await expectFailure(nvme.createQueue(5, 16, 1), Code.INVALID_ARGUMENT, Errno.EEXIST);
    await expectFailure(nvme.createQueue(500, 16, 1), Code.INVALID_ARGUMENT, Errno.EINVAL);
    await expectFailure(nvme.createQueue(6, 16, 99), Code.INVALID_ARGUMENT, Errno.EINVAL);

    // Reads in flight everywhere while queue 5 goes away: every one of them completes.
    const reads = Array.from({ length: 64 }, () => nvme.read(1, 40, 8));
    await nvme.deleteQueue(5);
    for (const r of await Promise.all(reads)) expectBytes(r, data);
    expect(nvme.ioQueueIds).toEqual([1, 2]);
    await expectFailure(nvme.read(1, 40, 8, { queueId: 5 }), Code.NOT_FOUND, Errno.ENOENT);
    await expectFailure(nvme.deleteQueue(5), Code.NOT_FOUND, Errno.ENOENT);
    await nvme.deleteQueue(2);
    await expectFailure(nvme.deleteQueue(1), Code.INVALID_ARGUMENT, Errno.EBUSY);
  });

  it("runs raw admin and I/O commands and reports their completion entries", async () => {
    const { nvme } = await start();
    const cid = await nvme.submitCommand(
      0,
      { opcode: 0x06, namespaceId: 0, commandDwords: [1] },
      new Uint8Array(0),
      4096,
    );
    const identify = await nvme.waitCompletion(0, cid, 1000);
    expect(identify.completion.status).toBe(SC_SUCCESS);
    expect(identify.data!.length).toBe(4096);
    expect(String.fromCharCode(...identify.data!.subarray(24, 42))).toBe("AstraLisp NVMe SSD");

    const payload = pattern(512, 4);
    const write = await nvme.submitCommand(
      1,
      { opcode: 0x01, namespaceId: 1, commandDwords: [77, 0, 0] },
      payload,
      0,
    );
    expect((await nvme.waitCompletion(1, write, 1000)).completion.status).toBe(SC_SUCCESS);
    expectBytes(await nvme.read(1, 77, 1), payload);

    // An unknown opcode completes with Invalid Opcode and Do Not Retry.
    const bad = await nvme.submitCommand(
      1,
      { opcode: 0x7f, namespaceId: 1, commandDwords: [] },
      new Uint8Array(0),
      0,
    );
    const done = await nvme.waitCompletion(1, bad, 1000);
    expect(done.completion).toMatchObject({ statusCodeType: 0, statusCode: 1, doNotRetry: true });
    expect(done.completion.entry.length).toBe(16);
    await expectFailure(nvme.waitCompletion(1, bad, 10), Code.NOT_FOUND, Errno.ENOENT);
  });
});

describe("NVMe driver: errors, timeouts and resets", () => {
  it("retries a transient media error and succeeds", async () => {
    const { nvme, disks } = await start();
    await nvme.write(1, 300, pattern(4096, 3));
    disks.get(1)!.injectFault({ kind: "media-error", lbaFirst: 302, lbaCount: 1, count: 1 });
    expectBytes(await nvme.read(1, 300, 8), pattern(4096, 3));
    expect(nvme.statistics()).toMatchObject({ retries: 1, errors: 0 });
  });

  it("reports a persistent media error as EIO with the LBA, after three retries", async () => {
    const { nvme, disks } = await start();
    disks.get(1)!.injectFault({ kind: "media-error", lbaFirst: 500, lbaCount: 4 });
    const err = await expectFailure(nvme.read(1, 498, 8), Code.DATA_LOSS, Errno.EIO);
    expect(err.detail.facts).toMatchObject({ lba: "498", namespace: "1", status: "0x281", attempts: "4" });
    expect(nvme.statistics()).toMatchObject({ retries: 3, errors: 1 });
    const write = await expectFailure(nvme.write(1, 500, new Uint8Array(512)), Code.DATA_LOSS, Errno.EIO);
    expect(write.detail.facts.status).toBe("0x280");
  });

  it("aborts a command that outlives its timeout and retries it", async () => {
    const { nvme, disks } = await start({ commandTimeoutMs: 100 });
    await nvme.write(1, 64, pattern(4096, 9));
    disks.get(1)!.injectFault({ kind: "command-timeout", lbaFirst: 64, lbaCount: 1, count: 1 });
    const started = performance.now();
    expectBytes(await nvme.read(1, 64, 8), pattern(4096, 9));
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    expect(nvme.statistics()).toMatchObject({ timeouts: 1, aborts: 1, retries: 1, resets: 0 });
  });

  it("fails a command that never completes with ETIMEDOUT, and keeps serving others", async () => {
    const { nvme, disks } = await start({ commandTimeoutMs: 60 });
    disks.get(1)!.injectFault({ kind: "command-timeout", lbaFirst: 1000, lbaCount: 8 });
    const hung = nvme.read(1, 1000, 8);
    const data = pattern(512, 1);
    await nvme.write(1, 0, data);
    expectBytes(await nvme.read(1, 0, 1), data);
    const err = await expectFailure(hung, Code.DEADLINE_EXCEEDED, Errno.ETIMEDOUT);
    expect(err.detail.facts).toMatchObject({ lba: "1000", attempts: "4" });
    expect(nvme.statistics().timeouts).toBe(4);
  });

  it("resets the controller with I/O in flight and resubmits it", async () => {
    const { nvme, disks } = await start();
    const disk = disks.get(1)!;
    for (let i = 0; i < 16; i++) await disk.write(i * 8, pattern(4096, 40 + i));
    // Some reads hang inside the controller until the reset takes them away.
    disk.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 32, count: 4 });
    const reads = Array.from({ length: 16 }, (_, i) => nvme.read(1, i * 8, 8));
    const writes = Array.from({ length: 16 }, (_, i) => nvme.write(1, 4096 + i * 8, pattern(4096, 60 + i)));
    await new Promise((r) => setTimeout(r, 20));
    const resubmitted = await nvme.resetController();
    expect(resubmitted).toBeGreaterThanOrEqual(4);
    (await Promise.all(reads)).forEach((r, i) => expectBytes(r, pattern(4096, 40 + i)));
    await Promise.all(writes);
    for (let i = 0; i < 16; i++) expectBytes(await nvme.read(1, 4096 + i * 8, 8), pattern(4096, 60 + i));
    expect(nvme.statistics()).toMatchObject({ resets: 1 });
    expect(nvme.live).toBe(true);
  });

  it("recovers from a fatal controller status with a reset", async () => {
    const { nvme, machine } = await start({ commandTimeoutMs: 80 });
    const data = pattern(4096, 12);
    await nvme.write(1, 8, data);
    machine.nvme!.injectFatal();
    expectBytes(await nvme.read(1, 8, 8), data);
    expect(nvme.statistics().resets).toBe(1);
  });

  it("finds completions whose interrupt was lost", async () => {
    const rig = await start({ ioQueues: 1, commandTimeoutMs: 80 });
    rig.machine.intc.mask(vectorIrq(rig, 1));
    const data = pattern(4096, 13);
    await rig.nvme.write(1, 8, data);
    expectBytes(await rig.nvme.read(1, 8, 8), data);
    expect(rig.nvme.statistics()).toMatchObject({ aborts: 0, resets: 0 });
  });
});

describe("NVMe driver: batching", () => {
  it("rings the tail doorbell once for the commands that one burst of completions sets off", async () => {
    const { machine } = nvmeMachine();
    const hw = machine.hardware();
    const [info] = await hw.controllers();
    const sqDoorbell = info.mmioBase + 0x1000 + 2 * 1 * 4;
    let rings = 0;
    const access = hw.access.bind(hw);
    hw.access = (accesses) => {
      for (const a of accesses) if (a.op === "write32" && a.address === sqDoorbell) rings++;
      return access(accesses);
    };
    const nvme = new NvmeDriver(hw, info, { ioQueues: 1 });
    await nvme.init();
    try {
      const before = nvme.statistics();
      // 16 callers, each reading 10 times in a row: every completion burst wakes all of them.
      await Promise.all(Array.from({ length: 16 }, async (_, i) => {
        for (let k = 0; k < 10; k++) await nvme.read(1, (i * 10 + k) * 8, 8);
      }));
      const after = nvme.statistics();
      expect(after.completions - before.completions).toBe(160);
      expect(rings).toBeLessThanOrEqual(12);
      expect(after.interrupts - before.interrupts).toBeLessThanOrEqual(12);
    } finally {
      await nvme.close();
    }
  });
});

describe("NVMe driver: interrupt coalescing", () => {
  const getCoalescing = async (nvme: NvmeDriver) => {
    const cid = await nvme.submitCommand(
      0,
      { opcode: 0x0a, namespaceId: 0, commandDwords: [0x08] },
      new Uint8Array(0),
      0,
    );
    const done = await nvme.waitCompletion(0, cid, 1000);
    expect(done.completion.status).toBe(SC_SUCCESS);
    return done.completion.result;
  };

  it("leaves it off unless asked, and sets it as asked, again after a reset", async () => {
    expect(await getCoalescing((await start()).nvme)).toBe(0);
    const { nvme } = await start({ interruptCoalescing: { threshold: 8, timeMicros: 250 } });
    // 8 entries is 7 in the 0's based threshold; 250 µs rounds up to 3 × 100 µs.
    expect(await getCoalescing(nvme)).toBe((3 << 8) | 7);
    await nvme.resetController();
    expect(await getCoalescing(nvme)).toBe((3 << 8) | 7);
    const data = pattern(4096, 21);
    await nvme.write(1, 16, data);
    expectBytes(await nvme.read(1, 16, 8), data);
  });

  it("refuses settings the feature cannot hold", () => {
    const { machine } = nvmeMachine();
    const info = machine.controllers[0];
    const hw = machine.hardware();
    for (
      const interruptCoalescing of [{ threshold: 0, timeMicros: 100 }, { threshold: 8, timeMicros: 30_000 }]
    ) {
      expect(() => new NvmeDriver(hw, info, { interruptCoalescing })).toThrow(/interrupt coalescing/);
    }
  });

  it("at queue depth 1 delays a completion by the aggregation time, no more", async () => {
    const { nvme } = await start({ ioQueues: 1, interruptCoalescing: { threshold: 32, timeMicros: 3000 } });
    await nvme.write(1, 0, pattern(4096, 22));
    const before = nvme.statistics();
    const latencies: number[] = [];
    for (let i = 0; i < 8; i++) {
      const started = performance.now();
      await nvme.read(1, 0, 8);
      latencies.push(performance.now() - started);
    }
    // Each read waits for its interrupt, held back 3 ms as no more completions come; the watchdog
    // would only have found it after 20 ms.
    expect(Math.min(...latencies)).toBeGreaterThanOrEqual(2.9);
    expect(Math.max(...latencies)).toBeLessThan(3 + 15);
    const after = nvme.statistics();
    expect(after.interrupts - before.interrupts).toBeGreaterThanOrEqual(8);
    expect(after.timeouts).toBe(0);
  });

  it("at high queue depth takes many completions per interrupt", async () => {
    const { nvme } = await start({ ioQueues: 1, interruptCoalescing: { threshold: 16, timeMicros: 1000 } });
    const before = nvme.statistics();
    await Promise.all(Array.from({ length: 64 }, (_, i) => nvme.read(1, i * 8, 8)));
    const after = nvme.statistics();
    expect(after.completions - before.completions).toBe(64);
    expect(after.interrupts - before.interrupts).toBeLessThanOrEqual(64 / 16);
  });
});

describe("NVMe driver: without interrupts", () => {
  it("initialises, moves data and resets by polling when interrupt delivery is disabled", async () => {
    const { machine } = nvmeMachine();
    machine.intc.disable();
    const hw = machine.hardware();
    const nvme = new NvmeDriver(hw, (await hw.controllers())[0], { commandTimeoutMs: 5000 });
    open.push({ machine, disks: new Map(), nvme });
    await nvme.init();
    const data = pattern(8192, 14);
    await nvme.write(1, 16, data);
    expectBytes(await nvme.read(1, 16, 16), data);
    expect(await nvme.resetController()).toBe(0);
    expectBytes(await nvme.read(1, 16, 16), data);
    expect(nvme.statistics()).toMatchObject({ timeouts: 0, aborts: 0 });
  });
});

describe("NVMe driver: namespace hot plug", () => {
  it("reports a namespace attached and one pulled out with I/O in flight", async () => {
    const { nvme, machine, disks } = await start({ commandTimeoutMs: 5000 });
    const changes: { added: number[]; removed: number[] }[] = [];
    nvme.onNamespacesChanged = (c) =>
      changes.push({ added: c.added.map((n) => n.namespaceId), removed: c.removed });

    machine.nvme!.attachNamespace(3, DiskImage.memory({ sizeBytes: 8 * MiB, lbaSize: 4096 }));
    await until(() => changes.length === 1);
    expect(changes[0]).toEqual({ added: [3], removed: [] });
    expect(nvme.namespace(3).blockBytes).toBe(4096);
    await nvme.write(3, 1, pattern(4096, 2));

    disks.get(2)!.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 8 });
    const inflight = nvme.read(2, 0, 1);
    await new Promise((r) => setTimeout(r, 10));
    await machine.nvme!.detachNamespace(2, { surprise: true });
    await expectFailure(inflight, Code.FAILED_PRECONDITION, Errno.ENODEV);
    await until(() => changes.length === 2);
    expect(changes[1]).toEqual({ added: [], removed: [2] });
    await expectFailure(nvme.read(2, 0, 1), Code.NOT_FOUND, Errno.ENODEV);
  });
});

async function until(test: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!test()) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 2));
  }
}
