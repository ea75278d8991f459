// Corruption: a flipped bit anywhere — a tree node, an overflow extent, the journal, a
// superblock copy, the node table — is detected and reported as DATA_LOSS naming the block, and
// never returned as data.
import { describe, expect, it } from "vitest";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { BLOCK_SIZE, type DiskImage, MemoryBlockDevice } from "../../services/storage/lfsx/blockdev.ts";
import { Volume } from "../../services/storage/lfsx/volume.ts";
import { bytes, commitAll, formattedVolume, text } from "./helpers.ts";

const MAGIC = { node: 0x444e584c, mapping: 0x504d584c, overflow: 0x564f584c } as const;

/**
 * Damages (flips bit `mask` of byte `offset` in) a block that starts with `magic` and that the
 * volume really uses — the image also holds stale copies from earlier checkpoints — and returns
 * it. A candidate counts as live when a read-only check then reports it.
 */
async function damageLiveBlock(
  device: MemoryBlockDevice,
  magic: number,
  offset: number,
  mask: number,
  leafOnly = false,
): Promise<number> {
  const all = await device.readBlocks(0, device.blockCount);
  const view = new DataView(all.buffer);
  for (let block = 0; block < device.blockCount; block++) {
    if (view.getUint32(block * BLOCK_SIZE, true) !== magic) continue;
    if (leafOnly && all[block * BLOCK_SIZE + 4] !== 1) continue;
    device.corrupt(block, offset, mask);
    const outcome = await Volume.check(device).then(
      (report) => report.problems.join("\n"),
      (err) => String(err),
    );
    if (outcome.includes(`corrupt block ${block}`)) return block;
    device.corrupt(block, offset, mask);
  }
  throw new Error(`no live block with magic ${magic.toString(16)}`);
}

async function expectDataLoss(promise: Promise<unknown>, block: number): Promise<void> {
  const err = await promise.then(() => undefined, (e) => e);
  expect(err).toBeInstanceOf(AstraError);
  expect((err as AstraError).code).toBe(Code.DATA_LOSS);
  expect((err as AstraError).errno).toBe(Errno.EUCLEAN);
  expect((err as AstraError).message).toContain(`block ${block}`);
}

async function populated() {
  const { device, volume } = await formattedVolume(2048);
  for (let i = 0; i < 10; i++) {
    await commitAll(
      volume,
      Array.from({ length: 40 }, (_, j) => [`key${String(i * 40 + j).padStart(4, "0")}`, "v".repeat(80)]),
    );
  }
  await commitAll(volume, [["huge", "H".repeat(20_000)]]);
  await volume.unmount();
  return device;
}

describe("corruption detection", () => {
  it("reports a leaf with a flipped bit on access and in fsck, and still serves other leaves", async () => {
    const device = await populated();
    const damaged = await damageLiveBlock(device, MAGIC.node, 2000, 0x20, true);
    const volume = await Volume.mount(device);
    const report = await volume.fsck();
    expect(report.ok).toBe(false);
    expect(report.problems.join("\n")).toContain(`corrupt block ${damaged}`);
    // Find a key that lives in the damaged leaf: reading it fails, reading elsewhere works.
    let failures = 0;
    let successes = 0;
    for (let i = 0; i < 400; i++) {
      try {
        const value = await volume.read(bytes(`key${String(i).padStart(4, "0")}`));
        expect(text(value)).toBe("v".repeat(80));
        successes++;
      } catch (err) {
        expect(err).toMatchObject({ code: Code.DATA_LOSS });
        expect((err as AstraError).message).toContain(`corrupt block ${damaged}`);
        failures++;
      }
    }
    expect(failures).toBeGreaterThan(0);
    expect(successes).toBeGreaterThan(300);
  });

  it("reports a damaged overflow extent instead of returning its value", async () => {
    const device = await populated();
    // The extent's checksum covers all its blocks: damage its header block's data area.
    const extent = await damageLiveBlock(device, MAGIC.overflow, 3000, 0x01);
    const volume = await Volume.mount(device);
    await expectDataLoss(volume.read(bytes("huge")), extent);
    expect((await volume.fsck()).problems.join("\n")).toContain(`corrupt block ${extent}`);
  });

  it("refuses to mount when an acknowledged journal record is damaged", async () => {
    const { device, volume } = await formattedVolume(2048);
    for (let i = 0; i < 5; i++) await commitAll(volume, [[`k${i}`, `v${i}`]]);
    // Power cut: the commits live only in the journal, groups in the region's first blocks.
    device.powerCut({ count: 0 });
    const journalStart = 2;
    device.corrupt(journalStart + 1, 100, 0x08);
    await expectDataLoss(Volume.mount(device), journalStart + 1);
  });

  it("falls back to the other superblock copy, reports it and repairs the damaged one", async () => {
    const device = await populated();
    device.corrupt(0, 50, 0x02);
    const volume = await Volume.mount(device);
    expect(volume.mountReport.superblockProblems).toEqual(["copy 0 (block 0): checksum mismatch"]);
    expect(text(await volume.read(bytes("key0001")))).toBe("v".repeat(80));
    expect((await volume.fsck()).superblockProblems).toEqual([]);
    await volume.unmount();
    device.corrupt(0, 50, 0x02);
    device.corrupt(1, 50, 0x02);
    const failure = Volume.mount(device);
    await expect(failure).rejects.toMatchObject({ code: Code.DATA_LOSS });
    await expect(failure).rejects.toThrow(
      /copy 0 \(block 0\): checksum mismatch; copy 1 \(block 1\): checksum mismatch/,
    );
  });

  it("repairs a damaged superblock copy before it overwrites the good one", async () => {
    const device = await populated();
    device.corrupt(1, 50, 0x02);
    // Cut the power at every flush of the repairing mount, tearing the write in flight: with the
    // good copy written first, one cut would leave no valid copy at all.
    const cuts: DiskImage[] = [];
    device.onFlush = (d) => cuts.push(d.crashImage({ count: 0, tear: true }));
    const volume = await Volume.mount(device);
    device.onFlush = undefined;
    expect(volume.mountReport.superblockProblems).toEqual(["copy 1 (block 1): checksum mismatch"]);
    await volume.unmount();
    expect(cuts.length).toBeGreaterThan(2);
    for (const image of cuts) {
      const again = await Volume.mount(new MemoryBlockDevice(device.blockCount, { image }));
      expect(text(await again.read(bytes("key0399")))).toBe("v".repeat(80));
      await again.unmount();
    }
  });

  it("refuses to mount with a damaged node table page", async () => {
    const device = await populated();
    const page = await damageLiveBlock(device, MAGIC.mapping, 300, 0x40);
    await expectDataLoss(Volume.mount(device), page);
  });
});
