// The AHCI driver against the machine's AHCI HBA model, in this process. The cases follow QEMU's
// tests/qtest/ahci-test.c and the issue's list: port detection and identify, DMA reads and writes
// at LBA28 and LBA48 addresses for many lengths and offsets in every transfer mode, fragmented
// PRDTs, flush, the largest transfer, HBA and port reset, NCQ with 32 commands in flight, error
// recovery (task-file, NCQ, host bus, PHY), timeouts, power states, raw commands and hot plug.
import { afterEach, describe, expect, it } from "vitest";
import { Code, Errno } from "../../../lib/errors.ts";
import { DiskImage } from "../../../services/machine/devices/diskimage.ts";
import {
  AhciDriver,
  type AhciDriverOptions,
  ATA_IDENTIFY_DEVICE,
  ATA_READ_DMA_EXT,
  type TransferMode,
} from "../../../services/storage/ahci.ts";
import type { DeviceMachine } from "../../../services/storage/hardware.ts";
import { ahciMachine, expectBytes, expectFailure, GiB, MiB, pattern } from "./helpers.ts";

const TiB = 1024 * GiB;

interface Rig {
  machine: DeviceMachine;
  disks: Map<number, DiskImage>;
  ahci: AhciDriver;
}

const open: Rig[] = [];

afterEach(async () => {
  for (const rig of open.splice(0)) await rig.ahci.close();
});

