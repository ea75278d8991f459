// The block layer over both drivers, on the machine's device models in this process: device
// names and identify data, reads, writes and flushes with their counters, the request queue's
// depth, the 4 KiB view LFSX uses, and the faults the issue lists — a transient error is retried
// and succeeds, a persistent one reaches the caller as EIO with the LBA, surprise removal fails
// what is in flight at once, and nothing hangs.
import { afterEach, describe, expect, it } from "vitest";
import { Code, Errno } from "../../../lib/errors.ts";
import { DiskImage } from "../../../services/machine/devices/diskimage.ts";
import { sdName } from "../../../services/storage/block.ts";
import { DiskSubsystem, type DiskSubsystemOptions } from "../../../services/storage/disks.ts";
import { DeviceMachine } from "../../../services/storage/hardware.ts";
import { expectBytes, expectFailure, MiB, pattern } from "./helpers.ts";

interface Rig {
  machine: DeviceMachine;
  images: { sata: Map<number, DiskImage>; nvme: Map<number, DiskImage> };
  disks: DiskSubsystem;
  line: string;
}

const open: Rig[] = [];

afterEach(async () => {
  for (const rig of open.splice(0)) await rig.disks.close();
});

async function start(options: DiskSubsystemOptions = {}): Promise<Rig> {
  const sata = new Map([[0, DiskImage.memory({ sizeBytes: 32 * MiB })], [
    2,
    DiskImage.memory({ sizeBytes: 16 * MiB }),
  ]]);
  const nvme = new Map([
    [1, DiskImage.memory({ sizeBytes: 32 * MiB, lbaSize: 512 })],
    [2, DiskImage.memory({ sizeBytes: 16 * MiB, lbaSize: 4096 })],
  ]);
  const machine = new DeviceMachine({
    ahci: { ports: 4, disks: [...sata].map(([port, disk]) => ({ port, disk })) },
    nvme: { namespaces: [...nvme].map(([nsid, disk]) => ({ nsid, disk })) },
  });
  const disks = new DiskSubsystem(machine.hardware(), {
    ahci: { commandTimeoutMs: 2000, ...options.ahci },
    nvme: { commandTimeoutMs: 2000, ...options.nvme },
    requestDeadlineMs: options.requestDeadlineMs,
  });
  const line = await disks.probe();
  const rig = { machine, images: { sata, nvme }, disks, line };
  open.push(rig);
  return rig;
}

