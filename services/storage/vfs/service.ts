// The VfsService contract served from the VFS: the typed RPCs (CLI, tests, sched's process
// lifecycle calls) and KernelCall, the machine's trap-path stream, where each request runs on its
// own so that a read waiting on an empty pipe holds up no other call.
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  DescriptorInheritance,
  FileSystemKind,
  FileType,
  type KernelCallRequest,
  type KernelCallResponseSchema,
  type PathAt,
  SeekWhence,
  SyncMode,
  VfsService,
} from "../../../gen/astra/storage/v1/vfs_pb.ts";
import { Channel, serveConcurrently } from "../../../lib/channel.ts";
import { inTraceOf } from "../../../lib/tracing.ts";
import type { CallContext } from "../../../lib/rpc.ts";
import { bindService, type BoundService } from "../../../lib/server.ts";
import { Errno, vfsError } from "./errors.ts";
import type { FileSystemKind as KindName, NodeStat, Timestamp } from "./filesystem.ts";
import {
  deviceMajor,
  deviceMinor,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  O_CLOEXEC,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  SEEK_CUR,
  SEEK_DATA,
  SEEK_END,
  SEEK_HOLE,
  SEEK_SET,
} from "./linux.ts";
import { runKernelCall } from "./syscalls.ts";
import type { HeldFileInfo, Inheritance, Vfs } from "./vfs.ts";

type KernelCallReply = MessageInitShape<typeof KernelCallResponseSchema>;

const encoder = new TextEncoder();

const FILE_TYPES: ReadonlyMap<number, FileType> = new Map([
  [S_IFREG, FileType.REGULAR],
  [S_IFDIR, FileType.DIRECTORY],
  [S_IFLNK, FileType.SYMLINK],
  [S_IFCHR, FileType.CHARACTER_DEVICE],
  [S_IFBLK, FileType.BLOCK_DEVICE],
  [S_IFIFO, FileType.FIFO],
  [S_IFSOCK, FileType.SOCKET],
]);

const WHENCE: ReadonlyMap<SeekWhence, number> = new Map([
  [SeekWhence.SET, SEEK_SET],
  [SeekWhence.CURRENT, SEEK_CUR],
  [SeekWhence.END, SEEK_END],
  [SeekWhence.DATA, SEEK_DATA],
  [SeekWhence.HOLE, SEEK_HOLE],
]);

const INHERITANCE: ReadonlyMap<DescriptorInheritance, Inheritance> = new Map([
  [DescriptorInheritance.COPY, "copy"],
  [DescriptorInheritance.SHARE, "share"],
  [DescriptorInheritance.NONE, "new"],
]);

const MOUNT_KINDS: Record<KindName, FileSystemKind> = {
  "host-folder": FileSystemKind.HOST_FOLDER,
  devices: FileSystemKind.DEVICES,
  proc: FileSystemKind.PROC,
};

function fileType(mode: number): FileType {
  return FILE_TYPES.get(mode & S_IFMT) ?? FileType.UNSPECIFIED;
}

function timespec(time: Timestamp) {
  return { seconds: BigInt(time.seconds), nanoseconds: time.nanoseconds };
}

function fileStat(stat: NodeStat) {
  return {
    device: BigInt(stat.device),
    inode: BigInt(stat.inode),
    type: fileType(stat.mode),
    mode: stat.mode,
    links: BigInt(stat.links),
    uid: stat.uid,
    gid: stat.gid,
    rdev: BigInt(stat.rdev),
    size: BigInt(stat.size),
    blockSize: stat.blockSize,
    blocks: BigInt(stat.blocks),
    accessTime: timespec(stat.accessTime),
    modifyTime: timespec(stat.modifyTime),
    changeTime: timespec(stat.changeTime),
    birthTime: stat.birthTime ? timespec(stat.birthTime) : undefined,
    mountId: BigInt(stat.mountId),
  };
}

/**
 * A dev_t as the kernel encodes it in 32 bits (new_encode_dev), which the contract carries: the
 * host reports the C library's 64-bit encoding, the same value for devices numbered this low.
 */
