// The trap path into the VFS: a guest system call as the machine hands it over — number, the six
// argument registers and copies of the guest memory the call reads — run against the VFS and
// answered with r3 (or an errno) and the guest memory to write back, byte for byte what Linux
// writes. The calls and the memory each reads are lib/linux's VFS_KERNEL_CALLS, the table the
// machine copies inputs by; this file gives each its handler.
import { AstraError } from "../../../lib/errors.ts";
import { logger } from "../../../lib/log.ts";
import { MAX_IO_BYTES, VFS_KERNEL_CALLS, type VfsCallName } from "../../../lib/linux/vfs_calls.ts";
import { Errno, vfsError } from "./errors.ts";
import type { NodeStat, Timestamp } from "./filesystem.ts";
import {
  decodePollfds,
  decodeTimePair,
  encodeInt64,
  encodeStat,
  encodeStatfs,
  encodeStatx,
  encodeTimePair,
  withRevents,
} from "./layouts.ts";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  IOC_WRITE,
  ioctlDirection,
  ioctlSize,
  O_CREAT,
  O_TRUNC,
  O_WRONLY,
  PATH_MAX,
  POLLFD_BYTES,
  SELECT_MAX_DESCRIPTORS,
  SIGSET_ARGUMENT_BYTES,
  SIGSET_BYTES,
  STATFS_BYTES,
  TIME_PAIR_BYTES,
  UIO_MAXIOV,
  UTIME_OMIT,
  XATTR_NAME_MAX,
} from "./linux.ts";
import type { MountStatistics, Vfs } from "./vfs.ts";
import { checkXattrFlags, checkXattrSize, xattrName } from "./xattrs.ts";

/** The per-call table, for the VFS's own tests of it. */
export { VFS_KERNEL_CALLS };

/** A piece of guest memory: where, and its bytes. */
export interface GuestBytes {
  address: bigint;
  data: Uint8Array;
}

export interface KernelCall {
  pid: number;
  number: number;
  /** r3–r8. */
  args: readonly bigint[];
  inputs: readonly GuestBytes[];
}

export interface KernelCallResult {
  /** r3 on success. */
  result: bigint;
  /** Set when the call failed. */
  errno?: Errno;
  /** Guest memory to write before the thread resumes. */
  outputs: GuestBytes[];
}

const log = logger("storage");
const IOVEC_BYTES = 16;
const SSIZE_MAX = 2n ** 63n - 1n;

/** The copies of guest memory a call came with, and what it writes back. */
class GuestMemory {
  readonly outputs: GuestBytes[] = [];

  constructor(private readonly inputs: readonly GuestBytes[]) {}

  /** The input buffer holding `address` and the offset of `address` in it. */
  #find(address: bigint): { data: Uint8Array; at: number } | undefined {
    for (const input of this.inputs) {
      const at = address - input.address;
      if (at >= 0n && at < BigInt(input.data.length)) return { data: input.data, at: Number(at) };
    }
    return undefined;
  }

  bytes(address: bigint, length: number, argument: string): Uint8Array {
    if (length === 0) return new Uint8Array(0);
    const found = this.#find(address);
    if (!found || found.at + length > found.data.length) {
      throw vfsError(
        Errno.EFAULT,
        `${length} bytes at 0x${address.toString(16)} were not provided`,
        argument,
      );
    }
    return found.data.subarray(found.at, found.at + length);
  }

  /** Bytes if the caller provided all of them, else undefined (the consumer decides on EFAULT). */
  optionalBytes(address: bigint, length: number): Uint8Array | undefined {
    const found = address === 0n ? undefined : this.#find(address);
    if (!found || found.at + length > found.data.length) return undefined;
    return found.data.subarray(found.at, found.at + length);
  }

  /** A NUL-terminated path, without its NUL. */
  path(address: bigint, argument: string): Uint8Array {
    const found = address === 0n ? undefined : this.#find(address);
    if (!found) throw vfsError(Errno.EFAULT, `no string at 0x${address.toString(16)}`, argument);
    const rest = found.data.subarray(found.at);
    const end = rest.indexOf(0);
    if (end >= 0) return rest.subarray(0, end);
    if (rest.length >= PATH_MAX) throw vfsError(Errno.ENAMETOOLONG, "path is longer than PATH_MAX", argument);
    throw vfsError(Errno.EFAULT, `the string at 0x${address.toString(16)} is not terminated`, argument);
  }

  /**
   * A NUL-terminated string of at most `limit` bytes, without its NUL; `limit` bytes without one
   * come back whole, for the caller to refuse as too long.
   */
  string(address: bigint, limit: number, argument: string): Uint8Array {
    const found = address === 0n ? undefined : this.#find(address);
    if (!found) throw vfsError(Errno.EFAULT, `no string at 0x${address.toString(16)}`, argument);
    const rest = found.data.subarray(found.at, found.at + limit);
    const end = rest.indexOf(0);
    if (end >= 0) return rest.subarray(0, end);
    if (rest.length === limit) return rest;
    throw vfsError(Errno.EFAULT, `the string at 0x${address.toString(16)} is not terminated`, argument);
  }

  /** struct iovec[count]: base and length of each. */
  iovecs(address: bigint, count: number): { base: bigint; length: bigint }[] {
    const bytes = this.bytes(address, count * IOVEC_BYTES, "iov");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const vectors = [];
    for (let i = 0; i < count; i++) {
      vectors.push({
        base: view.getBigUint64(i * IOVEC_BYTES, true),
        length: view.getBigUint64(i * IOVEC_BYTES + 8, true),
      });
    }
    return vectors;
  }

  write(address: bigint, data: Uint8Array, argument: string): void {
    if (data.length === 0) return;
    if (address === 0n) throw vfsError(Errno.EFAULT, "the result buffer is NULL", argument);
    this.outputs.push({ address, data });
  }
}

