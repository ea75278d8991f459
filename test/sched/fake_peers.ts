// In-memory stand-ins for the peers sched calls (vmm, the machine, storage's VFS), for the unit
// tests of the loader and the kernel. They keep what a test checks: mappings with their
// protections, resident pages and their bytes (writes through a thread need a resident, writable
// page, as the machine's WriteVirtual does), thread contexts, descriptor tables, held files and the
// order of every call, and fail a chosen call on demand to test unwinding. As vmm does, the first
// file mapping of a held file takes the loader's hold over, released when no space maps it.
import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  CreateThreadContextResponseSchema,
  DeleteThreadContextResponseSchema,
  GetInfoResponseSchema,
  GetThreadContextResponseSchema,
  RunThreadResponseSchema,
  SetThreadContextResponseSchema,
  StartCpuResponseSchema,
  WriteVirtualResponseSchema,
} from "../../gen/astra/machine/v1/machine_pb.ts";
import { type Registers, RegistersSchema } from "../../gen/astra/machine/v1/cpu_pb.ts";
import {
  AttachProcessResponseSchema,
  DetachProcessResponseSchema,
  ExecProcessResponseSchema,
  OpenExecutableResponseSchema,
  ReadOpenFileResponseSchema,
  ReleaseOpenFileResponseSchema,
} from "../../gen/astra/storage/v1/vfs_pb.ts";
import {
  CreateAddressSpaceResponseSchema,
  DestroyAddressSpaceResponseSchema,
  FaultResult,
  ForkAddressSpaceResponseSchema,
  HandlePageFaultResponseSchema,
  MappingKind,
  MmapResponseSchema,
  MprotectResponseSchema,
  SetBreakBaseResponseSchema,
} from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import type { SchedPeers } from "../../services/sched/kernel.ts";

const PAGE = 4096n;
const WRITE = 2;

export interface FakeMapping {
  start: bigint;
  end: bigint;
  prot: number;
  kind: MappingKind;
  /** For file mappings: the open file and the file offset of `start`. */
  openFileId: bigint;
  fileOffset: bigint;
  growsDown: boolean;
  role: number;
}

export interface FakeSpace {
  pid: number;
  mappings: FakeMapping[];
  pages: Map<bigint, Uint8Array>;
  breakBase: bigint;
}

function reply<D extends DescMessage>(schema: D, init: MessageInitShape<D> = {} as MessageInitShape<D>) {
  return Promise.resolve(create(schema, init) as MessageShape<D>);
}

function fault(message: string, errno = Errno.EFAULT): AstraError {
  return new AstraError(Code.INVALID_ARGUMENT, errno, message);
}

export class FakePeers implements SchedPeers {
  /** Every call, as "service.method", in order. */
  readonly calls: string[] = [];
  /** The call that fails next (with EIO), e.g. "machine.writeVirtual". */
  failOn: string | null = null;
  readonly files = new Map<string, Uint8Array>();
  readonly openFiles = new Map<bigint, { path: string; bytes: Uint8Array }>();
  readonly spaces = new Map<bigint, FakeSpace>();
  readonly contexts = new Map<number, { pid: number; spaceId: bigint; registers: Registers }>();
  readonly attached = new Set<number>();
  readonly executables = new Map<number, string>();
  readonly dispatched: Array<{ cpu: number; tid: number }> = [];
  hwcap = 0xdc002000n;
  hwcap2 = 0x8ee00000n;
  #nextFileId = 100n;
  #nextSpaceId = 1n;

