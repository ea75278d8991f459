// The default volume on a block device (ASTRA_LFSX_DEVICE): formatted by the first boot that finds
// the device blank, mounted with everything committed by every boot after, and never formatted over
// data that is not an LFSX volume — such a device, a damaged LFSX volume and a device that does not
// exist each stop the boot saying why, with the device left as it was. `astra mkfs --device` and
// `astra fsck --device` format and check a device through the running system.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { BlockService } from "../../../gen/astra/storage/v1/block_pb.ts";
import { LfsxService } from "../../../gen/astra/storage/v1/lfsx_pb.ts";
import { Code, Errno } from "../../../lib/errors.ts";
import { client } from "../../../lib/rpc.ts";
import { ROOT_DEVICE_VAR } from "../../../services/storage/lfsx_service.ts";
import { astra, bootSystem, bytes, failure, text } from "./helpers.ts";

const root = { scope: { case: "volume" as const, value: "root" } };

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

describe("the default volume on a block device", () => {
  const dataDir = Deno.makeTempDirSync({ prefix: "astra-lfsx-rootdevice-" });
  afterEach(() => Deno.env.delete(ROOT_DEVICE_VAR));
  afterAll(() => Deno.remove(dataDir, { recursive: true }));

  it("is formatted on the first boot that finds the device blank and kept by every boot after", async () => {
    Deno.env.set(ROOT_DEVICE_VAR, "nvme0n2");
    const steps = new Map<string, string>();
    let system = await bootSystem(dataDir, steps);
    try {
      expect(steps.get("storage")).toMatch(
        /lfsx volume root on nvme0n2: formatted 16384 blocks, generation 1, recovered 0 transactions/,
      );
      expect(await exists(`${dataDir}/lfsx.img`)).toBe(false);
      const lfsx = client(LfsxService, system.router.transport());
      for (let i = 0; i < 20; i++) {
        const { transactionId } = await lfsx.begin({ volume: "root" });
        await lfsx.put({ transactionId, key: bytes(`boot/${i}`), value: bytes(`value ${i}`) });
        await lfsx.commit({ transactionId });
      }
      const stats = (await lfsx.getVolumeStatistics({ volume: "root" })).statistics!;
      expect(stats).toMatchObject({ label: "root", blockCount: 16384n });
    } finally {
      await system.shutdown();
    }

    steps.clear();
    system = await bootSystem(dataDir, steps);
    try {
      expect(steps.get("storage")).toMatch(
        /lfsx volume root on nvme0n2: generation \d+, recovered 0 transactions/,
      );
      const lfsx = client(LfsxService, system.router.transport());
      for (let i = 0; i < 20; i++) {
        expect(text((await lfsx.get({ ...root, key: bytes(`boot/${i}`) })).value)).toBe(`value ${i}`);
      }
      // The root volume's device is taken: it can be neither formatted nor mounted again.
      await failure(
        lfsx.format({ target: { target: { case: "device", value: "nvme0n2" } } }),
        Code.FAILED_PRECONDITION,
        Errno.EBUSY,
      );
    } finally {
      await system.shutdown();
    }
  }, 60_000);

  it("stops the boot rather than format a device holding other data", async () => {
    // A boot on the image puts a partition-table-like signature on sdb.
    let system = await bootSystem(dataDir);
    const signature = new Uint8Array(512);
    signature.set([0x55, 0xaa], 510);
    try {
      await client(BlockService, system.router.transport()).writeBlocks({
        device: "sdb",
        lba: 0n,
        data: signature,
      });
    } finally {
      await system.shutdown();
    }
    Deno.env.set(ROOT_DEVICE_VAR, "sdb");
    const refused = await failure(bootSystem(dataDir), Code.FAILED_PRECONDITION, Errno.ENOTEMPTY);
    expect(refused.message).toContain(`${ROOT_DEVICE_VAR}=sdb: sdb holds data that is not an LFSX volume`);
    expect(refused.message).toContain("byte 510 is not zero");
    Deno.env.delete(ROOT_DEVICE_VAR);

    system = await bootSystem(dataDir);
    try {
      const block = client(BlockService, system.router.transport());
      const left = await block.readBlocks({ device: "sdb", lba: 0n, count: 1 });
      expect([...left.data.subarray(508)]).toEqual([0, 0, 0x55, 0xaa]);
      expect((await block.readBlocks({ device: "sdb", lba: 8n, count: 8 })).data.every((b) => b === 0)).toBe(
        true,
      );
    } finally {
      await system.shutdown();
    }
  }, 60_000);

  it("stops the boot on a damaged LFSX volume and on a device that is not there", async () => {
    // nvme0n2 holds the root volume of the first case; both its superblock copies are damaged.
    const system = await bootSystem(dataDir);
    try {
      const block = client(BlockService, system.router.transport());
      const copies = (await block.readBlocks({ device: "nvme0n2", lba: 0n, count: 2 })).data;
      copies[100] ^= 0xff;
      copies[4096 + 100] ^= 0xff;
      await block.writeBlocks({ device: "nvme0n2", lba: 0n, data: copies, fua: true });
    } finally {
      await system.shutdown();
    }
    Deno.env.set(ROOT_DEVICE_VAR, "nvme0n2");
    const damaged = await failure(bootSystem(dataDir), Code.DATA_LOSS, Errno.EUCLEAN);
    expect(damaged.message).toContain("no valid LFSX superblock");

    Deno.env.set(ROOT_DEVICE_VAR, "nvme0n9");
    const missing = await failure(bootSystem(dataDir), Code.NOT_FOUND, Errno.ENODEV);
    expect(missing.message).toContain(`${ROOT_DEVICE_VAR}=nvme0n9: no block device "nvme0n9"`);
  }, 60_000);

  it("formats and checks a device through a running system with astra mkfs and fsck --device", async () => {
    const system = await bootSystem(dataDir);
    const endpoint = ["--endpoint", system.gatewayAddress!];
    try {
      const mkfs = await astra([
        "mkfs",
        "--device",
        "nvme0n1",
        "--label",
        "cli",
        "--journal-blocks",
        "128",
        ...endpoint,
      ]);
      expect(mkfs.stderr).toBe("");
      expect(mkfs.code).toBe(0);
      expect(mkfs.stdout).toMatch(
        /^nvme0n1: LFSX volume [0-9a-f]{32} "cli", 16384 blocks of 4096 bytes, journal 128 blocks, data from block 130\n$/,
      );
      const fsck = await astra(["fsck", "--device", "nvme0n1", ...endpoint]);
      expect(fsck.code).toBe(0);
      expect(fsck.stdout).toMatch(/^nvme0n1: clean; 0 entries, height 1, 1 leaves/);
      const blank = await astra(["fsck", "--device", "sda", ...endpoint]);
      expect(blank.code).toBe(1);
      expect(blank.stdout).toContain("problem: the volume cannot be mounted: no valid LFSX superblock");
      const missing = await astra(["mkfs", "--device", "nvme0n9", ...endpoint]);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toContain("NOT_FOUND");
      const both = await astra(["mkfs", "--device", "nvme0n1", "--image", "x.img"]);
      expect(both.code).toBe(2);
      expect(both.stderr).toContain("usage: ./astra mkfs");
    } finally {
      await system.shutdown();
    }
  }, 60_000);
});
