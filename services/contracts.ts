// Every contract each service process serves, for the generic client and the contract tests.
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceName } from "../lib/config.ts";
import { InterruptService } from "../gen/astra/machine/v1/interrupts_pb.ts";
import { MachineService } from "../gen/astra/machine/v1/machine_pb.ts";
import { PmmService } from "../gen/astra/pmm/v1/pmm_pb.ts";
import { SchedService } from "../gen/astra/sched/v1/sched_pb.ts";
import { AhciService } from "../gen/astra/storage/v1/ahci_pb.ts";
import { BlockService } from "../gen/astra/storage/v1/block_pb.ts";
import { LfsxService } from "../gen/astra/storage/v1/lfsx_pb.ts";
import { NvmeService } from "../gen/astra/storage/v1/nvme_pb.ts";
import { VfsService } from "../gen/astra/storage/v1/vfs_pb.ts";
import { VmmService } from "../gen/astra/vmm/v1/vmm_pb.ts";

/** The first contract of each service is its own; it carries the statistics RPC. */
export const CONTRACTS: Record<ServiceName, readonly DescService[]> = {
  machine: [MachineService, InterruptService],
  pmm: [PmmService],
  vmm: [VmmService],
  storage: [BlockService, AhciService, NvmeService, LfsxService, VfsService],
  sched: [SchedService],
};