async function start(
  options: AhciDriverOptions = {},
  disks: { port: number; bytes: number; lbaSize?: 512 | 4096 }[] = [{ port: 0, bytes: 64 * MiB }],
): Promise<Rig> {
  const { machine, disks: images } = ahciMachine({ ports: 4, disks });
  const hw = machine.hardware();
  const [info] = await hw.controllers();
  const ahci = new AhciDriver(hw, info, { commandTimeoutMs: 5000, ...options });
  await ahci.init();
  const rig = { machine, disks: images, ahci };
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

describe("AHCI driver: initialisation and identify", () => {
  it("resets the HBA, detects the implemented ports and identifies the disks on them", async () => {
    const { ahci } = await start({}, [{ port: 0, bytes: 64 * MiB }, { port: 2, bytes: 32 * MiB }]);
    expect(ahci.version).toBe(0x0001_0301);
    expect(ahci.portsImplemented).toBe(0xf);
    expect(ahci.commandSlots).toBe(32);
    expect(ahci.ncq).toBe(true);
    expect(ahci.ports().map((p) => [p.index, p.devicePresent])).toEqual([[0, true], [1, false], [2, true], [
      3,
      false,
    ]]);
    expect(ahci.port(0).identity).toMatchObject({
      model: "AstraLisp SATA SSD",
      serial: "ASTRA-SATA-00",
      firmware: "1.0",
      lba48: true,
      sectors: (64 * MiB) / 512,
      lba28Sectors: (64 * MiB) / 512,
      logicalSectorBytes: 512,
      physicalSectorBytes: 512,
      ncqDepth: 32,
      writeCache: true,
      flushCacheExt: true,
      fua: true,
    });
    expect(ahci.port(0).identity!.ataMajorVersion).toBeGreaterThanOrEqual(8);
    expect(ahci.port(2).identity!.serial).toBe("ASTRA-SATA-02");
    expect(ahci.port(0).queueDepth).toBe(32);
    const area = ahci.port(0).areaAddress;
    expect(area.commandList % 1024).toBe(0);
    expect(area.receivedFis % 256).toBe(0);
    for (const t of area.tables) expect(t % 128).toBe(0);
    expect(() => ahci.port(7)).toThrow();
    await expectFailure(ahci.port(1).read(0, 1), Code.NOT_FOUND, Errno.ENODEV);
  });

  it("identifies a drive with 4 KiB logical sectors and moves whole sectors", async () => {
    const { ahci, disks } = await start({}, [{ port: 1, bytes: 16 * MiB, lbaSize: 4096 }]);
    const port = ahci.port(1);
    expect(port.identity).toMatchObject({ logicalSectorBytes: 4096, sectors: 4096 });
    const data = pattern(3 * 4096, 1);
    await port.write(10, data, false);
    expectBytes(await disks.get(1)!.read(10, 3), data);
    expectBytes(await port.read(10, 3), data);
    await expectFailure(port.write(0, new Uint8Array(512), false), Code.INVALID_ARGUMENT, Errno.EINVAL);
  });
});

describe("AHCI driver: DMA reads and writes", () => {
  const lengths = [1, 2, 7, 8, 64, 255, 256, 257, 2048];
  const modes: TransferMode[] = ["dma", "dma-ext", "ncq"];
  for (const mode of modes) {
    it(`${mode}: many lengths at LBA28${mode === "dma" ? "" : " and LBA48"} addresses`, async () => {
      const { ahci, disks } = await start({ transferMode: mode }, [{ port: 0, bytes: 4 * TiB }]);
      const port = ahci.port(0);
      const bases = mode === "dma"
        ? [0, 1, 0x0fff_f000]
        : [0, 1, 0x0fff_f000, 0x1_0000_0003, 4 * TiB / 512 - 4096];
      let seed = 0;
      for (const base of bases) {
        for (const sectors of lengths) {
          const lba = base + (mode === "dma" && base > 0 ? 0 : seed % 3);
          const count = Math.min(sectors, 4 * TiB / 512 - lba);
          const data = pattern(count * 512, ++seed);
          await port.write(lba, data, false);
          expectBytes(await disks.get(0)!.read(lba, count), data);
          expectBytes(await port.read(lba, count), data);
        }
      }
      if (mode === "dma") {
        await expectFailure(port.read(0x1000_0000, 1), Code.OUT_OF_RANGE, Errno.ERANGE);
      }
    });
  }

  it("scatters and gathers through a fragmented PRDT of 32-byte descriptors", async () => {
    const { ahci, disks } = await start({ prdBytes: 32 });
    const port = ahci.port(0);
    // 64 KiB in 32-byte pieces: 2048 descriptors, in a command table of its own.
    const data = pattern(64 * 1024, 3);
    await port.write(77, data, false);
    expectBytes(await disks.get(0)!.read(77, 128), data);
    expectBytes(await port.read(77, 128), data);
    // A short one fits the table inside the port's area.
    const small = pattern(256, 4);
    await port.write(5, pattern(512, 4), false);
    expectBytes((await port.read(5, 1)).subarray(0, 256), small);
  });

  it("moves the largest transfer: 65536 sectors in one command", async () => {
    const { ahci, disks, machine } = await start({}, [{ port: 0, bytes: 64 * MiB }]);
    const port = ahci.port(0);
    const data = pattern(65536 * 512, 5);
    const before = machine.ahci!.portStatus(0).commandsCompleted;
    await port.write(0, data, false);
    expectBytes(await disks.get(0)!.read(0, 65536), data);
    expectBytes(await port.read(0, 65536), data);
    expect(machine.ahci!.portStatus(0).commandsCompleted - before).toBe(2);
    // One more sector takes two commands.
    expectBytes((await port.read(0, 65537)).subarray(0, data.length), data);
    expect(machine.ahci!.portStatus(0).commandsCompleted - before).toBe(4);
  });

  it("flushes the drive's write cache, and makes FUA writes durable in every mode", async () => {
    for (const mode of ["ncq", "dma-ext", "dma"] as TransferMode[]) {
      const { ahci, disks } = await start({ transferMode: mode });
      const port = ahci.port(0);
      const disk = disks.get(0)!;
      await port.write(1, pattern(512, 1), false);
      expect(disk.statistics().unflushedWrites).toBe(1);
      await port.flush();
      expect(disk.statistics().unflushedWrites).toBe(0);
      await port.write(2, pattern(512, 2), true);
      expect(disk.statistics().unflushedWrites, mode).toBe(0);
    }
  });
});

describe("AHCI driver: native command queuing", () => {
  it("keeps 32 commands in flight at once and completes them all", async () => {
    const { ahci, disks } = await start();
    const port = ahci.port(0);
    // Held back while the port is stopped, 96 writes are issued 32 at a time once it starts.
    await port.halt();
    const writes = Array.from({ length: 96 }, (_, i) => port.write(1000 + i * 8, pattern(4096, i), false));
    await new Promise((r) => setTimeout(r, 5));
    await port.resume();
    await Promise.all(writes);
    const status = await port.status();
    expect(status.maxInflight).toBe(32);
    for (let i = 0; i < 96; i++) expectBytes(await disks.get(0)!.read(1000 + i * 8, 8), pattern(4096, i));
    const reads = await Promise.all(Array.from({ length: 96 }, (_, i) => port.read(1000 + i * 8, 8)));
    reads.forEach((r, i) => expectBytes(r, pattern(4096, i)));
    expect(status.sataActive).toBe(0);
  });

  it("recovers from an error on one queued command through the NCQ error log", async () => {
    const { ahci, disks } = await start();
    const port = ahci.port(0);
    const disk = disks.get(0)!;
    for (let i = 0; i < 32; i++) await disk.write(i * 8, pattern(4096, 200 + i));
    disk.injectFault({ kind: "media-error", lbaFirst: 100, lbaCount: 1, count: 1 });
    const reads = await Promise.all(Array.from({ length: 32 }, (_, i) => port.read(i * 8, 8)));
    reads.forEach((r, i) => expectBytes(r, pattern(4096, 200 + i)));
    expect((await port.status()).retries).toBe(1);
  });
});

describe("AHCI driver: errors, resets and power", () => {
  it("retries a transient media error on a non-queued command and succeeds", async () => {
    const { ahci, disks } = await start({ transferMode: "dma-ext" });
    const port = ahci.port(0);
    await port.write(40, pattern(4096, 1), false);
    disks.get(0)!.injectFault({ kind: "media-error", lbaFirst: 43, lbaCount: 1, count: 2 });
    expectBytes(await port.read(40, 8), pattern(4096, 1));
    expect(await port.status()).toMatchObject({ retries: 2, errors: 0, resets: 0 });
  });

  it("reports a persistent media error as EIO with the failing LBA, after retries and a port reset", async () => {
    for (const mode of ["ncq", "dma-ext"] as TransferMode[]) {
      const { ahci, disks } = await start({ transferMode: mode });
      const port = ahci.port(0);
      disks.get(0)!.injectFault({ kind: "media-error", lbaFirst: 300, lbaCount: 1 });
      const err = await expectFailure(port.read(296, 8), Code.DATA_LOSS, Errno.EIO);
      expect(err.detail.facts, mode).toMatchObject({ lba: "300", port: "0", attempts: "5" });
      expect(await port.status(), mode).toMatchObject({ retries: 4, errors: 1, resets: 1 });
      // The port works on after it.
      expectBytes(await port.read(0, 1), await disks.get(0)!.read(0, 1));
    }
  });

  it("resets a port with commands in flight and reissues them", async () => {
    const { ahci, disks } = await start();
    const port = ahci.port(0);
    const disk = disks.get(0)!;
    await disk.write(64, pattern(4096, 3));
    disk.injectFault({ kind: "command-timeout", lbaFirst: 64, lbaCount: 8, count: 1 });
    const read = port.read(64, 8);
    await new Promise((r) => setTimeout(r, 10));
    expect(await port.reset()).toEqual({ devicePresent: true, reissued: 1 });
    expectBytes(await read, pattern(4096, 3));
    expect((await port.status()).resets).toBe(1);
  });

  it("resets a command that outlives its timeout with a COMRESET and retries it", async () => {
    const { ahci, disks } = await start({ commandTimeoutMs: 80 });
    const port = ahci.port(0);
    const disk = disks.get(0)!;
    await disk.write(8, pattern(4096, 6));
    disk.injectFault({ kind: "command-timeout", lbaFirst: 8, lbaCount: 1, count: 1 });
    expectBytes(await port.read(8, 8), pattern(4096, 6));
    expect(await port.status()).toMatchObject({ resets: 1, retries: 1 });
    disk.injectFault({ kind: "command-timeout", lbaFirst: 16, lbaCount: 1 });
    const err = await expectFailure(port.read(16, 1), Code.DEADLINE_EXCEEDED, Errno.ETIMEDOUT);
    expect(err.detail.facts).toMatchObject({ lba: "16", attempts: "4" });
  });

  it("re-initialises the HBA (GHC.HR) and the data is still there", async () => {
    const rig = await start();
    const data = pattern(8192, 7);
    await rig.ahci.port(0).write(500, data, false);
    const hw = rig.machine.hardware();
    await rig.ahci.close();
    const again = new AhciDriver(hw, (await hw.controllers())[0], { commandTimeoutMs: 5000 });
    await again.init();
    rig.ahci = again;
    expect(rig.machine.ahci!.statistics().hbaResets).toBe(2);
    expectBytes(await again.port(0).read(500, 16), data);
  });

  it("recovers from a host bus error with commands in flight", async () => {
    const { ahci, disks, machine } = await start();
    const port = ahci.port(0);
    const disk = disks.get(0)!;
    await disk.write(0, pattern(4096, 9));
    disk.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 1, count: 1 });
    const read = port.read(0, 8);
    await new Promise((r) => setTimeout(r, 10));
    machine.ahci!.injectHostBusError();
    expectBytes(await read, pattern(4096, 9));
  });

  it("brings the link back with a COMRESET after a PHY error", async () => {
    const { ahci, machine } = await start();
    const port = ahci.port(0);
    const data = pattern(4096, 10);
    await port.write(0, data, false);
    machine.ahci!.injectPhyError(0);
    await until(() => machine.ahci!.portStatus(0).linkUp);
    expectBytes(await port.read(0, 8), data);
    expect((await port.status()).resets).toBeGreaterThanOrEqual(1);
    expect(port.devicePresent).toBe(true);
  });

  it("works by polling when interrupt delivery is disabled", async () => {
    const { machine, disks } = ahciMachine({ ports: 2, disks: [{ port: 1, bytes: 8 * MiB }] });
    machine.intc.disable();
    const hw = machine.hardware();
    const ahci = new AhciDriver(hw, (await hw.controllers())[0], { commandTimeoutMs: 5000 });
    open.push({ machine, disks, ahci });
    await ahci.init();
    const data = pattern(4096, 11);
    await ahci.port(1).write(8, data, false);
    expectBytes(await ahci.port(1).read(8, 8), data);
    expect((await ahci.port(1).status()).resets).toBe(0);
  });

  it("moves the link between active, partial and slumber and wakes it for I/O", async () => {
    const { ahci } = await start();
    const port = ahci.port(0);
    expect(await port.setPowerState("partial")).toBe("active");
    expect((await port.status()).powerState).toBe("partial");
    expect(await port.setPowerState("slumber")).toBe("partial");
    await port.read(0, 1);
    expect((await port.status()).powerState).toBe("active");
    await expectFailure(port.setPowerState("devsleep"), Code.FAILED_PRECONDITION, Errno.ENOTSUP);
  });

  it("stops and starts a port in use: requests wait, then run", async () => {
    const { ahci } = await start();
    const port = ahci.port(0);
    await port.halt();
    expect(port.halted).toBe(true);
    let done = false;
    const write = port.write(3, pattern(512, 1), false).then(() => done = true);
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    await port.resume();
    await write;
    expectBytes(await port.read(3, 1), pattern(512, 1));
    await port.reinit();
    expectBytes(await port.read(3, 1), pattern(512, 1));
  });

  it("runs raw commands and reports the device's registers", async () => {
    const { ahci, disks } = await start();
    const port = ahci.port(0);
    const slot = await port.issueCommand({
      command: ATA_IDENTIFY_DEVICE,
      features: 0,
      lba: 0,
      count: 0,
      device: 0,
      control: 0,
      direction: "in",
      payload: new Uint8Array(0),
      receiveBytes: 512,
      queued: false,
    });
    const identify = await port.waitCommand(slot, 1000);
    expect(identify.data!.length).toBe(512);
    expect(identify.status & 0x01).toBe(0);
    await disks.get(0)!.write(9, pattern(1024, 2));
    const read = await port.waitCommand(
      await port.issueCommand({
        command: ATA_READ_DMA_EXT,
        features: 0,
        lba: 9,
        count: 2,
        device: 0x40,
        control: 0,
        direction: "in",
        payload: new Uint8Array(0),
        receiveBytes: 1024,
        queued: false,
      }),
      1000,
    );
    expectBytes(read.data!, pattern(1024, 2));
    expect(read.transferredBytes).toBe(1024);
    // An unknown command is aborted by the drive: its status and error come back as they are.
    const bad = await port.waitCommand(
      await port.issueCommand({
        command: 0x01,
        features: 0,
        lba: 0,
        count: 0,
        device: 0x40,
        control: 0,
        direction: "none",
        payload: new Uint8Array(0),
        receiveBytes: 0,
        queued: false,
      }),
      1000,
    );
    expect(bad.status & 0x01).toBe(1);
    expect(bad.error & 0x04).toBe(0x04);
    expectBytes(await port.read(9, 2), pattern(1024, 2));
  });
});