function kernelDevice(device: number): number {
  const major = deviceMajor(device), minor = deviceMinor(device);
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

function heldFile(held: HeldFileInfo) {
  return {
    openFileId: held.id,
    path: encoder.encode(held.path),
    device: kernelDevice(held.stat.device),
    inode: BigInt(held.stat.inode),
    size: BigInt(held.stat.size),
    mode: held.stat.mode,
    uid: held.stat.uid,
    gid: held.stat.gid,
    readable: held.readable,
    writable: held.writable,
  };
}

/** A uint64 count or argument as a number, saturated where a number stops being exact. */
function saturated(value: bigint): number {
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

/** An int64 offset as a number; past 2^53 it names no position a file here can have. */
function offsetOf(value: bigint, argument: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(-Number.MAX_SAFE_INTEGER)) {
    throw vfsError(Errno.EINVAL, `offset ${value} is out of range`, argument);
  }
  return Number(value);
}

function pathAt(path: PathAt | undefined, argument = "path"): { dirFd: number; path: Uint8Array } {
  if (!path) throw vfsError(Errno.EINVAL, "the path is missing", argument);
  return { dirFd: path.dirFd, path: path.path };
}

/**
 * Serves VfsService from `vfs` as part of the storage service. Every call and failed call is
 * counted in the VFS's statistics; a kernel call's failure is its errno in the reply, never a
 * failed stream.
 */
export function bindVfs(vfs: Vfs): BoundService {
  const counted =
    <Req, Res>(handler: (req: Req, ctx: CallContext) => Res | Promise<Res>) =>
    async (req: Req, ctx: CallContext): Promise<Res> => {
      vfs.counters.calls++;
      try {
        return await handler(req, ctx);
      } catch (err) {
        vfs.counters.errors++;
        throw err;
      }
    };

  const serveKernelCall = async (
    request: KernelCallRequest,
    signal: AbortSignal,
  ): Promise<KernelCallReply> => {
    vfs.counters.calls++;
    const outcome = await runKernelCall(vfs, request, signal);
    if (outcome.errno !== undefined) vfs.counters.errors++;
    return {
      callId: request.callId,
      result: outcome.result,
      errno: outcome.errno ?? Errno.UNSPECIFIED,
      outputs: outcome.outputs,
    };
  };

  return bindService("storage", VfsService, {
    open: counted((req) => {
      const { dirFd, path } = pathAt(req.path);
      return { fd: vfs.openat(req.pid, dirFd, path, req.flags, req.mode) };
    }),
    close: counted((req) => {
      vfs.close(req.pid, req.fd);
      return {};
    }),
    read: counted(async (req, ctx) => {
      const count = saturated(req.count);
      const data = req.offset === undefined
        ? await vfs.read(req.pid, req.fd, count, ctx.signal)
        : vfs.pread(req.pid, req.fd, count, offsetOf(BigInt.asIntN(64, req.offset), "offset"));
      return { data };
    }),
    write: counted(async (req, ctx) => {
      const written = req.offset === undefined
        ? await vfs.write(req.pid, req.fd, req.data, ctx.signal)
        : vfs.pwrite(req.pid, req.fd, req.data, offsetOf(BigInt.asIntN(64, req.offset), "offset"));
      return { written: BigInt(written) };
    }),
    seek: counted((req) => {
      const whence = WHENCE.get(req.whence);
      if (whence === undefined) throw vfsError(Errno.EINVAL, "whence is unspecified", "whence");
      return { offset: BigInt(vfs.lseek(req.pid, req.fd, offsetOf(req.offset, "offset"), whence)) };
    }),
    stat: counted((req) => {
      switch (req.target.case) {
        case "fd":
          return { stat: fileStat(vfs.fstat(req.pid, req.target.value)) };
        case "path": {
          const { dirFd, path } = pathAt(req.target.value);
          return { stat: fileStat(vfs.statx(req.pid, dirFd, path, req.flags, 0).stat) };
        }
        default:
          throw vfsError(Errno.EINVAL, "neither a descriptor nor a path to stat", "target");
      }
    }),
    readDirectory: counted((req) => {
      const { entries, records } = vfs.getdents64(req.pid, req.fd, req.maxBytes);
      return {
        entries: entries.map((e) => ({
          inode: BigInt(e.inode),
          offset: BigInt(e.nextOffset),
          type: fileType(e.type << 12),
          name: encoder.encode(e.name),
        })),
        records,
      };
    }),
    makeDirectory: counted((req) => {
      const { dirFd, path } = pathAt(req.path);
      vfs.mkdirat(req.pid, dirFd, path, req.mode);
      return {};
    }),
    unlink: counted((req) => {
      const { dirFd, path } = pathAt(req.path);
      vfs.unlinkat(req.pid, dirFd, path, req.flags);
      return {};
    }),
    rename: counted((req) => {
      const from = pathAt(req.from, "from");
      const to = pathAt(req.to, "to");
      vfs.renameat2(req.pid, from.dirFd, from.path, to.dirFd, to.path, req.flags);
      return {};
    }),
    truncate: counted((req) => {
      vfs.ftruncate(req.pid, req.fd, saturated(req.length));
      return {};
    }),
    sync: counted((req) => {
      if (req.mode !== SyncMode.ALL && req.mode !== SyncMode.DATA) {
        throw vfsError(Errno.EINVAL, "sync mode is unspecified", "mode");
      }
      vfs.fsync(req.pid, req.fd, req.mode === SyncMode.DATA);
      return {};
    }),
    getWorkingDirectory: counted((req) => ({ path: vfs.getcwd(req.pid) })),
    changeDirectory: counted((req) => {
      switch (req.target.case) {
        case "path":
          vfs.chdir(req.pid, req.target.value);
          return {};
        case "fd":
          vfs.fchdir(req.pid, req.target.value);
          return {};
        default:
          throw vfsError(Errno.EINVAL, "neither a path nor a descriptor to change to", "target");
      }
    }),
    duplicate: counted((req) => {
      if (req.newFd !== undefined) {
        const fd = req.closeOnExec
          ? vfs.dup3(req.pid, req.fd, req.newFd, O_CLOEXEC)
          : vfs.dup2(req.pid, req.fd, req.newFd);
        return { fd };
      }
      return { fd: vfs.fcntl(req.pid, req.fd, req.closeOnExec ? F_DUPFD_CLOEXEC : F_DUPFD, req.minFd) };
    }),
    fileControl: counted((req) => ({
      result: BigInt(vfs.fcntl(req.pid, req.fd, req.command, saturated(req.argument))),
    })),
    ioControl: counted(async (req) => {
      const input = req.input.length ? req.input : undefined;
      const { result, output } = await vfs.ioctl(req.pid, req.fd, req.request, req.argument, input);
      return { result: BigInt(result), output: output ?? new Uint8Array(0) };
    }),
    access: counted((req) => {
      const { dirFd, path } = pathAt(req.path);
      vfs.faccessat(req.pid, dirFd, path, req.mode, req.flags);
      return {};
    }),
    readLink: counted((req) => {
      const { dirFd, path } = pathAt(req.path);
      return { target: vfs.readlinkat(req.pid, dirFd, path) };
    }),
    setUmask: counted((req) => ({ previous: vfs.umask(req.pid, req.mask) })),
    createPipe: counted((req) => {
      const [readFd, writeFd] = vfs.pipe2(req.pid, req.flags);
      return { readFd, writeFd };
    }),
    mountHostFolder: counted((req) => {
      const mount = vfs.mountHostFolder(req.hostPath, req.mountPoint, req.readOnly);
      return { mountId: BigInt(mount.id) };
    }),
    attachProcess: counted((req) => {
      const inheritance = INHERITANCE.get(req.inheritance);
      if (!inheritance) throw vfsError(Errno.EINVAL, "descriptor inheritance is unspecified", "inheritance");
      const descriptors = vfs.attachProcess(req.pid, {
        parentPid: req.parentPid,
        inheritance,
        workingDirectory: req.workingDirectory,
        umask: req.umask,
        stdio: req.stdioOnConsole,
      });
      return { descriptors };
    }),
    execProcess: counted((req) => ({ closed: vfs.execTable(req.pid, req.executable) })),
    detachProcess: counted((req) => ({ closed: vfs.detachProcess(req.pid) })),
    openExecutable: counted((req) => ({ file: heldFile(vfs.openExecutable(req.pid, req.path)) })),
    holdDescriptor: counted((req) => ({ file: heldFile(vfs.holdDescriptor(req.pid, req.fd)) })),
    readOpenFile: counted((req) => ({
      data: vfs.readOpenFile(req.openFileId, saturated(req.offset), saturated(req.length)),
    })),
    writeOpenFile: counted((req) => ({
      written: BigInt(vfs.writeOpenFile(req.openFileId, saturated(req.offset), req.data)),
    })),
    releaseOpenFile: counted((req) => ({ closed: vfs.releaseOpenFile(req.openFileId) })),
    getVfsStatistics: () => {
      const s = vfs.statistics();
      return {
        statistics: {
          processes: s.processes,
          openDescriptors: s.openDescriptors,
          openFiles: s.openFiles,
          pipes: s.pipes,
          mounts: s.mounts.map((m) => ({
            mountId: BigInt(m.id),
            mountPoint: encoder.encode(m.mountPoint),
            kind: MOUNT_KINDS[m.kind],
            source: m.source,
            readOnly: m.readOnly,
          })),
          calls: BigInt(s.calls),
          errors: BigInt(s.errors),
          bytesRead: BigInt(s.bytesRead),
          bytesWritten: BigInt(s.bytesWritten),
        },
      };
    },
    kernelCall: (requests, ctx) => {
      const replies = new Channel<KernelCallReply>();
      return serveConcurrently(
        requests,
        replies,
        (request) =>
          inTraceOf(request.traceparent, () => serveKernelCall(request, ctx.signal)).then((reply) =>
            replies.push(reply)
          ),
      );
    },
  });
}
