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
 * - path: the NUL-terminated string at args[arg] (a path, or an extended attribute's name), up
 *   to and including its NUL, at most PATH_MAX bytes (fewer if the memory after it is unreadable);
 * - buffer: min(args[lengthArg], MAX_IO_BYTES) bytes at args[arg];
 * - iovec: the args[countArg] (at most UIO_MAXIOV) 16-byte struct iovec at args[arg], and with
 *   `buffers` also the memory each one names, at most MAX_IO_BYTES in all;
 * - ioctl: when the request in args[requestArg] has the IOC_WRITE direction bit, its IOC_SIZE
 *   bytes at args[arg];
 * - struct: the `bytes` bytes of a fixed-size structure at args[arg] (utimensat's timespec[2]);
 * - array: args[countArg] (at most maxCount) elements of `elementBytes` at args[arg] (poll's
 *   struct pollfd[nfds]);
 * - bitmap: the descriptor set of args[countArg] (at most SELECT_MAX_DESCRIPTORS) bits at
 *   args[arg], in whole 64-bit words as the kernel reads an fd_set.
 * A NULL pointer is not copied. What is missing when the call needs it fails with EFAULT.
 */
export type InputSpec =
  | { kind: "path"; arg: number }
  | { kind: "buffer"; arg: number; lengthArg: number }
  | { kind: "iovec"; arg: number; countArg: number; buffers: boolean }
  | { kind: "ioctl"; arg: number; requestArg: number }
  | { kind: "struct"; arg: number; bytes: number }
  | { kind: "array"; arg: number; countArg: number; elementBytes: number; maxCount: number }
  | { kind: "bitmap"; arg: number; countArg: number };

/** The most descriptors select(2) examines: glibc's FD_SETSIZE, which no fd_set it builds exceeds. */
export const SELECT_MAX_DESCRIPTORS = 1024;
/** The most struct pollfd poll(2) takes: RLIMIT_NOFILE's ceiling (nr_open). */
export const POLL_MAX_DESCRIPTORS = 1048576;
/** struct pollfd: fd, events, revents. */
export const POLLFD_BYTES = 8;
/** struct timespec and struct timeval on ppc64: two 64-bit fields. */
export const TIME_PAIR_BYTES = 16;
/** The kernel's sigset_t on ppc64. */
export const SIGSET_BYTES = 8;
/** pselect6's sixth argument: { const sigset_t *ss; size_t ss_len }. */
export const SIGSET_ARGUMENT_BYTES = 16;

const NONE: readonly InputSpec[] = [];
const path = (arg: number): InputSpec => ({ kind: "path", arg });
const buffer = (arg: number, lengthArg: number): InputSpec => ({ kind: "buffer", arg, lengthArg });
const iovec = (buffers: boolean): InputSpec => ({ kind: "iovec", arg: 1, countArg: 2, buffers });
const struct = (arg: number, bytes: number): InputSpec => ({ kind: "struct", arg, bytes });
const bitmap = (arg: number): InputSpec => ({ kind: "bitmap", arg, countArg: 0 });
const pollfds: InputSpec = {
  kind: "array",
  arg: 0,
  countArg: 1,
  elementBytes: POLLFD_BYTES,
  maxCount: POLL_MAX_DESCRIPTORS,
};
/** Two struct timespec or struct timeval (utimensat, utimes, futimesat). */
const TIMES = 2 * TIME_PAIR_BYTES;
/** struct utimbuf: actime and modtime. */
const UTIMBUF_BYTES = 16;
/** A loff_t the call reads and updates (sendfile, copy_file_range). */
const OFFSET_BYTES = 8;

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
  chmod: [path(0)],
  fchmod: NONE,
  fchmodat: [path(1)],
  chown: [path(0)],
  lchown: [path(0)],
  fchown: NONE,
  fchownat: [path(1)],
  utimensat: [path(1), struct(2, TIMES)],
  utimes: [path(0), struct(1, TIMES)],
  futimesat: [path(1), struct(2, TIMES)],
  utime: [path(0), struct(1, UTIMBUF_BYTES)],
  truncate: [path(0)],
  symlink: [path(0), path(1)],
  symlinkat: [path(0), path(2)],
  link: [path(0), path(1)],
  linkat: [path(1), path(3)],
  mknod: [path(0)],
  mknodat: [path(1)],
  statfs: [path(0)],
  fstatfs: NONE,
  statfs64: [path(0)],
  fstatfs64: NONE,
  fallocate: NONE,
  fadvise64: NONE,
  readahead: NONE,
  sync: NONE,
  syncfs: NONE,
  sync_file_range2: NONE,
  flock: NONE,
  close_range: NONE,
  getxattr: [path(0), path(1)],
  lgetxattr: [path(0), path(1)],
  fgetxattr: [path(1)],
  setxattr: [path(0), path(1), buffer(2, 3)],
  lsetxattr: [path(0), path(1), buffer(2, 3)],
  fsetxattr: [path(1), buffer(2, 3)],
  listxattr: [path(0)],
  llistxattr: [path(0)],
  flistxattr: NONE,
  removexattr: [path(0), path(1)],
  lremovexattr: [path(0), path(1)],
  fremovexattr: [path(1)],
  sendfile: [struct(2, OFFSET_BYTES)],
  copy_file_range: [struct(1, OFFSET_BYTES), struct(3, OFFSET_BYTES)],
  poll: [pollfds],
  ppoll: [pollfds, struct(2, TIME_PAIR_BYTES), struct(3, SIGSET_BYTES)],
  _newselect: [bitmap(1), bitmap(2), bitmap(3), struct(4, TIME_PAIR_BYTES)],
  pselect6: [bitmap(1), bitmap(2), bitmap(3), struct(4, TIME_PAIR_BYTES), struct(5, SIGSET_ARGUMENT_BYTES)],
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