describe("AHCI driver: hot plug", () => {
  it("brings up a disk plugged in at run time and gives up one pulled out with I/O in flight", async () => {
    const { ahci, machine } = await start();
    const changes: string[] = [];
    ahci.onDeviceChange = (port, change) => changes.push(`${change} ${port.index}`);

    const disk = DiskImage.memory({ sizeBytes: 16 * MiB });
    machine.ahci!.attach(3, disk);
    await until(() => changes.length === 1);
    expect(changes).toEqual(["added 3"]);
    expect(ahci.port(3).identity!.sectors).toBe((16 * MiB) / 512);
    await ahci.port(3).write(0, pattern(512, 1), false);

    disk.injectFault({ kind: "command-timeout", lbaFirst: 100, lbaCount: 1 });
    const inflight = ahci.port(3).read(100, 1);
    await new Promise((r) => setTimeout(r, 10));
    await machine.ahci!.detach(3, { surprise: true });
    await expectFailure(inflight, Code.FAILED_PRECONDITION, Errno.ENODEV);
    await until(() => changes.length === 2);
    expect(changes[1]).toBe("removed 3");
    expect(ahci.port(3).devicePresent).toBe(false);
    await expectFailure(ahci.port(3).read(0, 1), Code.NOT_FOUND, Errno.ENODEV);

    // A clean detach of port 0 and a new disk in its place.
    await machine.ahci!.detach(0);
    await until(() => changes.length === 3);
    machine.ahci!.attach(0, DiskImage.memory({ sizeBytes: 8 * MiB }));
    await until(() => changes.length === 4);
    expect(changes.slice(2)).toEqual(["removed 0", "added 0"]);
    expect(ahci.port(0).identity!.sectors).toBe((8 * MiB) / 512);
  });
});
