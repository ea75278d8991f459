// LFSX on the block layer's devices, end to end: a whole embedded system (the machine with its AHCI
// and NVMe controllers, pmm, and storage with its drivers and block layer) formats, mounts, writes,
// commits, remounts and reads volumes on an NVMe namespace of 512-byte LBAs, one of 4 KiB LBAs and a
// SATA disk, over both transports; the I/O is seen in the block layer's counters. A value of the
// largest size goes through journal groups and extents larger than one block-layer request. A disk
// pulled out under a mounted volume fails its requests FAILED_PRECONDITION/ENODEV naming the
// device, and once plugged back in the volume mounts again with everything committed before. A
// storage service that reaches the machine over gRPC, as in process mode, runs volumes as well.
// What the volumes hold survives a restart of the whole system.
import { describe, expect, it } from "vitest";
import { DiskController } from "../../../gen/astra/machine/v1/devices_pb.ts";
import { MachineService } from "../../../gen/astra/machine/v1/machine_pb.ts";
import { BlockService } from "../../../gen/astra/storage/v1/block_pb.ts";
import { LfsxService } from "../../../gen/astra/storage/v1/lfsx_pb.ts";
import { Code, Errno } from "../../../lib/errors.ts";
import { InProcessRouter } from "../../../lib/inproc.ts";
import { type Client, client } from "../../../lib/rpc.ts";
import { MAX_VALUE_LENGTH } from "../../../services/storage/lfsx/overflow.ts";
import { remoteMachine } from "../drivers/helpers.ts";
import { bytes, failure, SuiteSystem, text } from "./helpers.ts";

type Lfsx = Client<typeof LfsxService>;

const MiB = 1024 * 1024;
const KEYS = 600;

const device = (name: string) => ({ target: { target: { case: "device" as const, value: name } } });
const inVolume = (volume: string) => ({ scope: { case: "volume" as const, value: volume } });
const keyOf = (i: number) => `k/${String(i).padStart(4, "0")}`;

/** The value of key `i` in round `round`: 100 bytes, and every 50th one 40 KiB (overflow extents). */
function valueOf(round: string, i: number): string {
  const base = `${round} value ${i} `;
  return i % 50 === 7 ? base.repeat(Math.ceil(40_000 / base.length)) : base.padEnd(100, ".");
}

async function commitRound(lfsx: Lfsx, volume: string, round: string): Promise<void> {
  for (let first = 0; first < KEYS; first += 100) {
    const { transactionId } = await lfsx.begin({ volume });
    for (let i = first; i < first + 100; i++) {
      await lfsx.put({ transactionId, key: bytes(keyOf(i)), value: bytes(valueOf(round, i)) });
    }
    await lfsx.commit({ transactionId });
  }
}

/** Every key of the round is there with its value, in order, and nothing else is. */
async function expectRound(lfsx: Lfsx, volume: string, round: string): Promise<void> {
  const seen: string[] = [];
  let continuation = new Uint8Array();
  do {
    const page = await lfsx.scan({ ...inVolume(volume), limit: 250, continuation });
    for (const { key, value } of page.entries) {
      const i = seen.length;
      expect(text(key)).toBe(keyOf(i));
      expect(text(value) === valueOf(round, i), `${volume}: the value of ${keyOf(i)}`).toBe(true);
      seen.push(text(key));
    }
    continuation = new Uint8Array(page.continuation);
  } while (continuation.length > 0);
  expect(seen.length).toBe(KEYS);
}

async function until(test: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await test())) {
    if (performance.now() > end) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A value that differs at every position, so a misplaced block shows. */
function largeValue(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + (i >>> 9) * 13 + (i >>> 12)) & 0xff;
  return out;
}

function sameBytes(actual: Uint8Array, expected: Uint8Array): boolean {
  if (actual.length !== expected.length) return false;
  for (let i = 0; i < actual.length; i++) if (actual[i] !== expected[i]) return false;
  return true;
}

