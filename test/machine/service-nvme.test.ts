// The NVMe controller driven by hand through the machine's contract, over both transports: admin
// queues built in guest memory with WritePhysical, the controller programmed with WriteMmio, the
// completion interrupt received on HandlerStream and the completion read with ReadPhysical —
// exactly what the storage service's driver does.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GuestAllocator,
  HandlerClient,
  KINDS,
  type MachineRig,
  NVME,
  NvmeDriver,
  PAGE,
  pattern,
  startMachine,
} from "./service-rig.ts";

describe.each(KINDS)("NVMe through the machine service over %s", (kind) => {
  let rig: MachineRig;

  beforeAll(async () => {
    rig = await startMachine(kind);
  });

  afterAll(async () => {
    await rig.stop();
  });

  it("delivers the completion interrupt of a hand-made Identify to the admin vector's handler", async () => {
    const adminIrq = rig.devices.nvme.irqs[0];
    const handler = await HandlerClient.open(rig.interrupts, adminIrq, "test:nvme0 admin");
    const memory = new GuestAllocator();
    const nvme = new NvmeDriver(rig.machine, rig.devices.nvme.base, memory);
    try {
      await nvme.enable();
      const buffer = memory.alloc(PAGE);
      await rig.machine.fillPhysical({ address: BigInt(buffer), length: BigInt(PAGE), value: 0xee });
      const cid = await nvme.submit(0, { opcode: NVME.ADMIN_IDENTIFY, prp1: buffer, cdw10: 1 });

      const delivery = await handler.next();
      expect(delivery.irq).toBe(adminIrq);
      expect(delivery.software).toBe(false);
      expect(delivery.nestingDepth).toBe(0);
      const completion = await nvme.peek(0);
      expect(completion).toEqual({ dw0: 0, sqid: 0, cid, status: 0 });
      await nvme.consume(0);
      handler.complete(delivery);

      const { data } = await rig.machine.readPhysical({ address: BigInt(buffer), length: BigInt(PAGE) });
      const text = (from: number, to: number) => new TextDecoder().decode(data.subarray(from, to)).trimEnd();
      expect(text(4, 24)).toBe("ASTRA-NVME-0001");
      expect(text(24, 64)).toBe("AstraLisp NVMe SSD");
      expect(new DataView(data.buffer, data.byteOffset).getUint32(516, true)).toBe(16);

      const [stats] = (await rig.interrupts.getStatistics({ irqs: [adminIrq] })).interrupts;
      expect(stats.handlers).toEqual(["test:nvme0 admin"]);
      expect(stats.count).toBe(1n);
      expect(stats.unhandled).toBe(0n);
      expect(stats.inService).toBe(false);
      expect(stats.timeInHandlerNanos).toBeGreaterThan(0n);
      expect(stats.lastDeliveryTimebase).toBeGreaterThan(0n);
      expect(stats.lastDeliveryUnixNanos).toBeGreaterThan(0n);

      // The namespaces: 64 MiB at 512 B and 64 MiB at 4 KiB, both active.
      const identify = async (cns: number, nsid: number) => {
        await nvme.submit(0, { opcode: NVME.ADMIN_IDENTIFY, nsid, prp1: buffer, cdw10: cns });
        const d = await handler.next();
        const c = await nvme.peek(0);
        await nvme.consume(0);
        handler.complete(d);
        expect(c?.status).toBe(0);
        const { data } = await rig.machine.readPhysical({ address: BigInt(buffer), length: BigInt(PAGE) });
        return new DataView(data.buffer, data.byteOffset, PAGE);
      };
      for (const [nsid, shift] of [[1, 9], [2, 12]]) {
        const ns = await identify(0, nsid);
        expect(Number(ns.getBigUint64(0, true))).toBe((64 * 1024 * 1024) >> shift);
        const format = ns.getUint8(26) & 0xf;
        expect((ns.getUint32(128 + 4 * format, true) >>> 16) & 0xff).toBe(shift);
      }
      const active = await identify(2, 0);
      expect([active.getUint32(0, true), active.getUint32(4, true), active.getUint32(8, true)]).toEqual([
        1,
        2,
        0,
      ]);
    } finally {
      await nvme.disable();
      handler.close();
      await handler.reader.ended();
    }
  });

  it("moves data on both namespaces through an I/O queue pair on its own vector", async () => {
    const ioIrq = rig.devices.nvme.irqs[1];
    const handler = await HandlerClient.open(rig.interrupts, ioIrq, "test:nvme0 io1");
    const memory = new GuestAllocator(24 * 1024 * 1024);
    const nvme = new NvmeDriver(rig.machine, rig.devices.nvme.base, memory);
    try {
      await nvme.enable();
      await nvme.createQueuePair(1, 16, 1);
      for (const [nsid, lbaSize] of [[1, 512], [2, 4096]]) {
        const data = pattern(2 * lbaSize, nsid);
        expect((await nvme.write(1, nsid, 10, data, lbaSize)).status).toBe(0);
        handler.complete(await handler.next());
        const read = await nvme.read(1, nsid, 10, 2, lbaSize);
        expect(read.completion.status).toBe(0);
        expect(new Uint8Array(read.data)).toEqual(data);
        handler.complete(await handler.next());
      }
      const [stats] = (await rig.interrupts.getStatistics({ irqs: [ioIrq] })).interrupts;
      expect(stats.count).toBe(4n);
    } finally {
      await nvme.disable();
      handler.close();
      await handler.reader.ended();
    }
  });
});