  #enter(name: string): void {
    this.calls.push(name);
    if (this.failOn === name) {
      this.failOn = null;
      throw new AstraError(Code.INTERNAL, Errno.EIO, `${name} failed on purpose`);
    }
  }

  count(name: string): number {
    return this.calls.filter((c) => c === name).length;
  }

  space(spaceId: bigint): FakeSpace {
    const space = this.spaces.get(spaceId);
    if (!space) throw fault(`no address space ${spaceId}`, Errno.ENOENT);
    return space;
  }

  #mappingAt(space: FakeSpace, address: bigint): FakeMapping | undefined {
    return space.mappings.find((m) => address >= m.start && address < m.end);
  }

  /** Makes a page resident: zeros, or the file's bytes for a file mapping. */
  #fault(space: FakeSpace, address: bigint): boolean {
    const page = address - (address % PAGE);
    const mapping = this.#mappingAt(space, page);
    if (!mapping) return false;
    if (space.pages.has(page)) return true;
    const bytes = new Uint8Array(Number(PAGE));
    if (mapping.kind === MappingKind.FILE_PRIVATE) {
      const file = this.openFiles.get(mapping.openFileId)!.bytes;
      const offset = Number(mapping.fileOffset + (page - mapping.start));
      bytes.set(file.subarray(Math.min(offset, file.length), Math.min(offset + Number(PAGE), file.length)));
    }
    space.pages.set(page, bytes);
    return true;
  }

  #unmap(space: FakeSpace, start: bigint, end: bigint): void {
    const kept: FakeMapping[] = [];
    for (const m of space.mappings) {
      if (m.end <= start || m.start >= end) {
        kept.push(m);
        continue;
      }
      if (m.start < start) kept.push({ ...m, end: start });
      if (m.end > end) kept.push({ ...m, start: end, fileOffset: m.fileOffset + (end - m.start) });
    }
    space.mappings = kept.sort((a, b) => Number(a.start - b.start));
    for (const page of [...space.pages.keys()]) if (page >= start && page < end) space.pages.delete(page);
  }

  /** Bytes of a thread's memory, as the guest would read them. */
  read(spaceId: bigint, address: bigint, length: number): Uint8Array {
    const space = this.space(spaceId);
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const at = address + BigInt(i);
      if (!this.#fault(space, at)) throw fault(`0x${at.toString(16)} is not mapped`);
      out[i] = space.pages.get(at - (at % PAGE))![Number(at % PAGE)];
    }
    return out;
  }

  /** Stores bytes in a space as the guest would (for a test's setup), faulting pages in. */
  write(spaceId: bigint, address: bigint, data: Uint8Array): void {
    const space = this.space(spaceId);
    for (let i = 0; i < data.length; i++) {
      const at = address + BigInt(i);
      if (!this.#fault(space, at)) throw fault(`0x${at.toString(16)} is not mapped`);
      space.pages.get(at - (at % PAGE))![Number(at % PAGE)] = data[i];
    }
  }

  readonly vmm: SchedPeers["vmm"] = {
    createAddressSpace: (req = {}) => {
      this.#enter("vmm.createAddressSpace");
      const spaceId = this.#nextSpaceId++;
      this.spaces.set(spaceId, { pid: req.pid ?? 0, mappings: [], pages: new Map(), breakBase: 0n });
      return reply(CreateAddressSpaceResponseSchema, { spaceId });
    },
    destroyAddressSpace: (req = {}) => {
      this.#enter("vmm.destroyAddressSpace");
      const gone = this.space(req.spaceId ?? 0n);
      this.spaces.delete(req.spaceId ?? 0n);
      // vmm keeps the hold a file mapping was lent until no space maps the file.
      for (const m of gone.mappings) {
        const stillMapped = [...this.spaces.values()].some((s) =>
          s.mappings.some((o) => o.openFileId === m.openFileId)
        );
        if (m.kind === MappingKind.FILE_PRIVATE && !stillMapped) this.openFiles.delete(m.openFileId);
      }
      return reply(DestroyAddressSpaceResponseSchema);
    },
    mmap: (req = {}) => {
      this.#enter("vmm.mmap");
      const space = this.space(req.spaceId ?? 0n);
      const start = req.address ?? 0n;
      const end = start + (req.length ?? 0n);
      if (start % PAGE !== 0n || end % PAGE !== 0n || end <= start) {
        throw fault("unaligned mmap", Errno.EINVAL);
      }
      this.#unmap(space, start, end);
      const kind = req.kind ?? MappingKind.UNSPECIFIED;
      space.mappings.push({
        start,
        end,
        prot: req.protection ?? 0,
        kind,
        openFileId: req.file?.openFileId ?? 0n,
        fileOffset: req.file?.offset ?? 0n,
        growsDown: req.growsDown ?? false,
        role: req.role ?? 0,
      });
      space.mappings.sort((a, b) => Number(a.start - b.start));
      if (req.populate) { for (let p = start; p < end; p += PAGE) this.#fault(space, p); }
      return reply(MmapResponseSchema, { address: start });
    },
    mprotect: (req = {}) => {
      this.#enter("vmm.mprotect");
      const space = this.space(req.spaceId ?? 0n);
      const start = req.address ?? 0n;
      const end = start + (req.length ?? 0n);
      const changed: FakeMapping[] = [];
      for (const m of space.mappings) {
        if (m.end <= start || m.start >= end) {
          changed.push(m);
          continue;
        }
        if (m.start < start) changed.push({ ...m, end: start });
        const from = m.start < start ? start : m.start;
        const to = m.end > end ? end : m.end;
        changed.push({
          ...m,
          start: from,
          end: to,
          prot: req.protection ?? 0,
          fileOffset: m.fileOffset + (from - m.start),
        });
        if (m.end > end) changed.push({ ...m, start: end, fileOffset: m.fileOffset + (end - m.start) });
      }
      space.mappings = changed.sort((a, b) => Number(a.start - b.start));
      return reply(MprotectResponseSchema);
    },
    setBreakBase: (req = {}) => {
      this.#enter("vmm.setBreakBase");
      const space = this.space(req.spaceId ?? 0n);
      const address = req.address ?? 0n;
      space.breakBase = address + (PAGE - (address % PAGE)) % PAGE;
      return reply(SetBreakBaseResponseSchema, { address: space.breakBase });
    },
    handlePageFault: (req = {}) => {
      this.#enter("vmm.handlePageFault");
      const mapped = this.#fault(this.space(req.spaceId ?? 0n), req.address ?? 0n);
      return reply(HandlePageFaultResponseSchema, {
        result: mapped ? FaultResult.MAPPED : FaultResult.SIGSEGV_MAPERR,
        detail: mapped ? "" : "nothing mapped",
      });
    },
    forkAddressSpace: (req = {}) => {
      this.#enter("vmm.forkAddressSpace");
      const parent = this.space(req.parentSpaceId ?? 0n);
      const childSpaceId = this.#nextSpaceId++;
      this.spaces.set(childSpaceId, {
        pid: req.childPid ?? 0,
        mappings: parent.mappings.map((m) => ({ ...m })),
        pages: new Map([...parent.pages].map(([a, p]) => [a, p.slice()])),
        breakBase: parent.breakBase,
      });
      return reply(ForkAddressSpaceResponseSchema, { childSpaceId });
    },
  };

  readonly machine: SchedPeers["machine"] = {
    getInfo: () => {
      this.#enter("machine.getInfo");
      return reply(GetInfoResponseSchema, {
        platform: "power9",
        cpuCount: 2,
        hwcap: this.hwcap,
        hwcap2: this.hwcap2,
        dcacheBlockBytes: 128,
        icacheBlockBytes: 128,
        uptimeNanos: 1_000_000n,
      });
    },
    startCpu: () => {
      this.#enter("machine.startCpu");
      return reply(StartCpuResponseSchema);
    },
    runThread: (req = {}) => {
      this.#enter("machine.runThread");
      this.dispatched.push({ cpu: req.cpu ?? 0, tid: req.tid ?? 0 });
      return reply(RunThreadResponseSchema);
    },
    createThreadContext: (req = {}) => {
      this.#enter("machine.createThreadContext");
      const context = req.context!;
      const tid = context.tid ?? 0;
      if (this.contexts.has(tid)) {
        throw new AstraError(Code.ALREADY_EXISTS, Errno.EEXIST, `thread ${tid} exists`);
      }
      const source = req.copyFromTid ? this.contexts.get(req.copyFromTid) : undefined;
      const registers = context.registers
        ? create(RegistersSchema, context.registers)
        : source
        ? create(RegistersSchema, { ...source.registers, gprs: [...source.registers.gprs] })
        : create(RegistersSchema, { gprs: new Array(32).fill(0n) });
      this.contexts.set(tid, { pid: context.pid ?? 0, spaceId: context.spaceId ?? 0n, registers });
      return reply(CreateThreadContextResponseSchema);
    },
    deleteThreadContext: (req = {}) => {
      this.#enter("machine.deleteThreadContext");
      if (!this.contexts.delete(req.tid ?? 0)) throw fault(`no thread ${req.tid}`, Errno.ESRCH);
      return reply(DeleteThreadContextResponseSchema);
    },
    getThreadContext: (req = {}) => {
      this.#enter("machine.getThreadContext");
      const context = this.contexts.get(req.tid ?? 0);
      if (!context) throw fault(`no thread ${req.tid}`, Errno.ESRCH);
      return reply(GetThreadContextResponseSchema, {
        context: { pid: context.pid, tid: req.tid, registers: context.registers, spaceId: context.spaceId },
        cpu: -1,
      });
    },
    setThreadContext: (req = {}) => {
      this.#enter("machine.setThreadContext");
      const context = this.contexts.get(req.tid ?? 0);
      if (!context) throw fault(`no thread ${req.tid}`, Errno.ESRCH);
      if (req.registers) context.registers = create(RegistersSchema, req.registers);
      return reply(SetThreadContextResponseSchema);
    },
    writeVirtual: (req = {}) => {
      this.#enter("machine.writeVirtual");
      const context = this.contexts.get(req.tid ?? 0);
      if (!context) throw fault(`no thread ${req.tid}`, Errno.ESRCH);
      const space = this.space(context.spaceId);
      const data = req.data ?? new Uint8Array(0);
      const address = req.address ?? 0n;
      for (let i = 0; i < data.length; i++) {
        const at = address + BigInt(i);
        const page = at - (at % PAGE);
        const mapping = this.#mappingAt(space, at);
        if (!mapping || !space.pages.has(page) || (mapping.prot & WRITE) === 0) {
          throw fault(`0x${at.toString(16)} is not writable and resident`);
        }
      }
      for (let i = 0; i < data.length; i++) {
        const at = address + BigInt(i);
        space.pages.get(at - (at % PAGE))![Number(at % PAGE)] = data[i];
      }
      return reply(WriteVirtualResponseSchema);
    },
  };

  readonly vfs: SchedPeers["vfs"] = {
    attachProcess: (req = {}) => {
      this.#enter("vfs.attachProcess");
      this.attached.add(req.pid ?? 0);
      return reply(AttachProcessResponseSchema, { descriptors: 3 });
    },
    detachProcess: (req = {}) => {
      this.#enter("vfs.detachProcess");
      this.attached.delete(req.pid ?? 0);
      return reply(DetachProcessResponseSchema);
    },
    execProcess: (req = {}) => {
      this.#enter("vfs.execProcess");
      this.executables.set(req.pid ?? 0, new TextDecoder().decode(req.executable));
      return reply(ExecProcessResponseSchema);
    },
    openExecutable: (req = {}) => {
      this.#enter("vfs.openExecutable");
      const given = new TextDecoder().decode(req.path);
      const path = given.startsWith("/") ? given : `/${given.replace(/^\.\//, "")}`;
      const bytes = this.files.get(path);
      if (!bytes) throw new AstraError(Code.NOT_FOUND, Errno.ENOENT, `${path} does not exist`);
      const openFileId = this.#nextFileId++;
      this.openFiles.set(openFileId, { path, bytes });
      return reply(OpenExecutableResponseSchema, {
        file: {
          openFileId,
          path: new TextEncoder().encode(path),
          device: 0x801,
          inode: 42n,
          size: BigInt(bytes.length),
          mode: 0o100755,
          readable: true,
        },
      });
    },
    readOpenFile: (req = {}) => {
      this.#enter("vfs.readOpenFile");
      const file = this.openFiles.get(req.openFileId ?? 0n);
      if (!file) throw fault(`no open file ${req.openFileId}`, Errno.EBADF);
      const offset = Number(req.offset ?? 0n);
      const end = Math.min(file.bytes.length, offset + Number(req.length ?? 0n));
      return reply(ReadOpenFileResponseSchema, { data: file.bytes.slice(Math.min(offset, end), end) });
    },
    releaseOpenFile: (req = {}) => {
      this.#enter("vfs.releaseOpenFile");
      if (!this.openFiles.delete(req.openFileId ?? 0n)) {
        throw fault(`no open file ${req.openFileId}`, Errno.EBADF);
      }
      return reply(ReleaseOpenFileResponseSchema, { closed: true });
    },
  };
}
