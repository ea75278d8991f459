// The Linux ppc64 user ABI numbers the VFS speaks: open flags, *at flags, fcntl commands, file
// types, ioctl requests and termios bits, statx masks, fallocate modes, flock operations, poll
// events, xattr flags, statfs magic numbers and system call numbers. Values are the
// powerpc ones where the architecture differs from the generic headers (O_DIRECTORY, O_NOFOLLOW,
// O_LARGEFILE, O_DIRECT, every ioctl number, termios bits), checked against the kernel's
// arch/powerpc/include/uapi/asm/{fcntl,ioctls,termbits,stat}.h and the cross toolchain's headers.
// The numbers the machine's copy-in shares with the VFS (limits, the ioctl encoding, structure
// sizes, the system call numbers of the VFS's calls) live in lib/linux and are re-exported here.
import { IOC_NONE, IOC_READ, IOC_WRITE, ioctlRequest } from "../../../lib/linux/ioctl.ts";

export { IOC_NONE, IOC_READ, IOC_WRITE, ioctlDirection, ioctlSize } from "../../../lib/linux/ioctl.ts";
export { PAGE_SIZE, PATH_MAX, UIO_MAXIOV } from "../../../lib/linux/limits.ts";
export {
  POLLFD_BYTES,
  SELECT_MAX_DESCRIPTORS,
  SIGSET_ARGUMENT_BYTES,
  SIGSET_BYTES,
  TIME_PAIR_BYTES,
  VFS_SYSCALLS as SYS,
} from "../../../lib/linux/vfs_calls.ts";

export const O_ACCMODE = 0o3;
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DSYNC = 0o10000;
export const FASYNC = 0o20000;
export const O_DIRECTORY = 0o40000;
export const O_NOFOLLOW = 0o100000;
export const O_LARGEFILE = 0o200000;
export const O_DIRECT = 0o400000;
export const O_NOATIME = 0o1000000;
export const O_CLOEXEC = 0o2000000;
/** __O_SYNC | O_DSYNC. */
export const O_SYNC = 0o4010000;
export const O_PATH = 0o10000000;
/** __O_TMPFILE | O_DIRECTORY. */
export const O_TMPFILE = 0o20040000;
const O_TMPFILE_BIT = 0o20000000;

/** The flags open(2) keeps; anything else is ignored (fs/fcntl.c VALID_OPEN_FLAGS). */
export const VALID_OPEN_FLAGS = O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK |
  O_SYNC | FASYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_PATH |
  O_TMPFILE_BIT;
/** Flags open(2) acts on and then forgets: F_GETFL never shows them. */
export const OPEN_ONLY_FLAGS = O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC;
/** What F_SETFL may change (fs/fcntl.c SETFL_MASK; FASYNC needs a fasync operation). */
export const SETFL_MASK = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME;

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EACCESS = 0x200;
export const AT_SYMLINK_FOLLOW = 0x400;
export const AT_NO_AUTOMOUNT = 0x800;
export const AT_EMPTY_PATH = 0x1000;
export const AT_STATX_SYNC_TYPE = 0x6000;

export const F_OK = 0;
export const X_OK = 1;
export const W_OK = 2;
export const R_OK = 4;

export const F_DUPFD = 0;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_DUPFD_CLOEXEC = 1030;
export const F_SETPIPE_SZ = 1031;
export const F_GETPIPE_SZ = 1032;
export const FD_CLOEXEC = 1;

export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o60000;
export const S_IFDIR = 0o40000;
export const S_IFCHR = 0o20000;
export const S_IFIFO = 0o10000;
/** Permission bits with set-user-ID, set-group-ID and sticky. */
export const S_IALLUGO = 0o7777;
export const S_IRWXUGO = 0o777;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_ISVTX = 0o1000;
export const S_IXGRP = 0o10;

/** utimensat's tv_nsec values that mean "the current time" and "leave this time as it is". */
export const UTIME_NOW = 0x3fffffff;
export const UTIME_OMIT = 0x3ffffffe;

export const FALLOC_FL_KEEP_SIZE = 0x1;
export const FALLOC_FL_PUNCH_HOLE = 0x2;
export const FALLOC_FL_COLLAPSE_RANGE = 0x8;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const FALLOC_FL_INSERT_RANGE = 0x20;
export const FALLOC_FL_UNSHARE_RANGE = 0x40;
export const FALLOC_FL_WRITE_ZEROES = 0x80;
/** The mutually exclusive modes (allocation is none of these bits). */
export const FALLOC_FL_MODE_MASK = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_ZERO_RANGE |
  FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_WRITE_ZEROES;

/** posix_fadvise advice: POSIX_FADV_NORMAL (0) through POSIX_FADV_NOREUSE (5). */
export const POSIX_FADV_NOREUSE = 5;

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
/** The old mandatory-lock flag, accepted and ignored since Linux 5.18. */
export const LOCK_MAND = 32;

export const SYNC_FILE_RANGE_WAIT_BEFORE = 1;
export const SYNC_FILE_RANGE_WRITE = 2;
export const SYNC_FILE_RANGE_WAIT_AFTER = 4;

export const CLOSE_RANGE_UNSHARE = 2;
export const CLOSE_RANGE_CLOEXEC = 4;

export const POLLIN = 0x1;
export const POLLPRI = 0x2;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;
export const POLLRDNORM = 0x40;
export const POLLWRNORM = 0x100;

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;
/** Longest attribute name, and largest value and name list (include/uapi/linux/limits.h). */
export const XATTR_NAME_MAX = 255;
export const XATTR_SIZE_MAX = 65536;