async function until(test: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!test()) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe("block layer: devices", () => {
  it("names SATA disks sd* in port order and NVMe namespaces nvme<c>n<ns>, and logs one line", async () => {
    const { disks, line } = await start();
    expect(disks.block.devices().map((d) => d.name)).toEqual(["sda", "sdb", "nvme0n1", "nvme0n2"]);
    expect(line).toBe(
      "ahci0: AHCI 1.3.1, 4 ports, 2 disk(s), NCQ; nvme0: NVMe 1.4, 2 namespace(s), 2 I/O queue(s) of 1024; " +
        "devices: sda 32 MiB, sdb 16 MiB, nvme0n1 32 MiB, nvme0n2 16 MiB, 4096 B blocks",
    );
    expect(disks.block.device("sdb").identity).toMatchObject({
      driver: "ahci",
      blockSize: 512,
      blockCount: (16 * MiB) / 512,
      portOrNamespace: 2,
      queueDepth: 32,
      serial: "ASTRA-SATA-02",
      volatileWriteCache: true,
    });
    expect(disks.block.device("sda").identity.raw.length).toBe(512);
    const n2 = disks.block.device("nvme0n2");
    expect(n2.identity).toMatchObject({
      driver: "nvme",
      blockSize: 4096,
      portOrNamespace: 2,
      nvmeController: 0,
    });
    expect(n2.identity.raw.length).toBe(4096);
    expect(() => disks.block.device("sdq")).toThrow(/no block device/);
  });

  it("spells SATA names as Linux does past sdz", () => {
    expect([0, 25, 26, 27, 701, 702].map(sdName)).toEqual(["sda", "sdz", "sdaa", "sdab", "sdzz", "sdaaa"]);
  });

  it("reads, writes and flushes on every device and counts it all", async () => {
    const { disks, images } = await start();
    for (const dev of disks.block.devices()) {
      const data = pattern(dev.blockSize * 8, dev.name.length);
      expect(await dev.writeBlocks(3, data)).toBe(8);
      expectBytes(await dev.readBlocks(3, 8), data);
      await dev.flush();
      const s = dev.statistics();
      expect(s).toMatchObject({
        reads: 1,
        writes: 1,
        flushes: 1,
        blocksRead: 8,
        blocksWritten: 8,
        errors: 0,
      });
      expect(s.readLatency.count).toBe(1);
      expect(s.meanLatencyMicros).toBeGreaterThan(0);
    }
    expectBytes(await images.sata.get(2)!.read(3, 8), pattern(512 * 8, 3));
    expectBytes(await images.nvme.get(2)!.read(3, 8), pattern(4096 * 8, 7));
  });

  it("bounds what reaches the driver by the queue depth and queues the rest", async () => {
    const { disks } = await start({ nvme: { ioQueues: 1, queueEntries: 8 } });
    const dev = disks.block.device("nvme0n1");
    expect(dev.identity.queueDepth).toBe(6);
    await Promise.all(Array.from({ length: 50 }, (_, i) => dev.writeBlocks(i * 8, pattern(4096, i))));
    const s = dev.statistics();
    expect(s.maxQueued).toBe(50);
    expect(s.queued).toBe(0);
    const reads = await Promise.all(Array.from({ length: 50 }, (_, i) => dev.readBlocks(i * 8, 8)));
    reads.forEach((r, i) => expectBytes(r, pattern(4096, i)));
  });

  it("refuses bad ranges and partial blocks", async () => {
    const { disks } = await start();
    const dev = disks.block.device("sda");
    await expect(dev.readBlocks(dev.blockCount, 1)).rejects.toThrow(/beyond/);
    await expect(dev.readBlocks(0, 0)).rejects.toThrow(/at least one block/);
    await expect(dev.writeBlocks(0, new Uint8Array(100))).rejects.toThrow(/whole number/);
    await expect(dev.readBlocks(0, 40000)).rejects.toThrow(/per request/);
  });

  it("offers LFSX's 4 KiB blocks over 512-byte sectors", async () => {
    const { disks, images } = await start();
    const view = disks.block.device("sda").withBlockSize(4096);
    expect(view.blockCount).toBe((32 * MiB) / 4096);
    const data = pattern(8192, 5);
    await view.writeBlocks(10, data);
    expectBytes(await images.sata.get(0)!.read(80, 16), data);
    expectBytes(await view.readBlocks(10, 2), data);
    await view.flush();
    expect(images.sata.get(0)!.statistics().unflushedWrites).toBe(0);
  });

  it("resets a device's port or controller", async () => {
    const { disks } = await start();
    expect(await disks.block.device("sda").reset()).toBe(0);
    expect(await disks.block.device("nvme0n1").reset()).toBe(0);
    expect(disks.block.device("nvme0n1").statistics().resets).toBe(1);
    const data = pattern(4096, 1);
    await disks.block.device("nvme0n2").writeBlocks(0, data);
    expectBytes(await disks.block.device("nvme0n2").readBlocks(0, 1), data);
  });
});

