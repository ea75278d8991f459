// The vmm service's RPC surface: each handler decodes and validates its request, calls the
// address spaces (spaces.ts), and encodes the answer. The boot step (boot.ts) brings up the
// hashed page table; until it has, calls answer UNAVAILABLE.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { PmmService } from "../../gen/astra/pmm/v1/pmm_pb.ts";
import { VfsService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import {
  Advice,
  type FileBacking,
  MappingKind,
  MappingRole,
  PageFlag,
  PageSize,
  Placement,
  type SegmentSchema,
  VmmService,
} from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { Errno, unavailable } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import type { Peers, ServiceModule, SystemConfig } from "../../lib/module.ts";
import { segmentShift, type SlbEntry } from "../../lib/ppc/hpt.ts";
import { client } from "../../lib/rpc.ts";
import { bindService } from "../../lib/server.ts";
import { bootAddressSpaces } from "./boot.ts";
import { type BackedFile, backedFile, type OpenFileSource } from "./files.ts";
import { runMemoryCall, serveMemoryCalls } from "./kernel_calls.ts";
import { handlePageFault, servePageFaults } from "./page_faults.ts";
import { type AddressSpaces, ALL_PAGE_FLAGS, type MappingInfo } from "./spaces.ts";
import { StorageFileSource } from "./storage_files.ts";
import {
  MADV_DOFORK,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_NORMAL,
  MADV_RANDOM,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  memoryError,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  userNumber,
} from "./vma.ts";

export interface VmmOptions {
  /** Where file mappings read their pages; storage's open file descriptions unless given. */
  files?: OpenFileSource;
}

const PAGE_SIZE = 4096;

const ADVICE: Partial<Record<Advice, number>> = {
  [Advice.NORMAL]: MADV_NORMAL,
  [Advice.RANDOM]: MADV_RANDOM,
  [Advice.SEQUENTIAL]: MADV_SEQUENTIAL,
  [Advice.WILLNEED]: MADV_WILLNEED,
  [Advice.DONTNEED]: MADV_DONTNEED,
  [Advice.FREE]: MADV_FREE,
  [Advice.DONTFORK]: MADV_DONTFORK,
  [Advice.DOFORK]: MADV_DOFORK,
};

const KIND_FLAGS: Partial<Record<MappingKind, number>> = {
  [MappingKind.ANONYMOUS_PRIVATE]: MAP_PRIVATE | MAP_ANONYMOUS,
  [MappingKind.ANONYMOUS_SHARED]: MAP_SHARED | MAP_ANONYMOUS,
  [MappingKind.FILE_PRIVATE]: MAP_PRIVATE,
  [MappingKind.FILE_SHARED]: MAP_SHARED,
};

const PLACEMENT_FLAGS: Partial<Record<Placement, number>> = {
  [Placement.UNSPECIFIED]: 0,
  [Placement.FIXED]: MAP_FIXED,
  [Placement.FIXED_NOREPLACE]: MAP_FIXED_NOREPLACE,
};

function invalid(argument: string, message: string) {
  return memoryError(Errno.EINVAL, argument, message);
}

function pageAligned(value: bigint, argument: string): number {
  const number = userNumber(value);
  if (number % PAGE_SIZE !== 0) throw invalid(argument, `0x${value.toString(16)} is not page-aligned`);
  return number;
}

function pageSizeOf(value: bigint, argument: string): number {
  const size = pageAligned(value, argument);
  if (size === 0) throw invalid(argument, "a size of zero");
  return size;
}

function baseTranslation(pageSize: PageSize): void {
  if (pageSize !== PageSize.PAGE_SIZE_UNSPECIFIED && pageSize !== PageSize.PAGE_SIZE_4K) {
    throw invalid(
      "page_size",
      `${PageSize[pageSize] ?? pageSize} translations need segments of larger base pages; user address ` +
        "spaces have 4 KiB base pages",
    );
  }
}

function explicitFlags(flags: number): number {
  if (flags & ~ALL_PAGE_FLAGS) {
    throw invalid("flags", `unknown page flags 0x${(flags & ~ALL_PAGE_FLAGS).toString(16)}`);
  }
  if (flags & PageFlag.COW) throw invalid("flags", "an explicit page cannot be copy-on-write");
  return flags;
}

function protection(value: number): number {
  if (value & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) {
    throw invalid("protection", `unknown protection bits 0x${value.toString(16)}`);
  }
  return value;
}

function fileOf(file: FileBacking | undefined): { file: BackedFile; offset: number } {
  if (!file || file.openFileId === 0n) {
    throw memoryError(Errno.EBADF, "file", "a file mapping needs the open file description it maps");
  }
  return { file: backedFile(file), offset: userNumber(file.offset) };
}

function encodeSegment(entry: SlbEntry): MessageInitShape<typeof SegmentSchema> {
  return {
    esid: BigInt(entry.esid),
    vsid: BigInt(entry.vsid),
    segmentShift: segmentShift(entry.segmentSize),
    problemKey: entry.kp,
    noExecute: entry.noExecute,
    basePageShift: entry.basePageShift,
  };
}

function encodeMapping(mapping: MappingInfo) {
  const file = mapping.file;
  return {
    start: BigInt(mapping.start),
    end: BigInt(mapping.end),
    protection: mapping.prot,
    kind: mapping.kind,
    role: mapping.role,
    file: file
      ? {
        openFileId: file.file.openFileId,
        offset: BigInt(file.offset),
        path: file.file.path,
        device: file.file.device,
        inode: BigInt(file.file.inode),
        readable: file.file.readable,
        writable: file.file.writable,
      }
      : undefined,
    residentPages: BigInt(mapping.residentPages),
    cowPages: BigInt(mapping.cowPages),
    mapsLine: mapping.mapsLine,
  };
}

export function createVmm(peers: Peers, config: SystemConfig, options: VmmOptions = {}): ServiceModule {
  const log = logger("vmm");
  const pmm = client(PmmService, peers.pmm, "vmm");
  const machine = client(MachineService, peers.machine, "vmm");
  // Storage boots after vmm: its client is first used by a file mapping, never at boot.
  const files = options.files ?? new StorageFileSource(client(VfsService, peers.storage, "vmm"));
  let booted: AddressSpaces | undefined;
  const spaces = (): AddressSpaces => {
    if (!booted) throw unavailable("vmm is starting: the hashed page table is not set up yet");
    return booted;
  };

  const bound = bindService("vmm", VmmService, {
    createAddressSpace: async (req) => {
      if (req.pid < 1) throw invalid("pid", `pid ${req.pid} is not a process id`);
      return { spaceId: await spaces().create(req.pid) };
    },
    destroyAddressSpace: async (req) => {
      const result = await spaces().destroy(req.spaceId);
      return { mappingsRemoved: BigInt(result.mappingsRemoved), framesFreed: BigInt(result.framesFreed) };
    },
    mapPage: async (req) => {
      baseTranslation(req.pageSize);
      const va = pageAligned(req.virtualAddress, "virtual_address");
      const pa = pageAligned(req.physicalAddress, "physical_address");
      await spaces().mapRegion(req.spaceId, va, pa, PAGE_SIZE, explicitFlags(req.flags));
      return {};
    },
    unmapPage: async (req) => {
      const result = await spaces().unmapPage(
        req.spaceId,
        pageAligned(req.virtualAddress, "virtual_address"),
      );
      return { physicalAddress: BigInt(result.physical), dirty: result.dirty };
    },
    mapRegion: async (req) => {
      baseTranslation(req.pageSize);
      const va = pageAligned(req.virtualAddress, "virtual_address");
      const pa = pageAligned(req.physicalAddress, "physical_address");
      const size = pageSizeOf(req.size, "size");
      const pages = await spaces().mapRegion(req.spaceId, va, pa, size, explicitFlags(req.flags));
      return { pagesMapped: BigInt(pages) };
    },
    unmapRegion: async (req) => {
      const va = pageAligned(req.virtualAddress, "virtual_address");
      const size = pageSizeOf(req.size, "size");
      return { pagesUnmapped: BigInt(await spaces().unmapRegion(req.spaceId, va, size)) };
    },
    getPhysical: async (req) => {
      const state = await spaces().pageState(req.spaceId, userNumber(req.virtualAddress));
      return { physicalAddress: BigInt(state.physical), pageSize: PageSize.PAGE_SIZE_4K, flags: state.flags };
    },
    handlePageFault: async (req) => await handlePageFault(spaces(), config.cpus, req),
    pageFaults: (requests) =>
      servePageFaults(requests, async (fault) => await handlePageFault(spaces(), config.cpus, fault), log),
    switchAddressSpace: async (req) => {
      const result = await spaces().switchTo(req.spaceId, req.cpu);
      return { segments: result.segments.map(encodeSegment), previousSpaceId: result.previous };
    },
    copyOnWrite: async (req) => {
      const va = pageAligned(req.virtualAddress, "virtual_address");
      const size = pageSizeOf(req.size, "size");
      const shared = await spaces().copyOnWrite(req.sourceSpaceId, req.destinationSpaceId, va, size);
      return { pagesShared: BigInt(shared) };
    },
    invalidateTlb: async (req) => ({
      entriesInvalidated: await spaces().invalidatePage(
        req.spaceId,
        userNumber(req.virtualAddress),
        req.cpus,
      ),
    }),
    invalidateTlbAll: async (req) => ({
      entriesInvalidated: await spaces().invalidateAll(req.spaceId, req.cpus),
    }),
    setPageFlags: async (req) => {
      if (req.flags & ~ALL_PAGE_FLAGS) {
        throw invalid("flags", `unknown page flags 0x${req.flags.toString(16)}`);
      }
      const previous = await spaces().setPageFlags(req.spaceId, userNumber(req.virtualAddress), req.flags);
      return { previousFlags: previous };
    },
    getPageFlags: async (req) => {
      const state = await spaces().pageState(req.spaceId, userNumber(req.virtualAddress));
      return {
        flags: state.flags,
        pageSize: PageSize.PAGE_SIZE_4K,
        physicalAddress: BigInt(state.physical - (state.physical % PAGE_SIZE)),
      };
    },
    mmap: async (req) => {
      const kindFlags = KIND_FLAGS[req.kind];
      if (kindFlags === undefined) {
        throw invalid("kind", `mapping kind ${req.kind} is not one of MappingKind`);
      }
      const placementFlags = PLACEMENT_FLAGS[req.placement];
      if (placementFlags === undefined) throw invalid("placement", `placement ${req.placement} is unknown`);
      if (!(req.role in MappingRole)) throw invalid("role", `mapping role ${req.role} is unknown`);
      const anonymous = (kindFlags & MAP_ANONYMOUS) !== 0;
      // The caller's hold on the file becomes vmm's with the first mapping of it (holds.ts).
      const backing = anonymous ? null : fileOf(req.file);
      const flags = kindFlags | placementFlags | (req.populate ? MAP_POPULATE : 0) |
        (req.growsDown ? MAP_GROWSDOWN : 0) | (req.noReserve ? MAP_NORESERVE : 0);
      const address = await spaces().mmap(req.spaceId, {
        address: userNumber(req.address),
        length: userNumber(req.length),
        prot: protection(req.protection),
        flags,
        file: backing?.file ?? null,
        offset: backing?.offset ?? 0,
        role: req.role,
      });
      return { address: BigInt(address) };
    },
    munmap: async (req) => ({
      pagesUnmapped: BigInt(
        await spaces().munmap(req.spaceId, userNumber(req.address), userNumber(req.length)),
      ),
    }),
    mprotect: async (req) => {
      await spaces().mprotect(
        req.spaceId,
        userNumber(req.address),
        userNumber(req.length),
        protection(req.protection),
      );
      return {};
    },
    mremap: async (req) => {
      const flags = (req.mayMove ? MREMAP_MAYMOVE : 0) | (req.fixed ? MREMAP_FIXED : 0) |
        (req.dontUnmap ? MREMAP_DONTUNMAP : 0);
      const address = await spaces().mremap(
        req.spaceId,
        userNumber(req.oldAddress),
        userNumber(req.oldSize),
        userNumber(req.newSize),
        flags,
        userNumber(req.newAddress),
      );
      return { address: BigInt(address) };
    },
    madvise: async (req) => {
      const advice = ADVICE[req.advice];
      if (advice === undefined) throw invalid("advice", `advice ${req.advice} is not one of Advice`);
      const pages = await spaces().madvise(
        req.spaceId,
        userNumber(req.address),
        userNumber(req.length),
        advice,
      );
      return { pagesAffected: BigInt(pages) };
    },
    brk: async (req) => ({ address: BigInt(await spaces().brk(req.spaceId, userNumber(req.address))) }),
    setBreakBase: async (req) => ({
      address: BigInt(await spaces().setBreakBase(req.spaceId, userNumber(req.address))),
    }),
    forkAddressSpace: async (req) => {
      if (req.childPid < 1) throw invalid("child_pid", `pid ${req.childPid} is not a process id`);
      const result = await spaces().fork(req.parentSpaceId, req.childPid);
      return { childSpaceId: result.childId, pagesShared: BigInt(result.pagesShared) };
    },
    listMappings: async (req) => {
      const listing = await spaces().mappings(req.spaceId);
      return {
        mappings: listing.mappings.map(encodeMapping),
        breakBase: BigInt(listing.breakBase),
        breakEnd: BigInt(listing.breakEnd),
      };
    },
    getSegment: async (req) => ({
      segment: encodeSegment(await spaces().segment(req.spaceId, userNumber(req.address))),
    }),
    kernelCall: (requests) => serveMemoryCalls(requests, (request) => runMemoryCall(spaces, request, log)),
    getStatistics: () => {
      if (!booted) return {};
      const s = booted.statistics();
      const f = s.faults;
      return {
        addressSpaces: BigInt(s.addressSpaces),
        mappings: BigInt(s.mappings),
        residentPages: BigInt(s.residentPages),
        cowSharedFrames: BigInt(s.cowSharedFrames),
        faults: {
          demandZero: BigInt(f.demandZero),
          fileRead: BigInt(f.fileRead),
          cowCopy: BigInt(f.cowCopy),
          cowReuse: BigInt(f.cowReuse),
          reinserted: BigInt(f.reinserted),
          stackGrowth: BigInt(f.stackGrowth),
          sharedPage: BigInt(f.sharedPage),
          sigsegvMaperr: BigInt(f.sigsegvMaperr),
          sigsegvAccerr: BigInt(f.sigsegvAccerr),
          sigbus: BigInt(f.sigbus),
        },
        htabOrigin: BigInt(s.htabOrigin),
        htabBytes: BigInt(s.htabBytes),
        hpteValid: BigInt(s.hpteValid),
        hpteCapacity: BigInt(s.hpteCapacity),
        hpteSecondary: BigInt(s.hpteSecondary),
        hpteEvictions: BigInt(s.hpteEvictions),
        tlbInvalidations: BigInt(s.tlbInvalidations),
      };
    },
  });

  return {
    name: "vmm",
    bound: [bound],
    async start() {
      const { spaces, line } = await bootAddressSpaces({ machine, pmm }, {
        memoryBytes: config.memoryBytes,
        cpus: config.cpus,
        files,
        log,
      });
      booted = spaces;
      return line;
    },
    stop: () => Promise.resolve(),
  };
}
