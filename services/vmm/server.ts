// The vmm service's RPC surface. Its boot step takes the hashed page table from pmm (physically
// contiguous, aligned to its size, zeroed: every HPTE invalid) and programs the machine's
// partition-table entry with it. Address spaces and faults arrive with issue #3.
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { PmmService } from "../../gen/astra/pmm/v1/pmm_pb.ts";
import { VmmService } from "../../gen/astra/vmm/v1/vmm_pb.ts";
import type { Peers, ServiceModule, SystemConfig } from "../../lib/module.ts";
import { client } from "../../lib/rpc.ts";
import { bindService, pendingMethods } from "../../lib/server.ts";

const ADDRESS_SPACE_WORK = "issue #3 (address spaces, page faults and the hashed page table entries)";
const HPTE_BYTES = 16;
const PAGE_SIZE = 4096;

/**
 * HTABSIZE for a machine with `memoryBytes` of RAM: like Linux, a hashed page table of 1/128 of RAM
 * rounded up to a power of two, and at least the architecture's 256 KiB minimum.
 */
export function htabSizeFor(memoryBytes: number): number {
  const wanted = Math.max(2 ** 18, memoryBytes / 128);
  return Math.min(28, Math.ceil(Math.log2(wanted)) - 18);
}

export function createVmm(peers: Peers, config: SystemConfig): ServiceModule {
  const pmm = client(PmmService, peers.pmm, "vmm");
  const machine = client(MachineService, peers.machine, "vmm");
  let htab: { origin: bigint; bytes: number } | undefined;

  const bound = bindService("vmm", VmmService, {
    ...pendingMethods(VmmService, ADDRESS_SPACE_WORK),
    getStatistics: () => ({
      htabOrigin: htab?.origin ?? 0n,
      htabBytes: BigInt(htab?.bytes ?? 0),
      hpteCapacity: BigInt((htab?.bytes ?? 0) / HPTE_BYTES),
    }),
  });

  return {
    name: "vmm",
    bound: [bound],
    async start() {
      // A restarted vmm adopts the table the machine's partition-table register still points at.
      const info = await machine.getInfo({}, { timeoutMs: 10_000 });
      if (!htab && info.htabOrigin !== 0n) {
        htab = { origin: info.htabOrigin, bytes: 2 ** (18 + info.htabSize) };
      }
      if (!htab) {
        const htabSize = htabSizeFor(config.memoryBytes);
        const bytes = 2 ** (18 + htabSize);
        const frames = bytes / PAGE_SIZE;
        const run = await pmm.allocFrames({
          count: BigInt(frames),
          alignment: BigInt(frames),
          zero: true,
          owner: "vmm:hpt",
          site: "vmm boot: hashed page table",
        }, { timeoutMs: 10_000 });
        await machine.setPartitionTable({ htabOrigin: run.address, htabSize }, { timeoutMs: 10_000 });
        htab = { origin: run.address, bytes };
      }
      return `hashed page table of ${htab.bytes / 1024} KiB at 0x${htab.origin.toString(16)} ` +
        `(${htab.bytes / HPTE_BYTES} HPTEs), partition table programmed`;
    },
    stop: () => Promise.resolve(),
  };
}
