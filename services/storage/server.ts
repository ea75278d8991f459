// The storage service's RPC surface. The AHCI and NVMe drivers and the block layer arrive with
// issue #5; until a driver has probed a controller there are no devices, volumes or open files.
import { AhciService } from "../../gen/astra/storage/v1/ahci_pb.ts";
import { BlockService } from "../../gen/astra/storage/v1/block_pb.ts";
import { NvmeService } from "../../gen/astra/storage/v1/nvme_pb.ts";
import { LfsxService } from "../../gen/astra/storage/v1/lfsx_pb.ts";
import { VfsService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import type { ServiceModule } from "../../lib/module.ts";
import { bindService, pendingMethods } from "../../lib/server.ts";

const DRIVER_WORK = "issue #5 (the AHCI and NVMe drivers and the block layer)";
const LFSX_WORK = "issue #6 (the LFSX engine served over gRPC)";
const VFS_WORK = "issue #3 (files, directories and descriptors for guest programs)";

export function createStorage(): ServiceModule {
  const block = bindService("storage", BlockService, {
    ...pendingMethods(BlockService, DRIVER_WORK),
    getStatistics: () => ({ ahciPorts: 0, nvmeNamespaces: 0, devices: [], mountedVolumes: 0, openFiles: 0 }),
  });
  const ahci = bindService("storage", AhciService, pendingMethods(AhciService, DRIVER_WORK));
  const nvme = bindService("storage", NvmeService, pendingMethods(NvmeService, DRIVER_WORK));
  const lfsx = bindService("storage", LfsxService, pendingMethods(LfsxService, LFSX_WORK));
  const vfs = bindService("storage", VfsService, pendingMethods(VfsService, VFS_WORK));
  return {
    name: "storage",
    bound: [block, ahci, nvme, lfsx, vfs],
    start: () =>
      Promise.resolve("block layer ready; no controllers probed yet (drivers arrive with issue #5)"),
    stop: () => Promise.resolve(),
  };
}
