// The system calls storage's VFS serves and the guest memory each one reads: the one table the
// machine copies inputs by before it sends a call on VfsService.KernelCall, and the one the VFS
// serves calls by (services/storage/vfs/syscalls.ts gives each entry its handler).
import { type SyscallName, SYSCALLS } from "./syscall_numbers.ts";

/**
 * The most bytes one kernel call moves in either direction (a write's buffer, a read's data):
 * well inside the 16 MiB message limit of the transports. Longer reads and writes are short, as
 * Linux's are at MAX_RW_COUNT.
 */
export const MAX_IO_BYTES = 8 * 1024 * 1024;

/**
 * Guest memory a call reads, which the machine copies into the request:
 * - path: the NUL-terminated string at args[arg], up to and including its NUL, at most PATH_MAX
 *   bytes (fewer if the memory after it is unreadable);
 * - buffer: min(args[lengthArg], MAX_IO_BYTES) bytes at args[arg];
 * - iovec: the args[countArg] (at most UIO_MAXIOV) 16-byte struct iovec at args[arg], and with
 *   `buffers` also the memory each one names, at most MAX_IO_BYTES in all;
 * - ioctl: when the request in args[requestArg] has the IOC_WRITE direction bit, its IOC_SIZE
 *   bytes at args[arg].
 * A NULL pointer is not copied. What is missing when the call needs it fails with EFAULT.
 */
export type InputSpec =
  | { kind: "path"; arg: number }
  | { kind: "buffer"; arg: number; lengthArg: number }
  | { kind: "iovec"; arg: number; countArg: number; buffers: boolean }
  | { kind: "ioctl"; arg: number; requestArg: number };

const NONE: readonly InputSpec[] = [];
const path = (arg: number): InputSpec => ({ kind: "path", arg });
const buffer = (arg: number, lengthArg: number): InputSpec => ({ kind: "buffer", arg, lengthArg });
const iovec = (buffers: boolean): InputSpec => ({ kind: "iovec", arg: 1, countArg: 2, buffers });

const VFS_INPUTS = {
  read: NONE,
  write: [buffer(1, 2)],
  open: [path(0)],
  creat: [path(0)],
  openat: [path(1)],
  close: NONE,
  unlink: [path(0)],
  rmdir: [path(0)],
  unlinkat: [path(1)],
  chdir: [path(0)],
  fchdir: NONE,
  lseek: NONE,
  _llseek: NONE,
  access: [path(0)],
  faccessat: [path(1)],
  faccessat2: [path(1)],
  rename: [path(0), path(1)],
  renameat: [path(1), path(3)],
  renameat2: [path(1), path(3)],
  mkdir: [path(0)],
  mkdirat: [path(1)],
  dup: NONE,
  dup2: NONE,
  dup3: NONE,
  pipe: NONE,
  pipe2: NONE,
  ioctl: [{ kind: "ioctl", arg: 2, requestArg: 1 }],
  fcntl: NONE,
  umask: NONE,
  readlink: [path(0)],
  readlinkat: [path(1)],
  ftruncate: NONE,
  stat: [path(0)],
  lstat: [path(0)],
  fstat: NONE,
  newfstatat: [path(1)],
  statx: [path(1)],
  fsync: NONE,
  fdatasync: NONE,
  readv: [iovec(false)],
  writev: [iovec(true)],
  preadv: [iovec(false)],
  pwritev: [iovec(true)],
  pread64: NONE,
  pwrite64: [buffer(1, 2)],
  getcwd: NONE,
  getdents64: NONE,
} as const satisfies { readonly [name in SyscallName]?: readonly InputSpec[] };

export type VfsCallName = keyof typeof VFS_INPUTS;

export interface KernelCallSpec {
  name: VfsCallName;
  inputs: readonly InputSpec[];
}

const VFS_CALL_NAMES = Object.keys(VFS_INPUTS) as VfsCallName[];

/** The Linux ppc64 numbers of the calls the VFS serves, by name. */
export const VFS_SYSCALLS = Object.fromEntries(VFS_CALL_NAMES.map((name) => [name, SYSCALLS[name]])) as {
  readonly [name in VfsCallName]: (typeof SYSCALLS)[name];
};

/** The system calls the VFS serves, by Linux ppc64 number, with the memory each reads. */
export const VFS_KERNEL_CALLS: ReadonlyMap<number, KernelCallSpec> = new Map(
  VFS_CALL_NAMES.map((name) => [SYSCALLS[name], { name, inputs: VFS_INPUTS[name] }]),
);
