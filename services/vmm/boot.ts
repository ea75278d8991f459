// vmm's boot step. The first start takes the hashed page table from pmm (physically contiguous,
// aligned to its size, zeroed: every HPTE invalid) and programs the machine's partition-table
// entry with it. A restart finds the table the partition table still points at and adopts it,
// but nothing that was in it: the address spaces died with the previous process, so the table is
// cleared, every TLB flushed, and then every frame they held goes back to pmm.
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { PmmService } from "../../gen/astra/pmm/v1/pmm_pb.ts";
import type { Logger } from "../../lib/log.ts";
import { htabBytes } from "../../lib/ppc/hpt.ts";
import type { Client } from "../../lib/rpc.ts";
import { type OpenFileSource, OpenFileStore } from "./files.ts";
import { OwnedFrames } from "./frames.ts";
import { FileHolds } from "./holds.ts";
import { HashPageTable } from "./hpt.ts";
import { MachineMemory, MachineTlb, TranslationBatch } from "./remote.ts";
import { AddressSpaces } from "./spaces.ts";

const PAGE_SIZE = 4096;
const TABLE_OWNER = "vmm:hpt";
const TIMEOUT_MS = 10_000;

/**
 * HTABSIZE for a machine with `memoryBytes` of RAM: like Linux, a hashed page table of 1/128 of RAM
 * rounded up to a power of two, and at least the architecture's 256 KiB minimum.
 */
export function htabSizeFor(memoryBytes: number): number {
  const wanted = Math.max(2 ** 18, memoryBytes / 128);
  return Math.min(28, Math.ceil(Math.log2(wanted)) - 18);
}

export interface VmmPeers {
  machine: Client<typeof MachineService>;
  pmm: Client<typeof PmmService>;
}

export interface BootSettings {
  memoryBytes: number;
  cpus: number;
  files: OpenFileSource;
  log: Logger;
}

export async function bootAddressSpaces(
  peers: VmmPeers,
  settings: BootSettings,
): Promise<{ spaces: AddressSpaces; line: string }> {
  const { machine, pmm } = peers;
  const tlb = new MachineTlb(machine);
  const batch = new TranslationBatch(machine, tlb);
  const frames = new OwnedFrames(pmm, batch, settings.log);
  const info = await machine.getInfo({}, { timeoutMs: TIMEOUT_MS });

  let origin: number, sizeField: number, history: string;
  if (info.htabOrigin !== 0n) {
    origin = Number(info.htabOrigin);
    sizeField = info.htabSize;
    await machine.fillPhysical({ address: info.htabOrigin, length: BigInt(htabBytes(sizeField)), value: 0 }, {
      timeoutMs: TIMEOUT_MS,
    });
    await tlb.invalidate({ scope: "all" });
    const reclaimed = await frames.reclaimOrphans();
    history = `adopted and cleared; ${reclaimed.frames} frames of ${reclaimed.owners} ` +
      "address-space owners from before the restart returned to pmm";
  } else {
    // A table an earlier start allocated but never programmed would otherwise stay allocated.
    await pmm.releaseOwner({ owner: TABLE_OWNER }, { timeoutMs: TIMEOUT_MS });
    sizeField = htabSizeFor(settings.memoryBytes);
    const frameCount = htabBytes(sizeField) / PAGE_SIZE;
    const run = await pmm.allocFrames({
      count: BigInt(frameCount),
      alignment: BigInt(frameCount),
      zero: true,
      owner: TABLE_OWNER,
      site: "vmm boot: hashed page table",
    }, { timeoutMs: TIMEOUT_MS });
    await machine.setPartitionTable({ htabOrigin: run.address, htabSize: sizeField }, {
      timeoutMs: TIMEOUT_MS,
    });
    origin = Number(run.address);
    history = "partition table programmed";
  }

  const hpt = new HashPageTable({ origin, sizeField }, batch);
  const files = new OpenFileStore(settings.files);
  const spaces = new AddressSpaces({
    memory: new MachineMemory(batch),
    files,
    holds: new FileHolds((openFileId) => files.release(openFileId), settings.log),
    hpt,
    batch,
    tlb,
    frames,
    cpus: settings.cpus,
  });
  const line = `hashed page table of ${hpt.bytes / 1024} KiB at 0x${origin.toString(16)} ` +
    `(${hpt.capacity} HPTEs), ${history}`;
  return { spaces, line };
}