/** One call being served: its registers decoded, its memory, the VFS. */
class CallContext {
  readonly memory: GuestMemory;

  constructor(readonly vfs: Vfs, readonly call: KernelCall, readonly signal: AbortSignal | undefined) {
    this.memory = new GuestMemory(call.inputs);
  }

  get pid(): number {
    return this.call.pid;
  }

  #arg(i: number): bigint {
    return this.call.args[i] ?? 0n;
  }

  pointer(i: number): bigint {
    return BigInt.asUintN(64, this.#arg(i));
  }

  /** An int argument (descriptors, dirfd). */
  int(i: number): number {
    return Number(BigInt.asIntN(32, this.#arg(i)));
  }

  /** An unsigned int argument (flags, modes, requests). */
  uint(i: number): number {
    return Number(BigInt.asUintN(32, this.#arg(i)));
  }

  /** A size_t, saturated at what a JavaScript number holds exactly. */
  size(i: number): number {
    const value = BigInt.asUintN(64, this.#arg(i));
    return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
  }

  /** A signed 64-bit argument (loff_t, or a size_t the kernel reads as one). */
  signed(i: number): number {
    return Number(BigInt.asIntN(64, this.#arg(i)));
  }

  /** A uid_t or gid_t to change to; -1 leaves it as it is. */
  id(i: number): number | undefined {
    const value = this.uint(i);
    return value === 0xffffffff ? undefined : value;
  }

  /** A path argument that may be NULL. */
  optionalPath(i: number): Uint8Array | undefined {
    return this.pointer(i) === 0n ? undefined : this.path(i);
  }

  /** A loff_t file offset; past 2^53 it names no position a file here can have. */
  offset(i: number): number {
    const value = BigInt.asIntN(64, this.#arg(i));
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw vfsError(Errno.EINVAL, "offset is past the largest file size", "offset");
    }
    return value < BigInt(-Number.MAX_SAFE_INTEGER) ? -Number.MAX_SAFE_INTEGER : Number(value);
  }

  path(i: number): Uint8Array {
    return this.memory.path(this.pointer(i), "path");
  }
}

type Handler = (c: CallContext) => number | bigint | Promise<number | bigint>;

function readInto(c: CallContext, bufferArg: number, data: Uint8Array): number {
  c.memory.write(c.pointer(bufferArg), data, "buf");
  return data.length;
}

function writeBuffer(c: CallContext, bufferArg: number, countArg: number): Uint8Array {
  return c.memory.bytes(c.pointer(bufferArg), Math.min(c.size(countArg), MAX_IO_BYTES), "buf");
}

function requireBuffer(c: CallContext, arg: number, count: number): void {
  if (count > 0 && c.pointer(arg) === 0n) throw vfsError(Errno.EFAULT, "the buffer is NULL", "buf");
}

/** The vectors of readv/writev and their lengths, checked as rw_copy_check_uvector does. */
function vectors(c: CallContext, iovArg: number, countArg: number): { base: bigint; length: number }[] {
  const count = c.int(countArg);
  if (count < 0 || count > UIO_MAXIOV) {
    throw vfsError(Errno.EINVAL, `iovcnt ${count} is not 0..${UIO_MAXIOV}`, "iovcnt");
  }
  if (count === 0) return [];
  let total = 0n;
  return c.memory.iovecs(c.pointer(iovArg), count).map(({ base, length }) => {
    total += length;
    if (length > SSIZE_MAX || total > SSIZE_MAX) {
      throw vfsError(Errno.EINVAL, "iovec lengths overflow", "iov");
    }
    return { base, length: length > BigInt(MAX_IO_BYTES) ? MAX_IO_BYTES : Number(length) };
  });
}

async function readVectors(c: CallContext, offset: number | undefined): Promise<number> {
  const iov = vectors(c, 1, 2);
  if (iov.some((v) => v.length > 0 && v.base === 0n)) {
    throw vfsError(Errno.EFAULT, "a vector's buffer is NULL", "iov");
  }
  const pieces = await c.vfs.readv(c.pid, c.int(0), iov.map((v) => v.length), offset, c.signal);
  let total = 0;
  pieces.forEach((piece, i) => {
    c.memory.write(iov[i].base, piece, "iov");
    total += piece.length;
  });
  return total;
}

function writeVectors(c: CallContext, offset: number | undefined): Promise<number> {
  // The machine copies at most MAX_IO_BYTES of the vectors' memory: the write is short beyond it.
  let budget = MAX_IO_BYTES;
  const buffers = vectors(c, 1, 2).map(({ base, length }) => {
    const n = Math.min(length, budget);
    budget -= n;
    return c.memory.bytes(base, n, "iov");
  });
  return c.vfs.writev(c.pid, c.int(0), buffers, offset, c.signal);
}

function statInto(c: CallContext, bufferArg: number, stat: NodeStat): number {
  if (c.pointer(bufferArg) === 0n) throw vfsError(Errno.EFAULT, "the stat buffer is NULL", "statbuf");
  c.memory.write(c.pointer(bufferArg), encodeStat(stat), "statbuf");
  return 0;
}

function readlinkInto(
  c: CallContext,
  dirFd: number,
  pathArg: number,
  bufferArg: number,
  sizeArg: number,
): number {
  const size = c.int(sizeArg);
  if (size <= 0) throw vfsError(Errno.EINVAL, `bufsiz ${size} is not positive`, "bufsiz");
  const target = c.vfs.readlinkat(c.pid, dirFd, c.path(pathArg));
  return readInto(c, bufferArg, target.subarray(0, size));
}

function pipeInto(c: CallContext, flags: number): number {
  if (c.pointer(0) === 0n) throw vfsError(Errno.EFAULT, "the pipefd array is NULL", "pipefd");
  const [readFd, writeFd] = c.vfs.pipe2(c.pid, flags);
  const fds = new Uint8Array(8);
  const view = new DataView(fds.buffer);
  view.setInt32(0, readFd, true);
  view.setInt32(4, writeFd, true);
  c.memory.write(c.pointer(0), fds, "pipefd");
  return 0;
}

/**
 * _llseek(fd, offset_high, offset_low, loff_t *result, whence): the offset in two halves and the
 * new position stored through a pointer — what glibc's lseek uses wherever the call exists.
 */
function llseekInto(c: CallContext): number {
  const offset = BigInt.asIntN(64, (c.pointer(1) << 32n) | c.pointer(2));
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw vfsError(Errno.EINVAL, "offset is past the largest file size", "offset");
  }
  const position = c.vfs.lseek(
    c.pid,
    c.int(0),
    offset < BigInt(-Number.MAX_SAFE_INTEGER) ? -Number.MAX_SAFE_INTEGER : Number(offset),
    c.uint(4),
  );
  const result = new Uint8Array(8);
  new DataView(result.buffer).setBigInt64(0, BigInt(position), true);
  c.memory.write(c.pointer(3), result, "result");
  return 0;
}

function statfsInto(c: CallContext, bufferArg: number, statistics: MountStatistics): number {
  c.memory.write(c.pointer(bufferArg), encodeStatfs(statistics, statistics.flags), "buf");
  return 0;
}

/** statfs64 and fstatfs64 name the size of their buffer, which must be struct statfs64's. */
function statfs64Size(c: CallContext, sizeArg: number): void {
  if (c.size(sizeArg) !== STATFS_BYTES) {
    throw vfsError(Errno.EINVAL, `size ${c.size(sizeArg)} is not that of struct statfs64`, "sz");
  }
}

/** utimensat's struct timespec[2]: each tv_nsec may be UTIME_NOW or UTIME_OMIT (checked later). */
function timespecs(c: CallContext, arg: number): [Timestamp, Timestamp] | undefined {
  if (c.pointer(arg) === 0n) return undefined;
  const bytes = c.memory.bytes(c.pointer(arg), 2 * TIME_PAIR_BYTES, "times");
  const [access, modify] = [0, TIME_PAIR_BYTES].map((at) => decodeTimePair(bytes, at));
  return [
    { seconds: access.seconds, nanoseconds: access.fraction },
    { seconds: modify.seconds, nanoseconds: modify.fraction },
  ];
}

/** utimes' and futimesat's struct timeval[2], whose tv_usec must be 0..999999 (EINVAL). */
function timevals(c: CallContext, arg: number): [Timestamp, Timestamp] | undefined {
  if (c.pointer(arg) === 0n) return undefined;
  const bytes = c.memory.bytes(c.pointer(arg), 2 * TIME_PAIR_BYTES, "times");
  const times = [0, TIME_PAIR_BYTES].map((at) => decodeTimePair(bytes, at));
  if (times.some((t) => t.fraction < 0 || t.fraction >= 1_000_000)) {
    throw vfsError(Errno.EINVAL, "tv_usec is outside 0..999999", "times");
  }
  const [access, modify] = times.map((t) => ({ seconds: t.seconds, nanoseconds: t.fraction * 1000 }));
  return [access, modify];
}

/** utime's struct utimbuf: whole seconds. */
function utimbuf(c: CallContext, arg: number): [Timestamp, Timestamp] | undefined {
  if (c.pointer(arg) === 0n) return undefined;
  const bytes = c.memory.bytes(c.pointer(arg), 16, "times");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const second = (at: number) => ({ seconds: Number(view.getBigInt64(at, true)), nanoseconds: 0 });
  return [second(0), second(8)];
}

/** A loff_t read through a pointer argument (sendfile, copy_file_range); undefined for NULL. */
function offsetAt(c: CallContext, arg: number, argument: string): number | undefined {
  if (c.pointer(arg) === 0n) return undefined;
  const bytes = c.memory.bytes(c.pointer(arg), 8, argument);
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigInt64(0, true));
}

function writeOffset(c: CallContext, arg: number, offset: number, argument: string): void {
  if (c.pointer(arg) !== 0n) c.memory.write(c.pointer(arg), encodeInt64(offset), argument);
}

/** An xattr name argument, checked as import_xattr_name does. */
function xattrNameAt(c: CallContext, arg: number): string {
  return xattrName(c.memory.string(c.pointer(arg), XATTR_NAME_MAX + 1, "name"));
}

/** setxattr's checks, in setxattr_copy's order, made before the file is looked up. */
function setxattrChecks(c: CallContext, nameArg: number): string {
  checkXattrFlags(c.uint(nameArg + 3));
  const name = xattrNameAt(c, nameArg);
  const size = c.size(nameArg + 2);
  checkXattrSize(size);
  c.memory.bytes(c.pointer(nameArg + 1), size, "value");
  return name;
}

/** A timeout in milliseconds from a timespec (ppoll, pselect6) or a timeval (select). */
function timeoutAt(c: CallContext, arg: number, microseconds: boolean): number | undefined {
  if (c.pointer(arg) === 0n) return undefined;
  const time = decodeTimePair(c.memory.bytes(c.pointer(arg), TIME_PAIR_BYTES, "timeout"));
  // select carries whole seconds over from tv_usec (C division: towards zero).
  const perSecond = microseconds ? 1_000_000 : 1_000_000_000;
  const seconds = time.seconds + (microseconds ? Math.trunc(time.fraction / perSecond) : 0);
  const fraction = microseconds ? time.fraction % perSecond : time.fraction;
  if (seconds < 0 || fraction < 0 || fraction >= perSecond) {
    throw vfsError(Errno.EINVAL, "the timeout is negative or its fraction out of range", "timeout");
  }
  return seconds * 1000 + fraction / (perSecond / 1000);
}

/**
 * Writes what is left of a timeout back, as Linux's poll_select_finish does for ppoll, select and
 * pselect6 (not for a zero timeout).
 */
function remainingInto(
  c: CallContext,
  arg: number,
  timeout: number | undefined,
  started: number,
  microseconds: boolean,
) {
  if (timeout === undefined || timeout === 0) return;
  const left = Math.max(0, timeout - (performance.now() - started));
  const seconds = Math.floor(left / 1000);
  const nanoseconds = Math.floor((left - seconds * 1000) * 1_000_000);
  const fraction = microseconds ? Math.floor(nanoseconds / 1000) : nanoseconds;
  c.memory.write(c.pointer(arg), encodeTimePair({ seconds, fraction }), "timeout");
}

/** ppoll's and pselect6's signal mask: a size other than sigset_t's is EINVAL. */
function checkSigsetSize(size: number): void {
  if (size !== SIGSET_BYTES) {
    throw vfsError(Errno.EINVAL, `sigsetsize ${size} is not ${SIGSET_BYTES}`, "sigsetsize");
  }
}

async function pollInto(c: CallContext, timeout: number | undefined): Promise<number> {
  const count = c.uint(1);
  // do_sys_poll refuses too many descriptors before it reads the array.
  if (count > c.vfs.descriptorLimit) {
    throw vfsError(Errno.EINVAL, `${count} descriptors is more than RLIMIT_NOFILE`, "nfds");
  }
  const bytes = c.memory.bytes(c.pointer(0), count * POLLFD_BYTES, "fds");
  const revents = await c.vfs.poll(c.pid, decodePollfds(bytes, count), timeout, c.signal);
  if (count) c.memory.write(c.pointer(0), withRevents(bytes, revents), "fds");
  return revents.filter((value) => value !== 0).length;
}

/** The fd_set arguments of select and pselect6 (1, 2, 3), each covering `count` descriptors. */
async function selectInto(c: CallContext, timeout: number | undefined): Promise<number> {
  const count = c.int(0);
  if (count < 0) throw vfsError(Errno.EINVAL, `nfds ${count} is negative`, "nfds");
  const bits = Math.min(count, SELECT_MAX_DESCRIPTORS);
  const bytes = Math.ceil(bits / 64) * 8;
  const set = (arg: number) =>
    c.pointer(arg) === 0n ? undefined : c.memory.bytes(c.pointer(arg), bytes, "fds");
  const { ready, sets } = await c.vfs.select(
    c.pid,
    bits,
    { read: set(1), write: set(2), except: set(3) },
    timeout,
    c.signal,
  );
  [sets.read, sets.write, sets.except].forEach((out, i) => {
    if (out) c.memory.write(c.pointer(i + 1), out, "fds");
  });
  return ready;
}

const HANDLERS: { readonly [name in VfsCallName]: Handler } = {
  read: async (c) => {
    requireBuffer(c, 1, c.size(2));
    return readInto(c, 1, await c.vfs.read(c.pid, c.int(0), c.size(2), c.signal));
  },
  write: (c) => c.vfs.write(c.pid, c.int(0), writeBuffer(c, 1, 2), c.signal),
  open: (c) => c.vfs.openat(c.pid, AT_FDCWD, c.path(0), c.uint(1), c.uint(2)),
  creat: (c) => c.vfs.openat(c.pid, AT_FDCWD, c.path(0), O_CREAT | O_WRONLY | O_TRUNC, c.uint(1)),
  openat: (c) => c.vfs.openat(c.pid, c.int(0), c.path(1), c.uint(2), c.uint(3)),
  close: (c) => (c.vfs.close(c.pid, c.int(0)), 0),
  unlink: (c) => (c.vfs.unlinkat(c.pid, AT_FDCWD, c.path(0), 0), 0),
  rmdir: (c) => (c.vfs.unlinkat(c.pid, AT_FDCWD, c.path(0), AT_REMOVEDIR), 0),
  unlinkat: (c) => (c.vfs.unlinkat(c.pid, c.int(0), c.path(1), c.uint(2)), 0),
  chdir: (c) => (c.vfs.chdir(c.pid, c.path(0)), 0),
  fchdir: (c) => (c.vfs.fchdir(c.pid, c.int(0)), 0),
  lseek: (c) => c.vfs.lseek(c.pid, c.int(0), c.offset(1), c.uint(2)),
  _llseek: (c) => llseekInto(c),
  access: (c) => (c.vfs.faccessat(c.pid, AT_FDCWD, c.path(0), c.uint(1)), 0),
  faccessat: (c) => (c.vfs.faccessat(c.pid, c.int(0), c.path(1), c.uint(2)), 0),
  faccessat2: (c) => (c.vfs.faccessat(c.pid, c.int(0), c.path(1), c.uint(2), c.uint(3)), 0),
  rename: (c) => (c.vfs.renameat2(c.pid, AT_FDCWD, c.path(0), AT_FDCWD, c.path(1), 0), 0),
  renameat: (c) => (c.vfs.renameat2(c.pid, c.int(0), c.path(1), c.int(2), c.path(3), 0), 0),
  renameat2: (c) => (c.vfs.renameat2(c.pid, c.int(0), c.path(1), c.int(2), c.path(3), c.uint(4)), 0),
  mkdir: (c) => (c.vfs.mkdirat(c.pid, AT_FDCWD, c.path(0), c.uint(1)), 0),
  mkdirat: (c) => (c.vfs.mkdirat(c.pid, c.int(0), c.path(1), c.uint(2)), 0),
  dup: (c) => c.vfs.dup(c.pid, c.int(0)),
  dup2: (c) => c.vfs.dup2(c.pid, c.int(0), c.int(1)),
  dup3: (c) => c.vfs.dup3(c.pid, c.int(0), c.int(1), c.uint(2)),
  pipe: (c) => pipeInto(c, 0),
  pipe2: (c) => pipeInto(c, c.uint(1)),
  ioctl: async (c) => {
    const request = c.uint(1);
    const input = ioctlDirection(request) & IOC_WRITE
      ? c.memory.optionalBytes(c.pointer(2), ioctlSize(request))
      : undefined;
    const { result, output } = await c.vfs.ioctl(c.pid, c.int(0), request, c.pointer(2), input);
    if (output) c.memory.write(c.pointer(2), output, "argp");
    return result;
  },
  fcntl: (c) => c.vfs.fcntl(c.pid, c.int(0), c.uint(1), c.int(2)),
  umask: (c) => c.vfs.umask(c.pid, c.uint(0)),
  readlink: (c) => readlinkInto(c, AT_FDCWD, 0, 1, 2),
  readlinkat: (c) => readlinkInto(c, c.int(0), 1, 2, 3),
  ftruncate: (c) => (c.vfs.ftruncate(c.pid, c.int(0), c.offset(1)), 0),
  stat: (c) => statInto(c, 1, c.vfs.fstatat(c.pid, AT_FDCWD, c.path(0), 0)),
  lstat: (c) => statInto(c, 1, c.vfs.fstatat(c.pid, AT_FDCWD, c.path(0), AT_SYMLINK_NOFOLLOW)),
  fstat: (c) => statInto(c, 1, c.vfs.fstat(c.pid, c.int(0))),
  newfstatat: (c) => statInto(c, 2, c.vfs.fstatat(c.pid, c.int(0), c.path(1), c.uint(3))),
  statx: (c) => {
    const flags = c.uint(2);
    // Since Linux 6.11 a NULL path with AT_EMPTY_PATH means the descriptor itself.
    const target = c.pointer(1) === 0n && (flags & AT_EMPTY_PATH) ? new Uint8Array(0) : c.path(1);
    if (c.pointer(4) === 0n) throw vfsError(Errno.EFAULT, "the statx buffer is NULL", "statxbuf");
    const { stat, mask } = c.vfs.statx(c.pid, c.int(0), target, flags, c.uint(3));
    c.memory.write(c.pointer(4), encodeStatx(stat, mask), "statxbuf");
    return 0;
  },
  fsync: (c) => (c.vfs.fsync(c.pid, c.int(0), false), 0),
  fdatasync: (c) => (c.vfs.fsync(c.pid, c.int(0), true), 0),
  readv: (c) => readVectors(c, undefined),
  writev: (c) => writeVectors(c, undefined),
  preadv: (c) => readVectors(c, c.offset(3)),
  pwritev: (c) => writeVectors(c, c.offset(3)),
  pread64: (c) => {
    const offset = c.offset(3);
    requireBuffer(c, 1, c.size(2));
    return readInto(c, 1, c.vfs.pread(c.pid, c.int(0), c.size(2), offset));
  },
  pwrite64: (c) => c.vfs.pwrite(c.pid, c.int(0), writeBuffer(c, 1, 2), c.offset(3)),
  getcwd: (c) => {
    const cwd = c.vfs.getcwd(c.pid);
    const size = c.size(1);
    if (size < cwd.length + 1) {
      throw vfsError(
        Errno.ERANGE,
        `a buffer of ${size} bytes cannot hold the ${cwd.length + 1}-byte path`,
        "size",
      );
    }
    const out = new Uint8Array(cwd.length + 1);
    out.set(cwd);
    c.memory.write(c.pointer(0), out, "buf");
    return out.length;
  },
  getdents64: (c) => {
    if (c.pointer(1) === 0n) throw vfsError(Errno.EFAULT, "the directory buffer is NULL", "dirp");
    const { records } = c.vfs.getdents64(c.pid, c.int(0), c.uint(2));
    return readInto(c, 1, records);
  },
  chmod: (c) => (c.vfs.fchmodat(c.pid, AT_FDCWD, c.path(0), c.uint(1)), 0),
  fchmod: (c) => (c.vfs.fchmod(c.pid, c.int(0), c.uint(1)), 0),
  // The system call has three arguments; only fchmodat2 takes flags.
  fchmodat: (c) => (c.vfs.fchmodat(c.pid, c.int(0), c.path(1), c.uint(2)), 0),
  chown: (c) => (c.vfs.fchownat(c.pid, AT_FDCWD, c.path(0), c.id(1), c.id(2), 0), 0),
  lchown: (c) => (c.vfs.fchownat(c.pid, AT_FDCWD, c.path(0), c.id(1), c.id(2), AT_SYMLINK_NOFOLLOW), 0),
  fchown: (c) => (c.vfs.fchown(c.pid, c.int(0), c.id(1), c.id(2)), 0),
  fchownat: (c) => (c.vfs.fchownat(c.pid, c.int(0), c.path(1), c.id(2), c.id(3), c.uint(4)), 0),
  utimensat: (c) => {
    const times = timespecs(c, 2);
    // Both UTIME_OMIT: nothing to do, and the path is not even read.
    if (times && times.every((t) => t.nanoseconds === UTIME_OMIT)) return 0;
    c.vfs.utimensat(c.pid, c.int(0), c.optionalPath(1), times, c.uint(3));
    return 0;
  },
  utimes: (c) => {
    const times = timevals(c, 1);
    return (c.vfs.utimensat(c.pid, AT_FDCWD, c.optionalPath(0), times, 0), 0);
  },
  futimesat: (c) => {
    const times = timevals(c, 2);
    return (c.vfs.utimensat(c.pid, c.int(0), c.optionalPath(1), times, 0), 0);
  },
  utime: (c) => {
    const times = utimbuf(c, 1);
    return (c.vfs.utimensat(c.pid, AT_FDCWD, c.optionalPath(0), times, 0), 0);
  },
  truncate: (c) => (c.vfs.truncate(c.pid, c.path(0), c.signed(1)), 0),
  symlink: (c) => (c.vfs.symlinkat(c.pid, c.path(0), AT_FDCWD, c.path(1)), 0),
  symlinkat: (c) => (c.vfs.symlinkat(c.pid, c.path(0), c.int(1), c.path(2)), 0),
  link: (c) => (c.vfs.linkat(c.pid, AT_FDCWD, c.path(0), AT_FDCWD, c.path(1), 0), 0),
  linkat: (c) => (c.vfs.linkat(c.pid, c.int(0), c.path(1), c.int(2), c.path(3), c.uint(4)), 0),
  mknod: (c) => (c.vfs.mknodat(c.pid, AT_FDCWD, c.path(0), c.uint(1)), 0),
  mknodat: (c) => (c.vfs.mknodat(c.pid, c.int(0), c.path(1), c.uint(2)), 0),
  statfs: (c) => statfsInto(c, 1, c.vfs.statfs(c.pid, c.path(0))),
  fstatfs: (c) => statfsInto(c, 1, c.vfs.fstatfs(c.pid, c.int(0))),
  statfs64: (c) => (statfs64Size(c, 1), statfsInto(c, 2, c.vfs.statfs(c.pid, c.path(0)))),
  fstatfs64: (c) => (statfs64Size(c, 1), statfsInto(c, 2, c.vfs.fstatfs(c.pid, c.int(0)))),
  fallocate: (c) => (c.vfs.fallocate(c.pid, c.int(0), c.int(1), c.signed(2), c.signed(3)), 0),
  fadvise64: (c) => (c.vfs.fadvise(c.pid, c.int(0), c.signed(2), c.int(3)), 0),
  readahead: (c) => (c.vfs.readahead(c.pid, c.int(0), c.signed(2)), 0),
  // Every write has already reached the host, whose kernel writes it back.
  sync: () => 0,
  syncfs: (c) => (c.vfs.syncfs(c.pid, c.int(0)), 0),
  sync_file_range2: (c) => (c.vfs.syncFileRange(c.pid, c.int(0), c.signed(2), c.signed(3), c.uint(1)), 0),
  flock: async (c) => (await c.vfs.flock(c.pid, c.int(0), c.uint(1), c.signal), 0),
  close_range: (c) => (c.vfs.closeRange(c.pid, c.uint(0), c.uint(1), c.uint(2)), 0),
  getxattr: (c) => {
    const name = xattrNameAt(c, 1);
    return c.vfs.getxattr(c.pid, { path: c.path(0), follow: true }, name);
  },
  lgetxattr: (c) => {
    const name = xattrNameAt(c, 1);
    return c.vfs.getxattr(c.pid, { path: c.path(0), follow: false }, name);
  },
  fgetxattr: (c) => c.vfs.getxattr(c.pid, { fd: c.int(0) }, xattrNameAt(c, 1)),
  setxattr: (c) => {
    const name = setxattrChecks(c, 1);
    return c.vfs.setxattr(c.pid, { path: c.path(0), follow: true }, name);
  },
  lsetxattr: (c) => {
    const name = setxattrChecks(c, 1);
    return c.vfs.setxattr(c.pid, { path: c.path(0), follow: false }, name);
  },
  fsetxattr: (c) => c.vfs.setxattr(c.pid, { fd: c.int(0) }, setxattrChecks(c, 1)),
  listxattr: (c) => readInto(c, 1, c.vfs.listxattr(c.pid, { path: c.path(0), follow: true })),
  llistxattr: (c) => readInto(c, 1, c.vfs.listxattr(c.pid, { path: c.path(0), follow: false })),
  flistxattr: (c) => readInto(c, 1, c.vfs.listxattr(c.pid, { fd: c.int(0) })),
  removexattr: (c) => {
    const name = xattrNameAt(c, 1);
    return c.vfs.removexattr(c.pid, { path: c.path(0), follow: true }, name);
  },
  lremovexattr: (c) => {
    const name = xattrNameAt(c, 1);
    return c.vfs.removexattr(c.pid, { path: c.path(0), follow: false }, name);
  },
  fremovexattr: (c) => c.vfs.removexattr(c.pid, { fd: c.int(0) }, xattrNameAt(c, 1)),
  sendfile: async (c) => {
    const offset = offsetAt(c, 2, "offset");
    const sent = await c.vfs.sendfile(c.pid, c.int(0), c.int(1), offset, c.signed(3), c.signal);
    writeOffset(c, 2, sent.offset, "offset");
    return sent.moved;
  },
  copy_file_range: (c) => {
    const { copied, inOffset, outOffset } = c.vfs.copyFileRange(
      c.pid,
      c.int(0),
      () => offsetAt(c, 1, "off_in"),
      c.int(2),
      () => offsetAt(c, 3, "off_out"),
      c.size(4),
      c.uint(5),
    );
    if (copied > 0) {
      writeOffset(c, 1, inOffset, "off_in");
      writeOffset(c, 3, outOffset, "off_out");
    }
    return copied;
  },
  poll: (c) => pollInto(c, c.int(2) < 0 ? undefined : c.int(2)),
  ppoll: async (c) => {
    const timeout = timeoutAt(c, 2, false);
    // As for pselect6, the signal mask is checked and left to sched.
    if (c.pointer(3) !== 0n) {
      checkSigsetSize(c.size(4));
      c.memory.bytes(c.pointer(3), SIGSET_BYTES, "sigmask");
    }
    const started = performance.now();
    const ready = await pollInto(c, timeout);
    remainingInto(c, 2, timeout, started, false);
    return ready;
  },
  _newselect: async (c) => {
    const timeout = timeoutAt(c, 4, true);
    const started = performance.now();
    const ready = await selectInto(c, timeout);
    remainingInto(c, 4, timeout, started, true);
    return ready;
  },
  pselect6: async (c) => {
    // The sixth argument packs the signal mask's address and size. The mask is sched's to apply;
    // no wait in the VFS is cut short by a signal, so only its size is checked here.
    const pack = c.pointer(5) === 0n ? undefined : c.memory.bytes(c.pointer(5), SIGSET_ARGUMENT_BYTES, "sig");
    const timeout = timeoutAt(c, 4, false);
    if (pack) {
      const view = new DataView(pack.buffer, pack.byteOffset, pack.byteLength);
      if (view.getBigUint64(0, true) !== 0n) checkSigsetSize(Number(view.getBigUint64(8, true)));
    }
    const started = performance.now();
    const ready = await selectInto(c, timeout);
    remainingInto(c, 4, timeout, started, false);
    return ready;
  },
};

/**
 * Runs one guest system call. It never throws: a failure is the errno the guest gets (EIO for
 * anything that is not the VFS's own error). `signal` ends a wait early (the call is abandoned).
 */
export async function runKernelCall(
  vfs: Vfs,
  call: KernelCall,
  signal?: AbortSignal,
): Promise<KernelCallResult> {
  const definition = VFS_KERNEL_CALLS.get(call.number);
  if (!definition) return { result: 0n, errno: Errno.ENOSYS, outputs: [] };
  const context = new CallContext(vfs, call, signal);
  try {
    const result = await HANDLERS[definition.name](context);
    return { result: BigInt(result), outputs: context.memory.outputs };
  } catch (err) {
    if (err instanceof AstraError) return { result: 0n, errno: err.errno, outputs: [] };
    log.error("kernel call failed unexpectedly", {
      call: definition.name,
      pid: call.pid,
      error: String(err),
    });
    return { result: 0n, errno: Errno.EIO, outputs: [] };
  }
}