/** statfs f_type values of the file systems here. */
export const TMPFS_MAGIC = 0x01021994;
export const PROC_SUPER_MAGIC = 0x9fa0;
export const PIPEFS_MAGIC = 0x50495045;
export const DEVPTS_SUPER_MAGIC = 0x1cd1;
export const SOCKFS_MAGIC = 0x534f434b;
/** statfs f_flags: the mount is read-only; f_flags is filled in (always set). */
export const ST_RDONLY = 0x1;
export const ST_VALID = 0x20;
/** struct statfs (and struct statfs64, the same on ppc64). */
export const STATFS_BYTES = 120;

export const DT_DIR = 4;
export const DT_REG = 8;
export const DT_LNK = 10;

/** d_type for an st_mode. */
export function direntType(mode: number): number {
  return (mode & S_IFMT) >>> 12;
}

/** Bytes in one path component. */
export const NAME_MAX = 255;
/** Symbolic links followed in one lookup before ELOOP (include/linux/namei.h MAXSYMLINKS). */
export const MAX_SYMLINKS = 40;
/** Writes to a pipe up to this size are atomic. */
export const PIPE_BUF = 4096;
/** A new pipe's capacity: 16 pages. */
export const PIPE_DEFAULT_BYTES = 65536;
/** /proc/sys/fs/pipe-max-size. */
export const PIPE_MAX_BYTES = 1048576;
/** RLIMIT_NOFILE's default soft limit. */
export const DEFAULT_DESCRIPTOR_LIMIT = 1024;

/** struct termios on powerpc: four tcflag_t, c_cc[19], c_line, c_ispeed, c_ospeed. */
export const TERMIOS_BYTES = 44;
/** struct winsize: ws_row, ws_col, ws_xpixel, ws_ypixel (u16 each). */
export const WINSIZE_BYTES = 8;

export const FIOCLEX = ioctlRequest(IOC_NONE, "f", 1, 0);
export const FIONCLEX = ioctlRequest(IOC_NONE, "f", 2, 0);
export const FIOASYNC = ioctlRequest(IOC_WRITE, "f", 125, 4);
export const FIONBIO = ioctlRequest(IOC_WRITE, "f", 126, 4);
export const FIONREAD = ioctlRequest(IOC_READ, "f", 127, 4);
export const FIOQSIZE = ioctlRequest(IOC_READ, "f", 128, 8);
export const FIGETBSZ = ioctlRequest(IOC_NONE, "\0", 2, 0);
export const TCGETS = ioctlRequest(IOC_READ, "t", 19, TERMIOS_BYTES);
export const TCSETS = ioctlRequest(IOC_WRITE, "t", 20, TERMIOS_BYTES);
export const TCSETSW = ioctlRequest(IOC_WRITE, "t", 21, TERMIOS_BYTES);
export const TCSETSF = ioctlRequest(IOC_WRITE, "t", 22, TERMIOS_BYTES);
export const TCSBRK = ioctlRequest(IOC_NONE, "t", 29, 0);
export const TCXONC = ioctlRequest(IOC_NONE, "t", 30, 0);
export const TCFLSH = ioctlRequest(IOC_NONE, "t", 31, 0);
export const TIOCSWINSZ = ioctlRequest(IOC_WRITE, "t", 103, WINSIZE_BYTES);
export const TIOCGWINSZ = ioctlRequest(IOC_READ, "t", 104, WINSIZE_BYTES);
export const TIOCOUTQ = ioctlRequest(IOC_READ, "t", 115, 4);
export const TIOCSPGRP = ioctlRequest(IOC_WRITE, "t", 118, 4);
export const TIOCGPGRP = ioctlRequest(IOC_READ, "t", 119, 4);
export const TIOCSCTTY = 0x540e;
export const TIOCNOTTY = 0x5422;
export const TIOCGSID = 0x5429;

// termios bits (powerpc termbits.h and termbits-common.h).
export const ICRNL = 0x100;
export const IXON = 0x200;
export const OPOST = 0x1;
export const ONLCR = 0x2;
export const B38400 = 0xf;
export const CS8 = 0x300;
export const CREAD = 0x800;
export const HUPCL = 0x4000;
export const ECHOKE = 0x1;
export const ECHOE = 0x2;
export const ECHOK = 0x4;
export const ECHO = 0x8;
export const ECHOCTL = 0x40;
export const ISIG = 0x80;
export const ICANON = 0x100;
export const IEXTEN = 0x400;
export const NCCS = 19;
export const VINTR = 0;
export const VQUIT = 1;
export const VERASE = 2;
export const VKILL = 3;
export const VEOF = 4;
export const VMIN = 5;
export const VWERASE = 10;
export const VREPRINT = 11;
export const VSUSP = 12;
export const VSTART = 13;
export const VSTOP = 14;
export const VLNEXT = 15;
export const VDISCARD = 16;

export const STATX_BASIC_STATS = 0x7ff;
export const STATX_BTIME = 0x800;
export const STATX_MNT_ID = 0x1000;
export const STATX_RESERVED = 0x80000000;
export const STATX_ATTR_MOUNT_ROOT = 0x2000;
/** struct statx, including its spare tail. */
export const STATX_BYTES = 256;
/** struct stat on ppc64. */
export const STAT_BYTES = 144;

/** Linux's dev_t as glibc and struct stat encode it (gnu_dev_makedev), from a major and minor. */
export function makeDevice(major: number, minor: number): number {
  return (minor & 0xff) + (major & 0xfff) * 0x100 + Math.floor(minor / 0x100) * 2 ** 20 +
    Math.floor(major / 0x1000) * 2 ** 44;
}

export function deviceMajor(device: number): number {
  return (Math.floor(device / 0x100) & 0xfff) | (Math.floor(device / 2 ** 32) & ~0xfff);
}

export function deviceMinor(device: number): number {
  return (device & 0xff) | (Math.floor(device / 0x1000) & ~0xff);
}
