// What a device holds, judged before anything is written to it: an LFSX volume, nothing, or other
// data. The storage service formats its root volume onto a block device only when the device is
// blank, so a device that holds a partition table or another file system is never overwritten
// by a first boot.
//
// Blank means the first MiB reads as zeros: partition tables (MBR and GPT in the first sectors),
// ext2/3/4 (at 1 KiB), XFS (at 0), Btrfs (at 64 KiB), ISO 9660 (at 32 KiB), swap and LVM labels
// all put their signature there. A device with the LFSX magic in either superblock copy holds an
// LFSX volume, intact or not; mounting it says which.
import { BLOCK_SIZE, type BlockDevice } from "./blockdev.ts";
import { SUPERBLOCK_COPIES, SUPERBLOCK_MAGIC } from "./superblock.ts";

/** How much of the start of a device must read as zeros for it to count as blank. */
export const PROBE_BYTES = 1024 * 1024;

export type DeviceContents =
  | { kind: "lfsx" }
  | { kind: "blank" }
  /** Something else: `offset` is the first byte that is not zero. */
  | { kind: "other"; offset: number };

export async function probeDevice(device: BlockDevice): Promise<DeviceContents> {
  const blocks = Math.min(device.blockCount, PROBE_BYTES / BLOCK_SIZE);
  const start = await device.readBlocks(0, blocks);
  const view = new DataView(start.buffer, start.byteOffset, start.length);
  for (let copy = 0; copy < Math.min(SUPERBLOCK_COPIES, blocks); copy++) {
    if (view.getUint32(copy * BLOCK_SIZE, true) === SUPERBLOCK_MAGIC) return { kind: "lfsx" };
  }
  const offset = start.findIndex((byte) => byte !== 0);
  return offset < 0 ? { kind: "blank" } : { kind: "other", offset };
}
