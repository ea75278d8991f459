// The machine's disks through its contract, over both transports: the configured disks and their
// image files, hot plug with the AHCI port-change interrupt, NVMe namespaces coming and going, a
// power cut keeping exactly a prefix of the unflushed writes, injected faults as a driver sees
// them, and data that survives stopping and starting the machine on the same data folder.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DiskController, FaultKind, PowerCutMode } from "../../gen/astra/machine/v1/devices_pb.ts";
import { Code, Errno } from "../../lib/errors.ts";
import {
  AHCI,
  failure,
  GuestAllocator,
  HandlerClient,
  KINDS,
  type MachineRig,
  MIB,
  NVME,
  NvmeDriver,
  PAGE,
  pattern,
  readMmio32,
  sleep,
  startMachine,
  writeMmio32,
} from "./service-rig.ts";

const AHCI_PORT = (port: number) => ({ controller: DiskController.AHCI, port });
const NVME_NS = (namespaceId: number) => ({ controller: DiskController.NVME, namespaceId });

describe.each(KINDS)("disks over %s", (kind) => {
  let rig: MachineRig;

  beforeEach(async () => {
    rig = await startMachine(kind);
  });

  afterEach(async () => {
    await rig.stop();
  });

  const ahciReg = (offset: number) => readMmio32(rig.machine, rig.devices.ahci.base + BigInt(offset));
  const setAhciReg = (offset: number, value: number) =>
    writeMmio32(rig.machine, rig.devices.ahci.base + BigInt(offset), value);

  /** An NVMe driver with its admin queues and one I/O queue pair up. */
  async function nvmeReady(): Promise<NvmeDriver> {
    const nvme = new NvmeDriver(rig.machine, rig.devices.nvme.base, new GuestAllocator());
    await nvme.enable();
    await nvme.createQueuePair(1, 32, 1);
    return nvme;
  }

  it("has the configured disks on sparse image files in the data folder", async () => {
    const { disks } = await rig.machine.listDisks({});
    expect(disks.map((d) => [d.location!.controller, d.location!.port, d.location!.namespaceId, d.lbaSize]))
      .toEqual([
        [DiskController.AHCI, 0, 0, 512],
        [DiskController.AHCI, 1, 0, 512],
        [DiskController.NVME, 0, 1, 512],
        [DiskController.NVME, 0, 2, 4096],
      ]);
    expect(disks.map((d) => d.imagePath)).toEqual(
      ["sata0.img", "sata1.img", "nvme0n1.img", "nvme0n2.img"].map((f) => `${rig.dataDir}/disks/${f}`),
    );
    for (const d of disks) {
      expect(d.sizeBytes).toBe(BigInt(64 * MIB));
      expect(d.lbaCount).toBe(BigInt(64 * MIB / d.lbaSize));
      const stat = await Deno.stat(d.imagePath);
      expect(stat.size).toBe(64 * MIB);
      expect((stat.blocks ?? 0) * 512).toBeLessThan(MIB);
    }
  });

  it("hot-plugs a SATA disk with the port-change interrupt, and pulls it with PRCS", async () => {
    const handler = await HandlerClient.open(rig.interrupts, rig.devices.ahci.irq, "test:ahci0");
    try {
      await setAhciReg(AHCI.port(2, AHCI.PX_SERR), 0xffff_ffff);
      await setAhciReg(AHCI.port(2, AHCI.PX_IS), 0xffff_ffff);
      await setAhciReg(AHCI.port(2, AHCI.PX_IE), AHCI.PXIS_PCS | AHCI.PXIS_PRCS);
      await setAhciReg(AHCI.GHC, AHCI.GHC_IE);
      await handler.reader.nothingFor(20);

      const { disk } = await rig.machine.attachDisk({ location: AHCI_PORT(2), sizeBytes: BigInt(16 * MIB) });
      expect(disk).toMatchObject({
        imagePath: `${rig.dataDir}/disks/sata2.img`,
        lbaSize: 512,
        lbaCount: 32768n,
      });
      const plugged = await handler.next();
      expect(plugged.irq).toBe(rig.devices.ahci.irq);
      expect(await ahciReg(AHCI.IS)).toBe(1 << 2);
      expect(await ahciReg(AHCI.port(2, AHCI.PX_IS)) & (AHCI.PXIS_PCS | AHCI.PXIS_PRCS)).toBe(
        AHCI.PXIS_PCS | AHCI.PXIS_PRCS,
      );
      expect(await ahciReg(AHCI.port(2, AHCI.PX_SSTS))).toBe(0x133);
      // The driver's handler: clear the cause (PxSERR), then PxIS and IS.
      await setAhciReg(AHCI.port(2, AHCI.PX_SERR), 0xffff_ffff);
      await setAhciReg(AHCI.port(2, AHCI.PX_IS), 0xffff_ffff);
      await setAhciReg(AHCI.IS, 1 << 2);
      handler.complete(plugged);

      expect(await rig.machine.detachDisk({ location: AHCI_PORT(2) })).toMatchObject({
        writesFlushed: 0n,
        writesLost: 0n,
      });
      const pulled = await handler.next();
      expect(await ahciReg(AHCI.port(2, AHCI.PX_IS)) & (AHCI.PXIS_PCS | AHCI.PXIS_PRCS)).toBe(AHCI.PXIS_PRCS);
      expect(await ahciReg(AHCI.port(2, AHCI.PX_SSTS))).toBe(0);
      handler.complete(pulled);
      expect((await rig.machine.listDisks({})).disks.some((d) => d.location!.port === 2)).toBe(false);

      // The image stays, and comes back at its size when attached with none.
      const again = await rig.machine.attachDisk({ location: AHCI_PORT(3), imagePath: "disks/sata2.img" });
      expect(again.disk!.sizeBytes).toBe(BigInt(16 * MIB));
    } finally {
      handler.close();
      await handler.reader.ended();
    }
  });

  it("validates every argument of AttachDisk and DetachDisk", async () => {
    const attach = (init: Parameters<typeof rig.machine.attachDisk>[0]) => rig.machine.attachDisk(init);
    await failure(
      attach({ sizeBytes: BigInt(MIB) }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "location.controller",
    );
    await failure(
      attach({ location: AHCI_PORT(4), sizeBytes: BigInt(MIB) }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "location.port",
    );
    await failure(
      attach({ location: NVME_NS(0), sizeBytes: BigInt(MIB) }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "location.namespace_id",
    );
    await failure(
      attach({ location: NVME_NS(17), sizeBytes: BigInt(MIB) }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "location.namespace_id",
    );
    await failure(
      attach({ location: AHCI_PORT(0), sizeBytes: BigInt(MIB) }),
      Code.ALREADY_EXISTS,
      Errno.EBUSY,
      "location",
    );
    await failure(
      attach({ location: AHCI_PORT(2), sizeBytes: BigInt(MIB), lbaSize: 1024 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "lba_size",
    );
    await failure(
      attach({ location: AHCI_PORT(2), sizeBytes: 1000n }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "size_bytes",
    );
    await failure(
      attach({ location: NVME_NS(3), sizeBytes: 4096n + 512n, lbaSize: 4096 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "size_bytes",
    );
    await failure(attach({ location: AHCI_PORT(2) }), Code.NOT_FOUND, Errno.ENOENT, "size_bytes");
    await failure(
      attach({ location: AHCI_PORT(2), imagePath: "disks/nvme0n1.img" }),
      Code.ALREADY_EXISTS,
      Errno.EBUSY,
      "image_path",
    );
    await failure(
      attach({ location: AHCI_PORT(2), imagePath: "no/such/folder/../../../disks", sizeBytes: BigInt(MIB) }),
      Code.INVALID_ARGUMENT,
      Errno.EISDIR,
      "image_path",
    );
    await failure(
      attach({ location: AHCI_PORT(2), imagePath: `${rig.dataDir}-missing/x.img`, sizeBytes: BigInt(MIB) }),
      Code.NOT_FOUND,
      Errno.ENOENT,
      "image_path",
    );
    await rig.machine.attachDisk({ location: AHCI_PORT(2), sizeBytes: BigInt(MIB) });
    await rig.machine.detachDisk({ location: AHCI_PORT(2) });
    await failure(
      attach({ location: AHCI_PORT(2), sizeBytes: BigInt(2 * MIB) }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "size_bytes",
    );
    await failure(
      rig.machine.detachDisk({ location: AHCI_PORT(3) }),
      Code.NOT_FOUND,
      Errno.ENODEV,
      "location",
    );
    await failure(rig.machine.detachDisk({}), Code.INVALID_ARGUMENT, Errno.EINVAL, "location.controller");
  });

  it("brings an NVMe namespace and takes it away by surprise, losing its unflushed writes", async () => {
    const nvme = await nvmeReady();
    const { disk } = await rig.machine.attachDisk({
      location: NVME_NS(3),
      imagePath: "extra/ns3.img",
      sizeBytes: BigInt(8 * MIB),
      lbaSize: 4096,
    });
    expect(disk).toMatchObject({ imagePath: `${rig.dataDir}/extra/ns3.img`, lbaCount: 2048n });
    const buffer = nvme.memory.alloc(PAGE);
    expect((await nvme.run(0, { opcode: NVME.ADMIN_IDENTIFY, prp1: buffer, cdw10: 2 })).status).toBe(0);
    const list = (await rig.machine.readPhysical({ address: BigInt(buffer), length: 16n })).data;
    expect([...new Uint32Array(new Uint8Array(list).buffer)]).toEqual([1, 2, 3, 0]);

    for (let i = 0; i < 3; i++) expect((await nvme.write(1, 3, i, pattern(4096, i), 4096)).status).toBe(0);
    expect(
      (await rig.machine.listDisks({})).disks.find((d) => d.location!.namespaceId === 3)!.unflushedWrites,
    ).toBe(3n);
    expect(await rig.machine.detachDisk({ location: NVME_NS(3), surprise: true })).toMatchObject({
      writesFlushed: 0n,
      writesLost: 3n,
    });
    const read = await nvme.read(1, 3, 0, 1, 4096);
    expect(read.completion.status).toBe(0x00b); // invalid namespace
    const stat = await Deno.stat(`${rig.dataDir}/extra/ns3.img`);
    expect(stat.size).toBe(8 * MIB);
  });

  it("keeps exactly the chosen prefix of the unflushed writes on a power cut", async () => {
    const nvme = await nvmeReady();
    const writes = [0, 1, 2, 3, 4].map((i) => pattern(512, 10 + i));
    for (const [i, data] of writes.entries()) {
      expect((await nvme.write(1, 1, 100 + i, data, 512)).status).toBe(0);
    }
    expect((await rig.machine.listDisks({})).disks[2]).toMatchObject({
      unflushedWrites: 5n,
      unflushedBytes: 2560n,
    });

    const cut = await rig.machine.powerCut({
      location: NVME_NS(1),
      mode: PowerCutMode.PREFIX,
      prefixWrites: 2n,
    });
    expect(cut).toMatchObject({ writesPersisted: 2n, writesLost: 3n, torn: false });
    expect(cut.seed).toBeGreaterThan(0n);
    expect(cut.disks.map((d) => [d.location!.namespaceId, d.writesPersisted, d.writesLost])).toEqual([[
      1,
      2n,
      3n,
    ]]);
    expect((await rig.machine.listDisks({})).disks[2].unflushedWrites).toBe(0n);
    const after = await nvme.read(1, 1, 100, 5, 512);
    for (let i = 0; i < 5; i++) {
      const block = new Uint8Array(after.data.subarray(i * 512, (i + 1) * 512));
      expect(block).toEqual(i < 2 ? writes[i] : new Uint8Array(512));
    }

    // Torn: the last surviving write reaches the image only partly, in its last sector.
    const torn = [0, 1, 2].map((i) => pattern(1024, 20 + i));
    for (const [i, data] of torn.entries()) {
      expect((await nvme.write(1, 1, 200 + 2 * i, data, 512)).status).toBe(0);
    }
    const tear = await rig.machine.powerCut({
      location: NVME_NS(1),
      mode: PowerCutMode.PREFIX,
      prefixWrites: 2n,
      seed: 42n,
      tearSector: true,
    });
    expect(tear).toMatchObject({ writesPersisted: 2n, writesLost: 1n, torn: true, tornLba: 203n, seed: 42n });
    const tornBytes = tear.disks[0].tornBytes;
    expect(tornBytes).toBeGreaterThan(0);
    expect(tornBytes).toBeLessThan(512);
    const image = new Uint8Array((await nvme.read(1, 1, 200, 6, 512)).data);
    expect(image.subarray(0, 1024)).toEqual(torn[0]);
    expect(image.subarray(1024, 1536)).toEqual(torn[1].subarray(0, 512));
    expect(image.subarray(1536, 1536 + tornBytes)).toEqual(torn[1].subarray(512, 512 + tornBytes));
    expect(image.subarray(1536 + tornBytes, 3072)).toEqual(new Uint8Array(3072 - 1536 - tornBytes));

    // Every disk at once, with a drawn prefix that the reported seed replays.
    await nvme.write(1, 2, 0, pattern(4096, 1), 4096);
    const all = await rig.machine.powerCut({ mode: PowerCutMode.RANDOM_PREFIX, seed: 7n });
    expect(all.disks.map((d) => [d.location!.controller, d.seed])).toEqual([
      [DiskController.AHCI, 7n],
      [DiskController.AHCI, 8n],
      [DiskController.NVME, 9n],
      [DiskController.NVME, 10n],
    ]);
    expect(all.writesPersisted + all.writesLost).toBe(1n);

    await failure(
      rig.machine.powerCut({ location: NVME_NS(1) }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "mode",
    );
    await failure(
      rig.machine.powerCut({ location: NVME_NS(5), mode: PowerCutMode.LOSE_ALL }),
      Code.NOT_FOUND,
      Errno.ENODEV,
      "location",
    );
    await failure(
      rig.machine.powerCut({ mode: PowerCutMode.LOSE_ALL, seed: 1n << 60n }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "seed",
    );
  });

  it("fails commands on an injected media error and clears it, transiently or on request", async () => {
    const nvme = await nvmeReady();
    const { faultId } = await rig.machine.injectFault({
      location: NVME_NS(1),
      kind: FaultKind.MEDIA_ERROR,
      lbaFirst: 500n,
      lbaCount: 4n,
    });
    expect((await nvme.read(1, 1, 502, 1, 512)).completion.status).toBe(NVME.SC_UNRECOVERED_READ_ERROR);
    expect((await nvme.read(1, 1, 504, 1, 512)).completion.status).toBe(0);
    const listed = (await rig.machine.listDisks({})).disks[2];
    expect(listed.errors).toBe(1n);
    expect(listed.faults).toEqual([
      expect.objectContaining({
        faultId,
        kind: FaultKind.MEDIA_ERROR,
        lbaFirst: 500n,
        lbaCount: 4n,
        remaining: 0,
        triggered: 1n,
      }),
    ]);
    await failure(
      rig.machine.clearFaults({ location: NVME_NS(2), faultId }),
      Code.NOT_FOUND,
      Errno.ENOENT,
      "fault_id",
    );
    expect((await rig.machine.clearFaults({ location: NVME_NS(1), faultId })).cleared).toBe(1);
    expect((await nvme.read(1, 1, 502, 1, 512)).completion.status).toBe(0);

    // A transient fault fails once and goes by itself.
    const transient = await rig.machine.injectFault({
      location: NVME_NS(2),
      kind: FaultKind.MEDIA_ERROR,
      lbaFirst: 7n,
      lbaCount: 1n,
      count: 1,
    });
    expect((await nvme.read(1, 2, 7, 1, 4096)).completion.status).toBe(NVME.SC_UNRECOVERED_READ_ERROR);
    expect((await nvme.read(1, 2, 7, 1, 4096)).completion.status).toBe(0);
    expect((await rig.machine.listDisks({})).disks[3].faults).toEqual([]);
    expect((await rig.machine.clearFaults({ faultId: transient.faultId })).cleared).toBe(0);
    await failure(rig.machine.clearFaults({ faultId: 1_000_000n }), Code.NOT_FOUND, Errno.ENOENT, "fault_id");

    // Faults on several disks, cleared all at once.
    for (const location of [AHCI_PORT(0), AHCI_PORT(1)]) {
      await rig.machine.injectFault({ location, kind: FaultKind.MEDIA_ERROR, lbaFirst: 0n, lbaCount: 1n });
    }
    expect((await rig.machine.clearFaults({})).cleared).toBe(2);

    const inject = (init: Parameters<typeof rig.machine.injectFault>[0]) => rig.machine.injectFault(init);
    await failure(inject({ location: NVME_NS(1) }), Code.INVALID_ARGUMENT, Errno.EINVAL, "kind");
    await failure(
      inject({ kind: FaultKind.MEDIA_ERROR, lbaCount: 1n }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "location.controller",
    );
    await failure(
      inject({ location: NVME_NS(1), kind: FaultKind.MEDIA_ERROR }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "lba_count",
    );
    await failure(
      inject({ location: NVME_NS(2), kind: FaultKind.COMMAND_TIMEOUT, lbaFirst: 16383n, lbaCount: 2n }),
      Code.OUT_OF_RANGE,
      Errno.ENXIO,
      "lba_first",
    );
    await failure(
      inject({ location: AHCI_PORT(3), kind: FaultKind.MEDIA_ERROR, lbaCount: 1n }),
      Code.NOT_FOUND,
      Errno.ENODEV,
      "location",
    );
  });

  it("holds a command forever on an injected timeout", async () => {
    const nvme = await nvmeReady();
    await rig.machine.injectFault({
      location: NVME_NS(1),
      kind: FaultKind.COMMAND_TIMEOUT,
      lbaFirst: 9n,
      lbaCount: 1n,
    });
    await nvme.submit(1, { opcode: NVME.NVM_READ, nsid: 1, prp1: nvme.memory.alloc(PAGE), cdw10: 9 });
    await sleep(50);
    expect(await nvme.peek(1)).toBe(null);
    expect((await rig.machine.listDisks({})).disks[2].timeouts).toBe(1n);
  });

  it("reports controller fatal errors, PHY errors and surprise removal in the registers", async () => {
    const nvme = await nvmeReady();
    await rig.machine.injectFault({
      location: { controller: DiskController.NVME },
      kind: FaultKind.CONTROLLER_FATAL,
    });
    expect((await nvme.reg(NVME.CSTS)) & NVME.CSTS_CFS).toBe(NVME.CSTS_CFS);
    await nvme.disable();
    expect((await nvme.reg(NVME.CSTS)) & NVME.CSTS_CFS).toBe(0);

    // A running port halts on a host bus fatal error.
    await setAhciReg(AHCI.port(0, 0x18), (await ahciReg(AHCI.port(0, 0x18))) | 0x10 | 0x01);
    await rig.machine.injectFault({
      location: { controller: DiskController.AHCI },
      kind: FaultKind.CONTROLLER_FATAL,
    });
    expect((await ahciReg(AHCI.port(0, AHCI.PX_IS))) & AHCI.PXIS_HBFS).toBe(AHCI.PXIS_HBFS);

    await rig.machine.injectFault({ location: AHCI_PORT(1), kind: FaultKind.PHY_ERROR });
    const serr = await ahciReg(AHCI.port(1, AHCI.PX_SERR));
    expect(serr & ((1 << 9) | (1 << 16) | (1 << 17))).toBe((1 << 9) | (1 << 16) | (1 << 17));
    expect((await ahciReg(AHCI.port(1, AHCI.PX_SSTS))) & 0xf).toBe(1);

    const { faultId } = await rig.machine.injectFault({
      location: AHCI_PORT(0),
      kind: FaultKind.SURPRISE_REMOVAL,
    });
    expect(faultId).toBeGreaterThan(0n);
    expect((await rig.machine.listDisks({})).disks.map((d) => d.location!.port)).toEqual([1, 0, 0]);
    expect(await ahciReg(AHCI.port(0, AHCI.PX_SSTS))).toBe(0);

    await failure(
      rig.machine.injectFault({ location: NVME_NS(1), kind: FaultKind.PHY_ERROR }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "location.controller",
    );
    await failure(
      rig.machine.injectFault({ kind: FaultKind.CONTROLLER_FATAL }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "location.controller",
    );
    await failure(
      rig.machine.injectFault({ location: AHCI_PORT(0), kind: FaultKind.SURPRISE_REMOVAL }),
      Code.NOT_FOUND,
      Errno.ENODEV,
      "location",
    );
  });
});

describe.each(KINDS)("disk data across a restart over %s", (kind) => {
  it("reads back after stop and start exactly what was written, flushed or not", async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "astra-machine-restart-" });
    try {
      const written = [
        { nsid: 1, lbaSize: 512, lba: 1000, data: pattern(1024, 3) },
        { nsid: 2, lbaSize: 4096, lba: 100, data: pattern(8192, 4) },
        { nsid: 1, lbaSize: 512, lba: 0, data: pattern(512, 5) },
      ];
      let rig = await startMachine(kind, { dataDir });
      let nvme = new NvmeDriver(rig.machine, rig.devices.nvme.base, new GuestAllocator());
      await nvme.enable();
      await nvme.createQueuePair(1);
      for (const [i, w] of written.entries()) {
        expect((await nvme.write(1, w.nsid, w.lba, w.data, w.lbaSize)).status).toBe(0);
        if (i === 0) expect((await nvme.run(1, { opcode: NVME.NVM_FLUSH, nsid: 1 })).status).toBe(0);
      }
      // Only the first write was flushed; stopping the machine flushes the others.
      const before = (await rig.machine.listDisks({})).disks;
      expect(before.slice(2).map((d) => [d.flushes, d.unflushedWrites])).toEqual([[1n, 1n], [0n, 1n]]);
      await rig.stop();

      rig = await startMachine(kind, { dataDir });
      try {
        nvme = new NvmeDriver(rig.machine, rig.devices.nvme.base, new GuestAllocator());
        await nvme.enable();
        await nvme.createQueuePair(1);
        for (const w of written) {
          const read = await nvme.read(1, w.nsid, w.lba, w.data.length / w.lbaSize, w.lbaSize);
          expect(read.completion.status).toBe(0);
          expect(new Uint8Array(read.data)).toEqual(w.data);
        }
      } finally {
        await rig.stop();
      }
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  });
});