describe("block layer: faults", () => {
  for (const name of ["sda", "nvme0n1"]) {
    it(`${name}: retries a transient error and succeeds`, async () => {
      const { disks, images } = await start();
      const image = name === "sda" ? images.sata.get(0)! : images.nvme.get(1)!;
      const dev = disks.block.device(name);
      await dev.writeBlocks(100, pattern(4096, 2));
      image.injectFault({ kind: "media-error", lbaFirst: 104, lbaCount: 1, count: 1 });
      expectBytes(await dev.readBlocks(100, 8), pattern(4096, 2));
      expect(dev.statistics()).toMatchObject({ retries: 1, errors: 0, reads: 1 });
    });

    it(`${name}: reports a persistent error as EIO with the LBA`, async () => {
      const { disks, images } = await start();
      const image = name === "sda" ? images.sata.get(0)! : images.nvme.get(1)!;
      const dev = disks.block.device(name);
      image.injectFault({ kind: "media-error", lbaFirst: 205, lbaCount: 1 });
      const err = await expectFailure(dev.readBlocks(200, 8), Code.DATA_LOSS, Errno.EIO);
      expect(err.detail.facts).toMatchObject({ lba: name === "sda" ? "205" : "200", device: name });
      expect(err.message).toMatch(/LBA 20[05]/);
      expect(dev.statistics()).toMatchObject({ errors: 1 });
      expect(dev.statistics().retries).toBeGreaterThanOrEqual(3);
    });
  }

  it("fails requests in flight at once when a SATA disk is pulled out, and names a new disk", async () => {
    const { disks, images, machine } = await start();
    const dev = disks.block.device("sdb");
    images.sata.get(2)!.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 64 });
    const inflight = Array.from({ length: 4 }, (_, i) => dev.readBlocks(i * 8, 8));
    await new Promise((r) => setTimeout(r, 10));
    const started = performance.now();
    await machine.ahci!.detach(2, { surprise: true });
    for (const r of inflight) await expectFailure(r, Code.FAILED_PRECONDITION, Errno.ENODEV);
    expect(performance.now() - started).toBeLessThan(500);
    await until(() => disks.block.devices().length === 3);
    expect(dev.online).toBe(false);
    await expect(dev.readBlocks(0, 1)).rejects.toThrow(/removed/);
    machine.ahci!.attach(3, DiskImage.memory({ sizeBytes: 8 * MiB }));
    await until(() => disks.block.devices().length === 4);
    expect(disks.block.device("sdb").identity.portOrNamespace).toBe(3);
  });

  it("fails requests in flight at once when an NVMe namespace is pulled out", async () => {
    const { disks, images, machine } = await start();
    const dev = disks.block.device("nvme0n2");
    images.nvme.get(2)!.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 8 });
    const inflight = dev.readBlocks(0, 1);
    await new Promise((r) => setTimeout(r, 10));
    await machine.nvme!.detachNamespace(2, { surprise: true });
    await expectFailure(inflight, Code.FAILED_PRECONDITION, Errno.ENODEV);
    await until(() => disks.block.devices().length === 3);
    machine.nvme!.attachNamespace(5, DiskImage.memory({ sizeBytes: 4 * MiB }));
    await until(() => disks.block.devices().some((d) => d.name === "nvme0n5"));
  });

  it("never hangs: a request the driver does not answer fails at the block layer's deadline", async () => {
    const { disks, images } = await start({ nvme: { commandTimeoutMs: 60_000 }, requestDeadlineMs: 150 });
    const dev = disks.block.device("nvme0n1");
    images.nvme.get(1)!.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 8 });
    const started = performance.now();
    await expectFailure(dev.readBlocks(0, 8), Code.DEADLINE_EXCEEDED, Errno.ETIMEDOUT);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(dev.statistics()).toMatchObject({ timeouts: 1, errors: 1 });
  });

  it("reports a controller that fails to come up and keeps the others", async () => {
    const machine = new DeviceMachine({
      ahci: { ports: 2, disks: [{ port: 0, disk: DiskImage.memory({ sizeBytes: 8 * MiB }) }] },
      nvme: { namespaces: [{ nsid: 1, disk: DiskImage.memory({ sizeBytes: 8 * MiB }) }] },
    });
    machine.nvme!.injectFatal();
    const disks = new DiskSubsystem(machine.hardware(), { nvme: { commandTimeoutMs: 200 } });
    open.push({ machine, images: { sata: new Map(), nvme: new Map() }, disks, line: "" });
    const line = await disks.probe();
    expect(line).toMatch(
      /^ahci0: .*; nvme0 failed \(FAILED_PRECONDITION EIO nvme0: the controller reports a fatal status/,
    );
    expect(line).toMatch(/devices: sda 8 MiB$/);
    expect(disks.failures.map((f) => f.controller)).toEqual(["nvme0"]);
  });
});
