// The ELF loader's back half: it opens the program through storage, parses it (elf.ts), and
// builds the new address space through vmm and the machine, as fs/binfmt_elf.c does:
// - PT_LOAD segments are private file mappings, paged in on demand from the held open file;
//   the .bss beyond p_filesz is anonymous memory, and the page holding the end of the file bytes
//   reads zeros after them (Linux's padzero): it is mapped anonymous and its file bytes written;
// - the initial stack (stack.ts, auxv.ts) goes at the top of the user window in a grows-down
//   stack mapping, its pages faulted in and written through the machine;
// - the break starts at the end of the image.
// The hold OpenExecutable gives on the file is lent to vmm with the first file mapping, which then
// keeps it for as long as any address space maps the file (vmm's holds.ts); sched releases it
// itself only when no mapping took it. Everything created is undone if a later step fails: no
// address space, thread context or file hold outlives a failed exec.
import type { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import type { HeldFile, VfsService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import {
  AccessType,
  FaultCause,
  FaultResult,
  MappingKind,
  MappingRole,
  Placement,
  type VmmService,
} from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import type { Client } from "../../lib/rpc.ts";
import {
  ELF64_HEADER_SIZE,
  ELF64_PHDR_SIZE,
  type ElfLoadPlan,
  type LoadSegment,
  parseElfExecutable,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
} from "./elf.ts";
import { describe, log } from "./log.ts";
import { buildInitialStack, type InitialRegisters, type InitialStack, type RandomFill } from "./stack.ts";

/** What the loader asks of its peers. */
export interface LoaderPeers {
  vmm: Pick<
    Client<typeof VmmService>,
    "createAddressSpace" | "destroyAddressSpace" | "mmap" | "mprotect" | "setBreakBase" | "handlePageFault"
  >;
  machine: Pick<
    Client<typeof MachineService>,
    "createThreadContext" | "deleteThreadContext" | "writeVirtual"
  >;
  vfs: Pick<Client<typeof VfsService>, "openExecutable" | "readOpenFile" | "releaseOpenFile">;
}

/** The CPU as the auxiliary vector describes it (from machine.GetInfo). */
export interface CpuDescription {
  hwcap: number;
  hwcap2: number;
  platform: string;
  dcacheBlockSize: number;
  icacheBlockSize: number;
}

export const PAGE_SIZE = 4096n;
/** One past the highest stack byte: the top of ppc64's 128 TiB user window (no randomisation). */
export const STACK_TOP = 1n << 47n;
/** Linux maps 128 KiB of stack below the arguments at exec (setup_arg_pages's stack_expand). */
const STACK_EXPAND = 128n * 1024n;
/** The first read of a program: its ELF header and, almost always, its program headers. */
const HEADER_READ_BYTES = 4096n;

export interface LoadRequest {
  pid: number;
  /** The thread whose machine context is created in the new address space. */
  tid: number;
  /**
   * execve: the context only serves to write the new image and is discarded after; the calling
   * thread switches to the new space when the machine takes the EXEC answer.
   */
  temporaryContext: boolean;
  /** The path as execve names it (AT_EXECFN), resolved by storage from the working directory. */
  programPath: Uint8Array;
  argv: readonly Uint8Array[];
  envp: readonly Uint8Array[];
  credentials: { uid: number; euid: number; gid: number; egid: number };
  /** RLIMIT_STACK's soft limit. */
  stackLimit: bigint;
}

export interface LoadedProgram {
  spaceId: bigint;
  registers: InitialRegisters;
  /** The absolute path storage opened (/proc/PID/exe). */
  executablePath: string;
  plan: ElfLoadPlan;
  stack: InitialStack;
}

const decoder = new TextDecoder("utf-8", { fatal: false });

function alignDown(value: bigint): bigint {
  return value - (value % PAGE_SIZE);
}

/** The registers of a new thread context: the entry state, every other register zero. */
export function entryRegisters(entry: InitialRegisters) {
  const gprs = new Array<bigint>(32).fill(0n);
  gprs[1] = entry.r1;
  gprs[3] = entry.r3;
  gprs[4] = entry.r4;
  gprs[5] = entry.r5;
  gprs[6] = entry.r6;
  gprs[7] = entry.r7;
  gprs[12] = entry.r12;
  return { gprs, pc: entry.pc, vsrs: Array.from({ length: 64 }, () => new Uint8Array(16)) };
}

/**
 * The beginning of the file: the ELF header and the program header table (read again when the
 * table lies beyond the first read).
 */
async function readHeaders(peers: LoaderPeers, file: HeldFile): Promise<Uint8Array> {
  const first = file.size < HEADER_READ_BYTES ? file.size : HEADER_READ_BYTES;
  const { data } = await peers.vfs.readOpenFile({ openFileId: file.openFileId, offset: 0n, length: first });
  if (data.length < ELF64_HEADER_SIZE) return data;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const tableEnd = view.getBigUint64(32, true) + BigInt(view.getUint16(56, true) * ELF64_PHDR_SIZE);
  if (tableEnd <= BigInt(data.length) || tableEnd > file.size) return data;
  const whole = await peers.vfs.readOpenFile({ openFileId: file.openFileId, offset: 0n, length: tableEnd });
  return whole.data;
}

/** The page holding the end of a segment's file bytes: its file bytes are written once mapped. */
interface PartialPage {
  address: bigint;
  fileOffset: bigint;
  length: bigint;
  prot: number;
}

class Undo {
  readonly #steps: Array<{ what: string; run: () => Promise<unknown> }> = [];

  push(what: string, run: () => Promise<unknown>): void {
    this.#steps.push({ what, run });
  }

  async run(pid: number): Promise<void> {
    for (const step of this.#steps.reverse()) {
      try {
        await step.run();
      } catch (error) {
        log.warn("exec: undoing a step failed", {
          pid,
          step: step.what,
          error: describe(error),
        });
      }
    }
  }
}

function loadError(message: string, errno = Errno.EIO): AstraError {
  return new AstraError(Code.INTERNAL, errno, message, { argument: "program_path", service: "sched" });
}

/**
 * Maps one PT_LOAD segment; returns the partial page whose file bytes must be written once a
 * thread context can write to the space.
 */
async function mapSegment(
  peers: LoaderPeers,
  spaceId: bigint,
  segment: LoadSegment,
  file: HeldFile,
  hold: { lentToVmm: boolean },
): Promise<PartialPage | null> {
  const fileEnd = segment.vaddr + segment.filesz;
  const zeroFilled = segment.memsz > segment.filesz;
  // Without a .bss the whole last page comes from the file, bytes after the segment included, as
  // Linux maps it; with one, only the pages the file bytes fill completely.
  const filePagesEnd = segment.filesz === 0n
    ? segment.mapStart
    : zeroFilled
    ? alignDown(fileEnd)
    : segment.mapEnd;
  if (filePagesEnd > segment.mapStart) {
    await peers.vmm.mmap({
      spaceId,
      address: segment.mapStart,
      length: filePagesEnd - segment.mapStart,
      protection: segment.prot,
      kind: MappingKind.FILE_PRIVATE,
      placement: Placement.FIXED,
      file: {
        openFileId: file.openFileId,
        offset: segment.mapFileOffset,
        path: decoder.decode(file.path),
        device: file.device,
        inode: file.inode,
        readable: file.readable,
        writable: false,
      },
    });
    hold.lentToVmm = true;
  }
  let anonymousStart = filePagesEnd;
  let partial: PartialPage | null = null;
  if (zeroFilled && segment.filesz > 0n && fileEnd % PAGE_SIZE !== 0n) {
    const page = alignDown(fileEnd);
    await peers.vmm.mmap({
      spaceId,
      address: page,
      length: PAGE_SIZE,
      protection: segment.prot | PROT_WRITE,
      kind: MappingKind.ANONYMOUS_PRIVATE,
      placement: Placement.FIXED,
      populate: true,
    });
    partial = {
      address: page,
      fileOffset: segment.mapFileOffset + (page - segment.mapStart),
      length: fileEnd - page,
      prot: segment.prot,
    };
    anonymousStart = page + PAGE_SIZE;
  }
  if (segment.mapEnd > anonymousStart) {
    await peers.vmm.mmap({
      spaceId,
      address: anonymousStart,
      length: segment.mapEnd - anonymousStart,
      protection: segment.prot,
      kind: MappingKind.ANONYMOUS_PRIVATE,
      placement: Placement.FIXED,
    });
  }
  return partial;
}

/** The stack mapping: the arguments' pages plus 128 KiB below them, within RLIMIT_STACK. */
async function mapStack(
  peers: LoaderPeers,
  spaceId: bigint,
  stack: InitialStack,
  executable: boolean,
  stackLimit: bigint,
  tid: number,
): Promise<void> {
  const argumentsBottom = alignDown(stack.stackPointer);
  const limit = alignDown(stackLimit < STACK_TOP ? stackLimit : STACK_TOP / 2n);
  let bottom = argumentsBottom - STACK_EXPAND;
  if (STACK_TOP - bottom > limit) bottom = STACK_TOP - limit;
  if (bottom > argumentsBottom) bottom = argumentsBottom;
  await peers.vmm.mmap({
    spaceId,
    address: bottom,
    length: STACK_TOP - bottom,
    protection: PROT_READ | PROT_WRITE | (executable ? PROT_EXEC : 0),
    kind: MappingKind.ANONYMOUS_PRIVATE,
    placement: Placement.FIXED,
    growsDown: true,
    role: MappingRole.STACK,
  });
  for (let page = argumentsBottom; page < STACK_TOP; page += PAGE_SIZE) {
    const fault = await peers.vmm.handlePageFault({
      spaceId,
      address: page,
      access: AccessType.WRITE,
      cause: FaultCause.NOT_MAPPED,
      tid,
      cpu: 0,
    });
    if (fault.result !== FaultResult.MAPPED) {
      throw loadError(`the stack page at 0x${page.toString(16)} could not be mapped: ${fault.detail}`);
    }
  }
}

/**
 * Loads a program into a new address space with a thread context ready to start it. On failure
 * nothing it created remains and the error says why (ENOEXEC for a program that cannot run).
 */
export async function loadProgram(
  peers: LoaderPeers,
  cpu: CpuDescription,
  random: RandomFill,
  request: LoadRequest,
): Promise<LoadedProgram> {
  const undo = new Undo();
  try {
    const { file } = await peers.vfs.openExecutable({ pid: request.pid, path: request.programPath });
    if (!file) throw loadError("storage opened the executable but described no file");
    const hold = { lentToVmm: false };
    const releaseHold = async () => {
      if (!hold.lentToVmm) await peers.vfs.releaseOpenFile({ openFileId: file.openFileId });
    };
    undo.push("release the executable", releaseHold);

    const headers = await readHeaders(peers, file);
    const plan = parseElfExecutable(headers, { fileSize: file.size, pageSize: Number(PAGE_SIZE) });

    const { spaceId } = await peers.vmm.createAddressSpace({ pid: request.pid });
    undo.push("destroy the address space", () => peers.vmm.destroyAddressSpace({ spaceId }));

    const partialPages: PartialPage[] = [];
    for (const segment of plan.segments) {
      const partial = await mapSegment(peers, spaceId, segment, file, hold);
      if (partial) partialPages.push(partial);
    }
    const last = plan.segments[plan.segments.length - 1];
    await peers.vmm.setBreakBase({ spaceId, address: last.vaddr + last.memsz });

    const stack = buildInitialStack({
      plan,
      stackTop: STACK_TOP,
      argv: request.argv,
      envp: request.envp,
      execFn: request.programPath,
      credentials: request.credentials,
      hwcap: cpu.hwcap,
      hwcap2: cpu.hwcap2,
      platform: cpu.platform,
      basePlatform: cpu.platform,
      random,
      stackLimit: request.stackLimit,
      dcacheBlockSize: cpu.dcacheBlockSize,
      icacheBlockSize: cpu.icacheBlockSize,
    });
    await mapStack(peers, spaceId, stack, plan.stackExecutable, request.stackLimit, request.tid);

    await peers.machine.createThreadContext({
      context: { pid: request.pid, tid: request.tid, registers: entryRegisters(stack.registers), spaceId },
    });
    const dropContext = () => peers.machine.deleteThreadContext({ tid: request.tid });
    if (!request.temporaryContext) undo.push("delete the thread context", dropContext);
    try {
      for (const page of partialPages) {
        const { data } = await peers.vfs.readOpenFile({
          openFileId: file.openFileId,
          offset: page.fileOffset,
          length: page.length,
        });
        if (BigInt(data.length) !== page.length) {
          throw loadError(
            `the executable gave ${data.length} of the ${page.length} bytes at file offset ` +
              `0x${page.fileOffset.toString(16)}: it changed while loading`,
            Errno.ENOEXEC,
          );
        }
        await peers.machine.writeVirtual({ tid: request.tid, address: page.address, data });
        if ((page.prot & PROT_WRITE) === 0) {
          await peers.vmm.mprotect({
            spaceId,
            address: page.address,
            length: PAGE_SIZE,
            protection: page.prot,
          });
        }
      }
      await peers.machine.writeVirtual({ tid: request.tid, address: stack.stackPointer, data: stack.bytes });
    } finally {
      if (request.temporaryContext) await dropContext();
    }
    // Nothing maps the file (every segment zero-filled or written): the hold is still sched's.
    await releaseHold();
    return { spaceId, registers: stack.registers, executablePath: decoder.decode(file.path), plan, stack };
  } catch (error) {
    await undo.run(request.pid);
    throw error;
  }
}