describe("LFSX volumes on the block layer's devices", () => {
  const suite = new SuiteSystem("astra-lfsx-devices-");

  for (const [kind, transport] of suite.transports) {
    for (const name of ["nvme0n1", "nvme0n2", "sda"]) {
      it(`formats, mounts, commits, remounts and reads a volume on ${name} over ${kind}`, async () => {
        const lfsx = client(LfsxService, transport());
        const block = client(BlockService, transport());
        const volume = `${name}-${kind}`;
        const before = (await block.getDeviceStatistics({ device: name })).statistics!;
        const format = await lfsx.format({ ...device(name), label: volume });
        expect(format).toMatchObject({ label: volume, blockCount: BigInt((64 * MiB) / 4096) });
        const mount = await lfsx.mount({ ...device(name), volume });
        expect(mount).toMatchObject({ volume, uuid: format.uuid, label: volume });
        await commitRound(lfsx, volume, kind);
        await lfsx.unmount({ volume });

        // Everything went to the device, and each commit was flushed before it was acknowledged.
        const after = (await block.getDeviceStatistics({ device: name })).statistics!;
        const { blockSize } = (await block.identifyDevice({ device: name })).device!;
        expect(Number(after.blocksWritten - before.blocksWritten) * blockSize).toBeGreaterThan(KEYS * 100);
        expect(after.flushes - before.flushes).toBeGreaterThanOrEqual(BigInt(KEYS / 100));

        const offline = await lfsx.fsck({ subject: { case: "target", value: device(name).target } });
        expect(offline).toMatchObject({ ok: true, problems: [], entries: BigInt(KEYS) });
        const again = await lfsx.mount({ ...device(name), volume });
        expect(again.uuid).toBe(format.uuid);
        expect(again.recovery!.recoveredTransactions).toBe(0n);
        await expectRound(lfsx, volume, kind);
        const check = await lfsx.fsck({ subject: { case: "volume", value: volume } });
        expect(check).toMatchObject({ ok: true, problems: [], entries: BigInt(KEYS) });
        expect(check.overflowValues).toBe(BigInt(KEYS / 50));
        await lfsx.unmount({ volume });
      }, 120_000);
    }

    it(`validates device targets over ${kind}`, async () => {
      const lfsx = client(LfsxService, transport());
      await failure(lfsx.mount({ ...device("nvme0n9"), volume: "x" }), Code.NOT_FOUND, Errno.ENODEV);
      await failure(lfsx.format({ ...device("sdz") }), Code.NOT_FOUND, Errno.ENODEV);
      const sized = await failure(
        lfsx.format({ ...device("nvme0n2"), createBlocks: 16n }),
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
      );
      expect(sized.detail.argument).toBe("create_blocks");
      await failure(
        lfsx.format({ target: { target: { case: "device", value: "" } } }),
        Code.INVALID_ARGUMENT,
      );
      // sdb has never been formatted: nothing there to mount.
      const blank = await failure(
        lfsx.mount({ ...device("sdb"), volume: "x" }),
        Code.DATA_LOSS,
        Errno.EUCLEAN,
      );
      expect(blank.message).toContain("no valid LFSX superblock");

      await lfsx.format({ ...device("nvme0n2") });
      await lfsx.mount({ ...device("nvme0n2"), volume: "busy" });
      const busy = await failure(
        lfsx.format({ ...device("nvme0n2") }),
        Code.FAILED_PRECONDITION,
        Errno.EBUSY,
      );
      expect(busy.message).toContain("nvme0n2 is mounted as volume busy");
      await failure(
        lfsx.mount({ ...device("nvme0n2"), volume: "twice" }),
        Code.FAILED_PRECONDITION,
        Errno.EBUSY,
      );
      await failure(
        lfsx.fsck({ subject: { case: "target", value: device("nvme0n2").target } }),
        Code.FAILED_PRECONDITION,
        Errno.EBUSY,
      );
      await lfsx.unmount({ volume: "busy" });
    });
  }

  it("stores a value of the largest size, in requests the block layer takes", async () => {
    const lfsx = client(LfsxService, suite.system.router.transport());
    // A journal larger than the value: its group and its extent both exceed one 16 MiB request.
    await lfsx.format({ ...device("nvme0n1"), journalBlocks: 6000 });
    await lfsx.mount({ ...device("nvme0n1"), volume: "large" });
    const value = largeValue(MAX_VALUE_LENGTH);
    const { transactionId } = await lfsx.begin({ volume: "large" });
    await lfsx.put({ transactionId, key: bytes("large"), value });
    await lfsx.commit({ transactionId });
    await lfsx.checkpoint({ volume: "large" });
    await lfsx.unmount({ volume: "large" });
    await lfsx.mount({ ...device("nvme0n1"), volume: "large" });
    const read = await lfsx.get({ ...inVolume("large"), key: bytes("large") });
    expect(sameBytes(read.value, value), "the value read back differs").toBe(true);
    const check = await lfsx.fsck({ subject: { case: "volume", value: "large" } });
    expect(check).toMatchObject({ ok: true, overflowValues: 1n });
    expect(check.overflowBlocks).toBeGreaterThan(BigInt(MAX_VALUE_LENGTH / 4096));
    await lfsx.unmount({ volume: "large" });
  }, 60_000);

  it("fails a volume whose disk is pulled out with ENODEV, and mounts it again once it is back", async () => {
    const local = suite.system.router.transport();
    const lfsx = client(LfsxService, local);
    const block = client(BlockService, local);
    const machine = client(MachineService, local);
    const location = { controller: DiskController.AHCI, port: 1 };
    const imagePath = (await machine.listDisks({})).disks.find((d) =>
      d.location!.controller === location.controller && d.location!.port === location.port
    )!.imagePath;
    await lfsx.format({ ...device("sdb") });
    await lfsx.mount({ ...device("sdb"), volume: "pulled" });
    await commitRound(lfsx, "pulled", "pulled");
    const open = await lfsx.begin({ volume: "pulled" });
    await lfsx.put({ transactionId: open.transactionId, key: bytes("never"), value: bytes("committed") });

    await machine.detachDisk({ location, surprise: true });
    await until(async () =>
      !(await block.listDevices({})).devices.some((d) =>
        d.name === "sdb"
      ), "sdb leaving");
    const commit = await failure(
      lfsx.commit({ transactionId: open.transactionId }),
      Code.FAILED_PRECONDITION,
      Errno.ENODEV,
    );
    expect(commit.message).toContain("sdb was removed");
    expect(commit.detail.argument).toBe("");
    for (
      const call of [
        lfsx.get({ ...inVolume("pulled"), key: bytes(keyOf(1)) }),
        lfsx.begin({ volume: "pulled" }),
        lfsx.checkpoint({ volume: "pulled" }),
      ]
    ) {
      const err = await failure(call, Code.FAILED_PRECONDITION, Errno.ENODEV);
      expect(err.message).toMatch(/volume pulled: .*sdb was removed/);
    }
    // The volume holds on to its device's name until it is unmounted.
    await failure(lfsx.format({ ...device("sdb") }), Code.FAILED_PRECONDITION, Errno.EBUSY);
    await lfsx.unmount({ volume: "pulled" });
    await failure(lfsx.mount({ ...device("sdb"), volume: "pulled" }), Code.NOT_FOUND, Errno.ENODEV);

    await machine.attachDisk({ location, imagePath });
    await until(async () =>
      (await block.listDevices({})).devices.some((d) =>
        d.name === "sdb"
      ), "sdb returning");
    const back = await lfsx.mount({ ...device("sdb"), volume: "pulled" });
    expect(back.recovery!.recoveredTransactions).toBe(BigInt(KEYS / 100));
    await expectRound(lfsx, "pulled", "pulled");
    expect((await lfsx.get({ ...inVolume("pulled"), key: bytes("never") })).found).toBe(false);
    await lfsx.unmount({ volume: "pulled" });
  }, 60_000);

  it("runs a volume with the storage service driving the machine over gRPC, as in process mode", async () => {
    // A machine and pmm of their own, reachable only through a gRPC port: every register access,
    // DMA transfer and interrupt of the volume's I/O crosses it.
    const dir = await Deno.makeTempDir({ prefix: "astra-lfsx-devices-grpc-" });
    const { storage, stop } = await remoteMachine({
      memoryBytes: 64 * MiB,
      numaNodes: 1,
      cpus: 1,
      dataDir: dir,
    });
    const lfsxRouter = new InProcessRouter();
    storage.bound.forEach((b) => lfsxRouter.add(b));
    const lfsx = client(LfsxService, lfsxRouter.transport());
    try {
      await storage.start();
      for (const name of ["nvme0n1", "sda"]) {
        await lfsx.format({ ...device(name) });
        await lfsx.mount({ ...device(name), volume: name });
        await commitRound(lfsx, name, "remote");
        await lfsx.unmount({ volume: name });
        await lfsx.mount({ ...device(name), volume: name });
        await expectRound(lfsx, name, "remote");
        expect((await lfsx.fsck({ subject: { case: "volume", value: name } })).problems).toEqual([]);
        await lfsx.unmount({ volume: name });
      }
    } finally {
      await stop();
    }
  }, 120_000);

  it("finds every volume as it was after a restart of the whole system", async () => {
    await suite.restart();
    const lfsx = client(LfsxService, suite.grpc);
    for (const [name, round] of [["sda", "grpc"], ["sdb", "pulled"]]) {
      await lfsx.mount({ ...device(name), volume: name });
      await expectRound(lfsx, name, round);
      await lfsx.unmount({ volume: name });
    }
    await lfsx.mount({ ...device("nvme0n1"), volume: "large" });
    const read = await lfsx.get({ ...inVolume("large"), key: bytes("large") });
    expect(sameBytes(read.value, largeValue(MAX_VALUE_LENGTH)), "the large value after the restart").toBe(
      true,
    );
    await lfsx.unmount({ volume: "large" });
  }, 60_000);
});
